//! The TAMS Flow: one encoding of a Source on its own timeline (`flow-get.json`,
//! `flow-put.json`), with the essence parameters of each format.

use serde::{Deserialize, Serialize};

use super::common::{
    CollectionItem, ContainerMapping, ContentFormat, MimeType, Tags, ValidationError, validate_tags,
};
use crate::id::Id;
use crate::rate::{Rational, StrictRatio};
use crate::timerange::TimeRange;

/// A Flow as stored and returned. Server-managed fields (`created`, `metadata_updated`,
/// `segments_updated`, `collected_by`, `timerange`) are set by drey, never taken from a PUT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    pub id: Id,
    pub source_id: Id,
    #[serde(flatten)]
    pub essence: FlowEssence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FlowStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bit_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_bit_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timerange: Option<TimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_collection: Option<Vec<CollectionItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_by: Option<Vec<Id>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<MimeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<MimeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_duration: Option<Rational>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_mapping: Option<ContainerMapping>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    AwaitingContent,
    Ingesting,
    ReplicationInProgress,
    ClosedComplete,
}

impl FlowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::AwaitingContent => "awaiting_content",
            FlowStatus::Ingesting => "ingesting",
            FlowStatus::ReplicationInProgress => "replication_in_progress",
            FlowStatus::ClosedComplete => "closed_complete",
        }
    }
}

/// The format of a Flow and its essence parameters, tagged by `format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format")]
pub enum FlowEssence {
    #[serde(rename = "urn:x-nmos:format:video")]
    Video { essence_parameters: VideoEssence },
    #[serde(rename = "urn:x-nmos:format:audio")]
    Audio { essence_parameters: AudioEssence },
    #[serde(rename = "urn:x-tam:format:image")]
    Image { essence_parameters: ImageEssence },
    #[serde(rename = "urn:x-nmos:format:data")]
    Data { essence_parameters: DataEssence },
    #[serde(rename = "urn:x-nmos:format:multi")]
    Multi {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        essence_parameters: Option<MultiEssence>,
    },
}

impl FlowEssence {
    pub fn format(&self) -> ContentFormat {
        match self {
            FlowEssence::Video { .. } => ContentFormat::Video,
            FlowEssence::Audio { .. } => ContentFormat::Audio,
            FlowEssence::Image { .. } => ContentFormat::Image,
            FlowEssence::Data { .. } => ContentFormat::Data,
            FlowEssence::Multi { .. } => ContentFormat::Multi,
        }
    }

    pub fn init_segments(&self) -> bool {
        match self {
            FlowEssence::Video { essence_parameters } => essence_parameters.init_segments,
            FlowEssence::Audio { essence_parameters } => essence_parameters.init_segments,
            FlowEssence::Image { .. } => None,
            FlowEssence::Data { essence_parameters } => essence_parameters.init_segments,
            FlowEssence::Multi { essence_parameters } => {
                essence_parameters.as_ref().and_then(|e| e.init_segments)
            }
        }
        .unwrap_or(false)
    }

