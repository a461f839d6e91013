//! HLS playlist text (RFC 8216): media playlists (live sliding window, EVENT, VOD) and
//! multivariant playlists, rendered from plain values. No IO; the app crate decides which
//! segments go in and what their URIs are.
//!
//! Times come in as TAI nanoseconds on the flow timeline; `EXT-X-PROGRAM-DATE-TIME` is
//! written in UTC with the leap-second offset in force at that instant (TAI - UTC = 37 s
//! since 2017), so a player's wall clock matches the one the content was recorded against.

use std::fmt::Write as _;

use crate::time::{NS_PER_SEC, Timestamp};

/// What kind of media playlist to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// A sliding window over a live flow: no playlist type, no end list.
    Live,
    /// A window that is still growing (time-shift into the live edge): `EVENT`, no end list.
    Event,
    /// A finished window: `VOD` with `EXT-X-ENDLIST`.
    Vod,
}

/// One media segment of a playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSegment {
    pub start_ns: i64,
    pub end_ns: i64,
    pub uri: String,
    /// URI of the initialisation section (fMP4), written as `EXT-X-MAP` when it changes.
    pub init_uri: Option<String>,
    /// Discontinuity ordinal: a change from the previous segment writes
    /// `EXT-X-DISCONTINUITY`.
    pub disc: i64,
    /// Media timeline offset; a change also breaks continuity.
    pub ts_offset_ns: Option<i64>,
}

/// A media playlist, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    pub kind: PlaylistKind,
    /// Media sequence number of the first segment.
    pub media_sequence: i64,
    /// Discontinuity sequence number of the first segment.
    pub discontinuity_sequence: i64,
    /// Smallest target duration to announce, in seconds (kept stable across reloads of a
    /// live playlist by passing the flow's nominal segment duration).
    pub min_target_duration: u64,
    /// Where playback should start, in seconds from the first segment's start
    /// (`EXT-X-START`), for windows that begin inside a segment.
    pub start_offset_s: Option<f64>,
    /// Advertise blocking playlist reload (`_HLS_msn`).
    pub can_block_reload: bool,
    pub segments: Vec<MediaSegment>,
}

/// True when `b` does not play straight on from `a`.
fn breaks(a: &MediaSegment, b: &MediaSegment) -> bool {
    a.disc != b.disc || a.end_ns != b.start_ns || a.ts_offset_ns != b.ts_offset_ns
}

/// The integer target duration: every EXTINF rounded to the nearest integer must not
/// exceed it (RFC 8216 4.3.3.1, version 6 rule).
pub fn target_duration(segments: &[MediaSegment], min: u64) -> u64 {
    segments
        .iter()
        .map(|s| {
            let ns = s.end_ns.saturating_sub(s.start_ns).max(0);
            u64::try_from((ns + NS_PER_SEC / 2) / NS_PER_SEC).unwrap_or(0)
        })
        .fold(min.max(1), u64::max)
}

/// Appends a duration in seconds with millisecond precision (`2.000`).
fn push_seconds(out: &mut String, ns: i64) {
    let ms = (ns.max(0) + 500_000) / 1_000_000;
    let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
}

/// Appends the UTC date-time of a TAI instant, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn push_program_date_time(out: &mut String, tai_ns: i64) {
    let utc = Timestamp::from_nanos(tai_ns).to_utc();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.millisecond()
    );
}

impl MediaPlaylist {
    /// The playlist text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256 + self.segments.len() * 160);
        let fmp4 = self.segments.iter().any(|s| s.init_uri.is_some());
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", if fmp4 { 7 } else { 3 });
        let _ = writeln!(
            out,
            "#EXT-X-TARGETDURATION:{}",
            target_duration(&self.segments, self.min_target_duration)
        );
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence.max(0));
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        match self.kind {
            PlaylistKind::Live => {}
            PlaylistKind::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            PlaylistKind::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        }
        if self.can_block_reload && self.kind != PlaylistKind::Vod {
            out.push_str("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n");
        }
        if let Some(off) = self.start_offset_s.filter(|o| *o > 0.0) {
            let _ = writeln!(out, "#EXT-X-START:TIME-OFFSET={off:.3},PRECISE=YES");
        }
        let mut prev: Option<&MediaSegment> = None;
        let mut map: Option<&str> = None;
        for s in &self.segments {
            if prev.is_some_and(|p| breaks(p, s)) {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(init) = s.init_uri.as_deref()
                && map != Some(init)
            {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{init}\"");
                map = Some(init);
            }
            out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
            push_program_date_time(&mut out, s.start_ns);
            out.push_str("\n#EXTINF:");
            push_seconds(&mut out, s.end_ns.saturating_sub(s.start_ns));
            out.push_str(",\n");
            out.push_str(&s.uri);
            out.push('\n');
            prev = Some(s);
        }
        if self.kind == PlaylistKind::Vod {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// An alternative rendition (`EXT-X-MEDIA`), for now audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    pub group_id: String,
    pub name: String,
    pub language: Option<String>,
    pub default: bool,
    pub channels: Option<u32>,
    pub uri: String,
}

