//! Attacks on a node's Bitswap server by a hostile peer over real sockets: what each costs the node, and that
//! honest peers are served throughout.

use std::sync::atomic::Ordering;
use std::time::Duration;

use firmchain_p2p::{P2pConfig, PeerId};
use firmchain_tests::pseudo_random;
use firmchain_update::dag::{self, DEFAULT_CHUNK_SIZE};

use crate::hostile_peer::{HostilePeer, vm_hwm, wants, write_message};
use crate::p2p_swarm::{TestNode, with_peers};

const MIB: u64 = 1024 * 1024;

/// Under an attack, an honest fetch from `server` completes with no peer dropped, and the peak RSS of this
/// process (both nodes) stays within `idle` + 64 MiB.
async fn honest_fetch_within_bounded_memory(
    honest: &TestNode,
    root: &dag::DagRoot,
    data: &[u8],
    server: PeerId,
    idle: u64,
) {
    let summary = honest.fetch(root, with_peers(root, vec![server])).await.unwrap();
    assert_eq!(honest.read(root), data);
    assert!(summary.rejected.is_empty(), "{summary:?}");
    let peak = vm_hwm();
    assert!(
        peak < idle + 64 * MIB,
        "peak RSS grew from {} MiB to {} MiB under the attack",
        idle / MIB,
        peak / MIB
    );
}

/// Four streams, each carrying one message of 4,096 wants for the same 256 KiB block (172 KB on the wire, a
/// gigabyte of blocks if each want were loaded): the node merges the wants, keeps its peak memory within
/// idle + 64 MiB, serves an honest fetch meanwhile, and bans the peer by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_wants_on_several_streams_cost_bounded_memory_and_get_the_peer_banned() {
    let data = pseudo_random(4 * 1024 * 1024, 31);
    let server = TestNode::start(P2pConfig::loopback()).await;
    let root = server.import(&data);
    let addr = server.addr().await;
    let leaf = dag::cid_of(dag::RAW, &data[..DEFAULT_CHUNK_SIZE]);
    assert!(server.p2p.store().get(&leaf).unwrap().is_some());
    let honest = TestNode::start(P2pConfig::loopback()).await;
    let server_id = honest.p2p.dial(addr.clone()).await.unwrap();
    let hostile = HostilePeer::connect(&addr).await;

    let idle = vm_hwm();
    let msg = wants(std::iter::repeat_n(leaf, 4096));
    let mut streams = Vec::new();
    for _ in 0..4 {
        // The node may refuse the stream or reset it; the attack goes on with what it can.
        if let Ok(mut s) = hostile.open().await {
            let _ = write_message(&mut s, &msg).await;
            streams.push(s);
        }
    }
    honest_fetch_within_bounded_memory(&honest, &root, &data, server_id, idle).await;

    // The node names the peer: a rejection counted and a ban (the connection is closed and refused).
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if server
                .p2p
                .banned_peers()
                .await
                .unwrap()
                .contains(&hostile.peer_id)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the hostile peer was not banned");
    assert!(server.p2p.counters().rejected.load(Ordering::Relaxed) >= 1);
    drop(streams);
}

/// A DontHave flood: 64 messages of 4,096 wants each for blocks that exist nowhere. Each costs the node a
/// `DontHave` and no block load; a peer that holds more than the cap of wants is cut off. The node keeps its
/// peak memory within idle + 64 MiB and serves an honest fetch meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dont_have_flood_costs_bounded_memory_and_honest_fetches_complete() {
    let data = pseudo_random(4 * 1024 * 1024, 32);
    let server = TestNode::start(P2pConfig::loopback()).await;
    let root = server.import(&data);
    let addr = server.addr().await;
    let honest = TestNode::start(P2pConfig::loopback()).await;
    let server_id = honest.p2p.dial(addr.clone()).await.unwrap();
    let hostile = HostilePeer::connect(&addr).await;

    let idle = vm_hwm();
    let mut sent = 0;
    if let Ok(mut s) = hostile.open().await {
        for round in 0..64u32 {
            let cids =
                (0..4096u32).map(|i| dag::cid_of(dag::RAW, &[round.to_le_bytes(), i.to_le_bytes()].concat()));
            // Past the held-wants cap the node closes the stream: the flood stops there.
            if write_message(&mut s, &wants(cids)).await.is_err() {
                break;
            }
            sent += 1;
        }
    }
    assert!(sent >= 1, "the hostile peer could not send one message");
    honest_fetch_within_bounded_memory(&honest, &root, &data, server_id, idle).await;
}
