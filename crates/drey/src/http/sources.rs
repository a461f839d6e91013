//! `/sources` and a Source's tags, label and description. Sources are created by the first
//! Flow that names them; updates are compare-and-swap on the source's version.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drey_core::Id;
use drey_core::model::{Source, TagValue, Tags, validate_description, validate_label};

use super::error::{ApiError, ApiResult};
use super::paging::offset_page;
use super::query::{Query, collected_by_matches, json_body, page_offset, path_id};
use super::state::AppState;
use crate::storage::index::SourceQuery;
use crate::util::unix_now_ns;

pub async fn list(
    State(st): State<AppState>,
    visible: Option<axum::Extension<crate::auth::ListFilter>>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let format = q.format()?;
    let tags = q.tag_filter("tag")?;
    let collected_by = q.id_list("collected_by_ids")?;
    let reverse = q.bool("reverse_order")?.unwrap_or(false);
    let sort_by = q.sort_by(&["created", "updated", "label"])?;
    let limit = q.limit(st.cfg.default_page_limit, st.cfg.max_page_limit)?;
    let offset = page_offset(&q)?;
    let mut all = st
        .index
        .list_sources(&SourceQuery {
            label: q.text("label")?.map(str::to_owned),
            format: format.map(|f| f.urn().to_owned()),
        })
        .await?;
    all.retain(|s| {
        visible.as_ref().is_none_or(|v| v.source_visible(s.id))
            && tags.matches(s.tags.as_ref())
            && collected_by_matches(&collected_by, s.collected_by.as_ref())
    });
    sort_resources(&mut all, sort_by, reverse, |s| match sort_by {
        "label" => s.label.clone(),
        "updated" => s.updated.clone(),
        _ => s.created.clone(),
    });
    Ok(offset_page(
        &st.cfg.public_url,
        &uri,
        &all,
        offset,
        limit,
        reverse,
    ))
}

/// Sorts by `key` (`created`/`updated` most recent first, `label` alphabetical), items
/// without the key after the others (before them when reversed), ties by id.
pub(super) fn sort_resources<T>(
    items: &mut [T],
    sort_by: &str,
    reverse: bool,
    key: impl Fn(&T) -> Option<String>,
) where
    T: HasId,
{
    items.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        let ord = match (&ka, &kb) {
            (Some(x), Some(y)) => {
                if sort_by == "label" {
                    x.cmp(y)
                } else {
                    y.cmp(x)
                }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        ord.then_with(|| a.id().cmp(&b.id()))
    });
    if reverse {
        items.reverse();
    }
}

pub(super) trait HasId {
    fn id(&self) -> Id;
}

impl HasId for Source {
    fn id(&self) -> Id {
        self.id
    }
}

impl HasId for drey_core::model::Flow {
    fn id(&self) -> Id {
        self.id
    }
}

async fn load(st: &AppState, raw_id: &str) -> ApiResult<(Id, Source)> {
    let id = path_id("sourceId", raw_id)?;
    let s = st
        .index
        .get_source(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("source {id} does not exist")))?;
    Ok((id, s.value))
}

pub async fn get_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Source>> {
    Ok(Json(load(&st, &id).await?.1))
}

pub async fn get_tags(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Tags>> {
    Ok(Json(load(&st, &id).await?.1.tags.unwrap_or_default()))
}

pub async fn get_tag(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Json<TagValue>> {
    let (_, s) = load(&st, &id).await?;
    s.tags
        .and_then(|mut t| t.remove(&name))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("source has no tag {name:?}")))
}

/// Applies `f` to the stored source and saves it, retrying when another writer got there
/// first.
async fn update(
    st: &AppState,
    raw_id: &str,
    f: impl Fn(&mut Source) -> ApiResult<()>,
) -> ApiResult<StatusCode> {
    let id = path_id("sourceId", raw_id)?;
    for _ in 0..8 {
        let v = st
            .index
            .get_source(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("source {id} does not exist")))?;
        let mut s = v.value;
        f(&mut s)?;
        if st
            .index
            .update_source(&s, &v.version, unix_now_ns())
            .await?
        {
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    Err(ApiError::Conflict(
        "source is being updated concurrently; retry".to_owned(),
    ))
}

pub async fn put_tag(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let value: TagValue = json_body(&body)?;
    update(&st, &id, |s| {
        let tags = s.tags.get_or_insert_with(Tags::new);
        tags.insert(name.clone(), value.clone());
        drey_core::model::validate_tags(tags, "tags")?;
        Ok(())
    })
    .await
}

pub async fn delete_tag(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    update(&st, &id, |s| {
        s.tags
            .as_mut()
            .and_then(|t| t.remove(&name))
            .map(|_| ())
            .ok_or_else(|| ApiError::NotFound(format!("source has no tag {name:?}")))
    })
    .await
}

fn property(name: &str) -> ApiResult<&'static str> {
    match name {
        "label" => Ok("label"),
        "description" => Ok("description"),
        _ => Err(ApiError::NotFound(format!(
            "sources have no property {name:?}"
        ))),
    }
}

pub async fn get_property(
    State(st): State<AppState>,
    Path((id, prop)): Path<(String, String)>,
) -> ApiResult<Response> {
    let prop = property(&prop)?;
    let (_, s) = load(&st, &id).await?;
    let v = if prop == "label" {
        s.label
    } else {
        s.description
    };
    v.map(|v| Json(v).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("source has no {prop}")))
}

pub async fn put_property(
    State(st): State<AppState>,
    Path((id, prop)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let prop = property(&prop)?;
    let value: String = json_body(&body)?;
    if prop == "label" {
        validate_label(&value, "label")?;
    } else {
        validate_description(&value, "description")?;
    }
    update(&st, &id, |s| {
        if prop == "label" {
            s.label = Some(value.clone());
        } else {
            s.description = Some(value.clone());
        }
        Ok(())
    })
    .await
}

pub async fn delete_property(
    State(st): State<AppState>,
    Path((id, prop)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let prop = property(&prop)?;
    update(&st, &id, |s| {
        if prop == "label" {
            s.label = None;
        } else {
            s.description = None;
        }
        Ok(())
    })
    .await
}
