//! Webhook delivery from the outbox: one task per webhook at a time, holding the webhook's
//! lease in the index (so one instance delivers it even when many share the database),
//! POSTs its waiting events oldest first, one at a time, and deletes each once the receiver
//! answered 2xx. A failure keeps the event and retries it after a backoff (1 s doubling to
//! 60 s), so a receiver that was down gets every event afterwards, in order. Each POST
//! carries `X-Drey-Event-Id` (the same for every retry: receivers deduplicate on it),
//! `X-Drey-Timestamp` and, when the webhook has an `api_key_value`, that header plus
//! `X-Drey-Signature: sha256=HEX`, the HMAC-SHA256 of `TIMESTAMP.EVENT_ID.BODY` keyed by
//! the `api_key_value`. Names resolve through the SSRF guard; redirects are not followed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drey_core::netguard::{self, Cidr};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Webhook, Webhooks};
use crate::util::unix_now_ns;

/// How long a deliverer's lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(30);
/// Pause between polls for events queued by other instances.
const POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Resolves names for deliveries, dropping addresses the SSRF guard refuses.
struct GuardedResolver {
    allow: Vec<Cidr>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| netguard::refused(a.ip(), &allow).is_none())
                .collect();
            if ok.is_empty() {
                let why = addrs
                    .first()
                    .and_then(|a| netguard::refused(a.ip(), &allow))
                    .unwrap_or("unresolvable");
                return Err(format!("{host} resolves only to refused addresses ({why})").into());
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client deliveries use.
pub fn client(cfg: &super::WebhookConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver {
            allow: cfg.allow.clone(),
        })
        .user_agent(concat!("drey/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
        .build()?)
}

/// The signature header value for a delivery.
pub fn signature(key: &str, timestamp: i64, event_id: &str, body: &str) -> String {
    let mac = drey_core::sigv4::hmac(
        key.as_bytes(),
        format!("{timestamp}.{event_id}.{body}").as_bytes(),
    );
    format!("sha256={}", drey_core::sigv4::hex(&mac))
}

/// Starts the delivery loop; it ends when `stop` is cancelled.
pub fn spawn(hooks: Arc<Webhooks>, stop: CancellationToken) -> anyhow::Result<JoinHandle<()>> {
    let http = client(&hooks.cfg)?;
    let owner = format!("{}-{}", std::process::id(), drey_core::Id::new_v4());
    Ok(tokio::spawn(async move {
        let mut running: HashMap<drey_core::Id, JoinHandle<()>> = HashMap::new();
        let mut retry_at: HashMap<drey_core::Id, (Instant, u32)> = HashMap::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(drey_core::Id, bool)>();
        loop {
            running.retain(|_, h| !h.is_finished());
            let now = Instant::now();
            for hook in hooks.active().await.iter() {
                if running.contains_key(&hook.id)
                    || retry_at.get(&hook.id).is_some_and(|(t, _)| *t > now)
                {
                    continue;
                }
                let (hooks, http, owner, tx, hook) = (
                    hooks.clone(),
                    http.clone(),
                    owner.clone(),
                    tx.clone(),
                    hook.clone(),
                );
                running.insert(
                    hook.id,
                    tokio::spawn(async move {
                        let ok = drain(&hooks, &http, &owner, &hook).await;
                        let _ = tx.send((hook.id, ok));
                    }),
                );
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = hooks.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                Some((id, ok)) = rx.recv() => {
                    if ok {
                        retry_at.remove(&id);
                    } else {
                        let n = retry_at.get(&id).map_or(0, |(_, n)| n + 1);
                        let wait = Duration::from_secs(1 << n.min(6)).min(MAX_BACKOFF);
                        retry_at.insert(id, (Instant::now() + wait, n));
                    }
                }
            }
        }
        for (_, h) in running {
            h.abort();
        }
    }))
}

/// Delivers a webhook's waiting events while it holds the lease: true when the outbox is
/// empty (or the lease is another instance's), false after a failed delivery.
async fn drain(hooks: &Webhooks, http: &reqwest::Client, owner: &str, hook: &Webhook) -> bool {
    let id = hook.id.to_string();
    loop {
        let now = unix_now_ns();
        let lease_ns = i64::try_from(LEASE.as_nanos()).unwrap_or(i64::MAX);
        match hooks
            .index
            .claim_webhook_lease(&id, owner, now, now.saturating_add(lease_ns))
            .await
        {
            Ok(true) => {}
            Ok(false) => return true,
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "webhook lease");
                return false;
            }
        }
        let batch = match hooks.index.pending_webhook_events(&id, 20).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "reading the webhook outbox");
                return false;
            }
        };
        if batch.is_empty() {
            return true;
        }
        for row in batch {
            let started = Instant::now();
            match post(http, hook, &row.event_id, &row.body, &hooks.cfg.allow).await {
                Ok(()) => {
                    metrics::counter!("drey_webhook_deliveries_total", "result" => "ok")
                        .increment(1);
                    metrics::histogram!("drey_webhook_delivery_seconds")
                        .record(started.elapsed().as_secs_f64());
                    if let Err(e) = hooks.index.ack_webhook_events(&id, row.seq).await {
                        // Delivered but not forgotten: it goes again (same event id).
                        tracing::warn!(webhook = %id, error = %e, "acknowledging a webhook delivery");
                        return false;
                    }
                    if hook.status == "created" {
                        mark(hooks, hook, "started", None).await;
                    }
                }
                Err(why) => {
                    metrics::counter!("drey_webhook_deliveries_total", "result" => "failed")
                        .increment(1);
                    tracing::info!(webhook = %id, url = %hook.url, event = %row.event_id, reason = %why, "webhook delivery failed; will retry");
                    if let Ok(n) = hooks.index.count_webhook_events(&id).await
                        && n > hooks.cfg.max_pending
                    {
                        mark(
                            hooks,
                            hook,
                            "error",
                            Some(format!(
                                "{n} events waiting (more than webhook_max_pending); last failure: {why}. \
                                 No new events are queued; set status to created to resume delivery"
                            )),
                        )
                        .await;
                    }
                    return false;
                }
            }
        }
    }
}

