//! Hostile proof peers against a `peers`-mode device (a real `firmchain run` process with no RPC): real libp2p
//! nodes in the test process connect to it, serve and push forged head proofs (a forged execution state root, a
//! header only 8 of 32 committee members signed, a proof for another product, one for another contract, and
//! garbage). Each is refused, the peer is banned and named in `/status`, and the honest repository's proofs
//! still win: the device installs the next release. An old head proof replayed by a peer is refused without
//! blame (an honest peer may relay a late copy), and that peer stays connected.

mod common;
use common::Fleet;
use common::beacon::{Beacon, Miner};

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use firmchain_lightclient::proof::{decode_head_proof, encode_head_proof};
use firmchain_p2p::proofs::{ProofRequest, ProofResponse, ShelfItem};
use firmchain_p2p::{Blockstore, P2p, P2pConfig, PeerId};
use firmchain_tests::fleet::{PRODUCT, active_image};
use firmchain_update::ProductId;
use serde_json::Value;

const T: Duration = Duration::from_secs(90);

/// A libp2p node of the test process, connected to `addr`.
async fn peer(dir: &tempfile::TempDir, name: &str, addr: &str) -> P2p {
    let store = Arc::new(Blockstore::open(&dir.path().join(format!("{name}.redb")), 1 << 26).unwrap());
    let key = firmchain_p2p::identity::Keypair::generate_ed25519();
    let (p2p, _task) = P2p::start(P2pConfig::loopback(), key, store).await.unwrap();
    p2p.dial(addr.parse().unwrap()).await.unwrap();
    p2p
}

fn rejected(v: &Value) -> Vec<String> {
    v["rejected"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_proofs_from_peers_are_refused_their_senders_named_and_honest_proofs_win() {
    let f = Fleet::new(300_000, 1).await;
    let beacon = Beacon::start(&f);
    let mine = Miner::start(&f.chain.anvil.url);
    let repo = f.spawn(beacon.repository_spec(&f));
    let peers_mode = beacon.peers_spec(&[]);
    let d = f.device("d", &[&repo], peers_mode);
    let first = d
        .wait_for("a head proof verified", T, |v| v["chain"]["mode"] == "peers")
        .unwrap();
    let device: PeerId = d.peer_id.parse().unwrap();
    let device_addr = d.addrs[0].clone();
    let dir = tempfile::tempdir().unwrap();

    // An honest head proof, fetched from the repository the way any peer may.
    let product: ProductId = PRODUCT.parse().unwrap();
    let relay = peer(&dir, "relay", &repo.addrs[0]).await;
    let repo_id: PeerId = repo.peer_id.parse().unwrap();
    let ask = ProofRequest::Head { product: product.0 };
    let honest = loop {
        if let Ok(ProofResponse::Found(mut items)) = relay.proofs().request(repo_id, ask).await {
            break items.remove(0);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // A replay of that proof once the device has a newer one: refused, not blamed.
    d.wait_for("a newer head verified", T, |v| {
        v["chain"]["block"].as_u64() > first["chain"]["block"].as_u64()
    })
    .unwrap();
    let replayer = peer(&dir, "replayer", &device_addr).await;
    replayer.proofs().announce(honest.clone(), None).await;

    // Forgeries of the newest honest proof, anchored at its attested header (two slots after the finalized
    // one), so they are newer than anything the device accepted and cannot be skipped as replays.
    let fresh = loop {
        if let Ok(ProofResponse::Found(mut items)) = relay.proofs().request(repo_id, ask).await {
            break decode_head_proof(&items.remove(0)).unwrap();
        }
    };
    let mut proof = fresh.clone();
    proof.header.finalized_header = None;
    proof.header.finality_branch = Vec::new();
    let mut state_root = proof.clone();
    if let Some(e) = state_root.header.attested_header.execution.as_mut() {
        e.state_root = [0x66; 32];
    }
    let mut minority = proof.clone();
    let bits = &mut minority.header.sync_aggregate.sync_committee_bits;
    bits.iter_mut().for_each(|b| *b = 0);
    bits[0] = 0xff;
    let mut other_product = proof.clone();
    other_product.product = alloy::primitives::B256::repeat_byte(0x51);
    let mut other_contract = proof.clone();
    other_contract.state.contract = Address::repeat_byte(0xee);
    let forgeries: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "forged state root",
            encode_head_proof(&state_root),
            "signed header",
        ),
        ("minority", encode_head_proof(&minority), "8 of 32"),
        (
            "other product",
            encode_head_proof(&other_product),
            "proof is for product",
        ),
        (
            "other contract",
            encode_head_proof(&other_contract),
            "proof is for contract",
        ),
        (
            "garbage",
            b"not a proof at all, just bytes".to_vec(),
            "not a firmchain proof",
        ),
    ];
    let mut hostile = Vec::new();
    for (i, (what, bytes, _)) in forgeries.iter().enumerate() {
        let h = peer(&dir, &format!("hostile{i}"), &device_addr).await;
        // Served on request and pushed: the device meets the forgery both ways.
        h.proofs().put(ShelfItem::Head {
            product: product.0,
            slot: u64::MAX - i as u64,
            bytes: bytes.clone(),
        });
        h.proofs().announce(bytes.clone(), None).await;
        eprintln!("{what}: from {}", h.peer_id());
        hostile.push(h);
    }
    for (h, (what, _, reason)) in hostile.iter().zip(&forgeries) {
        let id = h.peer_id().to_string();
        d.wait_for(&format!("the {what} sender named"), T, |v| {
            rejected(v)
                .iter()
                .any(|r| r.contains(&id) && r.contains(reason) && r.contains("banned"))
        })
        .unwrap();
    }

    // Honest proofs still win.
    repo.publish(&f.images[1]).unwrap();
    let s = d.wait_installed(1, T).unwrap();
    assert_eq!(active_image(&d.dir).unwrap(), f.images[1]);
    assert_eq!(s["chain"]["mode"], "peers");
    // The replayer was not blamed: it is still served.
    let replayed = replayer.proofs().request(device, ask).await.unwrap();
    assert!(matches!(replayed, ProofResponse::Found(_)), "{replayed:?}");
    let id = replayer.peer_id().to_string();
    assert!(!rejected(&s).iter().any(|r| r.contains(&id)), "{s}");
    drop(mine);
}
