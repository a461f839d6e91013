//! HLS from the index: a media playlist for any flow and any span of time (live sliding
//! window, EVENT while a time-shift window reaches the live edge, VOD otherwise) and a
//! multivariant playlist per source. Playlists are generated per request and cached for a
//! short time; a segment registered on this instance invalidates its flow's entries at once
//! and wakes requests blocked for the next segment (`_HLS_msn`).
//!
//! Media sequence and discontinuity sequence numbers come from the index (`seq`, `disc`),
//! so every instance sharing a database numbers the same segment the same way, and the
//! numbers do not move when old segments are deleted.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use drey_core::hls::{
    MediaPlaylist, MediaSegment, MultivariantPlaylist, PlaylistKind, Rendition, Variant,
    avc_codec_string, has_media_extension,
};
use drey_core::model::{Flow, FlowEssence, FlowStatus};
use drey_core::{Id, TimeRange};

use super::{PackagingError, span_segments};
use crate::storage::events::SegmentEvents;
use crate::storage::index::{FlowQuery, Index, SegmentQuery, SegmentRow};
use crate::storage::objects::Objects;

/// Where segment URIs in playlists point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentUrls {
    /// drey's own `/media/{objectId}` (relative URIs; works behind any path prefix).
    Drey,
    /// Presigned object-store URLs where the store can presign (S3), else drey's.
    Presigned,
}

#[derive(Debug, Clone)]
pub struct HlsConfig {
    /// Segments in a live sliding-window playlist.
    pub live_segments: usize,
    pub segment_urls: SegmentUrls,
    /// How long a generated playlist is reused (writes on this instance invalidate sooner).
    pub cache_ttl: Duration,
    /// Longest a `_HLS_msn` request waits for its segment.
    pub block_timeout: Duration,
    /// Most segments in one playlist; longer spans must be asked for by timerange.
    pub max_segments: usize,
    /// `Cache-Control: max-age` of finished (VOD) playlists, in seconds.
    pub vod_max_age_secs: u64,
    /// Validity of presigned segment URLs.
    pub presign_ttl: Duration,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            live_segments: 6,
            segment_urls: SegmentUrls::Drey,
            cache_ttl: Duration::from_millis(1000),
            block_timeout: Duration::from_secs(6),
            max_segments: 43_200,
            vod_max_age_secs: 60,
            presign_ttl: Duration::from_secs(600),
        }
    }
}

type Result<T, E = PackagingError> = std::result::Result<T, E>;

/// A generated playlist and what its HTTP answer needs.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: String,
    /// The body gzip-compressed, for clients that accept it (long playlists shrink ~10x),
    /// with its own ETag.
    pub gzip: Option<(Bytes, String)>,
    pub cache_control: String,
    pub kind: PlaylistKind,
    /// Media sequence number of the last segment (blocking reload compares against it).
    pub last_seq: i64,
    built: Instant,
    version: u64,
}

impl Rendered {
    fn new(
        body: Bytes,
        cache_control: String,
        kind: PlaylistKind,
        last_seq: i64,
        version: u64,
    ) -> Self {
        let etag = etag_of(&body);
        Rendered {
            gzip: gzipped(&body, &etag),
            etag,
            body,
            cache_control,
            kind,
            last_seq,
            built: Instant::now(),
            version,
        }
    }
}

/// How a flow's segments are packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packaging {
    Ts,
    Fmp4,
}

const TS_CONTAINERS: &[&str] = &["video/mp2t"];
const FMP4_CONTAINERS: &[&str] = &["video/mp4", "audio/mp4", "application/mp4"];
/// Codecs HLS players can decode from MPEG-TS or fMP4 segments.
const HLS_CODECS: &[&str] = &[
    "video/h264",
    "video/h265",
    "video/hevc",
    "video/av1",
    "audio/aac",
    "audio/mpeg",
    "audio/mp3",
    "audio/ac3",
    "audio/eac3",
    "audio/opus",
    "audio/flac",
];

