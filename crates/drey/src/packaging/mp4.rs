//! Export of a span as one progressive MP4: the segments' sample tables are read first
//! (MPEG-TS segments demuxed, fragmented MP4 segments read through their init object;
//! cached per object, since objects never change), `drey_core::media::mp4` plans the whole
//! file from them, so length, ETag and layout are known before the first byte; then the
//! segments are fetched in parallel with bounded read-ahead, in order, and their samples
//! streamed as the `mdat` chunks the plan placed (copied out of MPEG-TS packets; sliced,
//! uncopied, out of fragmented MP4 segments). A byte range maps onto the header and
//! the segments it covers.
//!
//! One multiplexed flow gives its video and audio tracks; a source's separate video and
//! audio flows give one track each (see [`source_flows`]).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use drey_core::media::MediaError;
use drey_core::media::mp4::{self, Movie, SegmentIn};
use drey_core::media::samples::{self, Init, Kind, Samples};
use drey_core::media::tables;
use drey_core::model::{Flow, FlowEssence};
use drey_core::{Id, TimeRange};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::{PackagingError, span_segments};
use crate::storage::buffers;
use crate::storage::index::{FlowQuery, Index, ObjectState, SampleTables, SegmentRow};
use crate::storage::objects::{ObjectError, Objects};

/// Version of the byte layout, part of the ETag (with `samples::READER_VERSION`: what the
/// segments give).
const LAYOUT: &str = "mp4-1";
/// Samples kept in the table cache (about 24 bytes each): some 5 hours of 30 fps video
/// with AAC audio.
const CACHE_SAMPLES: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Container {
    Ts,
    Fmp4,
}

impl Container {
    /// The segment container an MP4 export reads, from a flow's `container` media type.
    pub(super) fn of(media_type: &str) -> Option<Container> {
        match media_type {
            "video/mp2t" => Some(Container::Ts),
            "video/mp4" | "audio/mp4" => Some(Container::Fmp4),
            _ => None,
        }
    }
}

fn container(f: &Flow) -> Result<Container, PackagingError> {
    let media_type = f.container.as_ref().map(|c| c.as_str());
    media_type
        .and_then(Container::of)
        .ok_or_else(|| PackagingError::Unsupported {
            field: "container",
            message: format!(
                "MP4 export reads MPEG-TS (video/mp2t) or fragmented MP4 (video/mp4, audio/mp4) segments; flow {} has container {}",
                f.id,
                media_type.unwrap_or("not set")
            ),
        })
}

/// Sample tables of segment objects and parsed init objects, shared by all exports.
#[derive(Default)]
pub struct Tables {
    inner: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    tables: HashMap<String, (Arc<Samples>, u64)>,
    inits: HashMap<String, Arc<Init>>,
    samples: usize,
    clock: u64,
}

fn count(s: &Samples) -> usize {
    s.tracks.iter().map(|t| t.samples.len()).sum::<usize>() + 1
}

impl Tables {
    fn get(&self, key: &str) -> Option<Arc<Samples>> {
        let mut c = self.inner.lock().ok()?;
        c.clock += 1;
        let now = c.clock;
        let e = c.tables.get_mut(key)?;
        e.1 = now;
        Some(e.0.clone())
    }

    fn put(&self, key: String, s: Arc<Samples>) {
        let Ok(mut c) = self.inner.lock() else {
            return;
        };
        c.clock += 1;
        let now = c.clock;
        c.samples += count(&s);
        if let Some(old) = c.tables.insert(key, (s, now)) {
            c.samples -= count(&old.0);
        }
        while c.samples > CACHE_SAMPLES && c.tables.len() > 1 {
            let Some(oldest) = c
                .tables
                .iter()
                .min_by_key(|(_, v)| v.1)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = c.tables.remove(&oldest) {
                c.samples -= count(&old.0);
            }
        }
    }

    fn init(&self, id: &str) -> Option<Arc<Init>> {
        self.inner.lock().ok()?.inits.get(id).cloned()
    }

