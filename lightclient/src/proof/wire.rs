//! The byte-level primitives of the proof encoding: fixed-width little-endian integers, length-prefixed
//! fields with caps checked before anything is allocated, strict flags, and the envelope (magic, version,
//! kind). See `FORMAT.md`.

use super::ProofError;

/// The first four bytes of every encoded proof.
pub const MAGIC: [u8; 4] = *b"FCPF";
/// The encoding version this code reads and writes.
pub const VERSION: u8 = 2;

/// What an encoded message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A [`super::CommitteeChain`].
    CommitteeChain = 1,
    /// A [`super::ReleaseProof`].
    Release = 2,
    /// A [`super::HeadProof`].
    Head = 3,
}

impl Kind {
    /// The hard size cap of a whole message of this kind, checked before parsing.
    pub fn max_bytes(self) -> usize {
        match self {
            Kind::CommitteeChain => super::MAX_COMMITTEE_CHAIN_BYTES,
            Kind::Release | Kind::Head => super::MAX_PROOF_BYTES,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::CommitteeChain => "committee chain",
            Kind::Release => "release proof",
            Kind::Head => "head proof",
        }
    }
}

/// Appends fields.
#[derive(Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// A message of `kind`: magic, version, kind byte.
    pub fn envelope(kind: Kind) -> Self {
        let mut w = Writer(Vec::with_capacity(4096));
        w.bytes(&MAGIC);
        w.u8(VERSION);
        w.u8(kind as u8);
        w
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub fn flag(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    /// A count that the decoder will check against a cap: the encoder's callers keep within the caps (a value
    /// over a cap encodes, and is then refused by the decoder and by [`super::encode`]'s size check).
    pub fn count_u8(&mut self, n: usize) {
        self.u8(u8::try_from(n).unwrap_or(u8::MAX));
    }

    pub fn count_u16(&mut self, n: usize) {
        self.u16(u16::try_from(n).unwrap_or(u16::MAX));
    }

    pub fn count_u32(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// Reads fields, naming the field and offset of whatever is wrong.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Check the size cap, the magic, the version and the kind; the reader then stands at the body.
    pub fn open(buf: &'a [u8], kind: Kind) -> Result<Self, ProofError> {
        if buf.len() > kind.max_bytes() {
            return Err(ProofError::TooLarge {
                what: kind.name(),
                len: buf.len(),
                max: kind.max_bytes(),
            });
        }
        let mut r = Reader { buf, at: 0 };
        let magic: [u8; 4] = r.fixed("magic")?;
        if magic != MAGIC {
            return Err(ProofError::BadMagic { found: magic });
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(ProofError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let found = r.u8("kind")?;
        if found != kind as u8 {
            return Err(ProofError::WrongKind {
                expected: kind as u8,
                found,
            });
        }
        Ok(r)
    }

    /// The offset of the next byte.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// Refuse bytes after the last field.
    pub fn finish(&self) -> Result<(), ProofError> {
        if self.at != self.buf.len() {
            return Err(ProofError::TrailingBytes {
                offset: self.at,
                len: self.buf.len(),
            });
        }
        Ok(())
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProofError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(ProofError::Truncated {
                field,
                offset: self.at,
            })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    pub fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProofError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, ProofError> {
        Ok(self.take(1, field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, ProofError> {
        Ok(u16::from_le_bytes(self.fixed(field)?))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, ProofError> {
        Ok(u32::from_le_bytes(self.fixed(field)?))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, ProofError> {
        Ok(u64::from_le_bytes(self.fixed(field)?))
    }

    /// A byte that must be 0 or 1.
    pub fn flag(&mut self, field: &'static str) -> Result<bool, ProofError> {
        let offset = self.at;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(ProofError::BadFlag { field, offset, value }),
        }
    }

    fn capped(&self, field: &'static str, count: usize, max: usize) -> Result<usize, ProofError> {
        if count > max {
            return Err(ProofError::FieldTooLarge { field, count, max });
        }
        Ok(count)
    }

    /// A u8 count, at most `max`.
    pub fn count_u8(&mut self, field: &'static str, max: usize) -> Result<usize, ProofError> {
        let n = self.u8(field)? as usize;
        self.capped(field, n, max)
    }

    /// A u16 count, at most `max`.
    pub fn count_u16(&mut self, field: &'static str, max: usize) -> Result<usize, ProofError> {
        let n = self.u16(field)? as usize;
        self.capped(field, n, max)
    }

    /// A u32 count, at most `max`.
    pub fn count_u32(&mut self, field: &'static str, max: usize) -> Result<usize, ProofError> {
        let n = self.u32(field)? as usize;
        self.capped(field, n, max)
    }

    /// `n` items of `N` bytes, `n` already capped; fails before allocating if the input is too short.
    pub fn array_list<const N: usize>(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<Vec<[u8; N]>, ProofError> {
        let bytes = self.take(n.saturating_mul(N), field)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|c| {
                let mut out = [0u8; N];
                out.copy_from_slice(c);
                out
            })
            .collect())
    }
}
