//! A device against dishonest chain endpoints, end to end (real `firmchain run` processes over anvil): an RPC
//! that rewrites every event's block number to 10^12 does not freeze it, and a beacon server whose headers only
//! a minority of the sync committee signs makes it install nothing, with the reason in `/status`. And the
//! operator's side: a device past the weak-subjectivity window keeps running and is recovered with
//! `firmchain chain checkpoint set`; `chain.force_update` is named wherever the operator looks.

mod common;
use common::Fleet;

use std::time::Duration;

use firmchain_tests::beacon::{BeaconHarness, Behaviour};
use firmchain_tests::fleet::{NodeSpec, PRODUCT, TamperingRpc, active_image};

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

/// The `--set` values of a light-mode device on `beacon` (its chain config written beside the fleet).
fn light(f: &Fleet, beacon: &BeaconHarness, more: &[&str]) -> Vec<String> {
    let config = f.dir.path().join("chain.yaml");
    std::fs::write(&config, &beacon.config).unwrap();
    let mut set = vec![
        "chain.mode=light".to_owned(),
        format!("chain.consensus_rpc={}", beacon.url),
        format!("chain.checkpoint={}", beacon.checkpoint),
        format!("chain.chain_config={}", config.display()),
    ];
    set.extend(more.iter().map(|s| (*s).to_owned()));
    set
}

