//! `GET /flows/{flowId}/download?timerange=..&format=ts|mp4|raw|wav` (also `start`/`end`) and
//! `GET /sources/{sourceId}/download?..`: one file for any span, with Content-Length known
//! up front, HEAD, one byte range per request, and an ETag that stays the same for the
//! same segments. See `packaging::export` (TS) and `packaging::mp4` for what the files hold.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use drey_core::model::Flow;
use drey_core::{Id, TimeRange};
use futures::stream::BoxStream;

use super::error::{ApiError, ApiResult};
use super::media::{content_range, etag_matches, requested_range};
use super::query::{Query, path_id};
use super::state::AppState;
use crate::packaging::{export, mp4};
use crate::storage::objects::ObjectError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Mp4,
    /// The segments back to back (TS, raw, WAV).
    Joined(export::Kind),
}

fn format(q: &Query) -> ApiResult<Format> {
    match q.get("format").unwrap_or("ts") {
        "mp4" => Ok(Format::Mp4),
        other => export::Kind::from_name(other)
            .map(Format::Joined)
            .ok_or_else(|| {
                ApiError::bad("format", format!("{other:?} is not ts, mp4, raw or wav"))
            }),
    }
}

/// What the response says about the file, whichever format.
struct File {
    len: u64,
    etag: String,
    content_type: &'static str,
    name: String,
    covers: TimeRange,
    gaps: Vec<TimeRange>,
    discontinuities: Vec<i64>,
}

fn respond(
    headers: &HeaderMap,
    file: File,
    body: impl FnOnce(Range<u64>) -> BoxStream<'static, Result<Bytes, ObjectError>>,
) -> ApiResult<Response> {
    if etag_matches(headers, &file.etag) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&file.etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Ok(resp);
    }
    let requested = requested_range(headers, file.len)?;
    let range = requested.clone().unwrap_or(0..file.len);
    // The stream fetches nothing until polled: a HEAD costs only the plan.
    let mut resp = Response::new(Body::from_stream(body(range.clone())));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
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
    set("etag", file.etag.clone());
    set(
        "content-disposition",
        format!("attachment; filename=\"{}\"", file.name),
    );
    set("drey-timerange", file.covers.to_string());
    if !file.gaps.is_empty() {
        let gaps: Vec<String> = file.gaps.iter().map(ToString::to_string).collect();
        set("drey-gaps", gaps.join(","));
    }
    if !file.discontinuities.is_empty() {
        let at: Vec<String> = file
            .discontinuities
            .iter()
            .map(|ns| drey_core::Timestamp::from_nanos(*ns).to_string())
            .collect();
        set("drey-discontinuities", at.join(","));
    }
    if requested.is_some() {
        set("content-range", content_range(&range, file.len));
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(resp)
}

async fn joined(
    st: &AppState,
    headers: &HeaderMap,
    flow: &Flow,
    span: TimeRange,
    kind: export::Kind,
) -> ApiResult<Response> {
    let plan = export::plan(
        st.index.as_ref(),
        flow,
        span,
        st.cfg.export_max_segments,
        kind,
    )
    .await?;
    let file = File {
        len: plan.len,
        etag: plan.etag.clone(),
        content_type: kind.content_type(),
        name: export::file_name(flow.id, &plan.covers, kind.extension()),
        covers: plan.covers,
        gaps: plan.gaps.clone(),
        discontinuities: plan.discontinuities.clone(),
    };
    let objects = st.objects.clone();
    let read_ahead = st.cfg.export_read_ahead;
    respond(headers, file, move |r| {
        export::stream(objects, &plan, r, read_ahead)
    })
}

async fn mp4(
    st: &AppState,
    headers: &HeaderMap,
    name_id: Id,
    flows: &[Flow],
    span: TimeRange,
) -> ApiResult<Response> {
    let plan = mp4::plan(
        &st.mp4_tables,
        st.index.as_ref(),
        &st.objects,
        flows,
        span,
        st.cfg.export_max_segments,
        st.cfg.export_read_ahead,
    )
    .await?;
    let file = File {
        len: plan.len,
        etag: plan.etag.clone(),
        content_type: "video/mp4",
        name: export::file_name(name_id, &plan.covers, "mp4"),
        covers: plan.covers,
        gaps: plan.gaps.clone(),
        discontinuities: Vec::new(),
    };
    let (tables, objects) = (st.mp4_tables.clone(), st.objects.clone());
    let read_ahead = st.cfg.export_read_ahead;
    respond(headers, file, move |r| {
        mp4::stream(tables, objects, &plan, r, read_ahead)
    })
}

pub async fn download(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = path_id("flowId", &raw_id)?;
    let q = Query::parse(raw.as_deref());
    let format = format(&q)?;
    let span = q.span()?.unwrap_or(TimeRange::ETERNITY);
    let flow = st
        .index
        .get_flow(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("flow {id} does not exist")))?
        .value;
    match format {
        Format::Joined(kind) => joined(&st, &headers, &flow, span, kind).await,
        Format::Mp4 => mp4(&st, &headers, id, std::slice::from_ref(&flow), span).await,
    }
}

/// A source's flows as one file: its multiplexed flow, or its video and audio flows
/// combined (MP4 only).
pub async fn source_download(
    State(st): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = path_id("sourceId", &raw_id)?;
    let q = Query::parse(raw.as_deref());
    let format = format(&q)?;
    let span = q.span()?.unwrap_or(TimeRange::ETERNITY);
    let flows = mp4::source_flows(st.index.as_ref(), id).await?;
    match (format, flows.as_slice()) {
        (Format::Mp4, _) => mp4(&st, &headers, id, &flows, span).await,
        (Format::Joined(kind), [one]) => joined(&st, &headers, one, span, kind).await,
        (Format::Joined(_), _) => Err(ApiError::Unsupported {
            field: "format".to_owned(),
            message: format!(
                "source {id} has separate video and audio flows; TS export concatenates one flow's segments, format=mp4 combines them"
            ),
        }),
    }
}
