//! The on-chain release record: its canonical ABI encoding and keccak digest.
//!
//! The contract stores `digest[product][sequence] = keccak256(abi.encode(record))`; the full record travels in
//! the `ReleasePublished` event and in calldata. A device checks every record it is handed against the digest
//! that a storage proof gave it, so the encoding here must match Solidity's `abi.encode` byte for byte (the
//! vectors in `testdata/record-vectors.json` are shared with the contract's tests). Decoding is strict: only the
//! canonical encoding is accepted, so `encode(decode(b)) == b` for every `b` that decodes.

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use tiny_keccak::{Hasher, Keccak};

use crate::hash::Blake3Hash;

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
}

/// Why bytes are not a canonical record encoding, or a record breaks a rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record encoding is {actual} bytes, expected {expected}")]
    Length { expected: usize, actual: usize },
    #[error("record encoding is shorter than its fixed part ({0} bytes)")]
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
}

const HEAD_WORDS: usize = 10;
const CID_OFFSET: usize = HEAD_WORDS * 32;
const FIELD_NAMES: [&str; HEAD_WORDS] = [
    "product",
    "sequence",
    "base_hash",
    "target_hash",
    "target_size",
    "patch_cid offset",
    "patch_hash",
    "patch_size",
    "kind",
    "min_sequence",
];

