//! `drey bench`: Squirrel's tests on any backend. For each frame size and worker count it
//! measures, in one run with the same object size and parallelism: the raw object-store
//! PUT and GET rates (no index), then drey writing uncompressed grains (jobs, batched
//! allocation and registration), reading them back in order (parallel download), playing
//! them out as a stream (parallel stream creation, unpaced: the highest rate it could be
//! paced at), and read-process-write (the renderer: luma inverted into a new flow of the
//! same source). Before each timed measurement the page cache's dirty pages are written
//! back (`sync`, untimed), so one measurement's writeback does not land on the next.
//! It prints frames per second, drey's ratio to the raw rate, which of the asked frame
//! rates each sustains, and with `--price` what one stream costs per hour. Everything it
//! writes is deleted afterwards. Reads are measured twice: in order (the parallel
//! download) and in any order (the index listing, then W GETs handed out one by one).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use drey_core::Id;
use drey_core::media::raw::{RawFormat, signal_frame};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{FileConfig, StoreArgs, StoreConfig};
use crate::grains::{FrameSource, JobSpec};
use crate::packaging::export;
use crate::storage::index::{Index, SegmentQuery};
use crate::storage::objects::Objects;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Frame sizes, WIDTHxHEIGHT, comma-separated.
    #[arg(long, default_value = "1920x1080", value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// v210, uyvy, yuv420p or yuv422p.
    #[arg(long, default_value = "v210")]
    pub format: String,
    /// Parallel workers, comma-separated for several configurations.
    #[arg(long, default_value = "4", value_delimiter = ',')]
    pub workers: Vec<usize>,
    /// Frames per measurement (split over the rounds, each rounded up to whole chunks
    /// per worker).
    #[arg(long, default_value_t = 600)]
    pub frames: u64,
    /// Rounds: each runs every measurement once on its share of the frames, so raw and
    /// drey figures are taken side by side and a drift of the machine (page-cache
    /// writeback, a noisy neighbour) hits both alike.
    #[arg(long, default_value_t = 2)]
    pub rounds: u64,
    /// Frame rates to judge (sustained when the measured rate is at least this).
    #[arg(long, default_value = "25,50,60", value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// What to run: write, read, stream, process (comma-separated).
    #[arg(
        long,
        default_value = "write,read,stream,process",
        value_delimiter = ','
    )]
    pub tests: Vec<String>,
    /// Frames per writer chunk (one claim, one batched allocation and registration).
    /// Rounds should hold many chunks per worker: with few, the last ones leave workers
    /// idle, which is not what is being measured.
    #[arg(long, default_value_t = 25)]
    pub chunk_frames: u64,
    /// Instance price in dollars per hour, for a cost line per configuration.
    #[arg(long)]
    pub price: Option<f64>,
    /// Print the results as JSON lines instead of a table (one per round, with `round`,
    /// then the configuration's total).
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Frames from a few pre-made test-signal frames (generation is not what is measured).
struct Canned(Vec<Bytes>);

impl FrameSource for Canned {
    fn frame(&self, n: u64) -> anyhow::Result<Bytes> {
        Ok(self.0[(n % self.0.len() as u64) as usize].clone())
    }

    fn in_memory(&self) -> bool {
        true
    }
}

