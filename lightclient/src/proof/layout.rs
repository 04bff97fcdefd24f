//! Where the index contract keeps what a proof proves: the base slots of its mappings, and the
//! Solidity rule that turns a product and a sequence into a storage key. The verifier derives every key
//! itself, so a proof cannot pass off another product's or another sequence's slot.
//!
//! The base slots are the contract's (`firmchain-contracts`' `slots` module, checked there against the
//! compiled artifact); the node passes them in, and a test in `tests/` checks that both give the same keys.

use alloy::primitives::{B256, U256, keccak256};

/// The base slots of `head`, `digest`, `revoked`, `timing` and `pausedUntil` in the index contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexLayout {
    /// `mapping(bytes32 => uint64) head`.
    pub head: u64,
    /// `mapping(bytes32 => mapping(uint64 => bytes32)) digest`.
    pub digest: u64,
    /// `mapping(bytes32 => mapping(uint64 => bool)) revoked`.
    pub revoked: u64,
    /// `mapping(bytes32 => mapping(uint64 => Timing)) timing` (`liveAt` in the low 8 bytes of the word,
    /// `installableAt` in the 8 above).
    pub timing: u64,
    /// `mapping(bytes32 => mapping(uint64 => uint64)) pausedUntil` (sequence 0: the whole product).
    pub paused_until: u64,
}

/// The layout of `FirmwareIndex.sol` as of this encoding version.
pub const FIRMWARE_INDEX: IndexLayout = IndexLayout {
    head: 7,
    digest: 8,
    revoked: 9,
    timing: 13,
    paused_until: 14,
};

/// How many slots a release proof proves.
pub const RELEASE_SLOTS: usize = 6;
/// How many slots a head proof proves before its revocation window.
pub const HEAD_FIXED_SLOTS: usize = 5;

/// The rollout gate of a release as the contract stores it, proven at the proof's anchor: when it went live,
/// when its activation delay ends, and the pauses of the product and of the release (unix seconds; 0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProvenGate {
    pub live_at: u64,
    pub installable_at: u64,
    pub product_paused_until: u64,
    pub release_paused_until: u64,
}

impl ProvenGate {
    /// The gate from the proven values of [`IndexLayout::gate_slots`], in that order. A pause above 64 bits
    /// saturates (the contract writes `uint64`s).
    pub fn from_values(product_pause: U256, timing: U256, release_pause: U256) -> ProvenGate {
        let limbs = timing.as_limbs();
        ProvenGate {
            live_at: limbs[0],
            installable_at: limbs[1],
            product_paused_until: product_pause.saturating_to(),
            release_paused_until: release_pause.saturating_to(),
        }
    }
}

fn word(v: u64) -> B256 {
    B256::from(U256::from(v))
}

/// `keccak256(pad32(key) ++ pad32(slot))`.
fn mapping_slot(key: B256, slot: B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(key.as_slice());
    buf[32..].copy_from_slice(slot.as_slice());
    keccak256(buf)
}

impl IndexLayout {
    /// The key of `head[product]`.
    pub fn head(&self, product: B256) -> B256 {
        mapping_slot(product, word(self.head))
    }

    /// The key of `digest[product][sequence]`.
    pub fn digest(&self, product: B256, sequence: u64) -> B256 {
        mapping_slot(word(sequence), mapping_slot(product, word(self.digest)))
    }

    /// The key of `revoked[product][sequence]`.
    pub fn revoked(&self, product: B256, sequence: u64) -> B256 {
        mapping_slot(word(sequence), mapping_slot(product, word(self.revoked)))
    }

    /// The key of `timing[product][sequence]`.
    pub fn timing(&self, product: B256, sequence: u64) -> B256 {
        mapping_slot(word(sequence), mapping_slot(product, word(self.timing)))
    }

    /// The key of `pausedUntil[product][sequence]` (sequence 0: the product's own pause).
    pub fn paused_until(&self, product: B256, sequence: u64) -> B256 {
        mapping_slot(word(sequence), mapping_slot(product, word(self.paused_until)))
    }

    /// The three keys of a release's rollout gate, in proof order: `pausedUntil[product][0]`,
    /// `timing[product][sequence]`, `pausedUntil[product][sequence]`.
    pub fn gate_slots(&self, product: B256, sequence: u64) -> [B256; 3] {
        [
            self.paused_until(product, 0),
            self.timing(product, sequence),
            self.paused_until(product, sequence),
        ]
    }

    /// The keys a release proof proves, in its order: head, digest, revoked, then the release's gate.
    pub fn release_slots(&self, product: B256, sequence: u64) -> [B256; RELEASE_SLOTS] {
        let [p, t, q] = self.gate_slots(product, sequence);
        [
            self.head(product),
            self.digest(product, sequence),
            self.revoked(product, sequence),
            p,
            t,
            q,
        ]
    }

    /// The keys a head proof proves, in its order: head, digest of the head, the head's gate, then the
    /// revocation window.
    pub fn head_slots(&self, product: B256, head: u64, revocations_from: u64) -> Vec<B256> {
        let mut keys = vec![self.head(product), self.digest(product, head)];
        keys.extend(self.gate_slots(product, head));
        keys.extend((revocations_from..=head).map(|s| self.revoked(product, s)));
        keys
    }
}
