//! Live ingest: the RTMP server, the per-publish segmenter driver, and the upload pipeline
//! (bounded queue, concurrency-limited uploads, local spool when the store is slow or down).
//!
//! Data flow: `rtmp` (network bytes → FLV tags) → `publish` (tags → MPEG-TS segments via
//! `drey_core::media`, segments → jobs) → `uploader` (jobs → object PUT + index rows, in
//! order, spooling to `spool` on failure).

pub mod auth;
pub mod callbacks;
pub mod flows;
pub mod publish;
pub mod rtmp;
pub mod spool;
pub mod sweep;
pub mod uploader;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drey_core::Id;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::storage::events::SegmentEvents;
use crate::storage::index::Index;
use crate::storage::objects::Objects;
use auth::PublishAuth;
use spool::Spool;

/// Ingest settings (resolved from configuration by `cmds::serve`).
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// RTMP applications accepted (`live` in `rtmp://host/live/KEY`).
    pub apps: Vec<String>,
    /// Segments are cut at the first keyframe at or after this duration.
    pub segment_duration: Duration,
    /// Start new flows on every publish instead of continuing the key's flows.
    pub new_flow_per_publish: bool,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// Object PUTs and index writes in flight across all publishes.
    pub upload_concurrency: usize,
    /// Each store or index operation of an upload gives up (and the segment spools) after this.
    pub op_timeout: Duration,
    /// Segments a publish keeps in memory while its upload is behind; more go to the spool.
    pub memory_segments: usize,
    pub max_connections: usize,
    /// How long an ingest object allocation may stay unregistered before collection.
    pub allocation_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Threads serving RTMP connections, each an event loop of its own.
    pub rtmp_threads: usize,
    /// Publishing connections are read every this often instead of on readiness
    /// (zero: on readiness).
    pub rtmp_poll: Duration,
    /// Segment formats written per publish, each as a flow of its own: MPEG-TS and/or
    /// fragmented MP4 (CMAF-style, with an init segment). At least one.
    pub outputs: Vec<SegmentFormat>,
    /// An `ingesting` flow with no new segment for this long, whose publish is not live on
    /// this instance, is taken to have lost its publisher (see `sweep`).
    pub stale_after: Duration,
    /// Keep each stored segment's MP4 sample tables in the index (about 1 KB per 2 s
    /// segment), so that the first MP4 export of a span needs no extra read of its
    /// segments. The segmenter builds them as it writes the segment, and they are kept in
    /// the segment's registration transaction.
    pub keep_sample_tables: bool,
}

/// The container of an ingest flow's segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentFormat {
    /// MPEG-TS, each segment standing alone.
    #[default]
    Ts,
    /// Fragmented MP4: `moof` + `mdat` segments against an initialisation segment.
    Fmp4,
}

impl SegmentFormat {
    pub fn extension(self) -> &'static str {
        match self {
            SegmentFormat::Ts => "ts",
            SegmentFormat::Fmp4 => "mp4",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            SegmentFormat::Ts => "video/mp2t",
            SegmentFormat::Fmp4 => "video/mp4",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ts" => Some(SegmentFormat::Ts),
            "fmp4" => Some(SegmentFormat::Fmp4),
            _ => None,
        }
    }
}

/// The initialisation segment a fragmented MP4 segment needs: stored (once) before the
/// segment is registered. Travels with each job so a spooled segment is self-contained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitObject {
    pub object_id: String,
    /// The init segment, base64.
    pub data: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            apps: vec!["live".to_owned()],
            segment_duration: Duration::from_secs(2),
            new_flow_per_publish: false,
            spool_dir: PathBuf::from("drey-data/spool"),
            spool_max_bytes: 1 << 30,
            upload_concurrency: 16,
            op_timeout: Duration::from_secs(10),
            memory_segments: 2,
            max_connections: 1000,
            allocation_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(30),
            rtmp_threads: 1,
            rtmp_poll: Duration::from_millis(100),
            outputs: vec![SegmentFormat::Ts],
            stale_after: Duration::from_secs(60),
            keep_sample_tables: false,
        }
    }
}

