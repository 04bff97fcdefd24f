//! A provider that answers the way go-bitswap (kubo) does: every block on a stream of its own, opened from
//! several workers at once. Each of those streams carries blocks we asked for; none may be lost, or the fetch
//! waits out a progress timeout before it asks again (issue 13's stall, seen with kubo and in the fleet).

use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use firmchain_p2p::bitswap::PROTOCOLS;
use firmchain_p2p::bitswap::proto::{Message, Prefix, WireBlock};
use firmchain_p2p::{Blockstore, Multiaddr, P2pConfig, PeerId};
use firmchain_tests::pseudo_random;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::Stream;
use libp2p::swarm::SwarmEvent;

use crate::hostile_peer::write_message;
use crate::p2p_swarm::{TestNode, with_peers};

/// Read one length-prefixed frame, or `None` at the end of the stream.
async fn read_frame(s: &mut Stream) -> Option<bytes::Bytes> {
    let mut len = Vec::new();
    loop {
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).await.is_err() {
            return None;
        }
        len.push(b[0]);
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let (n, _) = firmchain_update::varint::decode(&len)?;
    let mut body = vec![0u8; usize::try_from(n).ok()?];
    s.read_exact(&mut body).await.ok()?;
    Some(body.into())
}

/// Connect to the node at `addr` as a provider of the blocks in `store` that answers each want on a new
/// stream, all at once.
async fn go_style_provider(addr: &Multiaddr, store: Arc<Blockstore>) -> PeerId {
    let mut swarm = crate::hostile_peer::stream_swarm();
    let me = *swarm.local_peer_id();
    let control = swarm.behaviour().new_control();
    for protocol in PROTOCOLS {
        let mut incoming = control.clone().accept(protocol).unwrap();
        let (control, store) = (control.clone(), store.clone());
        tokio::spawn(async move {
            while let Some((node, mut s)) = incoming.next().await {
                let (control, store) = (control.clone(), store.clone());
                tokio::spawn(async move {
                    while let Some(frame) = read_frame(&mut s).await {
                        let msg = Message::decode(&frame).unwrap();
                        for e in msg.wantlist.into_iter().filter(|e| !e.cancel) {
                            let Some(data) = store.get(&e.cid).unwrap() else {
                                continue;
                            };
                            tokio::spawn(answer(node, e.cid, data, control.clone()));
                        }
                    }
                });
            }
        });
    }
    swarm.dial(addr.clone()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await {
                break;
            }
        }
    })
    .await
    .unwrap();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    me
}

/// One block on a stream of its own, as go-bitswap's `SendMessage` does: open, write, close.
async fn answer(node: PeerId, cid: Cid, data: Vec<u8>, mut control: libp2p_stream::Control) {
    let Ok(mut s) = control.open_stream(node, PROTOCOLS[0].clone()).await else {
        return;
    };
    let msg = Message {
        blocks: vec![WireBlock {
            prefix: Prefix::of(&cid),
            data: data.into(),
        }],
        ..Message::default()
    };
    let _ = write_message(&mut s, &msg).await;
    let _ = s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_that_arrive_each_on_a_new_stream_at_once_are_all_received() {
    // The blocks live in a node's store; the provider serves them from there.
    let seed = TestNode::start(P2pConfig::loopback()).await;
    let data = pseudo_random(40 * 262_144 + 77, 41);
    let root = seed.import(&data);
    let node = TestNode::start(P2pConfig::loopback()).await;
    let provider = go_style_provider(&node.addr().await, seed.p2p.store().clone()).await;
    let summary = node
        .fetch(&root, with_peers(&root, vec![provider]))
        .await
        .unwrap();
    assert_eq!(node.read(&root), data);
    assert_eq!(
        summary.timeouts, 0,
        "wants went unanswered: the streams that carried their blocks were lost ({summary:?})"
    );
}
