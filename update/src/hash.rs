//! blake3 helpers: the [`Blake3Hash`] newtype and readers/writers that hash what passes through them.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A blake3 digest (32 bytes). Displays as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Blake3Hash(pub [u8; 32]);

impl Blake3Hash {
    /// The all-zero hash, used as `base_hash` of a full image.
    pub const ZERO: Blake3Hash = Blake3Hash([0; 32]);

    /// Hash a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        Blake3Hash(*blake3::hash(bytes).as_bytes())
    }

    /// Whether this is [`Blake3Hash::ZERO`].
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Blake3Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Blake3Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blake3Hash({self})")
    }
}

/// A string that is not 64 hex digits (an optional `0x` prefix is allowed).
#[derive(Debug, thiserror::Error)]
#[error("not a 32-byte hex hash: {0:?}")]
pub struct ParseHashError(pub String);

impl FromStr for Blake3Hash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(digits, &mut out).map_err(|_| ParseHashError(s.to_owned()))?;
        Ok(Blake3Hash(out))
    }
}

/// Hash everything a reader yields; returns the hash and the byte count. `on_progress` gets the running count.
pub fn hash_reader<R: Read>(
    mut reader: R,
    mut on_progress: impl FnMut(u64),
) -> io::Result<(Blake3Hash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        on_progress(total);
    }
    Ok((Blake3Hash(*hasher.finalize().as_bytes()), total))
}

/// A writer that hashes and counts what it forwards, and refuses to go past `limit` bytes.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
    limit: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`; a write that would take the total past `limit` fails with `ErrorKind::FileTooLarge`.
    pub fn new(inner: W, limit: u64) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            written: 0,
            limit,
        }
    }

    /// The most bytes this writer accepts.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The hash of everything written so far, and the inner writer.
    pub fn finish(self) -> (Blake3Hash, u64, W) {
        (
            Blake3Hash(*self.hasher.finalize().as_bytes()),
            self.written,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "output exceeds the announced size",
            ));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_prefix() {
        let h = Blake3Hash::of(b"firmware");
        let s = h.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<Blake3Hash>().unwrap(), h);
        assert_eq!(format!("0x{s}").parse::<Blake3Hash>().unwrap(), h);
        assert!("abc".parse::<Blake3Hash>().is_err());
        assert!("zz".repeat(32).parse::<Blake3Hash>().is_err());
    }

    #[test]
    fn hash_reader_matches_one_shot() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (h, n) = hash_reader(&data[..], |_| {}).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(h, Blake3Hash::of(&data));
    }

    #[test]
    fn hashing_writer_enforces_limit() {
        let mut w = HashingWriter::new(Vec::new(), 4);
        w.write_all(b"abcd").unwrap();
        let err = w.write_all(b"e").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        let (h, n, out) = w.finish();
        assert_eq!((n, out.as_slice()), (4, &b"abcd"[..]));
        assert_eq!(h, Blake3Hash::of(b"abcd"));
    }
}
