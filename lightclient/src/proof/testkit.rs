//! Test material for the proof module: a 32-member sync committee with known BLS keys signing sparse beacon
//! headers (the leaves a light client proves are real, the rest zero), over execution states built as real
//! Merkle-Patricia tries (alloy's `HashBuilder`), so every proof checked here is a real proof.

use std::collections::BTreeMap;

use alloy::consensus::Header;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::rpc::types::{EIP1186AccountProofResponse, EIP1186StorageProof, Filter, Log, TransactionReceipt};
use alloy::trie::proof::ProofRetainer;
use alloy::trie::{HashBuilder, Nibbles, TrieAccount};
use blst::min_pk::{AggregatePublicKey, AggregateSignature, SecretKey};

use super::layout::FIRMWARE_INDEX;
use crate::consensus::ssz::{Root, hash_pair, merkleize, tree_branch, tree_levels, u64_chunk};
use crate::consensus::types::{
    BeaconBlockHeader, Bootstrap, ExecutionPayloadHeader, LightClientHeader, SyncAggregate, SyncCommittee,
    Update,
};
use crate::consensus::{ChainSpec, Fork, Store, bootstrap};
use crate::execution_rpc::ExecutionRpc;
use crate::rpc::RpcError;

const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
pub const COMMITTEE: usize = 32;

pub fn spec() -> ChainSpec {
    ChainSpec {
        name: "test".into(),
        genesis_validators_root: [0x42; 32],
        genesis_time: 0,
        seconds_per_slot: 1,
        slots_per_epoch: 8,
        epochs_per_period: 8,
        sync_committee_size: COMMITTEE,
        forks: vec![
            (Fork::Phase0, 0, [0, 0, 0, 1]),
            (Fork::Altair, 0, [1, 0, 0, 1]),
            (Fork::Bellatrix, 0, [2, 0, 0, 1]),
            (Fork::Capella, 0, [3, 0, 0, 1]),
            (Fork::Deneb, 0, [4, 0, 0, 1]),
        ],
    }
}

/// An execution state: accounts with storage.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub accounts: BTreeMap<Address, BTreeMap<B256, U256>>,
    pub block_number: u64,
}

/// The root of a secure trie (keys already hashed) and the nodes on the path to `target` (hashed too).
fn trie(hashed: BTreeMap<B256, Vec<u8>>, target: B256) -> (B256, Vec<Bytes>) {
    let target = Nibbles::unpack(target);
    let mut hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(vec![target]));
    for (k, v) in &hashed {
        hb.add_leaf(Nibbles::unpack(k), v);
    }
    let root = hb.root();
    let nodes = hb.take_proof_nodes().matching_nodes_sorted(&target);
    (root, nodes.into_iter().map(|(_, n)| n).collect())
}

impl World {
    fn storage_trie(&self, contract: &Address, slot: B256) -> (B256, Vec<Bytes>) {
        let storage = self.accounts.get(contract).cloned().unwrap_or_default();
        let leaves = storage
            .into_iter()
            .filter(|(_, v)| !v.is_zero())
            .map(|(k, v)| (keccak256(k), alloy::rlp::encode(v)))
            .collect();
        trie(leaves, keccak256(slot))
    }

    fn account(&self, contract: &Address) -> TrieAccount {
        TrieAccount {
            nonce: 1,
            balance: U256::ZERO,
            storage_root: self.storage_trie(contract, B256::ZERO).0,
            code_hash: keccak256(contract.as_slice()),
        }
    }

    pub fn state_root(&self) -> B256 {
        self.account_proof(&Address::ZERO).0
    }

    fn account_proof(&self, address: &Address) -> (B256, Vec<Bytes>) {
        let leaves = self
            .accounts
            .keys()
            .map(|a| (keccak256(a), alloy::rlp::encode(self.account(a))))
            .collect();
        trie(leaves, keccak256(address))
    }

    /// What `eth_getProof` answers.
    pub fn get_proof(&self, address: Address, slots: &[B256]) -> EIP1186AccountProofResponse {
        let account = self.account(&address);
        EIP1186AccountProofResponse {
            address,
            balance: account.balance,
            code_hash: account.code_hash,
            nonce: account.nonce,
            storage_hash: account.storage_root,
            account_proof: self.account_proof(&address).1,
            storage_proof: slots
                .iter()
                .map(|s| EIP1186StorageProof {
                    key: (*s).into(),
                    value: self
                        .accounts
                        .get(&address)
                        .and_then(|m| m.get(s))
                        .copied()
                        .unwrap_or_default(),
                    proof: self.storage_trie(&address, *s).1,
                })
                .collect(),
        }
    }

