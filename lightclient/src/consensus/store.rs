//! The light-client store and the sync protocol (consensus-specs, altair/capella/deneb/electra
//! light-client sync), as functions of the store, the data, and the current slot passed in.

use super::bls::{CommitteeKeys, InvalidKey};
use super::spec::{ChainSpec, EXECUTION_PAYLOAD_GINDEX, Fork};
use super::ssz::{Root, hash_pair, is_valid_branch, merkleize};
use super::types::{Bootstrap, LightClientHeader, SyncCommittee, Update};

/// Why consensus data was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsensusError {
    #[error("bootstrap header root {actual} is not the trusted checkpoint {expected}")]
    CheckpointMismatch { expected: String, actual: String },
    #[error("header at slot {slot}: {reason}")]
    InvalidHeader { slot: u64, reason: &'static str },
    #[error("current sync committee proof does not verify")]
    InvalidCurrentCommitteeProof,
    #[error("next sync committee proof does not verify")]
    InvalidNextCommitteeProof,
    #[error("next sync committee differs from the one already known for this period")]
    NextCommitteeMismatch,
    #[error("finality proof does not verify")]
    InvalidFinalityProof,
    #[error("no sync committee members signed")]
    NoParticipants,
    #[error("sync committee bits cover {actual} members, the committee has {expected}")]
    BitsLength { expected: usize, actual: usize },
    #[error(
        "slots out of order: current {current}, signature {signature}, attested {attested}, finalized {finalized}"
    )]
    SlotOrder {
        current: u64,
        signature: u64,
        attested: u64,
        finalized: u64,
    },
    #[error(
        "signature period {signature_period} is not the store's period {store_period} (or the next, when known)"
    )]
    WrongPeriod {
        signature_period: u64,
        store_period: u64,
    },
    #[error("update is not relevant: attested slot {attested} is not newer than finalized slot {finalized}")]
    NotRelevant { attested: u64, finalized: u64 },
    #[error("sync committee signature does not verify ({participants} participants)")]
    InvalidSignature { participants: usize },
    #[error(transparent)]
    InvalidKey(#[from] InvalidKey),
    #[error(
        "header at slot {slot} is from fork {fork}, which this light client cannot verify (it knows forks up to \
         {newest}): update firmchain"
    )]
    UnsupportedFork { slot: u64, fork: Fork, newest: Fork },
    #[error(
        "next sync committee is unknown and the update's finalized period {update} is not the store's {store}"
    )]
    CannotApply { update: u64, store: u64 },
}

/// A committee as the store keeps it: its SSZ form (for roots and comparison) and its validated keys.
#[derive(Clone, Debug)]
pub struct Committee {
    pub ssz: SyncCommittee,
    pub keys: CommitteeKeys,
}

impl Committee {
    fn new(ssz: SyncCommittee) -> Result<Self, ConsensusError> {
        let keys = CommitteeKeys::new(&ssz.pubkeys)?;
        Ok(Committee { ssz, keys })
    }
}

/// A header attested by a supermajority (at least two thirds) of its sync committee, and how many signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attested {
    pub header: LightClientHeader,
    pub participants: usize,
    pub committee_size: usize,
}

/// `LightClientStore`, plus what the sync protocol does not keep but a device must: the newest header a
/// supermajority attested (installs are authorised by it or by the finalized header, never by the optimistic
/// header alone) and the newest header that only a minority signed (to say why nothing moved).
#[derive(Clone, Debug)]
pub struct Store {
    pub finalized_header: LightClientHeader,
    pub optimistic_header: LightClientHeader,
    pub current_sync_committee: Committee,
    pub next_sync_committee: Option<Committee>,
    pub best_valid_update: Option<Update>,
    pub previous_max_active_participants: usize,
    pub current_max_active_participants: usize,
    /// The newest header attested with a supermajority of the committee.
    pub supermajority_header: Option<Attested>,
    /// The newest update newer than every authorised header that had fewer than two thirds of signatures:
    /// (attested slot, participants, committee size).
    pub minority_seen: Option<(u64, usize, usize)>,
}

/// Whether `participants` of a committee of `size` are a supermajority (`participants × 3 ≥ size × 2`).
pub fn is_supermajority(participants: usize, size: usize) -> bool {
    participants * 3 >= size * 2
}

impl Store {
    /// The header that may authorise an install: the newest of the finalized header and the newest
    /// supermajority-attested header.
    pub fn authorised_header(&self) -> &LightClientHeader {
        match &self.supermajority_header {
            Some(a) if a.header.beacon.slot > self.finalized_header.beacon.slot => &a.header,
            _ => &self.finalized_header,
        }
    }
}

