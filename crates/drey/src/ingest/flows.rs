//! The TAMS records of an RTMP publish: a Source and a multiplexed MPEG-TS Flow labelled with
//! the stream key, collecting a video and an audio Flow that describe the codecs. Ids are
//! derived from app and key, so a re-publish continues the same flows on any instance.

use drey_core::Id;
use drey_core::media::{StreamInfo, VideoInfo};
use drey_core::model::{Flow, FlowStatus};

use super::SegmentFormat;
use serde_json::json;

/// Namespace of the UUIDv5 ids of ingested sources and flows.
const RTMP_NAMESPACE: &str = "5b0c7c62-6f0e-5b8e-9a53-2f4f2f1d7a01";

/// The ids of one stream's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamIds {
    pub source: Id,
    /// The multiplexed MPEG-TS flow.
    pub mux_flow: Id,
    /// The multiplexed fragmented-MP4 flow.
    pub mp4_flow: Id,
    pub video_source: Id,
    pub video_flow: Id,
    pub audio_source: Id,
    pub audio_flow: Id,
}

impl StreamIds {
    /// Stable ids for `app/key`; `publish` makes them unique to one publish instead.
    pub fn derive(app: &str, key: &str, publish: Option<Id>) -> Self {
        let ns: Id = RTMP_NAMESPACE.parse().expect("valid namespace");
        let base = match publish {
            Some(p) => format!("rtmp/{app}/{key}/{p}"),
            None => format!("rtmp/{app}/{key}"),
        };
        let id = |role: &str| Id::new_v5(&ns, format!("{base}#{role}").as_bytes());
        StreamIds {
            source: id("source"),
            mux_flow: id("flow"),
            mp4_flow: id("flow-fmp4"),
            video_source: id("video-source"),
            video_flow: id("video-flow"),
            audio_source: id("audio-source"),
            audio_flow: id("audio-flow"),
        }
    }
}

/// Frame rate as a rational: NTSC rates exactly, others to the nearest integer.
fn frame_rate(fps: f64) -> serde_json::Value {
    for (n, d) in [(24000, 1001), (30000, 1001), (60000, 1001)] {
        if (fps - f64::from(n) / f64::from(d)).abs() < 0.005 {
            return json!({"numerator": n, "denominator": d});
        }
    }
    json!({"numerator": (fps.round() as u64).max(1)})
}

fn video_flow(
    ids: &StreamIds,
    label: &str,
    tags: &serde_json::Value,
    v: &VideoInfo,
    fps: Option<f64>,
) -> serde_json::Value {
    let mut essence = json!({
        "frame_width": v.width,
        "frame_height": v.height,
        "avc_parameters": {
            "profile": v.profile_idc,
            "level": v.level_idc,
            "flags": v.constraint_flags,
        },
    });
    if let Some(f) = v.fps.or(fps).filter(|f| *f > 0.0 && *f < 1000.0) {
        essence["frame_rate"] = frame_rate(f);
    }
    json!({
        "id": ids.video_flow,
        "source_id": ids.video_source,
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "label": label,
        "description": format!("H.264 video of RTMP stream {label} ({})", v.codec_string),
        "created_by": "drey rtmp ingest",
        "tags": tags,
        "essence_parameters": essence,
    })
}

