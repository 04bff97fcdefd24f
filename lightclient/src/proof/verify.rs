//! Verification of committee chains, release proofs and head proofs, as pure functions of the device's
//! light-client store, the proof, what the device expects (contract, product) and the current slot.
//!
//! Cheap checks come first (product, contract, slot counts, replay), then the sync-committee signature
//! (the light client's own `validate_update`), then the trie proofs (`execution::verify_storage_values`).

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::rpc::types::{EIP1186AccountProofResponse, EIP1186StorageProof};

use super::layout::{HEAD_FIXED_SLOTS, IndexLayout, ProvenGate, RELEASE_SLOTS};
use super::{CommitteeChain, HeadProof, MAX_REVOCATIONS, ProofError, ReleaseProof, StateProof};
use crate::consensus::ssz::Root;
use crate::consensus::{
    ChainSpec, ConsensusError, LightClientHeader, Store, Update, bootstrap, process_update, validate_update,
};
use crate::execution::verify_storage_values;

/// The share of the sync committee that must sign a header before it may authorise anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Participation {
    pub numerator: usize,
    pub denominator: usize,
}

/// A supermajority: at least two thirds of the committee (`participants × 3 ≥ size × 2`).
pub const TWO_THIRDS: Participation = Participation {
    numerator: 2,
    denominator: 3,
};

impl Participation {
    /// The fewest signers of a committee of `size` that meet this share.
    pub fn required(&self, size: usize) -> usize {
        (size * self.numerator).div_ceil(self.denominator.max(1))
    }
}

/// What the device expects a proof to be about, and the time it verifies at.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub spec: &'a ChainSpec,
    /// The configured index contract.
    pub contract: Address,
    pub layout: IndexLayout,
    /// The device's product.
    pub product: B256,
    /// The current slot (from the device clock); signatures from later slots are refused.
    pub current_slot: u64,
    /// The share of the committee that must have signed ([`TWO_THIRDS`]).
    pub participation: Participation,
}

/// The verified header a proof's state hangs from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Its beacon slot.
    pub slot: u64,
    pub beacon_root: Root,
    /// The execution block and its state root, proven into the beacon block.
    pub block_number: u64,
    pub block_hash: B256,
    pub state_root: B256,
    /// The execution block's timestamp: the chain time of the proof (for rollouts, delays, expiry).
    pub timestamp: u64,
    /// How many committee members signed.
    pub participants: usize,
}

impl Anchor {
    /// Seconds since the anchor's slot began (its age as evidence of freshness).
    pub fn age(&self, spec: &ChainSpec, now_unix: u64) -> u64 {
        now_unix.saturating_sub(spec.time_of(self.slot))
    }

    /// What a later head proof must be newer than.
    pub fn mark(&self) -> HeadMark {
        HeadMark {
            slot: self.slot,
            block_number: self.block_number,
        }
    }
}

/// The position of the last accepted head proof, kept by the device (persist it) to refuse replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeadMark {
    pub slot: u64,
    pub block_number: u64,
}

/// A release whose record, digest and flags were proven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRelease {
    pub anchor: Anchor,
    pub product: B256,
    pub sequence: u64,
    /// `head[product]` at the anchor (at least `sequence`).
    pub head: u64,
    pub digest: B256,
    /// `revoked[product][sequence]` at the anchor.
    pub revoked: bool,
    /// The record bytes (`abi.encode(record)`), hashing to `digest`.
    pub record: Vec<u8>,
    /// The release's rollout gate at the anchor.
    pub gate: ProvenGate,
}

/// A product's head and revocation flags, proven at a header newer than the last accepted one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHead {
    pub anchor: Anchor,
    pub product: B256,
    /// `head[product]` (0: nothing published yet).
    pub head: u64,
    /// `digest[product][head]` (zero when `head` is 0).
    pub digest: B256,
    /// `(sequence, revoked)` for each sequence of the window, in order.
    pub revoked: Vec<(u64, bool)>,
    /// The head release's rollout gate at the anchor (all zeros when `head` is 0).
    pub gate: ProvenGate,
}

/// The header whose execution state a proof uses: the finalized header of a finality update (it must come
/// with its finality branch), otherwise the attested header.
fn anchor_header(update: &Update) -> Result<&LightClientHeader, ProofError> {
    let header = match &update.finalized_header {
        Some(f) => {
            let proven = f.beacon.slot != 0 && update.finality_branch.iter().any(|n| n != &[0u8; 32]);
            if !proven {
                return Err(ProofError::FinalityNotProven { slot: f.beacon.slot });
            }
            f
        }
        None => &update.attested_header,
    };
    if header.execution.is_none() {
        return Err(ProofError::NoExecutionPayload {
            slot: header.beacon.slot,
        });
    }
    Ok(header)
}

