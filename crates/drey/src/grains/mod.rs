//! Uncompressed grains: one frame per object, written by many workers in parallel. A
//! *job* (in the index) holds what is being written (flow, format, frame count, timing)
//! and hands out chunks of frames, each to one writer at a time under a lease, so writers
//! in one process or in many (started with the same job id, on any host sharing the
//! database and bucket) share the work; a writer that dies loses its chunk to the others
//! when the lease passes, and the index's non-overlap rule keeps every frame stored once.
//! Each chunk is one batched allocation and one batched registration (per-request overhead
//! would dominate at 25-60 objects per second per flow).

pub mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use drey_core::media::raw::{RawFormat, grain_start_ns};
use drey_core::model::Flow;
use drey_core::{Id, Rational};
use serde::{Deserialize, Serialize};

use crate::storage::index::{Index, SegmentRow};
use crate::storage::objects::Objects;
use crate::util::unix_now_ns;

/// How long a writer holds a chunk before another may take it over.
const LEASE: Duration = Duration::from_secs(10);

/// What a job writes; stored with it, so every writer of the job agrees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub flow_id: Id,
    pub source_id: Id,
    /// `v210`, `uyvy`, `yuv420p`, `yuv422p`.
    pub format: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second as `NUM/DEN`.
    pub rate: String,
    pub frames: u64,
    /// TAI ns of frame 0.
    pub start_ns: i64,
    pub chunk_frames: u64,
}

impl JobSpec {
    pub fn raw_format(&self) -> anyhow::Result<RawFormat> {
        Ok(RawFormat::parse(&self.format)?)
    }

    pub fn rational(&self) -> anyhow::Result<Rational> {
        parse_rate(&self.rate)
    }

    pub fn frame_size(&self) -> anyhow::Result<usize> {
        Ok(self.raw_format()?.frame_size(self.width, self.height)?)
    }

    fn chunks(&self) -> u64 {
        self.frames.div_ceil(self.chunk_frames.max(1))
    }

    /// The same work (what a second writer with this job id must be asked to do).
    fn same_work(&self, other: &JobSpec) -> bool {
        (
            &self.format,
            self.width,
            self.height,
            &self.rate,
            self.frames,
        ) == (
            &other.format,
            other.width,
            other.height,
            &other.rate,
            other.frames,
        )
    }

    /// The flow the job writes.
    pub fn flow(&self, label: Option<&str>) -> anyhow::Result<Flow> {
        let f = self.raw_format()?;
        let essence = f.essence(self.width, self.height, self.rational()?);
        Ok(serde_json::from_value(serde_json::json!({
            "id": self.flow_id,
            "source_id": self.source_id,
            "format": "urn:x-nmos:format:video",
            "codec": "video/raw",
            "label": label,
            "essence_parameters": essence,
            "segment_duration": {"numerator": self.rational()?.denominator_or_one(),
                "denominator": self.rational()?.numerator.get()},
        }))?)
    }
}

/// `50`, `50/1`, `30000/1001`, `29.97` is refused (say 30000/1001).
pub fn parse_rate(s: &str) -> anyhow::Result<Rational> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let (n, d): (u64, u64) = (
        n.trim()
            .parse()
            .with_context(|| format!("rate {s:?}: NUM or NUM/DEN"))?,
        d.trim()
            .parse()
            .with_context(|| format!("rate {s:?}: NUM or NUM/DEN"))?,
    );
    if n == 0 || d == 0 || n / d > 1000 {
        bail!("rate {s:?}: 1 to 1000 frames per second");
    }
    Rational::new(n, d).with_context(|| format!("rate {s:?}"))
}

/// Where a writer gets frame `n`'s bytes.
pub trait FrameSource: Send + Sync + 'static {
    /// Fills `buf` with frame `n` (blocking: called on a blocking thread).
    fn frame(&self, n: u64, buf: &mut Vec<u8>) -> anyhow::Result<()>;
}

/// The chunks a writer may claim (a stream receiver: those whose frames it holds).
pub trait ClaimWindow: Send + Sync + 'static {
    /// `first..=last` chunk numbers claimable now; `None` when none yet.
    fn chunks(&self) -> Option<(i64, i64)>;
    /// No more frames will come.
    fn ended(&self) -> bool;
}

/// Frames of a raw file, read at their offsets.
pub struct FileSource {
    pub file: std::fs::File,
    pub frame_size: usize,
}

