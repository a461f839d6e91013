//! A segment's sample tables (what an MP4 export plans from, without the sample bytes) in
//! a compact binary form, so that they can be kept in the index beside the object and an
//! export need not read a segment twice. Sans-IO. Decoding checks every length and count:
//! a row that does not decode is read from the object again, never trusted.
//!
//! Layout, version 1: `[1][samples::READER_VERSION][tracks: u8]`, then per track `[kind: u8][timescale: u32]
//! [width: u32][height: u32][entry length: u32][entry][samples: u32]` (integers little
//! endian), then per sample three LEB128 varints: the decode-time step from the previous
//! sample (zigzag; the first is the decode time itself), the composition offset (zigzag)
//! and `size << 1 | sync`. About 7 bytes per video and 5 per audio sample.

use super::MediaError;
use super::samples::{Kind, READER_VERSION, Samples, Timed, Track};

/// First byte of every encoding; a row of another version is recomputed, as is one whose
/// second byte is not the current [`READER_VERSION`].
pub const VERSION: u8 = 1;
/// Bounds that no real segment comes near, so a corrupt row cannot ask for huge buffers.
const MAX_ENTRY: usize = 1 << 20;

fn bad(message: impl Into<String>) -> MediaError {
    MediaError::BadContainer {
        what: "sample table",
        message: message.into(),
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The tables of `s` (its sample bytes, if any, are left out).
pub fn encode(s: &Samples) -> Vec<u8> {
    let n: usize = s.tracks.iter().map(|t| t.samples.len()).sum();
    let mut out = Vec::with_capacity(2 + s.tracks.len() * 64 + n * 7);
    out.push(VERSION);
    out.push(READER_VERSION);
    // A segment has at most one track of each kind.
    out.push(s.tracks.len().min(255) as u8);
    for t in s.tracks.iter().take(255) {
        out.push(match t.kind {
            Kind::Video => 0,
            Kind::Audio => 1,
        });
        for v in [t.timescale, t.width, t.height, t.entry.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&t.entry);
        out.extend_from_slice(&(t.samples.len() as u32).to_le_bytes());
        let mut prev = 0i64;
        for x in &t.samples {
            put_varint(&mut out, zigzag(x.dts.wrapping_sub(prev)));
            prev = x.dts;
            put_varint(&mut out, zigzag(i64::from(x.cto)));
            put_varint(&mut out, (u64::from(x.size) << 1) | u64::from(x.sync));
        }
    }
    out
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], MediaError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| bad(format!("truncated at byte {}", self.at)))?;
        let b = &self.data[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, MediaError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn varint(&mut self) -> Result<u64, MediaError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(format!(
            "varint longer than 64 bits at byte {}",
            self.at
        )))
    }
}