/// Check that `update` is signed by at least `participation` of the sync committee the store knows for its
/// signature period, with every header and branch valid; returns the anchor. Whether the update would
/// advance the store (the sync protocol's relevance rule) does not matter here: an older header of the
/// store's period is as well signed as a newer one.
pub fn verify_signed_header(
    spec: &ChainSpec,
    store: &Store,
    update: &Update,
    current_slot: u64,
    participation: Participation,
) -> Result<Anchor, ProofError> {
    let header = anchor_header(update)?;
    let committee = spec.sync_committee_size;
    let bits = update.sync_aggregate.sync_committee_bits.len() * 8;
    if bits != committee {
        return Err(ConsensusError::BitsLength {
            expected: committee,
            actual: bits,
        }
        .into());
    }
    let participants = update.sync_aggregate.participants();
    let required = participation.required(committee);
    if participants < required {
        return Err(ProofError::Participation {
            participants,
            committee,
            required,
        });
    }
    // The store as of the start of its period: same committees and period, so `validate_update` checks the
    // headers, branches, slots and signature exactly as for sync, without the relevance rule.
    let mut view = store.clone();
    view.best_valid_update = None;
    view.finalized_header.beacon.slot =
        spec.period(store.finalized_header.beacon.slot) * spec.slots_per_period();
    validate_update(spec, &view, update, current_slot)?;
    let execution = header.execution.as_ref().ok_or(ProofError::NoExecutionPayload {
        slot: header.beacon.slot,
    })?;
    Ok(Anchor {
        slot: header.beacon.slot,
        beacon_root: header.beacon.hash_tree_root(),
        block_number: execution.block_number,
        block_hash: B256::from(execution.block_hash),
        state_root: B256::from(execution.state_root),
        timestamp: execution.timestamp,
        participants,
    })
}

fn check_subject(expected: &Expected<'_>, product: B256, state: &StateProof) -> Result<(), ProofError> {
    if product != expected.product {
        return Err(ProofError::WrongProduct {
            expected: expected.product,
            actual: product,
        });
    }
    if state.contract != expected.contract {
        return Err(ProofError::WrongContract {
            expected: expected.contract,
            actual: state.contract,
        });
    }
    Ok(())
}

/// Verify the account and storage proofs of `state` at `keys` against the anchor's state root.
fn verify_state(anchor: &Anchor, state: &StateProof, keys: &[B256]) -> Result<Vec<U256>, ProofError> {
    if state.storage.len() != keys.len() {
        return Err(ProofError::SlotCount {
            expected: keys.len(),
            actual: state.storage.len(),
        });
    }
    let response = EIP1186AccountProofResponse {
        address: state.contract,
        balance: state.balance,
        code_hash: state.code_hash,
        nonce: state.nonce,
        storage_hash: state.storage_root,
        account_proof: state.account_proof.clone(),
        storage_proof: keys
            .iter()
            .zip(&state.storage)
            .map(|(key, (value, proof))| EIP1186StorageProof {
                key: (*key).into(),
                value: *value,
                proof: proof.clone(),
            })
            .collect(),
    };
    Ok(verify_storage_values(
        anchor.state_root,
        state.contract,
        keys,
        &response,
    )?)
}

fn sequence_value(value: U256, what: &'static str) -> Result<u64, ProofError> {
    u64::try_from(value).map_err(|_| ProofError::NonCanonical { what })
}

/// Verify a release proof against the device's store: signed by a supermajority, for the configured
/// contract and product, every proof valid, and the record hashing to the proven digest.
pub fn verify_release_proof(
    store: &Store,
    proof: &ReleaseProof,
    expected: &Expected<'_>,
) -> Result<VerifiedRelease, ProofError> {
    check_subject(expected, proof.product, &proof.state)?;
    if proof.state.storage.len() != RELEASE_SLOTS {
        return Err(ProofError::SlotCount {
            expected: RELEASE_SLOTS,
            actual: proof.state.storage.len(),
        });
    }
    let anchor = verify_signed_header(
        expected.spec,
        store,
        &proof.header,
        expected.current_slot,
        expected.participation,
    )?;
    let keys = expected.layout.release_slots(proof.product, proof.sequence);
    let values = verify_state(&anchor, &proof.state, &keys)?;
    let head = sequence_value(values[0], "head[product] exceeds 64 bits")?;
    let digest = B256::from(values[1]);
    if proof.sequence == 0 || proof.sequence > head || digest.is_zero() {
        return Err(ProofError::NoSuchRelease {
            sequence: proof.sequence,
            head,
        });
    }
    let actual = keccak256(&proof.record);
    if actual != digest {
        return Err(ProofError::RecordDigest {
            expected: digest,
            actual,
        });
    }
    Ok(VerifiedRelease {
        anchor,
        product: proof.product,
        sequence: proof.sequence,
        head,
        digest,
        revoked: !values[2].is_zero(),
        record: proof.record.clone(),
        gate: ProvenGate::from_values(values[3], values[4], values[5]),
    })
}

