//! Where the index contract keeps what a proof proves: the base slots of its three mappings, and the
//! Solidity rule that turns a product and a sequence into a storage key. The verifier derives every key
//! itself, so a proof cannot pass off another product's or another sequence's slot.
//!
//! The base slots are the contract's (`firmchain-contracts`' `slots` module, checked there against the
//! compiled artifact); the node passes them in, and a test in `tests/` checks that both give the same keys.

use alloy::primitives::{B256, U256, keccak256};

/// The base slots of `head`, `digest` and `revoked` in the index contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexLayout {
    /// `mapping(bytes32 => uint64) head`.
    pub head: u64,
    /// `mapping(bytes32 => mapping(uint64 => bytes32)) digest`.
    pub digest: u64,
    /// `mapping(bytes32 => mapping(uint64 => bool)) revoked`.
    pub revoked: u64,
}

/// The layout of `FirmwareIndex.sol` as of this encoding version.
pub const FIRMWARE_INDEX: IndexLayout = IndexLayout {
    head: 7,
    digest: 8,
    revoked: 9,
};

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

    /// The keys a release proof proves, in its order.
    pub fn release_slots(&self, product: B256, sequence: u64) -> [B256; 3] {
        [
            self.head(product),
            self.digest(product, sequence),
            self.revoked(product, sequence),
        ]
    }

    /// The keys a head proof proves, in its order: head, digest of the head, then the revocation window.
    pub fn head_slots(&self, product: B256, head: u64, revocations_from: u64) -> Vec<B256> {
        let mut keys = vec![self.head(product), self.digest(product, head)];
        keys.extend((revocations_from..=head).map(|s| self.revoked(product, s)));
        keys
    }
}
