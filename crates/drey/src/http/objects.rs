//! `POST /flows/{flowId}/storage` (allocate object ids with put URLs) and
//! `GET /objects/{objectId}` (which flows reference an object, and where to read it).

use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drey_core::model::{FlowStorage, MediaObjectAllocation, Object, PutUrl, StoragePost};
use drey_core::{Id, TimeRange, validate_object_id};

use super::error::{ApiError, ApiResult};
use super::paging::{Paging, paged};
use super::query::{Query, json_body};
use super::segments::{UrlFilter, controlled_urls, media_url};
use super::state::AppState;
use crate::util::unix_now_ns;

/// Grace beyond `min_object_timeout` before an unregistered id is collected, covering the
/// latency between allocation and the client receiving the URLs.
const GC_GRACE_NS: i64 = 60_000_000_000;

pub async fn allocate(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (id, container) = super::flows::writable_media_flow(&st, &raw_id).await?;
    let req: StoragePost = if body.iter().all(u8::is_ascii_whitespace) {
        StoragePost::default()
    } else {
        json_body(&body)?
    };
    if let Some(s) = req.storage_id
        && s != st.objects.storage_id()
    {
        return Err(ApiError::bad(
            "storage_id",
            format!("unknown storage backend {s}; see /service/storage-backends"),
        ));
    }
    let presigned = match req.presigned {
        Some(true) if !st.objects.can_presign() => {
            return Err(ApiError::bad(
                "presigned",
                "this storage backend does not issue presigned URLs",
            ));
        }
        Some(p) => p,
        None => st.objects.can_presign(),
    };
    let max = st.cfg.max_objects_per_allocation;
    let ids: Vec<String> = match (req.limit, req.object_ids) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad("limit", "give limit or object_ids, not both"));
        }
        (_, Some(ids)) => {
            if ids.is_empty() || ids.len() > max {
                return Err(ApiError::bad("object_ids", format!("give 1 to {max} ids")));
            }
            for (i, oid) in ids.iter().enumerate() {
                validate_object_id(oid)
                    .map_err(|e| ApiError::bad(format!("object_ids[{i}]"), e.to_string()))?;
            }
            if ids.iter().collect::<HashSet<_>>().len() != ids.len() {
                return Err(ApiError::bad("object_ids", "ids must be distinct"));
            }
            ids
        }
        (limit, None) => {
            let n = limit.unwrap_or(10);
            if n < 1 || n > max as i64 {
                return Err(ApiError::bad(
                    "limit",
                    format!("must be between 1 and {max}"),
                ));
            }
            // Ids carry the media's file extension, so that presigned object-store URLs
            // in playlists end as players expect.
            let ext = req
                .content_type
                .as_ref()
                .map_or(container.as_str(), |c| c.as_str());
            let ext =
                drey_core::hls::file_extension(ext).map_or(String::new(), |e| format!(".{e}"));
            (0..n).map(|_| format!("{}{ext}", Id::new_v4())).collect()
        }
    };
    let now = unix_now_ns();
    let timeout_ns = i64::try_from(st.cfg.min_object_timeout.as_nanos()).unwrap_or(i64::MAX);
    let content_type = req.content_type.as_ref().map(|c| c.as_str().to_owned());
    st.index
        .allocate_objects(
            id,
            &ids,
            content_type.as_deref(),
            now,
            now.saturating_add(timeout_ns).saturating_add(GC_GRACE_NS),
        )
        .await?;
    let ct = content_type.unwrap_or(container);
    let mut media_objects = Vec::with_capacity(ids.len());
    for oid in ids {
        let url = if presigned {
            st.objects
                .presign(http::Method::PUT, &oid, st.cfg.presign_ttl)
                .await?
                .ok_or_else(|| ApiError::Internal("presign failed".to_owned()))?
        } else {
            media_url(&st.cfg.public_url, &oid)
        };
        media_objects.push(MediaObjectAllocation {
            object_id: oid,
            put_url: PutUrl {
                url,
                content_type: Some(ct.clone()),
            },
            presigned: Some(presigned),
        });
    }
    Ok((StatusCode::CREATED, Json(FlowStorage { media_objects })).into_response())
}

/// Most flows listed in `referenced_by_flows`.
const MAX_REFERENCING_FLOWS: usize = 1000;

pub async fn get_one(
    State(st): State<AppState>,
    Path(object_id): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let filter = UrlFilter::from_query(&q)?;
    let limit = q.limit(MAX_REFERENCING_FLOWS, MAX_REFERENCING_FLOWS)?;
    let not_found = || {
        ApiError::NotFound(format!(
            "object {object_id:?} is not registered in any flow"
        ))
    };
    if validate_object_id(&object_id).is_err() {
        return Err(not_found());
    }
    let row = st
        .index
        .get_objects(std::slice::from_ref(&object_id))
        .await?
        .pop()
        .ok_or_else(not_found)?;
    let flows = st.index.object_flows(&object_id, limit).await?;
    if flows.is_empty() {
        return Err(not_found());
    }
    let get_urls = match &row.external_urls {
        Some(urls) => urls.clone(),
        None => controlled_urls(&st, &object_id, &filter).await?,
    };
    let obj = Object {
        id: object_id.clone(),
        referenced_by_flows: flows,
        first_referenced_by_flow: row.first_flow_id.as_deref().and_then(|f| f.parse().ok()),
        timerange: match (row.object_start_ns, row.object_end_ns) {
            (Some(a), Some(b)) => Some(TimeRange::from_nanos(a, b)),
            _ => None,
        },
        key_frame_count: row.key_frame_count,
        get_urls: Some(get_urls),
        init_object: None,
    };
    let count = obj.referenced_by_flows.len();
    Ok(paged(
        &st.cfg.public_url,
        &uri,
        &obj,
        Paging {
            limit,
            count,
            ..Default::default()
        },
    ))
}
