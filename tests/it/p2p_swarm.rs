//! In-process swarms of real libp2p nodes over loopback TCP: Kademlia providers, our Bitswap, the blockstore,
//! and what a fetching node does with hostile peers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use firmchain_p2p::bitswap::Fault;
use firmchain_p2p::{
    Blockstore, FetchError, FetchLimits, FetchOptions, FetchSummary, P2p, P2pConfig, PeerId, ScheduleConfig,
    identity,
};
use firmchain_tests::pseudo_random;
use firmchain_update::dag::{DagOptions, DagRoot, ReadLimits, read_file};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct TestNode {
    pub(crate) p2p: P2p,
    _dir: tempfile::TempDir,
}

impl TestNode {
    pub(crate) async fn start(cfg: P2pConfig) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Blockstore::open(&dir.path().join("blocks.redb"), 1 << 30).unwrap());
        let (p2p, _task) = P2p::start(cfg, identity::Keypair::generate_ed25519(), store)
            .await
            .unwrap();
        TestNode { p2p, _dir: dir }
    }

    pub(crate) async fn addr(&self) -> firmchain_p2p::Multiaddr {
        self.p2p.listen_addrs().await.unwrap().remove(0)
    }

    pub(crate) fn import(&self, data: &[u8]) -> DagRoot {
        firmchain_p2p::import(self.p2p.store(), data, DagOptions::default(), |_| {}).unwrap()
    }

    /// The file under `root`, read back from this node's store (every block verified again on the way).
    pub(crate) fn read(&self, root: &DagRoot) -> Vec<u8> {
        let mut out = Vec::new();
        let limits = ReadLimits {
            max_size: root.size,
            ..ReadLimits::default()
        };
        read_file(&root.cid, &mut &**self.p2p.store(), &mut out, limits, |_| {}).unwrap();
        out
    }

    pub(crate) async fn fetch(&self, root: &DagRoot, opts: FetchOptions) -> Result<FetchSummary, FetchError> {
        tokio::time::timeout(TIMEOUT, self.p2p.fetch(root.cid, opts).finish())
            .await
            .expect("fetch timed out")
    }
}

pub(crate) fn opts(root: &DagRoot) -> FetchOptions {
    FetchOptions {
        limits: FetchLimits::for_file_size(root.size),
        stall_timeout: Duration::from_secs(20),
        ..FetchOptions::default()
    }
}

