//! One publish: drives the segmenter with the publisher's FLV tags, anchors its timeline to
//! TAI, builds the flow records once the codecs are known, and hands each closed segment to
//! an uploader per output format (MPEG-TS and/or fragmented MP4, each a flow of its own).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use drey_core::media::samples::Samples;
use drey_core::media::segmenter::PTS_OFFSET_MS;
use drey_core::media::{self, LiveSegmenter, MediaError, Segment, SegmenterConfig, StreamInfo};
use drey_core::model::Flow;
use drey_core::{Id, TimeRange, Timestamp};
use tokio::sync::{mpsc, watch};

use super::flows::{StreamIds, stream_flows};
use super::uploader::{Closed, Uploader};
use super::{Ingest, InitObject, SegmentFormat, SegmentJob};
use crate::util::unix_now_ns;

pub struct Publish {
    ing: Arc<Ingest>,
    pub app: String,
    pub key: String,
    /// `app/key`, the unit of "one publisher at a time".
    pub stream: String,
    pub id: Id,
    ids: StreamIds,
    segmenter: LiveSegmenter,
    /// TAI nanoseconds of the stream timeline's zero.
    anchor_ns: i64,
    metadata_fps: Option<f64>,
    flows: Option<(StreamInfo, Vec<Arc<Vec<Flow>>>)>,
    outputs: Vec<Output>,
    /// Set by any uploader when the publish must end (spool full).
    pub abort: watch::Receiver<Option<String>>,
    pub frames: u64,
    /// `drey_rtmp_video_messages_total`, looked up once rather than per message.
    video_messages: metrics::Counter,
}

/// One output format of a publish and the uploader that stores it.
struct Output {
    format: SegmentFormat,
    flow: Id,
    /// Names this output's objects and spool directory (the publish id for MPEG-TS).
    publish_id: Id,
    tx: Option<mpsc::Sender<Closed>>,
    /// The base64 of the current init segment, by version (fragmented MP4).
    init_b64: Option<(u32, String)>,
}

