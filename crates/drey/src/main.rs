//! The `drey` binary: parses arguments, installs logging, runs one subcommand.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "drey",
    version,
    about = "A time-addressable store for live and recorded video (TAMS 8.2)"
)]
struct Cli {
    /// Log format: text or json.
    #[arg(long, env = "DREY_LOG_FORMAT", default_value = "text", global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API, background garbage collection and deletions).
    Serve(drey::config::ServeArgs),
    /// Collect garbage once: unregistered allocations past their timeout and unreferenced objects.
    Gc(drey::config::StoreArgs),
    /// Export a span of a flow as one file (through a running drey with --url, or from the store).
    Export(drey::cmds::export::ExportArgs),
    /// Manage access keys for SigV4-signed requests (create, list, revoke).
    Keys(drey::cmds::keys::KeysArgs),
    /// Print a short signed token: an RTMP publish URL, a bearer token or a play token.
    Token(drey::cmds::token::TokenArgs),
    /// Store raw frames or PCM audio (a file, or a live frame stream) as uncompressed grains, with parallel writers.
    Ingest(drey::cmds::ingest::IngestArgs),
    /// Play an uncompressed flow out as a live stream, paced at its rate, read in parallel.
    Play(drey::cmds::play::PlayArgs),
    /// Write the test signal as raw frames (to a file, standard output or receivers).
    Signal(drey::cmds::signal::SignalArgs),
    /// Render an uncompressed flow (luma inverted) into a new flow of its source, in parallel.
    Render(drey::cmds::render::RenderArgs),
    /// Measure grain write, read and read-process-write rates against the raw object store.
    Bench(drey::cmds::bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("DREY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Command::Export(args) = &cli.command {
        // Each blocking thread may get a malloc arena of its own: an export needs only as
        // many as it reads ahead, which keeps its memory flat whatever the span.
        rt.max_blocking_threads(args.read_ahead.clamp(1, 64) + 2);
    }
    let rt = rt.build()?;
    rt.block_on(async {
        match cli.command {
            Command::Serve(args) => drey::cmds::serve::run(args).await,
            Command::Gc(args) => drey::cmds::gc::run(args).await,
            Command::Export(args) => drey::cmds::export::run(args).await,
            Command::Keys(args) => drey::cmds::keys::run(args).await,
            Command::Token(args) => drey::cmds::token::run(args).await,
            Command::Ingest(args) => drey::cmds::ingest::run(args).await,
            Command::Signal(args) => drey::cmds::signal::run(args).await,
            Command::Play(args) => drey::cmds::play::run(args).await,
            Command::Bench(args) => drey::cmds::bench::run(args).await,
            Command::Render(args) => drey::cmds::render::run(args).await,
        }
    })
}
