//! The on-chain release record (v2): its canonical ABI encoding and keccak digest.
//!
//! The contract stores `digest[product][sequence] = keccak256(abi.encode(record))`; the full record travels in
//! the `ReleasePublished` event and in calldata. A device checks every record it is handed against the digest
//! that a storage proof gave it, so the encoding here must match Solidity's `abi.encode` byte for byte (the
//! vectors in `testdata/record-vectors.json` are shared with the contract's tests). Decoding is strict: only the
//! canonical encoding is accepted, so `encode(decode(b)) == b` for every `b` that decodes.
//!
//! Version 2 adds the release's [`ReleaseTerms`] (hardware classes, expiry, rollout schedule, notes CID) as a
//! nested struct at the end. Version 1 records (without terms) are not decodable: their digests differ and
//! the contract that indexed them is not the one that indexes v2 records.

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use tiny_keccak::{Hasher, Keccak};

use crate::hash::Blake3Hash;

mod abi;
mod terms;

pub use terms::{
    FULL_SHARE, HardwareClass, MAX_HARDWARE_CLASSES, ParseHardwareError, ParseRolloutError, ReleaseTerms,
    RolloutSchedule,
};

/// The longest `patch_cid` a record may carry (a CIDv1 with a 64-byte digest fits with room to spare).
pub const MAX_CID_LEN: usize = 128;

/// A product: 32 bytes, usually a short ASCII name padded with zeros on the right (`bytes32("acme-sensor")`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ProductId(pub [u8; 32]);

/// A product name outside the allowed set.
#[derive(Debug, thiserror::Error)]
#[error(
    "product name {0:?} must be 1 to 32 of A-Z a-z 0-9 . _ - starting with a letter or digit, or 0x followed by 64 hex digits"
)]
pub struct ParseProductError(pub String);

/// Whether `name` is a product name: 1 to 32 of `A-Z a-z 0-9 . _ -`, the first a letter or digit. So a name is
/// never a path (`/`, `\`), never `.` or `..`, and never hidden.
pub fn is_product_name(name: &[u8]) -> bool {
    (1..=32).contains(&name.len())
        && name[0].is_ascii_alphanumeric()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl ProductId {
    /// The product as a name, when it is a valid name ([`is_product_name`]) padded with zeros.
    pub fn name(&self) -> Option<&str> {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(32);
        let (name, pad) = self.0.split_at(end);
        if is_product_name(name) && pad.iter().all(|&b| b == 0) {
            std::str::from_utf8(name).ok()
        } else {
            None
        }
    }

    /// The 64 hex digits of the id: what names the product's folders on disk (never the name).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for ProductId {
    type Err = ParseProductError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseProductError(s.to_owned());
        if let Some(digits) = s.strip_prefix("0x") {
            let mut out = [0u8; 32];
            hex::decode_to_slice(digits, &mut out).map_err(|_| bad())?;
            return Ok(ProductId(out));
        }
        if !is_product_name(s.as_bytes()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        out[..s.len()].copy_from_slice(s.as_bytes());
        Ok(ProductId(out))
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{}", hex::encode(self.0)),
        }
    }
}

impl fmt::Debug for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProductId({self})")
    }
}

/// A release's position in its product's history; sequences go up by exactly one, starting at 1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct Sequence(pub u64);

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the release's payload is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum ReleaseKind {
    /// A patch from the image whose hash is `base_hash`.
    Patch = 0,
    /// A complete (compressed) image; `base_hash` is zero.
    Full = 1,
}

impl fmt::Display for ReleaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleaseKind::Patch => "patch",
            ReleaseKind::Full => "full",
        })
    }
}

/// One release of one product, as the contract indexes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReleaseRecord {
    /// The product this release belongs to.
    pub product: ProductId,
    /// Its sequence number.
    pub sequence: Sequence,
    /// blake3 of the image the patch applies to; zero for a full image.
    pub base_hash: Blake3Hash,
    /// blake3 of the image after the update.
    pub target_hash: Blake3Hash,
    /// Size of that image in bytes.
    pub target_size: u64,
    /// Binary CID (CIDv1) of the root of the payload's DAG.
    pub patch_cid: Vec<u8>,
    /// blake3 of the payload (patch file) bytes.
    pub patch_hash: Blake3Hash,
    /// Size of the payload in bytes.
    pub patch_size: u64,
    /// Patch or full image.
    pub kind: ReleaseKind,
    /// Devices below this sequence must not install this release (a rollback floor).
    pub min_sequence: u64,
    /// Who may install it, until when, and how fast it reaches the fleet (boxed: most code never looks).
    pub terms: Box<ReleaseTerms>,
}

