//! A fleet where only the repository reaches the chain (light mode over anvil and the beacon harness) and every
//! device runs in `peers` mode with no RPC URL at all: the committee chain, head proofs and release proofs reach
//! the devices over libp2p, verified from each device's own checkpoint. They install, a revocation and a pause
//! reach them through head proofs, and when the proof sources stop they report `stale`.

mod common;
use common::Fleet;
use common::beacon::{Beacon, Miner};

use std::time::Duration;

use firmchain_tests::fleet::{NodeProc, PRODUCT, active_image};
use firmchain_update::{ProductId, Sequence};
use serde_json::Value;

const T: Duration = Duration::from_secs(90);
const MAX_STALENESS: u64 = 12;

fn waiting_reason(v: &Value, seq: u64) -> Option<String> {
    v["waiting"]
        .as_array()?
        .iter()
        .find(|w| w["sequence"].as_u64() == Some(seq))
        .and_then(|w| w["reason"].as_str().map(str::to_owned))
}

fn runs_in_peers_mode(d: &NodeProc) {
    let start: Value = serde_json::from_str(&d.daemon.first_line).unwrap();
    assert_eq!(start["chain"], "peers", "{start}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_with_no_rpc_installs_revokes_and_goes_stale_through_proofs_from_peers() {
    let f = Fleet::new(300_000, 2).await;
    let beacon = Beacon::start(&f);
    let staleness = [format!("chain.max_staleness_secs={MAX_STALENESS}")];
    let _miner = Miner::start(&f.chain.anvil.url);
    let mut repo = f.spawn(beacon.repository_spec(&f));
    let d1 = f.device("d1", &[&repo], beacon.peers_spec(&staleness));
    let d2 = f.device("d2", &[&repo], beacon.peers_spec(&staleness));
    // d3 knows only d1: what it verifies, d1 relayed (or peers it met through d1).
    let d3 = f.device("d3", &[&d1], beacon.peers_spec(&staleness));
    let devices = [&d1, &d2, &d3];
    for d in devices {
        d.wait_for("a head proof verified", T, |v| v["chain"]["mode"] == "peers")
            .unwrap();
    }

    // A paused product: the gate travels in the proofs and holds release 1 on every device.
    let product: ProductId = PRODUCT.parse().unwrap();
    f.chain.index.pause(&product, Sequence(0)).await.unwrap();
    repo.publish(&f.images[1]).unwrap();
    for d in devices {
        d.wait_for("release 1 held by the pause", T, |v| {
            waiting_reason(v, 1).as_deref() == Some("paused")
        })
        .unwrap();
    }
    // Revoked while held: the head proof's revocation flags reach every device.
    f.chain
        .index
        .revoke(&product, Sequence(1), "bricks the radio")
        .await
        .unwrap();
    for d in devices {
        d.wait_log("release revoked (proven by a head proof)", T).unwrap();
    }
    f.chain.index.resume(&product, Sequence(0)).await.unwrap();
    repo.publish(&f.images[2]).unwrap();
    for d in devices {
        let s = d.wait_installed(2, T).unwrap();
        assert_eq!(s["last_fetch"]["sequence"], 2, "release 1 was never fetched: {s}");
        assert_eq!(s["chain"]["mode"], "peers");
        assert_eq!(active_image(&d.dir).unwrap(), f.images[2]);
        runs_in_peers_mode(d);
    }

    // Fresh while the repository serves: head proofs keep coming for longer than the staleness bound.
    let fresh_until = std::time::Instant::now() + Duration::from_secs(MAX_STALENESS + 4);
    while std::time::Instant::now() < fresh_until {
        for d in devices {
            let s = d.status().unwrap();
            assert_eq!(s["chain_state"], "verified", "{s}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Freeze: the only proof source stops; the devices keep relaying their last head proof to each other, but
    // a replay is not news, and each goes stale.
    repo.daemon.kill9();
    for d in devices {
        let s = d.wait_for("stale", T, |v| v["chain_state"] == "stale").unwrap();
        assert_eq!(s["installed"]["sequence"], 2);
    }
}
