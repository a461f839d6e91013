//! Uncompressed video grains, sans-IO: the picture packings drey stores one frame per
//! object (v210, UYVY, planar 4:2:0 and 4:2:2, 8-bit), their frame sizes and TAMS essence
//! parameters, exact per-frame time ranges at any rational rate, and the test signal
//! (luma steps, a moving box and the frame number as a bar code, so every frame differs).

use crate::model::{ComponentType, VideoEssence, VideoUncParameters, VideoUncType};
use crate::rate::Rational;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("unknown raw format {0:?} (v210, uyvy, yuv420p or yuv422p)")]
    Format(String),
    #[error("{format} needs {what}; {w}x{h} is not")]
    Dimensions {
        format: &'static str,
        what: &'static str,
        w: u32,
        h: u32,
    },
    #[error(
        "a file of {len} bytes is not a whole number of {frame_size}-byte frames ({frames} whole, {rest} bytes left over)"
    )]
    NotWholeFrames {
        len: u64,
        frame_size: u64,
        frames: u64,
        rest: u64,
    },
}

/// A picture packing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// 10-bit 4:2:2, 3 components per 32-bit word, rows padded to 128 bytes per 48 pixels.
    V210,
    /// 8-bit 4:2:2 packed Cb Y Cr Y.
    Uyvy,
    /// 8-bit planar 4:2:0 (Y, then Cb, then Cr).
    Yuv420p,
    /// 8-bit planar 4:2:2.
    Yuv422p,
}

impl RawFormat {
    pub const ALL: [RawFormat; 4] = [
        RawFormat::V210,
        RawFormat::Uyvy,
        RawFormat::Yuv420p,
        RawFormat::Yuv422p,
    ];