async fn post(
    http: &reqwest::Client,
    hook: &Webhook,
    event_id: &str,
    body: &str,
    allow: &[Cidr],
) -> Result<(), String> {
    // Address literals skip the resolver: check them here.
    super::check_url(&hook.url, allow)?;
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut req = http
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("x-drey-event-id", event_id)
        .header("x-drey-timestamp", ts.to_string())
        .body(body.to_owned());
    if let (Some(name), Some(value)) = (&hook.api_key_name, &hook.api_key_value) {
        req = req
            .header(name.as_str(), value.as_str())
            .header("x-drey-signature", signature(value, ts, event_id, body));
    }
    let resp = req.send().await.map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("receiver answered {}", resp.status()))
    }
}

/// Records a status change made by the service (started, error), unless the webhook was
/// changed or deleted meanwhile.
async fn mark(hooks: &Webhooks, hook: &Webhook, status: &str, error: Option<String>) {
    let Ok(Some(mut current)) = hooks.get(hook.id).await else {
        return;
    };
    if current.status == status || current.status == "disabled" {
        return;
    }
    current.status = status.to_owned();
    current.error = error.map(|m| {
        serde_json::json!({"type": "DeliveryFailed", "summary": m,
            "time": crate::storage::index::unix_ns_to_rfc3339(unix_now_ns())})
    });
    if let Err(e) = hooks.put(&current).await {
        tracing::warn!(webhook = %hook.id, error = %e, "updating webhook status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    #[tokio::test]
    async fn resolver_drops_refused_addresses() {
        let r = GuardedResolver { allow: Vec::new() };
        let ok: Vec<SocketAddr> = r
            .resolve("127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(ok.len(), 1);
        let err = match r.resolve("169.254.169.254".parse().unwrap()).await {
            Ok(_) => panic!("a link-local address resolved"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("link-local"), "{err}");
        let allowed = GuardedResolver {
            allow: vec!["169.254.0.0/16".parse().unwrap()],
        };
        assert!(
            allowed
                .resolve("169.254.169.254".parse().unwrap())
                .await
                .is_ok()
        );
    }

    #[test]
    fn signatures_bind_time_id_and_body() {
        let s = signature("k", 1, "e", "{}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64, "{s}");
        assert_ne!(s, signature("k", 2, "e", "{}"));
        assert_ne!(s, signature("k", 1, "f", "{}"));
        assert_ne!(s, signature("k", 1, "e", "{ }"));
        assert_ne!(s, signature("j", 1, "e", "{}"));
    }
}
