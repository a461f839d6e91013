//! `drey signal`: the test signal (luma steps, a moving box and the frame number as a bar
//! code, so every frame differs) as raw frames in any supported packing, to a file or to
//! standard output, as fast as it can or paced at the frame rate (a live source).

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
    /// How many frames.
    #[arg(long)]
    pub frames: u64,
    /// Number of the first frame (its bar code).
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    /// Write at the frame rate, as a live source would.
    #[arg(long)]
    pub pace: bool,
    /// Where to write (`-`: standard output).
    #[arg(short, long)]
    pub output: PathBuf,
}

pub async fn run(args: SignalArgs) -> anyhow::Result<()> {
    let format = RawFormat::parse(&args.format)?;
    format.frame_size(args.width, args.height)?;
    let rate = crate::grains::parse_rate(&args.rate)?;
    tokio::task::spawn_blocking(move || {
        let mut out: Box<dyn Write> = if args.output.as_os_str() == "-" {
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(&args.output)
                    .with_context(|| format!("creating {}", args.output.display()))?,
            ))
        };
        let period = Duration::from_nanos(rate.period_nanos().unwrap_or(20_000_000) as u64);
        let started = Instant::now();
        let mut buf = Vec::new();
        for i in 0..args.frames {
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
