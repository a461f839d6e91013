//! `/media/{objectId}`: drey's own object URLs, used as put and get URLs when the object
//! store cannot presign (local directory, memory) and as an alternative for S3. Uploads
//! stream into the store (bounded memory) and only to allocated ids; objects are
//! immutable once they have bytes. Reads support one HTTP byte range.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::storage::index::{ObjectRow, ObjectState};

async fn row(st: &AppState, object_id: &str) -> ApiResult<ObjectRow> {
    if drey_core::validate_object_id(object_id).is_err() {
        return Err(ApiError::NotFound(format!("no object {object_id:?}")));
    }
    st.index
        .get_objects(&[object_id.to_owned()])
        .await?
        .pop()
        .filter(|o| o.controlled)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no object {object_id:?}: allocate it with POST /flows/{{flowId}}/storage"
            ))
        })
}

pub async fn put(
    State(st): State<AppState>,
    Path(object_id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let o = row(&st, &object_id).await?;
    match o.state {
        ObjectState::Allocated => {}
        ObjectState::Stored => {
            return Err(ApiError::Conflict(format!(
                "object {object_id:?} already has bytes; objects are immutable"
            )));
        }
        ObjectState::Deleting => {
            return Err(ApiError::Conflict(format!(
                "the allocation of object {object_id:?} expired; allocate a new object"
            )));
        }
    }
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > st.cfg.max_object_bytes
    {
        return Err(ApiError::TooLarge {
            limit: st.cfg.max_object_bytes,
        });
    }
    let body = req.into_body().into_data_stream();
    let size = st
        .objects
        .put_stream(&object_id, body, st.cfg.max_object_bytes)
        .await?;
    st.index
        .mark_objects_stored(&[(object_id.clone(), i64::try_from(size).unwrap_or(i64::MAX))])
        .await?;
    // The allocation may have expired and been collected while the bytes streamed in:
    // then nothing refers to these bytes and nothing ever would; remove them.
    let still_ours = st
        .index
        .get_objects(std::slice::from_ref(&object_id))
        .await?
        .first()
        .is_some_and(|o| o.state == ObjectState::Stored);
    if !still_ours {
        st.objects.delete(&object_id).await?;
        return Err(ApiError::Conflict(format!(
            "the allocation of object {object_id:?} expired during the upload; allocate a new object"
        )));
    }
    metrics::counter!("drey_object_bytes_uploaded_total").increment(size);
    Ok(StatusCode::CREATED.into_response())
}

/// The single byte range a request asks for (`Range`), checked against `len` bytes:
/// `None` without the header, 416 when it cannot be satisfied.
pub(crate) fn requested_range(
    headers: &HeaderMap,
    len: u64,
) -> ApiResult<Option<std::ops::Range<u64>>> {
    match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(h) => parse_range(h, len)
            .map(Some)
            .map_err(|_| ApiError::RangeNotSatisfiable { len }),
        None => Ok(None),
    }
}

/// The `Content-Range` value of `range` of `len` bytes.
pub(crate) fn content_range(range: &std::ops::Range<u64>, len: u64) -> String {
    format!(
        "bytes {}-{}/{len}",
        range.start,
        range.end.saturating_sub(1)
    )
}

/// True when `If-None-Match` names `etag` (or `*`).
pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// Parses a single `bytes=` range against an object of `len` bytes.
fn parse_range(h: &str, len: u64) -> Result<std::ops::Range<u64>, ()> {
    let spec = h.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        len.saturating_sub(n)..len
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            len
        } else {
            b.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(len)
        };
        start..end
    };
    if r.start >= r.end || r.start >= len {
        return Err(());
    }
    Ok(r)
}

/// `/hls/objects/{objectId}.{ext}`: the object, under a name with the media extension
/// players want (playlists use it for object ids without one).
pub async fn get_with_extension(
    st: State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some((object_id, _ext)) = file.rsplit_once('.').filter(|(_, e)| !e.contains('/')) else {
        return Err(ApiError::NotFound(format!(
            "{file:?}: expected an object id followed by a file extension"
        )));
    };
    get(st, Path(object_id.to_owned()), headers).await
}

/// Size and content type of stored objects, which never change once stored: segment GETs
/// (a player's every request) skip the index. Bounded; emptied when full. An entry that
/// outlives its object (collected) leads to the store's 404; one whose id was reused after
/// collection is corrected by the size the store reports.
#[derive(Default)]
pub struct StoredObjects(std::sync::Mutex<HashMap<String, (u64, Option<String>)>>);

const STORED_OBJECTS_CACHED: usize = 100_000;

impl StoredObjects {
    fn get(&self, id: &str) -> Option<(u64, Option<String>)> {
        self.0.lock().ok()?.get(id).cloned()
    }

    fn put(&self, id: &str, len: u64, content_type: Option<String>) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= STORED_OBJECTS_CACHED {
                m.clear();
            }
            m.insert(id.to_owned(), (len, content_type));
        }
    }
}

pub async fn get(
    State(st): State<AppState>,
    Path(object_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (len, content_type) = match st.stored_objects.get(&object_id) {
        Some(known) => known,
        None => {
            let o = row(&st, &object_id).await?;
            if o.state != ObjectState::Stored {
                return Err(ApiError::NotFound(format!(
                    "object {object_id:?} has no bytes yet"
                )));
            }
            let len = match o.size {
                Some(n) => u64::try_from(n).unwrap_or(0),
                None => st.objects.head(&object_id).await?.ok_or_else(|| {
                    ApiError::NotFound(format!("object {object_id:?} has no bytes"))
                })?,
            };
            st.stored_objects
                .put(&object_id, len, o.content_type.clone());
            (len, o.content_type)
        }
    };
    let range = requested_range(&headers, len)?;
    let read = st.objects.get(&object_id, range.clone()).await?;
    if read.size != len {
        st.stored_objects
            .put(&object_id, read.size, content_type.clone());
    }
    let len = read.size;
    let mut resp = Response::new(Body::from_stream(read.body));
    let h = resp.headers_mut();
    let ct = content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Objects never change once stored: cache them for a year.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}-{len}\"", object_id.replace('/', "_"))) {
        h.insert(header::ETAG, v);
    }
    let served = read.range.end - read.range.start;
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(served));
    if range.is_some() {
        if let Ok(v) = HeaderValue::from_str(&content_range(&read.range, read.size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Ok(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Ok(90..100));
        assert_eq!(parse_range("bytes=95-200", 100), Ok(95..100));
        for bad in [
            "bytes=100-",
            "bytes=5-4",
            "bytes=-0",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,3-4",
            "",
        ] {
            assert!(parse_range(bad, 100).is_err(), "{bad}");
        }
    }
}
