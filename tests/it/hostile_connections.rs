//! Floods of inbound connections over real sockets: room stays for the node's own dials, and one IP address
//! gets only its share.

use std::time::Duration;

use firmchain_p2p::P2pConfig;
use firmchain_tests::pseudo_random;

use crate::hostile_peer::HostilePeer;
use crate::p2p_swarm::{TestNode, with_peers};

/// 40 peer ids connect to a device that allows 24 connections: the device can still dial a provider and fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_flood_cannot_lock_a_device_out_of_its_fleet() {
    let device = TestNode::start(P2pConfig {
        max_connections: 24,
        reserved_outbound: 8,
        ..P2pConfig::loopback()
    })
    .await;
    let addr = device.addr().await;
    let mut flood = Vec::new();
    // Bare connections: the flood is of connections, so the device's fetch is not also slowed by 40 peers that
    // swallow wants (that is the Sybil row of SECURITY.md).
    for _ in 0..40 {
        if let Ok(p) = HostilePeer::try_connect_bare(&addr).await {
            flood.push(p);
        }
    }
    assert!(!flood.is_empty());
    let data = pseudo_random(512 * 1024 + 3, 51);
    let provider = TestNode::start(P2pConfig::loopback()).await;
    let root = provider.import(&data);
    let peer = device
        .p2p
        .dial(provider.addr().await)
        .await
        .expect("the device could not dial its provider");
    device.fetch(&root, with_peers(&root, vec![peer])).await.unwrap();
    assert_eq!(device.read(&root), data);
}

/// With a limit of 4 per IP address, 10 peer ids from 127.0.0.1 get 4 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ip_address_gets_only_its_share_of_connections() {
    let node = TestNode::start(P2pConfig {
        max_connections_per_ip: 4,
        limit_loopback: true,
        ..P2pConfig::loopback()
    })
    .await;
    let addr = node.addr().await;
    let mut peers = Vec::new();
    for _ in 0..10 {
        if let Ok(p) = HostilePeer::try_connect(&addr).await {
            peers.push(p);
        }
    }
    // Refused connections may look established to the dialer for a moment: count on the node's side.
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = node.p2p.connected_peers().await.unwrap().len();
            if n <= 4 {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("more than 4 connections from one address stayed open");
    assert_eq!(connected, 4);
}
