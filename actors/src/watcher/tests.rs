//! Actor tests of the IndexWatcher over an in-memory execution RPC that answers like a node would: headers
//! whose hashes verify, `eth_getProof` answers with real Merkle-Patricia proofs of the index's storage, and
//! `ReleasePublished` logs. The test moves the chain on (new releases, a revocation), forges an event and takes
//! the RPC down; the watcher's verified reads must tell each apart.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use actix::{Actor, Addr, Context, Handler};
use alloy::consensus::Header;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bytes, LogData, U256, keccak256};
use alloy::rpc::types::{EIP1186AccountProofResponse, EIP1186StorageProof, Filter, Log, TransactionReceipt};
use alloy::sol_types::SolEvent;
use alloy::trie::proof::{ProofNodes, ProofRetainer};
use alloy::trie::{HashBuilder, Nibbles, TrieAccount};
use firmchain_contracts::{FirmwareIndex, slots};
use firmchain_lightclient::rpc::{FileRpc, RpcError};
use firmchain_update::{Blake3Hash, ReleaseKind, ReleaseRecord};
use tokio::sync::mpsc;

use super::*;

const INDEX: Address = Address::repeat_byte(0x11);

/// The chain as the RPC serves it: the latest block, the index's storage, the events.
#[derive(Default)]
struct Chain {
    number: u64,
    storage: BTreeMap<B256, U256>,
    logs: Vec<(u64, LogData)>,
    down: bool,
}

#[derive(Clone, Default)]
struct MemRpc(Rc<RefCell<Chain>>);

fn trie(leaves: Vec<(B256, Vec<u8>)>, targets: &[Nibbles]) -> (B256, ProofNodes) {
    let mut sorted: Vec<(Nibbles, Vec<u8>)> =
        leaves.into_iter().map(|(k, v)| (Nibbles::unpack(k), v)).collect();
    sorted.sort_by_key(|a| a.0);
    let mut hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(targets.to_vec()));
    for (k, v) in &sorted {
        hb.add_leaf(*k, v);
    }
    let root = hb.root();
    (root, hb.take_proof_nodes())
}

impl Chain {
    fn storage_trie(&self, targets: &[Nibbles]) -> (B256, ProofNodes) {
        let leaves = self
            .storage
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .map(|(k, v)| (keccak256(k), alloy::rlp::encode(v)))
            .collect();
        trie(leaves, targets)
    }

    fn account(&self) -> TrieAccount {
        TrieAccount {
            nonce: 1,
            balance: U256::ZERO,
            storage_root: self.storage_trie(&[]).0,
            code_hash: keccak256(b"FirmwareIndex"),
        }
    }

    fn state_trie(&self, targets: &[Nibbles]) -> (B256, ProofNodes) {
        trie(
            vec![(keccak256(INDEX), alloy::rlp::encode(self.account()))],
            targets,
        )
    }

    fn header(&self) -> Header {
        Header {
            number: self.number,
            state_root: self.state_trie(&[]).0,
            timestamp: 1_700_000_000 + self.number * 12,
            ..Header::default()
        }
    }

    /// Publish `record` in a new block, as the contract does.
    fn publish(&mut self, record: &ReleaseRecord, revoked: bool) {
        self.number += 1;
        let (p, s) = (record.product, record.sequence);
        self.storage.insert(slots::head(&p), U256::from(s.0));
        self.storage
            .insert(slots::digest(&p, s), U256::from_be_bytes(record.digest()));
        if revoked {
            self.storage.insert(slots::revoked(&p, s), U256::from(1));
        }
        self.emit(record, B256::from(record.digest()));
    }

    fn emit(&mut self, record: &ReleaseRecord, digest: B256) {
        let event = FirmwareIndex::ReleasePublished {
            product: B256::from(record.product.0),
            sequence: record.sequence.0,
            digest,
            record: record.into(),
        };
        self.logs.push((self.number, event.encode_log_data()));
    }

