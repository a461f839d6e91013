//! `drey export FLOW --start .. --end .. [--format ts|mp4|raw|wav] -o FILE`: one file for a span
//! of a flow (or, with `--source`, of a source's flows), either through a running drey
//! (`--url`, its `/flows/{id}/download`) or straight from the store (the same plan and
//! parallel fetch as the server). Writes `FILE.part` and renames it
//! when complete, so a file with the final name is always whole. Shows bytes, rate and ETA.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{FileConfig, StoreArgs, StoreConfig};
use crate::packaging::{export, mp4};

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The flow to export (its id), or the source with `--source`.
    pub flow: drey_core::Id,
    /// The id is a source: export its multiplexed flow, or its video and audio flows
    /// combined into one MP4.
    #[arg(long)]
    pub source: bool,
    #[command(flatten)]
    pub span: super::SpanArgs,
    /// File format: ts (the segments concatenated), mp4 (progressive, trimmed to the span),
    /// raw (an uncompressed flow's grains back to back) or wav (a PCM flow's samples).
    #[arg(long, default_value = "ts", value_parser = ["ts", "mp4", "raw", "wav"])]
    pub format: String,
    /// Where to write the file (`-`: standard output, e.g. to pipe into ffmpeg).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Export through a running drey at this base URL instead of opening the store.
    #[arg(long)]
    pub url: Option<String>,
    /// Segment objects fetched ahead, in parallel (direct export).
    #[arg(long, default_value_t = 8)]
    pub read_ahead: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl ExportArgs {
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("format", &self.format);
        self.span.append_to(&mut q);
        q.finish()
    }
}

fn progress(len: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{bytes:>10} / {total_bytes} [{wide_bar}] {bytes_per_sec:>12} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Where the bytes go (a file, written as FILE.part and renamed when whole; stdout, a
/// device or a pipe, written in place): written with std's `File`, chunk by chunk as they arrive, on the thread that drives the
/// export (`block_in_place`: the reads run on the runtime's workers meanwhile). tokio's
/// file and stdout copy every chunk once more into a buffer of their own first; a writer
/// thread fed through a channel cost a wake-up per segment: 40 of the 130 ms of a
/// 30-minute export from page-cached files (docs/benchmarks.md, third export run).
struct Sink {
    file: std::fs::File,
}

impl Sink {
    fn new(file: std::fs::File) -> Sink {
        Sink { file }
    }

    /// Standard output, as a `File` of its own descriptor (std's `Stdout` is
    /// line-buffered).
    fn stdout() -> std::io::Result<Sink> {
        use std::os::fd::AsFd;
        let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
        Ok(Sink::new(std::fs::File::from(fd)))
    }

    fn write(&mut self, b: Bytes) -> anyhow::Result<()> {
        let file = &mut self.file;
        blocking(|| file.write_all(&b)).context("writing the export")
    }

    /// Flushes what was written; gives the file back.
    fn finish(mut self) -> anyhow::Result<std::fs::File> {
        let file = &mut self.file;
        blocking(|| file.flush()).context("writing the export")?;
        Ok(self.file)
    }
}

/// Runs blocking `f` where the runtime allows it (`block_in_place` panics on a
/// current-thread runtime, where there is no other thread to block instead).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    // A device or a pipe (`-o /dev/null`, a FIFO) is written in place: a FILE.part
    // renamed over it would replace the device with a regular file.
    let in_place = if args.output.as_os_str() == "-" {
        Some(Sink::stdout().context("opening standard output")?)
    } else if std::fs::metadata(&args.output).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&args.output)
            .with_context(|| format!("opening {}", args.output.display()))?;
        Some(Sink::new(f))
    } else {
        None
    };
    if let Some(mut out) = in_place {
        let written = match &args.url {
            Some(url) => over_http(&args, url, &mut out).await?,
            None => direct(&args, &mut out).await?,
        };
        out.finish()?;
        tracing::info!(bytes = written, file = %args.output.display(), "export done");
        return Ok(());
    }
    let mut part = args.output.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let file =
        std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
    let mut out = Sink::new(file);
    let result = match &args.url {
        Some(url) => over_http(&args, url, &mut out).await,
        None => direct(&args, &mut out).await,
    };
    let finished = match result {
        Ok(n) => out.finish().map(|f| (n, f)),
        Err(e) => Err(e),
    };
    let (written, file) = match finished {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .context("syncing the export")??;
    tokio::fs::rename(&part, &args.output)
        .await
        .with_context(|| format!("renaming {} to {}", part.display(), args.output.display()))?;
    tracing::info!(bytes = written, file = %args.output.display(), "export done");
    Ok(())
}

async fn direct(args: &ExportArgs, file: &mut Sink) -> anyhow::Result<u64> {
    let cfg = FileConfig::load(args.store.config.as_deref())?;
    let (index, objects) = StoreConfig::resolve(&args.store, &cfg).open().await?;
    let span = args.span.span()?;
    let flows = if args.source {
        mp4::source_flows(index.as_ref(), args.flow)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        vec![
            index
                .get_flow(args.flow)
                .await?
                .with_context(|| format!("flow {} does not exist", args.flow))?
                .value,
        ]
    };
    let (len, gaps, mut body) = if args.format == "mp4" {
        let tables = Arc::new(mp4::Tables::default());
        let plan = mp4::plan(
            &tables,
            index.as_ref(),
            &objects,
            &flows,
            span,
            usize::MAX / 2,
            args.read_ahead,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let body = mp4::stream(tables, objects, &plan, 0..plan.len, args.read_ahead);
        (plan.len, plan.gaps, body)
    } else {
        let [flow] = flows.as_slice() else {
            bail!(
                "the source's video and audio are separate flows: use --format mp4 to combine them"
            );
        };
        let plan = export::plan(
            index.as_ref(),
            flow,
            span,
            usize::MAX / 2,
            export::Kind::from_name(&args.format).unwrap_or(export::Kind::Ts),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let body = export::stream(objects, &plan, 0..plan.len, args.read_ahead);
        (plan.len, plan.gaps, body)
    };
    for g in &gaps {
        tracing::warn!(gap = %g, "the span has no segments here; skipped");
    }
    let bar = progress(len, args.quiet);
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        file.write(chunk)?;
        bar.set_position(written);
    }
    bar.finish_and_clear();
    if written != len {
        bail!("wrote {written} bytes of {len}");
    }
    Ok(written)
}

async fn over_http(args: &ExportArgs, url: &str, file: &mut Sink) -> anyhow::Result<u64> {
    let url = format!(
        "{}/{}/{}/download?{}",
        url.trim_end_matches('/'),
        if args.source { "sources" } else { "flows" },
        args.flow,
        args.query()
    );
    let mut resp = reqwest::get(&url)
        .await
        .with_context(|| format!("GET {url}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        bail!("GET {url}: {status}: {body}");
    }
    if let Some(g) = resp
        .headers()
        .get("drey-gaps")
        .and_then(|v| v.to_str().ok())
    {
        tracing::warn!(gaps = g, "the span has no segments here; skipped");
    }
    let len = resp.content_length();
    let bar = progress(len.unwrap_or(0), args.quiet);
    let mut written = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        written += chunk.len() as u64;
        file.write(chunk)?;
        bar.set_position(written);
    }
    bar.finish_and_clear();
    if let Some(len) = len
        && written != len
    {
        bail!("the download ended after {written} of {len} bytes");
    }
    Ok(written)
}
