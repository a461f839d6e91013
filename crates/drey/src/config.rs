//! Configuration: command-line flags, their `DREY_*` environment equivalents, and an
//! optional TOML file (`--config`, unknown keys rejected). Flags and environment win over
//! the file; the file wins over built-in defaults. With nothing set, drey runs on SQLite
//! and a local directory under `./drey-data`, serving HTTP on 127.0.0.1:8080.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::http::ServiceConfig;
use crate::ingest::{IngestConfig, SegmentFormat};
use crate::packaging::hls::SegmentUrls;
use crate::storage::index::{self, Index};
use crate::storage::objects::{Objects, S3Settings};

/// Where the index and objects live; shared by every subcommand that opens the store.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "DREY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory for the embedded defaults (SQLite file, local objects).
    #[arg(long, env = "DREY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Index database: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "DREY_DATABASE")]
    pub database: Option<String>,
    /// Object store: a directory path, s3://BUCKET (endpoint and keys from AWS_ENDPOINT_URL,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) or memory://.
    #[arg(long, env = "DREY_OBJECTS")]
    pub objects: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// HTTP listen address.
    #[arg(long, env = "DREY_HTTP")]
    pub http: Option<String>,
    /// Base URL clients use to reach this instance (in object URLs and Link headers).
    #[arg(long, env = "DREY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// RTMP listen address for live ingest, or `off`.
    #[arg(long, env = "DREY_RTMP")]
    pub rtmp: Option<String>,
}

