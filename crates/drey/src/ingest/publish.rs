//! One publish: drives the segmenter with the publisher's FLV tags, anchors its timeline to
//! TAI, builds the flow records once the codecs are known, and hands each closed segment to
//! the publish's uploader.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use drey_core::media::segmenter::PTS_OFFSET_MS;
use drey_core::media::{LiveSegmenter, MediaError, SegmenterConfig, StreamInfo, TsSegment};
use drey_core::model::Flow;
use drey_core::{Id, TimeRange, Timestamp};
use tokio::sync::{mpsc, watch};

use super::flows::{StreamIds, stream_flows};
use super::uploader::{Closed, Uploader};
use super::{Ingest, SegmentJob};
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
    flows: Option<(StreamInfo, Arc<Vec<Flow>>)>,
    tx: Option<mpsc::Sender<Closed>>,
    pub abort: watch::Receiver<Option<String>>,
    pub frames: u64,
    /// `drey_rtmp_video_messages_total`, looked up once rather than per message.
    video_messages: metrics::Counter,
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
        let flow = ids.mux_flow;
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
        let (tx, rx) = mpsc::channel(4);
        let (abort_tx, abort) = watch::channel(None);
        Uploader::spawn(ing.clone(), stream.clone(), rx, abort_tx);
        let segmenter = LiveSegmenter::new(SegmenterConfig {
            target_duration_ms: i64::try_from(ing.cfg.segment_duration.as_millis()).unwrap_or(2000),
            ..SegmenterConfig::default()
        });
        tracing::info!(publish = %id, %stream, flow = %ids.mux_flow, "publish started");
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
            tx: Some(tx),
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

    fn flows(&mut self) -> Arc<Vec<Flow>> {
        let info = self.segmenter.info();
        match &self.flows {
            Some((known, flows)) if *known == info => flows.clone(),
            _ => {
                let flows = Arc::new(stream_flows(
                    &self.ids,
                    &self.app,
                    &self.key,
                    &info,
                    self.metadata_fps,
                    i64::try_from(self.ing.cfg.segment_duration.as_millis()).unwrap_or(2000),
                ));
                self.flows = Some((info, flows.clone()));
                flows
            }
        }
    }

    async fn emit(&mut self, seg: Option<TsSegment>) {
        let Some(seg) = seg else {
            return;
        };
        let flows = self.flows();
        let ms = 1_000_000i64;
        let job = SegmentJob {
            publish_id: self.id,
            seq: seg.index,
            flow_id: self.ids.mux_flow,
            object_id: SegmentJob::object_id_for(self.ids.mux_flow, self.id, seg.index),
            start_ns: self.anchor_ns + seg.start_ms * ms,
            end_ns: self.anchor_ns + seg.end_ms * ms,
            ts_offset_ns: self.anchor_ns - PTS_OFFSET_MS * ms,
            key_frame_count: seg.key_frame_count,
            video_frames: seg.video_frames,
            closed_unix_ns: unix_now_ns(),
        };
        self.ing.note_end(&self.stream, job.end_ns);
        metrics::counter!("drey_ingest_segments_closed_total").increment(1);
        metrics::counter!("drey_ingest_video_frames_closed_total")
            .increment(u64::from(seg.video_frames));
        if let Some(tx) = &self.tx {
            let closed = Closed {
                job,
                flows,
                data: Bytes::from(seg.data),
            };
            if tx.send(closed).await.is_err() {
                tracing::error!(stream = %self.stream, "uploader gone; segment lost");
                metrics::counter!("drey_ingest_segments_lost_total").increment(1);
            }
        }
    }

    /// Ends the publish: closes the last segment and lets the uploader finish.
    pub async fn finish(mut self) {
        let last = self.segmenter.finish();
        self.emit(last).await;
        self.tx = None;
        tracing::info!(publish = %self.id, stream = %self.stream, frames = self.frames, dropped_leading = self.segmenter.dropped_leading_frames, "publish ended");
    }
}
