//! HLS endpoints: `GET /flows/{flowId}/playlist.m3u8` (live window, or `?timerange=` /
//! `?start=&end=` for time-shift and catch-up; `_HLS_msn` blocks for the next segment)
//! and `GET /sources/{sourceId}/playlist.m3u8` (multivariant). Playlists carry an ETag
//! (If-None-Match answers 304) and a short Cache-Control; segments are served by `/media`.
//! A request signed with an access key gets every URI in the playlist presigned with it.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiResult;
use super::media::etag_matches;
use super::query::{Query, path_id};
use super::state::AppState;
use crate::auth::Authed;
use crate::packaging::hls::Rendered;

const MPEGURL: &str = "application/vnd.apple.mpegurl";

/// True when the client takes gzip (`Accept-Encoding: gzip`, not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

fn answer(r: &Rendered, headers: &HeaderMap) -> Response {
    let (body, etag, gzip) = match &r.gzip {
        Some((gz, etag)) if accepts_gzip(headers) => (gz, etag, true),
        _ => (&r.body, &r.etag, false),
    };
    let mut resp = if etag_matches(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(body.clone()))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MPEGURL));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if r.gzip.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&r.cache_control) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

/// A playlist for a signed-in reader: every URI presigned with the reader's key, so a
/// player needs no headers; private, never cached or compressed.
fn signed_answer(r: &Rendered, authed: &Authed, path: &str, headers: &HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = String::from_utf8_lossy(&r.body);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = crate::auth::sign_playlist(&text, path, host, authed, now);
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MPEGURL));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

pub async fn flow_playlist(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
    authed: Option<Extension<Authed>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = path_id("flowId", &raw_id)?;
    let q = Query::parse(raw.as_deref());
    let span = q.span()?;
    let msn = q.int("_HLS_msn")?;
    let r = st.hls.flow_playlist(id, span, msn).await?;
    if let Some(Extension(a)) = authed {
        return Ok(signed_answer(
            &r,
            &a,
            &format!("/flows/{raw_id}/playlist.m3u8"),
            &headers,
        ));
    }
    Ok(answer(&r, &headers))
}

pub async fn source_playlist(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
    authed: Option<Extension<Authed>>,
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
    if let Some(Extension(a)) = authed {
        return Ok(signed_answer(
            &r,
            &a,
            &format!("/sources/{raw_id}/playlist.m3u8"),
            &headers,
        ));
    }
    Ok(answer(&r, &headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("deflate, gzip;q=0.5"));
        assert!(with("GZIP"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, deflate"));
        assert!(!with("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
