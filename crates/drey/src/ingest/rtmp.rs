//! The RTMP server: accepts publishers (`rtmp://HOST:PORT/APP/KEY`), runs the sans-IO
//! protocol (`drey_core::media::rtmp`) over tokio, and feeds each publish's video and
//! audio to its [`Publish`]. Any protocol or media error closes that connection with a
//! logged reason; nothing else is affected.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use drey_core::media::rtmp::{RtmpEvent, RtmpServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Ingest;
use super::auth::{PublishDecision, PublishRequest, split_query};
use super::publish::Publish;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_BUFFER: usize = 64 * 1024;
/// Longest stream key accepted (it becomes a flow label and part of ids).
const MAX_KEY_LEN: usize = 256;

/// Why a connection ended; `kind` is the metric label.
#[derive(Debug)]
pub struct Closed {
    pub kind: &'static str,
    pub reason: String,
}

fn closed(kind: &'static str, reason: impl Into<String>) -> Closed {
    Closed {
        kind,
        reason: reason.into(),
    }
}

/// Starts the RTMP server: `ing.cfg.rtmp_threads` OS threads, each running a
/// single-threaded event loop (like nginx's workers: no cross-thread wake-ups per packet),
/// connections dealt to them in turn. Returns when `ing.stop` is cancelled and the
/// connections have wound down (each closes its publish, handing the last segment on).
pub fn start(
    ing: Arc<Ingest>,
    listener: std::net::TcpListener,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let tracker = tokio_util::task::TaskTracker::new();
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    for i in 0..ing.cfg.rtmp_threads.max(1) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        handles.push(rt.handle().clone());
        let stop = ing.stop.clone();
        let tracker = tracker.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("drey-rtmp-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        stop.cancelled().await;
                        // Let connections close their publishes before the loop stops.
                        tracker.close();
                        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
                    })
                })?,
        );
    }
    let accept_on = handles[0].clone();
    accept_on.spawn(async move {
        match TcpListener::from_std(listener) {
            Ok(l) => serve(ing, l, handles, tracker).await,
            Err(e) => tracing::error!(error = %e, "rtmp listener"),
        }
    });
    std::thread::Builder::new()
        .name("drey-rtmp".to_owned())
        .spawn(move || {
            for t in threads {
                let _ = t.join();
            }
        })
}

/// Accepts connections until `ing.stop` is cancelled, dealing them to the event loops.
async fn serve(
    ing: Arc<Ingest>,
    listener: TcpListener,
    loops: Vec<tokio::runtime::Handle>,
    tracker: tokio_util::task::TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(ing.cfg.max_connections.max(1)));
    let mut next = 0usize;
    loop {
        let (sock, peer) = tokio::select! {
            _ = ing.stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "rtmp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = ing.cfg.max_connections, "rtmp connection refused: too many connections");
            metrics::counter!("drey_rtmp_connections_closed_total", "kind" => "limit").increment(1);
            continue;
        };
        let Ok(sock) = sock.into_std() else {
            continue;
        };
        let ing = ing.clone();
        let rt = &loops[next % loops.len()];
        next += 1;
        tracker.spawn_on(
            async move {
                let Ok(sock) = TcpStream::from_std(sock) else {
                    return;
                };
                metrics::counter!("drey_rtmp_connections_total").increment(1);
                let end = Connection::new(ing, peer).run(sock).await;
                metrics::counter!("drey_rtmp_connections_closed_total", "kind" => end.kind)
                    .increment(1);
                if matches!(end.kind, "done" | "peer" | "shutdown") {
                    tracing::info!(%peer, reason = %end.reason, "rtmp connection closed");
                } else {
                    tracing::warn!(%peer, kind = end.kind, reason = %end.reason, "rtmp connection closed");
                }
                drop(slot);
            },
            rt,
        );
    }
}

