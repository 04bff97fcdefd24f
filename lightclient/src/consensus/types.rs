//! Light-client containers (Capella and later), their hash-tree roots, and the beacon API's JSON.

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

use super::ssz::{Root, byte_list_root, bytes_root, merkleize, u64_chunk};

fn hex_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| D::Error::custom(format!("hex without 0x: {s:.20}")))?;
    alloy::hex::decode(digits).map_err(D::Error::custom)
}

fn hex_fixed<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    let v = hex_bytes(d)?;
    v.as_slice()
        .try_into()
        .map_err(|_| D::Error::custom(format!("expected {N} bytes, got {}", v.len())))
}

fn hex_roots<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Root>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|s| {
            let v = alloy::hex::decode(s.trim_start_matches("0x")).map_err(D::Error::custom)?;
            v.as_slice()
                .try_into()
                .map_err(|_| D::Error::custom("branch node is not 32 bytes"))
        })
        .collect()
}

fn dec_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    String::deserialize(d)?.parse().map_err(D::Error::custom)
}

fn opt_dec_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| s.parse().map_err(D::Error::custom))
        .transpose()
}

fn dec_u256_le<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let s = String::deserialize(d)?;
    let v: alloy::primitives::U256 = s.parse().map_err(D::Error::custom)?;
    Ok(v.to_le_bytes())
}

/// `BeaconBlockHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct BeaconBlockHeader {
    #[serde(deserialize_with = "dec_u64")]
    pub slot: u64,
    #[serde(deserialize_with = "dec_u64")]
    pub proposer_index: u64,
    #[serde(deserialize_with = "hex_fixed")]
    pub parent_root: Root,
    #[serde(deserialize_with = "hex_fixed")]
    pub state_root: Root,
    #[serde(deserialize_with = "hex_fixed")]
    pub body_root: Root,
}

impl BeaconBlockHeader {
    pub fn hash_tree_root(&self) -> Root {
        merkleize(
            &[
                u64_chunk(self.slot),
                u64_chunk(self.proposer_index),
                self.parent_root,
                self.state_root,
                self.body_root,
            ],
            None,
        )
    }
}

/// `ExecutionPayloadHeader` of Capella (15 fields) or Deneb and later (17 fields, with the blob gas fields).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ExecutionPayloadHeader {
    #[serde(deserialize_with = "hex_fixed")]
    pub parent_hash: Root,
    #[serde(deserialize_with = "hex_fixed")]
    pub fee_recipient: [u8; 20],
    #[serde(deserialize_with = "hex_fixed")]
    pub state_root: Root,
    #[serde(deserialize_with = "hex_fixed")]
    pub receipts_root: Root,
    #[serde(deserialize_with = "hex_bytes")]
    pub logs_bloom: Vec<u8>,
    #[serde(deserialize_with = "hex_fixed")]
    pub prev_randao: Root,
    #[serde(deserialize_with = "dec_u64")]
    pub block_number: u64,
    #[serde(deserialize_with = "dec_u64")]
    pub gas_limit: u64,
    #[serde(deserialize_with = "dec_u64")]
    pub gas_used: u64,
    #[serde(deserialize_with = "dec_u64")]
    pub timestamp: u64,
    #[serde(deserialize_with = "hex_bytes")]
    pub extra_data: Vec<u8>,
    /// uint256, little-endian.
    #[serde(deserialize_with = "dec_u256_le")]
    pub base_fee_per_gas: [u8; 32],
    #[serde(deserialize_with = "hex_fixed")]
    pub block_hash: Root,
    #[serde(deserialize_with = "hex_fixed")]
    pub transactions_root: Root,
    #[serde(deserialize_with = "hex_fixed")]
    pub withdrawals_root: Root,
    #[serde(default, deserialize_with = "opt_dec_u64")]
    pub blob_gas_used: Option<u64>,
    #[serde(default, deserialize_with = "opt_dec_u64")]
    pub excess_blob_gas: Option<u64>,
}