/// Options with short timeouts, for tests of hostile peers.
fn quick(root: &DagRoot, peers: Vec<PeerId>) -> FetchOptions {
    FetchOptions {
        peers,
        schedule: ScheduleConfig {
            window: 8,
            max_in_flight: 32,
            progress_timeout: Duration::from_millis(800),
            max_strikes: 1,
        },
        ..opts(root)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_fetch_from_the_publisher_then_from_each_other() {
    let data = pseudo_random(3 * 1024 * 1024 + 4321, 7);
    let publisher = TestNode::start(P2pConfig::loopback()).await;
    let root = publisher.import(&data);
    publisher.p2p.provide(root.cid).await.unwrap();
    let boot = publisher.addr().await;

    let mut devices = Vec::new();
    for _ in 0..9 {
        let cfg = P2pConfig {
            bootstrap: vec![boot.clone()],
            ..P2pConfig::loopback()
        };
        let node = TestNode::start(cfg).await;
        node.p2p.dial(boot.clone()).await.unwrap();
        devices.push(node);
    }
    // The first device finds the publisher through the DHT and fetches everything from it.
    let first = devices[0].fetch(&root, opts(&root)).await.unwrap();
    assert_eq!(first.peers[0].peer, publisher.p2p.peer_id());
    assert_eq!(devices[0].read(&root), data);
    devices[0].p2p.provide(root.cid).await.unwrap();

    // The publisher goes away; the others still complete, from the device that has the blocks (and, as they
    // finish, from each other).
    let publisher_id = publisher.p2p.peer_id();
    let uploaded = publisher.p2p.counters().uploaded_bytes.load(Ordering::Relaxed);
    publisher.p2p.shutdown().await.unwrap();
    drop(publisher);
    let mut fetches = Vec::new();
    for d in &devices[1..] {
        fetches.push(d.fetch(&root, opts(&root)));
    }
    let results = futures::future::join_all(fetches).await;
    for (d, r) in devices[1..].iter().zip(results) {
        let summary = r.unwrap();
        assert!(
            summary.peers.iter().all(|c| c.peer != publisher_id),
            "{summary:?}"
        );
        assert_eq!(summary.blocks, first.blocks);
        assert_eq!(d.read(&root), data);
    }
    // The publisher uploaded one copy of the DAG.
    assert_eq!(uploaded, first.bytes);
}

/// Origin seeding: eight devices fetch at once from a publisher that seeds each block once per window; they
/// share the blocks among themselves, and the publisher uploads little more than one copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeding_publisher_uploads_about_one_copy_to_a_fleet_fetching_at_once() {
    let data = pseudo_random(2 * 1024 * 1024 + 99, 21);
    let publisher = TestNode::start(P2pConfig {
        // Wider than the node's 1 s, so that a loaded CI machine does not turn the test into a race.
        seed_window: Some(Duration::from_secs(5)),
        ..P2pConfig::loopback()
    })
    .await;
    let root = publisher.import(&data);
    let boot = publisher.addr().await;
    let mut devices = Vec::new();
    for _ in 0..8 {
        let node = TestNode::start(P2pConfig::loopback()).await;
        node.p2p.dial(boot.clone()).await.unwrap();
        devices.push(node);
    }
    // Every device knows every other one (as the DHT would tell them).
    for (i, a) in devices.iter().enumerate() {
        for b in &devices[i + 1..] {
            a.p2p.dial(b.addr().await).await.unwrap();
        }
    }
    let fetches = devices.iter().map(|d| d.fetch(&root, opts(&root)));
    let results = futures::future::join_all(fetches).await;
    let mut from_devices = 0;
    for (d, r) in devices.iter().zip(results) {
        let summary = r.unwrap();
        from_devices += summary
            .peers
            .iter()
            .filter(|c| c.peer != publisher.p2p.peer_id())
            .map(|c| c.bytes)
            .sum::<u64>();
        assert_eq!(d.read(&root), data);
    }
    let uploaded = publisher.p2p.counters().uploaded_bytes.load(Ordering::Relaxed);
    let dag = data.len() as u64;
    // Without seeding it would upload about one copy per device (8); on a loaded machine some blocks are sent
    // again once the window has passed, hence the margin (the fleet bench has the precise figure).
    assert!(
        uploaded < 3 * dag,
        "the publisher uploaded {uploaded} bytes for a {dag}-byte DAG"
    );
    assert!(
        from_devices >= 6 * dag,
        "devices served each other only {from_devices} bytes"
    );
}

/// Origin seeding for a device that learns of the release late: the publisher refuses it for as long as the
/// device that already has the blocks is connected, however long ago it sent them, and the late device finds
/// that one through the DHT, because a fetching device announces the root itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_device_gets_the_blocks_from_the_first_one_which_announced_them_while_fetching() {
    let data = pseudo_random(2 * 1024 * 1024 + 7, 22);
    // Long enough that a loaded machine still finds the first device through the DHT within it.
    let patience = Duration::from_secs(4);
    let publisher = TestNode::start(P2pConfig {
        seed_window: Some(patience),
        ..P2pConfig::loopback()
    })
    .await;
    let root = publisher.import(&data);
    publisher.p2p.provide(root.cid).await.unwrap();
    let boot = publisher.addr().await;
    let device = || async {
        let node = TestNode::start(P2pConfig {
            bootstrap: vec![boot.clone()],
            ..P2pConfig::loopback()
        })
        .await;
        node.p2p.dial(boot.clone()).await.unwrap();
        node
    };
    let announcing = FetchOptions {
        announce: true,
        ..opts(&root)
    };
    let first = device().await;
    let got = first.fetch(&root, announcing.clone()).await.unwrap();
    assert_eq!(got.peers[0].peer, publisher.p2p.peer_id());
    let one_copy = publisher.p2p.counters().uploaded_bytes.load(Ordering::Relaxed);

    // Later than the patience after the publisher's sends (the time passing is the point of the test).
    tokio::time::sleep(patience + Duration::from_millis(500)).await;
    let late = device().await;
    let summary = late.fetch(&root, announcing).await.unwrap();
    assert_eq!(late.read(&root), data);
    let from_first: u64 = summary
        .peers
        .iter()
        .filter(|c| c.peer == first.p2p.peer_id())
        .map(|c| c.bytes)
        .sum();
    let again = publisher.p2p.counters().uploaded_bytes.load(Ordering::Relaxed) - one_copy;
    assert!(
        from_first >= got.bytes * 3 / 4,
        "the late device took {from_first} of {} bytes from the first one: {summary:?}",
        got.bytes
    );
    assert!(
        again < got.bytes / 4,
        "the publisher sent {again} bytes again for a {}-byte DAG",
        got.bytes
    );
}

