//! Encoding and decoding of the light-client containers and the state proofs inside a proof message.
//! Every count is capped before anything is allocated; [`super::decode_release_proof`] and friends then
//! re-encode what they decoded and refuse input that is not byte-identical (one encoding per value).

use alloy::primitives::{Address, B256, Bytes, U256};

use super::wire::{Reader, Writer};
use super::{
    MAX_BRANCH, MAX_COMMITTEE, MAX_NODE_BYTES, MAX_NODES, MAX_PATH, MAX_RECORD_BYTES, MAX_SLOTS, ProofError,
    StateProof,
};
use crate::consensus::ssz::Root;
use crate::consensus::types::{
    BeaconBlockHeader, Bootstrap, ExecutionPayloadHeader, LightClientHeader, SyncAggregate, SyncCommittee,
    Update,
};

/// `execution` flag values: none (before Capella), Capella (15 fields), Deneb and later (17 fields).
const EXEC_NONE: u8 = 0;
const EXEC_CAPELLA: u8 = 1;
const EXEC_DENEB: u8 = 2;
/// Bytes of a logs bloom.
const BLOOM: usize = 256;
/// Most bytes of `extra_data`.
const MAX_EXTRA_DATA: usize = 32;
/// Most bytes of the sync-committee bitvector (512 members).
const MAX_BITS: usize = MAX_COMMITTEE / 8;

fn branch(w: &mut Writer, b: &[Root]) {
    w.count_u8(b.len());
    for r in b {
        w.bytes(r);
    }
}

