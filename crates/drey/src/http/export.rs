//! `GET /flows/{flowId}/download?timerange=..&format=ts` (also `start`/`end`): one file for
//! any span of an MPEG-TS flow, with Content-Length known up front, HEAD, one byte range
//! per request, and an ETag that stays the same for the same segments. See
//! `packaging::export` for what the file holds.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use drey_core::TimeRange;

use super::error::{ApiError, ApiResult};
use super::media::{content_range, etag_matches, requested_range};
use super::query::{Query, path_id};
use super::state::AppState;
use crate::packaging::export;

pub async fn download(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = path_id("flowId", &raw_id)?;
    let q = Query::parse(raw.as_deref());
    match q.get("format").unwrap_or("ts") {
        "ts" => {}
        "mp4" => {
            return Err(ApiError::Unsupported {
                field: "format".to_owned(),
                message: "MP4 export is not built yet; format=ts is".to_owned(),
            });
        }
        other => {
            return Err(ApiError::bad(
                "format",
                format!("{other:?} is not ts or mp4"),
            ));
        }
    }
    let span = q.span()?.unwrap_or(TimeRange::ETERNITY);
    let flow = st
        .index
        .get_flow(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("flow {id} does not exist")))?
        .value;
    let plan = export::plan(st.index.as_ref(), &flow, span, st.cfg.export_max_segments).await?;
    if etag_matches(&headers, &plan.etag) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&plan.etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Ok(resp);
    }
    let requested = requested_range(&headers, plan.len)?;
    let range = requested.clone().unwrap_or(0..plan.len);
    // The stream fetches nothing until polled: a HEAD costs only the plan.
    let body = export::stream(
        st.objects.clone(),
        &plan,
        range.clone(),
        st.cfg.export_read_ahead,
    );
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp2t"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set("etag", plan.etag.clone());
    set(
        "content-disposition",
        format!(
            "attachment; filename=\"{}\"",
            export::file_name(id, &plan.covers)
        ),
    );
    set("drey-timerange", plan.covers.to_string());
    if !plan.gaps.is_empty() {
        let gaps: Vec<String> = plan.gaps.iter().map(ToString::to_string).collect();
        set("drey-gaps", gaps.join(","));
    }
    if !plan.discontinuities.is_empty() {
        let at: Vec<String> = plan
            .discontinuities
            .iter()
            .map(|ns| drey_core::Timestamp::from_nanos(*ns).to_string())
            .collect();
        set("drey-discontinuities", at.join(","));
    }
    if requested.is_some() {
        set("content-range", content_range(&range, plan.len));
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(resp)
}
