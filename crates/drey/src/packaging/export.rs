//! Export of a span of a flow as one file: planned from the index rows (so the length,
//! ETag and byte layout are known before the first byte), then streamed by fetching the
//! segment objects in parallel with bounded read-ahead, in order. A byte range of the file
//! maps onto ranges of the objects it covers.
//!
//! The file is the segments' bytes back to back: an MPEG-TS flow's segments, or an
//! uncompressed flow's grains (raw frames, raw PCM samples; for PCM also a WAV file, the
//! samples behind a WAV header). drey's own TS segments (and those of
//! encoders that number continuity counters across segments, as ffmpeg's HLS muxer does)
//! concatenate into a valid stream within one publish. Where the span has a gap, or a new
//! `ts_offset` (a new publish: timestamps restart), the file carries a discontinuity; both
//! are reported in response headers.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use drey_core::media::pcm::{PcmFormat, PcmLayout, wav_header};
use drey_core::model::{Flow, FlowEssence};
use drey_core::{Id, TimeRange};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use super::{PackagingError, span_segments};
use crate::storage::index::{Index, ObjectState};
use crate::storage::objects::{ObjectError, Objects};

/// Version of the byte layout, part of the ETag: a change of layout changes every ETag.
const LAYOUT: &str = "ts1";

/// One segment's object in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub object_id: String,
    pub size: u64,
    /// Offset of its first byte in the file.
    pub offset: u64,
}

/// What kind of file an export makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An MPEG-TS flow's segments.
    Ts,
    /// An uncompressed flow's grains (video frames or PCM samples).
    Raw,
    /// A PCM flow's samples behind a WAV header.
    Wav,
}

impl Kind {
    /// `ts`, `raw` or `wav` (the `format` of a download).
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "ts" => Some(Kind::Ts),
            "raw" => Some(Kind::Raw),
            "wav" => Some(Kind::Wav),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Ts => "video/mp2t",
            Kind::Raw => "application/octet-stream",
            Kind::Wav => "audio/wav",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Ts => "ts",
            Kind::Raw => "raw",
            Kind::Wav => "wav",
        }
    }
}

/// Whether a flow holds uncompressed grains (video/raw, or interleaved PCM).
pub fn is_uncompressed(flow: &Flow) -> bool {
    let codec = flow.codec.as_ref().map(|c| c.as_str());
    codec == Some("video/raw") || pcm_layout(flow).is_some()
}

/// A PCM flow's sample format (the grain length does not matter to an export).
pub fn pcm_layout(flow: &Flow) -> Option<PcmLayout> {
    let FlowEssence::Audio { essence_parameters } = &flow.essence else {
        return None;
    };
    let format = PcmFormat::from_essence(flow.codec.as_ref()?.as_str(), essence_parameters)?;
    PcmLayout::new(
        format,
        essence_parameters.sample_rate,
        essence_parameters.channels,
        1,
    )
    .ok()
}

/// What a span's file will hold.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    /// Bytes before the first part (a WAV header).
    pub prefix: Bytes,
    pub parts: Vec<Part>,
    pub len: u64,
    pub etag: String,
    /// The time the file covers: whole segments, so it may start before and end after the
    /// span asked for.
    pub covers: TimeRange,
    /// Holes in the span where the flow has no segment (skipped in the file).
    pub gaps: Vec<TimeRange>,
    /// Flow times where the media timeline restarts (a new `ts_offset`: a new publish).
    pub discontinuities: Vec<i64>,
}

