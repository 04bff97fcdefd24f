//! The fixed header at the start of every patch file.

use std::fmt;
use std::io::{self, Read};

use crate::hash::Blake3Hash;

/// Length of the header in bytes.
pub const HEADER_LEN: usize = 88;
const MAGIC: &[u8; 4] = b"FCPT";
/// The format of a full image, and of patches made before the stream table (version 1).
pub const VERSION_1: u8 = 1;
/// Patches with a stream table (branch filter, coder and window per stream): see [`super::layout`].
pub const VERSION_2: u8 = 2;

/// What follows the header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PayloadKind {
    /// A zstd-compressed bidiff stream against the base image.
    Patch,
    /// The zstd-compressed new image.
    Full,
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayloadKind::Patch => "patch",
            PayloadKind::Full => "full",
        })
    }
}

/// How a patch's add stream is coded inside its zstd frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddCoding {
    /// The add bytes as they are.
    Raw,
    /// Zero-run coded (see [`super::zero_runs`]).
    ZeroRuns,
}

/// The header: what the patch applies to, what it makes, and how large a zstd window it needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PatchHeader {
    /// Format version: [`VERSION_1`] or [`VERSION_2`] (patches only).
    pub version: u8,
    /// Patch or full image.
    pub kind: PayloadKind,
    /// log2 of the largest window (zstd) or dictionary (LZMA2) any stream of the payload needs.
    pub window_log: u8,
    /// How the add stream is coded (always `Raw` for a full image).
    pub add_coding: AddCoding,
    /// blake3 of the base image (zero for a full image).
    pub base_hash: Blake3Hash,
    /// Size of the base image (zero for a full image).
    pub base_size: u64,
    /// blake3 of the image the patch produces.
    pub target_hash: Blake3Hash,
    /// Size of that image.
    pub target_size: u64,
}

/// A header that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("not a firmchain patch (magic {0:02x?}, expected \"FCPT\")")]
    Magic([u8; 4]),
    #[error("unsupported patch format version {0} (this build reads versions 1 and 2)")]
    Version(u8),
    #[error("format version {0} is for patches, not full images")]
    FullVersion(u8),
    #[error("unknown payload kind {0}")]
    Kind(u8),
    #[error("unknown add-stream coding {0} for this payload kind")]
    AddCoding(u8),
    #[error("window log {0} is outside 10..=31")]
    WindowLog(u8),
    #[error("a full image must not name a base (base_hash {0})")]
    FullWithBase(Blake3Hash),
    #[error("patch is truncated inside its {HEADER_LEN}-byte header")]
    Truncated,
    #[error("reading the patch header: {0}")]
    Io(#[source] io::Error),
}

impl PatchHeader {
    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = self.version;
        b[5] = match self.kind {
            PayloadKind::Patch => 0,
            PayloadKind::Full => 1,
        };
        b[6] = self.window_log;
        b[7] = match self.add_coding {
            AddCoding::Raw => 0,
            AddCoding::ZeroRuns => 1,
        };
        b[8..40].copy_from_slice(&self.base_hash.0);
        b[40..48].copy_from_slice(&self.base_size.to_le_bytes());
        b[48..80].copy_from_slice(&self.target_hash.0);
        b[80..88].copy_from_slice(&self.target_size.to_le_bytes());
        b
    }

    /// Parse a header from its bytes.
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Result<Self, HeaderError> {
        let magic = [b[0], b[1], b[2], b[3]];
        if &magic != MAGIC {
            return Err(HeaderError::Magic(magic));
        }
        if b[4] != VERSION_1 && b[4] != VERSION_2 {
            return Err(HeaderError::Version(b[4]));
        }
        let kind = match b[5] {
            0 => PayloadKind::Patch,
            1 => PayloadKind::Full,
            k => return Err(HeaderError::Kind(k)),
        };
        if kind == PayloadKind::Full && b[4] != VERSION_1 {
            return Err(HeaderError::FullVersion(b[4]));
        }
        if !(10..=31).contains(&b[6]) {
            return Err(HeaderError::WindowLog(b[6]));
        }
        let add_coding = match (kind, b[7]) {
            (_, 0) => AddCoding::Raw,
            (PayloadKind::Patch, 1) => AddCoding::ZeroRuns,
            (_, c) => return Err(HeaderError::AddCoding(c)),
        };
        let hash = |r: std::ops::Range<usize>| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&b[r]);
            Blake3Hash(h)
        };
        let u64_at = |at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(v)
        };
        let header = PatchHeader {
            version: b[4],
            kind,
            window_log: b[6],
            add_coding,
            base_hash: hash(8..40),
            base_size: u64_at(40),
            target_hash: hash(48..80),
            target_size: u64_at(80),
        };
        if kind == PayloadKind::Full && !header.base_hash.is_zero() {
            return Err(HeaderError::FullWithBase(header.base_hash));
        }
        Ok(header)
    }

    /// Read a header from the front of a stream.
    pub fn read<R: Read + ?Sized>(r: &mut R) -> Result<Self, HeaderError> {
        let mut b = [0u8; HEADER_LEN];
        r.read_exact(&mut b).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => HeaderError::Truncated,
            _ => HeaderError::Io(e),
        })?;
        Self::from_bytes(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PatchHeader {
        PatchHeader {
            version: VERSION_2,
            kind: PayloadKind::Patch,
            window_log: 23,
            add_coding: AddCoding::ZeroRuns,
            base_hash: Blake3Hash::of(b"old"),
            base_size: 3,
            target_hash: Blake3Hash::of(b"new"),
            target_size: 3,
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        assert_eq!(PatchHeader::from_bytes(&h.to_bytes()).unwrap(), h);
    }

    #[test]
    fn rejects_bad_fields() {
        let good = sample().to_bytes();
        let mut b = good;
        b[0] = b'X';
        assert!(matches!(PatchHeader::from_bytes(&b), Err(HeaderError::Magic(_))));
        let mut b = good;
        b[4] = 9;
        assert!(matches!(
            PatchHeader::from_bytes(&b),
            Err(HeaderError::Version(9))
        ));
        let mut b = good;
        b[5] = 1;
        b[7] = 0;
        assert!(matches!(
            PatchHeader::from_bytes(&b),
            Err(HeaderError::FullVersion(2))
        ));
        let mut b = good;
        b[4] = 1;
        assert_eq!(PatchHeader::from_bytes(&b).unwrap().version, 1);
        let mut b = good;
        b[5] = 7;
        assert!(matches!(PatchHeader::from_bytes(&b), Err(HeaderError::Kind(7))));
        let mut b = good;
        b[6] = 40;
        assert!(matches!(
            PatchHeader::from_bytes(&b),
            Err(HeaderError::WindowLog(40))
        ));
        let mut b = good;
        b[4] = VERSION_1;
        b[5] = 1; // a full image cannot have a zero-run coded add stream
        assert!(matches!(
            PatchHeader::from_bytes(&b),
            Err(HeaderError::AddCoding(1))
        ));
        b[7] = 0;
        assert!(matches!(
            PatchHeader::from_bytes(&b),
            Err(HeaderError::FullWithBase(_))
        ));
        let mut b = good;
        b[7] = 2;
        assert!(matches!(
            PatchHeader::from_bytes(&b),
            Err(HeaderError::AddCoding(2))
        ));
        assert!(matches!(
            PatchHeader::read(&mut &good[..50]),
            Err(HeaderError::Truncated)
        ));
    }
}
