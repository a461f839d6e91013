//! TAMS webhooks: registrations (kept in the index's `meta` table as `webhook/ID`), the
//! events drey's writes produce ([`notify::NotifyingIndex`] wraps the index, so the TAMS
//! API, live ingest and background deletes all report), and delivery from the durable
//! outbox in the index ([`deliver`]): in order per webhook, retried with backoff, signed.

pub mod deliver;
pub mod notify;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use drey_core::model::{Flow, Segment, Source, Tags};
use drey_core::netguard::Cidr;
use drey_core::{Id, TimeRange, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::FileConfig;
use crate::storage::index::{Index, OutboxRow, SegmentRow};

/// The event types of the TAMS spec.
pub const EVENT_TYPES: &[&str] = &[
    "flows/created",
    "flows/updated",
    "flows/deleted",
    "flows/segments_added",
    "flows/segments_deleted",
    "sources/created",
    "sources/updated",
    "sources/deleted",
];

/// Webhook settings of `drey serve`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Ranges the SSRF guard lets through although it would refuse them.
    pub allow: Vec<Cidr>,
    /// Time a receiver has to answer one delivery.
    pub timeout: Duration,
    /// Deliveries a webhook may have waiting before it is put in `error`.
    pub max_pending: i64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allow: Vec::new(),
            timeout: Duration::from_secs(10),
            max_pending: 1_000_000,
        }
    }
}

impl WebhookConfig {
    pub fn from_file(file: &FileConfig) -> anyhow::Result<Self> {
        let mut c = WebhookConfig::default();
        for a in file.webhook_allow.iter().flatten() {
            c.allow.push(
                a.parse()
                    .map_err(|e: String| anyhow::anyhow!("webhook_allow: {e}"))?,
            );
        }
        if let Some(s) = file.webhook_timeout_secs {
            if s == 0 {
                bail!("webhook_timeout_secs must be at least 1");
            }
            c.timeout = Duration::from_secs(s);
        }
        if let Some(n) = file.webhook_max_pending {
            if n < 1 {
                bail!("webhook_max_pending must be at least 1");
            }
            c.max_pending = n;
        }
        Ok(c)
    }
}

/// A registered webhook as the API shows it (webhook-get), plus what it never shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Webhook {
    pub id: Id,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_name: Option<String>,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_ids: Option<Vec<Id>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ids: Option<Vec<Id>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_collected_by_ids: Option<Vec<Id>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_collected_by_ids: Option<Vec<Id>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_get_urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_storage_ids: Option<Vec<Id>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presigned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbose_storage: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_object_timerange: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// `created`, `started`, `disabled` or `error`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// Sent as the `api_key_name` header and the HMAC key of `X-Drey-Signature`; never shown.
    #[serde(default, skip_serializing)]
    pub api_key_value: Option<String>,
}

/// The stored form keeps `api_key_value` (skipped when the API serialises a webhook).
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    hook: Webhook,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_key_value: Option<String>,
}

/// The body of POST /service/webhooks and PUT /service/webhooks/{id}.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookBody {
    #[serde(default)]
    pub id: Option<Id>,
    pub url: String,
    #[serde(default)]
    pub api_key_name: Option<String>,
    #[serde(default)]
    pub api_key_value: Option<String>,
    pub events: Vec<String>,
    #[serde(default)]
    pub flow_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub source_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub flow_collected_by_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub source_collected_by_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub accept_get_urls: Option<Vec<String>>,
    #[serde(default)]
    pub accept_storage_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub presigned: Option<bool>,
    #[serde(default)]
    pub verbose_storage: Option<bool>,
    #[serde(default)]
    pub include_object_timerange: Option<bool>,
    #[serde(default)]
    pub tags: Option<Tags>,
    #[serde(default)]
    pub status: Option<String>,
}

/// A refusal of a webhook body: the field and why.
#[derive(Debug)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

