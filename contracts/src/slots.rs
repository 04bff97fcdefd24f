//! Storage slots of FirmwareIndex, for `eth_getProof`.
//!
//! Solidity stores `mapping(K => V) m` at slot `p` with `m[k]` at `keccak256(pad32(k) ++ pad32(p))`, and a
//! nested `m[a][b]` at `keccak256(pad32(b) ++ keccak256(pad32(a) ++ pad32(p)))`. The base slots below are part
//! of the contract's interface; a test checks them against the artifact's storage layout.

use alloy::primitives::{B256, U256, keccak256};
use firmchain_update::{ProductId, Sequence};

/// `mapping(bytes32 => uint64) head`.
pub const HEAD: u64 = 7;
/// `mapping(bytes32 => mapping(uint64 => bytes32)) digest`.
pub const DIGEST: u64 = 8;
/// `mapping(bytes32 => mapping(uint64 => bool)) revoked` (revoked by the threshold or cancelled by a guardian).
pub const REVOKED: u64 = 9;
/// `mapping(bytes32 => mapping(uint64 => Timing)) timing`: one word, `liveAt` in its low 8 bytes and
/// `installableAt` in the 8 bytes above (see [`timing_of`]).
pub const TIMING: u64 = 13;
/// `mapping(bytes32 => mapping(uint64 => uint64)) pausedUntil`: sequence 0 is the whole product.
pub const PAUSED_UNTIL: u64 = 14;

fn mapping_slot(key: B256, slot: B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(key.as_slice());
    buf[32..].copy_from_slice(slot.as_slice());
    keccak256(buf)
}

fn word(v: u64) -> B256 {
    B256::from(U256::from(v))
}

/// The slot of `head[product]`.
pub fn head(product: &ProductId) -> B256 {
    mapping_slot(B256::from(product.0), word(HEAD))
}

/// The slot of `digest[product][sequence]`.
pub fn digest(product: &ProductId, sequence: Sequence) -> B256 {
    mapping_slot(
        word(sequence.0),
        mapping_slot(B256::from(product.0), word(DIGEST)),
    )
}

/// The slot of `revoked[product][sequence]`.
pub fn revoked(product: &ProductId, sequence: Sequence) -> B256 {
    mapping_slot(
        word(sequence.0),
        mapping_slot(B256::from(product.0), word(REVOKED)),
    )
}

/// The slot of `timing[product][sequence]`.
pub fn timing(product: &ProductId, sequence: Sequence) -> B256 {
    nested(product, sequence, TIMING)
}

/// The slot of `pausedUntil[product][sequence]` (`Sequence(0)`: the product's own pause).
pub fn paused_until(product: &ProductId, sequence: Sequence) -> B256 {
    nested(product, sequence, PAUSED_UNTIL)
}

fn nested(product: &ProductId, sequence: Sequence, base: u64) -> B256 {
    mapping_slot(word(sequence.0), mapping_slot(B256::from(product.0), word(base)))
}

/// `(liveAt, installableAt)` from the word stored at [`timing`].
pub fn timing_of(value: U256) -> (u64, u64) {
    let limbs = value.as_limbs();
    (limbs[0], limbs[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_slots_match_the_artifact_layout() {
        let artifact: serde_json::Value = serde_json::from_str(crate::ARTIFACT).unwrap();
        let slot_of = |label: &str| {
            artifact["storageLayout"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["label"] == label)
                .and_then(|s| s["slot"].as_u64())
                .unwrap()
        };
        assert_eq!(slot_of("head"), HEAD);
        assert_eq!(slot_of("digest"), DIGEST);
        assert_eq!(slot_of("revoked"), REVOKED);
        assert_eq!(slot_of("timing"), TIMING);
        assert_eq!(slot_of("pausedUntil"), PAUSED_UNTIL);
    }

    #[test]
    fn timing_word_packs_two_u64() {
        let v = (U256::from(7_000u64) << 64) | U256::from(3_000u64);
        assert_eq!(timing_of(v), (3_000, 7_000));
    }

    #[test]
    fn nested_slot_follows_solidity() {
        let p: ProductId = "p".parse().unwrap();
        let inner = keccak256([p.0.as_slice(), word(DIGEST).as_slice()].concat());
        let expected = keccak256([word(5).as_slice(), inner.as_slice()].concat());
        assert_eq!(digest(&p, Sequence(5)), expected);
    }
}