    pub fn parse(s: &str) -> Result<RawFormat, RawError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "v210" => RawFormat::V210,
            "uyvy" | "uyvy422" => RawFormat::Uyvy,
            "yuv420p" | "planar420" | "i420" => RawFormat::Yuv420p,
            "yuv422p" | "planar422" => RawFormat::Yuv422p,
            _ => return Err(RawError::Format(s.to_owned())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RawFormat::V210 => "v210",
            RawFormat::Uyvy => "uyvy",
            RawFormat::Yuv420p => "yuv420p",
            RawFormat::Yuv422p => "yuv422p",
        }
    }

    /// The format of a flow's essence parameters, if drey knows it.
    pub fn from_essence(e: &VideoEssence) -> Option<RawFormat> {
        let unc = e.unc_parameters.as_ref()?.unc_type;
        match (unc, e.vert_chroma_subs) {
            (VideoUncType::V210, _) => Some(RawFormat::V210),
            (VideoUncType::UYVY, _) => Some(RawFormat::Uyvy),
            (VideoUncType::Planar, Some(2)) => Some(RawFormat::Yuv420p),
            (VideoUncType::Planar, _) => Some(RawFormat::Yuv422p),
            _ => None,
        }
    }

    fn bit_depth(self) -> u32 {
        if self == RawFormat::V210 { 10 } else { 8 }
    }

    /// Checks that the picture size suits the packing (chroma subsampling needs even sizes).
    pub fn check(self, w: u32, h: u32) -> Result<(), RawError> {
        let bad = |what| RawError::Dimensions {
            format: self.name(),
            what,
            w,
            h,
        };
        if w == 0 || h == 0 || w > 16384 || h > 16384 {
            return Err(bad("a size of 1 to 16384 pixels each way"));
        }
        if !w.is_multiple_of(2) {
            return Err(bad("an even width"));
        }
        if self == RawFormat::Yuv420p && !h.is_multiple_of(2) {
            return Err(bad("an even height"));
        }
        Ok(())
    }

    /// Bytes per v210 row.
    fn v210_stride(w: u32) -> usize {
        (w as usize).div_ceil(48) * 128
    }

    /// Bytes of one frame.
    pub fn frame_size(self, w: u32, h: u32) -> Result<usize, RawError> {
        self.check(w, h)?;
        let (w, h) = (w as usize, h as usize);
        Ok(match self {
            RawFormat::V210 => Self::v210_stride(w as u32) * h,
            RawFormat::Uyvy | RawFormat::Yuv422p => w * h * 2,
            RawFormat::Yuv420p => w * h + 2 * (w / 2) * (h / 2),
        })
    }

    /// TAMS essence parameters of a flow of these frames.
    pub fn essence(self, w: u32, h: u32, rate: Rational) -> VideoEssence {
        let (unc, v_subs) = match self {
            RawFormat::V210 => (VideoUncType::V210, 1),
            RawFormat::Uyvy => (VideoUncType::UYVY, 1),
            RawFormat::Yuv420p => (VideoUncType::Planar, 2),
            RawFormat::Yuv422p => (VideoUncType::Planar, 1),
        };
        VideoEssence {
            frame_width: w,
            frame_height: h,
            bit_depth: Some(self.bit_depth()),
            interlace_mode: None,
            colorspace: None,
            transfer_characteristic: None,
            aspect_ratio: None,
            pixel_aspect_ratio: None,
            component_type: Some(ComponentType::YCbCr),
            horiz_chroma_subs: Some(2),
            vert_chroma_subs: Some(v_subs),
            unc_parameters: Some(VideoUncParameters { unc_type: unc }),
            avc_parameters: None,
            frame_rate: Some(rate),
            vfr: None,
            init_segments: None,
        }
    }

    /// The luma of pixel (x, y) of a frame, scaled to 10 bits.
    pub fn luma(self, frame: &[u8], w: u32, x: u32, y: u32) -> u16 {
        let (w, x, y) = (w as usize, x as usize, y as usize);
        match self {
            RawFormat::V210 => {
                let row = &frame[y * Self::v210_stride(w as u32)..];
                let block = &row[(x / 6) * 16..(x / 6) * 16 + 16];
                let word = |i: usize| {
                    u32::from_le_bytes([
                        block[i * 4],
                        block[i * 4 + 1],
                        block[i * 4 + 2],
                        block[i * 4 + 3],
                    ])
                };
                // Y0 w0[10..20], Y1 w1[0..10], Y2 w1[20..30], Y3 w2[10..20], Y4 w3[0..10], Y5 w3[20..30].
                let (wi, shift) = [(0, 10), (1, 0), (1, 20), (2, 10), (3, 0), (3, 20)][x % 6];
                ((word(wi) >> shift) & 0x3ff) as u16
            }
            RawFormat::Uyvy => u16::from(frame[y * w * 2 + x * 2 + 1]) << 2,
            RawFormat::Yuv420p | RawFormat::Yuv422p => u16::from(frame[y * w + x]) << 2,
        }
    }

    /// Overwrites every luma sample with `f(luma)` (10-bit in, 10-bit out), leaving chroma:
    /// the renderer's operation.
    pub fn map_luma(self, frame: &mut [u8], w: u32, h: u32, f: impl Fn(u16) -> u16) {
        let (wu, hu) = (w as usize, h as usize);
        match self {
            RawFormat::V210 => {
                let stride = Self::v210_stride(w);
                for y in 0..hu {
                    for b in 0..wu.div_ceil(6) {
                        let off = y * stride + b * 16;
                        for (wi, shift) in [(0, 10), (1, 0), (1, 20), (2, 10), (3, 0), (3, 20)] {
                            let p = off + wi * 4;
                            let mut word = u32::from_le_bytes([
                                frame[p],
                                frame[p + 1],
                                frame[p + 2],
                                frame[p + 3],
                            ]);
                            let v = f(((word >> shift) & 0x3ff) as u16).min(1023);
                            word = (word & !(0x3ff << shift)) | (u32::from(v) << shift);
                            frame[p..p + 4].copy_from_slice(&word.to_le_bytes());
                        }
                    }
                }
            }
            RawFormat::Uyvy => {
                for p in frame[..wu * hu * 2].iter_mut().skip(1).step_by(2) {
                    *p = (f(u16::from(*p) << 2).min(1023) >> 2) as u8;
                }
            }
            RawFormat::Yuv420p | RawFormat::Yuv422p => {
                for p in &mut frame[..wu * hu] {
                    *p = (f(u16::from(*p) << 2).min(1023) >> 2) as u8;
                }
            }
        }
    }
}

/// The start of grain `n` (TAI ns) of a flow starting at `start_ns` at `rate` frames per
/// second: exact to the nanosecond below, so consecutive grains meet without gaps.
pub fn grain_start_ns(start_ns: i64, rate: Rational, n: u64) -> i64 {
    let num = u128::from(rate.numerator.get());
    let den = u128::from(rate.denominator_or_one());
    let off = u128::from(n) * 1_000_000_000 * den / num;
    start_ns.saturating_add(i64::try_from(off).unwrap_or(i64::MAX))
}

