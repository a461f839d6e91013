//! `/`, `/service`, `/service/storage-backends`, `/metrics` and `/openapi.json`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use drey_core::Timestamp;
use drey_core::model::{Service, ServicePost, validate_description, validate_label};

use super::error::{ApiError, ApiResult};
use super::paging::{Paging, paged};
use super::query::{Query, json_body};
use super::state::AppState;

const DEFAULT_DESCRIPTION: &str = "drey: a time-addressable store for live and recorded video.";

pub async fn get_service(State(st): State<AppState>) -> ApiResult<Json<Service>> {
    let name = st.index.get_meta("service.name").await?;
    let description = st.index.get_meta("service.description").await?;
    Ok(Json(Service {
        name: Some(name.unwrap_or_else(|| "drey".to_owned())),
        description: Some(description.unwrap_or_else(|| DEFAULT_DESCRIPTION.to_owned())),
        kind: "urn:x-tams:service.drey".to_owned(),
        api_version: "8.2".to_owned(),
        service_version: Some(format!("drey {}", env!("CARGO_PKG_VERSION"))),
        event_stream_mechanisms: Some(vec![drey_core::model::EventStreamMechanism {
            name: "webhooks".to_owned(),
            docs: Some("drey's docs/api.md, Webhooks".to_owned()),
        }]),
        min_object_timeout: Timestamp::from_secs(st.cfg.min_object_timeout.as_secs() as i64)
            .unwrap_or_default(),
        min_presigned_url_timeout: st
            .objects
            .can_presign()
            .then(|| Timestamp::from_secs(st.cfg.presign_ttl.as_secs() as i64).unwrap_or_default()),
    }))
}

pub async fn post_service(State(st): State<AppState>, body: Bytes) -> ApiResult<StatusCode> {
    let p: ServicePost = json_body(&body)?;
    if let Some(n) = &p.name {
        validate_label(n, "name")?;
        st.index.set_meta("service.name", n).await?;
    }
    if let Some(d) = &p.description {
        validate_description(d, "description")?;
        st.index.set_meta("service.description", d).await?;
    }
    Ok(StatusCode::OK)
}

pub async fn storage_backends(
    State(st): State<AppState>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let limit = q.limit(st.cfg.default_page_limit, st.cfg.max_page_limit)?;
    let tags = q.tag_filter("tag")?;
    let reverse = q.bool("reverse_order")?.unwrap_or(false);
    let b = st.objects.describe();
    let items: Vec<_> = std::iter::once(b)
        .filter(|b| tags.matches(b.tags.as_ref()))
        .collect();
    Ok(paged(
        &st.cfg.public_url,
        &uri,
        &items,
        Paging {
            limit,
            count: items.len(),
            reverse: Some(reverse),
            ..Default::default()
        },
    ))
}

pub async fn metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => ApiError::NotFound("metrics are disabled".to_owned()).into_response(),
    }
}

/// The OpenAPI document drey serves: the TAMS 8.2 spec it implements, bundled at build
/// time from `spec/` into one JSON document.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../../../spec/openapi.json"),
    )
        .into_response()
}