/// The TOML file. Every key is optional; unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub objects: Option<String>,
    pub http: Option<String>,
    pub public_url: Option<String>,
    /// Seconds an allocated object id may stay unregistered (TAMS min_object_timeout, >= 300).
    pub min_object_timeout_secs: Option<u64>,
    /// Validity of presigned URLs in seconds (30 to min_object_timeout_secs).
    pub presign_ttl_secs: Option<u64>,
    /// Seconds between garbage-collection passes.
    pub gc_interval_secs: Option<u64>,
    /// Milliseconds a DELETE works before answering 202 and continuing in the background.
    pub delete_timeout_ms: Option<u64>,
    /// Largest object accepted through drey's own upload URLs, in bytes.
    pub max_object_bytes: Option<u64>,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Segments deleted per index transaction.
    pub delete_chunk: Option<usize>,
    /// RTMP listen address (`off` disables live ingest).
    pub rtmp: Option<String>,
    /// RTMP applications accepted (the APP of rtmp://host/APP/KEY).
    pub rtmp_apps: Option<Vec<String>>,
    /// Target segment duration of live ingest, in milliseconds (cut at the next keyframe).
    pub segment_duration_ms: Option<u64>,
    /// Start new flows on every publish instead of continuing the stream key's flows.
    pub rtmp_new_flow_per_publish: Option<bool>,
    /// Most simultaneous RTMP connections.
    pub rtmp_max_connections: Option<usize>,
    /// Threads serving RTMP connections (each a single-threaded event loop).
    pub rtmp_threads: Option<usize>,
    /// Milliseconds between reads of a publishing connection (0: read on readiness).
    pub rtmp_poll_ms: Option<u64>,
    /// Seconds without data after which an RTMP connection is closed.
    pub rtmp_idle_timeout_secs: Option<u64>,
    /// Where segments wait when the object store or database is slow or down.
    pub spool_dir: Option<PathBuf>,
    /// Largest spool, in bytes; a publish that would overflow it is ended.
    pub spool_max_bytes: Option<u64>,
    /// Segment uploads in flight across all publishes.
    pub upload_concurrency: Option<usize>,
    /// Milliseconds each object-store or index step of an upload may take before the
    /// segment spools and is retried.
    pub upload_timeout_ms: Option<u64>,
    /// Seconds an ingest object may stay allocated but unregistered before collection
    /// (covers uploads retried through an outage; default 3600).
    pub upload_allocation_timeout_secs: Option<u64>,
    /// Seconds without a new segment after which an `ingesting` RTMP flow whose publish is
    /// not live here is set to `awaiting_content` (a publisher lost with a crashed drey).
    pub rtmp_stale_secs: Option<u64>,
    /// Keep each ingested segment's MP4 sample tables in the index (default false): the
    /// first MP4 export of a live recording then reads each segment once, not twice, for
    /// about 1.1 KB more index per segment (a 3-5x larger index).
    pub rtmp_sample_tables: Option<bool>,
    /// Segment formats of live ingest, each a flow: `["ts"]` (default), `["fmp4"]` or both.
    pub rtmp_outputs: Option<Vec<String>>,
    /// Keep the MP4 sample tables of segments registered through the TAMS API (default
    /// false): a background worker reads each new segment once for them, so the first MP4
    /// export of the span reads each segment once, not twice; index as `rtmp_sample_tables`.
    pub tams_sample_tables: Option<bool>,
    /// Segments in a live HLS playlist (sliding window).
    pub hls_live_segments: Option<usize>,
    /// Segment URIs in playlists: `drey` (served by drey's /media) or `presigned`
    /// (presigned object-store URLs where the store can presign).
    pub hls_segment_urls: Option<String>,
    /// Milliseconds a generated playlist is reused before it is generated again.
    pub hls_cache_ms: Option<u64>,
    /// Longest a live playlist request with `_HLS_msn` waits for its segment, in ms.
    pub hls_block_ms: Option<u64>,
    /// Most segments one playlist may list.
    pub hls_max_segments: Option<usize>,
    /// Cache-Control max-age of finished (VOD) playlists, in seconds.
    pub hls_vod_max_age_secs: Option<u64>,
    /// Segment objects a span export fetches ahead, in parallel.
    pub export_read_ahead: Option<usize>,
    /// Most segments one span export may cover.
    pub export_max_segments: Option<usize>,
    /// What requests without credentials may do: `read-write`, `read` or `none`. Default:
    /// `read-write` when HTTP listens on a loopback address, else `read`.
    pub anonymous: Option<String>,
    /// RTMP publish tokens: `auto` (required when anonymous HTTP writes are not allowed or
    /// RTMP listens beyond loopback), `token` (always), `off` (never).
    pub rtmp_auth: Option<String>,
    /// Address ranges webhook deliveries may reach although the SSRF guard refuses them
    /// (link-local, metadata services, ...), e.g. `["169.254.10.0/24"]`.
    pub webhook_allow: Option<Vec<String>>,
    /// Seconds a webhook receiver has to answer one delivery.
    pub webhook_timeout_secs: Option<u64>,
    /// Deliveries a webhook may have waiting; beyond it the webhook goes to `error` and
    /// takes no new events (its waiting ones are kept) until re-enabled.
    pub webhook_max_pending: Option<i64>,
    /// URL POSTed (form-encoded, as nginx-rtmp) before a publish starts: 2xx allows, 3xx
    /// with `Location: NAME` renames the stream key, anything else denies.
    pub on_publish: Option<String>,
    /// URL told (form-encoded) when a publish ends.
    pub on_publish_done: Option<String>,
    /// URL told (JSON) of every live segment stored and indexed.
    pub on_segment: Option<String>,
    /// Milliseconds a callback has to answer.
    pub callback_timeout_ms: Option<u64>,
    /// `deny` (default) or `allow`: what happens to a publish when `on_publish` cannot be
    /// reached or does not answer in time.
    pub on_publish_unreachable: Option<String>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in {}", path.display()))
    }
}

/// Resolved store locations.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub database: String,
    pub objects: String,
}

impl StoreConfig {
    pub fn resolve(args: &StoreArgs, file: &FileConfig) -> Self {
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("drey-data"));
        let database = args
            .database
            .clone()
            .or_else(|| file.database.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("index.db").display()));
        let objects = args
            .objects
            .clone()
            .or_else(|| file.objects.clone())
            .unwrap_or_else(|| data_dir.join("objects").display().to_string());
        StoreConfig {
            data_dir,
            database,
            objects,
        }
    }

    /// Opens the index (applying migrations) and the object store.
    pub async fn open(&self) -> anyhow::Result<(Arc<dyn Index>, Arc<Objects>)> {
        if self.database.starts_with("sqlite:") {
            std::fs::create_dir_all(&self.data_dir)
                .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        }
        let index = index::open(&self.database)
            .await
            .with_context(|| format!("opening index {}", redact(&self.database)))?;
        let objects = if let Some(bucket) = self.objects.strip_prefix("s3://") {
            let bucket = bucket.trim_end_matches('/');
            if bucket.is_empty() || bucket.contains('/') {
                bail!("--objects s3://BUCKET: {:?} is not a bucket name", bucket);
            }
            Objects::s3(&S3Settings::from_env(bucket))?
        } else if self.objects == "memory://" {
            Objects::memory()
        } else {
            Objects::local(&self.objects)?
        };
        Ok((index, Arc::new(objects)))
    }
}