fn read_branch(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<Root>, ProofError> {
    let n = r.count_u8(field, MAX_BRANCH)?;
    r.array_list(n, field)
}

fn execution(w: &mut Writer, e: &ExecutionPayloadHeader) {
    let deneb = e.blob_gas_used.is_some() && e.excess_blob_gas.is_some();
    w.u8(if deneb { EXEC_DENEB } else { EXEC_CAPELLA });
    w.bytes(&e.parent_hash);
    w.bytes(&e.fee_recipient);
    w.bytes(&e.state_root);
    w.bytes(&e.receipts_root);
    // A bloom is 256 bytes; the decoder refuses anything else, so write exactly that.
    let mut bloom = [0u8; BLOOM];
    let n = e.logs_bloom.len().min(BLOOM);
    bloom[..n].copy_from_slice(&e.logs_bloom[..n]);
    w.bytes(&bloom);
    w.bytes(&e.prev_randao);
    w.u64(e.block_number);
    w.u64(e.gas_limit);
    w.u64(e.gas_used);
    w.u64(e.timestamp);
    w.count_u8(e.extra_data.len());
    w.bytes(&e.extra_data);
    w.bytes(&e.base_fee_per_gas);
    w.bytes(&e.block_hash);
    w.bytes(&e.transactions_root);
    w.bytes(&e.withdrawals_root);
    if let (true, Some(used), Some(excess)) = (deneb, e.blob_gas_used, e.excess_blob_gas) {
        w.u64(used);
        w.u64(excess);
    }
}

fn read_execution(r: &mut Reader<'_>, deneb: bool) -> Result<ExecutionPayloadHeader, ProofError> {
    let parent_hash = r.fixed("execution.parent_hash")?;
    let fee_recipient = r.fixed("execution.fee_recipient")?;
    let state_root = r.fixed("execution.state_root")?;
    let receipts_root = r.fixed("execution.receipts_root")?;
    let logs_bloom = r.take(BLOOM, "execution.logs_bloom")?.to_vec();
    let prev_randao = r.fixed("execution.prev_randao")?;
    let block_number = r.u64("execution.block_number")?;
    let gas_limit = r.u64("execution.gas_limit")?;
    let gas_used = r.u64("execution.gas_used")?;
    let timestamp = r.u64("execution.timestamp")?;
    let extra = r.count_u8("execution.extra_data", MAX_EXTRA_DATA)?;
    let extra_data = r.take(extra, "execution.extra_data")?.to_vec();
    let base_fee_per_gas = r.fixed("execution.base_fee_per_gas")?;
    let block_hash = r.fixed("execution.block_hash")?;
    let transactions_root = r.fixed("execution.transactions_root")?;
    let withdrawals_root = r.fixed("execution.withdrawals_root")?;
    let (blob_gas_used, excess_blob_gas) = if deneb {
        (
            Some(r.u64("execution.blob_gas_used")?),
            Some(r.u64("execution.excess_blob_gas")?),
        )
    } else {
        (None, None)
    };
    Ok(ExecutionPayloadHeader {
        parent_hash,
        fee_recipient,
        state_root,
        receipts_root,
        logs_bloom,
        prev_randao,
        block_number,
        gas_limit,
        gas_used,
        timestamp,
        extra_data,
        base_fee_per_gas,
        block_hash,
        transactions_root,
        withdrawals_root,
        blob_gas_used,
        excess_blob_gas,
    })
}

pub(super) fn header(w: &mut Writer, h: &LightClientHeader) {
    let b = &h.beacon;
    w.u64(b.slot);
    w.u64(b.proposer_index);
    w.bytes(&b.parent_root);
    w.bytes(&b.state_root);
    w.bytes(&b.body_root);
    match &h.execution {
        None => w.u8(EXEC_NONE),
        Some(e) => execution(w, e),
    }
    branch(w, &h.execution_branch);
}

pub(super) fn read_header(r: &mut Reader<'_>) -> Result<LightClientHeader, ProofError> {
    let beacon = BeaconBlockHeader {
        slot: r.u64("beacon.slot")?,
        proposer_index: r.u64("beacon.proposer_index")?,
        parent_root: r.fixed("beacon.parent_root")?,
        state_root: r.fixed("beacon.state_root")?,
        body_root: r.fixed("beacon.body_root")?,
    };
    let offset = r.offset();
    let execution = match r.u8("execution kind")? {
        EXEC_NONE => None,
        EXEC_CAPELLA => Some(read_execution(r, false)?),
        EXEC_DENEB => Some(read_execution(r, true)?),
        value => {
            return Err(ProofError::BadFlag {
                field: "execution kind",
                offset,
                value,
            });
        }
    };
    let execution_branch = read_branch(r, "execution_branch")?;
    Ok(LightClientHeader {
        beacon,
        execution,
        execution_branch,
    })
}

fn committee(w: &mut Writer, c: &SyncCommittee) {
    w.count_u16(c.pubkeys.len());
    for k in &c.pubkeys {
        w.bytes(k);
    }
    w.bytes(&c.aggregate_pubkey);
}

fn read_committee(r: &mut Reader<'_>) -> Result<SyncCommittee, ProofError> {
    let n = r.count_u16("sync committee size", MAX_COMMITTEE)?;
    Ok(SyncCommittee {
        pubkeys: r.array_list(n, "sync committee pubkeys")?,
        aggregate_pubkey: r.fixed("sync committee aggregate_pubkey")?,
    })
}

/// An update. A missing next committee or finalized header drops its branch (the normal form).
pub(super) fn update(w: &mut Writer, u: &Update) {
    header(w, &u.attested_header);
    w.flag(u.next_sync_committee.is_some());
    if let Some(next) = &u.next_sync_committee {
        committee(w, next);
        branch(w, &u.next_sync_committee_branch);
    }
    w.flag(u.finalized_header.is_some());
    if let Some(finalized) = &u.finalized_header {
        header(w, finalized);
        branch(w, &u.finality_branch);
    }
    let bits = &u.sync_aggregate.sync_committee_bits;
    w.count_u8(bits.len());
    w.bytes(bits);
    w.bytes(&u.sync_aggregate.sync_committee_signature);
    w.u64(u.signature_slot);
}

pub(super) fn read_update(r: &mut Reader<'_>) -> Result<Update, ProofError> {
    let attested_header = read_header(r)?;
    let (next_sync_committee, next_sync_committee_branch) = if r.flag("next_sync_committee")? {
        (
            Some(read_committee(r)?),
            read_branch(r, "next_sync_committee_branch")?,
        )
    } else {
        (None, Vec::new())
    };
    let (finalized_header, finality_branch) = if r.flag("finalized_header")? {
        (Some(read_header(r)?), read_branch(r, "finality_branch")?)
    } else {
        (None, Vec::new())
    };
    let n = r.count_u8("sync_committee_bits", MAX_BITS)?;
    let sync_committee_bits = r.take(n, "sync_committee_bits")?.to_vec();
    let sync_committee_signature = r.fixed("sync_committee_signature")?;
    let signature_slot = r.u64("signature_slot")?;
    Ok(Update {
        attested_header,
        next_sync_committee,
        next_sync_committee_branch,
        finalized_header,
        finality_branch,
        sync_aggregate: SyncAggregate {
            sync_committee_bits,
            sync_committee_signature,
        },
        signature_slot,
    })
}

pub(super) fn bootstrap(w: &mut Writer, b: &Bootstrap) {
    header(w, &b.header);
    committee(w, &b.current_sync_committee);
    branch(w, &b.current_sync_committee_branch);
}

pub(super) fn read_bootstrap(r: &mut Reader<'_>) -> Result<Bootstrap, ProofError> {
    Ok(Bootstrap {
        header: read_header(r)?,
        current_sync_committee: read_committee(r)?,
        current_sync_committee_branch: read_branch(r, "current_sync_committee_branch")?,
    })
}

/// Where each trie node of a state proof goes in the node table: nodes are stored once, in the order they
/// first appear (account proof first, then each slot's proof), and paths refer to them by index.
fn node_table(s: &StateProof) -> (Vec<&Bytes>, Vec<Vec<u16>>) {
    let mut table: Vec<&Bytes> = Vec::new();
    let mut index = std::collections::HashMap::<&[u8], u16>::new();
    let mut paths = Vec::with_capacity(1 + s.storage.len());
    let all = std::iter::once(&s.account_proof).chain(s.storage.iter().map(|(_, p)| p));
    for path in all {
        let mut ids = Vec::with_capacity(path.len());
        for node in path {
            let id = *index.entry(node.as_ref()).or_insert_with(|| {
                table.push(node);
                u16::try_from(table.len() - 1).unwrap_or(u16::MAX)
            });
            ids.push(id);
        }
        paths.push(ids);
    }
    (table, paths)
}

fn path(w: &mut Writer, ids: &[u16]) {
    w.count_u8(ids.len());
    for id in ids {
        w.u16(*id);
    }
}

pub(super) fn state(w: &mut Writer, s: &StateProof) {
    w.bytes(s.contract.as_slice());
    w.u64(s.nonce);
    w.bytes(&s.balance.to_be_bytes::<32>());
    w.bytes(s.storage_root.as_slice());
    w.bytes(s.code_hash.as_slice());
    let (table, paths) = node_table(s);
    w.count_u16(table.len());
    for node in table {
        w.count_u16(node.len());
        w.bytes(node);
    }
    let mut paths = paths.iter();
    path(w, paths.next().map_or(&[][..], |p| p));
    w.count_u8(s.storage.len());
    for ((value, _), ids) in s.storage.iter().zip(paths) {
        w.bytes(&value.to_be_bytes::<32>());
        path(w, ids);
    }
}

fn read_path(r: &mut Reader<'_>, table: &[Bytes], field: &'static str) -> Result<Vec<Bytes>, ProofError> {
    let n = r.count_u8(field, MAX_PATH)?;
    (0..n)
        .map(|_| {
            let index = r.u16(field)? as usize;
            table.get(index).cloned().ok_or(ProofError::BadNodeIndex {
                index,
                nodes: table.len(),
            })
        })
        .collect()
}

pub(super) fn read_state(r: &mut Reader<'_>) -> Result<StateProof, ProofError> {
    let contract = Address::from(r.fixed::<20>("contract")?);
    let nonce = r.u64("account nonce")?;
    let balance = U256::from_be_bytes(r.fixed::<32>("account balance")?);
    let storage_root = B256::from(r.fixed::<32>("account storage_root")?);
    let code_hash = B256::from(r.fixed::<32>("account code_hash")?);
    let nodes = r.count_u16("trie nodes", MAX_NODES)?;
    let mut table = Vec::with_capacity(nodes);
    for _ in 0..nodes {
        let len = r.count_u16("trie node", MAX_NODE_BYTES)?;
        table.push(Bytes::copy_from_slice(r.take(len, "trie node")?));
    }
    let account_proof = read_path(r, &table, "account proof")?;
    let slots = r.count_u8("storage slots", MAX_SLOTS)?;
    let mut storage = Vec::with_capacity(slots);
    for _ in 0..slots {
        let value = U256::from_be_bytes(r.fixed::<32>("storage value")?);
        storage.push((value, read_path(r, &table, "storage proof")?));
    }
    Ok(StateProof {
        contract,
        nonce,
        balance,
        storage_root,
        code_hash,
        account_proof,
        storage,
    })
}

pub(super) fn record(w: &mut Writer, record: &[u8]) {
    w.count_u32(record.len());
    w.bytes(record);
}

pub(super) fn read_record(r: &mut Reader<'_>) -> Result<Vec<u8>, ProofError> {
    let n = r.count_u32("release record", MAX_RECORD_BYTES)?;
    Ok(r.take(n, "release record")?.to_vec())
}