impl WebhookBody {
    /// Checks the body and makes it a webhook with id `id` (status `created` unless
    /// `disabled` was asked for).
    pub fn into_webhook(self, id: Id, allow: &[Cidr]) -> Result<Webhook, Invalid> {
        check_url(&self.url, allow).map_err(|m| invalid("url", m))?;
        if self.events.is_empty() {
            return Err(invalid("events", "name at least one event type"));
        }
        if let Some(e) = self
            .events
            .iter()
            .find(|e| !EVENT_TYPES.contains(&e.as_str()))
        {
            return Err(invalid(
                "events",
                format!(
                    "unknown event type {e:?}; one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if self.source_collected_by_ids.is_some() {
            return Err(invalid(
                "source_collected_by_ids",
                "filtering by source collection is not supported",
            ));
        }
        if self.accept_get_urls.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(invalid(
                "accept_get_urls",
                "segments in events carry no get_urls (fetch them from /flows/{id}/segments): only [] is supported",
            ));
        }
        match (&self.api_key_name, &self.api_key_value) {
            (Some(n), _) if http::HeaderName::from_bytes(n.as_bytes()).is_err() => {
                return Err(invalid("api_key_name", "not a valid HTTP header name"));
            }
            (_, Some(v)) if http::HeaderValue::from_str(v).is_err() => {
                return Err(invalid("api_key_value", "not a valid HTTP header value"));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "api_key_name",
                    "api_key_value needs api_key_name (the header to carry it)",
                ));
            }
            _ => {}
        }
        let status = match self.status.as_deref() {
            None | Some("created") => "created",
            Some("disabled") => "disabled",
            Some(other) => {
                return Err(invalid(
                    "status",
                    format!("status must be \"created\" or \"disabled\", not {other:?}"),
                ));
            }
        };
        Ok(Webhook {
            id,
            url: self.url,
            api_key_name: self.api_key_name,
            events: self.events,
            flow_ids: self.flow_ids,
            source_ids: self.source_ids,
            flow_collected_by_ids: self.flow_collected_by_ids,
            source_collected_by_ids: None,
            accept_get_urls: self.accept_get_urls,
            accept_storage_ids: self.accept_storage_ids,
            presigned: self.presigned,
            verbose_storage: self.verbose_storage,
            include_object_timerange: self.include_object_timerange,
            tags: self.tags,
            status: status.to_owned(),
            error: None,
            api_key_value: self.api_key_value,
        })
    }
}

/// A webhook URL must be http(s) with a host; an address literal must pass the SSRF
/// guard (names are checked at every delivery, after resolution).
pub fn check_url(url: &str, allow: &[Cidr]) -> Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, not {:?}",
            u.scheme()
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "credentials in the URL are not accepted; use api_key_name/api_key_value".into(),
        );
    }
    let ip = match u.host() {
        Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
        Some(url::Host::Domain(_)) => None,
        None => return Err("the URL has no host".into()),
    };
    if let Some(ip) = ip
        && let Some(why) = drey_core::netguard::refused(ip, allow)
    {
        return Err(format!(
            "{ip} is {why}; webhooks may not call it unless webhook_allow lists it"
        ));
    }
    Ok(u)
}

