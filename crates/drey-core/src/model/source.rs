//! The TAMS Source (`source.json`): a piece of content independent of encoding. Sources
//! are created implicitly by the first Flow that names them.

use serde::{Deserialize, Serialize};

use super::common::{CollectionItem, ContentFormat, Tags};
use crate::id::Id;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: Id,
    pub format: ContentFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_collection: Option<Vec<CollectionItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_by: Option<Vec<Id>>,
}
