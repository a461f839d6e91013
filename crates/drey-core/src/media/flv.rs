//! FLV video and audio tag bodies (the payload of RTMP messages 9 and 8): which codec, which
//! packet type, and the slice of codec data, without copying.

use super::MediaError;

/// A parsed video tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacket<'a> {
    /// An AVCDecoderConfigurationRecord.
    SequenceHeader(&'a [u8]),
    /// Length-prefixed NAL units of one access unit.
    Nalus {
        keyframe: bool,
        composition_time_ms: i32,
        data: &'a [u8],
    },
    EndOfSequence,
    /// Video info / command frames (frame type 5): carry no picture.
    Info,
}

/// A parsed audio tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacket<'a> {
    /// An AudioSpecificConfig.
    AacConfig(&'a [u8]),
    /// One raw AAC frame.
    AacRaw(&'a [u8]),
}

const FLV_CODEC_AVC: u8 = 7;
const FLV_SOUND_AAC: u8 = 10;

pub fn parse_video(body: &[u8]) -> Result<VideoPacket<'_>, MediaError> {
    let Some(&first) = body.first() else {
        return Err(MediaError::Empty("video"));
    };
    if first & 0x80 != 0 {
        // Enhanced RTMP: bit 7 set, FourCC in bytes 1..5.
        let fourcc = body
            .get(1..5)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        return Err(MediaError::UnsupportedEnhancedVideo(fourcc));
    }
    let frame_type = (first >> 4) & 0x07;
    let codec = first & 0x0f;
    if frame_type == 5 {
        return Ok(VideoPacket::Info);
    }
    if codec != FLV_CODEC_AVC {
        return Err(MediaError::UnsupportedVideoCodec(codec));
    }
    if body.len() < 5 {
        return Err(MediaError::Truncated {
            what: "AVC video tag header",
            need: 5,
            have: body.len(),
        });
    }
    let packet_type = body[1];
    // SI24, sign-extended.
    let cts = (i32::from(body[2]) << 24 | i32::from(body[3]) << 16 | i32::from(body[4]) << 8) >> 8;
    let data = &body[5..];
    match packet_type {
        0 => Ok(VideoPacket::SequenceHeader(data)),
        1 => Ok(VideoPacket::Nalus {
            keyframe: frame_type == 1,
            composition_time_ms: cts,
            data,
        }),
        2 => Ok(VideoPacket::EndOfSequence),
        other => Err(MediaError::UnsupportedAvcPacketType(other)),
    }
}

pub fn parse_audio(body: &[u8]) -> Result<AudioPacket<'_>, MediaError> {
    let Some(&first) = body.first() else {
        return Err(MediaError::Empty("audio"));
    };
    let format = first >> 4;
    if format != FLV_SOUND_AAC {
        return Err(MediaError::UnsupportedAudioFormat(format));
    }
    let Some(&packet_type) = body.get(1) else {
        return Err(MediaError::Truncated {
            what: "AAC audio tag header",
            need: 2,
            have: body.len(),
        });
    };
    let data = &body[2..];
    if packet_type == 0 {
        Ok(AudioPacket::AacConfig(data))
    } else {
        Ok(AudioPacket::AacRaw(data))
    }
}

/// One tag of an FLV file: type (8 audio, 9 video, 18 script data), timestamp in ms, body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTag<'a> {
    pub tag_type: u8,
    pub timestamp_ms: u32,
    pub body: &'a [u8],
}

/// Reads the tags of an FLV file (the format RTMP messages are stored in), stopping at the
/// first truncated tag. For tests, benchmarks and fuzz seeds.
pub fn file_tags(file: &[u8]) -> Result<Vec<FileTag<'_>>, MediaError> {
    if file.len() < 13 || &file[..3] != b"FLV" {
        return Err(MediaError::Truncated {
            what: "FLV file header",
            need: 13,
            have: file.len(),
        });
    }
    let header_len = u32::from_be_bytes([file[5], file[6], file[7], file[8]]) as usize;
    let mut pos = header_len.saturating_add(4);
    let mut tags = Vec::new();
    while pos + 11 <= file.len() {
        let h = &file[pos..pos + 11];
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        let Some(body) = file.get(pos + 11..pos + 11 + size) else {
            break;
        };
        tags.push(FileTag {
            tag_type: h[0] & 0x1f,
            timestamp_ms: ts,
            body,
        });
        pos += 11 + size + 4;
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_tags() {
        assert_eq!(
            parse_video(&[0x17, 0, 0, 0, 0, 1, 2]).unwrap(),
            VideoPacket::SequenceHeader(&[1, 2])
        );
        assert_eq!(
            parse_video(&[0x27, 1, 0xff, 0xff, 0xfe, 9]).unwrap(),
            VideoPacket::Nalus {
                keyframe: false,
                composition_time_ms: -2,
                data: &[9]
            }
        );
        assert_eq!(
            parse_video(&[0x17, 1, 0, 0, 66, 9]).unwrap(),
            VideoPacket::Nalus {
                keyframe: true,
                composition_time_ms: 66,
                data: &[9]
            }
        );
        assert_eq!(parse_video(&[0x52]).unwrap(), VideoPacket::Info);
        assert_eq!(
            parse_video(&[0x12, 0]).unwrap_err(),
            MediaError::UnsupportedVideoCodec(2)
        );
        assert!(matches!(
            parse_video(&[0x90, b'h', b'v', b'c', b'1']).unwrap_err(),
            MediaError::UnsupportedEnhancedVideo(f) if f == "hvc1"
        ));
        assert!(matches!(
            parse_video(&[0x17, 1]).unwrap_err(),
            MediaError::Truncated { .. }
        ));
        assert_eq!(parse_video(&[]).unwrap_err(), MediaError::Empty("video"));
    }

    #[test]
    fn audio_tags() {
        assert_eq!(
            parse_audio(&[0xaf, 0, 0x12, 0x10]).unwrap(),
            AudioPacket::AacConfig(&[0x12, 0x10])
        );
        assert_eq!(
            parse_audio(&[0xaf, 1, 7]).unwrap(),
            AudioPacket::AacRaw(&[7])
        );
        assert_eq!(
            parse_audio(&[0x2f, 1]).unwrap_err(),
            MediaError::UnsupportedAudioFormat(2)
        );
        assert!(parse_audio(&[0xaf]).is_err());
    }
}