fn bar(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>24} {{pos:>6}}/{{len}} [{{wide_bar}}] {{per_sec:>10}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

/// Runs `n` jobs on `workers` tasks; returns frames per second.
async fn parallel<F, Fut>(n: u64, workers: usize, b: &ProgressBar, f: F) -> anyhow::Result<f64>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let f = Arc::new(f);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (next, f, b) = (next.clone(), f.clone(), b.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                f(i).await?;
                b.inc(1);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    b.finish_and_clear();
    Ok(n as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

#[derive(Debug, Default, serde::Serialize)]
struct Row {
    /// Set on the per-round lines of `--json` (the noise between rounds).
    #[serde(skip_serializing_if = "Option::is_none")]
    round: Option<u64>,
    size: String,
    format: String,
    frame_bytes: usize,
    workers: usize,
    frames: u64,
    raw_put_fps: f64,
    raw_get_fps: f64,
    write_fps: Option<f64>,
    read_fps: Option<f64>,
    stream_fps: Option<f64>,
    process_fps: Option<f64>,
    write_ratio: Option<f64>,
    /// Of the writers' time in the write measurement, the share each had a PUT in flight
    /// (1.0: the index never held an upload up).
    write_busy: Option<f64>,
    read_ratio: Option<f64>,
    /// The same frames read in any order: the index listing, then W workers each taking
    /// the next frame (as the raw GETs do), without the in-order delivery of `read`.
    read_any_fps: Option<f64>,
    read_any_ratio: Option<f64>,
    stream_ratio: Option<f64>,
    /// Against raw GET+PUT of the same frame, one after the other per worker.
    process_ratio: Option<f64>,
}

async fn flow_objects(index: &dyn Index, flow: Id) -> anyhow::Result<Vec<String>> {
    let rows = index
        .list_segments(
            flow,
            &SegmentQuery {
                range: drey_core::TimeRange::ETERNITY,
                object_id: None,
                reverse: false,
                after_start_ns: None,
                limit: usize::MAX / 2,
            },
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.object_id).collect())
}

/// Removes a bench flow: its segments and flow row from the index, its objects' bytes.
async fn remove_flow(index: &dyn Index, objects: &Objects, flow: Id) -> anyhow::Result<()> {
    let ids = flow_objects(index, flow).await?;
    loop {
        let c = index
            .delete_segments(
                flow,
                &drey_core::TimeRange::ETERNITY,
                None,
                5000,
                crate::util::unix_now_ns(),
            )
            .await?;
        if !c.more {
            break;
        }
    }
    index.delete_flow(flow).await?;
    futures::stream::iter(ids)
        .for_each_concurrent(8, |id| async move {
            let _ = objects.delete(&id).await;
        })
        .await;
    Ok(())
}

/// Writes the page cache's dirty pages back (untimed), so a measurement does not pay for
/// the writeback of the one before it.
async fn settle() {
    let _ = tokio::process::Command::new("sync").status().await;
}

/// Frames per round for `workers`: the round's share of `--frames` rounded up to whole
/// chunks for every worker, so the end of a round does not leave writers idle while the
/// last chunks finish (a tail that a sustained ingest does not have, and that the raw
/// PUTs, handed out one by one, do not pay).
fn round_frames(args: &BenchArgs, workers: usize) -> u64 {
    let rounds = args.rounds.clamp(1, args.frames);
    let unit = args.chunk_frames.max(1) * workers.max(1) as u64;
    args.frames.div_ceil(rounds).div_ceil(unit) * unit
}

/// Every measurement of one configuration, after an untimed warm-up round of the same
/// size, `rounds` times on a share of the frames each; rates are total frames over total
/// time. Without the warm-up, whatever wrote first ran at a third of the speed of the
/// rest (168 against 580-644 fps for 1080p raw PUTs on the local directory): the page
/// cache grows into guest memory the VM has never touched, and the host backs it on
/// first touch; once freed, those pages are fast.
async fn one(
    args: &BenchArgs,
    index: &Arc<dyn Index>,
    objects: &Arc<Objects>,
    format: RawFormat,
    size: (u32, u32),
    workers: usize,
) -> anyhow::Result<Row> {
    let rounds = args.rounds.clamp(1, args.frames);
    let n = round_frames(args, workers);
    round(args, index, objects, format, size, workers, n, 0).await?;
    let mut rows = Vec::new();
    for r in 0..rounds {
        let mut row = round(args, index, objects, format, size, workers, n, r).await?;
        if args.json {
            row.round = Some(r);
            writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(&row)?)?;
            row.round = None;
        }
        rows.push(row);
    }
    let total: u64 = rows.iter().map(|r| r.frames).sum();
    // Frames over the summed time of each round's measurement.
    let rate = |f: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
        let mut secs = 0.0;
        for r in &rows {
            secs += r.frames as f64 / f(r)?;
        }
        Some(total as f64 / secs)
    };
    let mut row = Row {
        frames: total,
        raw_put_fps: rate(&|r| Some(r.raw_put_fps)).unwrap_or(0.0),
        raw_get_fps: rate(&|r| Some(r.raw_get_fps)).unwrap_or(0.0),
        write_fps: rate(&|r| r.write_fps),
        read_fps: rate(&|r| r.read_fps),
        read_any_fps: rate(&|r| r.read_any_fps),
        stream_fps: rate(&|r| r.stream_fps),
        process_fps: rate(&|r| r.process_fps),
        // Weighted by each round's write time.
        write_busy: {
            let mut secs = 0.0;
            let mut busy = 0.0;
            for r in &rows {
                if let (Some(b), Some(f)) = (r.write_busy, r.write_fps) {
                    secs += r.frames as f64 / f;
                    busy += b * r.frames as f64 / f;
                }
            }
            (secs > 0.0).then(|| busy / secs)
        },
        ..std::mem::take(&mut rows[0])
    };
    ratios(&mut row);
    Ok(row)
}