impl FrameSource for FileSource {
    fn frame(&self, n: u64, buf: &mut Vec<u8>) -> anyhow::Result<()> {
        use std::os::unix::fs::FileExt;
        buf.resize(self.frame_size, 0);
        self.file
            .read_exact_at(buf, n * self.frame_size as u64)
            .with_context(|| format!("reading frame {n}"))?;
        Ok(())
    }
}

/// The test signal, generated.
pub struct SignalSource {
    pub format: RawFormat,
    pub width: u32,
    pub height: u32,
}

impl FrameSource for SignalSource {
    fn frame(&self, n: u64, buf: &mut Vec<u8>) -> anyhow::Result<()> {
        Ok(drey_core::media::raw::signal_frame(
            self.format,
            self.width,
            self.height,
            n,
            buf,
        )?)
    }
}

/// Creates the job (and its flow) unless it exists; a job that exists must be the same
/// work, else this is a writer given another job's id.
pub async fn prepare(
    index: &dyn Index,
    job_id: &str,
    spec: &JobSpec,
    label: Option<&str>,
) -> anyhow::Result<JobSpec> {
    if job_id.is_empty()
        || job_id.len() > 128
        || !job_id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        bail!("job id {job_id:?}: 1 to 128 of A-Z a-z 0-9 - _ .");
    }
    spec.frame_size()?;
    let chunks = i64::try_from(spec.chunks())?;
    let (flow, stored) = index
        .create_job(
            job_id,
            spec.flow_id,
            &serde_json::to_string(spec)?,
            chunks,
            unix_now_ns(),
        )
        .await?;
    let stored: JobSpec = serde_json::from_str(&stored)?;
    if !stored.same_work(spec) {
        bail!(
            "job {job_id} is another job: it writes {} frames of {} {}x{} at {} into flow {flow}; this writer was given {} frames of {} {}x{} at {}",
            stored.frames,
            stored.format,
            stored.width,
            stored.height,
            stored.rate,
            spec.frames,
            spec.format,
            spec.width,
            spec.height,
            spec.rate
        );
    }
    // The job's flow, made by whichever writer gets here first (again after a crash
    // between the two steps).
    if index.get_flow(stored.flow_id).await?.is_none() {
        index
            .put_flow(&stored.flow(label)?, None, unix_now_ns())
            .await?;
    }
    Ok(stored)
}

/// What the writers did.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Frames this process stored.
    pub stored: AtomicU64,
    /// Frames this process wrote that another writer had stored first (their objects are
    /// deleted again).
    pub duplicates: AtomicU64,
    pub bytes: AtomicU64,
}

/// Runs `writers` writers of a job in this process until every chunk is done (also those
/// of writers elsewhere, whose chunks are taken over when they die). `on_frame` is told of
/// each stored frame (progress).
pub async fn write(
    index: Arc<dyn Index>,
    objects: Arc<Objects>,
    job_id: &str,
    spec: &JobSpec,
    source: Arc<dyn FrameSource>,
    writers: usize,
    on_frame: Arc<dyn Fn(u64) + Send + Sync>,
) -> anyhow::Result<Arc<WriteStats>> {
    write_in(
        index, objects, job_id, spec, source, None, writers, LEASE, on_frame,
    )
    .await
}

/// [`write`], claiming only chunks inside `window` (when given), with chunk leases of
/// `lease`.
#[allow(clippy::too_many_arguments)]
pub async fn write_in(
    index: Arc<dyn Index>,
    objects: Arc<Objects>,
    job_id: &str,
    spec: &JobSpec,
    source: Arc<dyn FrameSource>,
    window: Option<Arc<dyn ClaimWindow>>,
    writers: usize,
    lease: Duration,
    on_frame: Arc<dyn Fn(u64) + Send + Sync>,
) -> anyhow::Result<Arc<WriteStats>> {
    let stats = Arc::new(WriteStats::default());
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers.max(1) {
        let (index, objects, source, stats, on_frame, window) = (
            index.clone(),
            objects.clone(),
            source.clone(),
            stats.clone(),
            on_frame.clone(),
            window.clone(),
        );
        let (job, spec) = (job_id.to_owned(), spec.clone());
        let owner = format!("w{w}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        tasks.spawn(async move {
            let w = Writer {
                index: &*index,
                objects: &objects,
                job: &job,
                spec: &spec,
                owner: &owner,
                window: window.as_deref(),
                lease,
            };
            w.run(source, &stats, &*on_frame).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a writer panicked")??;
    }
    Ok(stats)
}

struct Writer<'a> {
    index: &'a dyn Index,
    objects: &'a Objects,
    job: &'a str,
    spec: &'a JobSpec,
    owner: &'a str,
    window: Option<&'a dyn ClaimWindow>,
    lease: Duration,
}

