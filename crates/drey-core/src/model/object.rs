//! Objects (`object.json`) and the URLs through which they are read and written
//! (`flow-storage.json`, `object-core.json`).

use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::timerange::TimeRange;

/// A URL from which an object can be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presigned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_product: Option<String>,
}

/// `GET /objects/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub id: String,
    pub referenced_by_flows: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_referenced_by_flow: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timerange: Option<TimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frame_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_urls: Option<Vec<GetUrl>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_object: Option<ObjectInitRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectInitRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_urls: Option<Vec<GetUrl>>,
}

/// `POST /flows/{id}/storage` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StoragePost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<super::MimeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presigned: Option<bool>,
}

/// `POST /flows/{id}/storage` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowStorage {
    pub media_objects: Vec<MediaObjectAllocation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaObjectAllocation {
    pub object_id: String,
    pub put_url: PutUrl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presigned: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutUrl {
    pub url: String,
    #[serde(
        rename = "content-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
}
