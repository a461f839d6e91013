//! The RTMP server: accepts publishers (`rtmp://HOST:PORT/APP/KEY`), runs the handshake and
//! the chunk/AMF session (rml_rtmp, sans-IO) over tokio, and feeds each publish's video and
//! audio to its [`Publish`]. Any protocol or media error closes that connection with a
//! logged reason; nothing else is affected.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
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

/// Accepts connections until `ing.stop` is cancelled.
pub async fn serve(ing: Arc<Ingest>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(ing.cfg.max_connections.max(1)));
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
        let ing = ing.clone();
        tokio::spawn(async move {
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
        });
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

struct Connection {
    ing: Arc<Ingest>,
    peer: SocketAddr,
    session: Option<ServerSession>,
    out: Vec<u8>,
    publish: Option<Publish>,
}

impl Connection {
    fn new(ing: Arc<Ingest>, peer: SocketAddr) -> Self {
        Connection {
            ing,
            peer,
            session: None,
            out: Vec::new(),
            publish: None,
        }
    }

    async fn run(mut self, sock: TcpStream) -> Closed {
        let result = self.serve(sock).await;
        if let Some(p) = self.publish.take() {
            let stream = p.stream.clone();
            p.finish().await;
            self.ing.release_key(&stream);
            metrics::gauge!("drey_rtmp_publishers_active").decrement(1);
        }
        match result {
            Ok(()) => closed("done", "publisher finished"),
            Err(c) => c,
        }
    }

