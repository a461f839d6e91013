//! The web UI: `/` answers browsers (Accept: text/html) with the page and API clients with
//! the TAMS root; `/ui/*` serves the embedded assets (ui/src and the hls.js vendored from
//! its pinned npm package), so drey needs no network or files at run time; and
//! `/ui/config.json` tells the page how to publish to this server; `/flows/{id}/timeline`
//! gives its timeline the content runs of a span at a given resolution.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use drey_core::TimeRange;

use super::error::{ApiError, ApiResult};
use super::media::etag_matches;
use super::query::{Query, path_id};
use super::state::AppState;
use crate::storage::index::SegmentQuery;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../../../ui/src/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../ui/src/app.js"),
    },
    Asset {
        path: "sign.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../ui/src/sign.js"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../../ui/src/app.css"),
    },
    Asset {
        path: "vendor/hls.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../ui/vendor/hls.min.js"),
    },
    Asset {
        path: "vendor/hls.js.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../../../ui/vendor/hls.js.LICENSE"),
    },
];

/// Strong ETags of the assets, computed once.
fn etags() -> &'static Vec<String> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::hash::{DefaultHasher, Hash, Hasher};
                let mut h = DefaultHasher::new();
                a.body.hash(&mut h);
                format!("\"{:016x}\"", h.finish())
            })
            .collect()
    })
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let a = &ASSETS[i];
    let etag = &etags()[i];
    let mut resp = if etag_matches(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = a.body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(a.content_type),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load (cheap: 304), so an upgraded drey is picked up at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Whether the client prefers HTML (a browser navigating) to JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let html = accept.find("text/html");
    let json = accept.find("application/json");
    match (html, json) {
        (Some(h), Some(j)) => h < j,
        (Some(_), None) => true,
        _ => false,
    }
}

/// `GET /`: the page for browsers, the TAMS root (the API's top-level paths) for others.
pub async fn root(headers: HeaderMap) -> Response {
    if wants_html(&headers) {
        return serve(0, &headers);
    }
    Json([
        "service",
        "flows",
        "sources",
        "objects",
        "flow-delete-requests",
    ])
    .into_response()
}

/// `GET /ui/{*path}`: an embedded asset.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let i = ASSETS
        .iter()
        .position(|a| a.path == path)
        .ok_or_else(|| ApiError::NotFound(format!("no UI asset {path:?}")))?;
    Ok(serve(i, &headers))
}

/// `GET /ui/config.json`: what the page needs to know about this server.
pub async fn config(State(st): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "rtmp_url": st.rtmp_url.as_deref(),
        "auth": st.rtmp_tokens_required,
        "anonymous": st.cfg.anonymous.as_str(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Segments scanned at most for one timeline (some 23 days of 2 s segments).
const TIMELINE_MAX_SEGMENTS: usize = 1_000_000;

/// `GET /flows/{id}/timeline?timerange=..&resolution=SECONDS`: the flow's content in the
/// span as runs of contiguous segments, holes shorter than `resolution` (say, one pixel of
/// the UI's timeline) closed up, so a day of 2 s segments is a handful of runs and every
/// gap that would show is there. A drey extension, not TAMS.
pub async fn timeline(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<serde_json::Value>> {
    let id = path_id("flowId", &raw_id)?;
    let q = Query::parse(raw.as_deref());
    let range = q.timerange("timerange")?.unwrap_or(TimeRange::ETERNITY);
    let resolution_ns = match q.get("resolution") {
        None => 0,
        Some(v) => match v.parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=1e9).contains(&s) => (s * 1e9) as i64,
            _ => {
                return Err(ApiError::bad(
                    "resolution",
                    format!("{v:?} is not a number of seconds between 0 and 1e9"),
                ));
            }
        },
    };
    if st.index.get_flow(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("flow {id} does not exist")));
    }
    const PAGE: usize = 5000;
    let mut runs: Vec<(i64, i64)> = Vec::new();
    let mut after = None;
    let mut segments = 0usize;
    let mut truncated = false;
    loop {
        let rows = st
            .index
            .list_segments(
                id,
                &SegmentQuery {
                    range,
                    object_id: None,
                    reverse: false,
                    after_start_ns: after,
                    limit: PAGE,
                },
            )
            .await?;
        for r in &rows {
            match runs.last_mut() {
                Some(last) if r.start_ns - last.1 <= resolution_ns => last.1 = last.1.max(r.end_ns),
                _ => runs.push((r.start_ns, r.end_ns)),
            }
        }
        segments += rows.len();
        match rows.last() {
            Some(last) if rows.len() == PAGE => after = Some(last.start_ns),
            _ => break,
        }
        if segments >= TIMELINE_MAX_SEGMENTS {
            truncated = true;
            break;
        }
    }
    Ok(Json(serde_json::json!({
        "runs": runs
            .iter()
            .map(|&(a, b)| TimeRange::from_nanos(a, b).to_string())
            .collect::<Vec<_>>(),
        "segments": segments,
        "truncated": truncated,
    })))
}
