//! Light mode with `chain.peers_fallback`: a device with its own beacon and execution RPCs follows the index
//! through them first, and through verified proofs from peers (the repository serves them) when they die or
//! lie. It installs only what a valid proof authorises, and `/status` says which source its head came from.

mod common;
use common::Fleet;
use common::beacon::{Beacon, Miner};
use common::relay::Relay;

use std::time::Duration;

use firmchain_tests::fleet::{NodeSpec, TamperingRpc, active_image};
use serde_json::Value;

const T: Duration = Duration::from_secs(90);
const MAX_STALENESS: u64 = 12;

/// A light-mode device over `execution` and `consensus`, with the fallback to peers on.
fn fallback_spec(beacon: &Beacon, execution: &str, consensus: &str) -> NodeSpec {
    let mut set = beacon.light_sets();
    set.retain(|s| !s.starts_with("chain.consensus_rpc="));
    set.extend([
        format!("chain.execution_rpc={execution}"),
        format!("chain.consensus_rpc={consensus}"),
        "chain.peers_fallback=true".into(),
        format!("chain.max_staleness_secs={MAX_STALENESS}"),
    ]);
    NodeSpec {
        set,
        ..NodeSpec::default()
    }
}

fn mode(v: &Value) -> &str {
    v["chain"]["mode"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_its_own_rpcs_die_a_light_device_keeps_updating_through_proofs_from_peers() {
    let f = Fleet::new(300_000, 2).await;
    let beacon = Beacon::start(&f);
    let _miner = Miner::start(&f.chain.anvil.url);
    let repo = f.spawn(beacon.repository_spec(&f));
    // The device's own sources, behind relays the test cuts.
    let execution = Relay::start(&f.chain.anvil.url);
    let consensus = Relay::start(&beacon.harness.url);
    let d = f.device(
        "d",
        &[&repo],
        fallback_spec(&beacon, &execution.url, &consensus.url),
    );

    // Own sources first: release 1 is read through the device's own light client, peers are not asked.
    d.wait_for("a head from the own sources", T, |v| mode(v) == "light")
        .unwrap();
    repo.publish(&f.images[1]).unwrap();
    let s = d.wait_installed(1, T).unwrap();
    assert_eq!(mode(&s), "light", "{s}");
    let log = d.log();
    assert!(
        log.contains("release seen (record matches the proven digest)"),
        "{log}"
    );
    // Peers are asked only while the own sources are behind (a slow start counts: their first head may take
    // longer than half the staleness bound on a loaded machine).
    if !log.contains("following verified proofs from peers") {
        assert!(
            !log.contains("release proof verified"),
            "peers were asked while the own sources worked"
        );
    }

    // Both RPCs die: the device turns to proofs from peers, stays fresh and installs release 2 through them.
    execution.cut();
    consensus.cut();
    d.wait_log("following verified proofs from peers", T).unwrap();
    d.wait_for("a head from peers", T, |v| mode(v) == "peers")
        .unwrap();
    repo.publish(&f.images[2]).unwrap();
    let s = d.wait_installed(2, T).unwrap();
    assert_eq!(s["installed"]["hash"], f.hash(2).as_str(), "{s}");
    assert_eq!(active_image(&d.dir).unwrap(), f.images[2]);
    assert!(d.log().contains("release seen (release proof verified)"));
    // Fresh through peers for longer than the staleness bound, with its own sources still dead.
    let until = std::time::Instant::now() + Duration::from_secs(MAX_STALENESS + 3);
    while std::time::Instant::now() < until {
        let s = d.status().unwrap();
        assert_eq!(s["chain_state"], "verified", "{s}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // They come back: the head comes from the device's own light client again.
    execution.heal();
    consensus.heal();
    d.wait_log("own chain sources are current again", T).unwrap();
    d.wait_for("a head from the own sources", T, |v| mode(v) == "light")
        .unwrap();
}

/// The device's execution RPC rewrites the release event (another target image). Its own light client refuses
/// the record (its keccak is not the proven digest); the release proof from peers carries the real record,
/// and that is what the device installs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_rpc_does_not_win_over_valid_proofs_from_peers() {
    let f = Fleet::new(300_000, 1).await;
    let beacon = Beacon::start(&f);
    let _miner = Miner::start(&f.chain.anvil.url);
    let forge = |answer: &mut Value| {
        for log in answer["result"].as_array_mut().into_iter().flatten() {
            if let Some(data) = log["data"].as_str() {
                // The record's targetHash: the sixth 32-byte word of the event data.
                let mut d: Vec<u8> = data.bytes().collect();
                let at = 2 + 2 * (5 * 32 + 7);
                d[at] = if d[at] == b'0' { b'1' } else { b'0' };
                log["data"] = Value::String(String::from_utf8(d).unwrap());
            }
        }
    };
    let liar = TamperingRpc::start(&f.chain.anvil.url, "eth_getLogs", forge).unwrap();
    let repo = f.spawn(beacon.repository_spec(&f));
    let d = f.device(
        "d",
        &[&repo],
        fallback_spec(&beacon, &liar.url, &beacon.harness.url),
    );
    repo.publish(&f.images[1]).unwrap();
    let s = d.wait_installed(1, T).unwrap();
    assert_eq!(s["installed"]["hash"], f.hash(1).as_str(), "{s}");
    assert_eq!(active_image(&d.dir).unwrap(), f.images[1]);
    let refused = s["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .any(|r| r.contains("release 1") && r.contains("proven digest"));
    assert!(refused, "the forged event was not refused: {s}");
    let log = d.log();
    assert!(log.contains("release seen (release proof verified)"), "{log}");
    assert!(
        !log.contains("release seen (record matches the proven digest)"),
        "{log}"
    );
}
