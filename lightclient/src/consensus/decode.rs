//! SSZ decoding of the light-client containers (the beacon API's `application/octet-stream`, and the
//! consensus spec tests). Branch depths and the execution header's shape follow the fork.

use super::spec::{ChainSpec, Fork};
use super::ssz::Root;
use super::types::{
    BeaconBlockHeader, Bootstrap, ExecutionPayloadHeader, LightClientHeader, SyncAggregate, SyncCommittee,
    Update,
};

/// Bytes that are not the SSZ encoding of the expected container.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SszError {
    #[error("{what}: {len} bytes, expected {expected}")]
    Length {
        what: &'static str,
        len: usize,
        expected: String,
    },
    #[error("{what}: bad offset {offset}")]
    Offset { what: &'static str, offset: usize },
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, at: 0, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SszError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(SszError::Length {
                what: self.what,
                len: self.buf.len(),
                expected: format!("at least {}", self.at.saturating_add(n)),
            })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], SszError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64, SszError> {
        Ok(u64::from_le_bytes(self.fixed()?))
    }

    fn offset(&mut self) -> Result<usize, SszError> {
        Ok(u32::from_le_bytes(self.fixed()?) as usize)
    }

    fn roots(&mut self, n: usize) -> Result<Vec<Root>, SszError> {
        (0..n).map(|_| self.fixed()).collect()
    }

    /// The variable part `[start, end)` of this container.
    fn part(&self, start: usize, end: usize) -> Result<&'a [u8], SszError> {
        if start < self.at || start > end || end > self.buf.len() {
            return Err(SszError::Offset {
                what: self.what,
                offset: start,
            });
        }
        Ok(&self.buf[start..end])
    }
}

fn depth(gindex: u64) -> usize {
    63 - gindex.leading_zeros() as usize
}

fn beacon(r: &mut Reader<'_>) -> Result<BeaconBlockHeader, SszError> {
    Ok(BeaconBlockHeader {
        slot: r.u64()?,
        proposer_index: r.u64()?,
        parent_root: r.fixed()?,
        state_root: r.fixed()?,
        body_root: r.fixed()?,
    })
}

fn execution(buf: &[u8], deneb: bool) -> Result<ExecutionPayloadHeader, SszError> {
    let mut r = Reader::new(buf, "execution payload header");
    let parent_hash = r.fixed()?;
    let fee_recipient = r.fixed()?;
    let state_root = r.fixed()?;
    let receipts_root = r.fixed()?;
    let logs_bloom = r.take(256)?.to_vec();
    let prev_randao = r.fixed()?;
    let (block_number, gas_limit, gas_used, timestamp) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let extra_offset = r.offset()?;
    let base_fee_per_gas = r.fixed()?;
    let block_hash = r.fixed()?;
    let transactions_root = r.fixed()?;
    let withdrawals_root = r.fixed()?;
    let (blob_gas_used, excess_blob_gas) = if deneb {
        (Some(r.u64()?), Some(r.u64()?))
    } else {
        (None, None)
    };
    let extra_data = r.part(extra_offset, buf.len())?.to_vec();
    if extra_data.len() > 32 {
        return Err(SszError::Length {
            what: "extra_data",
            len: extra_data.len(),
            expected: "at most 32".into(),
        });
    }
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

/// A `LightClientHeader` (Capella and later) of the given fork.
pub fn header(buf: &[u8], fork: Fork) -> Result<LightClientHeader, SszError> {
    let mut r = Reader::new(buf, "light client header");
    let beacon = beacon(&mut r)?;
    let offset = r.offset()?;
    let execution_branch = r.roots(4)?;
    let execution = execution(r.part(offset, buf.len())?, fork >= Fork::Deneb)?;
    Ok(LightClientHeader {
        beacon,
        execution: Some(execution),
        execution_branch,
    })
}

fn committee(r: &mut Reader<'_>, size: usize) -> Result<SyncCommittee, SszError> {
    let pubkeys = (0..size)
        .map(|_| r.fixed())
        .collect::<Result<Vec<[u8; 48]>, _>>()?;
    Ok(SyncCommittee {
        pubkeys,
        aggregate_pubkey: r.fixed()?,
    })
}

fn is_zero(roots: &[Root]) -> bool {
    roots.iter().all(|r| r == &[0u8; 32])
}

/// A `LightClientBootstrap` of the given fork.
pub fn bootstrap(spec: &ChainSpec, buf: &[u8], fork: Fork) -> Result<Bootstrap, SszError> {
    let mut r = Reader::new(buf, "bootstrap");
    let offset = r.offset()?;
    let current_sync_committee = committee(&mut r, spec.sync_committee_size)?;
    let branch_depth = depth(if fork >= Fork::Electra { 86 } else { 54 });
    let current_sync_committee_branch = r.roots(branch_depth)?;
    if offset != r.at {
        return Err(SszError::Offset {
            what: "bootstrap",
            offset,
        });
    }
    Ok(Bootstrap {
        header: header(r.part(offset, buf.len())?, fork)?,
        current_sync_committee,
        current_sync_committee_branch,
    })
}

/// A `LightClientUpdate` of the given fork. Empty next committees and finality (zero branches) become `None`.
pub fn update(spec: &ChainSpec, buf: &[u8], fork: Fork) -> Result<Update, SszError> {
    let electra = fork >= Fork::Electra;
    let mut r = Reader::new(buf, "update");
    let attested_offset = r.offset()?;
    let next = committee(&mut r, spec.sync_committee_size)?;
    let next_branch = r.roots(depth(if electra { 87 } else { 55 }))?;
    let finalized_offset = r.offset()?;
    let finality_branch = r.roots(depth(if electra { 169 } else { 105 }))?;
    let bits = r.take(spec.sync_committee_size / 8)?.to_vec();
    let signature = r.fixed()?;
    let signature_slot = r.u64()?;
    let attested = header(r.part(attested_offset, finalized_offset)?, fork)?;
    let finalized = header(r.part(finalized_offset, buf.len())?, fork)?;
    let has_next = !is_zero(&next_branch);
    let has_finality = !is_zero(&finality_branch);
    Ok(Update {
        attested_header: attested,
        next_sync_committee: has_next.then_some(next),
        next_sync_committee_branch: next_branch,
        finalized_header: has_finality.then_some(finalized),
        finality_branch,
        sync_aggregate: SyncAggregate {
            sync_committee_bits: bits,
            sync_committee_signature: signature,
        },
        signature_slot,
    })
}
