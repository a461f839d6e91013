//! What every handler shares: the index, the object store, service settings and the
//! wake-up signals of the background workers.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;

use crate::packaging::hls::{Hls, HlsConfig};
use crate::storage::events::SegmentEvents;
use crate::storage::index::Index;
use crate::storage::objects::Objects;

/// Service settings the HTTP layer needs (resolved from config by `cmds::serve`).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Base URL clients reach this instance at; used in get/put URLs and Link headers.
    pub public_url: String,
    /// How long an allocated object id may stay unregistered before collection.
    pub min_object_timeout: Duration,
    /// Validity of presigned URLs (S3); at most `min_object_timeout`.
    pub presign_ttl: Duration,
    /// Largest JSON request body.
    pub max_body_bytes: usize,
    /// Largest object accepted through drey's own upload URL.
    pub max_object_bytes: u64,
    /// How long a DELETE works before answering 202 and continuing in the background.
    pub delete_timeout: Duration,
    /// Segments deleted per index transaction.
    pub delete_chunk: usize,
    pub default_page_limit: usize,
    pub max_page_limit: usize,
    /// Largest batch of segments in one POST.
    pub max_segments_per_post: usize,
    /// Largest number of object ids allocated by one storage POST.
    pub max_objects_per_allocation: usize,
    /// HLS playlists.
    pub hls: HlsConfig,
    /// Objects fetched ahead, in parallel, by a span export.
    pub export_read_ahead: usize,
    /// Most segments one export may span.
    pub export_max_segments: usize,
    /// Keep the MP4 sample tables of segments registered through the API (read in the
    /// background, see `packaging::prepare`).
    pub tams_sample_tables: bool,
    /// What requests without credentials may do.
    pub anonymous: crate::auth::Anonymous,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            public_url: "http://127.0.0.1:8080".to_owned(),
            min_object_timeout: Duration::from_secs(600),
            presign_ttl: Duration::from_secs(600),
            max_body_bytes: 32 * 1024 * 1024,
            max_object_bytes: 4 * 1024 * 1024 * 1024,
            delete_timeout: Duration::from_secs(2),
            delete_chunk: 2000,
            default_page_limit: 100,
            max_page_limit: 10_000,
            max_segments_per_post: 10_000,
            max_objects_per_allocation: 1000,
            hls: HlsConfig::default(),
            export_read_ahead: 8,
            export_max_segments: 100_000,
            tams_sample_tables: false,
            anonymous: crate::auth::Anonymous::ReadWrite,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub index: Arc<dyn Index>,
    pub objects: Arc<Objects>,
    pub cfg: Arc<ServiceConfig>,
    /// Wakes the garbage collector (after deletes).
    pub gc_wake: Arc<Notify>,
    /// Wakes the delete-request worker (after a 202).
    pub delete_wake: Arc<Notify>,
    pub metrics: Option<PrometheusHandle>,
    /// Segment-change signals shared with live ingest.
    pub events: Arc<SegmentEvents>,
    /// Playlist generation and its cache.
    pub hls: Arc<Hls>,
    /// What segment GETs need of stored objects, kept off the index.
    pub stored_objects: Arc<super::media::StoredObjects>,
    /// Sample tables of segments, for MP4 exports.
    pub mp4_tables: Arc<crate::packaging::mp4::Tables>,
    /// The queue of registered segments whose sample tables are made in the background
    /// (`tams_sample_tables`); `None` when off.
    pub prepare: Option<Arc<crate::packaging::prepare::Prepare>>,
    /// Where publishers reach this server's RTMP ingest (`rtmp://HOST:PORT/live/`), for
    /// the web UI; `None` when RTMP is off.
    pub rtmp_url: Option<String>,
    /// Access keys looked up recently (the gate's cache).
    pub keys: Arc<crate::auth::KeyCache>,
    /// RTMP publishes need a signed token (told to the web UI).
    pub rtmp_tokens_required: bool,
    /// TAMS webhooks: the registry and event recorder.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

impl AppState {
    pub fn new(index: Arc<dyn Index>, objects: Arc<Objects>, cfg: ServiceConfig) -> Self {
        let events = Arc::new(SegmentEvents::default());
        let hls = Arc::new(Hls::new(
            index.clone(),
            objects.clone(),
            events.clone(),
            cfg.hls.clone(),
        ));
        let webhooks = crate::webhooks::Webhooks::new(
            index.clone(),
            crate::webhooks::WebhookConfig::default(),
        );
        AppState {
            webhooks,
            index,
            objects,
            events,
            hls,
            stored_objects: Arc::default(),
            mp4_tables: Arc::default(),
            prepare: None,
            rtmp_url: None,
            keys: Arc::default(),
            rtmp_tokens_required: false,
            cfg: Arc::new(cfg),
            gc_wake: Arc::new(Notify::new()),
            delete_wake: Arc::new(Notify::new()),
            metrics: None,
        }
    }
}
