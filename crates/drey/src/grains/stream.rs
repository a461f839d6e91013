//! Stream reception by N writer processes: every receiver connects to the frame stream
//! (`drey signal --listen`, or any sender of the `rawstream` framing), keeps a window of
//! the frames it received, and stores the chunks of the shared job it claims, only chunks
//! whose frames it holds. When a receiver dies, its chunks' leases pass and the others,
//! which received the same frames, store them: every frame once, none lost while the
//! window still holds it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use bytes::Bytes;
use drey_core::media::rawstream::{HEADER_LEN, parse_header};
use tokio::io::AsyncReadExt;

use super::{ClaimWindow, FrameSource};

/// The frames a receiver holds.
pub struct Received {
    frames: Mutex<BTreeMap<u64, Bytes>>,
    ended: AtomicBool,
    /// Most frames kept (older ones are dropped).
    window: u64,
    chunk_frames: u64,
    total_frames: u64,
}

impl Received {
    pub fn new(window: u64, chunk_frames: u64, total_frames: u64) -> Self {
        Received {
            frames: Mutex::new(BTreeMap::new()),
            ended: AtomicBool::new(false),
            window: window.max(chunk_frames * 2),
            chunk_frames: chunk_frames.max(1),
            total_frames,
        }
    }

    fn insert(&self, n: u64, b: Bytes) {
        if let Ok(mut f) = self.frames.lock() {
            f.insert(n, b);
            while f.len() as u64 > self.window {
                f.pop_first();
            }
        }
    }

    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }
}

impl FrameSource for Received {
    fn frame(&self, n: u64) -> anyhow::Result<Bytes> {
        let f = self
            .frames
            .lock()
            .map_err(|_| anyhow::anyhow!("frame buffer poisoned"))?;
        f.get(&n)
            .cloned()
            .with_context(|| format!("frame {n} is not (or no longer) held here"))
    }
}

impl ClaimWindow for Received {
    fn chunks(&self) -> Option<(i64, i64)> {
        let f = self.frames.lock().ok()?;
        let (&first, _) = f.first_key_value()?;
        let (&last, _) = f.last_key_value()?;
        let c = self.chunk_frames;
        let lo = first.div_ceil(c);
        // A chunk is whole when its last frame is here (the final chunk may be short).
        let hi = if last + 1 >= self.total_frames {
            (self.total_frames - 1) / c
        } else {
            ((last + 1) / c).checked_sub(1)?
        };
        // Frames arrive in order over one connection, so the run first..=last has no hole.
        (lo <= hi).then_some((lo as i64, hi as i64))
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

/// Reads the stream at `addr` into `into` until the sender closes it.
pub async fn receive(addr: &str, frame_size: usize, into: &Received) -> anyhow::Result<u64> {
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the frame stream at {addr}"))?;
    let mut got = 0u64;
    let mut expect: Option<u64> = None;
    loop {
        let mut h = [0u8; HEADER_LEN];
        match sock.read_exact(&mut h).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).context("reading the frame stream"),
        }
        let n = parse_header(&h, frame_size)?;
        if let Some(want) = expect
            && n != want
        {
            bail!("the frame stream skipped from frame {} to {n}", want - 1);
        }
        if n >= into.total_frames {
            bail!("frame {n} is past the job's {} frames", into.total_frames);
        }
        let mut payload = vec![0u8; frame_size];
        sock.read_exact(&mut payload)
            .await
            .with_context(|| format!("reading frame {n}"))?;
        into.insert(n, Bytes::from(payload));
        expect = Some(n + 1);
        got += 1;
    }
    into.end();
    Ok(got)
}
