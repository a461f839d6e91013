//! `/flows/{flowId}/segments`: list by time range (keyset pages), register (one or a
//! batch; partial success reported per segment), delete by time range.
//!
//! Registration keeps invariant 1: an allocated object is checked in the object store
//! (HEAD) before any segment may reference it, and the index refuses references to objects
//! whose bytes were not seen.

use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drey_core::model::{FailedSegment, GetUrl, Segment, SegmentInitObject, SegmentPost};
use drey_core::{Id, TimeRange, Timestamp};
use futures::{StreamExt, TryStreamExt};

use super::error::{ApiError, ApiResult};
use super::paging::{Paging, paged};
use super::query::{Query, decode_page, path_id};
use super::state::AppState;
use crate::storage::index::{ObjectState, SegmentQuery, SegmentRow};
use crate::storage::objects::Backend;
use crate::util::unix_now_ns;

/// Which `get_urls` a listing asked for.
pub(super) struct UrlFilter {
    labels: Option<Vec<String>>,
    storage_ids: Option<Vec<Id>>,
    presigned: Option<bool>,
    verbose: bool,
}

impl UrlFilter {
    pub(super) fn from_query(q: &Query) -> ApiResult<Self> {
        Ok(UrlFilter {
            labels: q.get("accept_get_urls").map(|v| {
                if v.is_empty() {
                    Vec::new()
                } else {
                    v.split(',').map(str::to_owned).collect()
                }
            }),
            storage_ids: q.id_list("accept_storage_ids")?.filter(|v| !v.is_empty()),
            presigned: q.bool("presigned")?,
            verbose: q.bool("verbose_storage")?.unwrap_or(false),
        })
    }

    fn wants(&self, u: &GetUrl) -> bool {
        let label_ok = match &self.labels {
            None => true,
            Some(ls) => u.label.as_ref().is_some_and(|l| ls.contains(l)),
        };
        let storage_ok = match &self.storage_ids {
            None => true,
            Some(ids) => u.storage_id.is_some_and(|s| ids.contains(&s)),
        };
        let presigned_ok = self
            .presigned
            .is_none_or(|p| u.presigned.unwrap_or(false) == p);
        label_ok && storage_ok && presigned_ok
    }
}

/// The URLs from which a controlled object can be read: drey's own `/media` URL, and for
/// S3 a presigned URL to the bucket.
pub(super) async fn controlled_urls(
    st: &AppState,
    object_id: &str,
    f: &UrlFilter,
) -> ApiResult<Vec<GetUrl>> {
    let backend = st.objects.describe();
    let base = |url: String, presigned: bool, label: &str| {
        let mut u = GetUrl {
            url,
            presigned: Some(presigned),
            label: Some(label.to_owned()),
            storage_id: Some(st.objects.storage_id()),
            controlled: Some(true),
            store_type: None,
            provider: None,
            region: None,
            store_product: None,
        };
        if f.verbose {
            u.store_type = Some(backend.store_type.clone());
            u.provider = Some(backend.provider.clone());
            u.region = backend.region.clone();
            u.store_product = Some(backend.store_product.clone());
        }
        u
    };
    let mut out = Vec::with_capacity(2);
    if matches!(st.objects.backend(), Backend::S3 { .. }) && f.presigned != Some(false) {
        let probe = base(String::new(), true, "s3-presigned");
        if f.wants(&probe)
            && let Some(url) = st
                .objects
                .presign(http::Method::GET, object_id, st.cfg.presign_ttl)
                .await?
        {
            out.push(GetUrl { url, ..probe });
        }
    }
    let own = base(media_url(&st.cfg.public_url, object_id), false, "drey");
    if f.wants(&own) {
        out.push(own);
    }
    Ok(out)
}

pub(super) fn media_url(public_url: &str, object_id: &str) -> String {
    format!("{}/media/{object_id}", public_url.trim_end_matches('/'))
}