/// Reads what [`encode`] wrote. Sample bytes come back empty.
pub fn decode(data: &[u8]) -> Result<Samples, MediaError> {
    let mut c = Cursor { data, at: 0 };
    let v = c.u8()?;
    if v != VERSION {
        return Err(bad(format!("version {v}, expected {VERSION}")));
    }
    let r = c.u8()?;
    if r != READER_VERSION {
        return Err(bad(format!(
            "written by segment reader version {r}, this is {READER_VERSION}"
        )));
    }
    let tracks = c.u8()?;
    let mut s = Samples::default();
    for _ in 0..tracks {
        let kind = match c.u8()? {
            0 => Kind::Video,
            1 => Kind::Audio,
            k => return Err(bad(format!("track kind {k}"))),
        };
        let (timescale, width, height) = (c.u32()?, c.u32()?, c.u32()?);
        let entry_len = c.u32()? as usize;
        if entry_len > MAX_ENTRY {
            return Err(bad(format!("sample entry of {entry_len} bytes")));
        }
        let entry = c.bytes(entry_len)?.to_vec();
        let count = c.u32()? as usize;
        // Every sample takes at least three bytes: a count the rest cannot hold is corrupt.
        if count > (data.len() - c.at) / 3 {
            return Err(bad(format!(
                "{count} samples in {} bytes",
                data.len() - c.at
            )));
        }
        let mut samples = Vec::with_capacity(count);
        let mut dts = 0i64;
        for _ in 0..count {
            dts = dts.wrapping_add(unzigzag(c.varint()?));
            let cto = i32::try_from(unzigzag(c.varint()?))
                .map_err(|_| bad("composition offset out of range"))?;
            let sz = c.varint()?;
            let size = u32::try_from(sz >> 1).map_err(|_| bad("sample size out of range"))?;
            samples.push(Timed {
                dts,
                cto,
                size,
                sync: sz & 1 == 1,
            });
        }
        s.tracks.push(Track {
            kind,
            timescale,
            entry,
            width,
            height,
            samples,
            data: Vec::new(),
        });
    }
    if c.at != data.len() {
        return Err(bad(format!(
            "{} bytes left over after the tables",
            data.len() - c.at
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_tables() -> Samples {
        let video = Track {
            kind: Kind::Video,
            timescale: 90_000,
            entry: vec![1, 2, 3, 4, 5],
            width: 1280,
            height: 720,
            samples: (0..60)
                .map(|i| Timed {
                    dts: 8_589_934_000 + i * 3000,
                    cto: if i % 3 == 1 { 6000 } else { -3000 },
                    size: 1000 + (i as u32) * 997,
                    sync: i == 0,
                })
                .collect(),
            data: vec![0; 10],
        };
        let audio = Track {
            kind: Kind::Audio,
            timescale: 48_000,
            entry: vec![9; 40],
            width: 0,
            height: 0,
            samples: (0..94)
                .map(|i| Timed {
                    dts: i * 1024,
                    cto: 0,
                    size: 371,
                    sync: true,
                })
                .collect(),
            data: Vec::new(),
        };
        Samples {
            tracks: vec![video, audio],
        }
    }

    #[test]
    fn round_trips_without_the_data() {
        let s = sample_tables();
        let e = encode(&s);
        // Compact: well under 8 bytes a sample here.
        assert!(e.len() < 100 + 154 * 8, "{} bytes", e.len());
        let mut want = s.clone();
        for t in &mut want.tracks {
            t.data.clear();
        }
        assert_eq!(decode(&e).unwrap(), want);
        assert_eq!(
            decode(&encode(&Samples::default())).unwrap(),
            Samples::default()
        );
    }

    #[test]
    fn extreme_values_round_trip() {
        let s = Samples {
            tracks: vec![Track {
                kind: Kind::Audio,
                timescale: u32::MAX,
                entry: Vec::new(),
                width: u32::MAX,
                height: 0,
                samples: vec![
                    Timed {
                        dts: i64::MIN,
                        cto: i32::MIN,
                        size: u32::MAX,
                        sync: true,
                    },
                    Timed {
                        dts: i64::MAX,
                        cto: i32::MAX,
                        size: 0,
                        sync: false,
                    },
                ],
                data: Vec::new(),
            }],
        };
        assert_eq!(decode(&encode(&s)).unwrap(), s);
    }

    #[test]
    fn corrupt_rows_are_refused() {
        let e = encode(&sample_tables());
        // Every truncation fails, none panics.
        for n in 0..e.len() {
            assert!(decode(&e[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        let mut long = e.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        let mut other = e.clone();
        other[0] = 2;
        assert!(decode(&other).is_err());
        // Tables of another reader version are not trusted.
        let mut reader = e.clone();
        reader[1] = READER_VERSION.wrapping_add(1);
        assert!(decode(&reader).is_err());
        // A sample count far beyond the bytes asks for no memory.
        let mut huge = vec![VERSION, READER_VERSION, 1, 0];
        huge.extend_from_slice(&[0; 12]);
        huge.extend_from_slice(&0u32.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }
}
