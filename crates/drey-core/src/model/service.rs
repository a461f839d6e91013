//! `/service`, `/service/storage-backends` and flow delete requests.

use serde::{Deserialize, Serialize};

use super::common::Tags;
use crate::id::Id;
use crate::time::Timestamp;
use crate::timerange::TimeRange;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub api_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_stream_mechanisms: Option<Vec<EventStreamMechanism>>,
    pub min_object_timeout: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_presigned_url_timeout: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventStreamMechanism {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
}

/// `POST /service` body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServicePost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageBackend {
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub store_type: String,
    pub provider: String,
    pub store_product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_storage: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionStatus {
    Created,
    Started,
    Done,
    Error,
}

impl DeletionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionStatus::Created => "created",
            DeletionStatus::Started => "started",
            DeletionStatus::Done => "done",
            DeletionStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Created, Self::Started, Self::Done, Self::Error]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionRequest {
    pub id: Id,
    pub flow_id: Id,
    pub timerange_to_delete: TimeRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timerange_remaining: Option<TimeRange>,
    pub delete_flow: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    pub status: DeletionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::ApiErrorBody>,
}
