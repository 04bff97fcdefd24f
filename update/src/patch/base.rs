//! The base image as a patch reads it: through the branch filter when the patch names one, with random
//! access, in 64 KiB blocks.
//!
//! The x86-64 filter's decisions depend on earlier ones (a converted instruction's bytes are skipped), so a
//! block that starts inside an executable range needs to know where the scan stands there. One pass over the
//! base records, every 4 KiB, the first decision position at or after 6 bytes before the 4 KiB mark (a
//! byte per 4 KiB: 10 KiB for a 40 MB image); a block then starts 8 bytes early and scans from there, and
//! every byte it serves is exactly what the filter made of the whole image.

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::branch::{self, Arch, Filter};
use crate::hash::{Blake3Hash, hash_reader};

const BLOCK: usize = 64 * 1024;
const STEP: u64 = 4096;
/// How far before a 4 KiB mark a checkpoint looks: the longest instruction a decision converts.
const BACK: u64 = 6;
/// Raw bytes read around a block: BACK before (plus alignment slack), a decision's reach after.
const MARGIN: usize = 8;

/// The base image, read through an optional filter.
#[derive(Debug)]
pub struct Base<R> {
    inner: R,
    size: u64,
    filter: Option<Filter>,
    /// x86-64: per 4 KiB mark c (index c / 4096), the first decision position minus (c - 6).
    checkpoints: Vec<u8>,
    buf: Vec<u8>,
    /// Absolute position of `buf[0]`.
    buf_pos: u64,
    /// The served part of `buf`: `buf[lo..hi]` are final bytes at `buf_pos + lo ..`.
    lo: usize,
    hi: usize,
    pos: u64,
}

impl<R: Read + Seek> Base<R> {
    /// Wrap `inner`; nothing is read until [`Base::verify`].
    pub fn new(inner: R, filter: Option<Filter>) -> Self {
        Base {
            inner,
            size: 0,
            filter,
            checkpoints: Vec::new(),
            buf: Vec::new(),
            buf_pos: 0,
            lo: 0,
            hi: 0,
            pos: 0,
        }
    }

    /// Hash the whole image (and, for x86-64, record the filter's checkpoints), then rewind.
    pub fn verify(&mut self) -> io::Result<(Blake3Hash, u64)> {
        self.inner.seek(SeekFrom::Start(0))?;
        let (hash, size) = hash_reader(&mut BufReader::with_capacity(BLOCK, &mut self.inner), |_| {})?;
        self.size = size;
        if let Some(f) = self.filter.as_ref().filter(|f| f.arch == Arch::X86_64) {
            // The patch's ranges were checked against the announced size, which the hash just confirmed.
            let ranges = f.ranges.clone();
            self.checkpoints = vec![0u8; usize::try_from(size / STEP + 2).unwrap_or(0)];
            for (s, e) in ranges {
                self.scan_range(s, e)?;
            }
        }
        self.buf = vec![0u8; BLOCK + 2 * MARGIN];
        self.pos = 0;
        (self.lo, self.hi) = (0, 0);
        Ok((hash, size))
    }

    /// Run the x86-64 decisions over `[s, e)` and record the checkpoints inside it.
    fn scan_range(&mut self, s: u64, e: u64) -> io::Result<()> {
        let mut buf = vec![0u8; BLOCK + MARGIN];
        let mut next = s;
        let mut mark = (s + BACK) / STEP + 1;
        let record = |cps: &mut Vec<u8>, mark: &mut u64, upto: u64| {
            while *mark * STEP - BACK <= upto && *mark * STEP - BACK < e {
                if let Some(c) = cps.get_mut(*mark as usize) {
                    *c = (upto - (*mark * STEP - BACK)) as u8;
                }
                *mark += 1;
            }
        };
        while next < e {
            let want = usize::try_from((e - next).min((BLOCK + MARGIN) as u64)).unwrap_or(BLOCK);
            self.inner.seek(SeekFrom::Start(next))?;
            let n = read_full(&mut self.inner, &mut buf[..want])?;
            if n == 0 {
                break;
            }
            let end = next + n as u64;
            let limit = if end == e { end } else { end - MARGIN as u64 };
            let mut i = next;
            while i < limit {
                record(&mut self.checkpoints, &mut mark, i);
                let at = (i - next) as usize;
                i += branch::x86_decide(&mut buf[..n], at, i) as u64;
            }
            next = i;
            if end == e {
                break;
            }
        }
        record(&mut self.checkpoints, &mut mark, e.max(next));
        Ok(())
    }