impl Writer<'_> {
    /// The next chunk to write: `None` when the job is done (or, for a stream receiver,
    /// when the stream ended and what is left is not held here).
    async fn next_chunk(&self) -> anyhow::Result<Option<u64>> {
        let lease = i64::try_from(self.lease.as_nanos())?;
        loop {
            let (first, last) = match self.window {
                None => (0, i64::MAX),
                Some(w) => match w.chunks() {
                    Some(r) => r,
                    None if w.ended() => (0, -1),
                    None => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let now = unix_now_ns();
            if first <= last
                && let Some(c) = self
                    .index
                    .claim_job_chunk_in(self.job, self.owner, now, now + lease, first, last)
                    .await?
            {
                return Ok(Some(u64::try_from(c)?));
            }
            // Nothing to claim here now: done, or the rest is leased by live writers (which
            // may still die: wait and look again), or (a stream) not received yet.
            let (done, total) = self.index.job_progress(self.job).await?.unwrap_or((0, 0));
            if done >= total {
                return Ok(None);
            }
            if let Some(w) = self.window
                && w.ended()
                && (first > last
                    || self.index.pending_job_chunks(self.job, first, last).await? == 0)
            {
                // The stream is over and every chunk still to do lies outside what this
                // receiver holds: others (or nobody) must store it.
                tracing::warn!(
                    job = self.job,
                    left = total - done,
                    "the stream ended; the chunks left are not held by this receiver"
                );
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(if self.window.is_some() {
                100
            } else {
                500
            }))
            .await;
        }
    }

    async fn run(
        &self,
        source: Arc<dyn FrameSource>,
        stats: &WriteStats,
        on_frame: &(dyn Fn(u64) + Send + Sync),
    ) -> anyhow::Result<()> {
        let (index, objects, job, spec, owner) =
            (self.index, self.objects, self.job, self.spec, self.owner);
        let rate = spec.rational()?;
        loop {
            let Some(chunk) = self.next_chunk().await? else {
                return Ok(());
            };
            let first = chunk * spec.chunk_frames;
            let last = (first + spec.chunk_frames).min(spec.frames);
            let ids: Vec<String> = (first..last)
                .map(|n| format!("{}/{job}/{n:010}.{owner}", spec.flow_id))
                .collect();
            let now = unix_now_ns();
            index
                .allocate_objects(
                    spec.flow_id,
                    &ids,
                    Some("application/octet-stream"),
                    now,
                    now + 3_600_000_000_000,
                )
                .await?;
            let mut stored = Vec::with_capacity(ids.len());
            let mut rows = Vec::with_capacity(ids.len());
            for (n, id) in (first..last).zip(&ids) {
                let src = source.clone();
                let buf = tokio::task::spawn_blocking(move || {
                    let mut b = Vec::new();
                    src.frame(n, &mut b).map(|()| b)
                })
                .await??;
                let len = objects.put(id, Bytes::from(buf)).await? as i64;
                stored.push((id.clone(), len));
                rows.push(SegmentRow {
                    start_ns: grain_start_ns(spec.start_ns, rate, n),
                    end_ns: grain_start_ns(spec.start_ns, rate, n + 1),
                    object_id: id.clone(),
                    init_object_id: None,
                    ts_offset_ns: None,
                    last_duration_ns: None,
                    object_start_ns: None,
                    object_end_ns: None,
                    sample_offset: None,
                    sample_count: None,
                    key_frame_count: Some(1),
                    external_urls: None,
                    seq: 0,
                    disc: 0,
                });
            }
            let results = index
                .register_stored_segments(spec.flow_id, &stored, &rows, unix_now_ns())
                .await?;
            for ((id, len), r) in stored.iter().zip(&results) {
                match r {
                    Ok(()) => {
                        stats.stored.fetch_add(1, Ordering::Relaxed);
                        stats.bytes.fetch_add(*len as u64, Ordering::Relaxed);
                        on_frame(1);
                    }
                    Err(e) => {
                        // Another writer stored this frame first (its chunk's lease passed to
                        // us while it was still at work): ours is surplus, referenced by no
                        // segment, and garbage collection removes it.
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(object = %id, reason = ?e, "frame already stored by another writer");
                    }
                }
            }
            index
                .finish_job_chunk(job, i64::try_from(chunk)?, owner, unix_now_ns())
                .await?;
        }
    }
}