    fn put_init(&self, id: &str, init: Arc<Init>) {
        if let Ok(mut c) = self.inner.lock() {
            if c.inits.len() > 10_000 {
                c.inits.clear();
            }
            c.inits.insert(id.to_owned(), init);
        }
    }
}

/// One segment in the plan: where its bytes are and how to read them.
#[derive(Debug, Clone)]
pub(super) struct Seg {
    pub(super) object_id: String,
    pub(super) init_id: Option<String>,
    pub(super) container: Container,
}

/// The table cache's key of a segment object read through `init_id`.
fn key(object_id: &str, init_id: Option<&str>) -> String {
    match init_id {
        Some(i) => format!("{object_id}\n{i}"),
        None => object_id.to_owned(),
    }
}

impl Seg {
    fn key(&self) -> String {
        key(&self.object_id, self.init_id.as_deref())
    }
}

/// What a span's MP4 will hold.
#[derive(Debug, Clone)]
pub struct Plan {
    movie: Movie,
    /// The movie's header (moved out of it), sliced without copying.
    header: Bytes,
    segs: Vec<Seg>,
    pub len: u64,
    pub etag: String,
    /// The span the edit lists present.
    pub covers: TimeRange,
    /// Holes where no flow had content, closed up in the file.
    pub gaps: Vec<TimeRange>,
}

fn media_error(object: &str, e: MediaError) -> PackagingError {
    match e {
        MediaError::Unsupported(m) => PackagingError::Unsupported {
            field: "codec",
            message: format!("segment object {object:?}: {m}"),
        },
        e => PackagingError::Unsupported {
            field: "object_id",
            message: format!("segment object {object:?} cannot be read as media: {e}"),
        },
    }
}

async fn init_of(
    tables: &Tables,
    objects: &Objects,
    id: &str,
) -> Result<Arc<Init>, PackagingError> {
    if let Some(i) = tables.init(id) {
        return Ok(i);
    }
    let bytes = objects.get_bytes(id).await?;
    let init = Arc::new(Init::parse(&bytes).map_err(|e| media_error(id, e))?);
    tables.put_init(id, init.clone());
    Ok(init)
}

/// Reads a segment: its tables only, or with its sample bytes.
pub(super) async fn read_segment(
    tables: &Tables,
    objects: &Objects,
    seg: &Seg,
    with_data: bool,
) -> Result<Samples, PackagingError> {
    let init = match (&seg.container, &seg.init_id) {
        (Container::Fmp4, Some(id)) => Some(init_of(tables, objects, id).await?),
        (Container::Fmp4, None) => {
            return Err(PackagingError::Unsupported {
                field: "init_object_id",
                message: format!(
                    "fragmented MP4 segment {:?} has no init object",
                    seg.object_id
                ),
            });
        }
        (Container::Ts, _) => None,
    };
    if let Some(init) = &init
        && !with_data
    {
        match scan_fmp4(objects, &seg.object_id).await {
            Ok(scan) => {
                return scan
                    .tables(init)
                    .map_err(|e| media_error(&seg.object_id, e));
            }
            Err(ScanFailed::Media(e)) => return Err(media_error(&seg.object_id, e)),
            Err(ScanFailed::Store(ObjectError::NotFound(id))) => {
                return Err(ObjectError::NotFound(id).into());
            }
            // An empty object (no range of it to ask for), or a store refusing ranges:
            // read the whole segment instead.
            Err(ScanFailed::Store(e)) => {
                tracing::debug!(object = %seg.object_id, error = %e, "ranged reads of the segment failed; reading it whole");
            }
        }
    }
    let id = seg.object_id.clone();
    objects
        .get_with(&seg.object_id, move |bytes| {
            match init {
                Some(init) => samples::from_fmp4(&init, &bytes, with_data),
                // Sample bytes are fewer than the packets'; the buffers are recycled.
                None if with_data => samples::from_ts_into(
                    &bytes,
                    buffers::take(bytes.len()),
                    buffers::take(bytes.len() / 8),
                ),
                None => samples::from_ts(&bytes, false),
            }
            .map_err(|e| media_error(&id, e))
        })
        .await?
}

enum ScanFailed {
    Store(ObjectError),
    Media(MediaError),
}