/// A stream key drey accepts: it names flows, so keep it printable and short.
pub fn valid_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("empty stream key".to_owned());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("stream key longer than {MAX_KEY_LEN} bytes"));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
    {
        return Err(format!(
            "stream key contains {c:?} (allowed: A-Z a-z 0-9 - _ . ~)"
        ));
    }
    Ok(())
}

/// Common origin of the polling ticks, so all connections wake together.
static POLL_EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();

struct Connection {
    ing: Arc<Ingest>,
    peer: SocketAddr,
    rtmp: RtmpServer,
    publish: Option<Publish>,
    bytes_in: metrics::Counter,
}

impl Connection {
    fn new(ing: Arc<Ingest>, peer: SocketAddr) -> Self {
        Connection {
            ing,
            peer,
            rtmp: RtmpServer::new(),
            publish: None,
            bytes_in: metrics::counter!("drey_rtmp_bytes_received_total"),
        }
    }

    async fn run(mut self, sock: TcpStream) -> Closed {
        let result = self.serve(sock).await;
        self.end_publish().await;
        match result {
            Ok(()) => closed("done", "publisher finished"),
            Err(c) => c,
        }
    }

    async fn end_publish(&mut self) {
        if let Some(p) = self.publish.take() {
            let (stream, app, key) = (p.stream.clone(), p.app.clone(), p.key.clone());
            p.finish().await;
            self.ing.release_key(&stream);
            metrics::gauge!("drey_rtmp_publishers_active").decrement(1);
            self.ing.auth.publish_done(&app, &key, self.peer);
        }
    }

    async fn serve(&mut self, mut sock: TcpStream) -> Result<(), Closed> {
        let _ = sock.set_nodelay(true);
        let mut buf = vec![0u8; READ_BUFFER];
        // Long-lived futures, not rebuilt per read: a shutdown signal, and one deadline
        // (handshake, then idle) moved forward lazily only when it fires.
        let stop = self.ing.stop.clone();
        let cancelled = stop.cancelled();
        tokio::pin!(cancelled);
        let idle = self.ing.cfg.idle_timeout;
        let deadline = tokio::time::sleep(HANDSHAKE_TIMEOUT);
        tokio::pin!(deadline);
        let mut last_read = tokio::time::Instant::now();
        let mut handshake_seen = false;
        loop {
            let n = tokio::select! {
                biased;
                _ = &mut cancelled => {
                    return Err(closed("shutdown", "server shutting down"));
                }
                _ = &mut deadline => {
                    if !self.rtmp.handshake_done() {
                        return Err(closed("handshake", "handshake not completed in time"));
                    }
                    if last_read.elapsed() >= idle {
                        return Err(closed("idle", format!("nothing received for {idle:?}")));
                    }
                    deadline.as_mut().reset(last_read + idle);
                    continue;
                }
                r = sock.read(&mut buf) => match r {
                    Err(e) => return Err(closed("peer", format!("read error: {e}"))),
                    Ok(0) => return if self.publish.is_some() {
                        Err(closed("peer", "publisher disconnected"))
                    } else if self.rtmp.handshake_done() {
                        Ok(())
                    } else {
                        Err(closed("handshake", "peer closed during the handshake"))
                    },
                    Ok(n) => n,
                },
            };
            last_read = tokio::time::Instant::now();
            let result = self.process(&buf[..n]).await;
            // Replies (including a refusal's status) go out before the connection closes.
            let out = self.rtmp.output();
            if !out.is_empty() {
                sock.write_all(out)
                    .await
                    .map_err(|e| closed("peer", format!("write error: {e}")))?;
                out.clear();
            }
            result?;
            if !handshake_seen && self.rtmp.handshake_done() {
                handshake_seen = true;
                deadline.as_mut().reset(last_read + idle);
            }
            self.spool_abort()?;
            if self.publish.is_some() && !self.ing.cfg.rtmp_poll.is_zero() {
                let std = sock
                    .into_std()
                    .map_err(|e| closed("peer", format!("socket: {e}")))?;
                return self.serve_polled(std, buf, cancelled, last_read).await;
            }
        }
    }