    /// Frame size for video and image flows.
    pub fn frame_size(&self) -> Option<(u32, u32)> {
        match self {
            FlowEssence::Video {
                essence_parameters: e,
            } => Some((e.frame_width, e.frame_height)),
            FlowEssence::Image {
                essence_parameters: e,
            } => Some((e.frame_width, e.frame_height)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoEssence {
    pub frame_width: u32,
    pub frame_height: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interlace_mode: Option<InterlaceMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colorspace: Option<Colorspace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_characteristic: Option<TransferCharacteristic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<StrictRatio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_aspect_ratio: Option<StrictRatio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_type: Option<ComponentType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horiz_chroma_subs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vert_chroma_subs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unc_parameters: Option<VideoUncParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avc_parameters: Option<AvcParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<Rational>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vfr: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_segments: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterlaceMode {
    Progressive,
    InterlacedTff,
    InterlacedBff,
    InterlacedPsf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Colorspace {
    BT601,
    BT709,
    BT2020,
    BT2100,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferCharacteristic {
    SDR,
    HLG,
    PQ,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComponentType {
    YCbCr,
    RGB,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoUncParameters {
    pub unc_type: VideoUncType,
}

/// Uncompressed picture packings the spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoUncType {
    #[serde(rename = "planar")]
    Planar,
    YUYV,
    UYVY,
    AYUV,
    #[serde(rename = "v210")]
    V210,
    #[serde(rename = "v216")]
    V216,
    RGB,
    RGBx,
    #[serde(rename = "xRGB")]
    XRgb,
    BGRx,
    #[serde(rename = "xBGR")]
    XBgr,
    RGBA,
    ARGB,
    BGRA,
    ABGR,
    #[serde(rename = "alpha")]
    Alpha,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvcParameters {
    pub profile: i64,
    pub level: i64,
    pub flags: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioEssence {
    pub sample_rate: u32,
    pub channels: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec_parameters: Option<AudioCodecParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unc_parameters: Option<AudioUncParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_segments: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioCodecParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coded_frame_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mp4_oti: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioUncParameters {
    pub unc_type: AudioUncType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioUncType {
    Interleaved,
    Planar,
    Pairs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEssence {
    pub frame_width: u32,
    pub frame_height: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<StrictRatio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_aspect_ratio: Option<StrictRatio>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DataEssence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_segments: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MultiEssence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_segments: Option<bool>,
}

/// Longest label drey stores (labels are "very short" per the spec).
pub const MAX_LABEL_LEN: usize = 1024;
/// Longest description drey stores.
pub const MAX_DESCRIPTION_LEN: usize = 64 * 1024;

/// Rejects text no database can store (PostgreSQL refuses NUL in text columns).
pub fn validate_text(s: &str, field: &str) -> Result<(), ValidationError> {
    if s.contains('\0') {
        return Err(ValidationError::new(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

pub fn validate_label(label: &str, field: &str) -> Result<(), ValidationError> {
    validate_text(label, field)?;
    if label.len() > MAX_LABEL_LEN {
        return Err(ValidationError::new(
            field,
            format!("at most {MAX_LABEL_LEN} bytes"),
        ));
    }
    Ok(())
}

pub fn validate_description(d: &str, field: &str) -> Result<(), ValidationError> {
    validate_text(d, field)?;
    if d.len() > MAX_DESCRIPTION_LEN {
        return Err(ValidationError::new(
            field,
            format!("at most {MAX_DESCRIPTION_LEN} bytes"),
        ));
    }
    Ok(())
}

impl Flow {
    /// Rules of `flow-put.json` that serde cannot express.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.codec.is_none() && self.essence.format() != ContentFormat::Multi {
            return Err(ValidationError::new(
                "codec",
                "required for video, audio, image and data flows",
            ));
        }
        let positive = |v: u32, f: &str| {
            if v == 0 {
                Err(ValidationError::new(f, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        match &self.essence {
            FlowEssence::Video {
                essence_parameters: e,
            } => {
                positive(e.frame_width, "essence_parameters.frame_width")?;
                positive(e.frame_height, "essence_parameters.frame_height")?;
                for (v, f) in [
                    (e.bit_depth, "essence_parameters.bit_depth"),
                    (e.horiz_chroma_subs, "essence_parameters.horiz_chroma_subs"),
                    (e.vert_chroma_subs, "essence_parameters.vert_chroma_subs"),
                ] {
                    if let Some(v) = v {
                        positive(v, f)?;
                    }
                }
                match (e.vfr.unwrap_or(false), e.frame_rate.is_some()) {
                    (false, false) => {
                        return Err(ValidationError::new(
                            "essence_parameters.frame_rate",
                            "required unless vfr is true",
                        ));
                    }
                    (true, true) => {
                        return Err(ValidationError::new(
                            "essence_parameters.frame_rate",
                            "must not be set when vfr is true",
                        ));
                    }
                    _ => {}
                }
            }
            FlowEssence::Audio {
                essence_parameters: e,
            } => {
                positive(e.sample_rate, "essence_parameters.sample_rate")?;
                positive(e.channels, "essence_parameters.channels")?;
                if let Some(b) = e.bit_depth {
                    positive(b, "essence_parameters.bit_depth")?;
                }
            }
            FlowEssence::Image {
                essence_parameters: e,
            } => {
                positive(e.frame_width, "essence_parameters.frame_width")?;
                positive(e.frame_height, "essence_parameters.frame_height")?;
            }
            FlowEssence::Data { .. } | FlowEssence::Multi { .. } => {}
        }
        if let Some(l) = &self.label {
            validate_label(l, "label")?;
        }
        if let Some(d) = &self.description {
            validate_description(d, "description")?;
        }
        if let Some(t) = &self.tags {
            validate_tags(t, "tags")?;
        }
        if let Some(m) = &self.container_mapping {
            m.validate("container_mapping")?;
        }
        if let Some(items) = &self.flow_collection {
            if items.len() > 1024 {
                return Err(ValidationError::new(
                    "flow_collection",
                    "at most 1024 members",
                ));
            }
            for (i, item) in items.iter().enumerate() {
                if let Some(m) = &item.container_mapping {
                    m.validate(&format!("flow_collection[{i}].container_mapping"))?;
                }
            }
        }
        Ok(())
    }

    /// Clears the fields a client may not set; the store fills them in.
    pub fn clear_server_managed(&mut self) {
        self.created = None;
        self.metadata_updated = None;
        self.segments_updated = None;
        self.timerange = None;
        self.collected_by = None;
    }
}