fn is_zero_branch(branch: &[Root]) -> bool {
    branch.iter().all(|n| n == &[0u8; 32])
}

/// Spec `is_valid_normalized_merkle_branch`: a branch may carry leading zero nodes up to the deepest gindex.
fn is_valid_normalized_branch(leaf: &Root, branch: &[Root], gindex: u64, root: &Root) -> bool {
    let depth = 63 - gindex.leading_zeros() as usize;
    if branch.len() < depth {
        return false;
    }
    let extra = branch.len() - depth;
    is_zero_branch(&branch[..extra]) && is_valid_branch(leaf, &branch[extra..], gindex, root)
}

/// Spec `is_valid_light_client_header` (Capella and later): the execution header is proven into the body.
pub fn validate_header(spec: &ChainSpec, header: &LightClientHeader) -> Result<(), ConsensusError> {
    let slot = header.beacon.slot;
    let fork = spec.fork_at(slot);
    if fork > Fork::NEWEST_SUPPORTED {
        return Err(ConsensusError::UnsupportedFork {
            slot,
            fork,
            newest: Fork::NEWEST_SUPPORTED,
        });
    }
    let invalid = |reason| Err(ConsensusError::InvalidHeader { slot, reason });
    let Some(execution) = &header.execution else {
        return if fork < Fork::Capella && header.execution_branch.is_empty() {
            Ok(())
        } else {
            invalid("missing execution payload header")
        };
    };
    if fork < Fork::Capella {
        return invalid("execution payload header before Capella");
    }
    if fork < Fork::Deneb
        && (execution.blob_gas_used.unwrap_or(0) != 0 || execution.excess_blob_gas.unwrap_or(0) != 0)
    {
        return invalid("blob gas before Deneb");
    }
    if fork >= Fork::Deneb && execution.blob_gas_used.is_none() {
        return invalid("Deneb header without blob gas fields");
    }
    if !is_valid_branch(
        &execution.hash_tree_root(),
        &header.execution_branch,
        EXECUTION_PAYLOAD_GINDEX,
        &header.beacon.body_root,
    ) {
        return invalid("execution payload header is not proven into the block body");
    }
    Ok(())
}

/// Spec `initialize_light_client_store`: trust `checkpoint` (a beacon block root) and its bootstrap.
pub fn bootstrap(
    spec: &ChainSpec,
    checkpoint: &Root,
    bootstrap: &Bootstrap,
) -> Result<Store, ConsensusError> {
    validate_header(spec, &bootstrap.header)?;
    let root = bootstrap.header.beacon.hash_tree_root();
    if &root != checkpoint {
        return Err(ConsensusError::CheckpointMismatch {
            expected: alloy::hex::encode_prefixed(checkpoint),
            actual: alloy::hex::encode_prefixed(root),
        });
    }
    let gindex = spec.current_committee_gindex(bootstrap.header.beacon.slot);
    let leaf = bootstrap.current_sync_committee.hash_tree_root();
    if !is_valid_normalized_branch(
        &leaf,
        &bootstrap.current_sync_committee_branch,
        gindex,
        &bootstrap.header.beacon.state_root,
    ) {
        return Err(ConsensusError::InvalidCurrentCommitteeProof);
    }
    Ok(Store {
        finalized_header: bootstrap.header.clone(),
        optimistic_header: bootstrap.header.clone(),
        current_sync_committee: Committee::new(bootstrap.current_sync_committee.clone())?,
        next_sync_committee: None,
        best_valid_update: None,
        previous_max_active_participants: 0,
        current_max_active_participants: 0,
        supermajority_header: None,
        minority_seen: None,
    })
}

fn has_next_committee(u: &Update) -> bool {
    u.next_sync_committee.is_some() && !is_zero_branch(&u.next_sync_committee_branch)
}

fn has_finality(u: &Update) -> bool {
    u.finalized_header.is_some() && !is_zero_branch(&u.finality_branch)
}

/// `DOMAIN_SYNC_COMMITTEE ++ fork_data_root[..28]`, then the signing root of `header_root`.
fn signing_root(spec: &ChainSpec, signature_slot: u64, header_root: &Root) -> Root {
    let version = spec.version_at(signature_slot.max(1) - 1);
    let mut v = [0u8; 32];
    v[..4].copy_from_slice(&version);
    let fork_data_root = hash_pair(&v, &spec.genesis_validators_root);
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&[7, 0, 0, 0]);
    domain[4..].copy_from_slice(&fork_data_root[..28]);
    merkleize(&[*header_root, domain], None)
}