fn uint_word(v: u64) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&v.to_be_bytes());
    w
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
        let padded = self.patch_cid.len().div_ceil(32) * 32;
        let mut out = Vec::with_capacity(32 + CID_OFFSET + 32 + padded);
        out.extend_from_slice(&uint_word(32));
        out.extend_from_slice(&self.product.0);
        out.extend_from_slice(&uint_word(self.sequence.0));
        out.extend_from_slice(&self.base_hash.0);
        out.extend_from_slice(&self.target_hash.0);
        out.extend_from_slice(&uint_word(self.target_size));
        out.extend_from_slice(&uint_word(CID_OFFSET as u64));
        out.extend_from_slice(&self.patch_hash.0);
        out.extend_from_slice(&uint_word(self.patch_size));
        out.extend_from_slice(&uint_word(self.kind as u64));
        out.extend_from_slice(&uint_word(self.min_sequence));
        out.extend_from_slice(&uint_word(self.patch_cid.len() as u64));
        out.extend_from_slice(&self.patch_cid);
        out.resize(32 + CID_OFFSET + 32 + padded, 0);
        out
    }

    /// `keccak256(abi.encode(record))`: what the contract stores as the release's digest.
    pub fn digest(&self) -> [u8; 32] {
        keccak256(&self.abi_encode())
    }

    /// Decode the canonical ABI encoding; anything else (other offsets, dirty padding, extra bytes) is refused.
    pub fn abi_decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let fixed = 32 + CID_OFFSET + 32;
        if bytes.len() < fixed {
            return Err(RecordError::TooShort(bytes.len()));
        }
        let word = |i: usize| -> &[u8] { &bytes[i * 32..(i + 1) * 32] };
        let uint = |i: usize, field: &'static str| -> Result<u64, RecordError> {
            let w = word(i);
            if w[..24].iter().any(|&b| b != 0) {
                return Err(RecordError::NonCanonical {
                    word: i,
                    field,
                    reason: "value exceeds 64 bits",
                });
            }
            let mut be = [0u8; 8];
            be.copy_from_slice(&w[24..]);
            Ok(u64::from_be_bytes(be))
        };
        let b32 = |i: usize| -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(word(i));
            out
        };
        if uint(0, "tuple offset")? != 32 {
            return Err(RecordError::NonCanonical {
                word: 0,
                field: "tuple offset",
                reason: "must be 0x20",
            });
        }
        let field = |i: usize| FIELD_NAMES[i - 1];
        if uint(6, field(6))? != CID_OFFSET as u64 {
            return Err(RecordError::NonCanonical {
                word: 6,
                field: field(6),
                reason: "must be 0x140",
            });
        }
        let cid_len = uint(11, "patch_cid length")?;
        if cid_len > MAX_CID_LEN as u64 {
            return Err(RecordError::CidTooLong(cid_len as usize));
        }
        let cid_len = cid_len as usize;
        let expected = fixed + cid_len.div_ceil(32) * 32;
        if bytes.len() != expected {
            return Err(RecordError::Length {
                expected,
                actual: bytes.len(),
            });
        }
        let tail = &bytes[fixed..];
        if tail[cid_len..].iter().any(|&b| b != 0) {
            return Err(RecordError::NonCanonical {
                word: 12,
                field: "patch_cid",
                reason: "padding is not zero",
            });
        }
        let kind = match uint(9, field(9))? {
            0 => ReleaseKind::Patch,
            1 => ReleaseKind::Full,
            k => return Err(RecordError::Kind(k)),
        };
        Ok(ReleaseRecord {
            product: ProductId(b32(1)),
            sequence: Sequence(uint(2, field(2))?),
            base_hash: Blake3Hash(b32(3)),
            target_hash: Blake3Hash(b32(4)),
            target_size: uint(5, field(5))?,
            patch_cid: tail[..cid_len].to_vec(),
            patch_hash: Blake3Hash(b32(7)),
            patch_size: uint(8, field(8))?,
            kind,
            min_sequence: uint(10, field(10))?,
        })
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vector {
        product: String,
        sequence: String,
        base_hash: String,
        target_hash: String,
        target_size: String,
        patch_cid: String,
        patch_hash: String,
        patch_size: String,
        kind: u8,
        min_sequence: String,
        encoded: String,
        digest: String,
    }

    fn vectors() -> Vec<Vector> {
        let text = include_str!("../testdata/record-vectors.json");
        serde_json::from_str::<Vec<Vector>>(text).unwrap()
    }

    fn record_of(v: &Vector) -> ReleaseRecord {
        let h = |s: &str| s.parse::<Blake3Hash>().unwrap();
        ReleaseRecord {
            product: v.product.parse().unwrap(),
            sequence: Sequence(v.sequence.parse().unwrap()),
            base_hash: h(&v.base_hash),
            target_hash: h(&v.target_hash),
            target_size: v.target_size.parse().unwrap(),
            patch_cid: hex::decode(v.patch_cid.trim_start_matches("0x")).unwrap(),
            patch_hash: h(&v.patch_hash),
            patch_size: v.patch_size.parse().unwrap(),
            kind: if v.kind == 0 {
                ReleaseKind::Patch
            } else {
                ReleaseKind::Full
            },
            min_sequence: v.min_sequence.parse().unwrap(),
        }
    }

    #[test]
    fn shared_vectors_encode_and_digest() {
        for v in vectors() {
            let r = record_of(&v);
            assert_eq!(
                format!("0x{}", hex::encode(r.abi_encode())),
                v.encoded,
                "encoding of {}",
                v.product
            );
            assert_eq!(
                format!("0x{}", hex::encode(r.digest())),
                v.digest,
                "digest of {}",
                v.product
            );
            assert_eq!(ReleaseRecord::abi_decode(&r.abi_encode()).unwrap(), r);
            r.validate().unwrap();
        }
    }

    fn sample() -> ReleaseRecord {
        record_of(&vectors()[0])
    }

    #[test]
    fn rejects_non_canonical_encodings() {
        let good = sample().abi_encode();
        let mut dirty_pad = good.clone();
        *dirty_pad.last_mut().unwrap() = 1;
        assert!(matches!(
            ReleaseRecord::abi_decode(&dirty_pad),
            Err(RecordError::NonCanonical { .. })
        ));
        let mut big_seq = good.clone();
        big_seq[2 * 32] = 1;
        assert!(matches!(
            ReleaseRecord::abi_decode(&big_seq),
            Err(RecordError::NonCanonical {
                field: "sequence",
                ..
            })
        ));
        let mut offset = good.clone();
        offset[6 * 32 + 31] = 0x60;
        assert!(matches!(
            ReleaseRecord::abi_decode(&offset),
            Err(RecordError::NonCanonical { word: 6, .. })
        ));
        let mut extra = good.clone();
        extra.extend_from_slice(&[0; 32]);
        assert!(matches!(
            ReleaseRecord::abi_decode(&extra),
            Err(RecordError::Length { .. })
        ));
        assert!(matches!(
            ReleaseRecord::abi_decode(&good[..100]),
            Err(RecordError::TooShort(100))
        ));
        let mut kind = good.clone();
        kind[9 * 32 + 31] = 2;
        assert_eq!(ReleaseRecord::abi_decode(&kind), Err(RecordError::Kind(2)));
    }

    #[test]
    fn validate_names_the_rule() {
        let mut r = sample();
        r.kind = ReleaseKind::Full;
        assert_eq!(r.validate(), Err(RecordError::FullWithBase));
        let mut r = sample();
        r.min_sequence = r.sequence.0 + 1;
        assert!(matches!(r.validate(), Err(RecordError::MinSequenceAbove { .. })));
        let mut r = sample();
        r.patch_cid = vec![1, 2, 3];
        assert!(matches!(r.validate(), Err(RecordError::Cid(_))));
        let mut r = sample();
        r.sequence = Sequence(0);
        assert_eq!(r.validate(), Err(RecordError::ZeroSequence));
    }

    #[test]
    fn product_names() {
        let p: ProductId = "acme-sensor".parse().unwrap();
        assert_eq!(p.to_string(), "acme-sensor");
        assert_eq!(&p.0[..11], b"acme-sensor");
        assert!("".parse::<ProductId>().is_err());
        assert!("has space".parse::<ProductId>().is_err());
        assert!("x".repeat(33).parse::<ProductId>().is_err());
        let raw = ProductId([0xff; 32]);
        assert_eq!(raw.to_string().parse::<ProductId>().unwrap(), raw);
    }

    #[test]
    fn product_names_are_never_paths() {
        for bad in [
            "../x",
            "..",
            ".",
            "/etc",
            "/tmp/abs",
            "a/b",
            "a\\b",
            ".hidden",
            "-rf",
            "x\0y",
            "caf\u{e9}",
        ] {
            let err = bad.parse::<ProductId>().unwrap_err();
            assert!(err.to_string().contains("must be"), "{bad}: {err}");
        }
        for good in ["acme-sensor", "Sensor_v2.1", "0", "a..b"] {
            assert_eq!(good.parse::<ProductId>().unwrap().to_string(), good);
        }
        // An id from the chain whose bytes spell a path is shown, and stored, as hex only.
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(b"../x");
        let id = ProductId(bytes);
        assert_eq!(id.name(), None);
        assert!(id.to_string().starts_with("0x"));
        assert_eq!(id.hex().len(), 64);
        assert!(id.hex().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(
            product in any::<[u8; 32]>(), seq in any::<u64>(), base in any::<[u8; 32]>(),
            target in any::<[u8; 32]>(), size in any::<u64>(), cid in proptest::collection::vec(any::<u8>(), 0..=MAX_CID_LEN),
            ph in any::<[u8; 32]>(), ps in any::<u64>(), full in any::<bool>(), min in any::<u64>(),
        ) {
            let r = ReleaseRecord {
                product: ProductId(product), sequence: Sequence(seq), base_hash: Blake3Hash(base),
                target_hash: Blake3Hash(target), target_size: size, patch_cid: cid, patch_hash: Blake3Hash(ph),
                patch_size: ps, kind: if full { ReleaseKind::Full } else { ReleaseKind::Patch }, min_sequence: min,
            };
            let enc = r.abi_encode();
            prop_assert_eq!(enc.len() % 32, 0);
            prop_assert_eq!(ReleaseRecord::abi_decode(&enc).unwrap(), r);
        }

        #[test]
        fn whatever_decodes_re_encodes_identically(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(r) = ReleaseRecord::abi_decode(&bytes) {
                prop_assert_eq!(r.abi_encode(), bytes);
            }
        }
    }
}