/// Start `n` providers of `data` (each with `fault`, if any) and return them with the DAG root.
async fn providers(data: &[u8], faults: &[Option<Fault>]) -> (Vec<TestNode>, DagRoot) {
    let mut nodes = Vec::new();
    let mut root = None;
    for fault in faults {
        let node = TestNode::start(P2pConfig {
            fault: *fault,
            ..P2pConfig::loopback()
        })
        .await;
        root = Some(node.import(data));
        nodes.push(node);
    }
    (nodes, root.unwrap())
}

async fn fetcher_connected_to(nodes: &[TestNode]) -> (TestNode, Vec<PeerId>) {
    let fetcher = TestNode::start(P2pConfig::loopback()).await;
    let mut peers = Vec::new();
    for n in nodes {
        peers.push(fetcher.p2p.dial(n.addr().await).await.unwrap());
    }
    (fetcher, peers)
}

/// Options with the default timeouts (a loaded CI machine can be slow), naming the peers to ask.
pub(crate) fn with_peers(root: &DagRoot, peers: Vec<PeerId>) -> FetchOptions {
    FetchOptions { peers, ..opts(root) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_providers_share_the_load() {
    let data = pseudo_random(4 * 1024 * 1024, 11);
    let (nodes, root) = providers(&data, &[None, None, None, None]).await;
    let (fetcher, peers) = fetcher_connected_to(&nodes).await;
    let summary = fetcher.fetch(&root, with_peers(&root, peers)).await.unwrap();
    assert_eq!(fetcher.read(&root), data);
    assert!(summary.peers.len() >= 3, "blocks came from {:?}", summary.peers);
    assert!(summary.rejected.is_empty());
}

/// How a hostile peer gives itself away.
#[derive(Clone, Copy)]
enum Tell {
    /// By what it sends (wrong or oversized bytes): the progress timeout is long, so only what arrives can
    /// get the peer dropped, however slowly a loaded machine moves the bytes.
    Sends,
    /// By silence: the progress timeout is the defence, so it is short.
    Silence,
}

/// One hostile provider and one honest one, in two steps so that no step depends on one peer being faster
/// than another: a fetch from the hostile one alone fails, naming it, what it was asked for and why it was
/// dropped, with nothing unverified stored; then the honest one connects and a fetch completes, with the store
/// holding exactly the DAG's blocks.
async fn hostile_peer_is_dropped(fault: Fault, tell: Tell, expect: &str) {
    let data = pseudo_random(2 * 1024 * 1024 + 17, 5);
    let (nodes, root) = providers(&data, &[Some(fault), None]).await;
    let bad = nodes[0].p2p.peer_id();
    let fetcher = TestNode::start(P2pConfig::loopback()).await;
    fetcher.p2p.dial(nodes[0].addr().await).await.unwrap();
    let mut alone = FetchOptions {
        // The stall only starts once the hostile peer is dropped (nobody is left to ask).
        stall_timeout: Duration::from_secs(2),
        ..quick(&root, vec![bad])
    };
    if let Tell::Sends = tell {
        alone.schedule.progress_timeout = TIMEOUT;
    }
    let err = fetcher.fetch(&root, alone).await.unwrap_err();
    let FetchError::NoProviders(failed) = &err else {
        panic!("{fault:?}: {err}");
    };
    let rejection = failed
        .rejected
        .iter()
        .find(|r| r.peer == bad)
        .unwrap_or_else(|| panic!("{fault:?} peer was not dropped: {err}"));
    assert!(rejection.reason.contains(expect), "{rejection}");
    assert!(!rejection.asked.is_empty(), "{rejection}");
    let text = rejection.to_string();
    assert!(
        text.contains(&bad.to_string()) && text.contains(&rejection.asked[0].to_string()),
        "{text}"
    );
    assert_eq!(
        fetcher.p2p.store().stats().unwrap().blocks,
        0,
        "nothing unverified is stored"
    );
    assert!(fetcher.p2p.counters().rejected.load(Ordering::Relaxed) >= 1);

    fetcher.p2p.dial(nodes[1].addr().await).await.unwrap();
    let summary = fetcher.fetch(&root, opts(&root)).await.unwrap();
    assert_eq!(fetcher.read(&root), data);
    assert!(
        summary.peers.iter().any(|c| c.peer == nodes[1].p2p.peer_id()),
        "{summary:?}"
    );
    if let Tell::Sends = tell {
        assert!(
            summary.peers.iter().all(|c| c.peer != bad),
            "a banned peer was asked: {summary:?}"
        );
    }
    let stats = fetcher.p2p.store().stats().unwrap();
    assert_eq!(
        stats.blocks, summary.blocks,
        "only the DAG's verified blocks are stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_serving_wrong_bytes_is_dropped() {
    hostile_peer_is_dropped(Fault::CorruptBlocks, Tell::Sends, "hashes to").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_serving_oversized_blocks_is_dropped() {
    hostile_peer_is_dropped(Fault::OversizeBlocks, Tell::Sends, "over the").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_withholding_blocks_is_dropped() {
    hostile_peer_is_dropped(Fault::Withhold, Tell::Silence, "delivered nothing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn very_slow_peer_is_dropped() {
    hostile_peer_is_dropped(
        Fault::Slow(Duration::from_secs(5)),
        Tell::Silence,
        "delivered nothing",
    )
    .await;
}

/// The 10 s stall: a want written into a stream that died with its connection got no answer, and the only
/// provider was judged silent. A want that got no answer is asked again before the peer is judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_want_is_asked_again_before_the_peer_is_judged() {
    let data = pseudo_random(1024 * 1024 + 9, 13);
    let (nodes, root) = providers(&data, &[Some(Fault::LoseFirstWants)]).await;
    let (fetcher, peers) = fetcher_connected_to(&nodes).await;
    let opts = FetchOptions {
        stall_timeout: Duration::from_secs(3),
        ..quick(&root, peers)
    };
    let summary = fetcher.fetch(&root, opts).await.unwrap();
    assert_eq!(fetcher.read(&root), data);
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_hostile_peers_fail_the_fetch_naming_block_and_peers() {
    let data = pseudo_random(600 * 1024, 9);
    let (nodes, root) = providers(&data, &[Some(Fault::CorruptBlocks)]).await;
    let (fetcher, peers) = fetcher_connected_to(&nodes).await;
    let opts = FetchOptions {
        stall_timeout: Duration::from_secs(1),
        ..quick(&root, peers)
    };
    let err = fetcher.fetch(&root, opts).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FetchError::NoProviders(_)), "{text}");
    assert!(text.contains(&root.cid.to_string()), "{text}");
    assert!(text.contains(&nodes[0].p2p.peer_id().to_string()), "{text}");
    assert_eq!(
        fetcher.p2p.store().stats().unwrap().blocks,
        0,
        "nothing unverified is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_resumes_from_the_store_and_asks_only_for_the_dag() {
    let data = pseudo_random(3 * 1024 * 1024, 3);
    let (nodes, root) = providers(&data, &[None]).await;
    // The provider also holds an unrelated file: none of it may be asked for.
    let other = nodes[0].import(&pseudo_random(1024 * 1024, 4));
    assert_ne!(other.cid, root.cid);
    let (fetcher, peers) = fetcher_connected_to(&nodes).await;
    // Half the leaves were fetched before a restart.
    let mut leaves = Vec::new();
    read_file(
        &root.cid,
        &mut &**nodes[0].p2p.store(),
        &mut std::io::sink(),
        ReadLimits::default(),
        |_| {},
    )
    .unwrap();
    {
        let mut all = Vec::new();
        firmchain_update::dag::build_from_reader(&data[..], DagOptions::default(), |cid, block| {
            all.push((*cid, bytes::Bytes::copy_from_slice(block)));
        })
        .unwrap();
        leaves.extend(all.into_iter().filter(|(c, _)| c.codec() == 0x55).take(6));
    }
    fetcher.p2p.store().put_batch(None, &leaves).unwrap();

    let summary = fetcher.fetch(&root, with_peers(&root, peers)).await.unwrap();
    assert_eq!(summary.from_store, 6);
    assert_eq!(fetcher.read(&root), data);
    let served = nodes[0].p2p.counters().uploaded_blocks.load(Ordering::Relaxed);
    assert_eq!(
        served,
        summary.blocks - 6,
        "only missing blocks of the DAG were served"
    );
    assert_eq!(fetcher.p2p.store().stats().unwrap().blocks, summary.blocks);
    assert!(fetcher.p2p.store().pinned_roots().unwrap().contains(&root.cid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_stops_at_the_size_cap() {
    let data = pseudo_random(2 * 1024 * 1024, 8);
    let (nodes, root) = providers(&data, &[None]).await;
    let (fetcher, peers) = fetcher_connected_to(&nodes).await;
    let opts = FetchOptions {
        limits: FetchLimits::for_file_size(1024 * 1024),
        ..with_peers(&root, peers)
    };
    let err = fetcher.fetch(&root, opts).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    let cap = FetchLimits::for_file_size(1024 * 1024).max_bytes;
    assert!(fetcher.p2p.store().stats().unwrap().bytes <= cap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_over_quic() {
    let quic = P2pConfig {
        listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()],
        ..P2pConfig::loopback()
    };
    let provider = TestNode::start(quic.clone()).await;
    let data = pseudo_random(1024 * 1024 + 3, 12);
    let root = provider.import(&data);
    let addr = provider.addr().await;
    assert!(addr.to_string().contains("/quic-v1/"), "{addr}");
    let fetcher = TestNode::start(quic).await;
    let peer = fetcher.p2p.dial(addr).await.unwrap();
    let summary = fetcher.fetch(&root, with_peers(&root, vec![peer])).await.unwrap();
    assert_eq!(summary.peers[0].peer, peer);
    assert_eq!(fetcher.read(&root), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blake3_leaves_fetch_and_verify() {
    let provider = TestNode::start(P2pConfig::loopback()).await;
    let data = pseudo_random(900_000, 13);
    let opts = DagOptions {
        leaf_hash: firmchain_update::dag::LeafHash::Blake3,
        ..DagOptions::default()
    };
    let root = firmchain_p2p::import(provider.p2p.store(), &data[..], opts, |_| {}).unwrap();
    let (fetcher, peers) = fetcher_connected_to(std::slice::from_ref(&provider)).await;
    fetcher.fetch(&root, with_peers(&root, peers)).await.unwrap();
    assert_eq!(fetcher.read(&root), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_entry_of_a_release_bundle_is_fetched_alone() {
    let provider = TestNode::start(P2pConfig::loopback()).await;
    let patch = pseudo_random(300_000, 31);
    let full = pseudo_random(3 * 1024 * 1024, 32);
    let (bundle, entries) = firmchain_p2p::import_bundle(
        provider.p2p.store(),
        vec![("full", &full[..]), ("patch", &patch[..])],
        DagOptions::default(),
    )
    .unwrap();
    let patch_root = entries.iter().find(|(n, _)| n == "patch").unwrap().1;
    let (fetcher, peers) = fetcher_connected_to(std::slice::from_ref(&provider)).await;
    let root = DagRoot {
        cid: bundle,
        size: patch.len() as u64,
        leaves: 0,
        dag_size: 0,
    };
    let opts = FetchOptions {
        entry: Some("patch".into()),
        ..with_peers(&patch_root, peers.clone())
    };
    let summary = fetcher.fetch(&root, opts).await.unwrap();
    assert_eq!(summary.entry, Some(patch_root.cid));
    assert_eq!(fetcher.read(&patch_root), patch);
    // Only the directory block and the patch's blocks crossed the wire.
    let uploaded = provider.p2p.counters().uploaded_blocks.load(Ordering::Relaxed);
    assert_eq!(uploaded, summary.blocks);
    assert_eq!(
        summary.blocks, 4,
        "the directory, the patch's file node and its 2 leaves"
    );
    assert_eq!(fetcher.p2p.store().stats().unwrap().blocks, summary.blocks);
    let missing = FetchOptions {
        entry: Some("nope".into()),
        ..with_peers(&patch_root, peers)
    };
    let err = fetcher.fetch(&root, missing).await.unwrap_err();
    assert!(matches!(err, FetchError::NoEntry { .. }), "{err}");
}
