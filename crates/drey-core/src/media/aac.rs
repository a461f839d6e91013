//! AAC as FLV carries it: the AudioSpecificConfig, and the 7-byte ADTS header that makes a
//! raw AAC frame self-describing inside MPEG-TS.

use super::MediaError;

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// What ADTS headers and the flow record need from an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type of the core codec (2 = AAC LC).
    pub object_type: u8,
    /// Index of the core sampling frequency.
    pub frequency_index: u8,
    pub channel_config: u8,
    /// Output sample rate (the SBR rate for HE-AAC signalled explicitly).
    pub sample_rate: u32,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32, MediaError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8).ok_or(MediaError::Truncated {
                what: "AudioSpecificConfig",
                need: self.pos / 8 + 1,
                have: self.data.len(),
            })?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u8, MediaError> {
        let t = self.read(5)?;
        Ok(if t == 31 { 32 + self.read(6)? } else { t } as u8)
    }

    fn frequency(&mut self) -> Result<(u8, u32), MediaError> {
        let i = self.read(4)? as u8;
        if i == 15 {
            let f = self.read(24)?;
            let idx = SAMPLE_RATES.iter().position(|&r| r == f).ok_or_else(|| {
                MediaError::BadAacConfig(format!("sampling frequency {f} Hz has no ADTS index"))
            })?;
            Ok((idx as u8, f))
        } else {
            let rate = SAMPLE_RATES.get(usize::from(i)).copied().ok_or_else(|| {
                MediaError::BadAacConfig(format!("reserved sampling frequency index {i}"))
            })?;
            Ok((i, rate))
        }
    }
}

impl AacConfig {
    /// Parses an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), the parts ADTS can express.
    pub fn parse(asc: &[u8]) -> Result<Self, MediaError> {
        let mut bits = Bits { data: asc, pos: 0 };
        let mut object_type = bits.object_type()?;
        let (mut frequency_index, mut sample_rate) = bits.frequency()?;
        let channel_config = bits.read(4)? as u8;
        if object_type == 5 || object_type == 29 {
            // Explicit SBR/PS: the extension rate is the output rate, then the core type.
            let (_, ext_rate) = bits.frequency()?;
            object_type = bits.object_type()?;
            sample_rate = ext_rate;
        }
        if !(1..=4).contains(&object_type) {
            return Err(MediaError::BadAacConfig(format!(
                "audio object type {object_type} cannot be carried in ADTS (1-4 can)"
            )));
        }
        if channel_config == 0 || channel_config > 7 {
            return Err(MediaError::BadAacConfig(format!(
                "channel configuration {channel_config} (1-7 supported)"
            )));
        }
        if frequency_index as usize >= SAMPLE_RATES.len() {
            frequency_index = 3;
        }
        Ok(AacConfig {
            object_type,
            frequency_index,
            channel_config,
            sample_rate,
        })
    }

    pub fn channels(&self) -> u32 {
        match self.channel_config {
            7 => 8,
            c => u32::from(c),
        }
    }

    /// Sample rate of the core coder: one AAC frame is 1024 samples at this rate.
    pub fn core_sample_rate(&self) -> u32 {
        SAMPLE_RATES[usize::from(self.frequency_index)]
    }

    /// The RFC 6381 codec string, `mp4a.40.N`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// The ADTS header (no CRC) for a raw frame of `payload_len` bytes.
    pub fn adts_header(&self, payload_len: usize) -> Result<[u8; 7], MediaError> {
        let len = payload_len + 7;
        if len > 0x1fff {
            return Err(MediaError::AacFrameTooLarge(payload_len));
        }
        let profile = self.object_type - 1;
        let ch = self.channel_config;
        Ok([
            0xff,
            0xf1,
            (profile << 6) | (self.frequency_index << 2) | (ch >> 2),
            ((ch & 3) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            (((len & 7) << 5) as u8) | 0x1f,
            0xfc,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_stereo_44100() {
        let c = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sample_rate, 44100);
        assert_eq!(c.channels(), 2);
        assert_eq!(c.codec_string(), "mp4a.40.2");
        let h = c.adts_header(100).unwrap();
        assert_eq!(h[0..2], [0xff, 0xf1]);
        // frame_length = 107 spread over bytes 3..6
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        assert_eq!(len, 107);
        assert!(c.adts_header(9000).is_err());
    }

    #[test]
    fn explicit_he_aac_uses_the_core_for_adts() {
        // object type 5 (SBR), core 24000 Hz (index 6), stereo, extension 48000 (index 3),
        // core object type 2.
        let bits: u32 = (5 << 27) | (6 << 23) | (2 << 19) | (3 << 15) | (2 << 10);
        let c = AacConfig::parse(&bits.to_be_bytes()).unwrap();
        assert_eq!(c.object_type, 2);
        assert_eq!(c.sample_rate, 48000);
        assert_eq!(c.core_sample_rate(), 24000);
    }

    #[test]
    fn refuses_what_adts_cannot_say() {
        assert!(AacConfig::parse(&[]).is_err());
        assert!(AacConfig::parse(&[0x12]).is_err());
        // channel configuration 0 (program config element)
        assert!(AacConfig::parse(&[0x12, 0x00]).is_err());
        // reserved frequency index 13
        assert!(AacConfig::parse(&[0x16, 0x90]).is_err());
    }
}
