//! `/flows`, one Flow and its properties, flow deletion (with `/flow-delete-requests` for
//! deletions that outlast one request).

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use drey_core::model::{
    CollectionItem, DeletionRequest, DeletionStatus, Flow, FlowStatus, TagValue, Tags,
    validate_description, validate_label, validate_tags,
};
use drey_core::{Id, TimeRange};

use super::error::{ApiError, ApiResult};
use super::paging::offset_page;
use super::query::{Query, collected_by_matches, json_body, page_offset, path_id};
use super::sources::sort_resources;
use super::state::AppState;
use crate::storage::index::{FlowQuery, IndexError, PutFlow};
use crate::util::unix_now_ns;

pub async fn list(
    State(st): State<AppState>,
    visible: Option<axum::Extension<crate::auth::ListFilter>>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let format = q.format()?;
    if let Some(c) = q.get("codec") {
        drey_core::model::MimeType::parse(c).map_err(|e| ApiError::bad("codec", e))?;
    }
    let profile = q.id("profile_id")?;
    let status = match q.get("status") {
        Some(s) => Some(
            serde_json::from_value::<FlowStatus>(serde_json::Value::String(s.to_owned()))
                .map_err(|_| ApiError::bad("status", format!("{s:?} is not a flow status")))?,
        ),
        None => None,
    };
    let timerange = q.timerange("timerange")?;
    let tags = q.tag_filter("tag")?;
    let init_segments = q.bool("init_segments")?;
    let collected_by = q.id_list("collected_by_ids")?;
    let reverse = q.bool("reverse_order")?.unwrap_or(false);
    let sort_by = q.sort_by(&["created", "metadata_updated", "label"])?;
    let limit = q.limit(st.cfg.default_page_limit, st.cfg.max_page_limit)?;
    let offset = page_offset(&q)?;
    let mut all = st
        .index
        .list_flows(&FlowQuery {
            source_id: q.id("source_id")?,
            format: format.map(|f| f.urn().to_owned()),
            codec: q.text("codec")?.map(str::to_owned),
            label: q.text("label")?.map(str::to_owned),
            frame_width: q.int("frame_width")?,
            frame_height: q.int("frame_height")?,
        })
        .await?;
    if profile.is_some() {
        // drey does not implement Profiles: no flow was created from one.
        all.clear();
    }
    all.retain(|f| {
        visible.as_ref().is_none_or(|v| v.flow_visible(f))
            && tags.matches(f.tags.as_ref())
            && status.is_none_or(|s| f.status == Some(s))
            && init_segments.is_none_or(|b| f.essence.init_segments() == b)
            && collected_by_matches(&collected_by, f.collected_by.as_ref())
    });
    if let Some(tr) = timerange {
        let mut kept = Vec::with_capacity(all.len());
        for f in all {
            let has = if tr.is_empty() {
                st.index
                    .flow_timerange(f.id, &TimeRange::ETERNITY)
                    .await?
                    .is_empty()
            } else {
                !st.index.flow_timerange(f.id, &tr).await?.is_empty()
            };
            if has {
                kept.push(f);
            }
        }
        all = kept;
    }
    sort_resources(&mut all, sort_by, reverse, |f| match sort_by {
        "label" => f.label.clone(),
        "metadata_updated" => f.metadata_updated.clone(),
        _ => f.created.clone(),
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

pub(super) async fn load(st: &AppState, raw_id: &str) -> ApiResult<(Id, Flow, String)> {
    let id = path_id("flowId", raw_id)?;
    let v = st
        .index
        .get_flow(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("flow {id} does not exist")))?;
    Ok((id, v.value, v.version))
}

pub async fn get_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Flow>> {
    let q = Query::parse(raw.as_deref());
    let include = q.bool("include_timerange")?.unwrap_or(false);
    let within = q.timerange("timerange")?.unwrap_or(TimeRange::ETERNITY);
    let (id, mut flow, _) = load(&st, &id).await?;
    if include {
        flow.timerange = Some(st.index.flow_timerange(id, &within).await?);
    }
    Ok(Json(flow))
}

/// A flow that may take new objects and segments: it exists, is not read-only, and has a
/// container. Returns its id and container.
pub(super) async fn writable_media_flow(st: &AppState, raw_id: &str) -> ApiResult<(Id, String)> {
    let (id, flow, _) = load(st, raw_id).await?;
    if flow.read_only == Some(true) {
        return Err(ApiError::Forbidden(format!("flow {id} is read-only")));
    }
    let container = flow
        .container
        .as_ref()
        .map(|c| c.as_str().to_owned())
        .ok_or_else(|| {
            ApiError::bad(
                "container",
                format!("flow {id} has no container; set it (PUT /flows/{id}) before adding media"),
            )
        })?;
    Ok((id, container))
}

/// Everything but the read_only flag and bookkeeping, for "only read_only changed" checks.
fn metadata_without_read_only(f: &Flow) -> serde_json::Value {
    let mut f = f.clone();
    f.clear_server_managed();
    f.read_only = None;
    f.metadata_version = None;
    f.updated_by = None;
    serde_json::to_value(f).unwrap_or_default()
}

pub async fn put_one(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = path_id("flowId", &raw_id)?;
    let mut flow: Flow = json_body(&body)?;
    if flow.id != id {
        return Err(ApiError::bad(
            "id",
            format!("{} does not match the flow id in the path ({id})", flow.id),
        ));
    }
    flow.validate()?;
    flow.clear_server_managed();
    let existing = st.index.get_flow(id).await?;
    if let Some(old) = &existing {
        if old.value.read_only == Some(true)
            && metadata_without_read_only(&old.value) != metadata_without_read_only(&flow)
        {
            return Err(ApiError::Forbidden(format!(
                "flow {id} is read-only: only its read_only property may change"
            )));
        }
        if flow.metadata_version.is_none() || flow.metadata_version == old.value.metadata_version {
            flow.metadata_version = Some(Id::new_v4().to_string());
        }
    } else if flow.metadata_version.is_none() {
        flow.metadata_version = Some(Id::new_v4().to_string());
    }
    let expected = existing.as_ref().map(|v| v.version.as_str());
    match st.index.put_flow(&flow, expected, unix_now_ns()).await? {
        PutFlow::Created => {
            let stored = st
                .index
                .get_flow(id)
                .await?
                .map(|v| v.value)
                .unwrap_or(flow);
            Ok((StatusCode::CREATED, Json(stored)).into_response())
        }
        PutFlow::Updated => Ok(StatusCode::NO_CONTENT.into_response()),
        PutFlow::Conflict => Err(ApiError::Conflict(format!(
            "flow {id} was changed concurrently; retry"
        ))),
        PutFlow::SourceFormatMismatch { source_format } => Err(ApiError::bad(
            "source_id",
            format!(
                "source {} has format {source_format}, this flow has {}",
                flow.source_id,
                flow.essence.format()
            ),
        )),
    }
}

/// Applies `f` to the stored flow and saves it (compare-and-swap, retried on conflict).
/// Refused with 403 on a read-only flow unless `allow_read_only`.
async fn update(
    st: &AppState,
    raw_id: &str,
    allow_read_only: bool,
    f: impl Fn(&mut Flow) -> ApiResult<()>,
) -> ApiResult<StatusCode> {
    for _ in 0..8 {
        let (id, mut flow, version) = load(st, raw_id).await?;
        if !allow_read_only && flow.read_only == Some(true) {
            return Err(ApiError::Forbidden(format!("flow {id} is read-only")));
        }
        f(&mut flow)?;
        flow.validate()?;
        flow.metadata_version = Some(Id::new_v4().to_string());
        match st
            .index
            .put_flow(&flow, Some(&version), unix_now_ns())
            .await?
        {
            PutFlow::Conflict => continue,
            _ => return Ok(StatusCode::NO_CONTENT),
        }
    }
    Err(ApiError::Conflict(
        "flow is being updated concurrently; retry".to_owned(),
    ))
}

pub async fn get_tags(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Tags>> {
    Ok(Json(load(&st, &id).await?.1.tags.unwrap_or_default()))
}

pub async fn get_tag(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Json<TagValue>> {
    let (_, f, _) = load(&st, &id).await?;
    f.tags
        .and_then(|mut t| t.remove(&name))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("flow has no tag {name:?}")))
}

pub async fn put_tag(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let value: TagValue = json_body(&body)?;
    update(&st, &id, false, |f| {
        let tags = f.tags.get_or_insert_with(Tags::new);
        tags.insert(name.clone(), value.clone());
        validate_tags(tags, "tags")?;
        Ok(())
    })
    .await
}

pub async fn delete_tag(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    update(&st, &id, false, |f| {
        f.tags
            .as_mut()
            .and_then(|t| t.remove(&name))
            .map(|_| ())
            .ok_or_else(|| ApiError::NotFound(format!("flow has no tag {name:?}")))
    })
    .await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prop {
    Label,
    Description,
    ReadOnly,
    FlowCollection,
    MaxBitRate,
    AvgBitRate,
}

fn prop(name: &str) -> ApiResult<Prop> {
    Ok(match name {
        "label" => Prop::Label,
        "description" => Prop::Description,
        "read_only" => Prop::ReadOnly,
        "flow_collection" => Prop::FlowCollection,
        "max_bit_rate" => Prop::MaxBitRate,
        "avg_bit_rate" => Prop::AvgBitRate,
        _ => {
            return Err(ApiError::NotFound(format!(
                "flows have no property {name:?}"
            )));
        }
    })
}

pub async fn get_property(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let p = prop(&name)?;
    let (_, f, _) = load(&st, &id).await?;
    let unset = || ApiError::NotFound(format!("flow has no {name}"));
    Ok(match p {
        Prop::Label => Json(f.label.ok_or_else(unset)?).into_response(),
        Prop::Description => Json(f.description.ok_or_else(unset)?).into_response(),
        Prop::ReadOnly => Json(f.read_only.unwrap_or(false)).into_response(),
        Prop::FlowCollection => Json(f.flow_collection.ok_or_else(unset)?).into_response(),
        Prop::MaxBitRate => Json(f.max_bit_rate.ok_or_else(unset)?).into_response(),
        Prop::AvgBitRate => Json(f.avg_bit_rate.ok_or_else(unset)?).into_response(),
    })
}

pub async fn put_property(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let p = prop(&name)?;
    match p {
        Prop::Label => {
            let v: String = json_body(&body)?;
            validate_label(&v, "label")?;
            update(&st, &id, false, |f| {
                f.label = Some(v.clone());
                Ok(())
            })
            .await
        }
        Prop::Description => {
            let v: String = json_body(&body)?;
            validate_description(&v, "description")?;
            update(&st, &id, false, |f| {
                f.description = Some(v.clone());
                Ok(())
            })
            .await
        }
        Prop::ReadOnly => {
            let v: bool = json_body(&body)?;
            update(&st, &id, true, |f| {
                f.read_only = Some(v);
                Ok(())
            })
            .await
        }
        Prop::FlowCollection => {
            let v: Vec<CollectionItem> = json_body(&body)?;
            update(&st, &id, false, |f| {
                f.flow_collection = Some(v.clone());
                Ok(())
            })
            .await
        }
        Prop::MaxBitRate | Prop::AvgBitRate => {
            let v: u64 = json_body(&body)?;
            update(&st, &id, false, |f| {
                if p == Prop::MaxBitRate {
                    f.max_bit_rate = Some(v);
                } else {
                    f.avg_bit_rate = Some(v);
                }
                Ok(())
            })
            .await
        }
    }
}

pub async fn delete_property(
    State(st): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let p = prop(&name)?;
    if p == Prop::ReadOnly {
        return Err(ApiError::bad(
            "read_only",
            "cannot be deleted; PUT false instead",
        ));
    }
    update(&st, &id, false, |f| {
        match p {
            Prop::Label => f.label = None,
            Prop::Description => f.description = None,
            Prop::FlowCollection => f.flow_collection = None,
            Prop::MaxBitRate => f.max_bit_rate = None,
            Prop::AvgBitRate => f.avg_bit_rate = None,
            Prop::ReadOnly => {}
        }
        Ok(())
    })
    .await
}

pub async fn delete_one(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
) -> ApiResult<Response> {
    let (id, flow, _) = load(&st, &raw_id).await?;
    if flow.read_only == Some(true) {
        return Err(ApiError::Forbidden(format!("flow {id} is read-only")));
    }
    delete_range(&st, id, TimeRange::ETERNITY, true).await
}

/// Deletes the segments of `range` (and the flow when `delete_flow`) within the configured
/// time; if that is not enough, answers 202 with a delete request that a background task
/// finishes.
pub(super) async fn delete_range(
    st: &AppState,
    id: Id,
    range: TimeRange,
    delete_flow: bool,
) -> ApiResult<Response> {
    let deadline = Instant::now() + st.cfg.delete_timeout;
    loop {
        let chunk = st
            .index
            .delete_segments(id, &range, None, st.cfg.delete_chunk, unix_now_ns())
            .await?;
        if chunk.deleted > 0 {
            st.events.changed(id);
            st.gc_wake.notify_one();
        }
        if !chunk.more {
            if delete_flow {
                match st.index.delete_flow(id).await {
                    Ok(_) => {}
                    // A writer registered a segment meanwhile: go round again.
                    Err(IndexError::Database(sqlx::Error::Database(e)))
                        if e.is_foreign_key_violation() =>
                    {
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let now = drey_core::time::format_utc(time::OffsetDateTime::now_utc());
    let req = DeletionRequest {
        id: Id::new_v4(),
        flow_id: id,
        timerange_to_delete: range,
        timerange_remaining: Some(st.index.flow_timerange(id, &range).await?),
        delete_flow,
        created: Some(now.clone()),
        created_by: None,
        updated: Some(now),
        expiry: None,
        status: DeletionStatus::Started,
        error: None,
    };
    st.index.put_delete_request(&req, lease_until()).await?;
    let bg = st.clone();
    let r = req.clone();
    tokio::spawn(async move { run_delete_request(&bg, r).await });
    let location = format!("/flow-delete-requests/{}", req.id);
    let mut resp = (StatusCode::ACCEPTED, Json(req)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// How long a worker owns a delete request before another instance may take it over.
const DELETE_LEASE_NS: i64 = 30_000_000_000;

fn lease_until() -> i64 {
    unix_now_ns().saturating_add(DELETE_LEASE_NS)
}

/// Carries a delete request to its end, recording progress in the index after each chunk
/// (so another instance can take over if this one dies).
pub async fn run_delete_request(st: &AppState, mut req: DeletionRequest) {
    let result: ApiResult<()> = async {
        loop {
            let chunk = st
                .index
                .delete_segments(
                    req.flow_id,
                    &req.timerange_to_delete,
                    None,
                    st.cfg.delete_chunk,
                    unix_now_ns(),
                )
                .await?;
            if chunk.deleted > 0 {
                st.events.changed(req.flow_id);
                st.gc_wake.notify_one();
            }
            req.updated = Some(drey_core::time::format_utc(time::OffsetDateTime::now_utc()));
            if !chunk.more {
                if req.delete_flow {
                    match st.index.delete_flow(req.flow_id).await {
                        Ok(_) => {}
                        Err(IndexError::Database(sqlx::Error::Database(e)))
                            if e.is_foreign_key_violation() =>
                        {
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                req.timerange_remaining = Some(TimeRange::NEVER);
                req.status = DeletionStatus::Done;
                st.index.put_delete_request(&req, i64::MAX).await?;
                return Ok(());
            }
            req.timerange_remaining = Some(
                st.index
                    .flow_timerange(req.flow_id, &req.timerange_to_delete)
                    .await?,
            );
            st.index.put_delete_request(&req, lease_until()).await?;
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(request = %req.id, error = %e, "flow delete request failed; will retry after its lease");
        req.error = Some(e.body());
        let _ = st.index.put_delete_request(&req, lease_until()).await;
    }
}

pub async fn list_delete_requests(
    State(st): State<AppState>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let limit = q.limit(st.cfg.default_page_limit, st.cfg.max_page_limit)?;
    let reverse = q.bool("reverse_order")?.unwrap_or(false);
    let offset = page_offset(&q).unwrap_or(0);
    let mut all = st.index.list_delete_requests().await?;
    if reverse {
        all.reverse();
    }
    Ok(offset_page(
        &st.cfg.public_url,
        &uri,
        &all,
        offset,
        limit,
        reverse,
    ))
}

pub async fn get_delete_request(
    State(st): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<DeletionRequest>> {
    let id = path_id("request-id", &raw)?;
    st.index
        .get_delete_request(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("delete request {id} does not exist")))
}