/// Plans the export of `span` of `flow` (whole segments overlapping it) as a file of
/// `kind`.
pub async fn plan(
    index: &dyn Index,
    flow: &Flow,
    span: TimeRange,
    max_segments: usize,
    kind: Kind,
) -> Result<Plan, PackagingError> {
    let codec = flow.codec.as_ref().map(|c| c.as_str());
    let pcm = pcm_layout(flow);
    let uncompressed = codec == Some("video/raw") || pcm.is_some();
    match kind {
        Kind::Raw if !uncompressed => {
            return Err(PackagingError::Unsupported {
                field: "format",
                message: format!(
                    "raw export concatenates uncompressed grains (codec video/raw, audio/x-raw-int or audio/x-raw-float, interleaved); this flow's codec is {}",
                    codec.unwrap_or("not set")
                ),
            });
        }
        Kind::Wav if pcm.is_none() => {
            return Err(PackagingError::Unsupported {
                field: "format",
                message: format!(
                    "WAV export is for PCM audio flows (audio/x-raw-int or audio/x-raw-float, interleaved); this flow's codec is {}",
                    codec.unwrap_or("not set")
                ),
            });
        }
        Kind::Raw | Kind::Wav => {}
        Kind::Ts if uncompressed => {
            return Err(PackagingError::Unsupported {
                field: "format",
                message: "this flow holds uncompressed grains: export it with format=raw (or wav for PCM audio)".into(),
            });
        }
        Kind::Ts => {
            let container = flow.container.as_ref().map(|c| c.as_str());
            if container != Some("video/mp2t") {
                return Err(PackagingError::Unsupported {
                    field: "container",
                    message: format!(
                        "TS export concatenates MPEG-TS segments (video/mp2t); this flow's container is {}",
                        container.unwrap_or("not set")
                    ),
                });
            }
        }
    }
    let rows = span_segments(index, flow.id, span, max_segments, "export").await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(PackagingError::NotFound(format!(
            "flow {} has no segments",
            flow.id
        )));
    };
    let covers = TimeRange::from_nanos(first.start_ns, last.end_ns);
    let mut ids: Vec<String> = rows.iter().map(|r| r.object_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut sizes = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        for o in index.get_objects(chunk).await? {
            if o.controlled && o.state == ObjectState::Stored {
                sizes.insert(o.id, o.size);
            }
        }
    }
    let mut parts = Vec::with_capacity(rows.len());
    let mut offset = 0u64;
    let mut prefix = Bytes::new();
    let mut gaps = Vec::new();
    let mut discontinuities = Vec::new();
    let mut h = DefaultHasher::new();
    LAYOUT.hash(&mut h);
    for (i, r) in rows.iter().enumerate() {
        let size = match sizes.get(&r.object_id) {
            Some(Some(n)) => u64::try_from(*n).unwrap_or(0),
            _ => {
                return Err(PackagingError::Unsupported {
                    field: "object_id",
                    message: format!(
                        "segment object {:?} is not in drey's object store (or has no size); export reads drey's store only",
                        r.object_id
                    ),
                });
            }
        };
        if let Some(prev) = i.checked_sub(1).map(|j| &rows[j]) {
            if prev.end_ns < r.start_ns {
                gaps.push(TimeRange::from_nanos(prev.end_ns, r.start_ns));
            }
            if prev.ts_offset_ns != r.ts_offset_ns {
                discontinuities.push(r.start_ns);
            }
        }
        (&r.object_id, size).hash(&mut h);
        parts.push(Part {
            object_id: r.object_id.clone(),
            size,
            offset,
        });
        offset += size;
    }
    if kind == Kind::Wav
        && let Some(layout) = pcm
    {
        let header = wav_header(&layout, offset).ok_or_else(|| PackagingError::Unsupported {
            field: "format",
            message: format!(
                "{offset} bytes of samples do not fit a WAV file (4 GiB at most): export a shorter span, or format=raw"
            ),
        })?;
        prefix = Bytes::from(header);
        let shift = prefix.len() as u64;
        for p in &mut parts {
            p.offset += shift;
        }
        offset += shift;
        prefix.len().hash(&mut h);
        "wav".hash(&mut h);
    }
    Ok(Plan {
        kind,
        prefix,
        parts,
        len: offset,
        etag: format!("\"{:016x}\"", h.finish()),
        covers,
        gaps,
        discontinuities,
    })
}

/// The pieces of objects that make up `range` of the file: (object id, range in it).
pub fn pieces(plan: &Plan, range: Range<u64>) -> Vec<(String, Range<u64>)> {
    sized_pieces(plan, range)
        .into_iter()
        .map(|(id, r, _)| (id, r))
        .collect()
}

