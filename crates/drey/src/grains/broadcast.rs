//! The sending side of the raw frame stream (`rawstream` framing): a listener that every
//! receiver connects to, each fed by its own bounded queue, so every receiver gets every
//! frame and one that falls too far behind is dropped (logged) instead of holding the
//! others up. Used by `drey signal --listen` and `drey play --listen`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use drey_core::media::rawstream::{encode_end, encode_header};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Frames a receiver may fall behind before it is dropped.
pub const CLIENT_QUEUE: usize = 64;

/// Receivers of one stream.
pub struct Broadcast {
    clients: Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>,
    writers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    joined: watch::Receiver<usize>,
    pub addr: std::net::SocketAddr,
    dropped: u64,
}

impl Broadcast {
    /// Listens on `addr` and takes receivers from now on.
    pub async fn bind(addr: &str) -> anyhow::Result<Broadcast> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr()?;
        let clients: Arc<Mutex<Vec<mpsc::Sender<Bytes>>>> = Arc::default();
        let writers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (joined_tx, joined) = watch::channel(0usize);
        {
            let (clients, writers) = (clients.clone(), writers.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while let Ok((mut sock, peer)) = listener.accept().await {
                    let _ = sock.set_nodelay(true);
                    let (tx, mut rx) = mpsc::channel::<Bytes>(CLIENT_QUEUE);
                    if let Ok(mut c) = clients.lock() {
                        c.push(tx);
                    }
                    tracing::info!(%peer, "receiver connected");
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
        Ok(Broadcast {
            clients,
            writers,
            joined,
            addr: local,
            dropped: 0,
        })
    }

    /// Waits until `n` receivers have connected (in all, since the start).
    pub async fn wait_clients(&mut self, n: usize) -> anyhow::Result<()> {
        while *self.joined.borrow() < n {
            self.joined.changed().await?;
        }
        Ok(())
    }

    /// Receivers connected now.
    pub fn receivers(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Receivers dropped for falling behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sends frame `n` to every receiver.
    pub fn send(&mut self, n: u64, frame: &[u8]) -> anyhow::Result<()> {
        let mut msg = Vec::with_capacity(frame.len() + 16);
        msg.extend_from_slice(&encode_header(n, u32::try_from(frame.len())?));
        msg.extend_from_slice(frame);
        self.send_bytes(Bytes::from(msg), n);
        Ok(())
    }

    fn send_bytes(&mut self, msg: Bytes, n: u64) {
        let mut dropped = 0;
        if let Ok(mut c) = self.clients.lock() {
            c.retain(|tx| match tx.try_send(msg.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        frame = n,
                        "a receiver fell {CLIENT_QUEUE} frames behind: dropped"
                    );
                    dropped += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
        self.dropped += dropped;
    }

    /// Ends the stream: with `end` (the number of the frame after the last) every
    /// receiver is told the stream ended on purpose; then the connections close once they
    /// have sent what they hold (at most 30 s each).
    pub async fn finish(self, end: Option<u64>) {
        if let Some(next) = end {
            let h = Bytes::copy_from_slice(&encode_end(next));
            // The end must not be lost to a full queue: wait for room.
            let senders: Vec<_> = self.clients.lock().map(|c| c.clone()).unwrap_or_default();
            for tx in senders {
                let _ = tokio::time::timeout(Duration::from_secs(30), tx.send(h.clone())).await;
            }
        }
        if let Ok(mut c) = self.clients.lock() {
            c.clear();
        }
        let tasks: Vec<_> = self
            .writers
            .lock()
            .map(|mut w| w.drain(..).collect())
            .unwrap_or_default();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    }
}