/// Spec `validate_light_client_update`.
pub fn validate_update(
    spec: &ChainSpec,
    store: &Store,
    update: &Update,
    current_slot: u64,
) -> Result<(), ConsensusError> {
    validate_header(spec, &update.attested_header)?;
    let bits = update.sync_aggregate.sync_committee_bits.len() * 8;
    if bits != spec.sync_committee_size {
        return Err(ConsensusError::BitsLength {
            expected: spec.sync_committee_size,
            actual: bits,
        });
    }
    let participants = update.sync_aggregate.participants();
    if participants == 0 {
        return Err(ConsensusError::NoParticipants);
    }
    let attested = update.attested_header.beacon.slot;
    let finalized = update.finalized_slot();
    if !(current_slot >= update.signature_slot && update.signature_slot > attested && attested >= finalized) {
        return Err(ConsensusError::SlotOrder {
            current: current_slot,
            signature: update.signature_slot,
            attested,
            finalized,
        });
    }
    let signing_slot = update.signature_slot.max(1) - 1;
    let signing_fork = spec.fork_at(signing_slot);
    if signing_fork > Fork::NEWEST_SUPPORTED {
        return Err(ConsensusError::UnsupportedFork {
            slot: update.signature_slot,
            fork: signing_fork,
            newest: Fork::NEWEST_SUPPORTED,
        });
    }
    let store_period = spec.period(store.finalized_header.beacon.slot);
    let signature_period = spec.period(update.signature_slot);
    let next_known = store.next_sync_committee.is_some();
    let period_ok = signature_period == store_period || (next_known && signature_period == store_period + 1);
    if !period_ok {
        return Err(ConsensusError::WrongPeriod {
            signature_period,
            store_period,
        });
    }
    let attested_period = spec.period(attested);
    let supplies_next = !next_known && has_next_committee(update) && attested_period == store_period;
    if !(attested > store.finalized_header.beacon.slot || supplies_next) {
        return Err(ConsensusError::NotRelevant {
            attested,
            finalized: store.finalized_header.beacon.slot,
        });
    }
    if has_finality(update) {
        let root = match &update.finalized_header {
            Some(h) if h.beacon.slot != 0 => {
                validate_header(spec, h)?;
                h.beacon.hash_tree_root()
            }
            _ => [0u8; 32],
        };
        let gindex = spec.finalized_root_gindex(attested);
        if !is_valid_normalized_branch(
            &root,
            &update.finality_branch,
            gindex,
            &update.attested_header.beacon.state_root,
        ) {
            return Err(ConsensusError::InvalidFinalityProof);
        }
    }
    if let (true, Some(next)) = (has_next_committee(update), &update.next_sync_committee) {
        let known = store
            .next_sync_committee
            .as_ref()
            .filter(|_| attested_period == store_period);
        if known.is_some_and(|k| &k.ssz != next) {
            return Err(ConsensusError::NextCommitteeMismatch);
        }
        let gindex = spec.next_committee_gindex(attested);
        if !is_valid_normalized_branch(
            &next.hash_tree_root(),
            &update.next_sync_committee_branch,
            gindex,
            &update.attested_header.beacon.state_root,
        ) {
            return Err(ConsensusError::InvalidNextCommitteeProof);
        }
    }
    let committee = if signature_period == store_period {
        &store.current_sync_committee
    } else {
        store
            .next_sync_committee
            .as_ref()
            .ok_or(ConsensusError::WrongPeriod {
                signature_period,
                store_period,
            })?
    };
    let message = signing_root(
        spec,
        update.signature_slot,
        &update.attested_header.beacon.hash_tree_root(),
    );
    let agg = &update.sync_aggregate;
    if !committee
        .keys
        .fast_aggregate_verify(|i| agg.bit(i), &message, &agg.sync_committee_signature)
    {
        return Err(ConsensusError::InvalidSignature { participants });
    }
    Ok(())
}

/// Spec `is_better_update`.
pub fn is_better_update(spec: &ChainSpec, new: &Update, old: &Update) -> bool {
    let max = new.sync_aggregate.sync_committee_bits.len() * 8;
    let (n, o) = (
        new.sync_aggregate.participants(),
        old.sync_aggregate.participants(),
    );
    let (n_super, o_super) = (n * 3 >= max * 2, o * 3 >= max * 2);
    if n_super != o_super {
        return n_super;
    }
    if !n_super && n != o {
        return n > o;
    }
    let relevant = |u: &Update| {
        has_next_committee(u) && spec.period(u.attested_header.beacon.slot) == spec.period(u.signature_slot)
    };
    if relevant(new) != relevant(old) {
        return relevant(new);
    }
    if has_finality(new) != has_finality(old) {
        return has_finality(new);
    }
    if has_finality(new) {
        let committee_final =
            |u: &Update| spec.period(u.finalized_slot()) == spec.period(u.attested_header.beacon.slot);
        if committee_final(new) != committee_final(old) {
            return committee_final(new);
        }
    }
    if n != o {
        return n > o;
    }
    if new.attested_header.beacon.slot != old.attested_header.beacon.slot {
        return new.attested_header.beacon.slot < old.attested_header.beacon.slot;
    }
    new.signature_slot < old.signature_slot
}

