//! `drey ingest raw FILE`: stores a raw video file (one frame per object) or PCM audio
//! (raw samples or a WAV file; one grain of `--grain-samples` per object) as a flow of
//! uncompressed grains with N parallel writers, straight into the store. Writers in other
//! processes or on other hosts join with the same `--job` id (same file, same parameters)
//! and share the work through the index; a bad file (not whole frames or sample frames, a
//! broken WAV header) or a job id that names other work is refused before anything is
//! stored.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use drey_core::Id;
use drey_core::media::pcm::{self, PcmFormat, PcmLayout};
use drey_core::media::raw::{RawFormat, whole_frames};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{FileConfig, StoreArgs, StoreConfig};
use crate::grains::{AudioJob, FileSource, JobSpec, parse_rate};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    #[command(subcommand)]
    pub what: IngestWhat,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum IngestWhat {
    /// A file of raw frames (no header), e.g. from `drey signal` or `ffmpeg -f rawvideo`;
    /// or PCM audio: raw samples (`--format pcm_s24le`, e.g. from `ffmpeg -f s24le`) or a
    /// WAV file (its header gives the format).
    Raw(RawArgs),
    /// A live stream of raw frames over TCP (`drey signal --listen`, `drey play
    /// --listen`), received by this and any other receiver started with the same `--job`,
    /// each storing its share.
    Stream(StreamArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// The sender's address, HOST:PORT.
    #[arg(long)]
    pub connect: String,
    #[arg(long)]
    pub width: u32,
    #[arg(long)]
    pub height: u32,
    #[arg(long)]
    pub rate: String,
    #[arg(long)]
    pub format: String,
    /// Frames the stream carries; without it the stream is live, of unknown length: it
    /// ends when the sender says so (or, for this receiver, when its connection is lost).
    #[arg(long)]
    pub frames: Option<u64>,
    /// Job id shared by every receiver of the stream.
    #[arg(long)]
    pub job: String,
    /// The flow to write (default: the job's, or a new one for a new job).
    #[arg(long)]
    pub flow: Option<Id>,
    #[arg(long)]
    pub label: Option<String>,
    /// Parallel uploads in this receiver (its one writer's uploaders).
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    #[arg(long, default_value_t = 25)]
    pub chunk_frames: u64,
    /// Seconds of frames kept for chunks another receiver may leave undone.
    #[arg(long, default_value_t = 30)]
    pub window_secs: u64,
    /// Seconds a receiver holds a chunk before another may take it over.
    #[arg(long, default_value_t = 3)]
    pub lease_secs: u64,
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RawArgs {
    pub file: PathBuf,
    /// Video: picture width.
    #[arg(long)]
    pub width: Option<u32>,
    /// Video: picture height.
    #[arg(long)]
    pub height: Option<u32>,
    /// Video: frames per second, NUM or NUM/DEN (e.g. 50, 30000/1001).
    #[arg(long)]
    pub rate: Option<String>,
    /// v210, uyvy, yuv420p or yuv422p; for audio pcm_s16le, pcm_s24le, pcm_s32le or
    /// pcm_f32le (interleaved, little-endian). Not needed for a WAV file.
    #[arg(long)]
    pub format: Option<String>,
    /// Audio: samples per second.
    #[arg(long)]
    pub sample_rate: Option<u32>,
    /// Audio: channels (interleaved).
    #[arg(long)]
    pub channels: Option<u32>,
    /// Audio: samples per grain (default: 40 ms' worth, one 25 fps frame).
    #[arg(long)]
    pub grain_samples: Option<u32>,
    /// Parallel uploads in this process (its one writer's uploaders, which share its
    /// chunks frame by frame).
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Job id shared by every writer process of this ingest (default: a new one, printed).
    #[arg(long)]
    pub job: Option<String>,
    /// The flow to write (default: a new flow, and a new source).
    #[arg(long)]
    pub flow: Option<Id>,
    /// Its source (with --flow for a new flow of an existing source).
    #[arg(long)]
    pub source: Option<Id>,
    /// Label of a new flow.
    #[arg(long)]
    pub label: Option<String>,
    /// Frames per chunk (the unit a writer claims, allocates and registers at once).
    #[arg(long, default_value_t = 25)]
    pub chunk_frames: u64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What `drey ingest raw` was given, checked against the file: the job's spec without
/// its ids and start, where the grains start in the file, and how many there are.
struct FileWork {
    format: String,
    width: u32,
    height: u32,
    rate: String,
    frames: u64,
    audio: Option<AudioJob>,
    data_offset: u64,
}

/// Refuses the first flag given of `flags`, saying why.
fn refuse<const N: usize>(
    flags: [(bool, &str); N],
    why: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    match flags.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(anyhow::anyhow!(why(flag))),
        None => Ok(()),
    }
}

fn file_work(args: &RawArgs, file: &std::fs::File) -> anyhow::Result<FileWork> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut head = vec![0u8; pcm::WAV_HEAD_BYTES.min(usize::try_from(len).unwrap_or(usize::MAX))];
    file.read_exact_at(&mut head, 0)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let name = args.file.display();
    let is_wav = pcm::looks_like_wav(&head);
    let pcm_format = args.format.as_deref().filter(|f| PcmFormat::is_pcm_name(f));
    if is_wav || pcm_format.is_some() {
        refuse(
            [
                (args.width.is_some(), "--width"),
                (args.height.is_some(), "--height"),
                (args.rate.is_some(), "--rate"),
            ],
            |flag| format!("{flag} is for video; {name} is audio (use --sample-rate)"),
        )?;
        let (format, sample_rate, channels, data_offset, data_len) = if is_wav {
            let w = pcm::parse_wav(&head, len).with_context(|| format!("{name}"))?;
            refuse(
                [
                    (args.format.is_some(), "--format"),
                    (args.sample_rate.is_some(), "--sample-rate"),
                    (args.channels.is_some(), "--channels"),
                ],
                |flag| format!("{name} is a WAV file: its header gives the format; drop {flag}"),
            )?;
            (
                w.format,
                w.sample_rate,
                w.channels,
                w.data_offset,
                w.data_len,
            )
        } else {
            let format = PcmFormat::parse(pcm_format.unwrap_or_default())?;
            let (Some(sr), Some(ch)) = (args.sample_rate, args.channels) else {
                anyhow::bail!("raw PCM needs --sample-rate and --channels");
            };
            (format, sr, ch, 0, len)
        };
        let grain = args
            .grain_samples
            .unwrap_or_else(|| PcmLayout::default_grain_samples(sample_rate));
        let layout = PcmLayout::new(format, sample_rate, channels, grain)?;
        let samples = layout
            .whole_samples(data_len)
            .with_context(|| format!("{name}"))?;
        return Ok(FileWork {
            format: format.name().to_owned(),
            width: 0,
            height: 0,
            rate: format!("{sample_rate}/1"),
            frames: layout.grains(samples),
            audio: Some(AudioJob {
                channels,
                grain_samples: grain,
                samples,
            }),
            data_offset,
        });
    }
    refuse(
        [
            (args.sample_rate.is_some(), "--sample-rate"),
            (args.channels.is_some(), "--channels"),
            (args.grain_samples.is_some(), "--grain-samples"),
        ],
        |flag| format!("{flag} is for audio; give a pcm_* --format or a WAV file"),
    )?;
    let (Some(f), Some(width), Some(height), Some(rate)) =
        (&args.format, args.width, args.height, &args.rate)
    else {
        anyhow::bail!(
            "raw video needs --format, --width, --height and --rate (audio: a pcm_* --format or a WAV file)"
        );
    };
    let format = RawFormat::parse(f)?;
    let frame_size = format.frame_size(width, height)?;
    let rate = parse_rate(rate)?;
    let frames = whole_frames(len, frame_size)
        .with_context(|| format!("{name} as {} {width}x{height}", format.name()))?;
    Ok(FileWork {
        format: format.name().to_owned(),
        width,
        height,
        rate: format!("{}/{}", rate.numerator, rate.denominator_or_one()),
        frames,
        audio: None,
        data_offset: 0,
    })
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let args = match args.what {
        IngestWhat::Raw(a) => a,
        IngestWhat::Stream(a) => return stream(a).await,
    };
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let work = file_work(&args, &file)?;
    let frames = work.frames;
    if !(1..=10_000).contains(&args.chunk_frames) {
        anyhow::bail!("--chunk-frames must be 1 to 10000");
    }
    let cfg = FileConfig::load(args.store.config.as_deref())?;
    let (index, objects) = StoreConfig::resolve(&args.store, &cfg).open().await?;
    let job = args
        .job
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let wanted = JobSpec {
        flow_id: args.flow.unwrap_or_else(Id::new_v4),
        source_id: args.source.unwrap_or_else(Id::new_v4),
        format: work.format,
        width: work.width,
        height: work.height,
        rate: work.rate,
        frames,
        start_ns: drey_core::Timestamp::now_tai().as_nanos(),
        chunk_frames: args.chunk_frames,
        audio: work.audio,
        open: false,
    };
    let spec = crate::grains::prepare(index.as_ref(), &job, &wanted, args.label.as_deref()).await?;
    tracing::info!(job = %job, flow = %spec.flow_id, frames, writers = args.writers, "ingesting raw frames");
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(frames);
        b.set_style(
            ProgressStyle::with_template(
                "{pos:>7}/{len} frames [{wide_bar}] {per_sec:>12} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    };
    let started = Instant::now();
    let on_frame = {
        let bar = bar.clone();
        Arc::new(move |n: u64| bar.inc(n))
    };
    let source = Arc::new(FileSource {
        file,
        data_offset: work.data_offset,
        kind: spec.kind()?,
    });
    let stats = crate::grains::write(
        index.clone(),
        objects,
        &job,
        &spec,
        source,
        args.writers,
        on_frame,
    )
    .await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let stored = stats.stored.load(std::sync::atomic::Ordering::Relaxed);
    let out = serde_json::json!({
        "job": job,
        "flow_id": spec.flow_id,
        "source_id": spec.source_id,
        "frames": frames,
        "stored_here": stored,
        "duplicates_here": stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
        "seconds": secs,
        "frames_per_second": stored as f64 / secs.max(1e-9),
    });
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{out}")?;
    Ok(())
}

async fn stream(args: StreamArgs) -> anyhow::Result<()> {
    let format = RawFormat::parse(&args.format)?;
    let frame_size = format.frame_size(args.width, args.height)?;
    let rate = parse_rate(&args.rate)?;
    if args.frames == Some(0) || !(1..=10_000).contains(&args.chunk_frames) {
        anyhow::bail!("--frames must be at least 1 and --chunk-frames 1 to 10000");
    }
    let cfg = FileConfig::load(args.store.config.as_deref())?;
    let (index, objects) = StoreConfig::resolve(&args.store, &cfg).open().await?;
    // Where the stream is now: its first frame here is received at about this instant, so
    // frame 0 was (n / rate) earlier. The job's first receiver sets the timeline; the
    // others take it from the job.
    let conn = crate::grains::stream::Connection::open(&args.connect, frame_size).await?;
    let now = drey_core::Timestamp::now_tai().as_nanos();
    let first = conn.first.as_ref().map_or(0, |(n, _)| *n);
    let frame0 = now - (drey_core::media::raw::grain_start_ns(0, rate, first));
    let wanted = JobSpec {
        flow_id: args.flow.unwrap_or_else(Id::new_v4),
        source_id: Id::new_v4(),
        format: format.name().to_owned(),
        width: args.width,
        height: args.height,
        rate: format!("{}/{}", rate.numerator, rate.denominator_or_one()),
        frames: args.frames.unwrap_or(0),
        start_ns: frame0,
        chunk_frames: args.chunk_frames,
        audio: None,
        open: args.frames.is_none(),
    };
    let spec =
        crate::grains::prepare(index.as_ref(), &args.job, &wanted, args.label.as_deref()).await?;
    let window = (rate.as_f64() * args.window_secs as f64).ceil() as u64;
    let received = Arc::new(crate::grains::stream::Received::new(
        window,
        spec.chunk_frames,
        (!spec.open).then_some(spec.frames),
    ));
    let rx = {
        let received = received.clone();
        tokio::spawn(async move { conn.receive(&received).await })
    };
    let started = Instant::now();
    let stats = crate::grains::write_in(
        index.clone(),
        objects,
        &args.job,
        &spec,
        received.clone(),
        Some(received.clone()),
        args.writers,
        Duration::from_secs(args.lease_secs.max(1)),
        Arc::new(|_| {}),
    )
    .await?;
    let frames_received = rx.await??;
    let progress = index
        .job_progress(&args.job)
        .await?
        .context("the job is gone from the index")?;
    let out = serde_json::json!({
        "job": args.job,
        "flow_id": spec.flow_id,
        "frames_received": frames_received,
        "stored_here": stats.stored.load(std::sync::atomic::Ordering::Relaxed),
        "duplicates_here": stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
        "chunks_done": progress.done,
        "chunks": progress.chunks,
        "ended": progress.ended,
        "seconds": started.elapsed().as_secs_f64(),
    });
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{out}")?;
    if progress.done < progress.chunks {
        anyhow::bail!(
            "{} of {} chunks are not stored (their frames are no longer held by any receiver that is still running)",
            progress.chunks - progress.done,
            progress.chunks
        );
    }
    Ok(())
}
