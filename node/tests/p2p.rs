//! `firmchain p2p serve|get` against Helia (npm `helia`, a real IPFS implementation we did not write), both
//! directions, all in one loopback-only network namespace; and against ourselves.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use firmchain_tests::{Daemon, Netns, helia_dir, node22, pseudo_random};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);

fn firmchain() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_firmchain"))
}

fn first_json(d: &Daemon) -> Value {
    serde_json::from_str(&d.first_line).unwrap_or_else(|e| panic!("{e}: {}", d.first_line))
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Our node serving `file` inside `ns`: returns the daemon, the root CID and a full multiaddr.
fn serve(ns: &Netns, file: &Path, extra: &[&str]) -> (Daemon, String, String) {
    let mut cmd = ns.command(firmchain());
    cmd.args(["--json", "p2p", "serve"])
        .arg(file)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(extra);
    let d = Daemon::spawn(cmd, START).unwrap();
    let v = first_json(&d);
    let root = v["root"].as_str().unwrap().to_owned();
    let addr = v["addrs"][0].as_str().unwrap().to_owned();
    assert!(addr.contains("/p2p/12D3"), "{addr}");
    (d, root, addr)
}

fn get(ns: &Netns, cid: &str, addr: &str, out: &Path) -> std::process::Output {
    ns.command(firmchain())
        .args([
            "--json",
            "p2p",
            "get",
            cid,
            "--peer",
            addr,
            "--timeout",
            "20",
            "-o",
        ])
        .arg(out)
        .output()
        .unwrap()
}

fn helia(ns: &Netns) -> Command {
    let mut c = ns.command(&node22().unwrap());
    let dir = helia_dir().unwrap();
    c.current_dir(&dir).arg(dir.join("peer.mjs"));
    c
}

#[test]
fn helia_adds_a_file_and_we_fetch_it_cidv1_raw_leaves_and_cidv0_dag_pb_leaves() {
    let ns = Netns::new().unwrap();
    let files = Files::new();
    let data = pseudo_random(3 * 262_144 + 999, 21);
    let input = files.write("in.bin", &data);
    for flag in [None, Some("--v0")] {
        let mut cmd = helia(&ns);
        cmd.arg("add").arg(&input);
        if let Some(f) = flag {
            cmd.arg(f);
        }
        let peer = Daemon::spawn(cmd, START).unwrap();
        let v = first_json(&peer);
        let cid = v["cid"].as_str().unwrap();
        assert_eq!(cid.starts_with("Qm"), flag.is_some(), "{cid}");
        let addr = v["addrs"][0].as_str().unwrap();
        let out = files.path("out.bin");
        let got = get(&ns, cid, addr, &out);
        assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
        assert_eq!(std::fs::read(&out).unwrap(), data, "{flag:?}");
        let summary: Value = serde_json::from_slice(&got.stdout).unwrap();
        assert_eq!(summary["size"], data.len() as u64);
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn we_serve_a_file_and_helia_fetches_it_over_bitswap() {
    let ns = Netns::new().unwrap();
    let files = Files::new();
    // 9 MiB: Helia wants many blocks at once, so our answers must be cut under its 4 MiB message limit.
    let data = pseudo_random(9 * 1024 * 1024 + 5, 22);
    let input = files.write("in.bin", &data);
    let (_server, root, addr) = serve(&ns, &input, &[]);
    let out = files.path("out.bin");
    let cat = helia(&ns)
        .arg("cat")
        .arg(&root)
        .arg(&addr)
        .arg(&out)
        .output()
        .unwrap();
    assert!(cat.status.success(), "{}", String::from_utf8_lossy(&cat.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn we_serve_and_fetch_blake3_leaves_between_our_own_processes() {
    let ns = Netns::new().unwrap();
    let files = Files::new();
    let data = pseudo_random(700_000, 23);
    let input = files.write("in.bin", &data);
    let (_server, root, addr) = serve(&ns, &input, &["--leaf-hash", "blake3"]);
    let out = files.path("out.bin");
    let got = get(&ns, &root, &addr, &out);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn get_refuses_bad_arguments_and_keeps_the_output() {
    let files = Files::new();
    let out = files.write("out.bin", b"keep me");
    let host = Netns::new().unwrap();
    let bad_cid = host
        .command(firmchain())
        .args(["p2p", "get", "not-a-cid", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(bad_cid.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_cid.stderr).contains("invalid CID"));
    let no_peer_id = host
        .command(firmchain())
        .args([
            "p2p",
            "get",
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            "--peer",
            "/ip4/127.0.0.1/tcp/1",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(no_peer_id.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_peer_id.stderr).contains("/p2p/<peer id>"));
    // Nobody has it: a clear error after the timeout, and the old file stays.
    let nobody = host
        .command(firmchain())
        .args([
            "p2p",
            "get",
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            "--timeout",
            "1",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no peer can provide block"));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}