/// Spec `apply_light_client_update`.
fn apply_update(spec: &ChainSpec, store: &mut Store, update: &Update) -> Result<(), ConsensusError> {
    let store_period = spec.period(store.finalized_header.beacon.slot);
    let finalized_period = spec.period(update.finalized_slot());
    let next = if has_next_committee(update) {
        update.next_sync_committee.clone()
    } else {
        None
    };
    match &store.next_sync_committee {
        None => {
            if finalized_period != store_period {
                return Err(ConsensusError::CannotApply {
                    update: finalized_period,
                    store: store_period,
                });
            }
            store.next_sync_committee = next.map(Committee::new).transpose()?;
        }
        Some(known) if finalized_period == store_period + 1 => {
            store.current_sync_committee = known.clone();
            store.next_sync_committee = next.map(Committee::new).transpose()?;
            store.previous_max_active_participants = store.current_max_active_participants;
            store.current_max_active_participants = 0;
        }
        Some(_) => {}
    }
    if let Some(finalized) = update
        .finalized_header
        .as_ref()
        .filter(|h| h.beacon.slot > store.finalized_header.beacon.slot)
    {
        store.finalized_header = finalized.clone();
        if store.finalized_header.beacon.slot > store.optimistic_header.beacon.slot {
            store.optimistic_header = store.finalized_header.clone();
        }
    }
    Ok(())
}

/// Spec `process_light_client_update` (also used for finality and optimistic updates).
pub fn process_update(
    spec: &ChainSpec,
    store: &mut Store,
    update: &Update,
    current_slot: u64,
) -> Result<(), ConsensusError> {
    validate_update(spec, store, update, current_slot)?;
    let participants = update.sync_aggregate.participants();
    if store
        .best_valid_update
        .as_ref()
        .is_none_or(|best| is_better_update(spec, update, best))
    {
        store.best_valid_update = Some(update.clone());
    }
    store.current_max_active_participants = store.current_max_active_participants.max(participants);
    let safety_threshold = store
        .previous_max_active_participants
        .max(store.current_max_active_participants)
        / 2;
    if participants > safety_threshold
        && update.attested_header.beacon.slot > store.optimistic_header.beacon.slot
    {
        store.optimistic_header = update.attested_header.clone();
    }
    let finalizes_next_committee = store.next_sync_committee.is_none()
        && has_next_committee(update)
        && has_finality(update)
        && spec.period(update.finalized_slot()) == spec.period(update.attested_header.beacon.slot);
    let size = update.sync_aggregate.sync_committee_bits.len() * 8;
    let supermajority = is_supermajority(participants, size);
    let attested = update.attested_header.beacon.slot;
    let authorised = store.authorised_header().beacon.slot;
    if supermajority && attested > authorised {
        store.supermajority_header = Some(Attested {
            header: update.attested_header.clone(),
            participants,
            committee_size: size,
        });
    } else if !supermajority && attested > authorised {
        store.minority_seen = Some((attested, participants, size));
    }
    if supermajority
        && (update.finalized_slot() > store.finalized_header.beacon.slot || finalizes_next_committee)
    {
        apply_update(spec, store, update)?;
        store.best_valid_update = None;
    }
    if store
        .minority_seen
        .is_some_and(|(slot, _, _)| slot <= store.authorised_header().beacon.slot)
    {
        store.minority_seen = None;
    }
    Ok(())
}

/// Spec `process_light_client_store_force_update`: after a period without finality, apply the best update
/// seen, treating its attested header as finalized if need be.
pub fn force_update(spec: &ChainSpec, store: &mut Store, current_slot: u64) -> Result<(), ConsensusError> {
    if current_slot <= store.finalized_header.beacon.slot + spec.slots_per_period() {
        return Ok(());
    }
    let Some(mut best) = store.best_valid_update.take() else {
        return Ok(());
    };
    if best.finalized_slot() <= store.finalized_header.beacon.slot {
        best.finalized_header = Some(best.attested_header.clone());
    }
    apply_update(spec, store, &best)
}
