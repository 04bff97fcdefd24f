//! Attacks from a foreign client: js-libp2p (the libp2p of the Helia harness, `tests/helia/hostile.mjs`) against
//! a serving `firmchain p2p serve` process, in one loopback-only network namespace. Under each attack the node
//! bans what it must, keeps serving an honest `p2p get` (and, under a provider record flood, still names an
//! honest provider), and its peak RSS stays within idle + 64 MiB.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use firmchain_tests::{Daemon, Netns, helia_dir, node22, pseudo_random};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);

fn firmchain() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_firmchain"))
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn hostile(ns: &Netns, args: &[&str]) -> Value {
    let dir = helia_dir().unwrap();
    let out = ns
        .command(&node22().unwrap())
        .current_dir(&dir)
        .arg(dir.join("hostile.mjs"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn honest_get(ns: &Netns, root: &str, addr: &str, out: &Path, data: &[u8], after: &str) {
    let got = ns
        .command(firmchain())
        .args([
            "--json",
            "p2p",
            "get",
            root,
            "--peer",
            addr,
            "--stall-timeout",
            "30",
            "-o",
        ])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "after {after}: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(
        std::fs::read(out).unwrap() == data,
        "after {after}: the file differs"
    );
    std::fs::remove_file(out).unwrap();
}

#[test]
fn js_libp2p_attacks_are_refused_and_honest_fetches_complete_in_bounded_memory() {
    let ns = Netns::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(4 * 1024 * 1024 + 3, 51);
    let input = dir.path().join("in.bin");
    std::fs::write(&input, &data).unwrap();
    let mut cmd = ns.command(firmchain());
    cmd.args(["--json", "p2p", "serve"])
        .arg(&input)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
    let server = Daemon::spawn(cmd, START).unwrap();
    let v: Value = serde_json::from_str(&server.first_line).unwrap();
    let root = v["root"].as_str().unwrap().to_owned();
    let addr = v["addrs"][0].as_str().unwrap().to_owned();
    let out = dir.path().join("out.bin");
    honest_get(&ns, &root, &addr, &out, &data, "nothing");
    let idle = vm_hwm_kib(server.pid());

    // Four streams of 4,096 wants for the same block: a violation, the client is cut off.
    let r = hostile(&ns, &["dup-wants", &addr, &root, "4"]);
    assert_eq!(r["closed"], true, "the duplicate-wants client was kept: {r}");
    assert!(
        r["answers"].as_u64().unwrap() < 4 * 1024 * 1024,
        "it got more than one copy: {r}"
    );
    honest_get(&ns, &root, &addr, &out, &data, "duplicate wants");

    // 20,000 wants for blocks nobody has: DontHaves at most, then a ban past the held-wants cap.
    let r = hostile(&ns, &["dont-have", &addr, "20000"]);
    assert_eq!(r["closed"], true, "a client holding 20,000 wants was kept: {r}");
    honest_get(&ns, &root, &addr, &out, &data, "a DontHave flood");

    // 40 identities connect at once: the node keeps serving.
    let r = hostile(&ns, &["connections", &addr, "40"]);
    assert_eq!(r["sent"], 40, "{r}");
    honest_get(&ns, &root, &addr, &out, &data, "a connection flood");

    // 100,000 provider records for keys nobody uses, 16 addresses each: the node keeps a quota of them, and an
    // honest provider that announces the root afterwards is still found through it.
    let r = hostile(&ns, &["providers", &addr, "100000", "16"]);
    assert!(r["sent"].as_u64().unwrap() > 1000, "the flood stopped early: {r}");
    let mut cmd = ns.command(firmchain());
    cmd.args(["--json", "p2p", "serve"]).arg(&input).args([
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--bootstrap",
        &addr,
    ]);
    let honest = Daemon::spawn(cmd, START).unwrap();
    let h: Value = serde_json::from_str(&honest.first_line).unwrap();
    let honest_id = h["peer_id"].as_str().unwrap().to_owned();
    let r = hostile(&ns, &["find-providers", &addr, &root, &honest_id]);
    let found: Vec<&str> = r["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        found.contains(&honest_id.as_str()),
        "the honest provider {honest_id} is not found after the flood: {r}"
    );
    assert!(
        found.contains(&v["peer_id"].as_str().unwrap()),
        "the node no longer names itself: {r}"
    );
    drop(honest);
    honest_get(&ns, &root, &addr, &out, &data, "a provider record flood");

    let peak = vm_hwm_kib(server.pid());
    assert!(
        peak < idle + 64 * 1024,
        "peak RSS {peak} KiB, idle {idle} KiB: over idle + 64 MiB"
    );
}
