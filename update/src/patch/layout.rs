//! The table that follows the header of a version-2 patch: the branch filter and, for each of the three
//! streams, its coder, window and compressed length.
//!
//! ```text
//! filter:  u8 arch (0 none, 1 x86-64, 2 AArch64), u8 n, u8 m (each ≤ 16),
//!          n × (u64 start, u64 end) of the target image, m × (u64 start, u64 end) of the base image
//! streams: 3 × (u8 coder (0 zstd, 1 LZMA2), u8 window log, u64 compressed length)   (control, add, copy)
//! ```
//!
//! All integers are little-endian. Version-1 patches have no filter and three zstd streams of the header's
//! window, so their table is the three lengths alone.

use std::io::{self, Read};

use super::branch::{Arch, Filter, MAX_RANGES};
use super::coder::Coder;

/// One stream's entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StreamEntry {
    /// Its coder.
    pub coder: Coder,
    /// log2 of the window (zstd) or dictionary (LZMA2) its decoder needs.
    pub window_log: u8,
    /// Its compressed length in the file.
    pub len: u64,
}

/// A version-2 patch's table.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Layout {
    /// The branch filter to undo on the output, if any.
    pub filter: Option<Filter>,
    /// The same filter on the base image's executable ranges (present exactly when `filter` is).
    pub old_filter: Option<Filter>,
    /// Control, add and copy streams.
    pub streams: [StreamEntry; 3],
}

/// Why a stream table is refused.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("unknown branch filter {0}")]
    Arch(u8),
    #[error("branch filter names {count} ranges, at most {MAX_RANGES} are allowed")]
    TooManyRanges { count: u8 },
    #[error(
        "branch filter range {start}..{end} is empty, unsorted, overlapping or past the {size}-byte image"
    )]
    Range { start: u64, end: u64, size: u64 },
    #[error("unknown stream coder {0}")]
    Coder(u8),
    #[error("stream {stream} claims window log {log}, outside {min}..={max} for its coder")]
    WindowLog {
        stream: usize,
        log: u8,
        min: u8,
        max: u8,
    },
    #[error("stream {stream} claims window log {log}, larger than the header's {header}")]
    AboveHeader { stream: usize, log: u8, header: u8 },
    #[error("patch ends inside its stream table")]
    Truncated,
    #[error("reading the stream table: {0}")]
    Io(#[source] io::Error),
}

fn read_exact<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<(), LayoutError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => LayoutError::Truncated,
        _ => LayoutError::Io(e),
    })
}

fn u64_of(b: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[..8]);
    u64::from_le_bytes(v)
}

impl Layout {
    /// The table's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match (&self.filter, &self.old_filter) {
            (Some(f), Some(o)) => {
                out.push(match f.arch {
                    Arch::X86_64 => 1,
                    Arch::Aarch64 => 2,
                });
                out.push(f.ranges.len() as u8);
                out.push(o.ranges.len() as u8);
                for (s, e) in f.ranges.iter().chain(&o.ranges) {
                    out.extend_from_slice(&s.to_le_bytes());
                    out.extend_from_slice(&e.to_le_bytes());
                }
            }
            _ => out.extend_from_slice(&[0, 0, 0]),
        }
        for s in &self.streams {
            out.push(s.coder.to_byte());
            out.push(s.window_log);
            out.extend_from_slice(&s.len.to_le_bytes());
        }
        out
    }

    /// Read and check a table for a patch from a `base_size`-byte image to a `target_size`-byte image
    /// whose header allows windows up to 2^`header_log`. Reads at most 3 + 32 × 16 + 30 bytes and
    /// allocates nothing that the input sizes.
    pub fn read<R: Read + ?Sized>(
        r: &mut R,
        base_size: u64,
        target_size: u64,
        header_log: u8,
    ) -> Result<Self, LayoutError> {
        let mut head = [0u8; 3];
        read_exact(r, &mut head)?;
        let arch = match head[0] {
            0 => None,
            1 => Some(Arch::X86_64),
            2 => Some(Arch::Aarch64),
            a => return Err(LayoutError::Arch(a)),
        };
        for count in [head[1], head[2]] {
            if usize::from(count) > MAX_RANGES || (arch.is_none() && count != 0) {
                return Err(LayoutError::TooManyRanges { count });
            }
        }
        let new_ranges = read_ranges(r, head[1], target_size)?;
        let old_ranges = read_ranges(r, head[2], base_size)?;
        let filter = arch.map(|arch| Filter {
            arch,
            ranges: new_ranges,
        });
        let old_filter = arch.map(|arch| Filter {
            arch,
            ranges: old_ranges,
        });
        let mut streams = [StreamEntry {
            coder: Coder::Zstd,
            window_log: 0,
            len: 0,
        }; 3];
        for (stream, entry) in streams.iter_mut().enumerate() {
            let mut b = [0u8; 10];
            read_exact(r, &mut b)?;
            let coder = Coder::from_byte(b[0]).ok_or(LayoutError::Coder(b[0]))?;
            let logs = coder.window_logs();
            if !logs.contains(&b[1]) {
                return Err(LayoutError::WindowLog {
                    stream,
                    log: b[1],
                    min: *logs.start(),
                    max: *logs.end(),
                });
            }
            if b[1] > header_log {
                return Err(LayoutError::AboveHeader {
                    stream,
                    log: b[1],
                    header: header_log,
                });
            }
            *entry = StreamEntry {
                coder,
                window_log: b[1],
                len: u64_of(&b[2..]),
            };
        }
        Ok(Layout {
            filter,
            old_filter,
            streams,
        })
    }

    /// The table of a version-1 patch: three zstd streams of the header's window.
    pub fn read_v1<R: Read + ?Sized>(r: &mut R, header_log: u8) -> Result<Self, LayoutError> {
        let mut raw = [0u8; 24];
        read_exact(r, &mut raw)?;
        let entry = |i: usize| StreamEntry {
            coder: Coder::Zstd,
            window_log: header_log,
            len: u64_of(&raw[i * 8..]),
        };
        Ok(Layout {
            filter: None,
            old_filter: None,
            streams: [entry(0), entry(1), entry(2)],
        })
    }
}

/// `count` sorted, disjoint, non-empty ranges within `size`.
fn read_ranges<R: Read + ?Sized>(r: &mut R, count: u8, size: u64) -> Result<Vec<(u64, u64)>, LayoutError> {
    let mut ranges = Vec::with_capacity(usize::from(count));
    let mut prev_end = 0u64;
    for _ in 0..count {
        let mut b = [0u8; 16];
        read_exact(r, &mut b)?;
        let (start, end) = (u64_of(&b[..8]), u64_of(&b[8..]));
        if start >= end || start < prev_end || end > size {
            return Err(LayoutError::Range { start, end, size });
        }
        prev_end = end;
        ranges.push((start, end));
    }
    Ok(ranges)
}