    /// Feeds received bytes through the protocol and handles the events.
    async fn process(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        self.bytes_in.increment(bytes.len() as u64);
        let events = self.rtmp.input(bytes).map_err(|e| {
            let kind = if self.rtmp.handshake_done() {
                "protocol"
            } else {
                "handshake"
            };
            closed(kind, e.to_string())
        })?;
        for ev in events {
            self.event(ev).await?;
        }
        Ok(())
    }

    /// A publishing connection, read on a clock: every `rtmp_poll` (aligned across all
    /// connections) drain the socket without waiting for readiness. The socket is out of
    /// epoll, so arriving packets wake nobody; one timer wake-up per tick serves every
    /// publisher of this event loop. This is where most of the CPU of ingest went:
    /// per-packet wake-ups, not parsing.
    async fn serve_polled(
        &mut self,
        sock: std::net::TcpStream,
        mut buf: Vec<u8>,
        mut cancelled: std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
        mut last_read: tokio::time::Instant,
    ) -> Result<(), Closed> {
        use std::io::{ErrorKind, Read, Write};
        let period = self.ing.cfg.rtmp_poll;
        let idle = self.ing.cfg.idle_timeout;
        let epoch = *POLL_EPOCH.get_or_init(tokio::time::Instant::now);
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let since = epoch.elapsed().as_nanos() / period.as_nanos().max(1) + 1;
            let tick = epoch + period * u32::try_from(since).unwrap_or(u32::MAX);
            tokio::select! {
                biased;
                _ = &mut cancelled => return Err(closed("shutdown", "server shutting down")),
                _ = tokio::time::sleep_until(tick) => {}
            }
            let mut got = false;
            loop {
                match (&sock).read(&mut buf) {
                    Ok(0) => return Err(closed("peer", "publisher disconnected")),
                    Ok(n) => {
                        got = true;
                        let result = self.process(&buf[..n]).await;
                        pending.extend_from_slice(self.rtmp.output());
                        self.rtmp.output().clear();
                        result?;
                        if self.publish.is_none() {
                            // Unpublished: back to waiting on readiness for what follows.
                            let sock = TcpStream::from_std(sock)
                                .map_err(|e| closed("peer", format!("socket: {e}")))?;
                            if !pending.is_empty() {
                                let mut sock = sock;
                                sock.write_all(&pending)
                                    .await
                                    .map_err(|e| closed("peer", format!("write error: {e}")))?;
                            }
                            return Ok(());
                        }
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(closed("peer", format!("read error: {e}"))),
                }
            }
            while !pending.is_empty() {
                match (&sock).write(&pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(closed("peer", format!("write error: {e}"))),
                }
            }
            if pending.len() > 1 << 20 {
                return Err(closed(
                    "peer",
                    "publisher does not read the server's replies",
                ));
            }
            let now = tokio::time::Instant::now();
            if got {
                last_read = now;
            } else if now.duration_since(last_read) >= idle {
                return Err(closed("idle", format!("nothing received for {idle:?}")));
            }
            self.spool_abort()?;
        }
    }

    async fn media(&mut self, video: bool, timestamp: u32, data: &[u8]) -> Result<(), Closed> {
        match &mut self.publish {
            Some(p) => p
                .media(video, timestamp, data)
                .await
                .map_err(|e| closed("media", e.to_string())),
            None => Ok(()),
        }
    }

    /// The uploader ends the publish when a segment fits neither store nor spool.
    fn spool_abort(&mut self) -> Result<(), Closed> {
        if let Some(p) = &mut self.publish
            && p.abort.has_changed().unwrap_or(false)
            && let Some(reason) = p.abort.borrow_and_update().clone()
        {
            return Err(closed("spool_full", reason));
        }
        Ok(())
    }

