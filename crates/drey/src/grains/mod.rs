//! Uncompressed grains: one frame per object, written by many workers in parallel. A
//! *job* (in the index) holds what is being written (flow, format, frame count, timing)
//! and hands out chunks of frames, each to one writer at a time under a lease, so writers
//! in one process or in many (started with the same job id, on any host sharing the
//! database and bucket) share the work; a writer that dies loses its chunk to the others
//! when the lease passes, and the index's non-overlap rule keeps every frame stored once.
//! Each chunk is one batched allocation and one batched registration (per-request overhead
//! would dominate at 25-60 objects per second per flow). A grain is one video frame, or
//! for PCM audio a fixed number of samples (40 ms by default; the last grain may be
//! shorter).

pub mod broadcast;
pub mod play;
pub mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use drey_core::media::pcm::{PcmFormat, PcmLayout, sample_start_ns};
use drey_core::media::raw::{RawFormat, grain_start_ns};
use drey_core::model::Flow;
use drey_core::{Id, Rational};
use serde::{Deserialize, Serialize};

use crate::storage::index::{Index, JobChunk, SegmentRow};
use crate::storage::objects::Objects;
use crate::util::unix_now_ns;

/// How long a writer holds a chunk before another may take it over.
const LEASE: Duration = Duration::from_secs(10);

/// What a job writes; stored with it, so every writer of the job agrees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub flow_id: Id,
    pub source_id: Id,
    /// `v210`, `uyvy`, `yuv420p`, `yuv422p`; or for audio `pcm_s16le`, `pcm_s24le`,
    /// `pcm_s32le`, `pcm_f32le`.
    pub format: String,
    /// Picture size (0 for audio).
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    /// Frames per second as `NUM/DEN`; for audio the sample rate.
    pub rate: String,
    /// Grains: video frames, or audio grains of `audio.grain_samples`.
    pub frames: u64,
    /// TAI ns of grain 0.
    pub start_ns: i64,
    pub chunk_frames: u64,
    /// Set for PCM audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioJob>,
    /// A live stream of unknown length (`frames` is 0): its chunks are added as
    /// receivers hold them, its end when the sender says it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
}

/// The audio part of a job's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioJob {
    pub channels: u32,
    /// Samples per grain (the last grain may hold fewer).
    pub grain_samples: u32,
    /// Samples (per channel) in all.
    pub samples: u64,
}

/// What the grains of a job are (its spec, parsed and checked once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrainKind {
    Video {
        format: RawFormat,
        width: u32,
        height: u32,
        rate: Rational,
    },
    Audio {
        layout: PcmLayout,
        samples: u64,
    },
}

impl GrainKind {
    /// Where grain `n` lies in a file of the grains back to back: (offset, length).
    pub fn grain_bytes(&self, n: u64) -> anyhow::Result<(u64, usize)> {
        Ok(match *self {
            GrainKind::Video {
                format,
                width,
                height,
                ..
            } => {
                let fs = format.frame_size(width, height)?;
                (n * fs as u64, fs)
            }
            GrainKind::Audio { layout, samples } => {
                let (a, b) = layout.grain_bytes(n, samples);
                (a, usize::try_from(b - a)?)
            }
        })
    }

    /// Grain `n`'s time range, TAI ns `[start, end)`, grain 0 starting at `start_ns`:
    /// exact, so grains meet without gaps.
    pub fn grain_range(&self, start_ns: i64, n: u64) -> (i64, i64) {
        match *self {
            GrainKind::Video { rate, .. } => (
                grain_start_ns(start_ns, rate, n),
                grain_start_ns(start_ns, rate, n + 1),
            ),
            GrainKind::Audio { layout, samples } => {
                let (a, b) = layout.grain_samples_range(n, samples);
                (
                    sample_start_ns(start_ns, layout.sample_rate, a),
                    sample_start_ns(start_ns, layout.sample_rate, b),
                )
            }
        }
    }
}

impl JobSpec {
    pub fn raw_format(&self) -> anyhow::Result<RawFormat> {
        Ok(RawFormat::parse(&self.format)?)
    }