/// The box headers and `moof`s of a fragmented MP4 segment, read with a few ranged reads
/// (one of 16 KiB for a segment of one fragment) instead of the whole segment: the
/// sample tables an MP4 export plans by, without the samples.
async fn scan_fmp4(objects: &Objects, id: &str) -> Result<samples::Fmp4Scan, ScanFailed> {
    async fn read(
        objects: &Objects,
        id: &str,
        r: Range<usize>,
    ) -> Result<(u64, Bytes), ObjectError> {
        let got = objects.get(id, Some(r.start as u64..r.end as u64)).await?;
        let size = got.size;
        let chunks: Vec<Bytes> = got.body.try_collect().await?;
        let bytes = match <[Bytes; 1]>::try_from(chunks) {
            Ok([one]) => one,
            Err(many) => Bytes::from(many.concat()),
        };
        Ok((size, bytes))
    }
    let (size, first) = read(objects, id, 0..samples::SCAN_READ)
        .await
        .map_err(ScanFailed::Store)?;
    let len = usize::try_from(size).map_err(|_| {
        ScanFailed::Media(MediaError::Unsupported(format!("segment of {size} bytes")))
    })?;
    let mut scan = samples::Fmp4Scan::new(len);
    let (mut from, mut bytes) = (0, first);
    loop {
        scan.feed(from, &bytes).map_err(ScanFailed::Media)?;
        let Some(r) = scan.want() else {
            return Ok(scan);
        };
        from = r.start;
        (_, bytes) = read(objects, id, r).await.map_err(ScanFailed::Store)?;
    }
}

/// A segment's tables from memory, else read from the segment (and then cached): with
/// whether they were read.
async fn tables_of(
    tables: Arc<Tables>,
    objects: Arc<Objects>,
    seg: Seg,
) -> Result<(Arc<Samples>, bool), PackagingError> {
    let key = seg.key();
    if let Some(t) = tables.get(&key) {
        return Ok((t, false));
    }
    let t = Arc::new(read_segment(&tables, &objects, &seg, false).await?);
    tables.put(key, t.clone());
    Ok((t, true))
}

/// Rows of the index's sample tables per statement.
pub(super) const TABLES_BATCH: usize = 500;

/// Loads the index's kept tables of the segments not in memory into the memory cache;
/// returns how many. Best effort: a row that cannot be fetched or decoded means the
/// segment is read.
async fn kept_tables(tables: &Tables, index: &dyn Index, segs: &[Seg]) -> usize {
    let mut loaded = 0;
    let mut missing: Vec<&Seg> = segs
        .iter()
        .filter(|s| tables.get(&s.key()).is_none())
        .collect();
    missing.sort_by(|a, b| a.object_id.cmp(&b.object_id));
    missing.dedup_by(|a, b| a.object_id == b.object_id);
    let wanted: std::collections::HashSet<(&str, &str)> = segs
        .iter()
        .map(|s| (s.object_id.as_str(), s.init_id.as_deref().unwrap_or("")))
        .collect();
    for chunk in missing.chunks(TABLES_BATCH) {
        let ids: Vec<String> = chunk.iter().map(|s| s.object_id.clone()).collect();
        let rows = match index.get_sample_tables(&ids).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read kept sample tables; reading the segments instead");
                return loaded;
            }
        };
        for r in rows {
            if !wanted.contains(&(r.object_id.as_str(), r.init_object_id.as_str())) {
                continue;
            }
            match tables::decode(&r.tables) {
                Ok(t) => {
                    let init = Some(r.init_object_id.as_str()).filter(|i| !i.is_empty());
                    tables.put(key(&r.object_id, init), Arc::new(t));
                    loaded += 1;
                }
                Err(e) => {
                    tracing::debug!(object = %r.object_id, error = %e, "kept sample tables do not decode; reading the segment");
                }
            }
        }
    }
    loaded
}

