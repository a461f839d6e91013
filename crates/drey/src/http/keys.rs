//! `/admin/keys`: the access keys as an API for administrators (a `*:admin` grant, or
//! anonymous `read-write` on loopback): list (no secrets), create (the secret is in the
//! 201 answer only), show, revoke. `drey keys` does the same against the index directly.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::query::json_body;
use super::state::AppState;
use crate::auth::{self, AccessKey, Grant};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    /// `SCOPE:ROLE` strings, as `drey keys create --grant`.
    grants: Vec<String>,
    #[serde(default)]
    label: Option<String>,
}

fn grant_text(g: &Grant) -> String {
    format!("{}:{}", g.scope, format!("{:?}", g.role).to_lowercase())
}

fn shown(k: &AccessKey) -> Value {
    json!({
        "access_key_id": k.id,
        "grants": k.grants.iter().map(grant_text).collect::<Vec<_>>(),
        "label": k.label,
        "created": k.created,
        "revoked": k.revoked,
    })
}

fn unavailable(e: anyhow::Error) -> ApiError {
    ApiError::Unavailable(format!("access keys: {e}"))
}

pub async fn list(State(st): State<AppState>) -> ApiResult<Response> {
    let keys = auth::list_keys(st.index.as_ref())
        .await
        .map_err(unavailable)?;
    Ok(Json(keys.iter().map(shown).collect::<Vec<_>>()).into_response())
}

pub async fn create(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let b: CreateKey = json_body(&body)?;
    if b.grants.is_empty() {
        return Err(ApiError::bad(
            "grants",
            "give at least one grant, e.g. \"*:read\"",
        ));
    }
    let grants = b
        .grants
        .iter()
        .map(|g| g.parse::<Grant>())
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| ApiError::bad("grants", e.to_string()))?;
    if let Some(l) = &b.label {
        drey_core::model::validate_label(l, "label")?;
    }
    let key = auth::create_key(st.index.as_ref(), grants, b.label)
        .await
        .map_err(unavailable)?;
    tracing::info!(key = %key.id, grants = ?key.grants.iter().map(grant_text).collect::<Vec<_>>(), "access key created through the API");
    let mut v = shown(&key);
    v["secret_access_key"] = json!(key.secret);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn find(st: &AppState, id: &str) -> ApiResult<AccessKey> {
    auth::list_keys(st.index.as_ref())
        .await
        .map_err(unavailable)?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no access key {id}")))
}

pub async fn get_one(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(shown(&find(&st, &id).await?)).into_response())
}

/// Revokes (the key stays listed as revoked, so its id is never reused).
pub async fn revoke(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let key = find(&st, &id).await?;
    auth::revoke_key(st.index.as_ref(), &key.id)
        .await
        .map_err(unavailable)?;
    st.keys.forget(&key.id);
    tracing::info!(key = %key.id, "access key revoked through the API");
    Ok(StatusCode::NO_CONTENT.into_response())
}
