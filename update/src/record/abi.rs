//! `abi.encode(Release)` of the contract's struct, and its strict inverse.
//!
//! Layout (words of 32 bytes): the offset of the tuple (0x20); the record's head of 11 words (the ten v1 fields,
//! `patchCid` as an offset, then the offset of `terms`); `patchCid` (length, padded bytes); then `terms`: a head
//! of 6 words (offset of `hardware`, `notAfter`, `rolloutStart`, `rolloutStep`, `rolloutInterval`, offset of
//! `notesCid`), `hardware` (count, one word each), `notesCid` (length, padded bytes). Offsets are relative to
//! the start of the head that holds them. The canonical encoding has each offset at the end of what precedes.

use super::{
    Blake3Hash, MAX_CID_LEN, MAX_HARDWARE_CLASSES, ProductId, RecordError, ReleaseKind, ReleaseRecord,
    Sequence,
};
use crate::record::{HardwareClass, ReleaseTerms, RolloutSchedule};

const RECORD_HEAD: usize = 11 * 32;
const TERMS_HEAD: usize = 6 * 32;

const RECORD_FIELDS: [&str; 11] = [
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
    "terms offset",
];

fn uint_word(v: u64) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&v.to_be_bytes());
    w
}

fn padded(len: usize) -> usize {
    len.div_ceil(32) * 32
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&uint_word(bytes.len() as u64));
    out.extend_from_slice(bytes);
    out.resize(out.len() + padded(bytes.len()) - bytes.len(), 0);
}

pub(super) fn encode(r: &ReleaseRecord) -> Vec<u8> {
    let t = &r.terms;
    let cid_part = 32 + padded(r.patch_cid.len());
    let mut out = Vec::with_capacity(
        32 + RECORD_HEAD + cid_part + TERMS_HEAD + 64 + 32 * t.hardware.len() + padded(t.notes_cid.len()),
    );
    out.extend_from_slice(&uint_word(32));
    out.extend_from_slice(&r.product.0);
    out.extend_from_slice(&uint_word(r.sequence.0));
    out.extend_from_slice(&r.base_hash.0);
    out.extend_from_slice(&r.target_hash.0);
    out.extend_from_slice(&uint_word(r.target_size));
    out.extend_from_slice(&uint_word(RECORD_HEAD as u64));
    out.extend_from_slice(&r.patch_hash.0);
    out.extend_from_slice(&uint_word(r.patch_size));
    out.extend_from_slice(&uint_word(r.kind as u64));
    out.extend_from_slice(&uint_word(r.min_sequence));
    out.extend_from_slice(&uint_word((RECORD_HEAD + cid_part) as u64));
    put_bytes(&mut out, &r.patch_cid);
    out.extend_from_slice(&uint_word(TERMS_HEAD as u64));
    out.extend_from_slice(&uint_word(t.not_after));
    out.extend_from_slice(&uint_word(u64::from(t.rollout.start_bps)));
    out.extend_from_slice(&uint_word(u64::from(t.rollout.step_bps)));
    out.extend_from_slice(&uint_word(t.rollout.interval_secs));
    out.extend_from_slice(&uint_word((TERMS_HEAD + 32 + 32 * t.hardware.len()) as u64));
    out.extend_from_slice(&uint_word(t.hardware.len() as u64));
    for class in &t.hardware {
        out.extend_from_slice(&class.0);
    }
    put_bytes(&mut out, &t.notes_cid);
    out
}

/// Reads words by index, each read bounds-checked.
struct Words<'a>(&'a [u8]);

