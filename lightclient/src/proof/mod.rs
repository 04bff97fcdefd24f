//! Proofs as content: everything a device verifies about a release, packed so that any peer can relay it
//! and none can forge it.
//!
//! - A [`CommitteeChain`] carries a device from its checkpoint to the current sync committee (a bootstrap and
//!   one light-client update per period).
//! - A [`ReleaseProof`] proves one release: a header signed by a supermajority of the current sync committee,
//!   the execution payload header proven into it, the index contract's account proof and the storage proofs
//!   of `head[product]`, `digest[product][seq]`, `revoked[product][seq]` and the release's rollout gate
//!   (`pausedUntil[product][0]`, `timing[product][seq]`, `pausedUntil[product][seq]`), and the release record,
//!   which must hash to the proven digest.
//! - A [`HeadProof`] proves the newest `head[product]`, its digest and the revocation flags of a window of
//!   sequences and the head's rollout gate at a newer header; a device accepts only head proofs newer than the last it accepted.
//!
//! The encoding (magic, version, caps, canonical form) is described in `FORMAT.md` next to this file;
//! verification ([`verify`]) reuses the light client's consensus and execution checks; [`build`] makes proofs
//! from what a node with chain access has already verified.

pub mod build;
mod codec;
pub mod layout;
pub mod verify;
pub mod wire;

use alloy::primitives::{Address, B256, Bytes, U256};

use crate::consensus::{Bootstrap, ConsensusError, Update};
use crate::execution::ExecutionError;
pub use build::{BuildError, build_committee_chain, build_head_proof, build_release_proof};
pub use layout::{IndexLayout, ProvenGate};
pub use verify::{
    Anchor, Expected, HeadMark, Participation, TWO_THIRDS, VerifiedHead, VerifiedRelease, advance_store,
    store_from_checkpoint, verify_head_proof, verify_release_proof,
};
use wire::{Kind, Reader, Writer};

/// Largest encoded committee chain: a bootstrap and [`MAX_CHAIN_UPDATES`] mainnet updates (about 27 KB each)
/// fit with room to spare.
pub const MAX_COMMITTEE_CHAIN_BYTES: usize = 1 << 20;
/// Largest encoded release or head proof.
pub const MAX_PROOF_BYTES: usize = 128 << 10;
/// Most updates in one committee chain (periods of lag one message covers).
pub const MAX_CHAIN_UPDATES: usize = 32;
/// Most sync-committee members (mainnet: 512).
pub const MAX_COMMITTEE: usize = 512;
/// Most nodes of a Merkle branch (the deepest light-client gindex has depth 7).
pub const MAX_BRANCH: usize = 8;
/// Most distinct trie nodes in one state proof.
pub const MAX_NODES: usize = 512;
/// Most bytes of one trie node (a full branch node is 532 bytes).
pub const MAX_NODE_BYTES: usize = 1024;
/// Most nodes on one trie path (a key has 64 nibbles).
pub const MAX_PATH: usize = 65;
/// Most storage slots in one state proof.
pub const MAX_SLOTS: usize = layout::HEAD_FIXED_SLOTS + MAX_REVOCATIONS;
/// Most revocation flags in one head proof.
pub const MAX_REVOCATIONS: usize = 64;
/// Most bytes of a release record.
pub const MAX_RECORD_BYTES: usize = 8 << 10;