    /// Publish `record` as `sequence` of `product` on `contract` (head, digest), as the contract does.
    pub fn publish(&mut self, contract: Address, product: B256, sequence: u64, record: &[u8]) {
        let l = FIRMWARE_INDEX;
        let m = self.accounts.entry(contract).or_default();
        m.insert(l.head(product), U256::from(sequence));
        m.insert(
            l.digest(product, sequence),
            U256::from_be_bytes(keccak256(record).0),
        );
    }

    /// Set `timing[product][sequence]` (go-live and the end of the activation delay), as the contract packs it.
    pub fn time(
        &mut self,
        contract: Address,
        product: B256,
        sequence: u64,
        live_at: u64,
        installable_at: u64,
    ) {
        let m = self.accounts.entry(contract).or_default();
        let word = (U256::from(installable_at) << 64) | U256::from(live_at);
        m.insert(FIRMWARE_INDEX.timing(product, sequence), word);
    }

    /// Set `pausedUntil[product][sequence]` (sequence 0: the whole product).
    pub fn pause(&mut self, contract: Address, product: B256, sequence: u64, until: u64) {
        let m = self.accounts.entry(contract).or_default();
        m.insert(FIRMWARE_INDEX.paused_until(product, sequence), U256::from(until));
    }

    pub fn revoke(&mut self, contract: Address, product: B256, sequence: u64) {
        let m = self.accounts.entry(contract).or_default();
        m.insert(FIRMWARE_INDEX.revoked(product, sequence), U256::from(1));
    }
}

fn no(method: &str) -> RpcError {
    RpcError::File {
        path: method.into(),
        message: "not served by the test world".into(),
    }
}

impl ExecutionRpc for World {
    async fn header(&self, _block: BlockNumberOrTag) -> Result<(Header, B256), RpcError> {
        Err(no("header"))
    }
    async fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        _block: u64,
    ) -> Result<EIP1186AccountProofResponse, RpcError> {
        Ok(self.get_proof(address, &slots))
    }
    async fn block_receipts(&self, _block: u64) -> Result<Vec<TransactionReceipt>, RpcError> {
        Err(no("receipts"))
    }
    async fn logs(&self, _filter: &Filter) -> Result<Vec<Log>, RpcError> {
        Err(no("logs"))
    }
}

/// A sync committee with its secret keys, signing headers over execution states.
#[derive(Debug)]
pub struct Chain {
    pub spec: ChainSpec,
    pub keys: Vec<SecretKey>,
    pub committee: SyncCommittee,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new(0)
    }
}

impl Chain {
    /// A committee whose keys derive from `seed`.
    pub fn new(seed: u8) -> Chain {
        let keys: Vec<SecretKey> = (0..COMMITTEE)
            .map(|i| SecretKey::key_gen(&[seed.wrapping_add(i as u8 + 1); 32], &[]).unwrap())
            .collect();
        let pks: Vec<_> = keys.iter().map(|k| k.sk_to_pk()).collect();
        let refs: Vec<_> = pks.iter().collect();
        let committee = SyncCommittee {
            pubkeys: pks.iter().map(|k| k.to_bytes()).collect(),
            aggregate_pubkey: AggregatePublicKey::aggregate(&refs, false)
                .unwrap()
                .to_public_key()
                .to_bytes(),
        };
        Chain {
            spec: spec(),
            keys,
            committee,
        }
    }

    /// A light-client header at `slot` for an execution payload; its state holds the committee (current and
    /// next) and `finalized` as the finalized root. Returns the header and the state's tree levels.
    pub fn header(
        &self,
        slot: u64,
        payload: &ExecutionPayloadHeader,
        finalized: &Root,
    ) -> (LightClientHeader, Vec<Vec<Root>>) {
        let mut body = vec![[0u8; 32]; 16];
        body[9] = payload.hash_tree_root();
        let body_levels = tree_levels(body);
        let mut state = vec![[0u8; 32]; 32];
        state[20] = hash_pair(&u64_chunk(0), finalized);
        state[22] = self.committee.hash_tree_root();
        state[23] = self.committee.hash_tree_root();
        let state_levels = tree_levels(state);
        let header = LightClientHeader {
            beacon: BeaconBlockHeader {
                slot,
                proposer_index: 0,
                parent_root: [0; 32],
                state_root: state_levels[state_levels.len() - 1][0],
                body_root: body_levels[body_levels.len() - 1][0],
            },
            execution: Some(payload.clone()),
            execution_branch: tree_branch(&body_levels, 9),
        };
        (header, state_levels)
    }