async fn to_api(
    st: &AppState,
    s: &SegmentRow,
    f: &UrlFilter,
    include_object_timerange: bool,
) -> ApiResult<Segment> {
    let get_urls = match &s.external_urls {
        Some(urls) => urls.iter().filter(|u| f.wants(u)).cloned().collect(),
        None => controlled_urls(st, &s.object_id, f).await?,
    };
    let init_object = match &s.init_object_id {
        Some(id) => Some(SegmentInitObject {
            object_id: id.clone(),
            get_urls: Some(controlled_urls(st, id, f).await?),
        }),
        None => None,
    };
    let object_timerange = s.object_timerange(include_object_timerange);
    Ok(Segment {
        object_id: s.object_id.clone(),
        ts_offset: s.ts_offset_ns.map(Timestamp::from_nanos),
        timerange: TimeRange::from_nanos(s.start_ns, s.end_ns),
        last_duration: s.last_duration_ns.map(Timestamp::from_nanos),
        object_timerange,
        sample_offset: s.sample_offset,
        sample_count: s.sample_count,
        key_frame_count: s.key_frame_count,
        get_urls: Some(get_urls),
        init_object,
    })
}

pub async fn list(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = path_id("flowId", &raw_id)?;
    let q = Query::parse(raw.as_deref());
    let range = q.timerange("timerange")?.unwrap_or(TimeRange::ETERNITY);
    let reverse = q.bool("reverse_order")?.unwrap_or(false);
    let include_otr = q.bool("include_object_timerange")?.unwrap_or(false);
    let filter = UrlFilter::from_query(&q)?;
    let limit = q.limit(st.cfg.default_page_limit, st.cfg.max_page_limit)?;
    let after = match decode_page(&q)? {
        None => None,
        Some(c) => Some(
            c.strip_prefix("k:")
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad("page", "not a page key returned by this service"))?,
        ),
    };
    let object_id = q.text("object_id")?.map(str::to_owned);
    // One more than asked tells whether there is a next page.
    let mut rows = st
        .index
        .list_segments(
            id,
            &SegmentQuery {
                range,
                object_id,
                reverse,
                after_start_ns: after,
                limit: limit + 1,
            },
        )
        .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let hull = rows.iter().fold(TimeRange::NEVER, |acc, s| {
        acc.hull(&TimeRange::from_nanos(s.start_ns, s.end_ns))
    });
    // URL signing is local computation: no need to run these concurrently.
    let mut segments: Vec<Segment> = Vec::with_capacity(rows.len());
    for s in &rows {
        segments.push(to_api(&st, s, &filter, include_otr).await?);
    }
    let next = if more {
        rows.last().map(|s| format!("k:{}", s.start_ns))
    } else {
        None
    };
    Ok(paged(
        &st.cfg.public_url,
        &uri,
        &segments,
        Paging {
            limit,
            count: segments.len(),
            reverse: Some(reverse),
            next,
            timerange: Some(hull),
        },
    ))
}

/// One element of a POST body: parsed and validated, or the error to report for it.
fn parse_one(v: serde_json::Value, prefix: &str) -> Result<SegmentPost, ApiError> {
    let p: SegmentPost =
        serde_path_to_error::deserialize(v).map_err(|e| super::query::path_error(e, prefix))?;
    p.validate()
        .map_err(|e| ApiError::bad(format!("{prefix}{}", e.field), e.message))?;
    Ok(p)
}

fn failed(object_id: &str, timerange: Option<TimeRange>, e: &ApiError) -> FailedSegment {
    FailedSegment {
        object_id: object_id.to_owned(),
        timerange,
        error: Some(e.body()),
    }
}