    pub fn rational(&self) -> anyhow::Result<Rational> {
        parse_rate(&self.rate)
    }

    /// What the grains are (checked: a spec that names no format drey knows is refused).
    pub fn kind(&self) -> anyhow::Result<GrainKind> {
        match &self.audio {
            None => {
                let format = self.raw_format()?;
                format.check(self.width, self.height)?;
                Ok(GrainKind::Video {
                    format,
                    width: self.width,
                    height: self.height,
                    rate: self.rational()?,
                })
            }
            Some(a) => {
                let sample_rate: u32 = self
                    .rate
                    .strip_suffix("/1")
                    .unwrap_or(&self.rate)
                    .parse()
                    .with_context(|| {
                    format!("sample rate {:?}: a whole number of hertz", self.rate)
                })?;
                let layout = PcmLayout::new(
                    PcmFormat::parse(&self.format)?,
                    sample_rate,
                    a.channels,
                    a.grain_samples,
                )?;
                if layout.grains(a.samples) != self.frames {
                    bail!(
                        "{} samples make {} grains of {}, not {}",
                        a.samples,
                        layout.grains(a.samples),
                        a.grain_samples,
                        self.frames
                    );
                }
                Ok(GrainKind::Audio {
                    layout,
                    samples: a.samples,
                })
            }
        }
    }

    /// Chunks of the job; `None` for an open one.
    fn chunks(&self) -> Option<u64> {
        (!self.open).then(|| self.frames.div_ceil(self.chunk_frames.max(1)))
    }

    /// The same work (what a second writer with this job id must be asked to do).
    fn same_work(&self, other: &JobSpec) -> bool {
        (
            &self.format,
            self.width,
            self.height,
            &self.rate,
            self.frames,
            self.audio,
            self.open,
        ) == (
            &other.format,
            other.width,
            other.height,
            &other.rate,
            other.frames,
            other.audio,
            other.open,
        )
    }

    /// The work in words (for refusals).
    fn describe(&self) -> String {
        match &self.audio {
            None if self.open => format!(
                "a live stream of {} {}x{} at {}",
                self.format, self.width, self.height, self.rate
            ),
            None => format!(
                "{} frames of {} {}x{} at {}",
                self.frames, self.format, self.width, self.height, self.rate
            ),
            Some(a) => format!(
                "{} samples of {} x{} at {} Hz in grains of {}",
                a.samples, self.format, a.channels, self.rate, a.grain_samples
            ),
        }
    }

    /// The flow the job writes.
    pub fn flow(&self, label: Option<&str>) -> anyhow::Result<Flow> {
        let mut v = match self.kind()? {
            GrainKind::Video {
                format,
                width,
                height,
                rate,
            } => serde_json::json!({
                "format": "urn:x-nmos:format:video",
                "codec": "video/raw",
                "essence_parameters": format.essence(width, height, rate),
                "segment_duration": {"numerator": rate.denominator_or_one(),
                    "denominator": rate.numerator.get()},
            }),
            GrainKind::Audio { layout, .. } => serde_json::json!({
                "format": "urn:x-nmos:format:audio",
                "codec": layout.format.codec(),
                "essence_parameters": layout.essence(),
                "segment_duration": {"numerator": layout.grain_samples,
                    "denominator": layout.sample_rate},
            }),
        };
        v["id"] = serde_json::json!(self.flow_id);
        v["source_id"] = serde_json::json!(self.source_id);
        v["label"] = serde_json::json!(label);
        Ok(serde_json::from_value(v)?)
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
    /// Frame `n`'s bytes (blocking: called on a blocking thread). Sources that hold
    /// frames in memory hand them out without a copy.
    fn frame(&self, n: u64) -> anyhow::Result<Bytes>;
    /// The frames are in memory already: [`FrameSource::frame`] does not block and is
    /// called in place, without a trip to a blocking thread.
    fn in_memory(&self) -> bool {
        false
    }
}

/// The chunks a writer may claim (a stream receiver: those whose frames it holds).
pub trait ClaimWindow: Send + Sync + 'static {
    /// `first..=last` chunk numbers claimable now; `None` when none yet.
    fn chunks(&self) -> Option<(i64, i64)>;
    /// No more frames will come.
    fn ended(&self) -> bool;
    /// The number of the frame after the stream's last, once the sender has said it.
    fn end_frame(&self) -> Option<u64>;
    /// The highest chunk this receiver has added to an open job (-1: none).
    fn added(&self) -> &std::sync::atomic::AtomicI64;
}