/// Why a proof message was refused: what failed, with the offending values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    // Decoding.
    #[error("{what} is {len} bytes, the limit is {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("not a firmchain proof: magic {found:02x?}")]
    BadMagic { found: [u8; 4] },
    #[error("proof encoding version {found} is not supported (this node reads version {supported})")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("message kind {found}, expected {expected}")]
    WrongKind { expected: u8, found: u8 },
    #[error("truncated at byte {offset}, reading {field}")]
    Truncated { field: &'static str, offset: usize },
    #[error("{field} at byte {offset} is {value}, expected 0 or 1")]
    BadFlag {
        field: &'static str,
        offset: usize,
        value: u8,
    },
    #[error("{field}: {count} items, the limit is {max}")]
    FieldTooLarge {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{} trailing bytes after the last field (at byte {offset})", len - offset)]
    TrailingBytes { offset: usize, len: usize },
    #[error("trie node index {index} is out of the table of {nodes} nodes")]
    BadNodeIndex { index: usize, nodes: usize },
    #[error("not in canonical form: {what}")]
    NonCanonical { what: &'static str },

    // Consensus.
    #[error("header signed by {participants} of {committee} sync committee members, {required} are required")]
    Participation {
        participants: usize,
        committee: usize,
        required: usize,
    },
    #[error("signed header: {0}")]
    Consensus(#[from] ConsensusError),
    #[error("the finalized header at slot {slot} is not proven by a finality branch")]
    FinalityNotProven { slot: u64 },
    #[error("the anchoring header at slot {slot} has no execution payload header")]
    NoExecutionPayload { slot: u64 },
    #[error("committee chain has no bootstrap for the checkpoint")]
    NoBootstrap,
    #[error("committee chain bootstrap: {0}")]
    Bootstrap(ConsensusError),
    #[error("committee chain update {index} (attested slot {slot}): {source}")]
    ChainUpdate {
        index: usize,
        slot: u64,
        source: ConsensusError,
    },

    // Execution state.
    #[error("proof is for contract {actual}, this device follows {expected}")]
    WrongContract { expected: Address, actual: Address },
    #[error("proof is for product {actual}, this device runs {expected}")]
    WrongProduct { expected: B256, actual: B256 },
    #[error("proof has {actual} storage proofs, {expected} expected")]
    SlotCount { expected: usize, actual: usize },
    #[error("state proof: {0}")]
    State(#[from] ExecutionError),
    #[error("sequence {sequence} is not in the index (head is {head})")]
    NoSuchRelease { sequence: u64, head: u64 },
    #[error("the release record hashes to {actual}, the proven digest is {expected}")]
    RecordDigest { expected: B256, actual: B256 },
    #[error("revocation window starts at {from}, the head is {head} (at most {max} flags, from sequence 1)")]
    RevocationWindow { from: u64, head: u64, max: usize },
    #[error(
        "head proof at slot {slot} (block {block}) is not newer than the last accepted, slot {last_slot} \
         (block {last_block})"
    )]
    NotNewer {
        slot: u64,
        block: u64,
        last_slot: u64,
        last_block: u64,
    },
}

impl ProofError {
    /// Whether an honest peer could have sent this: a proof that is merely old (a head proof not newer than
    /// the last accepted, an update of a past period) or signed in a period the receiver has no committee for
    /// yet (it needs a committee chain first), or a signature slot ahead of the receiver's clock. Everything
    /// else is garbage or a forgery, and the sender is to blame.
    pub fn is_benign(&self) -> bool {
        matches!(
            self,
            ProofError::NotNewer { .. }
                | ProofError::Consensus(
                    ConsensusError::WrongPeriod { .. }
                        | ConsensusError::SlotOrder { .. }
                        | ConsensusError::NotRelevant { .. }
                )
        )
    }
}

/// The index contract's account and some of its storage, proven against an execution state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateProof {
    /// The contract the proofs are for.
    pub contract: Address,
    pub nonce: u64,
    pub balance: U256,
    pub storage_root: B256,
    pub code_hash: B256,
    /// Trie nodes from the state root to the account.
    pub account_proof: Vec<Bytes>,
    /// (value, trie nodes from the storage root) of each slot, in the order the proof kind defines; the slot
    /// keys are not carried: the verifier derives them from the product and sequences.
    pub storage: Vec<(U256, Vec<Bytes>)>,
}

/// A sync-committee chain: from a checkpoint (its bootstrap, if the receiver has no store yet) through one
/// update per period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitteeChain {
    pub bootstrap: Option<Bootstrap>,
    pub updates: Vec<Update>,
}

/// Everything that proves one release of one product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseProof {
    /// A header signed by a supermajority of the sync committee: the finalized header anchors the state if
    /// the update has one (a finality update), else the attested header.
    pub header: Update,
    pub product: B256,
    pub sequence: u64,
    /// Storage proofs of `head[product]`, `digest[product][sequence]`, `revoked[product][sequence]`, then the
    /// release's rollout gate: `pausedUntil[product][0]`, `timing[product][sequence]`,
    /// `pausedUntil[product][sequence]`.
    pub state: StateProof,
    /// The release record (`abi.encode(record)`), whose keccak is the proven digest.
    pub record: Vec<u8>,
}

