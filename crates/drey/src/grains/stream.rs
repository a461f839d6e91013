//! Stream reception by N writer processes: every receiver connects to the frame stream
//! (`drey signal --listen`, `drey play --listen`, or any sender of the `rawstream`
//! framing), keeps a window of the frames it received, and stores the chunks of the shared
//! job it claims, only chunks whose frames it holds. When a receiver dies, its chunks'
//! leases pass and the others, which received the same frames, store them: every frame
//! once, none lost while the window still holds it. A stream of unknown length (an open
//! job) gets its chunks from what its receivers hold and its end from the sender's end
//! header.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use anyhow::{Context, bail};
use bytes::Bytes;
use drey_core::media::rawstream::{HEADER_LEN, Header, parse};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{ClaimWindow, FrameSource};

/// No end known (an open stream still running).
const NO_END: u64 = u64::MAX;

/// The frames a receiver holds.
pub struct Received {
    frames: Mutex<BTreeMap<u64, Bytes>>,
    ended: AtomicBool,
    /// Most frames kept (older ones are dropped).
    window: u64,
    chunk_frames: u64,
    /// The number of the frame after the last: the job's length, or what the sender's end
    /// header said; [`NO_END`] while unknown.
    end: AtomicU64,
    added: AtomicI64,
}

impl Received {
    /// A receiver's buffer; `total_frames` is `None` for a stream of unknown length.
    pub fn new(window: u64, chunk_frames: u64, total_frames: Option<u64>) -> Self {
        Received {
            frames: Mutex::new(BTreeMap::new()),
            ended: AtomicBool::new(false),
            window: window.max(chunk_frames * 2),
            chunk_frames: chunk_frames.max(1),
            end: AtomicU64::new(total_frames.unwrap_or(NO_END)),
            added: AtomicI64::new(-1),
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

    /// No more frames will come (the stream ended, or the connection to it is lost).
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
    }

    fn end_at(&self, next: u64) {
        self.end.fetch_min(next, Ordering::SeqCst);
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

    fn in_memory(&self) -> bool {
        true
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
        let end = self.end.load(Ordering::SeqCst);
        let hi = if end != NO_END && last + 1 >= end {
            (end - 1) / c
        } else {
            ((last + 1) / c).checked_sub(1)?
        };
        // Frames arrive in order over one connection, so the run first..=last has no hole.
        (lo <= hi).then_some((lo as i64, hi as i64))
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    fn end_frame(&self) -> Option<u64> {
        let end = self.end.load(Ordering::SeqCst);
        (end != NO_END).then_some(end)
    }

    fn added(&self) -> &AtomicI64 {
        &self.added
    }
}

/// A connection to a frame stream, before its frames are read into a window.
pub struct Connection {
    sock: TcpStream,
    frame_size: usize,
    /// The first frame, read to learn where the stream is.
    pub first: Option<(u64, Bytes)>,
}

impl Connection {
    /// Connects and reads the first frame (`first` is `None` when the stream ends at
    /// once).
    pub async fn open(addr: &str, frame_size: usize) -> anyhow::Result<Connection> {
        let sock = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to the frame stream at {addr}"))?;
        let mut c = Connection {
            sock,
            frame_size,
            first: None,
        };
        c.first = match c.next().await? {
            Some(Header::Frame(n)) => Some((n, c.payload(n).await?)),
            _ => None,
        };
        Ok(c)
    }

    /// The next header; `None` when the connection closes between frames.
    async fn next(&mut self) -> anyhow::Result<Option<Header>> {
        let mut h = [0u8; HEADER_LEN];
        match self.sock.read_exact(&mut h).await {
            Ok(_) => Ok(Some(parse(&h, self.frame_size)?)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e).context("reading the frame stream"),
        }
    }

    async fn payload(&mut self, n: u64) -> anyhow::Result<Bytes> {
        let mut payload = vec![0u8; self.frame_size];
        self.sock
            .read_exact(&mut payload)
            .await
            .with_context(|| format!("reading frame {n}"))?;
        Ok(Bytes::from(payload))
    }

    /// Reads the stream into `into` until the sender ends it (its end header) or the
    /// connection closes or fails; the frames received. Either way `into` is ended: no
    /// more frames will come to this receiver.
    pub async fn receive(self, into: &Received) -> anyhow::Result<u64> {
        let r = self.read_frames(into).await;
        into.end();
        r
    }

    async fn read_frames(mut self, into: &Received) -> anyhow::Result<u64> {
        let mut got = 0u64;
        let mut expect: Option<u64> = None;
        let limit = into.end.load(Ordering::SeqCst);
        if let Some((n, b)) = self.first.take() {
            if n >= limit {
                bail!("frame {n} is past the job's {limit} frames");
            }
            into.insert(n, b);
            expect = Some(n + 1);
            got += 1;
        }
        loop {
            let n = match self.next().await? {
                None => {
                    if expect != Some(limit) {
                        tracing::warn!(
                            "the frame stream closed without its end header: this receiver stops here"
                        );
                    }
                    break;
                }
                Some(Header::End(next)) => {
                    into.end_at(next);
                    break;
                }
                Some(Header::Frame(n)) => n,
            };
            if let Some(want) = expect
                && n != want
            {
                bail!("the frame stream skipped from frame {} to {n}", want - 1);
            }
            if n >= limit {
                bail!("frame {n} is past the job's {limit} frames");
            }
            let payload = self.payload(n).await?;
            into.insert(n, payload);
            expect = Some(n + 1);
            got += 1;
        }
        Ok(got)
    }
}
