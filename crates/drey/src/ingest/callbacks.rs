//! Publish callbacks, as nginx-rtmp's `on_publish`/`on_publish_done` (form-encoded POSTs
//! that existing receivers understand) plus drey's `on_segment` (JSON): an HTTP service
//! of the operator's decides who publishes under which name and hears what was stored.
//! `on_publish` answers 2xx (allow), 3xx with `Location: NAME` (publish under that stream
//! key instead, like nginx-rtmp's rename) or anything else (deny); no answer within the
//! timeout is a deny unless `on_publish_unreachable = "allow"`. The other two are sent in
//! the background, at most `MAX_IN_FLIGHT` at once (more are dropped and counted), so a
//! slow receiver never holds ingest up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::auth::{PublishDecision, PublishRequest};

/// Background callbacks in flight at most.
const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct CallbackConfig {
    pub on_publish: Option<String>,
    pub on_publish_done: Option<String>,
    pub on_segment: Option<String>,
    pub timeout: Duration,
    /// Allow a publish when `on_publish` cannot be reached or does not answer in time.
    pub allow_when_unreachable: bool,
}

impl CallbackConfig {
    pub fn any(&self) -> bool {
        self.on_publish.is_some() || self.on_publish_done.is_some() || self.on_segment.is_some()
    }

    /// Checks the URLs (http or https).
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, u) in [
            ("on_publish", &self.on_publish),
            ("on_publish_done", &self.on_publish_done),
            ("on_segment", &self.on_segment),
        ] {
            if let Some(u) = u {
                let parsed =
                    url::Url::parse(u).map_err(|e| anyhow::anyhow!("{name}: {u:?}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    anyhow::bail!("{name}: {u:?} is not an http(s) URL");
                }
            }
        }
        Ok(())
    }
}

/// A segment stored and indexed, as `on_segment` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentStored {
    /// `app/stream_key` (only the stream key for segments drained from a spool after a
    /// restart, where the app is no longer known).
    pub stream: String,
    pub flow_id: drey_core::Id,
    pub object_id: String,
    pub timerange: drey_core::TimeRange,
    pub format: &'static str,
    pub key_frame_count: u32,
}

pub struct Callbacks {
    cfg: CallbackConfig,
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
    /// Background callbacks run here (the main runtime, not an RTMP thread's).
    main: tokio::runtime::Handle,
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

impl Callbacks {
    pub fn new(cfg: CallbackConfig) -> anyhow::Result<Arc<Self>> {
        cfg.validate()?;
        Ok(Arc::new(Callbacks {
            http: reqwest::Client::builder()
                .timeout(cfg.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("drey/", env!("CARGO_PKG_VERSION"), " (callbacks)"))
                .build()?,
            cfg,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            main: tokio::runtime::Handle::current(),
        }))
    }

    /// Asks `on_publish` (when configured) about a publish the token check let through.
    pub async fn on_publish(&self, req: &PublishRequest) -> PublishDecision {
        let Some(url) = &self.cfg.on_publish else {
            return PublishDecision::Allow;
        };
        let addr = req.peer.ip().to_string();
        let mut pairs = vec![
            ("call", "publish"),
            ("app", req.app.as_str()),
            ("name", req.stream_key.as_str()),
            ("type", "live"),
            ("addr", addr.as_str()),
        ];
        // The publisher's own arguments, as nginx-rtmp passes them (drey's token is drey's).
        for (k, v) in &req.query {
            if k != "token" && !matches!(k.as_str(), "call" | "app" | "name" | "type" | "addr") {
                pairs.push((k, v));
            }
        }
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&pairs))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    format!("on_publish did not answer within {:?}", self.cfg.timeout)
                } else {
                    format!("on_publish unreachable: {e}")
                };
                metrics::counter!("drey_callbacks_total", "call" => "publish", "result" => "failed")
                    .increment(1);
                return if self.cfg.allow_when_unreachable {
                    tracing::warn!(app = %req.app, name = %req.stream_key, "{what}; allowed (on_publish_unreachable = allow)");
                    PublishDecision::Allow
                } else {
                    PublishDecision::Deny(what)
                };
            }
        };
        let status = resp.status();
        metrics::counter!("drey_callbacks_total", "call" => "publish", "result" => status.as_str().to_owned())
            .increment(1);
        if status.is_success() {
            PublishDecision::Allow
        } else if status.is_redirection() {
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim()
                .to_owned();
            if location.is_empty() || location.contains("://") || location.contains('/') {
                PublishDecision::Deny(format!(
                    "on_publish answered {status} with Location {location:?}: only a new stream key (no URL) is supported"
                ))
            } else {
                PublishDecision::Rename(location)
            }
        } else {
            PublishDecision::Deny(format!("on_publish answered {status}"))
        }
    }

    /// Runs a background callback unless too many are in flight.
    fn background(&self, call: &'static str, url: &str, body: String, content_type: &'static str) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            metrics::counter!("drey_callbacks_dropped_total", "call" => call).increment(1);
            tracing::warn!(
                call,
                "{MAX_IN_FLIGHT} callbacks in flight: this one is dropped"
            );
            return;
        };
        let req = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body);
        self.main.spawn(async move {
            let result = match req.send().await {
                Ok(r) if r.status().is_success() => "ok".to_owned(),
                Ok(r) => {
                    tracing::info!(call, status = %r.status(), "callback answered with an error");
                    r.status().as_str().to_owned()
                }
                Err(e) => {
                    tracing::info!(call, error = %e, "callback failed");
                    "failed".to_owned()
                }
            };
            metrics::counter!("drey_callbacks_total", "call" => call, "result" => result)
                .increment(1);
            drop(permit);
        });
    }

    /// Tells `on_publish_done` that a publish ended.
    pub fn publish_done(&self, app: &str, name: &str, peer: std::net::SocketAddr) {
        if let Some(url) = &self.cfg.on_publish_done {
            let addr = peer.ip().to_string();
            let body = form(&[
                ("call", "publish_done"),
                ("app", app),
                ("name", name),
                ("type", "live"),
                ("addr", &addr),
            ]);
            self.background(
                "publish_done",
                url,
                body,
                "application/x-www-form-urlencoded",
            );
        }
    }

    /// Tells `on_segment` that a segment was stored and indexed.
    pub fn segment_stored(&self, s: &SegmentStored) {
        if let Some(url) = &self.cfg.on_segment {
            let mut body = serde_json::json!(s);
            body["call"] = "segment".into();
            self.background("segment", url, body.to_string(), "application/json");
        }
    }
}
