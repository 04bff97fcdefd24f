//! Peak RSS of a serving `firmchain p2p serve` process (a real child process) under each attack, for
//! `bench/hostile.sh`. Ignored in the normal run; needs `FIRMCHAIN_BIN`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firmchain_p2p::{Multiaddr, P2pConfig, PeerId};
use firmchain_tests::pseudo_random;
use firmchain_update::dag::{self, DEFAULT_CHUNK_SIZE};

use crate::hostile_peer::{HostilePeer, wants, write_message};
use crate::p2p_swarm::TestNode;

struct Server {
    child: Child,
    addr: Multiaddr,
    root: cid::Cid,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &str, data: &[u8]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.bin");
    std::fs::write(&file, data).unwrap();
    let mut child = Command::new(bin)
        .args(["--json", "p2p", "serve"])
        .arg(&file)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    let v: serde_json::Value = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "serve exited: {text}");
        text.push_str(&line);
        if let Ok(v) = serde_json::from_str(&text) {
            break v;
        }
    };
    Server {
        child,
        addr: v["addrs"][0].as_str().unwrap().parse().unwrap(),
        root: v["root"].as_str().unwrap().parse().unwrap(),
        _dir: dir,
    }
}

fn hwm_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024.0
}

fn peer_of(addr: &Multiaddr) -> PeerId {
    firmchain_p2p::peer_id_of(addr).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/hostile.sh runs it"]
async fn serving_process_peak_rss_under_attacks() {
    let Ok(bin) = std::env::var("FIRMCHAIN_BIN") else {
        panic!("set FIRMCHAIN_BIN to a firmchain binary");
    };
    let data = pseudo_random(16 * 1024 * 1024, 61);
    let leaf = dag::cid_of(dag::RAW, &data[..DEFAULT_CHUNK_SIZE]);
    println!("| attack | idle VmHWM (MiB) | peak VmHWM (MiB) | growth (MiB) |");
    println!("|---|---|---|---|");
    let row = |what: &str, idle: f64, peak: f64| {
        println!("| {what} | {idle:.1} | {peak:.1} | {:.1} |", peak - idle)
    };
    let settle = || tokio::time::sleep(Duration::from_millis(500));

    // 1. 8 streams x 4,096 wants for one 256 KiB block.
    let s = start(&bin, &data);
    settle().await;
    let idle = hwm_mib(s.child.id());
    let hostile = HostilePeer::connect(&s.addr).await;
    let msg = wants(std::iter::repeat_n(leaf, 4096));
    let mut streams = Vec::new();
    for _ in 0..8 {
        if let Ok(mut st) = hostile.open().await {
            let _ = write_message(&mut st, &msg).await;
            streams.push(st);
        }
    }
    settle().await;
    row("8 streams x 4,096 duplicate wants", idle, hwm_mib(s.child.id()));
    drop((streams, hostile, s));

    // 2. 64 peers fetch a whole 4 MiB release at once (the fetchers share this process: their hashing, not the
    // server, is the bottleneck in a debug build).
    let small = pseudo_random(4 * 1024 * 1024, 62);
    let s = start(&bin, &small);
    settle().await;
    let idle = hwm_mib(s.child.id());
    let mut nodes = Vec::new();
    for _ in 0..64 {
        let n = TestNode::start(P2pConfig::loopback()).await;
        n.p2p.dial(s.addr.clone()).await.unwrap();
        nodes.push(n);
    }
    let started = Instant::now();
    let opts = firmchain_p2p::FetchOptions {
        peers: vec![peer_of(&s.addr)],
        ..firmchain_p2p::FetchOptions::default()
    };
    let fetches = nodes.iter().map(|n| n.p2p.fetch(s.root, opts.clone()).finish());
    for r in futures::future::join_all(fetches).await {
        r.unwrap();
    }
    let took = started.elapsed();
    row("64 peers fetching 4 MiB at once", idle, hwm_mib(s.child.id()));
    println!(
        "(64 concurrent fetches of 4 MiB took {:.2} s)",
        took.as_secs_f64()
    );
    drop((nodes, s));

    // 3. DontHave flood: 64 messages of 4,096 distinct wants for blocks the node does not hold.
    let s = start(&bin, &data);
    settle().await;
    let idle = hwm_mib(s.child.id());
    let hostile = HostilePeer::connect(&s.addr).await;
    let mut st = hostile.open().await.unwrap();
    for round in 0..64u32 {
        let cids =
            (0..4096u32).map(|i| dag::cid_of(dag::RAW, &[round.to_le_bytes(), i.to_le_bytes()].concat()));
        // A round that arrives before the last is answered puts the peer over the held-wants cap: banned.
        if write_message(&mut st, &wants(cids)).await.is_err() {
            break;
        }
    }
    settle().await;
    row("DontHave flood (64 x 4,096 wants)", idle, hwm_mib(s.child.id()));
    drop((st, hostile, s));

    // 4. 100k provider records from one peer.
    let s = start(&bin, &data);
    settle().await;
    let idle = hwm_mib(s.child.id());
    let hostile = HostilePeer::connect(&s.addr).await;
    let sent = hostile.flood_provider_records(100_000, 16).await;
    settle().await;
    row(
        "100k provider records (16 addresses each)",
        idle,
        hwm_mib(s.child.id()),
    );
    drop((hostile, s));

    println!("(provider records written: {sent})");
}