impl ExecutionPayloadHeader {
    pub fn hash_tree_root(&self) -> Root {
        let mut fields = vec![
            self.parent_hash,
            bytes_root(&self.fee_recipient),
            self.state_root,
            self.receipts_root,
            bytes_root(&self.logs_bloom),
            self.prev_randao,
            u64_chunk(self.block_number),
            u64_chunk(self.gas_limit),
            u64_chunk(self.gas_used),
            u64_chunk(self.timestamp),
            byte_list_root(&self.extra_data, 32),
            self.base_fee_per_gas,
            self.block_hash,
            self.transactions_root,
            self.withdrawals_root,
        ];
        if let (Some(used), Some(excess)) = (self.blob_gas_used, self.excess_blob_gas) {
            fields.push(u64_chunk(used));
            fields.push(u64_chunk(excess));
        }
        merkleize(&fields, None)
    }
}

/// `LightClientHeader`: a beacon header and (from Capella) its execution payload header with the branch
/// that proves it into the block body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct LightClientHeader {
    pub beacon: BeaconBlockHeader,
    #[serde(default)]
    pub execution: Option<ExecutionPayloadHeader>,
    #[serde(default, deserialize_with = "hex_roots")]
    pub execution_branch: Vec<Root>,
}

/// `SyncCommittee`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SyncCommittee {
    #[serde(deserialize_with = "pubkeys")]
    pub pubkeys: Vec<[u8; 48]>,
    #[serde(deserialize_with = "hex_fixed")]
    pub aggregate_pubkey: [u8; 48],
}

fn pubkeys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 48]>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            let v = alloy::hex::decode(s.trim_start_matches("0x")).map_err(D::Error::custom)?;
            v.as_slice()
                .try_into()
                .map_err(|_| D::Error::custom("public key is not 48 bytes"))
        })
        .collect()
}

impl SyncCommittee {
    pub fn hash_tree_root(&self) -> Root {
        let keys: Vec<Root> = self.pubkeys.iter().map(|k| bytes_root(k)).collect();
        merkleize(
            &[merkleize(&keys, None), bytes_root(&self.aggregate_pubkey)],
            None,
        )
    }
}

/// `SyncAggregate`: which committee members signed, and their aggregate signature.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SyncAggregate {
    /// The bitvector's bytes (bit i of the committee is bit i % 8 of byte i / 8).
    #[serde(deserialize_with = "hex_bytes")]
    pub sync_committee_bits: Vec<u8>,
    #[serde(deserialize_with = "hex_fixed")]
    pub sync_committee_signature: [u8; 96],
}

impl SyncAggregate {
    /// Whether member `i` signed.
    pub fn bit(&self, i: usize) -> bool {
        self.sync_committee_bits
            .get(i / 8)
            .is_some_and(|b| (b >> (i % 8)) & 1 == 1)
    }

    /// How many members signed.
    pub fn participants(&self) -> usize {
        self.sync_committee_bits
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum()
    }
}

/// `LightClientBootstrap`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Bootstrap {
    pub header: LightClientHeader,
    pub current_sync_committee: SyncCommittee,
    #[serde(deserialize_with = "hex_roots")]
    pub current_sync_committee_branch: Vec<Root>,
}

/// `LightClientUpdate`; finality and optimistic updates are updates with the missing parts `None`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Update {
    pub attested_header: LightClientHeader,
    #[serde(default)]
    pub next_sync_committee: Option<SyncCommittee>,
    #[serde(default, deserialize_with = "hex_roots")]
    pub next_sync_committee_branch: Vec<Root>,
    #[serde(default)]
    pub finalized_header: Option<LightClientHeader>,
    #[serde(default, deserialize_with = "hex_roots")]
    pub finality_branch: Vec<Root>,
    pub sync_aggregate: SyncAggregate,
    #[serde(deserialize_with = "dec_u64")]
    pub signature_slot: u64,
}

impl Update {
    /// The slot of the finalized header (0 when there is none, as for the spec's empty header).
    pub fn finalized_slot(&self) -> u64 {
        self.finalized_header.as_ref().map_or(0, |h| h.beacon.slot)
    }
}

/// The beacon API's envelope: `{"version": "capella", "data": {...}}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Versioned<T> {
    pub version: String,
    pub data: T,
}
