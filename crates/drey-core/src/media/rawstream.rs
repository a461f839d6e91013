//! The raw frame stream between senders (`drey signal --listen`, `drey play --listen`, or
//! any other) and `drey ingest stream` receivers, sans-IO: each frame is a 16-byte header,
//! the magic `DRYF`, the frame number (u64, big-endian) and the payload length (u32,
//! big-endian), then the payload. Every receiver gets every frame; the frame number says
//! which grain it is. A sender that ends the stream on purpose sends an end header (magic
//! `DRYE`, the number of the frame after the last, length 0) before closing, so a
//! receiver can tell the end of the stream from a lost connection.

pub const MAGIC: &[u8; 4] = b"DRYF";
pub const END_MAGIC: &[u8; 4] = b"DRYE";
pub const HEADER_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("not a drey frame stream (magic {0:02x?}, expected DRYF or DRYE)")]
    Magic([u8; 4]),
    #[error("frame {n} has {len} bytes; this stream's frames have {expected}")]
    Length { n: u64, len: usize, expected: usize },
    #[error("frame number {0} is out of range")]
    Number(u64),
    #[error("end-of-stream header with a {0}-byte payload")]
    EndPayload(usize),
}

/// What a header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Frame `n` follows (its payload of the expected length).
    Frame(u64),
    /// The stream ends; `n` is the number of the frame after the last one sent.
    End(u64),
}

pub fn encode_header(n: u64, len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4..12].copy_from_slice(&n.to_be_bytes());
    h[12..].copy_from_slice(&len.to_be_bytes());
    h
}

/// The end-of-stream header: `next` is the number of the frame after the last.
pub fn encode_end(next: u64) -> [u8; HEADER_LEN] {
    let mut h = encode_header(next, 0);
    h[..4].copy_from_slice(END_MAGIC);
    h
}

/// Parses a header, checking the magic and that a frame's payload is one frame of the
/// size the receiver expects (a sender of another format or size is refused, not stored).
pub fn parse(h: &[u8; HEADER_LEN], expected_len: usize) -> Result<Header, StreamError> {
    let magic: [u8; 4] = [h[0], h[1], h[2], h[3]];
    let mut n = [0u8; 8];
    n.copy_from_slice(&h[4..12]);
    let n = u64::from_be_bytes(n);
    let mut l = [0u8; 4];
    l.copy_from_slice(&h[12..16]);
    let len = u32::from_be_bytes(l) as usize;
    if n > i64::MAX as u64 / 1_000_000_000 {
        return Err(StreamError::Number(n));
    }
    match &magic {
        m if m == MAGIC => {
            if len != expected_len {
                return Err(StreamError::Length {
                    n,
                    len,
                    expected: expected_len,
                });
            }
            Ok(Header::Frame(n))
        }
        m if m == END_MAGIC => {
            if len != 0 {
                return Err(StreamError::EndPayload(len));
            }
            Ok(Header::End(n))
        }
        _ => Err(StreamError::Magic(magic)),
    }
}

/// [`parse`] for a frame header only (an end header is refused as a bad magic).
pub fn parse_header(h: &[u8; HEADER_LEN], expected_len: usize) -> Result<u64, StreamError> {
    match parse(h, expected_len)? {
        Header::Frame(n) => Ok(n),
        Header::End(_) => Err(StreamError::Magic(*END_MAGIC)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let h = encode_header(42, 1000);
        assert_eq!(parse_header(&h, 1000), Ok(42));
        assert!(matches!(
            parse_header(&h, 999),
            Err(StreamError::Length {
                n: 42,
                len: 1000,
                expected: 999
            })
        ));
        let mut bad = h;
        bad[0] = b'X';
        assert!(matches!(
            parse_header(&bad, 1000),
            Err(StreamError::Magic(_))
        ));
        let huge = encode_header(u64::MAX, 1000);
        assert_eq!(
            parse_header(&huge, 1000),
            Err(StreamError::Number(u64::MAX))
        );
    }

    #[test]
    fn end_of_stream() {
        assert_eq!(parse(&encode_end(300), 1000), Ok(Header::End(300)));
        assert_eq!(parse(&encode_header(7, 1000), 1000), Ok(Header::Frame(7)));
        let mut h = encode_end(300);
        h[15] = 1;
        assert_eq!(parse(&h, 1000), Err(StreamError::EndPayload(1)));
        assert!(parse_header(&encode_end(3), 1000).is_err());
        assert_eq!(
            parse(&encode_end(u64::MAX), 0),
            Err(StreamError::Number(u64::MAX))
        );
    }
}
