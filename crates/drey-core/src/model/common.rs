//! Shapes shared by several TAMS resources: tags, content formats, mime types, collection
//! items, and the validation error they all report.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::Id;

/// A request body that parsed as JSON but breaks a rule of the spec; `field` names the
/// offending property (dotted path) so the API can say exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A tag value: a string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TagValue {
    One(String),
    Many(Vec<String>),
}

impl TagValue {
    /// True when the value (or any element of a list) equals one of `wanted`.
    pub fn matches_any(&self, wanted: &[&str]) -> bool {
        match self {
            TagValue::One(v) => wanted.contains(&v.as_str()),
            TagValue::Many(vs) => vs.iter().any(|v| wanted.contains(&v.as_str())),
        }
    }
}

/// Free-form key/value tags.
pub type Tags = BTreeMap<String, TagValue>;

/// The content format URN of a Source or Flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ContentFormat {
    #[serde(rename = "urn:x-nmos:format:video")]
    Video,
    #[serde(rename = "urn:x-tam:format:image")]
    Image,
    #[serde(rename = "urn:x-nmos:format:audio")]
    Audio,
    #[serde(rename = "urn:x-nmos:format:data")]
    Data,
    #[serde(rename = "urn:x-nmos:format:multi")]
    Multi,
}

impl ContentFormat {
    pub const ALL: [ContentFormat; 5] = [
        ContentFormat::Video,
        ContentFormat::Image,
        ContentFormat::Audio,
        ContentFormat::Data,
        ContentFormat::Multi,
    ];

    pub fn urn(self) -> &'static str {
        match self {
            ContentFormat::Video => "urn:x-nmos:format:video",
            ContentFormat::Image => "urn:x-tam:format:image",
            ContentFormat::Audio => "urn:x-nmos:format:audio",
            ContentFormat::Data => "urn:x-nmos:format:data",
            ContentFormat::Multi => "urn:x-nmos:format:multi",
        }
    }

    pub fn from_urn(s: &str) -> Option<Self> {
        ContentFormat::ALL.into_iter().find(|f| f.urn() == s)
    }
}

impl fmt::Display for ContentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.urn())
    }
}

/// A MIME type such as `video/h264` or `video/mp2t`, checked against the spec's pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MimeType(String);

impl MimeType {
    pub fn parse(s: &str) -> Result<Self, String> {
        let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c);
        let (top, sub) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a MIME type (expected type/subtype)"))?;
        let top_ok = matches!(
            top,
            "application"
                | "audio"
                | "font"
                | "example"
                | "image"
                | "message"
                | "model"
                | "multipart"
                | "text"
                | "video"
        ) || top
            .strip_prefix("x-")
            .is_some_and(|t| !t.is_empty() && t.chars().all(tchar));
        if !top_ok || sub.is_empty() || !sub.chars().all(tchar) {
            return Err(format!("{s:?} is not a valid MIME type"));
        }
        Ok(MimeType(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MimeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MimeType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MimeType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        MimeType::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One member of a Source or Flow collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionItem {
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Where this member sits inside the collecting Flow's container (flow collections only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_mapping: Option<ContainerMapping>,
}

/// How a Flow is found inside a multiplexed container (`container-mapping.json`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_track_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_track: Option<AudioTrack>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mp2ts_container: Option<Mp2tsContainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mxf_container: Option<MxfContainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isobmff_container: Option<IsobmffContainer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AudioTrack {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_numbers: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_range: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mp2tsContainer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MxfContainer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IsobmffContainer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<i64>,
}

impl ContainerMapping {
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if let Some(AudioTrack {
            channel_numbers,
            channel_range,
        }) = &self.audio_track
        {
            if channel_numbers.as_ref().is_some_and(Vec::is_empty) {
                return Err(ValidationError::new(
                    format!("{field}.audio_track.channel_numbers"),
                    "must list at least one channel",
                ));
            }
            if let Some(r) = channel_range {
                let ok = r.split_once('_').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit())
                });
                if !ok {
                    return Err(ValidationError::new(
                        format!("{field}.audio_track.channel_range"),
                        "must be \"first_last\" (e.g. \"0_1\")",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks a tag name or value map for the limits drey applies (bounded sizes).
pub fn validate_tags(tags: &Tags, field: &str) -> Result<(), ValidationError> {
    if tags.len() > 256 {
        return Err(ValidationError::new(field, "at most 256 tags"));
    }
    for (name, value) in tags {
        let values: &[String] = match value {
            TagValue::One(v) => std::slice::from_ref(v),
            TagValue::Many(vs) => vs,
        };
        if name.contains('\0') || values.iter().any(|v| v.contains('\0')) {
            return Err(ValidationError::new(
                format!("{field}.{name}"),
                "must not contain NUL characters",
            ));
        }
    }
    Ok(())
}
