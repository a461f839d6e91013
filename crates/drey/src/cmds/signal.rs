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

/// Frames a receiver may fall behind before it is dropped.
const CLIENT_QUEUE: usize = 64;

/// Sends the signal, paced, to every connected receiver.
async fn serve(
    args: &SignalArgs,
    addr: &str,
    format: RawFormat,
    rate: drey_core::Rational,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let clients: std::sync::Arc<std::sync::Mutex<Vec<mpsc::Sender<bytes::Bytes>>>> =
        Default::default();
    let writers: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
        Default::default();
    let (joined_tx, mut joined) = tokio::sync::watch::channel(0usize);
    {
        let (clients, writers) = (clients.clone(), writers.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut sock, peer)) = listener.accept().await {
                let _ = sock.set_nodelay(true);
                let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(CLIENT_QUEUE);
                if let Ok(mut c) = clients.lock() {
                    c.push(tx);
                }
                let task = tokio::spawn(async move {
                    while let Some(b) = rx.recv().await {
                        if let Err(e) = sock.write_all(&b).await {
                            tracing::info!(%peer, error = %e, "receiver gone");
                            return;
                        }
                    }
                    let _ = sock.shutdown().await;
                });
                if let Ok(mut w) = writers.lock() {
                    w.push(task);
                }
                n += 1;
                let _ = joined_tx.send(n);
            }
        });
    }
    while *joined.borrow() < args.wait_clients {
        joined.changed().await?;
    }
    tracing::info!(
        receivers = args.wait_clients,
        frames = args.frames,
        "sending"
    );
    let period = Duration::from_nanos(rate.period_nanos().unwrap_or(20_000_000) as u64);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (w, h) = (args.width, args.height);
    for i in 0..args.frames {
        tick.tick().await;
        let n = args.first + i;
        let frame = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            signal_frame(format, w, h, n, &mut buf).map(|()| buf)
        })
        .await??;
        let mut msg = Vec::with_capacity(frame.len() + 16);
        msg.extend_from_slice(&drey_core::media::rawstream::encode_header(
            n,
            u32::try_from(frame.len())?,
        ));
        msg.extend_from_slice(&frame);
        let msg = bytes::Bytes::from(msg);
        if let Ok(mut c) = clients.lock() {
            c.retain(|tx| match tx.try_send(msg.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        frame = n,
                        "a receiver fell {CLIENT_QUEUE} frames behind: dropped"
                    );
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
    }
    // Closing the queues ends each connection once it has sent what it holds.
    if let Ok(mut c) = clients.lock() {
        c.clear();
    }
    let tasks: Vec<_> = writers
        .lock()
        .map(|mut w| w.drain(..).collect())
        .unwrap_or_default();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    Ok(())
}
