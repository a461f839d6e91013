//! An MPEG-TS writer for one program of H.264 video and AAC audio: PAT, PMT and PES packets
//! packetised straight from the caller's slices into the segment buffer (one copy).

pub const PACKET: usize = 188;
pub const PID_PMT: u16 = 0x1000;
pub const PID_VIDEO: u16 = 0x100;
pub const PID_AUDIO: u16 = 0x101;
pub const STREAM_ID_VIDEO: u8 = 0xe0;
pub const STREAM_ID_AUDIO: u8 = 0xc0;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// 33-bit PTS/DTS/PCR base wrap.
pub const TS_WRAP: u64 = 1 << 33;

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32/MPEG-2 over a PSI section.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize]
    })
}

/// Which elementary streams the program carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub video: bool,
    pub audio: bool,
}

impl Program {
    pub fn pcr_pid(self) -> u16 {
        if self.video { PID_VIDEO } else { PID_AUDIO }
    }
}

/// One PES packet to write.
pub struct Pes<'a> {
    pub pid: u16,
    pub stream_id: u8,
    /// 90 kHz.
    pub pts: u64,
    pub dts: Option<u64>,
    /// PCR base (90 kHz) to carry in this packet's adaptation field.
    pub pcr: Option<u64>,
    pub random_access: bool,
    /// The elementary stream bytes, in order.
    pub payload: &'a [&'a [u8]],
}

/// Continuity counters per PID, kept across segments so concatenated segments stay valid.
#[derive(Debug, Clone, Default)]
pub struct TsWriter {
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
}

fn write_ts_timestamp(out: &mut Vec<u8>, prefix: u8, ts: u64) {
    let ts = ts % TS_WRAP;
    out.push((prefix << 4) | ((((ts >> 30) & 0x07) as u8) << 1) | 1);
    let mid = (((ts >> 15) & 0x7fff) << 1) as u16 | 1;
    out.extend_from_slice(&mid.to_be_bytes());
    let low = ((ts & 0x7fff) << 1) as u16 | 1;
    out.extend_from_slice(&low.to_be_bytes());
}

impl TsWriter {
    fn cc(&mut self, pid: u16) -> u8 {
        let c = match pid {
            0 => &mut self.cc_pat,
            PID_PMT => &mut self.cc_pmt,
            PID_VIDEO => &mut self.cc_video,
            _ => &mut self.cc_audio,
        };
        let v = *c;
        *c = (v + 1) & 0x0f;
        v
    }