/// `firmchain --json chain checkpoint ARGS` on the device's configuration; its JSON answer, or its stderr.
fn checkpoint(
    f: &Fleet,
    dir: &std::path::Path,
    set: &[String],
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["--json", "chain", "checkpoint"])
        .args(args)
        .arg("--data")
        .arg(dir);
    let base = [
        format!("chain.execution_rpc={}", f.chain.anvil.url),
        format!("chain.contract={}", f.chain.contract),
        format!("chain.product={PRODUCT}"),
    ];
    for s in base.iter().chain(set) {
        cmd.arg("--set").arg(s);
    }
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A device whose only checkpoint is two days old, with a one-day window: it starts anyway, reports its
/// factory image, installs nothing, and names the checkpoint, its age and the window in its log and in
/// `/status` (with the command that recovers it). `chain checkpoint set` with a fresh root, with the node
/// stopped, recovers it: the same data folder then installs the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_past_the_weak_subjectivity_window_says_so_and_checkpoint_set_recovers_it() {
    let f = Fleet::new(300_000, 1).await;
    let beacon = BeaconHarness::start_aged(&f.chain.anvil.url, Behaviour::Honest, 2 * 86_400).unwrap();
    let set = light(&f, &beacon, &["chain.weak_subjectivity_days=1"]);
    let repo = f.repository();
    let spec = NodeSpec {
        set: set.clone(),
        ..NodeSpec::default()
    };
    let mut d = f.device("device", &[&repo], spec.clone());
    let s = d
        .wait_for("checkpoint too old", T, |v| {
            v["chain_state"] == "checkpoint too old"
        })
        .unwrap();
    assert_eq!(s["installed"]["sequence"], 0, "{s}");
    assert_eq!(
        s["installed"]["hash"],
        f.hash(0),
        "it reports its installed image: {s}"
    );
    let action = s["chain_action"].as_str().unwrap_or_default();
    assert!(
        action.contains(&beacon.checkpoint)
            && action.contains("weak-subjectivity window of 86400 s")
            && action.contains("firmchain chain checkpoint set"),
        "{s}"
    );
    d.wait_log("checkpoint past the weak-subjectivity window", T)
        .unwrap();
    let log = d.log();
    assert!(
        log.contains(&beacon.checkpoint) && log.contains("window_seconds=86400"),
        "{log}"
    );

    // A release the device cannot verify: nothing is installed while the beacon chain carries it.
    let r1 = repo.publish(&f.images[1]).unwrap();
    let published = r1["block"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + T;
    while beacon.head_block().unwrap() < published {
        assert!(
            std::time::Instant::now() < deadline,
            "the beacon server never moved"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = d
        .wait_for("a failed poll after the release", T, |v| {
            v["chain_error"]
                .as_str()
                .is_some_and(|e| e.contains("firmchain chain checkpoint set"))
        })
        .unwrap();
    assert_eq!(s["installed"]["sequence"], 0, "{s}");
    assert!(s["working_on"].is_null() && s["chain"].is_null(), "{s}");

    // While it runs, the store is held: `set` says so. Stopped, `show` names both and no winner.
    let busy = checkpoint(&f, &d.dir, &set, &["set", &beacon.checkpoint]).unwrap_err();
    assert!(busy.contains("stop it first"), "{busy}");
    d.daemon.terminate(T).unwrap();
    let shown = checkpoint(&f, &d.dir, &set, &["show"]).unwrap();
    assert_eq!(shown["configured"]["inside_window"], false, "{shown}");
    assert_eq!(shown["wins"], "none", "{shown}");

    // An old root is refused; a fresh one is written, and wins.
    let old = checkpoint(&f, &d.dir, &set, &["set", &beacon.checkpoint]).unwrap_err();
    assert!(old.contains("weak-subjectivity window"), "{old}");
    // A root whose bootstrap does not verify against it (the server answers another header) is refused.
    let forged = checkpoint(&f, &d.dir, &set, &["set", &format!("0x{}", "ab".repeat(32))]).unwrap_err();
    assert!(forged.contains("bootstrap rejected"), "{forged}");
    let fresh = beacon.fresh_checkpoint().unwrap();
    let done = checkpoint(&f, &d.dir, &set, &["set", &fresh]).unwrap();
    assert_eq!(done["checkpoint"], fresh, "{done}");
    let shown = checkpoint(&f, &d.dir, &set, &["show"]).unwrap();
    assert_eq!(
        (
            &shown["wins"],
            &shown["persisted"]["root"],
            &shown["persisted"]["inside_window"]
        ),
        (&"persisted".into(), &fresh.clone().into(), &true.into()),
        "{shown}"
    );

    let d = f.device("device", &[&repo], spec);
    let s = d.wait_installed(1, T).unwrap();
    assert_eq!(s["chain_state"], "verified", "{s}");
    assert_eq!(active_image(&d.dir).unwrap(), f.images[1]);
}

/// `chain.force_update` is off by default; on, the node warns at start and in `/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_update_is_off_by_default_and_named_in_status_and_log_when_on() {
    let f = Fleet::new(100_000, 0).await;
    let beacon = BeaconHarness::start(&f.chain.anvil.url, Behaviour::Honest).unwrap();
    let plain = f.device(
        "plain",
        &[],
        NodeSpec {
            set: light(&f, &beacon, &[]),
            ..NodeSpec::default()
        },
    );
    let forced = f.device(
        "forced",
        &[],
        NodeSpec {
            set: light(&f, &beacon, &["chain.force_update=true"]),
            ..NodeSpec::default()
        },
    );
    let s = plain.status().unwrap();
    assert_eq!(s["warnings"], serde_json::json!([]), "{s}");
    let s = forced.status().unwrap();
    let warnings = s["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("chain.force_update is on"))),
        "{s}"
    );
    forced.wait_log("chain.force_update is on", T).unwrap();
    let log = plain.log();
    assert!(!log.contains("force_update"), "{log}");
}

/// One JSON-RPC call to anvil.
fn anvil(f: &Fleet, method: &str, params: serde_json::Value) -> serde_json::Value {
    let addr = f.chain.anvil.url.trim_start_matches("http://");
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let (code, v) =
        firmchain_tests::fleet::http(addr, "POST", "/", body.to_string().as_bytes(), None).unwrap();
    assert_eq!(code, 200, "{method}: {v}");
    assert!(v["error"].is_null(), "{method}: {v}");
    v["result"].clone()
}

/// A reorg deeper than the device's event cursor: the device follows a fork 100 blocks past release 1 (its
/// cursor moves to that fork's head minus the lookback), the fork is dropped (`evm_revert`), and release 2 is
/// published on the canonical chain in a block below the cursor. The device installs it, and runs the image of
/// the canonical release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_past_the_event_cursor_does_not_lose_a_release() {
    let f = Fleet::new(300_000, 2).await;
    let repo = f.repository();
    let d = f.device("device", &[&repo], NodeSpec::default());
    let r1 = repo.publish(&f.images[1]).unwrap();
    d.wait_installed(1, T).unwrap();
    let b1 = r1["block"].as_u64().unwrap();

    let snapshot = anvil(&f, "evm_snapshot", serde_json::json!([]));
    anvil(&f, "anvil_mine", serde_json::json!(["0x64"]));
    let fork_head = b1 + 100;
    d.wait_for("the device followed the fork", T, |v| {
        v["chain"]["block"].as_u64() >= Some(fork_head)
    })
    .unwrap();
    assert_eq!(anvil(&f, "evm_revert", serde_json::json!([snapshot])), true);

    let r2 = repo.publish(&f.images[2]).unwrap();
    let b2 = r2["block"].as_u64().unwrap();
    assert!(
        b2 + 64 < fork_head,
        "release 2 (block {b2}) lies below the cursor the fork moved (about block {})",
        fork_head - 64
    );
    let s = d.wait_installed(2, T).unwrap();
    assert_eq!(s["installed"]["hash"], f.hash(2), "{s}");
    assert_eq!(active_image(&d.dir).unwrap(), f.images[2]);
}