/// A variant stream (`EXT-X-STREAM-INF`).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Peak bits per second.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codec strings, comma-separated in the output.
    pub codecs: Vec<String>,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    /// Audio group of [`Rendition`]s to play with this variant.
    pub audio_group: Option<String>,
    pub uri: String,
}

/// A multivariant playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MultivariantPlaylist {
    pub renditions: Vec<Rendition>,
    pub variants: Vec<Variant>,
}

/// Quoted-string attribute values may not hold `"` or line breaks (RFC 8216 4.2).
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\n' && *c != '\r')
        .collect()
}

impl MultivariantPlaylist {
    pub fn render(&self) -> String {
        let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:4\n");
        for r in &self.renditions {
            let _ = write!(
                out,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\"",
                quoted(&r.group_id),
                quoted(&r.name)
            );
            if let Some(l) = &r.language {
                let _ = write!(out, ",LANGUAGE=\"{}\"", quoted(l));
            }
            let yes_no = if r.default { "YES" } else { "NO" };
            let _ = write!(out, ",DEFAULT={yes_no},AUTOSELECT=YES");
            if let Some(c) = r.channels {
                let _ = write!(out, ",CHANNELS=\"{c}\"");
            }
            let _ = writeln!(out, ",URI=\"{}\"", quoted(&r.uri));
        }
        for v in &self.variants {
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth.max(1));
            if let Some(a) = v.average_bandwidth {
                let _ = write!(out, ",AVERAGE-BANDWIDTH={a}");
            }
            if !v.codecs.is_empty() {
                let _ = write!(out, ",CODECS=\"{}\"", quoted(&v.codecs.join(",")));
            }
            if let Some((w, h)) = v.resolution {
                let _ = write!(out, ",RESOLUTION={w}x{h}");
            }
            if let Some(f) = v.frame_rate {
                let _ = write!(out, ",FRAME-RATE={f:.3}");
            }
            if let Some(g) = &v.audio_group {
                let _ = write!(out, ",AUDIO=\"{}\"", quoted(g));
            }
            out.push('\n');
            out.push_str(&v.uri);
            out.push('\n');
        }
        out
    }
}

/// The file extension players expect for segments of a MIME type (ffmpeg, for one, refuses
/// HLS segment URLs without a media extension).
pub fn file_extension(mime: &str) -> Option<&'static str> {
    match mime {
        "video/mp2t" => Some("ts"),
        "video/mp4" | "audio/mp4" | "application/mp4" => Some("mp4"),
        "audio/aac" => Some("aac"),
        _ => None,
    }
}

/// True when a path or object id already ends in an extension HLS players accept.
pub fn has_media_extension(path: &str) -> bool {
    path.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && !ext.contains('/')
            && matches!(
                ext,
                "ts" | "mp4" | "m4s" | "m4a" | "m4v" | "aac" | "cmfv" | "cmfa"
            )
    })
}

