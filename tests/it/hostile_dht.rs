//! Attacks on a node's Kademlia store by a hostile peer over real sockets.

use firmchain_p2p::P2pConfig;
use firmchain_tests::pseudo_random;

use crate::hostile_peer::{HostilePeer, vm_hwm};
use crate::p2p_swarm::{TestNode, opts};

const MIB: u64 = 1024 * 1024;

/// A peer asks the DHT node to store 100,000 provider records of its own, with 16 addresses each: the node
/// keeps only its quota, its memory stays within idle + 64 MiB, and an honest provider that announces a root
/// afterwards is still found through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_record_flood_leaves_room_for_honest_providers() {
    let dht = TestNode::start(P2pConfig::loopback()).await;
    let boot = dht.addr().await;
    let flooder = HostilePeer::connect(&boot).await;
    let idle = vm_hwm();
    let sent = flooder.flood_provider_records(100_000, 16).await;
    assert!(sent > 1000, "the flood stopped after {sent} records");
    let peak = vm_hwm();

    let data = pseudo_random(1024 * 1024 + 5, 41);
    let provider = TestNode::start(P2pConfig {
        bootstrap: vec![boot.clone()],
        ..P2pConfig::loopback()
    })
    .await;
    let root = provider.import(&data);
    provider.p2p.dial(boot.clone()).await.unwrap();
    provider.p2p.provide(root.cid).await.unwrap();
    let device = TestNode::start(P2pConfig {
        bootstrap: vec![boot.clone()],
        ..P2pConfig::loopback()
    })
    .await;
    device.p2p.dial(boot).await.unwrap();
    let summary = device.fetch(&root, opts(&root)).await.unwrap();
    assert_eq!(device.read(&root), data);
    assert_eq!(summary.peers[0].peer, provider.p2p.peer_id(), "{summary:?}");
    assert!(
        peak < idle + 64 * MIB,
        "peak RSS grew from {} MiB to {} MiB under the flood",
        idle / MIB,
        peak / MIB
    );
}