/// `firmchain demo --light`: the demo fleet with light-client devices over the beacon harness; every install
/// names a sync-committee verified slot and the supermajority behind it.
#[test]
fn the_light_demo_installs_through_the_sync_committee() {
    let out = std::process::Command::new(common::bin())
        .args(["--json", "demo", "--light", "--devices", "2", "--size-mib", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "light", "{v}");
    let releases = v["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 2, "{v}");
    for r in releases {
        let devices = r["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 2, "{r}");
        for d in devices {
            let verified = &d["verified"];
            assert_eq!(verified["mode"], "light", "{d}");
            assert!(
                verified["light"]["slot"].as_u64() > Some(8),
                "a slot past the checkpoint: {d}"
            );
            assert_eq!(
                verified["light"]["participation"],
                serde_json::json!([32, 32]),
                "{d}"
            );
            assert_eq!(d["installed"]["hash"], r["target_hash"], "{d}");
        }
    }
}

/// `--network` picks a built-in preset on the `chain` commands, refuses unknown names, and excludes
/// `--chain-config`.
#[test]
fn the_network_flag_picks_a_preset() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .args(args)
            .output()
            .unwrap()
    };
    let root = format!("0x{}", "01".repeat(32));
    let node = [
        "--set",
        "chain.contract=0x0000000000000000000000000000000000000001",
        "--set",
        "chain.product=acme-sensor",
        "--set",
        "chain.execution_rpc=http://127.0.0.1:1",
        "--set",
        "chain.consensus_rpc=http://127.0.0.1:1",
        "--set",
        "chain.timeout_secs=2",
    ];
    let data = dir.path().to_str().unwrap();
    let mut show = vec![
        "--json",
        "chain",
        "checkpoint",
        "show",
        "--network",
        "sepolia",
        "--data",
        data,
    ];
    show.extend(node);
    let checkpoint = format!("chain.checkpoint={root}");
    show.extend(["--set", &checkpoint]);
    let out = run(&show);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["network"], "sepolia", "{v}");
    assert_eq!(
        v["wins"], "unknown",
        "nothing persisted, the RPC unreachable: {v}"
    );
    assert!(v["persisted"].is_null(), "{v}");
    assert!(!dir.path().join("state.redb").exists(), "show creates no state");

    let status = [
        "chain",
        "status",
        "--consensus-rpc",
        "http://127.0.0.1:1",
        "--checkpoint",
        &root,
    ];
    let both = run(&[&status[..], &["--network", "sepolia", "--chain-config", "x.yaml"]].concat());
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let unknown = run(&[&status[..], &["--network", "goerli"]].concat());
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("mainnet, sepolia, hoodi"));
}
