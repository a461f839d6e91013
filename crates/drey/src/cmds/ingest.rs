//! `drey ingest raw FILE`: stores a raw video file as a flow of uncompressed grains (one
//! frame per object) with N parallel writers, straight into the store. Writers in other
//! processes or on other hosts join with the same `--job` id (same file, same parameters)
//! and share the work through the index; a bad file (not whole frames) or a job id that
//! names other work is refused before anything is stored.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use drey_core::Id;
use drey_core::media::raw::{RawFormat, whole_frames};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{FileConfig, StoreArgs, StoreConfig};
use crate::grains::{FileSource, JobSpec, parse_rate};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    #[command(subcommand)]
    pub what: IngestWhat,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum IngestWhat {
    /// A file of raw frames (no header), e.g. from `drey signal` or `ffmpeg -f rawvideo`.
    Raw(RawArgs),
    /// A live stream of raw frames over TCP (`drey signal --listen`), received by this and
    /// any other receiver started with the same `--job`, each storing its share.
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
    /// Frames the stream carries.
    #[arg(long)]
    pub frames: u64,
    /// Job id shared by every receiver of the stream.
    #[arg(long)]
    pub job: String,
    /// The flow to write (default: the job's, or a new one for a new job).
    #[arg(long)]
    pub flow: Option<Id>,
    #[arg(long)]
    pub label: Option<String>,
    /// Writers in this receiver.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    #[arg(long, default_value_t = 10)]
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
    #[arg(long)]
    pub width: u32,
    #[arg(long)]
    pub height: u32,
    /// Frames per second, NUM or NUM/DEN (e.g. 50, 30000/1001).
    #[arg(long)]
    pub rate: String,
    /// v210, uyvy, yuv420p or yuv422p.
    #[arg(long)]
    pub format: String,
    /// Parallel writers in this process.
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
    #[arg(long, default_value_t = 10)]
    pub chunk_frames: u64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let args = match args.what {
        IngestWhat::Raw(a) => a,
        IngestWhat::Stream(a) => return stream(a).await,
    };
    let format = RawFormat::parse(&args.format)?;
    let frame_size = format.frame_size(args.width, args.height)?;
    let rate = parse_rate(&args.rate)?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let len = file.metadata()?.len();
    let frames = whole_frames(len, frame_size).with_context(|| {
        format!(
            "{} as {} {}x{}",
            args.file.display(),
            format.name(),
            args.width,
            args.height
        )
    })?;
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
        format: format.name().to_owned(),
        width: args.width,
        height: args.height,
        rate: format!("{}/{}", rate.numerator, rate.denominator_or_one()),
        frames,
        start_ns: drey_core::Timestamp::now_tai().as_nanos(),
        chunk_frames: args.chunk_frames,
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
    let source = Arc::new(FileSource { file, frame_size });
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
    if args.frames == 0 || !(1..=10_000).contains(&args.chunk_frames) {
        anyhow::bail!("--frames must be at least 1 and --chunk-frames 1 to 10000");
    }
    let cfg = FileConfig::load(args.store.config.as_deref())?;
    let (index, objects) = StoreConfig::resolve(&args.store, &cfg).open().await?;
    let wanted = JobSpec {
        flow_id: args.flow.unwrap_or_else(Id::new_v4),
        source_id: Id::new_v4(),
        format: format.name().to_owned(),
        width: args.width,
        height: args.height,
        rate: format!("{}/{}", rate.numerator, rate.denominator_or_one()),
        frames: args.frames,
        start_ns: drey_core::Timestamp::now_tai().as_nanos(),
        chunk_frames: args.chunk_frames,
    };
    let spec =
        crate::grains::prepare(index.as_ref(), &args.job, &wanted, args.label.as_deref()).await?;
    let window = (rate.as_f64() * args.window_secs as f64).ceil() as u64;
    let received = Arc::new(crate::grains::stream::Received::new(
        window,
        spec.chunk_frames,
        spec.frames,
    ));
    let rx = {
        let (addr, received) = (args.connect.clone(), received.clone());
        tokio::spawn(async move {
            let r = crate::grains::stream::receive(&addr, frame_size, &received).await;
            received.end();
            r
        })
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
    let (done, total) = index.job_progress(&args.job).await?.unwrap_or((0, 0));
    let out = serde_json::json!({
        "job": args.job,
        "flow_id": spec.flow_id,
        "frames_received": frames_received,
        "stored_here": stats.stored.load(std::sync::atomic::Ordering::Relaxed),
        "duplicates_here": stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
        "chunks_done": done,
        "chunks": total,
        "seconds": started.elapsed().as_secs_f64(),
    });
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{out}")?;
    if done < total {
        anyhow::bail!(
            "{} of {total} chunks are not stored (their frames are no longer held by any receiver that is still running)",
            total - done
        );
    }
    Ok(())
}