/// Keeps the tables read from segments (`read[i].1`) in the index. Best effort: an
/// export does not fail because its tables could not be kept.
async fn keep_tables(index: &dyn Index, segs: &[Seg], read: &[(Arc<Samples>, bool)]) {
    let rows: Vec<SampleTables> = segs
        .iter()
        .zip(read)
        .filter(|(_, (_, fresh))| *fresh)
        .map(|(s, (t, _))| SampleTables {
            object_id: s.object_id.clone(),
            init_object_id: s.init_id.clone().unwrap_or_default(),
            tables: tables::encode(t),
        })
        .collect();
    for chunk in rows.chunks(TABLES_BATCH) {
        if let Err(e) = index.put_sample_tables(chunk).await {
            tracing::warn!(error = %e, "could not keep sample tables in the index; the next export reads the segments again");
            return;
        }
    }
}

/// The flows of a source an MP4 export combines: a multiplexed flow when there is one,
/// else the video flow and the audio flow with the highest bit rate (ties: lowest id).
pub async fn source_flows(index: &dyn Index, source_id: Id) -> Result<Vec<Flow>, PackagingError> {
    let source = index
        .get_source(source_id)
        .await?
        .ok_or_else(|| PackagingError::NotFound(format!("source {source_id} does not exist")))?
        .value;
    let mut ids = vec![source_id];
    ids.extend(source.source_collection.iter().flatten().map(|c| c.id));
    let mut flows = Vec::new();
    for sid in ids {
        flows.extend(
            index
                .list_flows(&FlowQuery {
                    source_id: Some(sid),
                    ..FlowQuery::default()
                })
                .await?,
        );
    }
    flows.retain(|f| container(f).is_ok());
    flows.sort_by_key(|f| {
        (
            std::cmp::Reverse(f.max_bit_rate.or(f.avg_bit_rate).unwrap_or(0)),
            f.id.to_string(),
        )
    });
    let pick = |want: fn(&FlowEssence) -> bool| flows.iter().find(|f| want(&f.essence)).cloned();
    if let Some(m) = pick(|e| matches!(e, FlowEssence::Multi { .. })) {
        return Ok(vec![m]);
    }
    let chosen: Vec<Flow> = [
        pick(|e| matches!(e, FlowEssence::Video { .. })),
        pick(|e| matches!(e, FlowEssence::Audio { .. })),
    ]
    .into_iter()
    .flatten()
    .collect();
    if chosen.is_empty() {
        return Err(PackagingError::NotFound(format!(
            "source {source_id} has no video, audio or multiplexed flow of MPEG-TS or MP4 segments"
        )));
    }
    Ok(chosen)
}