    fn revoke(&mut self, record: &ReleaseRecord) {
        self.number += 1;
        self.storage
            .insert(slots::revoked(&record.product, record.sequence), U256::from(1));
    }
}

fn down() -> RpcError {
    RpcError::Http {
        endpoint: "mem".into(),
        path: String::new(),
        message: "connection refused".into(),
    }
}

impl ExecutionRpc for MemRpc {
    async fn header(&self, _block: BlockNumberOrTag) -> Result<(Header, B256), RpcError> {
        let c = self.0.borrow();
        if c.down {
            return Err(down());
        }
        let h = c.header();
        let hash = h.hash_slow();
        Ok((h, hash))
    }

    async fn proof(
        &self,
        address: Address,
        keys: Vec<B256>,
        _block: u64,
    ) -> Result<EIP1186AccountProofResponse, RpcError> {
        let c = self.0.borrow();
        if c.down {
            return Err(down());
        }
        let targets: Vec<Nibbles> = keys.iter().map(|k| Nibbles::unpack(keccak256(k))).collect();
        let (storage_hash, nodes) = c.storage_trie(&targets);
        let storage_proof = keys
            .iter()
            .zip(&targets)
            .map(|(k, t)| EIP1186StorageProof {
                key: (*k).into(),
                value: c.storage.get(k).copied().unwrap_or_default(),
                proof: nodes
                    .matching_nodes_sorted(t)
                    .into_iter()
                    .map(|(_, b)| b)
                    .collect(),
            })
            .collect();
        let target = Nibbles::unpack(keccak256(address));
        let (_, account_nodes) = c.state_trie(&[target]);
        let account = c.account();
        Ok(EIP1186AccountProofResponse {
            address,
            balance: account.balance,
            code_hash: account.code_hash,
            nonce: account.nonce,
            storage_hash,
            account_proof: account_nodes
                .matching_nodes_sorted(&target)
                .into_iter()
                .map(|(_, b): (Nibbles, Bytes)| b)
                .collect(),
            storage_proof,
        })
    }

    async fn block_receipts(&self, _block: u64) -> Result<Vec<TransactionReceipt>, RpcError> {
        Err(down())
    }

    async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, RpcError> {
        let c = self.0.borrow();
        if c.down {
            return Err(down());
        }
        let from = filter.get_from_block().unwrap_or(0);
        let to = filter.get_to_block().unwrap_or(c.number);
        Ok(c.logs
            .iter()
            .filter(|(b, _)| (from..=to).contains(b))
            .map(|(b, data)| Log {
                inner: alloy::primitives::Log {
                    address: INDEX,
                    data: data.clone(),
                },
                block_number: Some(*b),
                ..Log::default()
            })
            .collect())
    }
}

fn product() -> ProductId {
    "acme-sensor".parse().unwrap()
}

fn record(seq: u64) -> ReleaseRecord {
    ReleaseRecord {
        product: product(),
        sequence: Sequence(seq),
        base_hash: Blake3Hash::ZERO,
        target_hash: Blake3Hash([seq as u8; 32]),
        target_size: 1000,
        patch_cid: vec![1, 2, 3],
        patch_hash: Blake3Hash([0xaa; 32]),
        patch_size: 100,
        kind: ReleaseKind::Full,
        min_sequence: 0,
        terms: Default::default(),
    }
}

/// What the watcher tells the Coordinator and the Status actor, as lines.
struct Listen(mpsc::UnboundedSender<String>);

impl Actor for Listen {
    type Context = Context<Self>;
}

impl Handler<ReleaseSeen> for Listen {
    type Result = ();
    fn handle(&mut self, m: ReleaseSeen, _: &mut Context<Self>) {
        let _ = self
            .0
            .send(format!("seen {} revoked={}", m.record.sequence, m.revoked));
    }
}