impl Publish {
    /// Starts a publish of `app/key` (the caller claimed the key). The timeline starts at
    /// the wall clock, or just after the flow's last segment if that is later (a clock step
    /// back, or a quick re-publish, must not overlap what is stored).
    pub async fn start(ing: Arc<Ingest>, app: &str, key: &str) -> Publish {
        let id = Id::new_v4();
        let ids = StreamIds::derive(app, key, ing.cfg.new_flow_per_publish.then_some(id));
        let mut anchor_ns = Timestamp::now_tai().as_nanos();
        let index = ing.index.clone();
        let formats = if ing.cfg.outputs.is_empty() {
            vec![SegmentFormat::Ts]
        } else {
            ing.cfg.outputs.clone()
        };
        let flow_of = |f: SegmentFormat| match f {
            SegmentFormat::Ts => ids.mux_flow,
            SegmentFormat::Fmp4 => ids.mp4_flow,
        };
        let flow = flow_of(formats[0]);
        // Index work runs on the main runtime (database connections belong to it).
        let lookup = ing
            .main
            .spawn(async move { index.flow_timerange(flow, &TimeRange::ETERNITY).await });
        match tokio::time::timeout(Duration::from_secs(2), lookup).await {
            Ok(Ok(Ok(tr))) => {
                if let Some(end) = tr.end_nanos() {
                    anchor_ns = anchor_ns.max(end);
                }
            }
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "could not read the flow's timeline; anchoring to the clock")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "flow timeline lookup failed"),
            Err(_) => tracing::warn!("index slow; anchoring the publish to the clock"),
        }
        let stream = format!("{app}/{key}");
        // Segments of an earlier publish may still wait in the spool, unknown to the index.
        if let Some(end) = ing.last_end(&stream) {
            anchor_ns = anchor_ns.max(end);
        }
        let (abort_tx, abort) = watch::channel(None);
        let abort_tx = Arc::new(abort_tx);
        let outputs: Vec<Output> = formats
            .iter()
            .map(|&format| {
                let (tx, rx) = mpsc::channel(4);
                Uploader::spawn(ing.clone(), stream.clone(), rx, abort_tx.clone());
                Output {
                    format,
                    flow: flow_of(format),
                    publish_id: match format {
                        SegmentFormat::Ts => id,
                        SegmentFormat::Fmp4 => Id::new_v5(&id, b"fmp4"),
                    },
                    tx: Some(tx),
                    init_b64: None,
                }
            })
            .collect();
        let segmenter = LiveSegmenter::new(SegmenterConfig {
            target_duration_ms: i64::try_from(ing.cfg.segment_duration.as_millis()).unwrap_or(2000),
            ts: formats.contains(&SegmentFormat::Ts),
            fmp4: formats.contains(&SegmentFormat::Fmp4),
            tables: ing.cfg.keep_sample_tables,
            ..SegmenterConfig::default()
        });
        tracing::info!(publish = %id, %stream, flow = %flow, outputs = ?formats, "publish started");
        Publish {
            ing,
            app: app.to_owned(),
            key: key.to_owned(),
            stream,
            id,
            ids,
            segmenter,
            anchor_ns,
            metadata_fps: None,
            flows: None,
            outputs,
            abort,
            frames: 0,
            video_messages: metrics::counter!("drey_rtmp_video_messages_total"),
        }
    }

    pub fn metadata(&mut self, has_video: bool, fps: Option<f64>) {
        if has_video {
            self.segmenter.expect_video();
        }
        if fps.is_some() {
            self.metadata_fps = fps;
        }
    }

    /// Feeds one media message (`video` or audio) to the segmenter, storing what it closes.
    pub async fn media(&mut self, video: bool, ts: u32, body: &[u8]) -> Result<(), MediaError> {
        self.frames += 1;
        let closed = if video {
            self.video_messages.increment(1);
            self.segmenter.push_video(ts, body)?
        } else {
            self.segmenter.push_audio(ts, body)?
        };
        self.emit(closed).await;
        Ok(())
    }

    /// The flow records each output's uploader keeps in place: its own multiplexed flow
    /// plus the elementary video and audio flows they collect.
    fn flows(&mut self) -> Vec<Arc<Vec<Flow>>> {
        let info = self.segmenter.info();
        if let Some((known, flows)) = &self.flows
            && *known == info
        {
            return flows.clone();
        }
        let formats: Vec<SegmentFormat> = self.outputs.iter().map(|o| o.format).collect();
        let all = stream_flows(
            &self.ids,
            &self.app,
            &self.key,
            &info,
            self.metadata_fps,
            i64::try_from(self.ing.cfg.segment_duration.as_millis()).unwrap_or(2000),
            &formats,
        );
        let muxes = [self.ids.mux_flow, self.ids.mp4_flow];
        let per_output: Vec<Arc<Vec<Flow>>> = self
            .outputs
            .iter()
            .map(|o| {
                Arc::new(
                    all.iter()
                        .filter(|f| f.id == o.flow || !muxes.contains(&f.id))
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        self.flows = Some((info, per_output.clone()));
        per_output
    }

    async fn emit(&mut self, seg: Option<Segment>) {
        let Some(mut seg) = seg else {
            return;
        };
        let flows = self.flows();
        let ms = 1_000_000i64;
        let end_ns = self.anchor_ns + seg.end_ms * ms;
        self.ing.note_end(&self.stream, end_ns);
        let mut mp4 = seg.mp4.take();
        for (o, flows) in self.outputs.iter_mut().zip(flows) {
            let (data, init, tables) = match (o.format, mp4.as_mut()) {
                (SegmentFormat::Ts, _) => (
                    Bytes::from(std::mem::take(&mut seg.ts)),
                    None,
                    seg.ts_tables.take(),
                ),
                (SegmentFormat::Fmp4, Some(m)) => {
                    let b64 = match &o.init_b64 {
                        Some((v, b)) if *v == m.init_version => b.clone(),
                        _ => {
                            let b = base64::engine::general_purpose::STANDARD.encode(&*m.init);
                            o.init_b64 = Some((m.init_version, b.clone()));
                            b
                        }
                    };
                    let init = InitObject {
                        object_id: SegmentJob::init_object_id(o.flow, o.publish_id, m.init_version),
                        data: b64,
                    };
                    (
                        Bytes::from(std::mem::take(&mut m.data)),
                        Some(init),
                        m.tables.take(),
                    )
                }
                (SegmentFormat::Fmp4, None) => continue,
            };
            let object_id = SegmentJob::object_id_for(o.flow, o.publish_id, seg.index, o.format);
            let tables = tables.and_then(|t| encode_tables(&object_id, t));
            let job = SegmentJob {
                publish_id: o.publish_id,
                seq: seg.index,
                flow_id: o.flow,
                object_id,
                start_ns: self.anchor_ns + seg.start_ms * ms,
                end_ns,
                ts_offset_ns: self.anchor_ns - PTS_OFFSET_MS * ms,
                key_frame_count: seg.key_frame_count,
                video_frames: seg.video_frames,
                closed_unix_ns: unix_now_ns(),
                format: o.format,
                init,
                tables,
            };
            metrics::counter!("drey_ingest_segments_closed_total").increment(1);
            metrics::counter!("drey_ingest_video_frames_closed_total")
                .increment(u64::from(seg.video_frames));
            if let Some(tx) = &o.tx {
                let closed = Closed { job, flows, data };
                if tx.send(closed).await.is_err() {
                    tracing::error!(stream = %self.stream, "uploader gone; segment lost");
                    metrics::counter!("drey_ingest_segments_lost_total").increment(1);
                }
            }
        }
    }

    /// Ends the publish: closes the last segment and lets the uploader finish.
    pub async fn finish(mut self) {
        let last = self.segmenter.finish();
        self.emit(last).await;
        for o in &mut self.outputs {
            o.tx = None;
        }
        tracing::info!(publish = %self.id, stream = %self.stream, frames = self.frames, dropped_leading = self.segmenter.dropped_leading_frames, "publish ended");
    }
}

/// A segment's sample tables as its job carries them; tables the segmenter could not
/// build (the segment would not demux either) are counted, and its MP4 export reads it.
fn encode_tables(object_id: &str, tables: Result<Samples, MediaError>) -> Option<String> {
    match tables {
        Ok(t) => Some(base64::engine::general_purpose::STANDARD.encode(media::tables::encode(&t))),
        Err(e) => {
            metrics::counter!("drey_ingest_sample_tables_total", "result" => "unreadable")
                .increment(1);
            tracing::debug!(object = object_id, error = %e, "segment's sample tables not kept; its MP4 export reads it");
            None
        }
    }
}