/// The flows to create or update for a publish, multiplexed flow first.
pub fn stream_flows(
    ids: &StreamIds,
    app: &str,
    key: &str,
    info: &StreamInfo,
    metadata_fps: Option<f64>,
    segment_duration_ms: i64,
    outputs: &[SegmentFormat],
) -> Vec<Flow> {
    let tags = json!({"drey.ingest": "rtmp", "drey.rtmp.app": app});
    let mut out = Vec::with_capacity(3);
    let mut collection = Vec::new();
    if let Some(v) = &info.video {
        out.push(video_flow(ids, key, &tags, v, metadata_fps));
        collection.push(json!({"id": ids.video_flow, "role": "video"}));
    }
    if let Some(a) = &info.audio {
        out.push(json!({
            "id": ids.audio_flow,
            "source_id": ids.audio_source,
            "format": "urn:x-nmos:format:audio",
            "codec": "audio/aac",
            "label": key,
            "description": format!("AAC audio of RTMP stream {key} ({})", a.codec_string),
            "created_by": "drey rtmp ingest",
            "tags": tags,
            "essence_parameters": {"sample_rate": a.sample_rate, "channels": a.channels},
        }));
        collection.push(json!({"id": ids.audio_flow, "role": "audio"}));
    }
    let codecs: Vec<String> = info
        .video
        .iter()
        .map(|v| v.codec_string.clone())
        .chain(info.audio.iter().map(|a| a.codec_string.clone()))
        .collect();
    let mut mux_tags = tags.clone();
    mux_tags["drey.codecs"] = json!(codecs.join(","));
    let muxes = outputs.iter().map(|f| {
        let (id, name) = match f {
            SegmentFormat::Ts => (ids.mux_flow, "MPEG-TS"),
            SegmentFormat::Fmp4 => (ids.mp4_flow, "fragmented MP4"),
        };
        let mut m = json!({
            "id": id,
            "source_id": ids.source,
            "format": "urn:x-nmos:format:multi",
            "container": f.content_type(),
            "label": key,
            "description": format!("RTMP stream {app}/{key}, {name}"),
            "created_by": "drey rtmp ingest",
            "tags": mux_tags,
            "segment_duration": {"numerator": segment_duration_ms.max(1), "denominator": 1000},
            "flow_collection": collection,
        });
        if *f == SegmentFormat::Fmp4 {
            m["essence_parameters"] = json!({"init_segments": true});
        }
        m
    });
    let mut flows: Vec<Flow> = muxes
        .collect::<Vec<_>>()
        .into_iter()
        .chain(out)
        .map(|v| serde_json::from_value(v).expect("ingest flow records are well formed"))
        .collect();
    for f in &mut flows {
        f.status = Some(FlowStatus::Ingesting);
    }
    flows
}

#[cfg(test)]
mod tests {
    use super::*;
    use drey_core::media::AudioInfo;

    #[test]
    fn records_validate_and_ids_are_stable() {
        let ids = StreamIds::derive("live", "cam1", None);
        assert_eq!(ids, StreamIds::derive("live", "cam1", None));
        assert_ne!(
            ids.mux_flow,
            StreamIds::derive("live", "cam2", None).mux_flow
        );
        let p = Id::new_v4();
        assert_ne!(
            ids.mux_flow,
            StreamIds::derive("live", "cam1", Some(p)).mux_flow
        );
        let info = StreamInfo {
            video: Some(VideoInfo {
                width: 1280,
                height: 720,
                codec_string: "avc1.64001f".into(),
                profile_idc: 100,
                constraint_flags: 0,
                level_idc: 31,
                fps: None,
            }),
            audio: Some(AudioInfo {
                sample_rate: 48000,
                channels: 2,
                codec_string: "mp4a.40.2".into(),
            }),
        };
        let flows = stream_flows(
            &ids,
            "live",
            "cam1",
            &info,
            Some(29.97),
            2000,
            &[SegmentFormat::Ts],
        );
        assert_eq!(flows.len(), 3);
        for f in &flows {
            f.validate().unwrap();
            assert_eq!(f.label.as_deref(), Some("cam1"));
        }
        assert_eq!(flows[0].id, ids.mux_flow);
        assert_eq!(
            flows[0].container.as_ref().map(|c| c.as_str()),
            Some("video/mp2t")
        );
        assert_eq!(flows[0].flow_collection.as_ref().map(Vec::len), Some(2));
        let v = serde_json::to_value(&flows[1]).unwrap();
        assert_eq!(v["essence_parameters"]["frame_rate"]["denominator"], 1001);
        // Both outputs: two multiplexed flows of one source, the MP4 one with init segments.
        let both = stream_flows(
            &ids,
            "live",
            "cam1",
            &info,
            None,
            2000,
            &[SegmentFormat::Ts, SegmentFormat::Fmp4],
        );
        assert_eq!(both.len(), 4);
        assert_eq!((both[0].id, both[1].id), (ids.mux_flow, ids.mp4_flow));
        assert_eq!(both[0].source_id, both[1].source_id);
        both[1].validate().unwrap();
        assert_eq!(
            both[1].container.as_ref().map(|c| c.as_str()),
            Some("video/mp4")
        );
        assert!(both[1].essence.init_segments());
    }
}
