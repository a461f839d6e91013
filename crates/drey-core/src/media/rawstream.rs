//! The raw frame stream between `drey signal --listen` (or any sender) and `drey ingest
//! stream` receivers, sans-IO: each frame is a 16-byte header, the magic `DRYF`, the frame
//! number (u64, big-endian) and the payload length (u32, big-endian), then the payload.
//! Every receiver gets every frame; the frame number says which grain it is.

pub const MAGIC: &[u8; 4] = b"DRYF";
pub const HEADER_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("not a drey frame stream (magic {0:02x?}, expected DRYF)")]
    Magic([u8; 4]),
    #[error("frame {n} has {len} bytes; this stream's frames have {expected}")]
    Length { n: u64, len: usize, expected: usize },
    #[error("frame number {0} is out of range")]
    Number(u64),
}

pub fn encode_header(n: u64, len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4..12].copy_from_slice(&n.to_be_bytes());
    h[12..].copy_from_slice(&len.to_be_bytes());
    h
}

/// Parses a header, checking the magic and that the payload is one frame of the size the
/// receiver expects (a sender of another format or size is refused, not stored).
pub fn parse_header(h: &[u8; HEADER_LEN], expected_len: usize) -> Result<u64, StreamError> {
    let magic: [u8; 4] = [h[0], h[1], h[2], h[3]];
    if &magic != MAGIC {
        return Err(StreamError::Magic(magic));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&h[4..12]);
    let n = u64::from_be_bytes(n);
    let mut l = [0u8; 4];
    l.copy_from_slice(&h[12..16]);
    let len = u32::from_be_bytes(l) as usize;
    if len != expected_len {
        return Err(StreamError::Length {
            n,
            len,
            expected: expected_len,
        });
    }
    if n > i64::MAX as u64 / 1_000_000_000 {
        return Err(StreamError::Number(n));
    }
    Ok(n)
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
}