/// Checks that a raw file holds whole frames: the frame count.
pub fn whole_frames(len: u64, frame_size: usize) -> Result<u64, RawError> {
    let fs = frame_size as u64;
    if fs == 0 || !len.is_multiple_of(fs) || len == 0 {
        return Err(RawError::NotWholeFrames {
            len,
            frame_size: fs,
            frames: len.checked_div(fs).unwrap_or(0),
            rest: len.checked_rem(fs).unwrap_or(len),
        });
    }
    Ok(len / fs)
}

/// The test signal's luma at (x, y) of frame `n`, 10-bit: eight steps from black to white
/// across the picture, a box moving one way (inverted luma), and the frame number as a
/// 32-bit bar code in the top rows.
fn signal_luma(w: u32, h: u32, n: u64, x: u32, y: u32) -> u16 {
    let (black, white) = (64u32, 940u32);
    let bar_h = (h / 16).max(2);
    if y < bar_h {
        let bit = (u64::from(x) * 32 / u64::from(w)) as u32;
        return if (n >> (31 - bit)) & 1 == 1 {
            white as u16
        } else {
            black as u16
        };
    }
    let step = x * 8 / w;
    let base = black + step * (white - black) / 7;
    let (bw, bh) = ((w / 8).max(2), (h / 8).max(2));
    let travel = u64::from(w.saturating_sub(bw).max(1));
    let bx = ((n * u64::from((w / 97).max(1))) % travel) as u32;
    let by = h / 2 - bh / 2;
    if (bx..bx + bw).contains(&x) && (by..by + bh).contains(&y) {
        (white + black - base) as u16
    } else {
        base as u16
    }
}

/// Writes frame `n` of the test signal into `out` (resized to the frame size).
pub fn signal_frame(
    format: RawFormat,
    w: u32,
    h: u32,
    n: u64,
    out: &mut Vec<u8>,
) -> Result<(), RawError> {
    let size = format.frame_size(w, h)?;
    out.clear();
    out.resize(size, 0);
    let (wu, hu) = (w as usize, h as usize);
    let mut luma = vec![0u16; wu];
    // Rows without the box or the bar code are all alike: packed once, then copied.
    let mut plain: Option<Vec<u8>> = None;
    let bar_h = (h / 16).max(2);
    let bh = (h / 8).max(2);
    let by = h / 2 - bh / 2;
    for y in 0..h {
        let special = y < bar_h || (by..by + bh).contains(&y);
        let row_bytes = pack_row_len(format, w);
        if !special && let Some(p) = &plain {
            write_row(format, out, w, h, y, p);
            continue;
        }
        for (x, l) in luma.iter_mut().enumerate() {
            *l = signal_luma(w, h, n, x as u32, y);
        }
        let mut packed = vec![0u8; row_bytes];
        pack_row(format, &luma, &mut packed);
        write_row(format, out, w, h, y, &packed);
        if !special && plain.is_none() {
            plain = Some(packed);
        }
    }
    // Neutral chroma for the planar formats (packed rows carry theirs).
    match format {
        RawFormat::Yuv420p | RawFormat::Yuv422p => out[wu * hu..].fill(128),
        _ => {}
    }
    Ok(())
}

/// Bytes of one packed row (for planar formats: the luma row).
fn pack_row_len(format: RawFormat, w: u32) -> usize {
    match format {
        RawFormat::V210 => RawFormat::v210_stride(w),
        RawFormat::Uyvy => w as usize * 2,
        RawFormat::Yuv420p | RawFormat::Yuv422p => w as usize,
    }
}

