//! API errors and their one mapping to HTTP: every 4xx carries a TAMS error body
//! (`type`, `summary`, `time`) plus `field`, naming what to fix; 5xx bodies say nothing
//! internal (the cause is logged).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use drey_core::model::{ApiErrorBody, ValidationError};

use crate::storage::index::IndexError;
use crate::storage::objects::ObjectError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The resource exists but cannot be given in the requested form (415).
    #[error("{message}")]
    Unsupported { field: String, message: String },
    #[error("range not satisfiable")]
    RangeNotSatisfiable { len: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Unsupported { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ApiErrorBody {
        let (kind, summary, field) = match self {
            ApiError::BadRequest { field, message } => (
                "BadRequest",
                match field {
                    Some(f) => format!("{f}: {message}"),
                    None => message.clone(),
                },
                field.clone(),
            ),
            ApiError::NotFound(m) => ("NotFound", m.clone(), None),
            ApiError::Forbidden(m) => ("Forbidden", m.clone(), None),
            ApiError::Conflict(m) => ("Conflict", m.clone(), None),
            ApiError::TooLarge { .. } => ("PayloadTooLarge", self.to_string(), None),
            ApiError::RangeNotSatisfiable { .. } => ("RangeNotSatisfiable", self.to_string(), None),
            ApiError::Unsupported { field, message } => (
                "UnsupportedMediaType",
                format!("{field}: {message}"),
                Some(field.clone()),
            ),
            ApiError::Unavailable(m) => ("ServiceUnavailable", m.clone(), None),
            ApiError::Internal(_) => (
                "InternalError",
                "internal error; see the server log".to_owned(),
                None,
            ),
        };
        ApiErrorBody {
            kind: kind.to_owned(),
            summary,
            time: drey_core::time::format_utc(time::OffsetDateTime::now_utc()),
            traceback: None,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = (status, Json(self.body())).into_response();
        if let ApiError::RangeNotSatisfiable { len } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}"))
        {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        resp
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::FlowNotFound(id) => ApiError::NotFound(format!("flow {id} does not exist")),
            IndexError::ObjectExists(id) => {
                ApiError::bad("object_ids", format!("object id {id:?} already exists"))
            }
            IndexError::Database(sqlx::Error::PoolTimedOut) => {
                ApiError::Unavailable("the index database is busy or unreachable; retry".to_owned())
            }
            IndexError::Database(sqlx::Error::Io(_)) => {
                ApiError::Unavailable("the index database is unreachable; retry".to_owned())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ObjectError> for ApiError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotFound(id) => {
                ApiError::NotFound(format!("object {id:?} has no bytes in the object store"))
            }
            ObjectError::TooLarge { limit } => ApiError::TooLarge { limit },
            ObjectError::Body(m) => ApiError::bad("body", m),
            other => ApiError::Unavailable(format!("object store: {other}")),
        }
    }
}

impl From<crate::packaging::PackagingError> for ApiError {
    fn from(e: crate::packaging::PackagingError) -> Self {
        use crate::packaging::PackagingError as P;
        match e {
            P::NotFound(m) => ApiError::NotFound(m),
            P::Bad { field, message } => ApiError::bad(field, message),
            P::Unsupported { field, message } => ApiError::Unsupported {
                field: field.to_owned(),
                message,
            },
            P::Index(e) => e.into(),
            P::Objects(e) => e.into(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::BadRequest {
            field: Some(e.field),
            message: e.message,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