    /// Fill the buffer with the block that holds `pos`.
    fn refill(&mut self, pos: u64) -> io::Result<()> {
        let Some(filter) = &self.filter else {
            self.inner.seek(SeekFrom::Start(pos))?;
            let n = read_full(&mut self.inner, &mut self.buf[..BLOCK])?;
            (self.buf_pos, self.lo, self.hi) = (pos, 0, n);
            return Ok(());
        };
        let c = pos - pos % STEP;
        let r = c.saturating_sub(MARGIN as u64);
        let want =
            usize::try_from((self.size.saturating_sub(r)).min((BLOCK + 2 * MARGIN) as u64)).unwrap_or(0);
        self.inner.seek(SeekFrom::Start(r))?;
        let n = read_full(&mut self.inner, &mut self.buf[..want])?;
        let buf_end = r + n as u64;
        let block_end = (c + BLOCK as u64).min(buf_end);
        for &(s, e) in &filter.ranges {
            if s >= block_end || e <= c {
                continue;
            }
            let back = c.saturating_sub(BACK);
            let mut next = if s >= back {
                s
            } else {
                match filter.arch {
                    Arch::X86_64 => {
                        back + u64::from(self.checkpoints.get((c / STEP) as usize).copied().unwrap_or(0))
                    }
                    Arch::Aarch64 => back,
                }
            };
            let from = s.max(r);
            let slice = &mut self.buf[(from - r) as usize..(e.min(buf_end) - r) as usize];
            branch::convert_until(filter.arch, slice, from, &mut next, e.min(block_end), true);
        }
        (self.buf_pos, self.lo, self.hi) = (r, (c - r) as usize, (block_end - r) as usize);
        Ok(())
    }

    /// Read exactly `out.len()` bytes at the current position.
    pub fn read_exact(&mut self, mut out: &mut [u8]) -> io::Result<()> {
        while !out.is_empty() {
            let start = self.buf_pos + self.lo as u64;
            let end = self.buf_pos + self.hi as u64;
            if self.pos < start || self.pos >= end {
                if self.pos >= self.size {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "read past the base image",
                    ));
                }
                self.refill(self.pos)?;
                if self.hi <= self.lo {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "base image ended early",
                    ));
                }
                continue;
            }
            let at = (self.pos - self.buf_pos) as usize;
            let n = out.len().min(self.hi - at);
            out[..n].copy_from_slice(&self.buf[at..at + n]);
            self.pos += n as u64;
            out = &mut out[n..];
        }
        Ok(())
    }

    /// Move the position by `by` bytes (the caller keeps it within the image).
    pub fn seek_relative(&mut self, by: i64) {
        self.pos = self.pos.wrapping_add_signed(by);
    }
}

/// Read until `buf` is full or the reader ends; the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    fn code(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                [0xE8, 0x0F, 0x85, 0x00, 0xFF, 0x94, 0x90, x as u8][(x >> 40) as usize % 8]
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn random_reads_see_the_filtered_image(
            seed in any::<u64>(),
            len in 1usize..300_000,
            cut in any::<(u64, u64)>(),
            reads in proptest::collection::vec((any::<u64>(), 0usize..20_000), 1..40),
        ) {
            let (a, b) = (cut.0 % len as u64, cut.1 % len as u64);
            let ranges = vec![(a.min(b), a.max(b) + 1)];
            let image = code(seed, len);
            for arch in [Arch::X86_64, Arch::Aarch64] {
                let filter = Filter { arch, ranges: ranges.clone() };
                let mut expected = image.clone();
                branch::encode(&filter, &mut expected);
                let mut base = Base::new(Cursor::new(&image), Some(filter));
                prop_assert_eq!(base.verify().unwrap().1, len as u64);
                for &(at, n) in &reads {
                    let at = at % len as u64;
                    let n = n.min(len - at as usize);
                    base.seek_relative(at as i64 - base.pos as i64);
                    let mut got = vec![0u8; n];
                    base.read_exact(&mut got).unwrap();
                    prop_assert!(got[..] == expected[at as usize..at as usize + n], "{:?} at {} len {}", arch, at, n);
                }
            }
        }
    }
}