/// Which packaging a flow has, or why HLS cannot carry it.
fn packaging(f: &Flow) -> Result<Packaging> {
    let container = f.container.as_ref().map(|c| c.as_str());
    let p = match container {
        Some(c) if TS_CONTAINERS.contains(&c) => Packaging::Ts,
        Some(c) if FMP4_CONTAINERS.contains(&c) => Packaging::Fmp4,
        Some(c) => {
            return Err(PackagingError::Unsupported {
                field: "container",
                message: format!(
                    "HLS carries MPEG-TS (video/mp2t) or fragmented MP4 (video/mp4, audio/mp4) segments, not {c}"
                ),
            });
        }
        None => {
            return Err(PackagingError::Unsupported {
                field: "container",
                message: "the flow has no container; HLS needs MPEG-TS or fragmented MP4 segments"
                    .to_owned(),
            });
        }
    };
    match (&f.essence, &f.codec) {
        (FlowEssence::Image { .. } | FlowEssence::Data { .. }, _) => {
            Err(PackagingError::Unsupported {
                field: "format",
                message: format!("HLS cannot play a flow of format {}", f.essence.format()),
            })
        }
        (_, Some(c)) if !HLS_CODECS.contains(&c.as_str()) => Err(PackagingError::Unsupported {
            field: "codec",
            message: format!("HLS players cannot decode codec {}", c.as_str()),
        }),
        _ => Ok(p),
    }
}

