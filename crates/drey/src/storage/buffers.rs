//! Recycled buffers for object reads (local files, whole S3 objects) and the MP4
//! demuxer's sample bytes. A fresh buffer of a few hundred KB is
//! new memory to the kernel: every page of it faults and is zeroed before the read copies
//! into it (glibc hands such sizes back to the system when they are freed). Buffers come
//! back here when the last `Bytes` that points into them is dropped, so a steady stream
//! of reads (an export, HLS segments, grains) reuses the same few pages.
//!
//! Where in its buffer a read lands matters as much. The kernel copies a file's page-cache
//! pages with `rep movsb`, which on this class of machine (AMD EPYC, measured: 1.1-1.8
//! against 4.3-5.9 GB/s) runs at a third of its speed when the destination sits 1-31
//! bytes past the source's position within a 4 KiB page, and glibc puts every large
//! allocation 16 bytes past a page boundary. [`read_offset`] places each read on a cache
//! line clear of that.

use std::sync::Mutex;

use bytes::Bytes;

/// Smaller buffers are left to the allocator.
const MIN_POOLED: usize = 64 << 10;
/// Bytes the pool keeps at most (what it holds stays resident).
const MAX_BYTES: usize = 64 << 20;
/// Buffers the pool keeps at most.
const MAX_BUFFERS: usize = 64;

/// Bytes a read may start into its buffer (see [`read_offset`]).
pub const MAX_PAD: usize = 128;
const PAGE: usize = 4096;
const LINE: usize = 64;

/// Where in a buffer at address `addr` a read of a file from position `pos` should
/// start: on a cache line, and not 1-63 bytes past the source's offset within its page
/// (at most [`MAX_PAD`] - 1 bytes in).
pub fn read_offset(addr: usize, pos: u64) -> usize {
    let src = (pos % PAGE as u64) as usize;
    let mut pad = (LINE - addr % LINE) % LINE;
    let ahead = (addr + pad + PAGE - src) % PAGE;
    if ahead > 0 && ahead < LINE {
        pad += LINE;
    }
    pad
}

struct Free {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

static FREE: Mutex<Free> = Mutex::new(Free {
    buffers: Vec::new(),
    bytes: 0,
});

/// The capacity a new buffer for `len` bytes gets: `len` rounded up to a size class (eight
/// steps per power of two, so at most 12.5% more), so that objects of similar sizes share
/// buffers. With exact capacities, a recycled buffer fits only objects no larger than the
/// one it was made for: a stream of segments of 545-630 KB left the pool holding one
/// too-small buffer after another, and a long export's heap grew with its span.
fn class(len: usize) -> usize {
    if len < MIN_POOLED {
        return len;
    }
    let step = (1usize << (usize::BITS - 1 - len.leading_zeros())) / 8;
    len.div_ceil(step).saturating_mul(step)
}

/// An empty buffer with room for at least `len` bytes: a recycled one of up to twice
/// that, else a new one of `len`'s size class.
pub fn take(len: usize) -> Vec<u8> {
    if len >= MIN_POOLED
        && let Ok(mut free) = FREE.lock()
    {
        // The most recently returned of the best fits: the likeliest still in cache.
        let best = free
            .buffers
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, b)| b.capacity() >= len && b.capacity() / 2 <= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            let mut b = free.buffers.remove(i);
            free.bytes -= b.capacity();
            b.clear();
            return b;
        }
    }
    Vec::with_capacity(class(len))
}

/// A buffer that goes back to the pool when dropped.
struct Recycled(Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let b = std::mem::take(&mut self.0);
        give_back(b);
    }
}

fn give_back(b: Vec<u8>) {
    let cap = b.capacity();
    if cap < MIN_POOLED {
        return;
    }
    if let Ok(mut free) = FREE.lock()
        && free.buffers.len() < MAX_BUFFERS
        && free.bytes + cap <= MAX_BYTES
    {
        free.bytes += cap;
        free.buffers.push(b);
    }
}

/// `buf` as `Bytes` whose memory returns to the pool once no `Bytes` points into it.
pub fn freeze(buf: Vec<u8>) -> Bytes {
    if buf.capacity() < MIN_POOLED {
        return Bytes::from(buf);
    }
    Bytes::from_owner(Recycled(buf))
}

/// Bytes the pool holds now (for tests).
#[cfg(test)]
fn held() -> (usize, usize) {
    let free = FREE.lock().unwrap();
    (free.buffers.len(), free.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_land_on_a_line_clear_of_the_source() {
        for addr in (0..2 * PAGE).step_by(8).chain([16, PAGE + 16, 65_552]) {
            for pos in [0u64, 1, 16, 63, 64, 100, 4095, 4096, 1 << 20, 1_000_003] {
                let pad = read_offset(addr, pos);
                assert!(pad < MAX_PAD, "{addr} {pos}: {pad}");
                let dst = addr + pad;
                assert_eq!(dst % LINE, 0, "{addr} {pos}");
                let ahead = (dst + PAGE - (pos as usize % PAGE)) % PAGE;
                assert!(ahead == 0 || ahead >= LINE, "{addr} {pos}: {ahead}");
            }
        }
        // glibc's large allocations: 16 bytes past a page, read from a page boundary.
        assert_eq!(read_offset(PAGE + 16, 0), 48);
        assert_eq!(read_offset(PAGE + 16, 40), 48 + 64);
        assert_eq!(read_offset(PAGE, 0), 0);
    }

    #[test]
    fn size_classes_round_up_by_at_most_an_eighth() {
        assert_eq!(class(100), 100);
        assert_eq!(class(MIN_POOLED), MIN_POOLED);
        assert_eq!(class(512 << 10), 512 << 10);
        assert_eq!(class((512 << 10) + 1), 576 << 10);
        // The bench's segments, 545-574 KB, all land in one class.
        assert_eq!(class(545_576), class(574_340));
        for len in (MIN_POOLED..(64 << 20)).step_by(9_973) {
            let c = class(len);
            assert!(c >= len && c - len <= len / 8, "{len} -> {c}");
        }
    }

    #[test]
    fn buffers_come_back_and_are_reused() {
        // One test touches the process-wide pool, so the counts below are its own.
        let len = 300 << 10;
        let mut b = take(len);
        assert!(b.capacity() >= len);
        b.extend_from_slice(&vec![7u8; len]);
        let ptr = b.as_ptr();
        let bytes = freeze(b);
        let part = bytes.slice(10..20);
        drop(bytes);
        // Still pointed into: not back yet.
        assert_eq!(held().0, 0);
        assert_eq!(&part[..], &[7u8; 10]);
        drop(part);
        assert_eq!(held(), (1, held().1));
        assert!(held().1 >= len);
        // The same memory, empty, for a read of a similar size...
        let again = take(len - 1000);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());
        give_back(again);
        // ...but not for one less than half its size, nor one larger.
        let (smaller, larger) = (take(len / 4), take(len * 2));
        assert_ne!(smaller.as_ptr(), ptr);
        assert_ne!(larger.as_ptr(), ptr);
        // Small buffers are the allocator's.
        let small = freeze(vec![1u8; 100]);
        drop(small);
        assert_eq!(held().0, 1);
        // Bounded: a flood of returns keeps at most MAX_BUFFERS / MAX_BYTES.
        for _ in 0..(MAX_BUFFERS + 10) {
            give_back(Vec::with_capacity(MIN_POOLED));
        }
        let (n, bytes) = held();
        assert!(n <= MAX_BUFFERS && bytes <= MAX_BYTES, "{n} {bytes}");
    }
}
