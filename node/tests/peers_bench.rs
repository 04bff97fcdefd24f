//! Benchmark (ignored by default; `bash bench/peers.sh` runs it and writes `bench/results/peers.md`): the time
//! from a release's inclusion (POST /publish returns with the receipt) to the last of 10 devices installed, with
//! every device in `peers` mode (no RPC; proofs from the repository over libp2p) and with the same fleet in
//! `light` mode (each device its own beacon and execution RPC). Prints one `BENCH {json}` line per mode.

mod common;
use common::Fleet;
use common::beacon::{Beacon, Miner};

use std::time::Duration;

use firmchain_tests::fleet::NodeSpec;
use serde_json::{Value, json};

const DEVICES: usize = 10;
const T: Duration = Duration::from_secs(180);

async fn run(mode: &str) -> Value {
    let f = Fleet::new(2 << 20, 1).await;
    let beacon = Beacon::start(&f);
    let mine = Miner::start(&f.chain.anvil.url);
    let light = beacon.light_sets();
    let repo = f.spawn(NodeSpec {
        dir: f.dir.path().join("repo"),
        repository: true,
        key: Some(f.chain.key().to_owned()),
        set: light.clone(),
        ..NodeSpec::default()
    });
    let device_set: Vec<String> = match mode {
        "peers" => beacon.peers_sets(),
        _ => light,
    };
    let devices: Vec<_> = (0..DEVICES)
        .map(|i| {
            f.device(
                &format!("d{i}"),
                &[&repo],
                NodeSpec {
                    set: device_set.clone(),
                    ..NodeSpec::default()
                },
            )
        })
        .collect();
    for d in &devices {
        d.wait_for("a verified head", T, |v| !v["chain"].is_null())
            .unwrap();
    }
    let published = repo.publish(&f.images[1]).unwrap();
    let included_ms = firmchain_actors::unix_now_ms();
    let mut last = 0u64;
    for d in &devices {
        // The Status actor hears of the install just after the Coordinator: wait for its record of it.
        let s = d
            .wait_for("release 1 installed and recorded", T, |v| {
                v["last_install"]["sequence"] == 1 && v["last_install"]["outcome"] == "installed"
            })
            .unwrap();
        let at = s["last_install"]["at_ms"].as_u64();
        last = last.max(at.unwrap_or_else(|| panic!("no install time in {s}")));
    }
    drop(mine);
    json!({ "mode": mode, "devices": DEVICES, "block": published["block"],
        "inclusion_to_last_install_ms": last.saturating_sub(included_ms) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bash bench/peers.sh"]
async fn bench_inclusion_to_last_install_peers_vs_light() {
    for mode in ["peers", "light"] {
        let v = run(mode).await;
        println!("BENCH {v}");
    }
}