/// [`pieces`], each with its object's size (a piece that is a whole object is fetched
/// with a plain GET: some stores serve ranged reads slower).
fn sized_pieces(plan: &Plan, range: Range<u64>) -> Vec<(String, Range<u64>, u64)> {
    // Parts are in offset order: find the first one that ends after range.start.
    let start = plan
        .parts
        .partition_point(|p| p.offset + p.size <= range.start);
    plan.parts[start..]
        .iter()
        .take_while(|p| p.offset < range.end)
        .filter(|p| p.size > 0)
        .map(|p| {
            let a = range.start.max(p.offset) - p.offset;
            let b = range.end.min(p.offset + p.size) - p.offset;
            (p.object_id.clone(), a..b, p.size)
        })
        .collect()
}

/// `range` of the planned file as a stream: objects fetched `read_ahead` at a time, in
/// order, each piece whole in memory at most (so memory stays at read_ahead pieces,
/// whatever the span). A failed or short read ends the stream
/// with an error, which the HTTP layer turns into a cut connection (the client sees fewer
/// bytes than Content-Length, never wrong ones).
pub fn stream(
    objects: Arc<Objects>,
    plan: &Plan,
    range: Range<u64>,
    read_ahead: usize,
) -> BoxStream<'static, Result<Bytes, ObjectError>> {
    let head = plan.prefix.len() as u64;
    let prefix = (range.start < head).then(|| {
        let b = plan
            .prefix
            .slice(range.start as usize..range.end.min(head) as usize);
        futures::stream::iter([Ok::<_, ObjectError>(b)])
    });
    let objects_part = objects
        .clone()
        .fetch_in_order(
            futures::stream::iter(sized_pieces(plan, range)),
            read_ahead,
            move |(id, r, size): (String, Range<u64>, u64)| {
                let objects = objects.clone();
                async move {
                    let want = r.end - r.start;
                    let chunks: Vec<Bytes> = if r.start == 0 && r.end == size {
                        // One contiguous buffer (sized from Content-Length by the store client;
                        // passing S3's chunks on as they came ran 5-10% slower than this copy).
                        vec![objects.get_bytes(&id).await?]
                    } else {
                        objects.get(&id, Some(r)).await?.body.try_collect().await?
                    };
                    let got: u64 = chunks.iter().map(|c| c.len() as u64).sum();
                    if got != want {
                        return Err(ObjectError::Body(format!(
                            "object {id:?} gave {got} bytes where {want} were planned"
                        )));
                    }
                    Ok(futures::stream::iter(chunks.into_iter().map(Ok)))
                }
            },
            ObjectError::Body,
        )
        .try_flatten();
    match prefix {
        Some(p) => p.chain(objects_part).boxed(),
        None => objects_part.boxed(),
    }
}

/// The id part of a download's file name.
pub fn file_name(flow: Id, covers: &TimeRange, ext: &str) -> String {
    let start = covers
        .start_nanos()
        .map(|ns| {
            drey_core::time::format_utc_compact(drey_core::Timestamp::from_nanos(ns).to_utc())
        })
        .unwrap_or_default();
    format!("{flow}-{start}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(sizes: &[u64]) -> Plan {
        let mut offset = 0;
        let parts = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let p = Part {
                    object_id: format!("o{i}"),
                    size,
                    offset,
                };
                offset += size;
                p
            })
            .collect();
        Plan {
            kind: Kind::Ts,
            prefix: Bytes::new(),
            parts,
            len: offset,
            etag: String::new(),
            covers: TimeRange::ETERNITY,
            gaps: Vec::new(),
            discontinuities: Vec::new(),
        }
    }

    #[test]
    fn ranges_map_onto_objects() {
        let p = plan_of(&[10, 0, 5, 20]);
        assert_eq!(
            pieces(&p, 0..35),
            vec![
                ("o0".into(), 0..10),
                ("o2".into(), 0..5),
                ("o3".into(), 0..20)
            ]
        );
        assert_eq!(
            pieces(&p, 8..12),
            vec![("o0".into(), 8..10), ("o2".into(), 0..2)]
        );
        assert_eq!(pieces(&p, 15..16), vec![("o3".into(), 0..1)]);
        assert_eq!(pieces(&p, 34..35), vec![("o3".into(), 19..20)]);
        // Every byte of every range is covered exactly once, in order.
        for a in 0..35u64 {
            for b in a + 1..=35 {
                let total: u64 = pieces(&p, a..b).iter().map(|(_, r)| r.end - r.start).sum();
                assert_eq!(total, b - a, "{a}..{b}");
            }
        }
    }
}
