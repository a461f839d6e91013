//! Packaging: turning indexed segments into what players and tools read. `hls` writes
//! playlists from the index on request (nothing is written to the object store); `export`
//! plans and streams one TS file for a span, `mp4` one progressive MP4, and `prepare` keeps
//! the MP4 sample tables of segments TAMS clients register. Segments themselves are served
//! as stored.

pub mod export;
pub mod hls;
pub mod mp4;
pub mod prepare;

use drey_core::{Id, TimeRange};

use crate::storage::index::{Index, IndexError, SegmentQuery, SegmentRow};
use crate::storage::objects::ObjectError;

/// Why a playlist or an export cannot be made; the HTTP layer maps each to one status.
#[derive(Debug, thiserror::Error)]
pub enum PackagingError {
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    Bad {
        field: &'static str,
        message: String,
    },
    /// The flow's container, codec or format cannot be given in the requested form.
    #[error("{field}: {message}")]
    Unsupported {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
}

/// The segments of `flow` overlapping `range`, in time order, at most `max`: more is a 400
/// naming `timerange`; none is a 404 that says where the flow's content is.
pub async fn span_segments(
    index: &dyn Index,
    flow: Id,
    range: TimeRange,
    max: usize,
    what: &str,
) -> Result<Vec<SegmentRow>, PackagingError> {
    let rows = index
        .list_segments(
            flow,
            &SegmentQuery {
                range,
                object_id: None,
                reverse: false,
                after_start_ns: None,
                limit: max.saturating_add(1),
            },
        )
        .await?;
    if rows.len() > max {
        return Err(PackagingError::Bad {
            field: "timerange",
            message: format!(
                "the span holds more than {max} segments, more than one {what} may hold; ask for a shorter timerange"
            ),
        });
    }
    if rows.is_empty() {
        let content = index.flow_timerange(flow, &TimeRange::ETERNITY).await?;
        return Err(PackagingError::NotFound(
            if content.is_empty() || range == TimeRange::ETERNITY {
                format!("flow {flow} has no segments yet")
            } else {
                format!(
                    "flow {flow} has no segments in timerange {range}; its content spans {content}"
                )
            },
        ));
    }
    Ok(rows)
}