/// The RFC 6381 string of an H.264 stream from its profile, constraint flags and level
/// (`avc1.PPCCLL`).
pub fn avc_codec_string(profile: u8, flags: u8, level: u8) -> String {
    format!("avc1.{profile:02X}{flags:02X}{level:02X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NS_PER_SEC;
    /// 2026-01-01T00:00:00Z as TAI nanoseconds (unix + 37 s).
    const JAN_2026_TAI: i64 = (1_767_225_600 + 37) * S;

    fn seg(start_s: i64, end_s: i64, disc: i64) -> MediaSegment {
        MediaSegment {
            start_ns: JAN_2026_TAI + start_s * S,
            end_ns: JAN_2026_TAI + end_s * S,
            uri: format!("../../media/f/{start_s}.ts"),
            init_uri: None,
            disc,
            ts_offset_ns: None,
        }
    }

    #[test]
    fn program_date_time_is_utc_not_tai() {
        let mut s = String::new();
        push_program_date_time(&mut s, JAN_2026_TAI + 1_500 * 1_000_000);
        assert_eq!(s, "2026-01-01T00:00:01.500Z");
        // Across the 2016-12-31 leap second: TAI-UTC was 36 s before it.
        let mut s = String::new();
        push_program_date_time(&mut s, (1_483_228_800 - 10 + 36) * S);
        assert_eq!(s, "2016-12-31T23:59:50.000Z");
    }

    #[test]
    fn vod_with_gap_and_offset_change() {
        let mut shifted = seg(6, 8, 1);
        shifted.ts_offset_ns = Some(3 * S);
        let p = MediaPlaylist {
            kind: PlaylistKind::Vod,
            media_sequence: 0,
            discontinuity_sequence: 0,
            min_target_duration: 2,
            start_offset_s: Some(0.5),
            can_block_reload: true,
            segments: vec![seg(0, 2, 0), seg(2, 4, 0), seg(5, 6, 1), shifted],
        };
        let text = p.render();
        let expected = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-START:TIME-OFFSET=0.500,PRECISE=YES\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n#EXTINF:2.000,\n../../media/f/0.ts\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:02.000Z\n#EXTINF:2.000,\n../../media/f/2.ts\n\
#EXT-X-DISCONTINUITY\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:05.000Z\n#EXTINF:1.000,\n../../media/f/5.ts\n\
#EXT-X-DISCONTINUITY\n\
#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:06.000Z\n#EXTINF:2.000,\n../../media/f/6.ts\n\
#EXT-X-ENDLIST\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn live_window_numbers_and_fmp4_map() {
        let mut a = seg(10, 12, 4);
        a.init_uri = Some("../../media/init1.mp4".into());
        let mut b = seg(12, 14, 4);
        b.init_uri = a.init_uri.clone();
        let mut c = seg(14, 16, 5);
        c.init_uri = Some("../../media/init2.mp4".into());
        let p = MediaPlaylist {
            kind: PlaylistKind::Live,
            media_sequence: 41,
            discontinuity_sequence: 4,
            min_target_duration: 2,
            start_offset_s: None,
            can_block_reload: true,
            segments: vec![a, b, c],
        };
        let text = p.render();
        assert!(text.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:41\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:4\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n\
             #EXT-X-MAP:URI=\"../../media/init1.mp4\"\n"
        ));
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 2);
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        assert!(!text.contains("ENDLIST") && !text.contains("PLAYLIST-TYPE"));
        let map2 = text.find("init2.mp4").unwrap();
        let disc = text.find("#EXT-X-DISCONTINUITY\n").unwrap();
        assert!(disc < map2, "the discontinuity comes before the new map");
    }

    #[test]
    fn target_duration_rounds_to_nearest() {
        let mut s = seg(0, 2, 0);
        s.end_ns = s.start_ns + 2_499_000_000;
        assert_eq!(target_duration(&[s.clone()], 1), 2);
        s.end_ns = s.start_ns + 2_500_000_000;
        assert_eq!(target_duration(&[s], 1), 3);
        assert_eq!(target_duration(&[], 0), 1);
    }

    #[test]
    fn multivariant_with_audio_group() {
        let m = MultivariantPlaylist {
            renditions: vec![Rendition {
                group_id: "aud".into(),
                name: "main \"audio\"".into(),
                language: Some("en".into()),
                default: true,
                channels: Some(2),
                uri: "../../flows/a/playlist.m3u8".into(),
            }],
            variants: vec![Variant {
                bandwidth: 2_200_000,
                average_bandwidth: Some(2_000_000),
                codecs: vec![avc_codec_string(0x64, 0, 0x1f), "mp4a.40.2".into()],
                resolution: Some((1280, 720)),
                frame_rate: Some(30.0),
                audio_group: Some("aud".into()),
                uri: "../../flows/v/playlist.m3u8".into(),
            }],
        };
        assert_eq!(
            m.render(),
            "#EXTM3U\n#EXT-X-VERSION:4\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"main audio\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"../../flows/a/playlist.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2200000,AVERAGE-BANDWIDTH=2000000,CODECS=\"avc1.64001F,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"aud\"\n\
             ../../flows/v/playlist.m3u8\n"
        );
    }

    #[test]
    fn m3u8_rs_reads_what_we_write() {
        let p = MediaPlaylist {
            kind: PlaylistKind::Event,
            media_sequence: 7,
            discontinuity_sequence: 2,
            min_target_duration: 2,
            start_offset_s: None,
            can_block_reload: true,
            segments: vec![seg(0, 2, 2), seg(2, 4, 2), seg(6, 8, 3)],
        };
        let text = p.render();
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("valid playlist");
        assert_eq!(parsed.media_sequence, 7);
        assert_eq!(parsed.discontinuity_sequence, 2);
        assert_eq!(parsed.target_duration, 2);
        assert_eq!(
            parsed.playlist_type,
            Some(m3u8_rs::MediaPlaylistType::Event)
        );
        assert!(!parsed.end_list);
        let durs: Vec<f32> = parsed.segments.iter().map(|s| s.duration).collect();
        assert_eq!(durs, vec![2.0, 2.0, 2.0]);
        assert!(parsed.segments[2].discontinuity && !parsed.segments[1].discontinuity);
        assert!(
            parsed
                .segments
                .iter()
                .all(|s| s.program_date_time.is_some())
        );
    }
}