fn etag_of(body: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

/// Playlists shorter than this are sent as they are.
const GZIP_MIN_BYTES: usize = 2048;

/// The gzip form of a playlist body and its ETag, compressed once when the playlist is
/// generated (not per request).
fn gzipped(body: &[u8], etag: &str) -> Option<(Bytes, String)> {
    use std::io::Write;
    if body.len() < GZIP_MIN_BYTES {
        return None;
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    let gz = enc.finish().ok()?;
    Some((
        Bytes::from(gz),
        format!("{}-gz\"", etag.trim_end_matches('"')),
    ))
}

/// Whole seconds, rounded up, of a rational duration.
fn ceil_secs(r: &drey_core::Rational) -> u64 {
    let d = r.denominator_or_one();
    r.numerator.get().div_ceil(d)
}

/// Shared by every playlist request of an instance.
pub struct Hls {
    index: Arc<dyn Index>,
    objects: Arc<Objects>,
    events: Arc<SegmentEvents>,
    cfg: HlsConfig,
    cache: Mutex<HashMap<String, Slot>>,
}

/// One cached playlist and the lock that makes its rebuilds single-flight.
#[derive(Default)]
struct Slot {
    rendered: Option<Arc<Rendered>>,
    build: Arc<tokio::sync::Mutex<()>>,
}

/// Entries kept at most; beyond it the cache is emptied (a simple bound against a client
/// walking many distinct time ranges).
const CACHE_ENTRIES: usize = 4096;

impl Hls {
    pub fn new(
        index: Arc<dyn Index>,
        objects: Arc<Objects>,
        events: Arc<SegmentEvents>,
        cfg: HlsConfig,
    ) -> Self {
        Hls {
            index,
            objects,
            events,
            cfg,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &HlsConfig {
        &self.cfg
    }

    fn fresh(&self, r: &Rendered, version: u64) -> bool {
        r.version == version && r.built.elapsed() < self.cfg.cache_ttl
    }

    /// The cached playlist for `key` if fresh; otherwise one build at a time per key (the
    /// others wait for it), and while a rebuild that is only due to age runs, the previous
    /// playlist is served.
    async fn cached_or_build<F, Fut>(
        &self,
        key: &str,
        version: u64,
        build: F,
    ) -> Result<Arc<Rendered>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Rendered>>,
    {
        let (stale, lock) = {
            let mut c = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if c.len() >= CACHE_ENTRIES && !c.contains_key(key) {
                c.clear();
            }
            let slot = c.entry(key.to_owned()).or_default();
            match &slot.rendered {
                Some(r) if self.fresh(r, version) => {
                    metrics::counter!("drey_hls_playlists_cached_total").increment(1);
                    return Ok(r.clone());
                }
                Some(r) if r.version == version => (Some(r.clone()), slot.build.clone()),
                _ => (None, slot.build.clone()),
            }
        };
        let _guard = match (stale, lock.clone().try_lock_owned()) {
            (Some(stale), Err(_)) => {
                metrics::counter!("drey_hls_playlists_cached_total").increment(1);
                return Ok(stale);
            }
            (_, Ok(g)) => g,
            (None, Err(_)) => lock.lock_owned().await,
        };
        // Whoever held the lock may have just built it.
        if let Some(r) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(key).and_then(|s| s.rendered.clone()))
            .filter(|r| self.fresh(r, version))
        {
            return Ok(r);
        }
        metrics::counter!("drey_hls_playlists_built_total").increment(1);
        let r = Arc::new(build().await?);
        if let Ok(mut c) = self.cache.lock() {
            c.entry(key.to_owned()).or_default().rendered = Some(r.clone());
        }
        Ok(r)
    }

    /// The media playlist of `flow` over `span` (`None`: live window, or the whole flow
    /// once it is no longer ingesting). With `msn`, waits up to the block timeout until
    /// the playlist holds media sequence number `msn`.
    pub async fn flow_playlist(
        &self,
        flow: Id,
        span: Option<TimeRange>,
        msn: Option<i64>,
    ) -> Result<Arc<Rendered>> {
        let key = match &span {
            Some(r) => format!("f|{flow}|{r}"),
            None => format!("f|{flow}|"),
        };
        let deadline = Instant::now() + self.cfg.block_timeout;
        let mut changes = self.events.subscribe();
        loop {
            let version = self.events.version(flow);
            let r = self
                .cached_or_build(&key, version, || self.build_flow(flow, span, version))
                .await?;
            let Some(m) = msn.filter(|m| r.kind != PlaylistKind::Vod && *m > r.last_seq) else {
                return Ok(r);
            };
            if m > r.last_seq.saturating_add(2) {
                return Err(PackagingError::Bad {
                    field: "_HLS_msn",
                    message: format!(
                        "media sequence number {m} is more than two past the last segment ({})",
                        r.last_seq
                    ),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                metrics::counter!("drey_hls_block_timeouts_total").increment(1);
                return Ok(r);
            }
            // A write on this instance wakes us at once; writes on other instances show
            // within the cache TTL, so poll at a quarter of it.
            let poll = (self.cfg.cache_ttl / 4).max(Duration::from_millis(50));
            let _ = tokio::time::timeout(poll.min(deadline - now), changes.changed()).await;
        }
    }

    async fn build_flow(
        &self,
        flow_id: Id,
        span: Option<TimeRange>,
        version: u64,
    ) -> Result<Rendered> {
        let flow = self
            .index
            .get_flow(flow_id)
            .await?
            .ok_or_else(|| PackagingError::NotFound(format!("flow {flow_id} does not exist")))?
            .value;
        let packaging = packaging(&flow)?;
        let live = flow.status == Some(FlowStatus::Ingesting);
        let rows = match span {
            None if live => {
                let mut rows = self
                    .index
                    .list_segments(
                        flow_id,
                        &SegmentQuery {
                            range: TimeRange::ETERNITY,
                            object_id: None,
                            reverse: true,
                            after_start_ns: None,
                            limit: self.cfg.live_segments.max(1),
                        },
                    )
                    .await?;
                rows.reverse();
                if rows.is_empty() {
                    return Err(PackagingError::NotFound(format!(
                        "flow {flow_id} has no segments yet"
                    )));
                }
                rows
            }
            _ => {
                let range = span.unwrap_or(TimeRange::ETERNITY);
                span_segments(
                    self.index.as_ref(),
                    flow_id,
                    range,
                    self.cfg.max_segments,
                    "playlist",
                )
                .await?
            }
        };
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Err(PackagingError::NotFound(format!(
                "flow {flow_id} has no segments"
            )));
        };
        let kind = match span {
            None if live => PlaylistKind::Live,
            None => PlaylistKind::Vod,
            Some(r) if live && r.end_nanos().is_none_or(|e| e > last.end_ns) => PlaylistKind::Event,
            Some(_) => PlaylistKind::Vod,
        };
        let start_offset_s = span
            .and_then(|r| r.start_nanos())
            .filter(|s| *s > first.start_ns)
            .map(|s| (s - first.start_ns) as f64 / 1e9);
        let min_target = if kind == PlaylistKind::Live {
            flow.segment_duration.as_ref().map_or(1, ceil_secs)
        } else {
            1
        };
        let segments = self.media_segments(&rows, packaging).await?;
        let playlist = MediaPlaylist {
            kind,
            media_sequence: first.seq,
            discontinuity_sequence: first.disc,
            min_target_duration: min_target,
            start_offset_s,
            can_block_reload: true,
            segments,
        };
        let body = Bytes::from(playlist.render());
        let presigned = self.presigns();
        let cache_control = match kind {
            PlaylistKind::Vod => {
                let mut age = self.cfg.vod_max_age_secs;
                if presigned {
                    age = age.min(self.cfg.presign_ttl.as_secs() / 2);
                }
                format!("public, max-age={age}")
            }
            _ => "public, max-age=1".to_owned(),
        };
        Ok(Rendered::new(body, cache_control, kind, last.seq, version))
    }

    fn presigns(&self) -> bool {
        self.cfg.segment_urls == SegmentUrls::Presigned && self.objects.can_presign()
    }

    /// The URI of a controlled object. Players look at the extension (ffmpeg refuses
    /// segment URLs without a media one): ids that have one are used as they are (and
    /// presigned if so configured); others are served by drey under `/hls/objects/` with
    /// `ext` appended.
    async fn object_uri(&self, object_id: &str, ext: &str) -> Result<String> {
        if !has_media_extension(object_id) {
            return Ok(format!("../../hls/objects/{object_id}.{ext}"));
        }
        if self.presigns()
            && let Some(url) = self
                .objects
                .presign(http::Method::GET, object_id, self.cfg.presign_ttl)
                .await?
        {
            return Ok(url);
        }
        // Relative to /flows/{id}/playlist.m3u8, so a path prefix in front of drey works.
        Ok(format!("../../media/{object_id}"))
    }

    async fn media_segments(
        &self,
        rows: &[SegmentRow],
        packaging: Packaging,
    ) -> Result<Vec<MediaSegment>> {
        let ext = match packaging {
            Packaging::Ts => "ts",
            Packaging::Fmp4 => "mp4",
        };
        // Init objects are few (usually one per publish): resolve each once.
        let mut init_ids: Vec<String> = rows
            .iter()
            .filter_map(|s| s.init_object_id.clone())
            .collect();
        init_ids.sort_unstable();
        init_ids.dedup();
        let mut init_uris: HashMap<String, String> = HashMap::with_capacity(init_ids.len());
        if !init_ids.is_empty() {
            for o in self.index.get_objects(&init_ids).await? {
                let uri = match (o.controlled, &o.external_urls) {
                    (false, Some(urls)) if !urls.is_empty() => urls[0].url.clone(),
                    _ => self.object_uri(&o.id, "mp4").await?,
                };
                init_uris.insert(o.id, uri);
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for s in rows {
            let uri = match s.external_urls.as_deref() {
                Some([u, ..]) => u.url.clone(),
                _ => self.object_uri(&s.object_id, ext).await?,
            };
            out.push(MediaSegment {
                start_ns: s.start_ns,
                end_ns: s.end_ns,
                uri,
                init_uri: s
                    .init_object_id
                    .as_ref()
                    .and_then(|id| init_uris.get(id).cloned()),
                disc: s.disc,
                ts_offset_ns: s.ts_offset_ns,
            });
        }
        Ok(out)
    }

    /// The multivariant playlist of a source: its playable flows (and those of the sources
    /// it collects) as variants, audio-only flows as an audio rendition group when there is
    /// video to pair them with. `query` (the time span) is passed on to every media
    /// playlist URI.
    pub async fn source_playlist(&self, source_id: Id, query: &str) -> Result<Arc<Rendered>> {
        let key = format!("s|{source_id}|{query}");
        self.cached_or_build(&key, 0, || self.build_source(source_id, query))
            .await
    }

    async fn build_source(&self, source_id: Id, query: &str) -> Result<Rendered> {
        let source = self
            .index
            .get_source(source_id)
            .await?
            .ok_or_else(|| PackagingError::NotFound(format!("source {source_id} does not exist")))?
            .value;
        let mut source_ids = vec![source_id];
        source_ids.extend(source.source_collection.iter().flatten().map(|c| c.id));
        let mut flows = Vec::new();
        for sid in source_ids {
            flows.extend(
                self.index
                    .list_flows(&FlowQuery {
                        source_id: Some(sid),
                        ..FlowQuery::default()
                    })
                    .await?,
            );
        }
        flows.sort_by_key(|f| f.id.to_string());
        let mut entries = Vec::new();
        let mut refused = Vec::new();
        for f in flows {
            if let Err(e) = packaging(&f) {
                refused.push(format!("{}: {e}", f.id));
                continue;
            }
            let last = self
                .index
                .list_segments(
                    f.id,
                    &SegmentQuery {
                        range: TimeRange::ETERNITY,
                        object_id: None,
                        reverse: true,
                        after_start_ns: None,
                        limit: 1,
                    },
                )
                .await?;
            let Some(last) = last.into_iter().next() else {
                refused.push(format!("{}: no segments", f.id));
                continue;
            };
            entries.push(self.describe(&f, &last).await?);
        }
        if entries.is_empty() {
            return Err(PackagingError::NotFound(format!(
                "source {source_id} has no flow HLS can play ({})",
                if refused.is_empty() {
                    "it has no flows".to_owned()
                } else {
                    refused.join("; ")
                }
            )));
        }
        let suffix = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let uri = |id: Id| format!("../../flows/{id}/playlist.m3u8{suffix}");
        let has_video = entries.iter().any(|e| e.video);
        let mut m = MultivariantPlaylist::default();
        let mut audio_codec = None;
        if has_video {
            for (i, e) in entries.iter().filter(|e| !e.video).enumerate() {
                audio_codec = audio_codec.or_else(|| e.codecs.first().cloned());
                m.renditions.push(Rendition {
                    group_id: "audio".to_owned(),
                    name: e.label.clone(),
                    language: None,
                    default: i == 0,
                    channels: e.channels,
                    uri: uri(e.id),
                });
            }
        }
        let audio_bandwidth = entries
            .iter()
            .filter(|e| !e.video)
            .map(|e| e.bandwidth)
            .max()
            .unwrap_or(0);
        for e in entries.iter().filter(|e| e.video || !has_video) {
            let pair = e.video && e.video_only && !m.renditions.is_empty();
            let mut codecs = e.codecs.clone();
            if pair && let Some(a) = &audio_codec {
                codecs.push(a.clone());
            }
            m.variants.push(Variant {
                bandwidth: e.bandwidth + if pair { audio_bandwidth } else { 0 },
                average_bandwidth: None,
                codecs,
                resolution: e.resolution,
                frame_rate: e.frame_rate,
                audio_group: pair.then(|| "audio".to_owned()),
                uri: uri(e.id),
            });
        }
        let body = Bytes::from(m.render());
        Ok(Rendered::new(
            body,
            "public, max-age=2".to_owned(),
            PlaylistKind::Vod,
            0,
            0,
        ))
    }

    /// What the multivariant playlist says of one flow.
    async fn describe(&self, f: &Flow, last: &SegmentRow) -> Result<FlowEntry> {
        let mut e = FlowEntry {
            id: f.id,
            label: f.label.clone().unwrap_or_else(|| f.id.to_string()),
            video: false,
            video_only: false,
            codecs: Vec::new(),
            resolution: None,
            frame_rate: None,
            channels: None,
            bandwidth: 0,
        };
        let mut parts = vec![f.clone()];
        if let FlowEssence::Multi { .. } = f.essence {
            for item in f.flow_collection.iter().flatten() {
                if let Some(child) = self.index.get_flow(item.id).await? {
                    parts.push(child.value);
                }
            }
        }
        for p in &parts {
            match &p.essence {
                FlowEssence::Video {
                    essence_parameters: v,
                } => {
                    e.video = true;
                    e.video_only = matches!(f.essence, FlowEssence::Video { .. });
                    e.resolution = Some((v.frame_width, v.frame_height));
                    e.frame_rate = v.frame_rate.as_ref().map(|r| r.as_f64());
                    match (p.codec.as_ref().map(|c| c.as_str()), &v.avc_parameters) {
                        (Some("video/h264"), Some(a)) => e.codecs.push(avc_codec_string(
                            u8::try_from(a.profile).unwrap_or(0x64),
                            u8::try_from(a.flags).unwrap_or(0),
                            u8::try_from(a.level).unwrap_or(0x28),
                        )),
                        (Some("video/h264"), None) => e.codecs.push("avc1.640028".to_owned()),
                        (Some("video/h265" | "video/hevc"), _) => {
                            e.codecs.push("hvc1.1.6.L120.90".to_owned());
                        }
                        _ => {}
                    }
                }
                FlowEssence::Audio {
                    essence_parameters: a,
                } => {
                    e.channels = e.channels.or(Some(a.channels));
                    match p.codec.as_ref().map(|c| c.as_str()) {
                        Some("audio/aac") => e.codecs.push("mp4a.40.2".to_owned()),
                        Some("audio/mpeg" | "audio/mp3") => e.codecs.push("mp4a.40.34".to_owned()),
                        Some("audio/ac3") => e.codecs.push("ac-3".to_owned()),
                        Some("audio/eac3") => e.codecs.push("ec-3".to_owned()),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        e.bandwidth = match (f.max_bit_rate, f.avg_bit_rate) {
            (Some(k), _) | (None, Some(k)) => k.saturating_mul(1000),
            (None, None) => self.estimate_bandwidth(last).await?,
        };
        Ok(e)
    }

    /// Bits per second of the flow's last segment, plus a tenth for headroom; a guess of
    /// 2 Mbit/s when its size is unknown.
    async fn estimate_bandwidth(&self, last: &SegmentRow) -> Result<u64> {
        let size = self
            .index
            .get_objects(std::slice::from_ref(&last.object_id))
            .await?
            .first()
            .and_then(|o| o.size);
        let dur_ns = (last.end_ns - last.start_ns).max(1);
        Ok(match size {
            Some(bytes) if bytes > 0 => {
                let bps = i128::from(bytes) * 8 * 1_000_000_000 / i128::from(dur_ns);
                u64::try_from(bps * 11 / 10).unwrap_or(u64::MAX)
            }
            _ => 2_000_000,
        })
    }
}

struct FlowEntry {
    id: Id,
    label: String,
    /// Carries video (a video flow, or a multiplex with a video part).
    video: bool,
    /// A video flow with no audio of its own (can be paired with an audio rendition).
    video_only: bool,
    codecs: Vec<String>,
    resolution: Option<(u32, u32)>,
    frame_rate: Option<f64>,
    channels: Option<u32>,
    bandwidth: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(v: serde_json::Value) -> Flow {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn packaging_names_what_hls_cannot_carry() {
        let id = Id::new_v4();
        let ok = flow(serde_json::json!({
            "id": id, "source_id": id, "format": "urn:x-nmos:format:multi", "container": "video/mp2t"
        }));
        assert_eq!(packaging(&ok).unwrap(), Packaging::Ts);
        let fmp4 = flow(serde_json::json!({
            "id": id, "source_id": id, "format": "urn:x-nmos:format:video", "codec": "video/h264",
            "container": "video/mp4", "essence_parameters": {"frame_width": 1, "frame_height": 1}
        }));
        assert_eq!(packaging(&fmp4).unwrap(), Packaging::Fmp4);
        let cases = [
            (
                serde_json::json!({"id": id, "source_id": id, "format": "urn:x-nmos:format:video",
                    "codec": "video/h264", "essence_parameters": {"frame_width": 1, "frame_height": 1}}),
                "container",
            ),
            (
                serde_json::json!({"id": id, "source_id": id, "format": "urn:x-nmos:format:video",
                    "codec": "video/jxsv", "container": "video/mp2t",
                    "essence_parameters": {"frame_width": 1, "frame_height": 1}}),
                "codec",
            ),
            (
                serde_json::json!({"id": id, "source_id": id, "format": "urn:x-nmos:format:video",
                    "codec": "video/h264", "container": "video/x-matroska",
                    "essence_parameters": {"frame_width": 1, "frame_height": 1}}),
                "container",
            ),
        ];
        for (v, field) in cases {
            match packaging(&flow(v)) {
                Err(PackagingError::Unsupported { field: f, message }) => {
                    assert_eq!(f, field, "{message}");
                }
                other => panic!("expected unsupported {field}, got {other:?}"),
            }
        }
    }
}
