//! H.264 as FLV carries it: the AVCDecoderConfigurationRecord (SPS, PPS, NAL length size)
//! and length-prefixed access units, turned into the Annex B byte stream MPEG-TS wants.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, decode_nal};

use super::MediaError;

pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The decoder configuration of an H.264 stream, with what the flow record needs.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    pub nal_length_size: usize,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
    /// From the SPS's VUI timing information, when present.
    pub fps: Option<f64>,
    /// chroma_format_idc and bit depths, which the record of a High-profile stream repeats.
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
}

fn take<'a>(buf: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], MediaError> {
    if buf.len() < n {
        return Err(MediaError::Truncated {
            what,
            need: n,
            have: buf.len(),
        });
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn take_u16_prefixed<'a>(buf: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], MediaError> {
    let len = take(buf, 2, what)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    take(buf, len, what)
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
    pub fn parse(record: &[u8]) -> Result<Self, MediaError> {
        let mut buf = record;
        let head = take(&mut buf, 6, "AVCDecoderConfigurationRecord")?;
        if head[0] != 1 {
            return Err(MediaError::BadAvcConfig(format!(
                "configurationVersion {} (expected 1)",
                head[0]
            )));
        }
        let nal_length_size = usize::from(head[4] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(MediaError::BadAvcConfig("NAL length size 3".into()));
        }
        let mut sps = Vec::new();
        for _ in 0..(head[5] & 0x1f) {
            sps.push(take_u16_prefixed(&mut buf, "SPS")?.to_vec());
        }
        let n_pps = take(&mut buf, 1, "PPS count")?[0];
        let mut pps = Vec::new();
        for _ in 0..n_pps {
            pps.push(take_u16_prefixed(&mut buf, "PPS")?.to_vec());
        }
        let first = sps
            .first()
            .ok_or_else(|| MediaError::BadAvcConfig("no SPS".into()))?;
        if pps.is_empty() {
            return Err(MediaError::BadAvcConfig("no PPS".into()));
        }
        if first.is_empty() || first[0] & 0x1f != NAL_SPS {
            return Err(MediaError::BadAvcConfig(
                "first SPS is not an SPS NAL unit".into(),
            ));
        }
        let rbsp = decode_nal(first).map_err(|e| MediaError::BadAvcConfig(format!("SPS: {e}")))?;
        let parsed = SeqParameterSet::from_bits(BitReader::new(&*rbsp))
            .map_err(|e| MediaError::BadAvcConfig(format!("SPS: {e:?}")))?;
        let (width, height) = parsed
            .pixel_dimensions()
            .map_err(|e| MediaError::BadAvcConfig(format!("SPS dimensions: {e:?}")))?;
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(MediaError::BadAvcConfig(format!(
                "frame size {width}x{height}"
            )));
        }
        let fps = parsed
            .fps()
            .filter(|f| f.is_finite() && *f > 0.0 && *f < 1000.0);
        Ok(AvcConfig {
            nal_length_size,
            profile_idc: first.get(1).copied().unwrap_or(0),
            constraint_flags: first.get(2).copied().unwrap_or(0),
            level_idc: first.get(3).copied().unwrap_or(0),
            sps,
            pps,
            width,
            height,
            fps,
            chroma_format_idc: parsed.chroma_info.chroma_format.to_u32().min(3) as u8,
            bit_depth_luma_minus8: parsed.chroma_info.bit_depth_luma_minus8,
            bit_depth_chroma_minus8: parsed.chroma_info.bit_depth_chroma_minus8,
        })
    }

    /// An AVCDecoderConfigurationRecord for one SPS and one PPS (as found in-band in an
    /// Annex B stream), with the High-profile extension where the profile has one.
    pub fn record_from(sps: &[u8], pps: &[u8]) -> Result<(Vec<u8>, AvcConfig), MediaError> {
        if sps.len() < 4 || sps.len() > 0xffff || pps.len() > 0xffff {
            return Err(MediaError::BadAvcConfig(
                "in-band SPS or PPS of impossible size".into(),
            ));
        }
        let mut r = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
        r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        r.extend_from_slice(sps);
        r.push(1);
        r.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        r.extend_from_slice(pps);
        let cfg = AvcConfig::parse(&r)?;
        if matches!(cfg.profile_idc, 100 | 110 | 122 | 144 | 244) {
            r.extend_from_slice(&[
                0xfc | cfg.chroma_format_idc,
                0xf8 | cfg.bit_depth_luma_minus8.min(7),
                0xf8 | cfg.bit_depth_chroma_minus8.min(7),
                0,
            ]);
        }
        Ok((r, cfg))
    }

    /// The RFC 6381 codec string, `avc1.PPCCLL`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// Splits an access unit of length-prefixed NAL units, checking every length.
pub fn nal_units(data: &[u8], nal_length_size: usize) -> Result<Vec<&[u8]>, MediaError> {
    let mut out = Vec::with_capacity(4);
    let mut buf = data;
    while !buf.is_empty() {
        if buf.len() < nal_length_size {
            return Err(MediaError::Truncated {
                what: "NAL unit length",
                need: nal_length_size,
                have: buf.len(),
            });
        }
        let mut len = 0usize;
        for &b in &buf[..nal_length_size] {
            len = (len << 8) | usize::from(b);
        }
        buf = &buf[nal_length_size..];
        if len > buf.len() {
            return Err(MediaError::BadNalLength {
                len,
                remaining: buf.len(),
            });
        }
        let (nal, rest) = buf.split_at(len);
        if !nal.is_empty() {
            out.push(nal);
        }
        buf = rest;
    }
    Ok(out)
}

pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The decoder configuration ffmpeg/x264 wrote for testdata/small.flv (160x90, High).
    pub(crate) const RECORD: &[u8] = &[
        0x01, 0x64, 0x00, 0x0b, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x0b, 0xac, 0xd9, 0x42,
        0x8d, 0xf9, 0x30, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f,
        0x14, 0x29, 0x96, 0x01, 0x00, 0x04, 0x68, 0xef, 0xbc, 0xb0, 0xfd, 0xf8, 0xf8, 0x00,
    ];
    /// Where the PPS ends; the rest is the High-profile extension drey does not need.
    const PPS_END: usize = 40;

    #[test]
    fn parses_a_real_record() {
        let c = AvcConfig::parse(RECORD).unwrap();
        assert_eq!((c.width, c.height), (160, 90));
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(c.codec_string(), "avc1.64000b");
        assert_eq!(c.sps.len(), 1);
        assert_eq!(c.pps.len(), 1);
    }

    #[test]
    fn refuses_broken_records() {
        for cut in 0..PPS_END {
            assert!(AvcConfig::parse(&RECORD[..cut]).is_err(), "cut at {cut}");
        }
        let mut v = RECORD.to_vec();
        v[0] = 2;
        assert!(AvcConfig::parse(&v).is_err());
    }

    #[test]
    fn splits_nal_units() {
        let data = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x06];
        assert_eq!(
            nal_units(&data, 4).unwrap(),
            vec![&[0x65, 1][..], &[0x06][..]]
        );
        assert!(matches!(
            nal_units(&[0, 0, 0, 9, 1], 4),
            Err(MediaError::BadNalLength { len: 9, .. })
        ));
        assert!(nal_units(&[0, 0], 4).is_err());
    }
}
