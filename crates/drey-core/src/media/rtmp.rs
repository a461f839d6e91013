//! The RTMP server protocol, sans-IO: bytes from a publisher in, events and reply bytes
//! out. Wraps rml_rtmp's handshake and chunk/AMF session, turning a panic inside it into an
//! error, and keeps only what ingest needs. `replay` runs a captured client byte stream
//! through it and the segmenter (tests, fuzzing).

use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use super::{LiveSegmenter, MediaError, Segment, SegmenterConfig};

/// What the publisher did.
#[derive(Debug, Clone, PartialEq)]
pub enum RtmpEvent {
    /// `connect` to an application (with its `?query`, if any).
    Connect {
        request_id: u32,
        app: String,
    },
    /// `publish` of a stream key (with its `?query`, if any) on the connected app.
    Publish {
        request_id: u32,
        app: String,
        key: String,
    },
    /// `play`: drey does not serve RTMP playback.
    Play {
        request_id: u32,
    },
    /// `@setDataFrame onMetaData`.
    Metadata {
        has_video: bool,
        frame_rate: Option<f64>,
    },
    Video {
        timestamp: u32,
        data: Bytes,
    },
    Audio {
        timestamp: u32,
        data: Bytes,
    },
    PublishFinished,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtmpError {
    #[error("bad handshake: {0}")]
    Handshake(String),
    #[error("bad RTMP chunk stream: {0}")]
    Protocol(String),
    #[error("the RTMP parser panicked on this input")]
    Panic,
}

/// One connection's protocol state.
pub struct RtmpServer {
    handshake: Option<Handshake>,
    session: Option<ServerSession>,
    out: Vec<u8>,
}

impl Default for RtmpServer {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    static IN_LIBRARY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True while this thread runs inside rml_rtmp (for panic hooks: such a panic becomes
/// [`RtmpError::Panic`] and closes one connection).
pub fn in_protocol_library() -> bool {
    IN_LIBRARY.with(|c| c.get())
}

fn guard<T, E: std::fmt::Debug>(
    f: impl FnOnce() -> Result<T, E>,
    wrap: fn(String) -> RtmpError,
) -> Result<T, RtmpError> {
    IN_LIBRARY.with(|c| c.set(true));
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    IN_LIBRARY.with(|c| c.set(false));
    r.map_err(|_| RtmpError::Panic)?
        .map_err(|e| wrap(format!("{e:?}")))
}

impl RtmpServer {
    pub fn new() -> Self {
        RtmpServer {
            handshake: Some(Handshake::new(PeerType::Server)),
            session: None,
            out: Vec::new(),
        }
    }

    pub fn handshake_done(&self) -> bool {
        self.session.is_some()
    }

    /// Bytes to send to the peer, in order; the caller writes and clears them.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Feeds bytes received from the peer.
    pub fn input(&mut self, bytes: &[u8]) -> Result<Vec<RtmpEvent>, RtmpError> {
        let mut events = Vec::new();
        let mut bytes = bytes;
        let remaining;
        if let Some(hs) = &mut self.handshake {
            match guard(|| hs.process_bytes(bytes), RtmpError::Handshake)? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    return Ok(events);
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.out.extend_from_slice(&response_bytes);
                    self.handshake = None;
                    let (session, initial) = guard(
                        || ServerSession::new(ServerSessionConfig::new()),
                        RtmpError::Protocol,
                    )?;
                    self.session = Some(session);
                    self.results(initial, &mut events);
                    remaining = remaining_bytes;
                    bytes = &remaining;
                }
            }
        }
        if bytes.is_empty() {
            return Ok(events);
        }
        let Some(session) = &mut self.session else {
            return Ok(events);
        };
        let results = guard(|| session.handle_input(bytes), RtmpError::Protocol)?;
        self.results(results, &mut events);
        Ok(events)
    }

