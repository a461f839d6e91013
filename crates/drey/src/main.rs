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

/// Allocations at least this large get pages of their own from the kernel (glibc's
/// default start value, kept fixed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// Fixes glibc's mmap threshold. Left dynamic, it rises to the largest block freed so
/// far (a 560 KB segment buffer, say), after which such blocks come from the threads'
/// heaps and fragment them: the peak RSS of a `drey export` from S3 grew by 4.1 MB
/// between a 1- and a 10-minute span and by 6.6 MB to 30 minutes; fixed, by 2.1 and
/// 2.3 MB (docs/benchmarks.md, "Sixth export run"). Segment buffers are recycled
/// (`storage::buffers`), so their pages are not mapped again for every read.
/// An operator's own setting (`MALLOC_MMAP_THRESHOLD_`, or the glibc tunable) wins.
#[allow(unsafe_code)]
fn tune_allocator() {
    let tunable = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold"));
    if tunable || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
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