pub async fn post(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (id, container) = super::flows::writable_media_flow(&st, &raw_id).await?;
    let value: serde_json::Value = super::query::json_body(&body)?;
    let (items, single) = match value {
        serde_json::Value::Array(a) => (a, false),
        v @ serde_json::Value::Object(_) => (vec![v], true),
        _ => {
            return Err(ApiError::bad(
                "body",
                "expected a segment object or an array of them",
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad("body", "empty array"));
    }
    let total = items.len();
    if items.len() > st.cfg.max_segments_per_post {
        return Err(ApiError::bad(
            "body",
            format!(
                "at most {} segments per request",
                st.cfg.max_segments_per_post
            ),
        ));
    }

    // Parse each; keep the valid ones with their position.
    let mut errors: Vec<FailedSegment> = Vec::new();
    let mut first_error: Option<ApiError> = None;
    let mut valid: Vec<SegmentPost> = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        let oid = v
            .get("object_id")
            .and_then(|o| o.as_str())
            .unwrap_or("")
            .to_owned();
        let tr = v
            .get("timerange")
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse().ok());
        let prefix = if single {
            String::new()
        } else {
            format!("[{i}].")
        };
        match parse_one(v, &prefix) {
            Ok(p) => valid.push(p),
            Err(e) => {
                errors.push(failed(&oid, tr, &e));
                first_error.get_or_insert(e);
            }
        }
    }

    if !valid.is_empty() {
        verify_uploads(&st, &valid).await?;
        let batch: Vec<SegmentRow> = valid.iter().map(SegmentRow::from_post).collect();
        let verdicts = st
            .index
            .register_segments(id, &batch, unix_now_ns())
            .await?;
        let mut stored = 0u64;
        // What the sample-tables worker reads, when there is one.
        let mut queued = Vec::new();
        for (p, v) in valid.iter().zip(verdicts) {
            match v {
                Ok(()) => {
                    stored += 1;
                    if st.prepare.is_some() {
                        queued.push((p.object_id.clone(), p.init_object_id.clone()));
                    }
                }
                Err(r) => {
                    let e = ApiError::bad(r.field(), r.to_string());
                    errors.push(failed(&p.object_id, Some(p.timerange), &e));
                    first_error.get_or_insert(e);
                }
            }
        }
        metrics::counter!("drey_segments_registered_total").increment(stored);
        if stored > 0 {
            st.events.changed(id);
        }
        if let Some(prepare) = &st.prepare {
            prepare.queue(&container, queued);
        }
    }

    match (errors.is_empty(), first_error) {
        (true, _) => Ok(StatusCode::CREATED.into_response()),
        (false, Some(e)) if single || errors.len() == total => {
            if single {
                return Err(e);
            }
            let mut body = serde_json::to_value(e.body()).unwrap_or_default();
            body["failed_segments"] = serde_json::to_value(&errors).unwrap_or_default();
            Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
        _ => Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "failed_segments": errors })),
        )
            .into_response()),
    }
}

/// HEADs, in parallel, every allocated object the batch references and marks those whose
/// bytes are in the store as `stored` (with their size). Missing ones stay allocated, and
/// the index then rejects the segments that use them.
async fn verify_uploads(st: &AppState, posts: &[SegmentPost]) -> ApiResult<()> {
    let ids: Vec<String> = posts
        .iter()
        .flat_map(|p| std::iter::once(p.object_id.clone()).chain(p.init_object_id.clone()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let rows = st.index.get_objects(&ids).await?;
    let pending: Vec<String> = rows
        .into_iter()
        .filter(|o| o.controlled && o.state == ObjectState::Allocated)
        .map(|o| o.id)
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let found: Vec<(String, i64)> = futures::stream::iter(pending)
        .map(|id| async move {
            let size = st.objects.head(&id).await?;
            Ok::<_, ApiError>(size.map(|n| (id, i64::try_from(n).unwrap_or(i64::MAX))))
        })
        // Bounded: the object store wrapper limits requests overall; this bounds one POST.
        .buffer_unordered(16)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    st.index.mark_objects_stored(&found).await?;
    Ok(())
}

pub async fn delete(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let (id, flow, _) = super::flows::load(&st, &raw_id).await?;
    if flow.read_only == Some(true) {
        return Err(ApiError::Forbidden(format!("flow {id} is read-only")));
    }
    let q = Query::parse(raw.as_deref());
    let range = q.timerange("timerange")?.unwrap_or(TimeRange::ETERNITY);
    match q.text("object_id")? {
        // Deletions by object are small (the segments of one object): done in-line.
        Some(object_id) => {
            loop {
                let chunk = st
                    .index
                    .delete_segments(
                        id,
                        &range,
                        Some(object_id),
                        st.cfg.delete_chunk,
                        unix_now_ns(),
                    )
                    .await?;
                if !chunk.more {
                    break;
                }
            }
            st.events.changed(id);
            st.gc_wake.notify_one();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        None => super::flows::delete_range(&st, id, range, false).await,
    }
}