impl Handler<ReleaseRevoked> for Listen {
    type Result = ();
    fn handle(&mut self, m: ReleaseRevoked, _: &mut Context<Self>) {
        let _ = self.0.send(format!("revoked {}", m.sequence));
    }
}

impl Handler<StatusEvent> for Listen {
    type Result = ();
    fn handle(&mut self, m: StatusEvent, _: &mut Context<Self>) {
        let line = match m {
            StatusEvent::Chain(Ok(h)) => format!("block {}", h.block),
            StatusEvent::Chain(Err(e)) => format!("chain error: {e}"),
            StatusEvent::Rejected(why) => format!("rejected: {why}"),
            _ => return,
        };
        let _ = self.0.send(line);
    }
}

struct Setup<E: ExecutionRpc + Clone + Unpin + 'static = MemRpc> {
    chain: E,
    watcher: Addr<IndexWatcher<E, FileRpc>>,
    events: mpsc::UnboundedReceiver<String>,
    state: Arc<NodeState>,
    _dir: tempfile::TempDir,
}

fn setup(chain: MemRpc, installed: u64) -> Setup {
    setup_at(chain, INDEX, installed)
}

fn setup_at<E: ExecutionRpc + Clone + Unpin + 'static>(chain: E, index: Address, installed: u64) -> Setup<E> {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(NodeState::open(&dir.path().join("state.redb")).unwrap());
    let (tx, events) = mpsc::unbounded_channel();
    let listen = Listen(tx).start();
    let w = Watcher::new(
        chain.clone(),
        index,
        product(),
        HeaderSource::<FileRpc>::Rpc,
        state.clone(),
        Sequence(installed),
    )
    .unwrap()
    // The chain here is a few blocks long: without a lookback the cursor's moves show.
    .with_lookback(0);
    // A long interval: the test drives the polls with Wake.
    let watcher = IndexWatcher::new(
        w,
        Duration::from_secs(3600),
        Some(listen.clone().recipient()),
        Some(listen.clone().recipient()),
        listen.recipient(),
    )
    .start();
    Setup {
        chain,
        watcher,
        events,
        state,
        _dir: dir,
    }
}

/// The lines one poll produced, up to and including its chain line.
async fn poll<E: ExecutionRpc + Clone + Unpin + 'static>(s: &mut Setup<E>) -> Vec<String> {
    s.watcher.send(Wake).await.unwrap();
    lines_of_a_poll(s).await
}

/// The lines of the next poll (the one at start, or one already asked for), up to its chain line.
async fn lines_of_a_poll<E: ExecutionRpc + Clone + Unpin + 'static>(s: &mut Setup<E>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), s.events.recv())
            .await
            .expect("the poll reports")
            .unwrap();
        let chain_line = line.starts_with("block ") || line.starts_with("chain error");
        lines.push(line);
        if chain_line {
            // What follows the chain line in the same poll is already queued.
            while let Ok(l) = s.events.try_recv() {
                lines.push(l);
            }
            return lines;
        }
    }
}

#[actix::test]
async fn new_releases_and_a_revocation_are_reported_once_and_the_cursor_moves() {
    let chain = MemRpc::default();
    chain.0.borrow_mut().number = 5;
    let mut s = setup(chain, 0);
    // The first poll (at start) sees nothing.
    let first = poll(&mut s).await;
    assert!(first.iter().any(|l| l == "block 5"), "{first:?}");
    assert!(!first.iter().any(|l| l.starts_with("seen")), "{first:?}");

    s.chain.0.borrow_mut().publish(&record(1), false);
    s.chain.0.borrow_mut().publish(&record(2), false);
    let lines = poll(&mut s).await;
    assert!(lines.contains(&"block 7".to_owned()), "{lines:?}");
    assert!(lines.contains(&"seen 1 revoked=false".to_owned()), "{lines:?}");
    assert!(lines.contains(&"seen 2 revoked=false".to_owned()), "{lines:?}");
    // The cursor stays at the first release not installed (its events are needed after a restart).
    assert_eq!(s.state.event_cursor().unwrap(), 6);

    // Release 2 is revoked on chain: the next poll proves it.
    let r2 = record(2);
    s.chain.0.borrow_mut().revoke(&r2);
    let lines = poll(&mut s).await;
    assert!(lines.contains(&"revoked 2".to_owned()), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("seen")),
        "nothing is seen twice: {lines:?}"
    );

    // The device installs release 1 (a message, not a re-read of the state store): the cursor moves past it.
    s.watcher
        .send(ReleaseInstalled::Installed {
            sequence: Sequence(1),
            hash: Blake3Hash([1; 32]),
        })
        .await
        .unwrap();
    let lines = poll(&mut s).await;
    assert!(!lines.iter().any(|l| l.starts_with("revoked")), "{lines:?}");
    assert_eq!(
        s.state.event_cursor().unwrap(),
        7,
        "the first pending release is now 2"
    );
}

