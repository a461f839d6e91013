//! Live media, sans-IO: FLV tag bodies (as RTMP carries them) in, MPEG-TS segments cut at
//! keyframes out. Every parser here reads untrusted network bytes and has a fuzz target.

pub mod aac;
pub mod avc;
pub mod bmff;
pub mod flv;
pub mod fmp4;
pub mod mp4;
pub mod pcm;
pub mod raw;
pub mod rawstream;
pub mod rtmp;
pub mod samples;
pub mod segmenter;
pub mod tables;
pub mod ts;

pub use segmenter::{
    AudioInfo, LiveSegmenter, Mp4Segment, Segment, SegmenterConfig, StreamInfo, VideoInfo,
};

/// Why a publisher's media was refused. Every variant names what was wrong, so the
/// connection can be closed with a reason a human can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("empty {0} message")]
    Empty(&'static str),
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("unsupported video codec id {0} (drey ingests H.264/AVC, FLV codec id 7)")]
    UnsupportedVideoCodec(u8),
    #[error("unsupported Enhanced RTMP video (FourCC {0:?}); drey ingests H.264/AVC")]
    UnsupportedEnhancedVideo(String),
    #[error("unsupported audio format {0} (drey ingests AAC, FLV sound format 10)")]
    UnsupportedAudioFormat(u8),
    #[error("unsupported AVC packet type {0}")]
    UnsupportedAvcPacketType(u8),
    #[error("bad AVC decoder configuration record: {0}")]
    BadAvcConfig(String),
    #[error("bad AAC AudioSpecificConfig: {0}")]
    BadAacConfig(String),
    #[error("NAL unit length {len} exceeds the {remaining} bytes left in the video message")]
    BadNalLength { len: usize, remaining: usize },
    #[error("AAC frame of {0} bytes is larger than an ADTS frame can carry")]
    AacFrameTooLarge(usize),
    #[error("{0} data before its codec configuration (sequence header)")]
    MissingConfig(&'static str),
    #[error("timestamp jumped {delta_ms} ms {direction} (allowed: {allowed_ms} ms)")]
    TimestampJump {
        delta_ms: i64,
        direction: &'static str,
        allowed_ms: i64,
    },
    #[error("no video keyframe within {0} ms of the first media")]
    NoKeyframe(i64),
    #[error("video started after the stream was segmented as audio only")]
    LateVideo,
    #[error("bad {what}: {message}")]
    BadContainer { what: &'static str, message: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("segment grew past {0} bytes without a keyframe to cut at")]
    SegmentTooLarge(usize),
}