    async fn serve(&mut self, mut sock: TcpStream) -> Result<(), Closed> {
        let _ = sock.set_nodelay(true);
        let mut buf = vec![0u8; READ_BUFFER];
        let remaining = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut sock, &mut buf))
            .await
            .map_err(|_| closed("handshake", "handshake not completed in time"))??;
        let (session, initial) = ServerSession::new(ServerSessionConfig::new())
            .map_err(|e| closed("protocol", format!("session setup: {e:?}")))?;
        self.session = Some(session);
        self.handle_results(initial).await?;
        self.input(&remaining).await?;
        self.flush(&mut sock).await?;
        loop {
            let stop = self.ing.stop.clone();
            let idle = self.ing.cfg.idle_timeout;
            let publishing = self.publish.is_some();
            let abort = async {
                match &mut self.publish {
                    Some(p) => match p.abort.changed().await {
                        Ok(()) => p.abort.borrow().clone(),
                        // The uploader is gone without a reason: nothing to wait for.
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            let n = tokio::select! {
                _ = stop.cancelled() => {
                    return Err(closed("shutdown", "server shutting down"));
                }
                reason = abort => {
                    if let Some(reason) = reason {
                        return Err(closed("spool_full", reason));
                    }
                    continue;
                }
                r = tokio::time::timeout(idle, sock.read(&mut buf)) => match r {
                    Err(_) => return Err(closed("idle", format!("nothing received for {idle:?}"))),
                    Ok(Err(e)) => return Err(closed("peer", format!("read error: {e}"))),
                    Ok(Ok(0)) => return if publishing {
                        Err(closed("peer", "publisher disconnected"))
                    } else {
                        Ok(())
                    },
                    Ok(Ok(n)) => n,
                },
            };
            metrics::counter!("drey_rtmp_bytes_received_total").increment(n as u64);
            self.input(&buf[..n]).await?;
            self.flush(&mut sock).await?;
        }
    }

    async fn flush(&mut self, sock: &mut TcpStream) -> Result<(), Closed> {
        if !self.out.is_empty() {
            sock.write_all(&self.out)
                .await
                .map_err(|e| closed("peer", format!("write error: {e}")))?;
            self.out.clear();
        }
        Ok(())
    }

    fn session(&mut self) -> &mut ServerSession {
        self.session
            .as_mut()
            .expect("session set after the handshake")
    }

    /// Feeds bytes to the session, guarding against a panic in the protocol library: a
    /// panic there is a refusal of this connection, not of the server.
    async fn input(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        if bytes.is_empty() {
            return Ok(());
        }
        let session = self.session();
        let results = std::panic::catch_unwind(AssertUnwindSafe(|| session.handle_input(bytes)))
            .map_err(|_| closed("protocol", "RTMP parser panicked on this input"))?
            .map_err(|e| closed("protocol", format!("bad RTMP chunk stream: {e:?}")))?;
        self.handle_results(results).await
    }

    async fn handle_results(&mut self, results: Vec<ServerSessionResult>) -> Result<(), Closed> {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => self.out.extend_from_slice(&p.bytes),
                ServerSessionResult::RaisedEvent(ev) => self.event(ev).await?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn respond(
        &mut self,
        r: Result<Vec<ServerSessionResult>, rml_rtmp::sessions::ServerSessionError>,
    ) -> Result<(), Closed> {
        let results = r.map_err(|e| closed("protocol", format!("{e:?}")))?;
        for r in results {
            if let ServerSessionResult::OutboundResponse(p) = r {
                self.out.extend_from_slice(&p.bytes);
            }
        }
        Ok(())
    }

    fn reject(&mut self, request_id: u32, kind: &'static str, reason: String) -> Closed {
        let r = self
            .session()
            .reject_request(request_id, "NetStream.Publish.BadName", &reason);
        let _ = self.respond(r);
        closed(kind, reason)
    }

    async fn event(&mut self, ev: ServerSessionEvent) -> Result<(), Closed> {
        match ev {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                let (app, _) = split_query(&app_name);
                if !self.ing.cfg.apps.iter().any(|a| a == app) {
                    let reason = format!(
                        "unknown RTMP application {app:?} (accepted: {})",
                        self.ing.cfg.apps.join(", ")
                    );
                    return Err(self.reject(request_id, "refused", reason));
                }
                let r = self.session().accept_request(request_id);
                self.respond(r)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.start_publish(request_id, &app_name, &stream_key).await,
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => Err(self.reject(
                request_id,
                "refused",
                "RTMP playback is not offered; play the flow's HLS playlist".to_owned(),
            )),
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(p) = &mut self.publish {
                    let has_video =
                        metadata.video_codec_id.is_some() || metadata.video_width.is_some();
                    p.metadata(
                        has_video,
                        metadata
                            .video_frame_rate
                            .map(f64::from)
                            .filter(|f| f.is_finite()),
                    );
                }
                Ok(())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => match &mut self.publish {
                Some(p) => p
                    .video(timestamp.value, &data)
                    .await
                    .map_err(|e| closed("media", e.to_string())),
                None => Ok(()),
            },
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => match &mut self.publish {
                Some(p) => p
                    .audio(timestamp.value, &data)
                    .await
                    .map_err(|e| closed("media", e.to_string())),
                None => Ok(()),
            },
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(p) = self.publish.take() {
                    let stream = p.stream.clone();
                    p.finish().await;
                    self.ing.release_key(&stream);
                    metrics::gauge!("drey_rtmp_publishers_active").decrement(1);
                }
                Ok(())
            }
            _ => Ok(()),
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
        if let PublishDecision::Deny(reason) = self.ing.auth.authorize(&req).await {
            return Err(self.reject(request_id, "auth", format!("publish denied: {reason}")));
        }
        let stream = format!("{app}/{key}");
        if !self.ing.claim_key(&stream) {
            return Err(self.reject(
                request_id,
                "refused",
                format!("stream {stream} is already being published"),
            ));
        }
        let r = self.session().accept_request(request_id);
        if let Err(e) = self.respond(r) {
            self.ing.release_key(&stream);
            return Err(e);
        }
        metrics::gauge!("drey_rtmp_publishers_active").increment(1);
        self.publish = Some(Publish::start(self.ing.clone(), app, key).await);
        Ok(())
    }
}

/// Runs the server side of the RTMP handshake; returns the bytes that followed it.
async fn handshake(sock: &mut TcpStream, buf: &mut [u8]) -> Result<Vec<u8>, Closed> {
    let mut hs = Handshake::new(PeerType::Server);
    loop {
        let n = sock
            .read(buf)
            .await
            .map_err(|e| closed("peer", format!("read error in handshake: {e}")))?;
        if n == 0 {
            return Err(closed("handshake", "peer closed during the handshake"));
        }
        metrics::counter!("drey_rtmp_bytes_received_total").increment(n as u64);
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| hs.process_bytes(&buf[..n])))
            .map_err(|_| closed("handshake", "handshake parser panicked on this input"))?
            .map_err(|e| closed("handshake", format!("bad handshake: {e:?}")))?;
        match r {
            HandshakeProcessResult::InProgress { response_bytes } => {
                write(sock, &response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                write(sock, &response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

async fn write(sock: &mut TcpStream, bytes: &[u8]) -> Result<(), Closed> {
    if bytes.is_empty() {
        return Ok(());
    }
    sock.write_all(bytes)
        .await
        .map_err(|e| closed("peer", format!("write error: {e}")))
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