/// An event whose record does not hash to the proven digest is refused and named; the real one still counts.
#[actix::test]
async fn a_forged_event_is_refused_and_the_proven_one_counts() {
    let chain = MemRpc::default();
    let mut s = setup(chain, 0);
    poll(&mut s).await;
    let mut forged = record(1);
    forged.target_hash = Blake3Hash([0x66; 32]);
    {
        let mut c = s.chain.0.borrow_mut();
        c.publish(&record(1), false);
        // A dishonest RPC adds an event for the same sequence with another record.
        c.emit(&forged, B256::from(forged.digest()));
    }
    let lines = poll(&mut s).await;
    assert!(lines.contains(&"seen 1 revoked=false".to_owned()), "{lines:?}");

    // Only the forged event is served: nothing is seen, the release is named as refused.
    let mut t = setup(MemRpc::default(), 0);
    poll(&mut t).await;
    let cursor = t.state.event_cursor().unwrap();
    {
        let mut c = t.chain.0.borrow_mut();
        c.publish(&record(1), false);
        c.logs.clear();
        c.emit(&forged, B256::from(forged.digest()));
    }
    let lines = poll(&mut t).await;
    assert!(!lines.iter().any(|l| l.starts_with("seen")), "{lines:?}");
    let why = lines.iter().find(|l| l.starts_with("rejected")).expect("named");
    assert!(
        why.contains("release 1") && why.contains("proven digest"),
        "{why}"
    );
    assert_eq!(
        t.state.event_cursor().unwrap(),
        cursor,
        "a poll with a refused release does not move the cursor past it"
    );
}

/// An RPC that fails is a chain error; nothing is reported as seen, and the next poll after it is back works.
#[actix::test]
async fn an_rpc_error_is_reported_and_the_next_poll_recovers() {
    let chain = MemRpc::default();
    let mut s = setup(chain, 0);
    poll(&mut s).await;
    s.chain.0.borrow_mut().publish(&record(1), false);
    s.chain.0.borrow_mut().down = true;
    let lines = poll(&mut s).await;
    let err = lines
        .iter()
        .find(|l| l.starts_with("chain error"))
        .expect("an error");
    assert!(err.contains("connection refused"), "{err}");
    assert!(!lines.iter().any(|l| l.starts_with("seen")), "{lines:?}");
    s.chain.0.borrow_mut().down = false;
    let lines = poll(&mut s).await;
    assert!(lines.contains(&"seen 1 revoked=false".to_owned()), "{lines:?}");
}

/// A release published already revoked is reported with its flag.
#[actix::test]
async fn a_release_revoked_before_it_was_seen_is_flagged() {
    let mut s = setup(MemRpc::default(), 0);
    poll(&mut s).await;
    s.chain.0.borrow_mut().publish(&record(1), true);
    let lines = poll(&mut s).await;
    assert!(lines.contains(&"seen 1 revoked=true".to_owned()), "{lines:?}");
}

mod recorded;
