//! `/service/webhooks` and `/service/webhooks/{id}`: register, list, show, change and
//! delete TAMS webhooks (administrators only: a webhook sees every event it asks for).
//! Delivery is `crate::webhooks::deliver`'s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drey_core::Id;

use super::error::{ApiError, ApiResult};
use super::paging::offset_page;
use super::query::{Query, json_body, page_offset, path_id};
use super::state::AppState;
use crate::webhooks::{Webhook, WebhookBody};

fn body_error(e: crate::webhooks::Invalid) -> ApiError {
    ApiError::bad(e.field, e.message)
}

pub async fn list(
    State(st): State<AppState>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    // The spec gives this list no 400: a paging parameter drey cannot use is ignored
    // (the first page, the default limit) rather than refused.
    let tags = q.tag_filter("tag")?;
    let reverse = q.bool("reverse_order").ok().flatten().unwrap_or(false);
    let limit = q
        .limit(st.cfg.default_page_limit, st.cfg.max_page_limit)
        .unwrap_or(st.cfg.default_page_limit);
    let offset = page_offset(&q).unwrap_or(0);
    let mut all: Vec<Webhook> = st
        .webhooks
        .list()
        .await
        .map_err(|e| ApiError::Unavailable(format!("webhooks: {e}")))?;
    all.retain(|h| tags.matches(h.tags.as_ref()));
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

pub async fn create(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let b: WebhookBody = json_body(&body)?;
    if b.id.is_some() {
        return Err(ApiError::bad(
            "id",
            "drey assigns webhook ids; leave id out",
        ));
    }
    let hook = b
        .into_webhook(Id::new_v4(), &st.webhooks.cfg.allow)
        .map_err(body_error)?;
    st.webhooks
        .put(&hook)
        .await
        .map_err(|e| ApiError::Unavailable(format!("webhooks: {e}")))?;
    tracing::info!(webhook = %hook.id, url = %hook.url, events = ?hook.events, "webhook registered");
    Ok((StatusCode::CREATED, Json(hook)).into_response())
}

async fn find(st: &AppState, raw: &str) -> ApiResult<Webhook> {
    let id = path_id("webhookId", raw)?;
    st.webhooks
        .get(id)
        .await
        .map_err(|e| ApiError::Unavailable(format!("webhooks: {e}")))?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook {id}")))
}

pub async fn get_one(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(find(&st, &id).await?).into_response())
}

pub async fn put(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let old = find(&st, &raw).await?;
    let b: WebhookBody = json_body(&body)?;
    match b.id {
        Some(id) if id != old.id => {
            return Err(ApiError::bad(
                "id",
                "the id in the body differs from the path's",
            ));
        }
        None => return Err(ApiError::bad("id", "the body must carry the webhook's id")),
        _ => {}
    }
    if old.status == "error" && b.status.as_deref() == Some("disabled") {
        return Err(ApiError::bad(
            "status",
            "a webhook in error goes back to created, not to disabled",
        ));
    }
    let keep_secret = b.api_key_value.is_none() && b.api_key_name == old.api_key_name;
    let mut hook = b
        .into_webhook(old.id, &st.webhooks.cfg.allow)
        .map_err(body_error)?;
    if keep_secret {
        hook.api_key_value = old.api_key_value;
    }
    // Delivery already began: it stays `started` unless disabled.
    if hook.status == "created" && old.status == "started" {
        hook.status = "started".to_owned();
    }
    st.webhooks
        .put(&hook)
        .await
        .map_err(|e| ApiError::Unavailable(format!("webhooks: {e}")))?;
    Ok((StatusCode::CREATED, Json(hook)).into_response())
}

pub async fn delete(State(st): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let hook = find(&st, &raw).await?;
    st.webhooks
        .delete(hook.id)
        .await
        .map_err(|e| ApiError::Unavailable(format!("webhooks: {e}")))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