    fn results(&mut self, results: Vec<ServerSessionResult>, events: &mut Vec<RtmpEvent>) {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => self.out.extend_from_slice(&p.bytes),
                ServerSessionResult::RaisedEvent(ev) => {
                    if let Some(e) = convert(ev) {
                        events.push(e);
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
    }

    fn session(&mut self) -> Result<&mut ServerSession, RtmpError> {
        self.session
            .as_mut()
            .ok_or_else(|| RtmpError::Protocol("request before the handshake".to_owned()))
    }

    /// Accepts a connect, publish or play request.
    pub fn accept(&mut self, request_id: u32) -> Result<(), RtmpError> {
        let session = self.session()?;
        let results = guard(|| session.accept_request(request_id), RtmpError::Protocol)?;
        let mut events = Vec::new();
        self.results(results, &mut events);
        Ok(())
    }

    /// Refuses a request with a status the client shows (`NetStream.Publish.BadName`...).
    pub fn reject(&mut self, request_id: u32, code: &str, description: &str) {
        if let Ok(session) = self.session()
            && let Ok(results) = guard(
                || session.reject_request(request_id, code, description),
                RtmpError::Protocol,
            )
        {
            let mut events = Vec::new();
            self.results(results, &mut events);
        }
    }
}

fn convert(ev: ServerSessionEvent) -> Option<RtmpEvent> {
    Some(match ev {
        ServerSessionEvent::ConnectionRequested {
            request_id,
            app_name,
        } => RtmpEvent::Connect {
            request_id,
            app: app_name,
        },
        ServerSessionEvent::PublishStreamRequested {
            request_id,
            app_name,
            stream_key,
            ..
        } => RtmpEvent::Publish {
            request_id,
            app: app_name,
            key: stream_key,
        },
        ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
            RtmpEvent::Play { request_id }
        }
        ServerSessionEvent::StreamMetadataChanged { metadata, .. } => RtmpEvent::Metadata {
            has_video: metadata.video_codec_id.is_some() || metadata.video_width.is_some(),
            frame_rate: metadata
                .video_frame_rate
                .map(f64::from)
                .filter(|f| f.is_finite() && *f > 0.0),
        },
        ServerSessionEvent::VideoDataReceived {
            data, timestamp, ..
        } => RtmpEvent::Video {
            timestamp: timestamp.value,
            data,
        },
        ServerSessionEvent::AudioDataReceived {
            data, timestamp, ..
        } => RtmpEvent::Audio {
            timestamp: timestamp.value,
            data,
        },
        ServerSessionEvent::PublishStreamFinished { .. } => RtmpEvent::PublishFinished,
        _ => return None,
    })
}

/// Why a replay stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// Runs a publisher's byte stream (as captured from the wire) through the protocol and the
/// segmenter, accepting every request, `chunk` bytes at a time. Returns the segments.
///
/// A live client waits for the answer to each command before sending the next; rml_rtmp
/// ignores commands that arrive before the previous request was accepted. So until the
/// publish is accepted the capture is fed one byte at a time, like a client waiting.
pub fn replay(client: &[u8], chunk: usize) -> Result<Vec<Segment>, ReplayError> {
    let mut server = RtmpServer::new();
    let mut seg: Option<LiveSegmenter> = None;
    let mut out = Vec::new();
    // C0 + C1 + C2.
    const HANDSHAKE_LEN: usize = 1 + 1536 + 1536;
    let mut rest = client;
    while !rest.is_empty() {
        let consumed = client.len() - rest.len();
        let n = if seg.is_some() {
            chunk.max(1)
        } else if consumed < HANDSHAKE_LEN {
            chunk.max(1).min(HANDSHAKE_LEN - consumed)
        } else {
            1
        };
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        for ev in server.input(piece)? {
            match ev {
                RtmpEvent::Connect { request_id, .. } => server.accept(request_id)?,
                RtmpEvent::Publish { request_id, .. } => {
                    server.accept(request_id)?;
                    seg = Some(LiveSegmenter::new(SegmenterConfig::default()));
                }
                RtmpEvent::Metadata { has_video, .. } => {
                    if let (Some(s), true) = (&mut seg, has_video) {
                        s.expect_video();
                    }
                }
                RtmpEvent::Video { timestamp, data } => {
                    if let Some(s) = &mut seg {
                        out.extend(s.push_video(timestamp, &data)?);
                    }
                }
                RtmpEvent::Audio { timestamp, data } => {
                    if let Some(s) = &mut seg {
                        out.extend(s.push_audio(timestamp, &data)?);
                    }
                }
                RtmpEvent::PublishFinished => {
                    if let Some(mut s) = seg.take() {
                        out.extend(s.finish());
                    }
                }
                RtmpEvent::Play { .. } => {}
            }
        }
        server.output().clear();
    }
    if let Some(mut s) = seg.take() {
        out.extend(s.finish());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ffmpeg sent when publishing testdata/small.flv (`-c copy -f flv rtmp://...`),
    /// captured on the wire: handshake, connect, publish, metadata and 5 s of media.
    const CAPTURE: &[u8] = include_bytes!("../../testdata/ffmpeg-publish.rtmp");

    #[test]
    fn a_captured_ffmpeg_publish_becomes_segments_in_any_chunking() {
        for chunk in [1, 7, 1536, 4096, 65536] {
            let segs = replay(CAPTURE, chunk).unwrap();
            assert_eq!(segs.len(), 3, "chunk {chunk}");
            let frames: u32 = segs.iter().map(|s| s.video_frames).sum();
            assert_eq!(frames, 125, "chunk {chunk}");
        }
    }

    #[test]
    fn a_panic_inside_rml_rtmp_is_an_error() {
        // Found by the rtmp_ingest fuzz target: a chunk header that shrinks the message
        // length mid-message makes rml_rtmp 0.8 subtract with overflow.
        let input = include_bytes!("../../testdata/rml-overflow.rtmp");
        let (&chunk, bytes) = input.split_first().unwrap();
        let r = replay(bytes, usize::from(chunk).max(1) * 64);
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            replay(&[0x42; 4000], 512),
            Err(ReplayError::Rtmp(RtmpError::Handshake(_)))
        ));
        // A valid handshake followed by garbage chunks.
        let mut bytes = CAPTURE[..1537 + 1536].to_vec();
        bytes.extend_from_slice(&[0xff; 3000]);
        let _ = replay(&bytes, 100);
        // Every truncation of the capture ends cleanly.
        for cut in (0..CAPTURE.len()).step_by(997) {
            let _ = replay(&CAPTURE[..cut], 4096);
        }
    }
}