/// Plans the MP4 of `span` of `flows` (one multiplexed flow, or a video and an audio flow).
pub async fn plan(
    tables: &Arc<Tables>,
    index: &dyn Index,
    objects: &Arc<Objects>,
    flows: &[Flow],
    span: TimeRange,
    max_segments: usize,
    read_ahead: usize,
) -> Result<Plan, PackagingError> {
    let mut rows: Vec<(usize, SegmentRow, Container)> = Vec::new();
    for (i, f) in flows.iter().enumerate() {
        let c = container(f)?;
        let found = match span_segments(index, f.id, span, max_segments, "export").await {
            Ok(r) => r,
            // A source's second flow may have nothing in the span; the first must.
            Err(PackagingError::NotFound(_)) if i > 0 => Vec::new(),
            Err(e) => return Err(e),
        };
        rows.extend(found.into_iter().map(|r| (i, r, c)));
    }
    if rows.len() > max_segments {
        return Err(PackagingError::Bad {
            field: "timerange",
            message: format!(
                "the span holds more than {max_segments} segments, more than one export may hold; ask for a shorter timerange"
            ),
        });
    }
    // Every object must be in drey's store, with its bytes.
    let mut ids: Vec<String> = rows
        .iter()
        .flat_map(|(_, r, _)| std::iter::once(r.object_id.clone()).chain(r.init_object_id.clone()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut stored = std::collections::HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        for o in index.get_objects(chunk).await? {
            if o.controlled && o.state == ObjectState::Stored {
                stored.insert(o.id);
            }
        }
    }
    if let Some(missing) = ids.iter().find(|id| !stored.contains(*id)) {
        return Err(PackagingError::Unsupported {
            field: "object_id",
            message: format!(
                "segment object {missing:?} is not in drey's object store; export reads drey's store only"
            ),
        });
    }
    let segs: Vec<Seg> = rows
        .iter()
        .map(|(_, r, c)| Seg {
            object_id: r.object_id.clone(),
            init_id: r.init_object_id.clone(),
            container: *c,
        })
        .collect();
    // The tables: from memory, else from the index, else read (in parallel) and kept in
    // the index for the next export, here or on another instance.
    let from_index = kept_tables(tables, index, &segs).await;
    let (cache, store) = (tables.clone(), objects.clone());
    let read: Vec<(Arc<Samples>, bool)> = objects
        .fetch_in_order(
            stream::iter(segs.clone()),
            read_ahead,
            move |s| tables_of(cache.clone(), store.clone(), s),
            |m| PackagingError::Objects(ObjectError::Body(m)),
        )
        .try_collect()
        .await?;
    keep_tables(index, &segs, &read).await;
    let fresh = read.iter().filter(|r| r.1).count();
    let tables_from = |from: &'static str, n: usize| {
        metrics::counter!("drey_export_sample_tables_total", "from" => from).increment(n as u64);
    };
    tables_from("segment", fresh);
    tables_from("index", from_index);
    tables_from("memory", (read.len() - fresh).saturating_sub(from_index));
    let read: Vec<Arc<Samples>> = read.into_iter().map(|(t, _)| t).collect();
    let input: Vec<SegmentIn> = rows
        .iter()
        .zip(&read)
        .map(|((flow, r, _), s)| SegmentIn {
            flow: *flow,
            start_ns: r.start_ns,
            end_ns: r.end_ns,
            ts_offset_ns: r.ts_offset_ns,
            samples: s,
        })
        .collect();
    let mut movie =
        mp4::plan(&input, span.start_nanos(), span.end_nanos()).map_err(|e| match e {
            MediaError::Unsupported(m) => PackagingError::Unsupported {
                field: "timerange",
                message: m,
            },
            e => PackagingError::Unsupported {
                field: "object_id",
                message: e.to_string(),
            },
        })?;
    let mut h = DefaultHasher::new();
    (LAYOUT, samples::READER_VERSION).hash(&mut h);
    (movie.start_ns, movie.end_ns, movie.len).hash(&mut h);
    for (flow, r, _) in &rows {
        (
            flow,
            &r.object_id,
            &r.init_object_id,
            r.start_ns,
            r.end_ns,
            r.ts_offset_ns,
        )
            .hash(&mut h);
    }
    Ok(Plan {
        len: movie.len,
        etag: format!("\"{:016x}\"", h.finish()),
        covers: TimeRange::from_nanos(movie.start_ns, movie.end_ns),
        gaps: movie
            .gaps
            .iter()
            .map(|&(a, b)| TimeRange::from_nanos(a, b))
            .collect(),
        header: Bytes::from(std::mem::take(&mut movie.header)),
        movie,
        segs,
    })
}

impl Plan {
    /// Kinds of the tracks in the file, in track order.
    pub fn tracks(&self) -> &[Kind] {
        &self.movie.tracks
    }
}

/// What to send for one segment: (chunk kind, the chunk's planned length, range within
/// the chunk's bytes).
type Wanted = Vec<(Kind, u64, Range<u64>)>;

