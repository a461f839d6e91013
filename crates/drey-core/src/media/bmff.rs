//! ISO base media file format (MP4) box plumbing shared by the fragmented and progressive
//! writers and the fragment reader: writing boxes and full boxes, and walking the boxes of
//! untrusted bytes with every size checked.

use super::MediaError;

/// Writes a box: size, type, then whatever `body` appends. A body past 4 GiB cannot be
/// told in 32 bits; callers that may write one (`mdat`) write their own header.
pub(crate) fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(kind);
    body(out);
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a full box (version and 24-bit flags first).
pub(crate) fn full(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    boxed(out, kind, |o| {
        o.push(version);
        o.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(o);
    });
}

pub(crate) fn u16be(o: &mut Vec<u8>, v: u16) {
    o.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u32be(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u64be(o: &mut Vec<u8>, v: u64) {
    o.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn zeros(o: &mut Vec<u8>, n: usize) {
    o.resize(o.len() + n, 0);
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

pub(crate) fn matrix(o: &mut Vec<u8>) {
    for v in MATRIX {
        u32be(o, v);
    }
}

/// An MPEG-4 descriptor: tag and a one-byte length (every descriptor drey writes is short).
pub(crate) fn descriptor(o: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    o.push(tag);
    let at = o.len();
    o.push(0);
    body(o);
    let len = o.len() - at - 1;
    o[at] = u8::try_from(len).unwrap_or(0x7f).min(0x7f);
}

fn bad(what: &'static str, message: impl Into<String>) -> MediaError {
    MediaError::BadContainer {
        what,
        message: message.into(),
    }
}

/// A box found in a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'a> {
    pub kind: [u8; 4],
    /// Offset of the box's first byte in the buffer walked.
    pub at: usize,
    /// Everything after the header.
    pub body: &'a [u8],
}

/// The boxes of `data`, one level, each size checked against what is there. `what` names
/// the container in errors.
pub(crate) fn boxes<'a>(data: &'a [u8], what: &'static str) -> Result<Vec<Found<'a>>, MediaError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        let (kind, header, size) = box_header(rest, rest.len() as u64, at, what)?;
        let size = size as usize;
        out.push(Found {
            kind,
            at,
            body: &rest[header..size],
        });
        at += size;
    }
    Ok(out)
}

/// The header of the box at offset `at` of a buffer with `remaining` bytes from there on,
/// of which `head` holds the first (at least 16, or all of them): its kind, header length
/// and size, the size checked against `remaining`.
pub(crate) fn box_header(
    head: &[u8],
    remaining: u64,
    at: usize,
    what: &'static str,
) -> Result<([u8; 4], usize, u64), MediaError> {
    if remaining < 8 {
        return Err(bad(what, format!("{remaining} stray bytes at offset {at}")));
    }
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = [head[4], head[5], head[6], head[7]];
    let (header, size) = match size32 {
        0 => (8usize, remaining),
        1 => {
            let Some(b) = head.get(8..16).filter(|_| remaining >= 16) else {
                return Err(bad(what, "truncated 64-bit box size"));
            };
            let mut v = [0u8; 8];
            v.copy_from_slice(b);
            (16, u64::from_be_bytes(v))
        }
        n => (8, u64::from(n)),
    };
    if size < header as u64 || size > remaining {
        return Err(bad(
            what,
            format!(
                "box {:?} at offset {at} claims {size} bytes, {remaining} are there",
                String::from_utf8_lossy(&kind),
            ),
        ));
    }
    Ok((kind, header, size))
}

/// The first child box of `kind`, if any.
pub(crate) fn child<'a>(
    data: &'a [u8],
    kind: &[u8; 4],
    what: &'static str,
) -> Result<Option<Found<'a>>, MediaError> {
    Ok(boxes(data, what)?.into_iter().find(|b| &b.kind == kind))
}

/// A cursor over a box body; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Reader { data, what }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], MediaError> {
        if self.data.len() < n {
            return Err(MediaError::Truncated {
                what: self.what,
                need: n,
                have: self.data.len(),
            });
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    pub fn u32(&mut self) -> Result<u32, MediaError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, MediaError> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Ok((u64::from(hi) << 32) | u64::from(lo))
    }

    /// Version and flags of a full box.
    pub fn version_flags(&mut self) -> Result<(u8, u32), MediaError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_and_checks_sizes() {
        let mut o = Vec::new();
        boxed(&mut o, b"abcd", |o| o.extend_from_slice(b"xy"));
        full(&mut o, b"efgh", 1, 0x20000, |o| u32be(o, 7));
        let b = boxes(&o, "test").unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].body, b"xy");
        assert_eq!(b[1].at, 10);
        let mut r = Reader::new(b[1].body, "efgh");
        assert_eq!(r.version_flags().unwrap(), (1, 0x20000));
        assert_eq!(r.u32().unwrap(), 7);
        assert!(r.take(1).is_err());
        // A size past the end, a size below the header, stray bytes.
        assert!(boxes(&o[..o.len() - 1], "test").is_err());
        let mut small = o.clone();
        small[3] = 4;
        assert!(boxes(&small, "test").is_err());
        assert!(boxes(&[0, 0, 0], "test").is_err());
        // Size 0 runs to the end; size 1 is a 64-bit size.
        assert_eq!(
            boxes(&[0, 0, 0, 0, b'm', b'd', b'a', b't', 9], "t").unwrap()[0].body,
            [9]
        );
        let large = [
            0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 0, 0, 0, 0, 17, 5,
        ];
        assert_eq!(boxes(&large, "t").unwrap()[0].body, [5]);
    }
}