impl Words<'_> {
    fn word(&self, i: usize) -> Result<[u8; 32], RecordError> {
        let mut out = [0u8; 32];
        let bytes = self
            .0
            .get(i * 32..(i + 1) * 32)
            .ok_or(RecordError::TooShort(self.0.len()))?;
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// An unsigned integer of at most `bits` bits.
    fn uint(&self, i: usize, field: &'static str, bits: u32) -> Result<u64, RecordError> {
        let w = self.word(i)?;
        let mut be = [0u8; 8];
        be.copy_from_slice(&w[24..]);
        let v = u64::from_be_bytes(be);
        if w[..24].iter().any(|&b| b != 0) || (bits < 64 && v >> bits != 0) {
            return Err(RecordError::NonCanonical {
                word: i,
                field,
                reason: if bits == 64 {
                    "value exceeds 64 bits"
                } else {
                    "value exceeds 16 bits"
                },
            });
        }
        Ok(v)
    }

    /// An offset that must equal `expected` (the canonical position).
    fn offset(&self, i: usize, field: &'static str, expected: usize) -> Result<(), RecordError> {
        if self.uint(i, field, 64)? != expected as u64 {
            return Err(RecordError::NonCanonical {
                word: i,
                field,
                reason: "offset is not where the canonical encoding puts it",
            });
        }
        Ok(())
    }

    /// `bytes` starting at word `i` (its length word), at most `limit` long; returns it and the next word.
    fn bytes(
        &self,
        i: usize,
        field: &'static str,
        limit: usize,
        too_long: fn(usize) -> RecordError,
    ) -> Result<(Vec<u8>, usize), RecordError> {
        let len = self.uint(i, field, 64)?;
        if len > limit as u64 {
            return Err(too_long(len as usize));
        }
        let len = len as usize;
        let start = (i + 1) * 32;
        let end = start + padded(len);
        let data = self
            .0
            .get(start..end)
            .ok_or(RecordError::TooShort(self.0.len()))?;
        if data[len..].iter().any(|&b| b != 0) {
            return Err(RecordError::NonCanonical {
                word: i + 1 + len / 32,
                field,
                reason: "padding is not zero",
            });
        }
        Ok((data[..len].to_vec(), end / 32))
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<ReleaseRecord, RecordError> {
    let w = Words(bytes);
    w.offset(0, "tuple offset", 32)?;
    let field = |i: usize| RECORD_FIELDS[i - 1];
    let b32 = |i: usize| w.word(i);
    let u64_at = |i: usize| w.uint(i, field(i), 64);
    w.offset(6, field(6), RECORD_HEAD)?;
    let (patch_cid, after_cid) = w.bytes(12, "patch_cid", MAX_CID_LEN, RecordError::CidTooLong)?;
    w.offset(11, field(11), (after_cid - 1) * 32)?;
    let t = after_cid;
    let terms_field = [
        "hardware offset",
        "not_after",
        "rollout_start",
        "rollout_step",
        "rollout_interval",
    ];
    w.offset(t, terms_field[0], TERMS_HEAD)?;
    let count = w.uint(t + 6, "hardware count", 64)?;
    if count > MAX_HARDWARE_CLASSES as u64 {
        return Err(RecordError::TooManyHardwareClasses(count as usize));
    }
    let count = count as usize;
    let hardware = (0..count)
        .map(|k| w.word(t + 7 + k).map(HardwareClass))
        .collect::<Result<Vec<_>, _>>()?;
    w.offset(t + 5, "notes_cid offset", TERMS_HEAD + 32 + 32 * count)?;
    let (notes_cid, end) = w.bytes(
        t + 7 + count,
        "notes_cid",
        MAX_CID_LEN,
        RecordError::NotesCidTooLong,
    )?;
    if bytes.len() != end * 32 {
        return Err(RecordError::Length {
            expected: end * 32,
            actual: bytes.len(),
        });
    }
    let kind = match u64_at(9)? {
        0 => ReleaseKind::Patch,
        1 => ReleaseKind::Full,
        k => return Err(RecordError::Kind(k)),
    };
    let terms = ReleaseTerms {
        hardware,
        not_after: w.uint(t + 1, terms_field[1], 64)?,
        rollout: RolloutSchedule {
            start_bps: w.uint(t + 2, terms_field[2], 16)? as u16,
            step_bps: w.uint(t + 3, terms_field[3], 16)? as u16,
            interval_secs: w.uint(t + 4, terms_field[4], 64)?,
        },
        notes_cid,
    };
    Ok(ReleaseRecord {
        product: ProductId(b32(1)?),
        sequence: Sequence(u64_at(2)?),
        base_hash: Blake3Hash(b32(3)?),
        target_hash: Blake3Hash(b32(4)?),
        target_size: u64_at(5)?,
        patch_cid,
        patch_hash: Blake3Hash(b32(7)?),
        patch_size: u64_at(8)?,
        kind,
        min_sequence: u64_at(10)?,
        terms: Box::new(terms),
    })
}
