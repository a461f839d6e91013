//! Flow Segments (`flow-segment.json`, `flow-segment-post.json`): a time range of a Flow
//! mapped onto one object, with the optional timing adjustments TAMS defines.

use serde::{Deserialize, Serialize};

use super::common::ValidationError;
use super::object::GetUrl;
use crate::id::validate_object_id;
use crate::time::Timestamp;
use crate::timerange::TimeRange;

/// A segment as a client registers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentPost {
    pub object_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_offset: Option<Timestamp>,
    pub timerange: TimeRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_timerange: Option<TimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_urls: Option<Vec<ExternalUrl>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frame_count: Option<i64>,
}

/// A client-provided URL for an object held outside drey's storage (uncontrolled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalUrl {
    pub url: String,
    pub label: String,
}

impl SegmentPost {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_object_id(&self.object_id)
            .map_err(|e| ValidationError::new("object_id", e.to_string()))?;
        if let Some(init) = &self.init_object_id {
            validate_object_id(init)
                .map_err(|e| ValidationError::new("init_object_id", e.to_string()))?;
            if init == &self.object_id {
                return Err(ValidationError::new(
                    "init_object_id",
                    "must differ from object_id",
                ));
            }
        }
        if !self.timerange.is_bounded() {
            return Err(ValidationError::new(
                "timerange",
                format!(
                    "{} must have a start and an end and be non-empty",
                    self.timerange
                ),
            ));
        }
        if let Some(otr) = &self.object_timerange
            && !otr.is_bounded()
        {
            return Err(ValidationError::new(
                "object_timerange",
                format!("{otr} must have a start and an end and be non-empty"),
            ));
        }
        if let Some(kfc) = self.key_frame_count
            && kfc < 0
        {
            return Err(ValidationError::new(
                "key_frame_count",
                "must not be negative",
            ));
        }
        if let Some(urls) = &self.get_urls {
            if urls.len() > 16 {
                return Err(ValidationError::new("get_urls", "at most 16 URLs"));
            }
            for (i, u) in urls.iter().enumerate() {
                let ok = u.url.len() <= 4096
                    && (u.url.starts_with("http://") || u.url.starts_with("https://"));
                if !ok {
                    return Err(ValidationError::new(
                        format!("get_urls[{i}].url"),
                        "must be an http(s) URL of at most 4096 bytes",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A segment as returned by `GET /flows/{id}/segments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub object_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_offset: Option<Timestamp>,
    pub timerange: TimeRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_timerange: Option<TimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frame_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_urls: Option<Vec<GetUrl>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_object: Option<SegmentInitObject>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentInitObject {
    pub object_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get_urls: Option<Vec<GetUrl>>,
}

/// One entry of the `failed_segments` list of a partial-success POST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedSegment {
    pub object_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timerange: Option<TimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiErrorBody>,
}

/// The TAMS error body (`error.json`), with drey's `field` naming what to fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub summary: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
