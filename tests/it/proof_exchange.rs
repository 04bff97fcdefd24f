//! The proof protocols between real libp2p nodes over loopback TCP: a node asks a peer for a head proof and
//! gets what the peer's shelf holds; a pushed head proof reaches the connected peer's announcement queue; a
//! peer that sends a malformed request or an oversized announcement is banned and named; a peer over its
//! request budget is refused while others are still served; a burst of requests from several peers is all
//! answered, and one past the limits is refused by name, never dropped.

use std::time::Duration;

use firmchain_p2p::P2pConfig;
use firmchain_p2p::proofs::{
    ANNOUNCE_PROTOCOL, MAX_ITEM_BYTES, MAX_OPEN_PER_PEER, ProofRequest, ProofResponse, ProofsError,
    REQUEST_PROTOCOL, REQUESTS_PER_WINDOW, ShelfItem,
};
use futures::{AsyncReadExt, AsyncWriteExt};

use crate::hostile_peer::HostilePeer;
use crate::p2p_swarm::TestNode;

const PRODUCT: [u8; 32] = [0x50; 32];

async fn connected() -> (TestNode, TestNode) {
    let a = TestNode::start(P2pConfig::loopback()).await;
    let b = TestNode::start(P2pConfig::loopback()).await;
    b.p2p.dial(a.addr().await).await.unwrap();
    (a, b)
}

async fn wait_banned(node: &TestNode, peer: firmchain_p2p::PeerId) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !node.p2p.banned_peers().await.unwrap().contains(&peer) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the peer was not banned");
}

#[tokio::test]
async fn a_peer_serves_what_its_shelf_holds_and_pushes_new_head_proofs() {
    let (a, b) = connected().await;
    let req = ProofRequest::Head { product: PRODUCT };
    let got = b.p2p.proofs().request(a.p2p.peer_id(), req).await.unwrap();
    assert_eq!(got, ProofResponse::NotHeld);
    assert!(a.p2p.proofs().put(ShelfItem::Head {
        product: PRODUCT,
        slot: 7,
        bytes: b"head proof at slot 7".to_vec(),
    }));
    let got = b.p2p.proofs().request(a.p2p.peer_id(), req).await.unwrap();
    assert_eq!(got, ProofResponse::Found(vec![b"head proof at slot 7".to_vec()]));

    let mut queue = b.p2p.proofs().take_announcements().unwrap();
    assert_eq!(
        a.p2p
            .proofs()
            .announce(b"head proof at slot 8".to_vec(), None)
            .await,
        1
    );
    let pushed = tokio::time::timeout(Duration::from_secs(20), queue.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pushed.peer, a.p2p.peer_id());
    assert_eq!(pushed.bytes, b"head proof at slot 8");
}

#[tokio::test]
async fn a_malformed_request_gets_the_peer_banned() {
    let a = TestNode::start(P2pConfig::loopback()).await;
    let hostile = HostilePeer::connect(&a.addr().await).await;
    let mut s = hostile.open_on(REQUEST_PROTOCOL).await.unwrap();
    s.write_all(&[9, 9, 9]).await.unwrap();
    s.close().await.unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "no answer to garbage");
    wait_banned(&a, hostile.peer_id).await;
    assert_eq!(a.p2p.proofs().counts().malformed, 1);
}

#[tokio::test]
async fn an_oversized_announcement_is_refused_before_it_is_read_and_the_peer_banned() {
    let a = TestNode::start(P2pConfig::loopback()).await;
    let hostile = HostilePeer::connect(&a.addr().await).await;
    let mut s = hostile.open_on(ANNOUNCE_PROTOCOL).await.unwrap();
    // Claims 4 GiB, sends a little more than the cap.
    let mut frame = u32::MAX.to_le_bytes().to_vec();
    frame.extend(std::iter::repeat_n(0u8, MAX_ITEM_BYTES + 64));
    let _ = s.write_all(&frame).await;
    let _ = s.close().await;
    wait_banned(&a, hostile.peer_id).await;
    let mut queue = a.p2p.proofs().take_announcements().unwrap();
    assert!(queue.try_recv().is_err(), "nothing reached the node");
}

#[tokio::test]
async fn a_peer_over_its_request_budget_is_refused_and_others_are_still_served() {
    let (a, b) = connected().await;
    a.p2p.proofs().put(ShelfItem::Head {
        product: PRODUCT,
        slot: 1,
        bytes: vec![1],
    });
    let req = ProofRequest::Head { product: PRODUCT };
    let mut refused = 0;
    for _ in 0..REQUESTS_PER_WINDOW + 4 {
        if b.p2p.proofs().request(a.p2p.peer_id(), req).await.is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 4, "exactly the requests over the budget are refused");
    assert_eq!(a.p2p.proofs().counts().over_budget, 4);
    let c = TestNode::start(P2pConfig::loopback()).await;
    c.p2p.dial(a.addr().await).await.unwrap();
    assert_eq!(
        c.p2p.proofs().request(a.p2p.peer_id(), req).await.unwrap(),
        ProofResponse::Found(vec![vec![1]])
    );
    assert!(
        !a.p2p.banned_peers().await.unwrap().contains(&b.p2p.peer_id()),
        "a busy peer is refused, not banned"
    );
}

/// A fleet asks one device for proofs at the same moment: every stream of the burst is answered (the swarm's
/// stream channel of one slot used to drop all but one stream of a burst, and the asking node saw a reset).
/// Past a peer's open-stream limit, a request is refused by name (closed unanswered, counted), never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_proof_requests_from_several_peers_is_all_answered_or_refused_by_name() {
    let a = TestNode::start(P2pConfig::loopback()).await;
    a.p2p.proofs().put(ShelfItem::Head {
        product: PRODUCT,
        slot: 3,
        bytes: b"head proof at slot 3".to_vec(),
    });
    let want = ProofResponse::Found(vec![b"head proof at slot 3".to_vec()]);
    let req = ProofRequest::Head { product: PRODUCT };
    let mut askers = Vec::new();
    for _ in 0..6 {
        let n = TestNode::start(P2pConfig::loopback()).await;
        n.p2p.dial(a.addr().await).await.unwrap();
        askers.push(n);
    }
    let server = a.p2p.peer_id();
    let burst = askers
        .iter()
        .flat_map(|n| (0..4).map(move |_| n.p2p.proofs().request(server, req)));
    let answers = futures::future::join_all(burst).await;
    for answer in &answers {
        assert_eq!(answer.as_ref().unwrap(), &want);
    }
    assert_eq!(a.p2p.proofs().counts().served, 24);

    // One peer opens twice its limit at once: each request is answered or refused by name.
    let asker = &askers[0];
    let many = 2 * MAX_OPEN_PER_PEER;
    let burst = (0..many).map(|_| asker.p2p.proofs().request(server, req));
    let answers = futures::future::join_all(burst).await;
    let mut answered = 0;
    for answer in answers {
        match answer {
            Ok(got) => {
                assert_eq!(got, want);
                answered += 1;
            }
            Err(ProofsError::Refused { peer }) => assert_eq!(peer, server),
            Err(e) => panic!("a request was dropped, not refused: {e}"),
        }
    }
    assert!(
        answered >= MAX_OPEN_PER_PEER,
        "only {answered} of {many} answered"
    );
    let counts = a.p2p.proofs().counts();
    assert_eq!(
        counts.served + counts.over_concurrency,
        24 + many as u64,
        "every stream is served or counted as refused: {counts:?}"
    );
    assert_eq!(counts.served, 24 + answered as u64);
    assert!(!a.p2p.banned_peers().await.unwrap().contains(&asker.p2p.peer_id()));
}