/// Each drey rate over its raw counterpart (once both are measured).
fn ratios(row: &mut Row) {
    row.write_ratio = row.write_fps.map(|f| f / row.raw_put_fps);
    row.read_ratio = row.read_fps.map(|f| f / row.raw_get_fps);
    row.read_any_ratio = row.read_any_fps.map(|f| f / row.raw_get_fps);
    row.stream_ratio = row.stream_fps.map(|f| f / row.raw_get_fps);
    row.process_ratio = row
        .process_fps
        .map(|f| f / (1.0 / (1.0 / row.raw_get_fps + 1.0 / row.raw_put_fps)));
}

#[allow(clippy::too_many_arguments)]
async fn round(
    args: &BenchArgs,
    index: &Arc<dyn Index>,
    objects: &Arc<Objects>,
    format: RawFormat,
    (w, h): (u32, u32),
    workers: usize,
    n: u64,
    index_of_round: u64,
) -> anyhow::Result<Row> {
    let size = format.frame_size(w, h)?;
    let canned: Vec<Bytes> = (0..n.min(8))
        .map(|i| {
            let mut b = Vec::new();
            signal_frame(format, w, h, i, &mut b).map(|()| Bytes::from(b))
        })
        .collect::<Result<_, _>>()?;
    let canned = Arc::new(canned);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut row = Row {
        size: format!("{w}x{h}"),
        format: format.name().to_owned(),
        frame_bytes: size,
        workers,
        frames: n,
        ..Row::default()
    };

    // Raw and drey take turns going first, round by round: whoever writes second may pay
    // for the first one's page-cache writeback.
    let drey_first = index_of_round % 2 == 1;
    if !drey_first {
        (row.raw_put_fps, row.raw_get_fps) =
            raw_phase(args, objects, &canned, &run, n, workers, size).await?;
    }

    // drey: write grains with jobs and batched registration.
    let rate = "50/1".to_owned();
    let spec = JobSpec {
        flow_id: Id::new_v4(),
        source_id: Id::new_v4(),
        format: format.name().to_owned(),
        width: w,
        height: h,
        rate: rate.clone(),
        frames: n,
        start_ns: drey_core::Timestamp::now_tai().as_nanos(),
        chunk_frames: args.chunk_frames.max(1),
        audio: None,
        open: false,
    };
    let wants = |t: &str| args.tests.iter().any(|x| x == t);
    let mut flows = Vec::new();
    if wants("write") || wants("read") || wants("stream") || wants("process") {
        let job = format!("bench-{run}-w");
        let spec = crate::grains::prepare(index.as_ref(), &job, &spec, Some("drey bench")).await?;
        flows.push(spec.flow_id);
        let b = bar(args.quiet, n, "drey write");
        settle().await;
        let started = Instant::now();
        let on = {
            let b = b.clone();
            Arc::new(move |k: u64| b.inc(k))
        };
        let source = Arc::new(Canned(canned.to_vec()));
        let stats = crate::grains::write(
            index.clone(),
            objects.clone(),
            &job,
            &spec,
            source,
            workers,
            on,
        )
        .await?;
        b.finish_and_clear();
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let fps = n as f64 / secs;
        row.write_fps = Some(fps);
        let busy = stats.put_busy_ns.load(Ordering::Relaxed) as f64 / 1e9;
        row.write_busy = Some(busy / (workers.max(1) as f64 * secs));

        if wants("read") {
            // Parallel download: the grains in order, `workers` fetched ahead.
            let flow = index
                .get_flow(spec.flow_id)
                .await?
                .context("the bench flow vanished")?
                .value;
            let plan = export::plan(
                index.as_ref(),
                &flow,
                drey_core::TimeRange::ETERNITY,
                usize::MAX / 2,
                export::Kind::Raw,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let b = bar(args.quiet, plan.len, "drey read (bytes)");
            settle().await;
            let started = Instant::now();
            let mut body = export::stream(objects.clone(), &plan, 0..plan.len, workers);
            let mut got = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                got += chunk.len() as u64;
                b.set_position(got);
            }
            b.finish_and_clear();
            if got != n * size as u64 {
                bail!("read {got} bytes back, wrote {}", n * size as u64);
            }
            let fps = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
            row.read_fps = Some(fps);

            // The same frames in any order: what the index adds to raw GETs, without the
            // cost of delivering them in order.
            let b = bar(args.quiet, n, "drey read (any order)");
            settle().await;
            let started = Instant::now();
            let ids = Arc::new(flow_objects(index.as_ref(), spec.flow_id).await?);
            if ids.len() as u64 != n {
                bail!("the index lists {} frames, wrote {n}", ids.len());
            }
            let objects = objects.clone();
            parallel(n, workers, &b, move |i| {
                let (objects, ids) = (objects.clone(), ids.clone());
                async move {
                    let got = objects.get_bytes(&ids[i as usize]).await?;
                    if got.len() != size {
                        bail!("frame {i} read back as {} bytes, not {size}", got.len());
                    }
                    Ok(())
                }
            })
            .await?;
            // Timed from before the listing, not by `parallel` (which times the GETs).
            row.read_any_fps = Some(n as f64 / started.elapsed().as_secs_f64().max(1e-9));
        }

        if wants("stream") {
            // Parallel stream creation, unpaced: `workers` readers, grains sent in order.
            let b = bar(args.quiet, n, "drey stream");
            settle().await;
            let opts = crate::grains::play::Options {
                readers: workers,
                pace: false,
                follow: None,
                first_frame: 0,
            };
            let played = crate::grains::play::play(
                index.clone(),
                objects.clone(),
                spec.flow_id,
                drey_core::TimeRange::ETERNITY,
                &opts,
                crate::grains::play::Sink::Bytes(Box::new(tokio::io::sink())),
                std::future::pending(),
            )
            .await?;
            b.finish_and_clear();
            if played.frames != n {
                bail!("played {} frames, wrote {n}", played.frames);
            }
            let fps = n as f64 / played.seconds.max(1e-9);
            row.stream_fps = Some(fps);
        }

        if wants("process") {
            // The renderer: each worker reads a grain, inverts its luma and writes it to a
            // new flow of the same source.
            let ids = flow_objects(index.as_ref(), spec.flow_id).await?;
            let out = JobSpec {
                flow_id: Id::new_v4(),
                ..spec.clone()
            };
            let job = format!("bench-{run}-p");
            let out = crate::grains::prepare(index.as_ref(), &job, &out, Some("drey bench render"))
                .await?;
            flows.push(out.flow_id);
            let b = bar(args.quiet, n, "drey read-process-write");
            settle().await;
            let started = Instant::now();
            let on = {
                let b = b.clone();
                Arc::new(move |k: u64| b.inc(k))
            };
            let source = Arc::new(crate::grains::Render {
                objects: objects.clone(),
                ids,
                format,
                width: w,
                height: h,
                rt: tokio::runtime::Handle::current(),
            });
            crate::grains::write(
                index.clone(),
                objects.clone(),
                &job,
                &out,
                source,
                workers,
                on,
            )
            .await?;
            b.finish_and_clear();
            let fps = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
            row.process_fps = Some(fps);
        }
    }
    for f in flows {
        remove_flow(index.as_ref(), objects, f).await?;
    }
    if drey_first {
        (row.raw_put_fps, row.raw_get_fps) =
            raw_phase(args, objects, &canned, &run, n, workers, size).await?;
    }
    ratios(&mut row);
    Ok(row)
}