/// The revocation window of a head proof: `from..=head`, `from` at least 1, at most [`MAX_REVOCATIONS`].
fn check_window(from: u64, head: u64) -> Result<(), ProofError> {
    let ok = from >= 1
        && from <= head.saturating_add(1)
        && head.saturating_add(1) - from <= MAX_REVOCATIONS as u64;
    if !ok {
        return Err(ProofError::RevocationWindow {
            from,
            head,
            max: MAX_REVOCATIONS,
        });
    }
    Ok(())
}

/// Verify a head proof against the device's store; it must be anchored at a slot after `last` (the mark of
/// the last head proof the device accepted), so an old head proof cannot be replayed as new.
pub fn verify_head_proof(
    store: &Store,
    proof: &HeadProof,
    expected: &Expected<'_>,
    last: Option<HeadMark>,
) -> Result<VerifiedHead, ProofError> {
    check_subject(expected, proof.product, &proof.state)?;
    let claimed = anchor_header(&proof.header)?;
    if let Some(last) = last.filter(|l| claimed.beacon.slot <= l.slot) {
        return Err(ProofError::NotNewer {
            slot: claimed.beacon.slot,
            block: claimed.execution.as_ref().map_or(0, |e| e.block_number),
            last_slot: last.slot,
            last_block: last.block_number,
        });
    }
    let (claimed_head, _) = proof.state.storage.first().ok_or(ProofError::SlotCount {
        expected: HEAD_FIXED_SLOTS,
        actual: 0,
    })?;
    let head = sequence_value(*claimed_head, "head[product] exceeds 64 bits")?;
    check_window(proof.revocations_from, head)?;
    let keys = expected
        .layout
        .head_slots(proof.product, head, proof.revocations_from);
    if proof.state.storage.len() != keys.len() {
        return Err(ProofError::SlotCount {
            expected: keys.len(),
            actual: proof.state.storage.len(),
        });
    }
    let anchor = verify_signed_header(
        expected.spec,
        store,
        &proof.header,
        expected.current_slot,
        expected.participation,
    )?;
    let values = verify_state(&anchor, &proof.state, &keys)?;
    let revoked = (proof.revocations_from..=head)
        .zip(&values[HEAD_FIXED_SLOTS..])
        .map(|(s, v)| (s, !v.is_zero()))
        .collect();
    Ok(VerifiedHead {
        anchor,
        product: proof.product,
        head,
        digest: B256::from(values[1]),
        revoked,
        gate: ProvenGate::from_values(values[2], values[3], values[4]),
    })
}

/// Apply a chain's updates to `store`, in order: all of them or, if one fails, none. Updates the store
/// already covers (an older period, nothing newer) are skipped. Returns how many were applied or kept.
pub fn advance_store(
    spec: &ChainSpec,
    store: &mut Store,
    updates: &[Update],
    current_slot: u64,
) -> Result<usize, ProofError> {
    let mut next = store.clone();
    let mut used = 0;
    for (i, u) in updates.iter().enumerate() {
        match process_update(spec, &mut next, u, current_slot) {
            Ok(()) => used += 1,
            Err(ConsensusError::NotRelevant { .. }) => {}
            Err(ConsensusError::WrongPeriod {
                signature_period,
                store_period,
            }) if signature_period < store_period => {}
            Err(source) => {
                return Err(ProofError::ChainUpdate {
                    index: i,
                    slot: u.attested_header.beacon.slot,
                    source,
                });
            }
        }
    }
    *store = next;
    Ok(used)
}

/// Start a store from a trusted checkpoint (a beacon block root) and the chain's bootstrap, then apply the
/// chain's updates.
pub fn store_from_checkpoint(
    spec: &ChainSpec,
    checkpoint: &Root,
    chain: &CommitteeChain,
    current_slot: u64,
) -> Result<Store, ProofError> {
    let boot = chain.bootstrap.as_ref().ok_or(ProofError::NoBootstrap)?;
    let mut store = bootstrap(spec, checkpoint, boot).map_err(ProofError::Bootstrap)?;
    advance_store(spec, &mut store, &chain.updates, current_slot)?;
    Ok(store)
}
