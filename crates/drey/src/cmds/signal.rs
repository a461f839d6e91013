//! `drey signal`: the test signal (luma steps, a moving box and the frame number as a bar
//! code, so every frame differs) as raw frames in any supported packing, to a file or to
//! standard output, as fast as it can or paced at the frame rate (a live source), or
//! served as a live frame stream to receivers (`--listen`), endless unless `--frames`
//! says how many.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use drey_core::media::raw::{RawFormat, signal_frame};

#[derive(Debug, Clone, clap::Args)]
pub struct SignalArgs {
    #[arg(long, default_value_t = 1920)]
    pub width: u32,
    #[arg(long, default_value_t = 1080)]
    pub height: u32,
    /// Frames per second, NUM or NUM/DEN (used with --pace).
    #[arg(long, default_value = "50")]
    pub rate: String,
    /// v210, uyvy, yuv420p or yuv422p.
    #[arg(long, default_value = "v210")]
    pub format: String,
    /// How many frames (with --listen: without it the stream runs until SIGINT or
    /// SIGTERM, then ends with an end-of-stream header).
    #[arg(long, required_unless_present = "listen")]
    pub frames: Option<u64>,
    /// Number of the first frame (its bar code).
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    /// Write at the frame rate, as a live source would.
    #[arg(long)]
    pub pace: bool,
    /// Where to write (`-`: standard output).
    #[arg(short, long, required_unless_present = "listen")]
    pub output: Option<PathBuf>,
    /// Serve the frames as a live stream (paced) to every receiver connecting to this
    /// address (`drey ingest stream`), instead of writing a file.
    #[arg(long, conflicts_with = "output")]
    pub listen: Option<String>,
    /// With --listen: start sending once this many receivers are connected.
    #[arg(long, default_value_t = 1)]
    pub wait_clients: usize,
}

pub async fn run(args: SignalArgs) -> anyhow::Result<()> {
    let format = RawFormat::parse(&args.format)?;
    format.frame_size(args.width, args.height)?;
    let rate = crate::grains::parse_rate(&args.rate)?;
    if let Some(addr) = &args.listen {
        return serve(&args, addr, format, rate).await;
    }
    let output = args.output.clone().unwrap_or_else(|| PathBuf::from("-"));
    tokio::task::spawn_blocking(move || {
        let mut out: Box<dyn Write> = if output.as_os_str() == "-" {
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(&output)
                    .with_context(|| format!("creating {}", output.display()))?,
            ))
        };
        let period = Duration::from_nanos(rate.period_nanos().unwrap_or(20_000_000) as u64);
        let started = Instant::now();
        let mut buf = Vec::new();
        for i in 0..args.frames.unwrap_or(0) {
            signal_frame(format, args.width, args.height, args.first + i, &mut buf)?;
            if args.pace {
                let due = started + period * u32::try_from(i).unwrap_or(u32::MAX);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            out.write_all(&buf)?;
            if args.pace {
                out.flush()?;
            }
        }
        out.flush()?;
        anyhow::Ok(())
    })
    .await?
}

/// Sends the signal, paced, to every connected receiver, then an end-of-stream header.
async fn serve(
    args: &SignalArgs,
    addr: &str,
    format: RawFormat,
    rate: drey_core::Rational,
) -> anyhow::Result<()> {
    let mut out = crate::grains::broadcast::Broadcast::bind(addr).await?;
    out.wait_clients(args.wait_clients).await?;
    tracing::info!(
        receivers = args.wait_clients,
        frames = args.frames,
        "sending"
    );
    let period = Duration::from_nanos(rate.period_nanos().unwrap_or(20_000_000) as u64);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (w, h) = (args.width, args.height);
    let stop = crate::util::shutdown_signal();
    tokio::pin!(stop);
    let mut n = args.first;
    let last = args.frames.map(|f| args.first + f);
    while last.is_none_or(|l| n < l) {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => {
                tracing::info!(frame = n, "stopping: ending the stream");
                break;
            }
        }
        let frame = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            signal_frame(format, w, h, n, &mut buf).map(|()| buf)
        })
        .await??;
        out.send(n, &frame)?;
        n += 1;
    }
    out.finish(Some(n)).await;
    Ok(())
}