/// Grains of a file (raw frames, raw PCM, or a WAV file's samples), read at their
/// offsets.
pub struct FileSource {
    pub file: std::fs::File,
    /// Where the first grain starts (a WAV header's length).
    pub data_offset: u64,
    pub kind: GrainKind,
}

impl FrameSource for FileSource {
    fn frame(&self, n: u64) -> anyhow::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let (off, len) = self.kind.grain_bytes(n)?;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, self.data_offset + off)
            .with_context(|| format!("reading grain {n}"))?;
        Ok(Bytes::from(buf))
    }
}

/// The test signal, generated.
pub struct SignalSource {
    pub format: RawFormat,
    pub width: u32,
    pub height: u32,
}

impl FrameSource for SignalSource {
    fn frame(&self, n: u64) -> anyhow::Result<Bytes> {
        let mut buf = Vec::new();
        drey_core::media::raw::signal_frame(self.format, self.width, self.height, n, &mut buf)?;
        Ok(Bytes::from(buf))
    }
}

/// The renderer's source: grain `n` of another flow (its objects in order), read from the
/// store, luma inverted (a real per-pixel operation on every frame).
pub struct Render {
    pub objects: Arc<Objects>,
    pub ids: Vec<String>,
    pub format: RawFormat,
    pub width: u32,
    pub height: u32,
    pub rt: tokio::runtime::Handle,
}