/// What happened, with what the filters need.
#[derive(Debug, Clone)]
pub enum Event {
    FlowCreated(Box<Flow>),
    FlowUpdated(Box<Flow>),
    FlowDeleted {
        flow_id: Id,
        source_id: Option<Id>,
    },
    SegmentsAdded {
        flow: Box<Flow>,
        segments: Vec<SegmentRow>,
    },
    SegmentsDeleted {
        flow: Box<Flow>,
        timerange: TimeRange,
    },
    SourceCreated(Box<Source>),
    SourceUpdated(Box<Source>),
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::FlowCreated(_) => "flows/created",
            Event::FlowUpdated(_) => "flows/updated",
            Event::FlowDeleted { .. } => "flows/deleted",
            Event::SegmentsAdded { .. } => "flows/segments_added",
            Event::SegmentsDeleted { .. } => "flows/segments_deleted",
            Event::SourceCreated(_) => "sources/created",
            Event::SourceUpdated(_) => "sources/updated",
        }
    }

    fn flow(&self) -> Option<&Flow> {
        match self {
            Event::FlowCreated(f) | Event::FlowUpdated(f) => Some(f),
            Event::SegmentsAdded { flow, .. } | Event::SegmentsDeleted { flow, .. } => Some(flow),
            _ => None,
        }
    }

    fn flow_id(&self) -> Option<Id> {
        match self {
            Event::FlowDeleted { flow_id, .. } => Some(*flow_id),
            _ => self.flow().map(|f| f.id),
        }
    }

    fn source_id(&self) -> Option<Id> {
        match self {
            Event::FlowDeleted { source_id, .. } => *source_id,
            Event::SourceCreated(s) | Event::SourceUpdated(s) => Some(s.id),
            _ => self.flow().map(|f| f.source_id),
        }
    }

    /// Whether `hook` wants this event (type and the spec's filters).
    pub fn wanted_by(&self, hook: &Webhook) -> bool {
        if !hook.events.iter().any(|e| e == self.kind()) {
            return false;
        }
        let is_flow_event = self.kind().starts_with("flows/");
        if is_flow_event
            && let Some(ids) = &hook.flow_ids
            && !self.flow_id().is_some_and(|id| ids.contains(&id))
        {
            return false;
        }
        if let Some(ids) = &hook.source_ids
            && !self.source_id().is_some_and(|id| ids.contains(&id))
        {
            return false;
        }
        if is_flow_event && let Some(ids) = &hook.flow_collected_by_ids {
            let by = self.flow().and_then(|f| f.collected_by.clone());
            let ok = match by {
                // An empty list asks for flows no collection holds.
                None => ids.is_empty(),
                Some(by) if by.is_empty() => ids.is_empty(),
                Some(by) => by.iter().any(|p| ids.contains(p)),
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// The JSON body POSTed to `hook`.
    pub fn body(&self, hook: &Webhook, now_unix_ns: i64) -> String {
        let event = match self {
            Event::FlowCreated(f) | Event::FlowUpdated(f) => serde_json::json!({ "flow": f }),
            Event::FlowDeleted { flow_id, .. } => serde_json::json!({ "flow_id": flow_id }),
            Event::SegmentsAdded { flow, segments } => {
                let with_object = hook.include_object_timerange == Some(true);
                let segs: Vec<Segment> = segments
                    .iter()
                    .map(|s| segment_json(s, with_object))
                    .collect();
                serde_json::json!({ "flow_id": flow.id, "segments": segs })
            }
            Event::SegmentsDeleted { flow, timerange } => {
                serde_json::json!({ "flow_id": flow.id, "timerange": timerange })
            }
            Event::SourceCreated(s) | Event::SourceUpdated(s) => serde_json::json!({ "source": s }),
        };
        serde_json::json!({
            "event_timestamp": crate::storage::index::unix_ns_to_rfc3339(now_unix_ns),
            "event_type": self.kind(),
            "event": event,
        })
        .to_string()
    }
}

/// A segment as events carry it: its timing, no URLs.
fn segment_json(s: &SegmentRow, include_object_timerange: bool) -> Segment {
    Segment {
        object_id: s.object_id.clone(),
        ts_offset: s.ts_offset_ns.map(Timestamp::from_nanos),
        timerange: TimeRange::from_nanos(s.start_ns, s.end_ns),
        last_duration: s.last_duration_ns.map(Timestamp::from_nanos),
        object_timerange: include_object_timerange
            .then(|| s.object_timerange(true))
            .flatten(),
        sample_offset: s.sample_offset,
        sample_count: s.sample_count,
        key_frame_count: s.key_frame_count,
        get_urls: None,
        init_object: s
            .init_object_id
            .as_ref()
            .map(|id| drey_core::model::SegmentInitObject {
                object_id: id.clone(),
                get_urls: None,
            }),
    }
}

const META_PREFIX: &str = "webhook/";

/// How long the list of webhooks is reused before it is read again (another instance's
/// registration reaches this one's events within this time).
const REFRESH: Duration = Duration::from_secs(2);

/// The webhook registry and event recorder shared by the API, the index wrapper and the
/// delivery worker.
pub struct Webhooks {
    /// The index itself (not the notifying wrapper).
    index: Arc<dyn Index>,
    pub cfg: WebhookConfig,
    cache: Mutex<Option<(Instant, Arc<Vec<Webhook>>)>>,
    /// Bumped by every change to the registry here: a list read before a change must not
    /// be cached after it (that would hide a webhook just registered, and the events
    /// it should get, for up to [`REFRESH`]).
    generation: std::sync::atomic::AtomicU64,
    /// Wakes the delivery worker after events were queued here.
    pub wake: Notify,
}

impl Webhooks {
    pub fn new(index: Arc<dyn Index>, cfg: WebhookConfig) -> Arc<Self> {
        Arc::new(Webhooks {
            index,
            cfg,
            cache: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            wake: Notify::new(),
        })
    }

    /// Every registered webhook, in url order.
    pub async fn list(&self) -> anyhow::Result<Vec<Webhook>> {
        let mut out = Vec::new();
        for (_, v) in self.index.list_meta(META_PREFIX).await? {
            let s: Stored = serde_json::from_str(&v)?;
            out.push(Webhook {
                api_key_value: s.api_key_value,
                ..s.hook
            });
        }
        out.sort_by(|a, b| a.url.cmp(&b.url).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub async fn get(&self, id: Id) -> anyhow::Result<Option<Webhook>> {
        Ok(
            match self.index.get_meta(&format!("{META_PREFIX}{id}")).await? {
                Some(v) => {
                    let s: Stored = serde_json::from_str(&v)?;
                    Some(Webhook {
                        api_key_value: s.api_key_value,
                        ..s.hook
                    })
                }
                None => None,
            },
        )
    }

    pub async fn put(&self, hook: &Webhook) -> anyhow::Result<()> {
        let stored = Stored {
            api_key_value: hook.api_key_value.clone(),
            hook: hook.clone(),
        };
        self.index
            .set_meta(
                &format!("{META_PREFIX}{}", hook.id),
                &serde_json::to_string(&stored)?,
            )
            .await?;
        self.invalidate();
        self.wake.notify_one();
        Ok(())
    }

    pub async fn delete(&self, id: Id) -> anyhow::Result<()> {
        self.index
            .forget_webhook(&id.to_string(), &format!("{META_PREFIX}{id}"))
            .await?;
        self.invalidate();
        Ok(())
    }

    fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
    }

    /// The webhooks taking events (status `created` or `started`), cached briefly.
    pub async fn active(&self) -> Arc<Vec<Webhook>> {
        if let Ok(c) = self.cache.lock()
            && let Some((at, hooks)) = c.as_ref()
            && at.elapsed() < REFRESH
        {
            return hooks.clone();
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let hooks = match self.list().await {
            Ok(all) => Arc::new(
                all.into_iter()
                    .filter(|h| matches!(h.status.as_str(), "created" | "started"))
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "reading webhooks");
                Arc::new(Vec::new())
            }
        };
        if let Ok(mut c) = self.cache.lock()
            && self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation
        {
            *c = Some((Instant::now(), hooks.clone()));
        }
        hooks
    }

    /// True if some webhook takes `kind` events (the index wrapper skips the extra reads an
    /// event needs otherwise).
    pub async fn wants(&self, kind: &str) -> bool {
        self.active()
            .await
            .iter()
            .any(|h| h.events.iter().any(|e| e == kind))
    }

    /// Queues `event` for every webhook that wants it. A failure to queue is logged and
    /// counted (`drey_webhook_events_lost_total`): the change itself already happened.
    pub async fn record(&self, event: Event) {
        let hooks = self.active().await;
        let now = crate::util::unix_now_ns();
        let event_id = Id::new_v4().to_string();
        let rows: Vec<OutboxRow> = hooks
            .iter()
            .filter(|h| event.wanted_by(h))
            .map(|h| OutboxRow {
                seq: 0,
                webhook_id: h.id.to_string(),
                event_id: event_id.clone(),
                body: event.body(h, now),
                created_unix_ns: now,
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        match self.index.enqueue_webhook_events(&rows).await {
            Ok(()) => {
                metrics::counter!("drey_webhook_events_queued_total").increment(rows.len() as u64);
                self.wake.notify_one();
            }
            Err(e) => {
                metrics::counter!("drey_webhook_events_lost_total").increment(rows.len() as u64);
                tracing::error!(event = event.kind(), error = %e, "queueing a webhook event failed; it is lost");
            }
        }
    }
}