    fn accept(&mut self, request_id: u32) -> Result<(), Closed> {
        self.rtmp
            .accept(request_id)
            .map_err(|e| closed("protocol", e.to_string()))
    }

    fn reject(&mut self, request_id: u32, kind: &'static str, reason: String) -> Closed {
        self.rtmp
            .reject(request_id, "NetStream.Publish.BadName", &reason);
        closed(kind, reason)
    }

    async fn event(&mut self, ev: RtmpEvent) -> Result<(), Closed> {
        match ev {
            RtmpEvent::Connect { request_id, app } => {
                let (app, _) = split_query(&app);
                if !self.ing.cfg.apps.iter().any(|a| a == app) {
                    let reason = format!(
                        "unknown RTMP application {app:?} (accepted: {})",
                        self.ing.cfg.apps.join(", ")
                    );
                    return Err(self.reject(request_id, "refused", reason));
                }
                self.accept(request_id)
            }
            RtmpEvent::Publish {
                request_id,
                app,
                key,
            } => self.start_publish(request_id, &app, &key).await,
            RtmpEvent::Play { request_id } => Err(self.reject(
                request_id,
                "refused",
                "RTMP playback is not offered; play the flow's HLS playlist".to_owned(),
            )),
            RtmpEvent::Metadata {
                has_video,
                frame_rate,
            } => {
                if let Some(p) = &mut self.publish {
                    p.metadata(has_video, frame_rate);
                }
                Ok(())
            }
            RtmpEvent::Video { timestamp, data } => self.media(true, timestamp, &data).await,
            RtmpEvent::Audio { timestamp, data } => self.media(false, timestamp, &data).await,
            RtmpEvent::PublishFinished => {
                self.end_publish().await;
                Ok(())
            }
        }
    }

    async fn start_publish(
        &mut self,
        request_id: u32,
        app_name: &str,
        stream_key: &str,
    ) -> Result<(), Closed> {
        if self.publish.is_some() {
            return Err(self.reject(
                request_id,
                "refused",
                "one publish per connection".to_owned(),
            ));
        }
        let (app, mut query) = split_query(app_name);
        let (key, key_query) = split_query(stream_key);
        query.extend(key_query);
        if let Err(reason) = valid_key(key) {
            return Err(self.reject(request_id, "refused", reason));
        }
        let req = PublishRequest {
            app: app.to_owned(),
            stream_key: key.to_owned(),
            query,
            peer: self.peer,
        };
        let renamed;
        let key = match self.ing.auth.authorize(&req).await {
            PublishDecision::Allow => key,
            PublishDecision::Deny(reason) => {
                return Err(self.reject(request_id, "auth", format!("publish denied: {reason}")));
            }
            PublishDecision::Rename(new) => {
                if let Err(reason) = valid_key(&new) {
                    return Err(self.reject(
                        request_id,
                        "auth",
                        format!("publish renamed to an invalid stream key {new:?}: {reason}"),
                    ));
                }
                tracing::info!(app, from = key, to = %new, "publish renamed by on_publish");
                renamed = new;
                renamed.as_str()
            }
        };
        let stream = format!("{app}/{key}");
        if !self.ing.claim_key(&stream) {
            return Err(self.reject(
                request_id,
                "refused",
                format!("stream {stream} is already being published"),
            ));
        }
        if let Err(e) = self.accept(request_id) {
            self.ing.release_key(&stream);
            return Err(e);
        }
        metrics::gauge!("drey_rtmp_publishers_active").increment(1);
        self.publish = Some(Publish::start(self.ing.clone(), app, key).await);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys() {
        assert!(valid_key("cam-1_a.b~c").is_ok());
        assert!(valid_key("").is_err());
        assert!(valid_key("a/b").is_err());
        assert!(valid_key(&"x".repeat(257)).is_err());
    }
}