    fn write_section(&mut self, out: &mut Vec<u8>, pid: u16, section: &[u8]) {
        let cc = self.cc(pid);
        let start = out.len();
        out.extend_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | cc, 0x00]);
        out.extend_from_slice(section);
        out.extend_from_slice(&crc32_mpeg2(section).to_be_bytes());
        out.resize(start + PACKET, 0xff);
    }

    /// Writes the PAT and the PMT (at the start of every segment, so each stands alone).
    pub fn write_tables(&mut self, out: &mut Vec<u8>, program: Program) {
        // PAT: one program (1) whose PMT is on PID_PMT.
        let pat = [
            0x00,
            0xb0,
            13,
            0x00,
            0x01,
            0xc1,
            0x00,
            0x00,
            0x00,
            0x01,
            0xe0 | (PID_PMT >> 8) as u8,
            PID_PMT as u8,
        ];
        self.write_section(out, 0, &pat);
        // One PMT entry: stream type, elementary PID, no descriptors.
        let entry = |stream_type: u8, pid: u16| {
            [stream_type, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0x00]
        };
        let mut streams = Vec::with_capacity(10);
        if program.video {
            streams.extend_from_slice(&entry(STREAM_TYPE_H264, PID_VIDEO));
        }
        if program.audio {
            streams.extend_from_slice(&entry(STREAM_TYPE_AAC_ADTS, PID_AUDIO));
        }
        let section_length = 9 + streams.len() + 4;
        let pcr = program.pcr_pid();
        let mut pmt = vec![
            0x02,
            0xb0 | (section_length >> 8) as u8,
            section_length as u8,
            0x00,
            0x01,
            0xc1,
            0x00,
            0x00,
            0xe0 | (pcr >> 8) as u8,
            pcr as u8,
            0xf0,
            0x00,
        ];
        pmt.extend_from_slice(&streams);
        self.write_section(out, PID_PMT, &pmt);
    }

    /// Packetises one PES packet into 188-byte TS packets appended to `out`.
    pub fn write_pes(&mut self, out: &mut Vec<u8>, pes: &Pes<'_>) {
        let es_len: usize = pes.payload.iter().map(|p| p.len()).sum();
        let mut header = Vec::with_capacity(19);
        header.extend_from_slice(&[0, 0, 1, pes.stream_id]);
        let header_data_len = if pes.dts.is_some() { 10 } else { 5 };
        let pes_len = 3 + header_data_len + es_len;
        // Video PES may be unbounded (length 0); audio must state its length.
        let len_field = if pes.stream_id == STREAM_ID_VIDEO || pes_len > 0xffff {
            0
        } else {
            pes_len as u16
        };
        header.extend_from_slice(&len_field.to_be_bytes());
        header.push(0x80);
        header.push(if pes.dts.is_some() { 0xc0 } else { 0x80 });
        header.push(header_data_len as u8);
        match pes.dts {
            Some(dts) => {
                write_ts_timestamp(&mut header, 0x3, pes.pts);
                write_ts_timestamp(&mut header, 0x1, dts);
            }
            None => write_ts_timestamp(&mut header, 0x2, pes.pts),
        }

        let total = header.len() + es_len;
        out.reserve(total.div_ceil(184) * PACKET + PACKET);
        let mut parts = std::iter::once(&header[..])
            .chain(pes.payload.iter().copied())
            .filter(|p| !p.is_empty());
        let mut current: &[u8] = parts.next().unwrap_or(&[]);
        let mut remaining = total;
        let mut first = true;
        while remaining > 0 {
            // Adaptation field contents (after its length byte) for this packet.
            let mut af = [0u8; 8];
            let mut af_len = 0usize;
            if first && (pes.pcr.is_some() || pes.random_access) {
                af[0] = if pes.random_access { 0x40 } else { 0 };
                af_len = 1;
                if let Some(pcr) = pes.pcr {
                    af[0] |= 0x10;
                    let base = pcr % TS_WRAP;
                    af[1] = (base >> 25) as u8;
                    af[2] = (base >> 17) as u8;
                    af[3] = (base >> 9) as u8;
                    af[4] = (base >> 1) as u8;
                    af[5] = (((base & 1) as u8) << 7) | 0x7e;
                    af[6] = 0;
                    af_len = 7;
                }
            }
            let has_af = af_len > 0;
            let mut space = 184 - if has_af { 1 + af_len } else { 0 };
            let mut stuffing = 0usize;
            let mut af_present = has_af;
            if remaining < space {
                let need = space - remaining;
                if has_af {
                    stuffing = need;
                } else if need == 1 {
                    // An adaptation field of length 0: just its length byte.
                    af_present = true;
                } else {
                    af_present = true;
                    af[0] = 0;
                    af_len = 1;
                    stuffing = need - 2;
                }
                space = remaining;
            }
            let cc = self.cc(pes.pid);
            out.push(0x47);
            out.push(if first { 0x40 } else { 0 } | (pes.pid >> 8) as u8 & 0x1f);
            out.push(pes.pid as u8);
            out.push(if af_present { 0x30 } else { 0x10 } | cc);
            if af_present {
                out.push((af_len + stuffing) as u8);
                out.extend_from_slice(&af[..af_len]);
                out.resize(out.len() + stuffing, 0xff);
            }
            let mut left = space;
            while left > 0 {
                if current.is_empty() {
                    current = parts.next().unwrap_or(&[]);
                    if current.is_empty() {
                        break;
                    }
                }
                let n = left.min(current.len());
                out.extend_from_slice(&current[..n]);
                current = &current[n..];
                left -= n;
            }
            remaining -= space;
            first = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reassembles the payload of one PID from TS packets, checking sync bytes, continuity
    /// and adaptation-field lengths.
    pub(crate) fn demux(ts: &[u8], pid: u16) -> Vec<Vec<u8>> {
        assert_eq!(ts.len() % PACKET, 0);
        let mut pes: Vec<Vec<u8>> = Vec::new();
        let mut last_cc: Option<u8> = None;
        for p in ts.chunks(PACKET) {
            assert_eq!(p[0], 0x47);
            let this_pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            if this_pid != pid {
                continue;
            }
            let cc = p[3] & 0x0f;
            if let Some(l) = last_cc {
                assert_eq!(cc, (l + 1) & 0x0f, "continuity");
            }
            last_cc = Some(cc);
            let mut off = 4;
            if p[3] & 0x20 != 0 {
                off += 1 + usize::from(p[4]);
            }
            assert!(off <= PACKET);
            if p[1] & 0x40 != 0 {
                pes.push(Vec::new());
            }
            pes.last_mut().unwrap().extend_from_slice(&p[off..]);
        }
        pes
    }

    #[test]
    fn crc_of_a_known_pat() {
        // The PAT ffmpeg writes for program 1 / PMT PID 0x1000: CRC 2A B1 04 B2.
        let pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0x2ab1_04b2);
    }

    #[test]
    fn pes_of_every_size_round_trips() {
        let mut w = TsWriter::default();
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 7) as u8).collect();
        for len in [
            0usize, 1, 2, 150, 165, 166, 167, 168, 169, 170, 183, 184, 185, 400, 2000,
        ] {
            for (pcr, ra) in [(None, false), (Some(1234), true), (None, true)] {
                let mut out = Vec::new();
                let (a, b) = data[..len].split_at(len / 3);
                w.write_pes(
                    &mut out,
                    &Pes {
                        pid: PID_AUDIO,
                        stream_id: STREAM_ID_AUDIO,
                        pts: 900_000,
                        dts: None,
                        pcr,
                        random_access: ra,
                        payload: &[a, b],
                    },
                );
                let pes = demux(&out, PID_AUDIO);
                assert_eq!(pes.len(), 1);
                let p = &pes[0];
                assert_eq!(&p[..4], &[0, 0, 1, STREAM_ID_AUDIO]);
                let hdr = 9 + usize::from(p[8]);
                assert_eq!(&p[hdr..], &data[..len], "len {len}");
                assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len() - 6);
            }
        }
    }

    #[test]
    fn tables_are_single_packets() {
        let mut w = TsWriter::default();
        let mut out = Vec::new();
        w.write_tables(
            &mut out,
            Program {
                video: true,
                audio: true,
            },
        );
        assert_eq!(out.len(), 2 * PACKET);
        assert_eq!(
            &out[5..17],
            &[
                0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00
            ]
        );
    }
}
