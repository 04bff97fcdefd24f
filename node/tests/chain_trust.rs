//! A device against dishonest chain endpoints, end to end (real `firmchain run` processes over anvil): an RPC
//! that rewrites every event's block number to 10^12 does not freeze it, and a beacon server whose headers only
//! a minority of the sync committee signs makes it install nothing, with the reason in `/status`.

mod common;
use common::Fleet;

use std::time::Duration;

use firmchain_tests::beacon::{BeaconHarness, Behaviour};
use firmchain_tests::fleet::{NodeSpec, TamperingRpc, active_image};

const T: Duration = Duration::from_secs(60);

/// Every `eth_getLogs` answer claims block 10^12: the device still installs each release (the records are
/// proven), reports the lie, and its persisted cursor never passes the verified block, so a restart on an
/// honest RPC with the same data folder installs the next release too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_that_rewrites_event_block_numbers_does_not_freeze_a_device() {
    let f = Fleet::new(300_000, 3).await;
    let far = |answer: &mut serde_json::Value| {
        for log in answer["result"].as_array_mut().into_iter().flatten() {
            log["blockNumber"] = serde_json::Value::String(format!("{:#x}", 1_000_000_000_000u64));
        }
    };
    let liar = TamperingRpc::start(&f.chain.anvil.url, "eth_getLogs", far).unwrap();
    let repo = f.repository();
    let on_liar = NodeSpec {
        set: vec![format!("chain.execution_rpc={}", liar.url)],
        ..NodeSpec::default()
    };
    let mut d = f.device("device", &[&repo], on_liar);
    repo.publish(&f.images[1]).unwrap();
    let s = d.wait_installed(1, T).unwrap();
    let lies: Vec<String> = s["rejected"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert!(
        lies.iter().any(|l| l.contains("1000000000000")),
        "the lie is reported: {lies:?}"
    );
    repo.publish(&f.images[2]).unwrap();
    d.wait_installed(2, T).unwrap();
    d.daemon.kill9();

    // The same data folder on the honest RPC.
    let d = f.device("device", &[&repo], NodeSpec::default());
    repo.publish(&f.images[3]).unwrap();
    let s = d.wait_installed(3, T).unwrap();
    assert!(s["chain_error"].is_null(), "{s}");
    assert_eq!(active_image(&d.dir).unwrap(), f.images[3]);
}

/// A device bootstrapped straight into a beacon server whose headers only 8 of 32 committee members sign (over
/// a forged execution state): nothing is installed, and `/status` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_signed_beacon_server_gets_nothing_installed() {
    let f = Fleet::new(300_000, 1).await;
    let minority = BeaconHarness::start(&f.chain.anvil.url, Behaviour::Minority).unwrap();
    let config = f.dir.path().join("chain.yaml");
    std::fs::write(&config, &minority.config).unwrap();
    let repo = f.repository();
    let d = f.device(
        "device",
        &[&repo],
        NodeSpec {
            set: vec![
                "chain.mode=light".into(),
                format!("chain.consensus_rpc={}", minority.url),
                format!("chain.checkpoint={}", minority.checkpoint),
                format!("chain.chain_config={}", config.display()),
            ],
            ..NodeSpec::default()
        },
    );
    let r1 = repo.publish(&f.images[1]).unwrap();
    let published = r1["block"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + T;
    while minority.head_block().unwrap() < published {
        assert!(std::time::Instant::now() < deadline, "the server never moved");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = d
        .wait_for("the minority reported", T, |v| {
            v["rejected"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.contains("8 of 32")))
            })
        })
        .unwrap();
    assert_eq!(s["installed"]["sequence"], 0, "{s}");
    // Reads stay on the checkpoint's block (anvil's genesis, before the index existed: its proof fails).
    assert!(
        s["chain"].is_null() || s["chain"]["block"] == 0,
        "nothing newer was verified: {s}"
    );
    assert!(s["working_on"].is_null() && s["last_fetch"].is_null(), "{s}");
}