/// Packs a row of 10-bit luma with neutral chroma.
fn pack_row(format: RawFormat, luma: &[u16], out: &mut [u8]) {
    match format {
        RawFormat::V210 => {
            let c = 512u32;
            let y = |i: usize| u32::from(luma.get(i).copied().unwrap_or(64));
            for (b, block) in out.chunks_exact_mut(16).enumerate() {
                let i = b * 6;
                if i >= luma.len() {
                    break;
                }
                let words = [
                    c | y(i) << 10 | c << 20,
                    y(i + 1) | c << 10 | y(i + 2) << 20,
                    c | y(i + 3) << 10 | c << 20,
                    y(i + 4) | c << 10 | y(i + 5) << 20,
                ];
                for (k, wd) in words.iter().enumerate() {
                    block[k * 4..k * 4 + 4].copy_from_slice(&wd.to_le_bytes());
                }
            }
        }
        RawFormat::Uyvy => {
            for (i, px) in out.chunks_exact_mut(2).enumerate() {
                px[0] = 128;
                px[1] = (luma[i] >> 2) as u8;
            }
        }
        RawFormat::Yuv420p | RawFormat::Yuv422p => {
            for (o, l) in out.iter_mut().zip(luma) {
                *o = (l >> 2) as u8;
            }
        }
    }
}

fn write_row(format: RawFormat, out: &mut [u8], w: u32, _h: u32, y: u32, row: &[u8]) {
    let off = y as usize * pack_row_len(format, w);
    out[off..off + row.len()].copy_from_slice(row);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes() {
        assert_eq!(RawFormat::V210.frame_size(1920, 1080), Ok(5_529_600));
        assert_eq!(RawFormat::V210.frame_size(1280, 720), Ok(27 * 128 * 720));
        assert_eq!(RawFormat::Uyvy.frame_size(1920, 1080), Ok(4_147_200));
        assert_eq!(RawFormat::Yuv420p.frame_size(1920, 1080), Ok(3_110_400));
        assert_eq!(RawFormat::Yuv422p.frame_size(1920, 1080), Ok(4_147_200));
        assert!(RawFormat::Uyvy.frame_size(1919, 1080).is_err());
        assert!(RawFormat::Yuv420p.frame_size(1920, 1081).is_err());
        assert!(RawFormat::V210.frame_size(0, 10).is_err());
        assert!(RawFormat::parse("rgb").is_err());
    }

    #[test]
    fn grains_are_exact_and_contiguous() {
        let ntsc = Rational::new(30000, 1001).unwrap();
        assert_eq!(grain_start_ns(0, ntsc, 30000), 1001 * 1_000_000_000);
        let r50 = Rational::new(50, 1).unwrap();
        assert_eq!(grain_start_ns(10, r50, 3), 10 + 60_000_000);
        for n in 0..1000 {
            assert!(grain_start_ns(0, ntsc, n) < grain_start_ns(0, ntsc, n + 1));
        }
    }

    #[test]
    fn whole_frame_files() {
        assert_eq!(whole_frames(300, 100), Ok(3));
        assert!(matches!(
            whole_frames(301, 100),
            Err(RawError::NotWholeFrames {
                rest: 1,
                frames: 3,
                ..
            })
        ));
        assert!(whole_frames(0, 100).is_err());
    }

    #[test]
    fn signal_frames_differ_and_read_back() {
        for f in RawFormat::ALL {
            let (w, h) = (192, 108);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            signal_frame(f, w, h, 7, &mut a).unwrap();
            signal_frame(f, w, h, 8, &mut b).unwrap();
            assert_eq!(a.len(), f.frame_size(w, h).unwrap());
            assert_ne!(a, b, "{f:?}: consecutive frames differ");
            // Luma steps read back: left dark, right bright (below the bar code, above the box).
            let y = h / 4;
            assert!(f.luma(&a, w, 2, y) < 100, "{f:?}");
            assert!(f.luma(&a, w, w - 2, y) > 900, "{f:?}");
            // The bar code holds the frame number (bit 31 - k at column k).
            let bit = |frame: &[u8], k: u32| f.luma(frame, w, k * w / 32 + 1, 0) > 500;
            assert!(
                bit(&a, 31) && bit(&a, 30) && bit(&a, 29) && !bit(&a, 28),
                "{f:?}: 7"
            );
            // Inverting luma twice gives the frame back.
            let mut c = a.clone();
            f.map_luma(&mut c, w, h, |l| 1023 - l);
            assert_ne!(c, a);
            f.map_luma(&mut c, w, h, |l| 1023 - l);
            if f == RawFormat::V210 {
                assert_eq!(c, a);
            } else {
                // 8-bit: (1023 - l) >> 2 loses nothing on the way back for 4-aligned values.
                assert_eq!(c, a, "{f:?}");
            }
        }
    }
}