/// The newest head of one product and the revocation flags of a window of sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadProof {
    /// As in [`ReleaseProof::header`].
    pub header: Update,
    pub product: B256,
    /// The first sequence whose revocation flag is included; the window runs to the head.
    pub revocations_from: u64,
    /// Storage proofs of `head[product]`, `digest[product][head]`, the head's rollout gate
    /// (`pausedUntil[product][0]`, `timing[product][head]`, `pausedUntil[product][head]`), then
    /// `revoked[product][s]` for each `s` of the window, in order.
    pub state: StateProof,
}

fn decode_with<T>(
    bytes: &[u8],
    kind: Kind,
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, ProofError>,
    write: impl FnOnce(&T) -> Vec<u8>,
) -> Result<T, ProofError> {
    let mut r = Reader::open(bytes, kind)?;
    let value = read(&mut r)?;
    r.finish()?;
    if write(&value) != bytes {
        return Err(ProofError::NonCanonical {
            what: "the bytes are not the encoding of the value they decode to",
        });
    }
    Ok(value)
}

/// Encode a committee chain.
pub fn encode_committee_chain(c: &CommitteeChain) -> Vec<u8> {
    let mut w = Writer::envelope(Kind::CommitteeChain);
    w.flag(c.bootstrap.is_some());
    if let Some(b) = &c.bootstrap {
        codec::bootstrap(&mut w, b);
    }
    w.count_u8(c.updates.len());
    for u in &c.updates {
        codec::update(&mut w, u);
    }
    w.0
}

/// Decode a committee chain (size cap first, then every field; canonical form only).
pub fn decode_committee_chain(bytes: &[u8]) -> Result<CommitteeChain, ProofError> {
    let read = |r: &mut Reader<'_>| {
        let bootstrap = if r.flag("bootstrap")? {
            Some(codec::read_bootstrap(r)?)
        } else {
            None
        };
        let n = r.count_u8("committee chain updates", MAX_CHAIN_UPDATES)?;
        let updates = (0..n).map(|_| codec::read_update(r)).collect::<Result<_, _>>()?;
        Ok(CommitteeChain { bootstrap, updates })
    };
    decode_with(bytes, Kind::CommitteeChain, read, encode_committee_chain)
}

/// Encode a release proof.
pub fn encode_release_proof(p: &ReleaseProof) -> Vec<u8> {
    let mut w = Writer::envelope(Kind::Release);
    codec::update(&mut w, &p.header);
    w.bytes(p.product.as_slice());
    w.u64(p.sequence);
    codec::state(&mut w, &p.state);
    codec::record(&mut w, &p.record);
    w.0
}

/// Decode a release proof (size cap first, then every field; canonical form only).
pub fn decode_release_proof(bytes: &[u8]) -> Result<ReleaseProof, ProofError> {
    let read = |r: &mut Reader<'_>| {
        Ok(ReleaseProof {
            header: codec::read_update(r)?,
            product: B256::from(r.fixed::<32>("product")?),
            sequence: r.u64("sequence")?,
            state: codec::read_state(r)?,
            record: codec::read_record(r)?,
        })
    };
    decode_with(bytes, Kind::Release, read, encode_release_proof)
}

/// Encode a head proof.
pub fn encode_head_proof(p: &HeadProof) -> Vec<u8> {
    let mut w = Writer::envelope(Kind::Head);
    codec::update(&mut w, &p.header);
    w.bytes(p.product.as_slice());
    w.u64(p.revocations_from);
    codec::state(&mut w, &p.state);
    w.0
}

/// Decode a head proof (size cap first, then every field; canonical form only).
pub fn decode_head_proof(bytes: &[u8]) -> Result<HeadProof, ProofError> {
    let read = |r: &mut Reader<'_>| {
        Ok(HeadProof {
            header: codec::read_update(r)?,
            product: B256::from(r.fixed::<32>("product")?),
            revocations_from: r.u64("revocations_from")?,
            state: codec::read_state(r)?,
        })
    };
    decode_with(bytes, Kind::Head, read, encode_head_proof)
}

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