impl FrameSource for Render {
    fn frame(&self, n: u64) -> anyhow::Result<Bytes> {
        let id = self
            .ids
            .get(n as usize)
            .with_context(|| format!("no grain {n} to render"))?;
        let bytes = self.rt.block_on(self.objects.get_bytes(id))?;
        let mut buf = Vec::from(bytes);
        self.format
            .map_luma(&mut buf, self.width, self.height, |l| {
                1023u16.saturating_sub(l)
            });
        Ok(Bytes::from(buf))
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
    spec.kind()?;
    let chunks = spec.chunks().map(i64::try_from).transpose()?;
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
            "job {job_id} is another job: it writes {} into flow {flow}; this writer was given {}",
            stored.describe(),
            spec.describe()
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
    /// Nanoseconds summed over this process's uploaders during which each had a PUT in
    /// flight: over uploaders x wall time, how little the index held the uploads up.
    pub put_busy_ns: AtomicU64,
}

/// Runs a job's writers in this process until every chunk is done (also those of writers
/// elsewhere, whose chunks are taken over when they die): one claimer takes chunks from
/// the index for the process and `uploaders` tasks PUT their frames, each taking the next
/// frame as it finishes one (as the raw PUTs of `drey bench` do), so a process's last
/// chunk is spread over all of them. `on_frame` is told of each stored frame (progress).
pub async fn write(
    index: Arc<dyn Index>,
    objects: Arc<Objects>,
    job_id: &str,
    spec: &JobSpec,
    source: Arc<dyn FrameSource>,
    uploaders: usize,
    on_frame: Arc<dyn Fn(u64) + Send + Sync>,
) -> anyhow::Result<Arc<WriteStats>> {
    write_in(
        index, objects, job_id, spec, source, None, uploaders, LEASE, on_frame,
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
    uploaders: usize,
    lease: Duration,
    on_frame: Arc<dyn Fn(u64) + Send + Sync>,
) -> anyhow::Result<Arc<WriteStats>> {
    let stats = Arc::new(WriteStats::default());
    let writer = Arc::new(Writer {
        index,
        objects,
        job: job_id.to_owned(),
        kind: spec.kind()?,
        spec: spec.clone(),
        owner: format!("w-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        window,
        lease,
        stall: std::sync::Mutex::new(None),
    });
    writer
        .run(source, uploaders.max(1), stats.clone(), on_frame)
        .await?;
    Ok(stats)
}

/// One process's writer of a job: the chunks it claims are its own (one owner in the
/// index), whichever of its uploaders PUTs their frames.
struct Writer {
    index: Arc<dyn Index>,
    objects: Arc<Objects>,
    job: String,
    spec: JobSpec,
    /// The spec's grains, parsed once.
    kind: GrainKind,
    owner: String,
    window: Option<Arc<dyn ClaimWindow>>,
    lease: Duration,
    /// (chunks done, since when) while this receiver waits on chunks it does not hold.
    stall: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
}

/// Chunks whose frames are all stored that may wait for their registration while the
/// uploads go on (under load a registration can take longer than a chunk's PUTs).
const REGISTER_QUEUE: usize = 4;

/// A chunk claimed by a writer, its objects allocated.
struct Claimed {
    chunk: u64,
    first: u64,
    ids: Vec<String>,
}

/// A claimed chunk while its frames upload: their sizes as they are stored, and how many
/// are still to come.
struct Uploading {
    c: Claimed,
    sizes: std::sync::Mutex<(Vec<i64>, usize)>,
}

impl Uploading {
    fn new(c: Claimed) -> Self {
        let n = c.ids.len();
        Uploading {
            c,
            sizes: std::sync::Mutex::new((vec![0; n], n)),
        }
    }

    /// Records frame `i`'s size; true when it was the chunk's last frame to be stored.
    fn stored(&self, i: usize, len: i64) -> bool {
        let mut s = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        s.0[i] = len;
        s.1 -= 1;
        s.1 == 0
    }
}

/// A chunk whose frames are all stored, on its way to registration.
struct Written {
    chunk: u64,
    stored: Vec<(String, i64)>,
    rows: Vec<SegmentRow>,
}

/// The frames the claimer has handed out and the uploaders not yet taken.
type FrameQueue = tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(Arc<Uploading>, usize)>>;

impl Writer {
    /// The chunks this writer may claim now: `None` while a stream receiver holds none.
    fn range(&self) -> Option<(i64, i64)> {
        match &self.window {
            None => Some((0, i64::MAX)),
            Some(w) => w.chunks(),
        }
    }

    /// One attempt at claiming a chunk.
    async fn try_claim(&self) -> anyhow::Result<Option<u64>> {
        let Some((first, last)) = self.range() else {
            return Ok(None);
        };
        let lease = i64::try_from(self.lease.as_nanos())?;
        let now = unix_now_ns();
        if first > last {
            return Ok(None);
        }
        if self.spec.open
            && let Some(w) = &self.window
        {
            // An open job has the chunks its receivers hold: add those new here.
            let from = first.max(w.added().load(Ordering::SeqCst) + 1);
            if from <= last {
                self.index.add_job_chunks(&self.job, from, last).await?;
                w.added().fetch_max(last, Ordering::SeqCst);
            }
        }
        Ok(self
            .index
            .claim_job_chunk_in(&self.job, &self.owner, now, now + lease, first, last)
            .await?
            .map(u64::try_from)
            .transpose()?)
    }

    /// Nothing to claim: true when the job is done (or, for a stream receiver, when the
    /// stream ended and what is left is not held here); otherwise waits a little (for
    /// writers elsewhere, which may die, or frames still to come).
    async fn idle(&self) -> anyhow::Result<bool> {
        let Some(progress) = self.index.job_progress(&self.job).await? else {
            bail!("job {} is gone from the index", self.job);
        };
        if progress.finished() {
            return Ok(true);
        }
        if let Some(w) = &self.window
            && w.ended()
        {
            if let Some(end) = w.end_frame()
                && !progress.ended
            {
                // The sender said where the stream ends: the job has its end.
                let chunks = end.div_ceil(self.spec.chunk_frames.max(1));
                self.index
                    .end_job(&self.job, i64::try_from(chunks)?)
                    .await?;
            }
            let left_here = match self.range() {
                Some((first, last)) if first <= last => {
                    self.index
                        .pending_job_chunks(&self.job, first, last)
                        .await?
                }
                _ => 0,
            };
            if left_here == 0 {
                // Every chunk still to do lies outside what this receiver holds: others
                // (or nobody) must store it. Wait while they make progress, so the
                // receiver's report says how the job ended; give up once it stalls for
                // two leases (whoever held those chunks is gone).
                let mut stall = self.stall.lock().unwrap_or_else(|e| e.into_inner());
                match *stall {
                    Some((done, since)) if done == progress.done => {
                        if since.elapsed() > self.lease * 2 {
                            tracing::warn!(
                                job = self.job,
                                left = progress.chunks - progress.done,
                                "the stream ended; the chunks left are not held by this receiver and nobody is storing them"
                            );
                            return Ok(true);
                        }
                    }
                    _ => *stall = Some((progress.done, std::time::Instant::now())),
                }
            }
        }
        let wait = if self.window.is_some() { 50 } else { 500 };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        Ok(false)
    }

    /// Claims a chunk and allocates its objects: `None` when there is nothing to claim.
    async fn claim(&self) -> anyhow::Result<Option<Claimed>> {
        let Some(chunk) = self.try_claim().await? else {
            return Ok(None);
        };
        let (spec, job, owner) = (&self.spec, &self.job, &self.owner);
        let first = chunk * spec.chunk_frames;
        let end = match (spec.open, &self.window) {
            (true, Some(w)) => w.end_frame().unwrap_or(u64::MAX),
            _ => spec.frames,
        };
        let last = (first + spec.chunk_frames).min(end);
        let ids: Vec<String> = (first..last)
            .map(|n| format!("{}/{job}/{n:010}.{owner}", spec.flow_id))
            .collect();
        let now = unix_now_ns();
        self.index
            .allocate_objects(
                spec.flow_id,
                &ids,
                Some("application/octet-stream"),
                now,
                now + 3_600_000_000_000,
            )
            .await?;
        Ok(Some(Claimed { chunk, first, ids }))
    }

    /// Claims chunks and hands their frames to the uploaders, in order, until the job is
    /// done. The queue holds up to two chunks' frames, so the next chunk is claimed and
    /// allocated (index round trips of 2-25 ms on SQLite under load) while the uploaders
    /// still have frames: the object store never waits on the index. With nothing to
    /// claim it waits until its own chunks are registered before it asks whether the job
    /// is done.
    async fn claim_all(
        &self,
        frames: tokio::sync::mpsc::Sender<(Arc<Uploading>, usize)>,
        written: tokio::sync::mpsc::Sender<Written>,
        unregistered: &tokio::sync::watch::Sender<usize>,
    ) -> anyhow::Result<()> {
        let mut registered = unregistered.subscribe();
        loop {
            let Some(c) = self.claim().await? else {
                if *registered.borrow_and_update() > 0 {
                    registered
                        .wait_for(|n| *n == 0)
                        .await
                        .context("the registrations stopped")?;
                } else if self.idle().await? {
                    return Ok(());
                }
                continue;
            };
            unregistered.send_modify(|n| *n += 1);
            let n = c.ids.len();
            let up = Arc::new(Uploading::new(c));
            if n == 0 {
                // Nothing to write (a stream that ended at the chunk's start): done at once.
                if written.send(self.written(&up)).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            for i in 0..n {
                if frames.send((up.clone(), i)).await.is_err() {
                    // The uploads stopped: their error is the one to report.
                    return Ok(());
                }
            }
        }
    }

    /// Takes frames off the queue and PUTs them until it closes; a chunk whose last frame
    /// it stored goes on to registration.
    async fn upload(
        &self,
        queue: &FrameQueue,
        source: &Arc<dyn FrameSource>,
        written: &tokio::sync::mpsc::Sender<Written>,
        stats: &WriteStats,
    ) -> anyhow::Result<()> {
        loop {
            let next = queue.lock().await.recv().await;
            let Some((up, i)) = next else {
                return Ok(());
            };
            let n = up.c.first + i as u64;
            let buf = if source.in_memory() {
                source.frame(n)?
            } else {
                let src = source.clone();
                tokio::task::spawn_blocking(move || src.frame(n)).await??
            };
            let put = std::time::Instant::now();
            let len = self.objects.put(&up.c.ids[i], buf).await? as i64;
            let busy = u64::try_from(put.elapsed().as_nanos()).unwrap_or(u64::MAX);
            stats.put_busy_ns.fetch_add(busy, Ordering::Relaxed);
            if !up.stored(i, len) {
                continue;
            }
            if written.send(self.written(&up)).await.is_err() {
                // The registrations stopped: their error is the one to report.
                return Ok(());
            }
        }
    }

    /// A chunk whose frames are all stored, with its segment rows.
    fn written(&self, up: &Uploading) -> Written {
        let video = matches!(self.kind, GrainKind::Video { .. });
        let sizes = up.sizes.lock().unwrap_or_else(|e| e.into_inner());
        let stored: Vec<(String, i64)> =
            up.c.ids
                .iter()
                .cloned()
                .zip(sizes.0.iter().copied())
                .collect();
        let rows = stored
            .iter()
            .zip(up.c.first..)
            .map(|((id, _), n)| {
                let (start_ns, end_ns) = self.kind.grain_range(self.spec.start_ns, n);
                SegmentRow {
                    key_frame_count: video.then_some(1),
                    ..SegmentRow::new(start_ns, end_ns, id.clone())
                }
            })
            .collect();
        Written {
            chunk: up.c.chunk,
            stored,
            rows,
        }
    }

    /// Registers a written chunk's segments and marks the chunk done, in one transaction.
    async fn register(
        &self,
        w: Written,
        stats: &WriteStats,
        on_frame: &(dyn Fn(u64) + Send + Sync),
    ) -> anyhow::Result<()> {
        // The grains and the chunk's end in one transaction.
        let chunk = JobChunk {
            job: &self.job,
            chunk: i64::try_from(w.chunk)?,
            owner: &self.owner,
        };
        let (results, _held) = self
            .index
            .register_job_chunk(self.spec.flow_id, &w.stored, &w.rows, &chunk, unix_now_ns())
            .await?;
        for ((id, len), r) in w.stored.iter().zip(&results) {
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
        Ok(())
    }

    /// Claims, writes and registers chunks until the job is done: the claimer here, the
    /// uploaders and the registrations (one at a time, in the order the chunks complete,
    /// at most [`REGISTER_QUEUE`] behind the uploads) on tasks of their own.
    async fn run(
        self: &Arc<Self>,
        source: Arc<dyn FrameSource>,
        uploaders: usize,
        stats: Arc<WriteStats>,
        on_frame: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> anyhow::Result<()> {
        let room = 2 * usize::try_from(self.spec.chunk_frames)?.max(uploaders);
        let (frames, queue) = tokio::sync::mpsc::channel(room);
        let queue: Arc<FrameQueue> = Arc::new(tokio::sync::Mutex::new(queue));
        let (written, mut registrations) = tokio::sync::mpsc::channel::<Written>(REGISTER_QUEUE);
        // Chunks claimed and not yet registered.
        let unregistered = Arc::new(tokio::sync::watch::channel(0usize).0);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..uploaders {
            let (me, queue, source, written, stats) = (
                self.clone(),
                queue.clone(),
                source.clone(),
                written.clone(),
                stats.clone(),
            );
            tasks.spawn(async move { me.upload(&queue, &source, &written, &stats).await });
        }
        {
            let (me, unregistered, stats) = (self.clone(), unregistered.clone(), stats.clone());
            tasks.spawn(async move {
                while let Some(w) = registrations.recv().await {
                    me.register(w, &stats, &*on_frame).await?;
                    unregistered.send_modify(|n| *n -= 1);
                }
                anyhow::Ok(())
            });
        }
        // The claimer ends by dropping the queue's sender: the uploaders finish what is
        // queued, then the registrations what they wrote.
        let claiming = self.claim_all(frames, written, &unregistered);
        tokio::pin!(claiming);
        let mut claimed = false;
        loop {
            tokio::select! {
                r = &mut claiming, if !claimed => {
                    r?;
                    claimed = true;
                }
                t = tasks.join_next() => match t {
                    Some(r) => r.context("a writer panicked")??,
                    None => break,
                },
            }
        }
        if !claimed {
            claiming.await?;
        }
        Ok(())
    }
}