/// One segment to store: everything but its bytes. Serialised into spool files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentJob {
    pub publish_id: Id,
    /// Order within the publish, from 0.
    pub seq: u64,
    pub flow_id: Id,
    pub object_id: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub ts_offset_ns: i64,
    pub key_frame_count: u32,
    /// Video frames in the segment (for the frames-stored metric).
    #[serde(default)]
    pub video_frames: u32,
    /// When the segmenter closed it (Unix ns): the start of the closed-to-indexed latency.
    pub closed_unix_ns: i64,
    #[serde(default)]
    pub format: SegmentFormat,
    /// For fragmented MP4: the init segment it needs.
    #[serde(default)]
    pub init: Option<InitObject>,
    /// The segment's MP4 sample tables (`media::tables`, base64), when they are kept.
    #[serde(default)]
    pub tables: Option<String>,
}

impl SegmentJob {
    /// The object id of segment `seq` of a publish (known ahead, so ids can be allocated
    /// in batches).
    pub fn object_id_for(flow: Id, publish: Id, seq: u64, format: SegmentFormat) -> String {
        format!("{flow}/{publish}/{seq:08}.{}", format.extension())
    }

    /// The object id of a publish's init segment, version `v`.
    pub fn init_object_id(flow: Id, publish: Id, v: u32) -> String {
        format!("{flow}/{publish}/init{v}.mp4")
    }
}

/// Shared by the RTMP listener, every publish and every uploader.
pub struct Ingest {
    pub index: Arc<dyn Index>,
    pub objects: Arc<Objects>,
    pub cfg: IngestConfig,
    pub auth: Arc<dyn PublishAuth>,
    /// Tells playlist readers that a segment was stored.
    pub events: Arc<SegmentEvents>,
    pub spool: Arc<Spool>,
    /// Bounds uploads in flight across publishes.
    pub uploads: Semaphore,
    /// `app/key` of publishes live on this instance.
    live: Mutex<HashSet<String>>,
    /// End (TAI ns) of the last segment closed per `app/key` on this instance.
    last_end: Mutex<HashMap<String, i64>>,
    /// Uploaders and drainers, awaited (with a deadline) at shutdown.
    pub tasks: TaskTracker,
    pub stop: CancellationToken,
    /// The main runtime: uploads and index work run there, RTMP connections on their own
    /// single-threaded runtimes (see `rtmp::start`).
    pub main: tokio::runtime::Handle,
}

impl Ingest {
    pub fn new(
        index: Arc<dyn Index>,
        objects: Arc<Objects>,
        cfg: IngestConfig,
        auth: Arc<dyn PublishAuth>,
        events: Arc<SegmentEvents>,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let spool = Spool::open(&cfg.spool_dir, cfg.spool_max_bytes)?;
        Ok(Arc::new(Ingest {
            index,
            objects,
            uploads: Semaphore::new(cfg.upload_concurrency.max(1)),
            cfg,
            auth,
            events,
            spool,
            live: Mutex::new(HashSet::new()),
            last_end: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            stop,
            main: tokio::runtime::Handle::current(),
        }))
    }

    /// Marks `app/key` live; false if it already is.
    fn claim_key(&self, stream: &str) -> bool {
        self.live
            .lock()
            .map(|mut s| s.insert(stream.to_owned()))
            .unwrap_or(false)
    }

    fn release_key(&self, stream: &str) {
        if let Ok(mut s) = self.live.lock() {
            s.remove(stream);
        }
    }

    fn note_end(&self, stream: &str, end_ns: i64) {
        if let Ok(mut m) = self.last_end.lock() {
            m.insert(stream.to_owned(), end_ns);
        }
    }

    fn last_end(&self, stream: &str) -> Option<i64> {
        self.last_end.lock().ok()?.get(stream).copied()
    }

    pub fn is_live(&self, stream: &str) -> bool {
        self.live
            .lock()
            .map(|s| s.contains(stream))
            .unwrap_or(false)
    }

    /// Starts draining what an earlier run left in the spool.
    pub fn drain_leftovers(self: &Arc<Self>) -> anyhow::Result<()> {
        let dirs = self.spool.publishes()?;
        if dirs.is_empty() {
            return Ok(());
        }
        tracing::info!(
            publishes = dirs.len(),
            segments = self.spool.files(),
            bytes = self.spool.used_bytes(),
            "draining segments spooled by an earlier run"
        );
        let ing = self.clone();
        self.tasks
            .spawn_on(uploader::drain_dirs(ing, dirs), &self.main);
        Ok(())
    }
}