/// Hides a password in a database URL for logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Everything `serve` needs, resolved.
pub struct ServeConfig {
    pub store: StoreConfig,
    pub http: String,
    /// RTMP listen address; `None` when ingest is off.
    pub rtmp: Option<String>,
    pub ingest: IngestConfig,
    pub service: ServiceConfig,
    pub gc_interval: Duration,
    /// `anonymous` was configured; otherwise `serve` derives it from the bound address.
    pub anonymous_explicit: bool,
    /// `auto`, `token` or `off` (see `FileConfig::rtmp_auth`).
    pub rtmp_auth: String,
    pub webhooks: crate::webhooks::WebhookConfig,
    pub callbacks: crate::ingest::callbacks::CallbackConfig,
}

impl ServeConfig {
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = FileConfig::load(args.store.config.as_deref())?;
        let store = StoreConfig::resolve(&args.store, &file);
        let http = args
            .http
            .clone()
            .or_else(|| file.http.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let public_url = args
            .public_url
            .clone()
            .or_else(|| file.public_url.clone())
            .unwrap_or_else(|| format!("http://{http}"));
        let mut service = ServiceConfig {
            public_url,
            ..ServiceConfig::default()
        };
        if let Some(s) = file.min_object_timeout_secs {
            if s < 300 {
                bail!("min_object_timeout_secs must be at least 300 (TAMS)");
            }
            service.min_object_timeout = Duration::from_secs(s);
        }
        service.presign_ttl = file
            .presign_ttl_secs
            .map(Duration::from_secs)
            .unwrap_or(service.min_object_timeout);
        if service.presign_ttl < Duration::from_secs(30)
            || service.presign_ttl > service.min_object_timeout
        {
            bail!("presign_ttl_secs must be between 30 and min_object_timeout_secs (TAMS)");
        }
        if let Some(ms) = file.delete_timeout_ms {
            service.delete_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = file.max_object_bytes {
            service.max_object_bytes = n;
        }
        if let Some(n) = file.delete_chunk {
            service.delete_chunk = n.max(1);
        }
        if let Some(n) = file.max_body_bytes {
            service.max_body_bytes = n;
        }
        if let Some(b) = file.tams_sample_tables {
            service.tams_sample_tables = b;
        }
        if let Some(n) = file.export_read_ahead {
            service.export_read_ahead = n.clamp(1, 256);
        }
        if let Some(n) = file.export_max_segments {
            service.export_max_segments = n.max(1);
        }
        if let Some(a) = &file.anonymous {
            service.anonymous = crate::auth::Anonymous::parse(a)?;
        }
        let hls = &mut service.hls;
        hls.presign_ttl = service.presign_ttl;
        if let Some(n) = file.hls_live_segments {
            if !(3..=1000).contains(&n) {
                bail!("hls_live_segments must be between 3 and 1000");
            }
            hls.live_segments = n;
        }
        match file.hls_segment_urls.as_deref() {
            None | Some("drey") => hls.segment_urls = SegmentUrls::Drey,
            Some("presigned") => hls.segment_urls = SegmentUrls::Presigned,
            Some(other) => {
                bail!("hls_segment_urls must be \"drey\" or \"presigned\", not {other:?}")
            }
        }
        if let Some(ms) = file.hls_cache_ms {
            hls.cache_ttl = Duration::from_millis(ms.min(60_000));
        }
        if let Some(ms) = file.hls_block_ms {
            hls.block_timeout = Duration::from_millis(ms.min(60_000));
        }
        if let Some(n) = file.hls_max_segments {
            hls.max_segments = n.max(1);
        }
        if let Some(s) = file.hls_vod_max_age_secs {
            hls.vod_max_age_secs = s;
        }
        let rtmp = args
            .rtmp
            .clone()
            .or_else(|| file.rtmp.clone())
            .unwrap_or_else(|| "127.0.0.1:1935".to_owned());
        let rtmp = (rtmp != "off").then_some(rtmp);
        let mut ingest = IngestConfig {
            spool_dir: store.data_dir.join("spool"),
            ..IngestConfig::default()
        };
        if let Some(apps) = &file.rtmp_apps {
            if apps.is_empty() {
                bail!("rtmp_apps must name at least one application");
            }
            ingest.apps = apps.clone();
        }
        if let Some(ms) = file.segment_duration_ms {
            if !(100..=60_000).contains(&ms) {
                bail!("segment_duration_ms must be between 100 and 60000");
            }
            ingest.segment_duration = Duration::from_millis(ms);
        }
        if let Some(b) = file.rtmp_new_flow_per_publish {
            ingest.new_flow_per_publish = b;
        }
        if let Some(n) = file.rtmp_max_connections {
            ingest.max_connections = n.max(1);
        }
        if let Some(ms) = file.rtmp_poll_ms {
            if ms > 200 {
                bail!("rtmp_poll_ms must be at most 200");
            }
            ingest.rtmp_poll = Duration::from_millis(ms);
        }
        if let Some(n) = file.rtmp_threads {
            ingest.rtmp_threads = n.clamp(1, 64);
        }
        if let Some(s) = file.rtmp_idle_timeout_secs {
            ingest.idle_timeout = Duration::from_secs(s.max(1));
        }
        if let Some(d) = &file.spool_dir {
            ingest.spool_dir = d.clone();
        }
        if let Some(n) = file.spool_max_bytes {
            ingest.spool_max_bytes = n;
        }
        if let Some(n) = file.upload_concurrency {
            ingest.upload_concurrency = n.max(1);
        }
        if let Some(s) = file.upload_allocation_timeout_secs {
            ingest.allocation_timeout = Duration::from_secs(s.max(1));
        }
        if let Some(b) = file.rtmp_sample_tables {
            ingest.keep_sample_tables = b;
        }
        if let Some(s) = file.rtmp_stale_secs {
            ingest.stale_after = Duration::from_secs(s.max(2));
        }
        if let Some(outs) = &file.rtmp_outputs {
            let mut formats = Vec::new();
            for o in outs {
                let f = SegmentFormat::parse(o).ok_or_else(|| {
                    anyhow::anyhow!("rtmp_outputs: {o:?} is not \"ts\" or \"fmp4\"")
                })?;
                if !formats.contains(&f) {
                    formats.push(f);
                }
            }
            if formats.is_empty() {
                bail!("rtmp_outputs must name at least one of \"ts\", \"fmp4\"");
            }
            ingest.outputs = formats;
        }
        if let Some(ms) = file.upload_timeout_ms {
            ingest.op_timeout = Duration::from_millis(ms.max(100));
        }
        Ok(ServeConfig {
            store,
            http,
            rtmp,
            ingest,
            service,
            gc_interval: Duration::from_secs(file.gc_interval_secs.unwrap_or(30)),
            anonymous_explicit: file.anonymous.is_some(),
            webhooks: crate::webhooks::WebhookConfig::from_file(&file)?,
            callbacks: {
                let c = crate::ingest::callbacks::CallbackConfig {
                    on_publish: file.on_publish.clone(),
                    on_publish_done: file.on_publish_done.clone(),
                    on_segment: file.on_segment.clone(),
                    timeout: Duration::from_millis(file.callback_timeout_ms.unwrap_or(3000).max(1)),
                    allow_when_unreachable: match file.on_publish_unreachable.as_deref() {
                        None | Some("deny") => false,
                        Some("allow") => true,
                        Some(other) => bail!(
                            "on_publish_unreachable must be \"deny\" or \"allow\", not {other:?}"
                        ),
                    },
                };
                c.validate()?;
                c
            },
            rtmp_auth: match file.rtmp_auth.as_deref() {
                None => "auto".to_owned(),
                Some(a @ ("auto" | "token" | "off")) => a.to_owned(),
                Some(other) => {
                    bail!("rtmp_auth must be \"auto\", \"token\" or \"off\", not {other:?}")
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("data_dir = 'x'\nbogus = 1").is_err());
        let f: FileConfig =
            toml::from_str("database = 'postgres://a@b/c'\ngc_interval_secs = 5").unwrap();
        assert_eq!(f.gc_interval_secs, Some(5));
    }

    #[test]
    fn defaults_need_nothing() {
        let args = StoreArgs {
            config: None,
            data_dir: None,
            database: None,
            objects: None,
        };
        let s = StoreConfig::resolve(&args, &FileConfig::default());
        assert_eq!(s.database, "sqlite://drey-data/index.db");
        assert_eq!(s.objects, "drey-data/objects");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