/// `range` of the planned file as a stream: the header from memory, then each covered
/// segment fetched (`read_ahead` at a time, in order), demuxed and cut to the planned
/// chunks. A segment whose samples no longer match the plan ends the stream with an
/// error (the client sees a short body, never wrong bytes).
pub fn stream(
    tables: Arc<Tables>,
    objects: Arc<Objects>,
    plan: &Plan,
    range: Range<u64>,
    read_ahead: usize,
) -> BoxStream<'static, Result<Bytes, ObjectError>> {
    let header_len = plan.header.len() as u64;
    let head = if range.start < header_len {
        let end = range.end.min(header_len);
        Some(plan.header.slice(range.start as usize..end as usize))
    } else {
        None
    };
    // Chunks overlapping the range, grouped by segment (a segment's chunks are adjacent).
    let first = plan
        .movie
        .chunks
        .partition_point(|c| c.offset + c.len <= range.start);
    let mut groups: Vec<(Seg, Wanted)> = Vec::new();
    for c in plan.movie.chunks[first..]
        .iter()
        .take_while(|c| c.offset < range.end)
    {
        let a = range.start.max(c.offset) - c.offset;
        let b = range.end.min(c.offset + c.len) - c.offset;
        if a >= b {
            continue;
        }
        let want = (c.kind, c.len, a..b);
        match groups.last_mut() {
            Some((s, w)) if s.object_id == plan.segs[c.segment].object_id => w.push(want),
            _ => groups.push((plan.segs[c.segment].clone(), vec![want])),
        }
    }
    let body = objects
        .clone()
        .fetch_in_order(
            stream::iter(groups),
            read_ahead,
            move |(seg, want): (Seg, Wanted)| chunks_of(tables.clone(), objects.clone(), seg, want),
            ObjectError::Body,
        )
        .try_flatten();
    stream::iter(head.map(Ok)).chain(body).boxed()
}

/// Each track's sample bytes in a segment, as slices of buffers: pieces that, back to
/// back, are the track's part of the `mdat`.
type TrackBytes = Vec<(Kind, Vec<Bytes>)>;

/// One segment's planned chunks: the segment read, its samples cut to `want`. An MPEG-TS
/// segment is demuxed (the samples are copied out of the packets); a fragmented MP4
/// segment's samples already are what the `mdat` wants, so its chunks are slices of the
/// segment as read, not copies.
async fn chunks_of(
    tables: Arc<Tables>,
    objects: Arc<Objects>,
    seg: Seg,
    want: Wanted,
) -> Result<stream::Iter<std::vec::IntoIter<Result<Bytes, ObjectError>>>, ObjectError> {
    let data = track_bytes(&tables, &objects, &seg)
        .await
        .map_err(|e| ObjectError::Body(e.to_string()))?;
    let mut out = Vec::with_capacity(want.len());
    for (kind, planned, r) in want {
        let pieces = data
            .iter()
            .find(|d| d.0 == kind)
            .map(|d| d.1.as_slice())
            .unwrap_or_default();
        let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        if planned != len {
            return Err(ObjectError::Body(format!(
                "segment object {:?} gave {len} bytes of {kind:?} samples where {planned} were planned",
                seg.object_id,
            )));
        }
        // The pieces overlapping `r` (offsets within the chunk), cut to it.
        let mut at = 0u64;
        for p in pieces {
            let (a, b) = (at, at + p.len() as u64);
            at = b;
            if a == b || b <= r.start || a >= r.end {
                continue;
            }
            let from = r.start.max(a) - a;
            let to = r.end.min(b) - a;
            out.push(Ok(p.slice(from as usize..to as usize)));
        }
    }
    Ok(stream::iter(out))
}

/// A segment's sample bytes per track, for streaming: demuxed from MPEG-TS, or sliced out
/// of a fragmented MP4 segment where its `trun`s put them.
async fn track_bytes(
    tables: &Tables,
    objects: &Objects,
    seg: &Seg,
) -> Result<TrackBytes, PackagingError> {
    let init = match (&seg.container, &seg.init_id) {
        (Container::Fmp4, Some(id)) => init_of(tables, objects, id).await?,
        _ => {
            let s = read_segment(tables, objects, seg, true).await?;
            return Ok(s
                .tracks
                .into_iter()
                .map(|t| (t.kind, vec![buffers::freeze(t.data)]))
                .collect());
        }
    };
    let id = seg.object_id.clone();
    objects
        .get_with(&seg.object_id, move |bytes| {
            let ranges =
                samples::fmp4_sample_ranges(&init, &bytes).map_err(|e| media_error(&id, e))?;
            Ok(ranges
                .into_iter()
                .map(|(kind, rs)| (kind, rs.into_iter().map(|r| bytes.slice(r)).collect()))
                .collect())
        })
        .await?
}