/// The object store alone: PUT `n` frame-sized objects, GET them back, delete them.
async fn raw_phase(
    args: &BenchArgs,
    objects: &Arc<Objects>,
    canned: &Arc<Vec<Bytes>>,
    run: &str,
    n: u64,
    workers: usize,
    size: usize,
) -> anyhow::Result<(f64, f64)> {
    let (canned, run) = (canned.clone(), run.to_owned());
    let b = bar(args.quiet, n, "raw PUT");
    settle().await;
    let put = {
        let (objects, canned, run) = (objects.clone(), canned.clone(), run.clone());
        parallel(n, workers, &b, move |i| {
            let (objects, canned, run) = (objects.clone(), canned.clone(), run.clone());
            async move {
                let f = canned[(i % canned.len() as u64) as usize].clone();
                objects.put(&format!("bench/{run}/raw/{i:08}"), f).await?;
                Ok(())
            }
        })
        .await?
    };
    let b = bar(args.quiet, n, "raw GET");
    settle().await;
    let get = {
        let (objects, run) = (objects.clone(), run.clone());
        parallel(n, workers, &b, move |i| {
            let (objects, run) = (objects.clone(), run.clone());
            async move {
                let got = objects
                    .get_bytes(&format!("bench/{run}/raw/{i:08}"))
                    .await?;
                if got.len() != size {
                    bail!("raw GET returned {} bytes, not {size}", got.len());
                }
                Ok(())
            }
        })
        .await?
    };
    futures::stream::iter(0..n)
        .for_each_concurrent(8, |i| {
            let (objects, run) = (objects.clone(), run.clone());
            async move {
                let _ = objects.delete(&format!("bench/{run}/raw/{i:08}")).await;
            }
        })
        .await;

    Ok((put, get))
}

