//! `drey play FLOW`: parallel stream creation. Plays a span of an uncompressed flow (or,
//! with `--follow`, the flow as it is written) as a live stream paced at its rate: to every
//! receiver of a frame stream (`--listen`, which `drey ingest stream` reads), or as raw
//! bytes to a file or standard output (e.g. into ffplay). N readers fetch the grains in
//! parallel. Prints what it sent as JSON; SIGINT/SIGTERM end the stream cleanly (receivers
//! get the end-of-stream header).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::{FileConfig, StoreArgs, StoreConfig};
use crate::grains::broadcast::Broadcast;
use crate::grains::play::{Options, Sink, play};

#[derive(Debug, Clone, clap::Args)]
pub struct PlayArgs {
    /// The uncompressed flow to play (video/raw or PCM audio).
    pub flow: drey_core::Id,
    #[command(flatten)]
    pub span: super::SpanArgs,
    /// Serve the stream to every receiver connecting to this address.
    #[arg(long, conflicts_with = "output")]
    pub listen: Option<String>,
    /// With --listen: start once this many receivers are connected.
    #[arg(long, default_value_t = 1)]
    pub wait_clients: usize,
    /// Write the grains' bytes here instead (`-`: standard output).
    #[arg(short, long, required_unless_present = "listen")]
    pub output: Option<PathBuf>,
    /// Grains fetched in parallel.
    #[arg(long, default_value_t = 4)]
    pub readers: usize,
    /// Send as fast as the readers go instead of at the flow's rate.
    #[arg(long)]
    pub no_pace: bool,
    /// After the span (which must have no end), keep playing new grains as they are
    /// stored, until SIGINT/SIGTERM.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: seconds to wait for a hole at the live edge (a chunk a parallel
    /// writer is still storing) before playing on past it as a gap.
    #[arg(long, default_value_t = 3.0)]
    pub follow_grace_secs: f64,
    /// Number of the first frame in the stream.
    #[arg(long, default_value_t = 0)]
    pub first_frame: u64,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(args: PlayArgs) -> anyhow::Result<()> {
    let cfg = FileConfig::load(args.store.config.as_deref())?;
    let (index, objects) = StoreConfig::resolve(&args.store, &cfg).open().await?;
    let span = args.span.span()?;
    if args.follow && span.end_nanos().is_some() {
        anyhow::bail!("--follow plays on past the span's end: give a span without an end");
    }
    let flow = index
        .get_flow(args.flow)
        .await?
        .with_context(|| format!("flow {} does not exist", args.flow))?
        .value;
    if !crate::packaging::export::is_uncompressed(&flow) {
        anyhow::bail!(
            "flow {} is not uncompressed grains (video/raw, or interleaved PCM audio): drey play sends raw frames",
            flow.id
        );
    }
    // A grain's period, for the live-edge poll.
    let period = match &flow.segment_duration {
        Some(d) => Duration::from_secs_f64(d.as_f64().clamp(0.001, 10.0)),
        None => Duration::from_millis(20),
    };
    let sink = match (&args.listen, &args.output) {
        (Some(addr), _) => {
            let mut b = Broadcast::bind(addr).await?;
            tracing::info!(addr = %b.addr, receivers = args.wait_clients, "waiting for receivers");
            b.wait_clients(args.wait_clients).await?;
            Sink::Stream(b)
        }
        (None, Some(p)) if p.as_os_str() == "-" => Sink::Bytes(Box::new(tokio::io::stdout())),
        (None, Some(p)) => Sink::Bytes(Box::new(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("creating {}", p.display()))?,
        )),
        (None, None) => anyhow::bail!("give --listen or --output"),
    };
    let opts = Options {
        readers: args.readers,
        pace: !args.no_pace,
        follow: args.follow.then_some((
            period.max(Duration::from_millis(10)) / 2,
            Duration::from_secs_f64(args.follow_grace_secs.clamp(0.0, 3600.0)),
        )),
        first_frame: args.first_frame,
    };
    let played = play(
        index,
        objects,
        flow.id,
        span,
        &opts,
        sink,
        crate::util::shutdown_signal(),
    )
    .await?;
    if played.frames == 0 {
        anyhow::bail!("flow {} has no grains in {span}", flow.id);
    }
    let out = serde_json::to_value(&played)?;
    // Standard output may be the stream itself: the summary goes to stderr then.
    if args.output.as_ref().is_some_and(|p| p.as_os_str() == "-") {
        tracing::info!(summary = %out, "played");
    } else {
        writeln!(std::io::stdout().lock(), "{out}")?;
    }
    Ok(())
}
