//! FirmwareIndex: the on-chain release index, its compiled artifact and Rust bindings.
//!
//! - [`FirmwareIndex`]: alloy bindings generated from the committed artifact (`artifacts/FirmwareIndex.json`,
//!   rebuilt and checked against the source by `contracts/tools/build.mjs --check`).
//! - [`slots`]: the storage slots of `head[product]`, `digest[product][sequence]`,
//!   `revoked[product][sequence]`, `timing[product][sequence]` and `pausedUntil[product][sequence]`, for
//!   `eth_getProof`.
//! - [`proven::read_head`]: a product's head, digest and revocation proven against a verified state root;
//!   [`proven_rollout::read_gates`]: the rollout state (go-live time, delay, pauses) of releases, proven.
//! - [`IndexClient`]: deploy, publish, approve, revoke, read, manage publishers and guardians, pause, resume,
//!   cancel, set delays; reverts come back as [`ContractError::Revert`] naming the rule that refused the call.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod client;
pub mod events;
pub mod proven;
pub mod proven_rollout;
mod rollout_client;
pub mod slots;

pub use client::{ContractError, DEFAULT_TIMEOUT, IndexClient, Published, PublisherChange, Revert, provider};
pub use rollout_client::{Approval, RolloutState};

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    FirmwareIndex,
    "artifacts/FirmwareIndex.json"
);

use alloy::primitives::{Bytes, FixedBytes};
use firmchain_update::record::{HardwareClass, ReleaseTerms, RolloutSchedule};
use firmchain_update::{Blake3Hash, ProductId, ReleaseKind, ReleaseRecord, Sequence};

/// The committed artifact (ABI, bytecode, storage layout).
pub const ARTIFACT: &str = include_str!("../artifacts/FirmwareIndex.json");

impl From<&ReleaseRecord> for FirmwareIndex::Release {
    fn from(r: &ReleaseRecord) -> Self {
        FirmwareIndex::Release {
            product: FixedBytes(r.product.0),
            sequence: r.sequence.0,
            baseHash: FixedBytes(r.base_hash.0),
            targetHash: FixedBytes(r.target_hash.0),
            targetSize: r.target_size,
            patchCid: Bytes::copy_from_slice(&r.patch_cid),
            patchHash: FixedBytes(r.patch_hash.0),
            patchSize: r.patch_size,
            kind: r.kind as u8,
            minSequence: r.min_sequence,
            terms: FirmwareIndex::Terms {
                hardware: r.terms.hardware.iter().map(|c| FixedBytes(c.0)).collect(),
                notAfter: r.terms.not_after,
                rolloutStart: r.terms.rollout.start_bps,
                rolloutStep: r.terms.rollout.step_bps,
                rolloutInterval: r.terms.rollout.interval_secs,
                notesCid: Bytes::copy_from_slice(&r.terms.notes_cid),
            },
        }
    }
}

/// A release from the chain whose `kind` is not one the record format knows.
#[derive(Debug, thiserror::Error)]
#[error("release kind {0} is unknown")]
pub struct UnknownKind(pub u8);

impl TryFrom<&FirmwareIndex::Release> for ReleaseRecord {
    type Error = UnknownKind;

    fn try_from(r: &FirmwareIndex::Release) -> Result<Self, UnknownKind> {
        Ok(ReleaseRecord {
            product: ProductId(r.product.0),
            sequence: Sequence(r.sequence),
            base_hash: Blake3Hash(r.baseHash.0),
            target_hash: Blake3Hash(r.targetHash.0),
            target_size: r.targetSize,
            patch_cid: r.patchCid.to_vec(),
            patch_hash: Blake3Hash(r.patchHash.0),
            patch_size: r.patchSize,
            kind: match r.kind {
                0 => ReleaseKind::Patch,
                1 => ReleaseKind::Full,
                k => return Err(UnknownKind(k)),
            },
            min_sequence: r.minSequence,
            terms: Box::new(ReleaseTerms {
                hardware: r.terms.hardware.iter().map(|c| HardwareClass(c.0)).collect(),
                not_after: r.terms.notAfter,
                rollout: RolloutSchedule {
                    start_bps: r.terms.rolloutStart,
                    step_bps: r.terms.rolloutStep,
                    interval_secs: r.terms.rolloutInterval,
                },
                notes_cid: r.terms.notesCid.to_vec(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolValue;

    fn sample() -> ReleaseRecord {
        ReleaseRecord {
            product: "acme-sensor".parse().unwrap(),
            sequence: Sequence(2),
            base_hash: Blake3Hash::of(b"image-1"),
            target_hash: Blake3Hash::of(b"image-2"),
            target_size: 4096,
            patch_cid: vec![1, 0x55, 0x12, 0x20, 7, 7],
            patch_hash: Blake3Hash::of(b"patch"),
            patch_size: 300,
            kind: ReleaseKind::Patch,
            min_sequence: 1,
            terms: Box::new(ReleaseTerms {
                hardware: vec!["rev-a".parse().unwrap(), "rev-b".parse().unwrap()],
                not_after: 1_900_000_000,
                rollout: "10%,+20%/1h".parse().unwrap(),
                notes_cid: vec![1, 0x55, 0x12, 0x20, 9],
            }),
        }
    }

    #[test]
    fn alloy_encoding_equals_ours() {
        let ours = sample();
        let theirs = FirmwareIndex::Release::from(&ours);
        assert_eq!(theirs.abi_encode(), ours.abi_encode());
        assert_eq!(ReleaseRecord::try_from(&theirs).unwrap(), ours);
    }
}
