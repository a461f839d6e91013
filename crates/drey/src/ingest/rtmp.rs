//! The RTMP server: accepts publishers (`rtmp://HOST:PORT/APP/KEY`), runs the sans-IO
//! protocol (`drey_core::media::rtmp`) over tokio, and feeds each publish's video and
//! audio to its [`Publish`]. Any protocol or media error closes that connection with a
//! logged reason; nothing else is affected.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    rtmp: RtmpServer,
    publish: Option<Publish>,
}

impl Connection {
    fn new(ing: Arc<Ingest>, peer: SocketAddr) -> Self {
        Connection {
            ing,
            peer,
            rtmp: RtmpServer::new(),
            publish: None,
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
            let stream = p.stream.clone();
            p.finish().await;
            self.ing.release_key(&stream);
            metrics::gauge!("drey_rtmp_publishers_active").decrement(1);
        }
    }

    async fn serve(&mut self, mut sock: TcpStream) -> Result<(), Closed> {
        let _ = sock.set_nodelay(true);
        let mut buf = vec![0u8; READ_BUFFER];
        let handshake_deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            let stop = self.ing.stop.clone();
            let idle = if self.rtmp.handshake_done() {
                self.ing.cfg.idle_timeout
            } else {
                handshake_deadline.saturating_duration_since(Instant::now())
            };
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
                    Err(_) if !self.rtmp.handshake_done() => {
                        return Err(closed("handshake", "handshake not completed in time"));
                    }
                    Err(_) => return Err(closed("idle", format!("nothing received for {idle:?}"))),
                    Ok(Err(e)) => return Err(closed("peer", format!("read error: {e}"))),
                    Ok(Ok(0)) => return if publishing {
                        Err(closed("peer", "publisher disconnected"))
                    } else if self.rtmp.handshake_done() {
                        Ok(())
                    } else {
                        Err(closed("handshake", "peer closed during the handshake"))
                    },
                    Ok(Ok(n)) => n,
                },
            };
            metrics::counter!("drey_rtmp_bytes_received_total").increment(n as u64);
            let events = self.rtmp.input(&buf[..n]).map_err(|e| {
                let kind = if self.rtmp.handshake_done() {
                    "protocol"
                } else {
                    "handshake"
                };
                closed(kind, e.to_string())
            })?;
            let mut result = Ok(());
            for ev in events {
                result = self.event(ev).await;
                if result.is_err() {
                    break;
                }
            }
            // Replies (including a refusal's status) go out before the connection closes.
            let out = self.rtmp.output();
            if !out.is_empty() {
                sock.write_all(out)
                    .await
                    .map_err(|e| closed("peer", format!("write error: {e}")))?;
                out.clear();
            }
            result?;
        }
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
            RtmpEvent::Video { timestamp, data } => match &mut self.publish {
                Some(p) => p
                    .video(timestamp, &data)
                    .await
                    .map_err(|e| closed("media", e.to_string())),
                None => Ok(()),
            },
            RtmpEvent::Audio { timestamp, data } => match &mut self.publish {
                Some(p) => p
                    .audio(timestamp, &data)
                    .await
                    .map_err(|e| closed("media", e.to_string())),
                None => Ok(()),
            },
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
