//! HLS endpoints: `GET /flows/{flowId}/playlist.m3u8` (live window, or `?timerange=` /
//! `?start=&end=` for time-shift and catch-up; `_HLS_msn` blocks for the next segment)
//! and `GET /sources/{sourceId}/playlist.m3u8` (multivariant). Playlists carry an ETag
//! (If-None-Match answers 304) and a short Cache-Control; segments are served by `/media`.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiResult;
use super::query::{Query, path_id};
use super::state::AppState;
use crate::packaging::hls::Rendered;

const MPEGURL: &str = "application/vnd.apple.mpegurl";

fn answer(r: &Rendered, headers: &HeaderMap) -> Response {
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == r.etag || t.trim() == "*"));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(r.body.clone()))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MPEGURL));
    if let Ok(v) = HeaderValue::from_str(&r.etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&r.cache_control) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

pub async fn flow_playlist(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = path_id("flowId", &raw_id)?;
    let q = Query::parse(raw.as_deref());
    let span = q.span()?;
    let msn = q.int("_HLS_msn")?;
    let r = st.hls.flow_playlist(id, span, msn).await?;
    Ok(answer(&r, &headers))
}

pub async fn source_playlist(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = path_id("sourceId", &raw_id)?;
    let q = Query::parse(raw.as_deref());
    // Validate the span here (a bad one is the caller's error, not each variant's), then
    // hand the same span on to every media playlist.
    q.span()?;
    let pass = {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for name in ["timerange", "start", "end"] {
            if let Some(v) = q.get(name) {
                s.append_pair(name, v);
            }
        }
        s.finish()
    };
    let r = st.hls.source_playlist(id, &pass).await?;
    Ok(answer(&r, &headers))
}