fn sustained(fps: Option<f64>, rates: &[f64]) -> String {
    let Some(fps) = fps else {
        return "-".into();
    };
    let ok: Vec<String> = rates
        .iter()
        .filter(|r| fps >= **r)
        .map(|r| format!("{r}"))
        .collect();
    if ok.is_empty() {
        "none".into()
    } else {
        ok.join(",")
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let format = drey_core::media::raw::RawFormat::parse(&args.format)?;
    let sizes: Vec<(u32, u32)> = args
        .sizes
        .iter()
        .map(|s| {
            let (w, h) = s
                .split_once('x')
                .with_context(|| format!("size {s:?}: WIDTHxHEIGHT"))?;
            Ok((w.parse()?, h.parse()?))
        })
        .collect::<anyhow::Result<_>>()?;
    if args.frames == 0 {
        bail!("--frames must be at least 1");
    }
    for t in &args.tests {
        if !matches!(t.as_str(), "write" | "read" | "stream" | "process") {
            bail!("--tests: {t:?} is not write, read, stream or process");
        }
    }
    let cfg = FileConfig::load(args.store.config.as_deref())?;
    let store = StoreConfig::resolve(&args.store, &cfg);
    let (index, objects) = store.open().await?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "drey bench: {} ({}), objects {}, {} rounds of {} frames per measurement (rounded up to whole chunks per worker) after a warm-up round",
            crate::config::redact(&store.database),
            index.kind(),
            store.objects,
            args.rounds.clamp(1, args.frames),
            args.frames.div_ceil(args.rounds.clamp(1, args.frames)),
        )?;
        writeln!(
            out,
            "{:<10} {:<8} {:>8} {:>3} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6} {:>9} {:>6} | {:>9} {:>6} | sustains (write / read / stream / process)",
            "size",
            "format",
            "MB/frame",
            "W",
            "raw PUT",
            "write",
            "ratio",
            "raw GET",
            "read",
            "ratio",
            "stream",
            "ratio",
            "process",
            "ratio"
        )?;
    }
    drop(out);
    for &(w, h) in &sizes {
        for &workers in &args.workers {
            let row = one(&args, &index, &objects, format, (w, h), workers).await?;
            let mut out = std::io::stdout().lock();
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&row)?)?;
                continue;
            }
            let f = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.1}"));
            let r = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2}"));
            writeln!(
                out,
                "{:<10} {:<8} {:>8.2} {:>3} | {:>9.1} {:>9} {:>6} | {:>9.1} {:>9} {:>6} {:>9} {:>6} | {:>9} {:>6} | {} / {} / {} / {} fps",
                row.size,
                row.format,
                row.frame_bytes as f64 / 1e6,
                row.workers,
                row.raw_put_fps,
                f(row.write_fps),
                r(row.write_ratio),
                row.raw_get_fps,
                f(row.read_fps),
                r(row.read_ratio),
                f(row.stream_fps),
                r(row.stream_ratio),
                f(row.process_fps),
                r(row.process_ratio),
                sustained(row.write_fps, &args.rates),
                sustained(row.read_fps, &args.rates),
                sustained(row.stream_fps, &args.rates),
                sustained(row.process_fps, &args.rates),
            )?;
            if let Some(busy) = row.write_busy {
                writeln!(
                    out,
                    "    writers had a PUT in flight {:.0}% of the time (write)",
                    busy * 100.0
                )?;
            }
            if let (Some(fps), Some(ratio)) = (row.read_any_fps, row.read_any_ratio) {
                writeln!(
                    out,
                    "    read in any order (index listing, then W GETs): {fps:.1} fps, ratio {ratio:.2}"
                )?;
            }
            if let Some(price) = args.price {
                for (what, fps) in [
                    ("write", row.write_fps),
                    ("read", row.read_fps),
                    ("stream", row.stream_fps),
                    ("process", row.process_fps),
                ] {
                    let Some(fps) = fps else { continue };
                    let per: Vec<String> = args
                        .rates
                        .iter()
                        .map(|rate| {
                            format!(
                                "${:.4} per stream-hour at {rate} fps ({:.2} streams per instance)",
                                price * rate / fps,
                                fps / rate
                            )
                        })
                        .collect();
                    writeln!(out, "    cost at ${price}/h, {what}: {}", per.join("; "))?;
                }
            }
        }
    }
    Ok(())
}