/// Why bytes are not a canonical record encoding, or a record breaks a rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record encoding is {actual} bytes, expected {expected}")]
    Length { expected: usize, actual: usize },
    #[error("record encoding ends early ({0} bytes)")]
    TooShort(usize),
    #[error("word {word} ({field}) is not canonical: {reason}")]
    NonCanonical {
        word: usize,
        field: &'static str,
        reason: &'static str,
    },
    #[error("patch_cid is {0} bytes, the limit is {MAX_CID_LEN}")]
    CidTooLong(usize),
    #[error("unknown release kind {0}")]
    Kind(u64),
    #[error("patch_cid is not a CID: {0}")]
    Cid(String),
    #[error("a full-image record must have a zero base_hash")]
    FullWithBase,
    #[error("a patch record must name its base image (base_hash is zero)")]
    PatchWithoutBase,
    #[error("sequence must be at least 1")]
    ZeroSequence,
    #[error("{0} must not be zero")]
    Zero(&'static str),
    #[error("min_sequence {min} is above the release's own sequence {sequence}")]
    MinSequenceAbove { min: u64, sequence: u64 },
    #[error("{0} hardware classes, the limit is {MAX_HARDWARE_CLASSES}")]
    TooManyHardwareClasses(usize),
    #[error(
        "hardware class {index} is zero or not above the one before (classes must be strictly ascending)"
    )]
    HardwareNotAscending { index: usize },
    #[error("notes_cid is {0} bytes, the limit is {MAX_CID_LEN}")]
    NotesCidTooLong(usize),
    #[error("notes_cid is not a CID: {0}")]
    NotesCid(String),
    #[error("invalid rollout: {0}")]
    Rollout(#[from] ParseRolloutError),
}

/// keccak256 of `bytes`.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut k = Keccak::v256();
    k.update(bytes);
    k.finalize(&mut out);
    out
}

impl ReleaseRecord {
    /// `abi.encode(record)` for the Solidity struct with the fields in declaration order.
    pub fn abi_encode(&self) -> Vec<u8> {
        abi::encode(self)
    }

    /// `keccak256(abi.encode(record))`: what the contract stores as the release's digest.
    pub fn digest(&self) -> [u8; 32] {
        keccak256(&self.abi_encode())
    }

    /// Decode the canonical ABI encoding; anything else (other offsets, dirty padding, extra bytes) is refused.
    pub fn abi_decode(bytes: &[u8]) -> Result<Self, RecordError> {
        abi::decode(bytes)
    }

    /// The payload's root CID.
    pub fn cid(&self) -> Result<Cid, RecordError> {
        Cid::try_from(self.patch_cid.as_slice()).map_err(|e| RecordError::Cid(e.to_string()))
    }

    /// The rules every record must follow, whatever the chain says.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.patch_cid.len() > MAX_CID_LEN {
            return Err(RecordError::CidTooLong(self.patch_cid.len()));
        }
        self.cid()?;
        if self.sequence.0 == 0 {
            return Err(RecordError::ZeroSequence);
        }
        match self.kind {
            ReleaseKind::Full if !self.base_hash.is_zero() => return Err(RecordError::FullWithBase),
            ReleaseKind::Patch if self.base_hash.is_zero() => return Err(RecordError::PatchWithoutBase),
            _ => {}
        }
        if self.target_hash.is_zero() {
            return Err(RecordError::Zero("target_hash"));
        }
        if self.patch_hash.is_zero() {
            return Err(RecordError::Zero("patch_hash"));
        }
        if self.target_size == 0 {
            return Err(RecordError::Zero("target_size"));
        }
        if self.patch_size == 0 {
            return Err(RecordError::Zero("patch_size"));
        }
        if self.min_sequence > self.sequence.0 {
            return Err(RecordError::MinSequenceAbove {
                min: self.min_sequence,
                sequence: self.sequence.0,
            });
        }
        self.terms.validate()
    }
}

#[cfg(test)]
mod tests;