    pub fn bootstrap(&self, world: &World) -> (Root, Bootstrap) {
        let (header, levels) = self.header(8, &payload(world, 0), &[0; 32]);
        let root = header.beacon.hash_tree_root();
        (
            root,
            Bootstrap {
                header,
                current_sync_committee: self.committee.clone(),
                current_sync_committee_branch: tree_branch(&levels, 22),
            },
        )
    }

    pub fn store(&self, world: &World) -> Store {
        let (root, b) = self.bootstrap(world);
        bootstrap(&self.spec, &root, &b).unwrap()
    }

    /// A finality update at `slot` (finalized `slot`, attested `slot + 1`, signed at `slot + 2`) over the
    /// world's current state, signed by the first `signers` members.
    pub fn finality_update(&self, world: &World, slot: u64, signers: usize) -> Update {
        let p = payload(world, slot);
        let (finalized, _) = self.header(slot, &p, &[0; 32]);
        let (attested, levels) = self.header(slot + 1, &p, &finalized.beacon.hash_tree_root());
        let mut finality_branch = vec![u64_chunk(0)];
        finality_branch.extend(tree_branch(&levels, 20));
        let mut u = Update {
            attested_header: attested,
            next_sync_committee: None,
            next_sync_committee_branch: Vec::new(),
            finalized_header: Some(finalized),
            finality_branch,
            sync_aggregate: SyncAggregate {
                sync_committee_bits: vec![0; COMMITTEE / 8],
                sync_committee_signature: [0; 96],
            },
            signature_slot: slot + 2,
        };
        self.sign(&mut u, signers);
        u
    }

    /// An update that also carries the next committee (a period update).
    pub fn period_update(&self, world: &World, slot: u64) -> Update {
        let mut u = self.finality_update(world, slot, COMMITTEE);
        let (_, levels) = self.header(
            slot + 1,
            &payload(world, slot),
            &u.finalized_header.as_ref().unwrap().beacon.hash_tree_root(),
        );
        u.next_sync_committee = Some(self.committee.clone());
        u.next_sync_committee_branch = tree_branch(&levels, 23);
        u
    }

    /// (Re-)sign `u` by the first `signers` members.
    pub fn sign(&self, u: &mut Update, signers: usize) {
        let version = self.spec.version_at(u.signature_slot.max(1) - 1);
        let mut v = [0u8; 32];
        v[..4].copy_from_slice(&version);
        let fork_data_root = hash_pair(&v, &self.spec.genesis_validators_root);
        let mut domain = [0u8; 32];
        domain[..4].copy_from_slice(&[7, 0, 0, 0]);
        domain[4..].copy_from_slice(&fork_data_root[..28]);
        let msg = merkleize(&[u.attested_header.beacon.hash_tree_root(), domain], None);
        let sigs: Vec<_> = self.keys[..signers]
            .iter()
            .map(|k| k.sign(&msg, DST, &[]))
            .collect();
        let refs: Vec<_> = sigs.iter().collect();
        u.sync_aggregate.sync_committee_signature = AggregateSignature::aggregate(&refs, true)
            .unwrap()
            .to_signature()
            .to_bytes();
        let mut bits = vec![0u8; COMMITTEE / 8];
        for i in 0..signers {
            bits[i / 8] |= 1 << (i % 8);
        }
        u.sync_aggregate.sync_committee_bits = bits;
    }
}

/// The execution payload header of the world's current block.
pub fn payload(world: &World, slot: u64) -> ExecutionPayloadHeader {
    ExecutionPayloadHeader {
        parent_hash: [1; 32],
        fee_recipient: [2; 20],
        state_root: world.state_root().0,
        receipts_root: [3; 32],
        logs_bloom: vec![0; 256],
        prev_randao: [4; 32],
        block_number: world.block_number,
        gas_limit: 30_000_000,
        gas_used: 21_000,
        timestamp: 1_700_000_000 + slot,
        extra_data: b"firmchain".to_vec(),
        base_fee_per_gas: [0; 32],
        block_hash: keccak256(world.block_number.to_be_bytes()).0,
        transactions_root: [5; 32],
        withdrawals_root: [6; 32],
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
    }
}
