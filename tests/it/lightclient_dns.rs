//! Host names for both layers, resolved as a static binary does (hickory reading `/etc/resolv.conf`, no glibc):
//! in a network namespace with only loopback, a private mount of `/etc/resolv.conf` naming dnsmasq on
//! 127.0.0.1, the execution RPC is reached as `http://rpc.firmchain.test:PORT` and a peer is dialled at
//! `/dns4/peer.firmchain.test/tcp/PORT/p2p/ID`; an unknown name fails with its name in the error. Then the
//! same from the static binary of the device (`scripts/test` builds it before the tests: glibc's NSS cannot
//! resolve names in a static binary, hickory must): a device reaches its RPC and its bootstrap peer by name
//! and installs a release.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use firmchain_lightclient::execution_rpc::{ExecutionRpc, HttpExecutionRpc};
use firmchain_p2p::{Blockstore, P2p, P2pConfig, identity};
use firmchain_tests::Anvil;

const T: Duration = Duration::from_secs(30);
const INNER: &str = "lightclient_dns::names_resolve_inside_the_namespace";
const INNER_STATIC: &str = "lightclient_dns::a_static_device_resolves_inside_the_namespace";
/// Where `scripts/test` builds the device's static binary (`FIRMCHAIN_STATIC_BIN` overrides it).
const STATIC_BIN: &str = "target/x86_64-unknown-linux-gnu/swarm/firmchain";

fn static_bin() -> std::path::PathBuf {
    std::env::var_os("FIRMCHAIN_STATIC_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| firmchain_tests::workspace().join(STATIC_BIN))
}

/// The test proper, run by [`host_names_resolve_through_a_local_dns_server`] inside the namespace.
#[tokio::test]
#[ignore = "runs inside the namespace that host_names_resolve_through_a_local_dns_server makes"]
async fn names_resolve_inside_the_namespace() {
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    assert_eq!(
        resolv.trim(),
        "nameserver 127.0.0.1",
        "not inside the test namespace"
    );
    let anvil = Anvil::start().unwrap();
    let port = anvil.url.rsplit(':').next().unwrap().to_owned();
    let rpc = HttpExecutionRpc::new(
        vec![format!("http://rpc.firmchain.test:{port}")],
        Duration::from_secs(5),
    )
    .unwrap();
    // dnsmasq starts beside this process: retry until it answers.
    let deadline = Instant::now() + T;
    let header = loop {
        match rpc.header(BlockNumberOrTag::Latest).await {
            Ok((header, _)) => break header,
            Err(e) => {
                assert!(Instant::now() < deadline, "rpc.firmchain.test: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(header.number, 0);

    let unknown = HttpExecutionRpc::new(
        vec![format!("http://nowhere.firmchain.test:{port}")],
        Duration::from_secs(5),
    )
    .unwrap();
    let err = unknown
        .header(BlockNumberOrTag::Latest)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere.firmchain.test"), "{err}");

    let node = |dir: &tempfile::TempDir| {
        let store = Arc::new(Blockstore::open(&dir.path().join("blocks.redb"), 1 << 20).unwrap());
        P2p::start(
            P2pConfig::loopback(),
            identity::Keypair::generate_ed25519(),
            store,
        )
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _ta) = node(&da).await.unwrap();
    let (b, _tb) = node(&db).await.unwrap();
    let tcp = b.listen_addrs().await.unwrap().remove(0);
    let text = tcp.to_string();
    let parts: Vec<&str> = text.split('/').collect();
    let at = parts.iter().position(|p| *p == "tcp").unwrap();
    let port = parts[at + 1].to_owned();
    let by_name: firmchain_p2p::Multiaddr =
        format!("/dns4/peer.firmchain.test/tcp/{port}/p2p/{}", b.peer_id())
            .parse()
            .unwrap();
    let peer = tokio::time::timeout(T, a.dial(by_name)).await.unwrap().unwrap();
    assert_eq!(peer, b.peer_id());
}

/// Run the ignored test `inner` of this binary in a fresh network and mount namespace with only loopback,
/// `/etc/resolv.conf` naming dnsmasq on 127.0.0.1 (which answers the `*.firmchain.test` names with 127.0.0.1);
/// `false` (skipped) where this process may not make namespaces.
fn in_dns_namespace(inner: &str, env: &[(&str, &std::path::Path)]) -> bool {
    let allowed = Command::new("unshare")
        .args(["-n", "-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        eprintln!("skipped: this process may not make network and mount namespaces (unshare -n -m)");
        return false;
    }
    let dnsmasq = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("dnsmasq is missing: run scripts/setup (Debian package dnsmasq-base)");
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
    let script = r#"set -e
ip link set lo up
mount --bind "$RESOLV" /etc/resolv.conf
"$DNSMASQ" --keep-in-foreground --no-resolv --no-hosts --listen-address=127.0.0.1 --bind-interfaces \
  --port=53 --user=root --address=/rpc.firmchain.test/127.0.0.1 --address=/peer.firmchain.test/127.0.0.1 \
  --log-facility="$LOG" &
dns=$!
set +e
"$0" "$@"
rc=$?
kill "$dns"
exit "$rc"
"#;
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .args(["-n", "-m", "sh", "-c", script])
        .arg(&exe)
        .args([inner, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("RESOLV", &resolv)
        .env("DNSMASQ", dnsmasq)
        .env("LOG", dir.path().join("dnsmasq.log"))
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the inner test did not run:\n{text}");
    true
}

#[test]
fn host_names_resolve_through_a_local_dns_server() {
    in_dns_namespace(INNER, &[]);
}

/// The device's static binary (no glibc NSS) reaches its execution RPC as `rpc.firmchain.test` and its only
/// peer, the repository, at `/dns4/peer.firmchain.test/...` (mDNS off), and installs the release published
/// there. Skipped, saying so, only where the static binary was not built; under CI (`CI` set) or when
/// `FIRMCHAIN_STATIC_BIN` names it (as `scripts/test` does) it must run.
#[test]
fn the_static_binary_reaches_its_rpc_and_peer_by_host_name() {
    let bin = static_bin();
    if !bin.exists() {
        let required = std::env::var_os("CI").is_some() || std::env::var_os("FIRMCHAIN_STATIC_BIN").is_some();
        assert!(
            !required,
            "{} is missing (FIRMCHAIN_STATIC_BIN or CI is set): scripts/test builds it before the tests",
            bin.display()
        );
        eprintln!(
            "skipped: no static binary at {} (build it as scripts/test does: RUSTFLAGS=\"-C \
             target-feature=+crt-static\" cargo build --profile swarm --target x86_64-unknown-linux-gnu --bin \
             firmchain)",
            bin.display()
        );
        return;
    }
    assert!(
        !has_interpreter(&std::fs::read(&bin).unwrap()),
        "{} is not a static binary (it has a dynamic loader)",
        bin.display()
    );
    in_dns_namespace(INNER_STATIC, &[("FIRMCHAIN_STATIC_BIN", &bin)]);
}

/// Whether an ELF64 file asks for a dynamic loader (a `PT_INTERP` program header).
fn has_interpreter(elf: &[u8]) -> bool {
    let int = |at: usize, len: usize| {
        elf.get(at..at + len).map_or(0, |b| {
            b.iter().rev().fold(0usize, |n, x| n << 8 | usize::from(*x))
        })
    };
    assert_eq!(elf.get(..4), Some(&b"\x7fELF"[..]), "not an ELF file");
    let (offset, size, count) = (int(0x20, 8), int(0x36, 2), int(0x38, 2));
    (0..count).any(|i| int(offset + i * size, 4) == 3)
}

/// The test proper of [`the_static_binary_reaches_its_rpc_and_peer_by_host_name`], inside the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside the namespace that the_static_binary_reaches_its_rpc_and_peer_by_host_name makes"]
async fn a_static_device_resolves_inside_the_namespace() {
    use firmchain_tests::fleet::{Chain, NodeProc, NodeSpec, images};
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    assert_eq!(
        resolv.trim(),
        "nameserver 127.0.0.1",
        "not inside the test namespace"
    );
    let bin = static_bin();
    let chain = Chain::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(50_000, 2);
    let factory = dir.path().join("v0.bin");
    std::fs::write(&factory, &imgs[0]).unwrap();
    let repo = NodeProc::spawn(
        &bin,
        &chain.anvil.url,
        &chain.contract,
        &NodeSpec {
            dir: dir.path().join("repo"),
            repository: true,
            key: Some(chain.key().to_owned()),
            set: vec!["p2p.mdns=false".into()],
            ..NodeSpec::default()
        },
    )
    .unwrap();
    let by_name: Vec<String> = repo
        .addrs
        .iter()
        .filter_map(|a| a.strip_prefix("/ip4/127.0.0.1/"))
        .map(|rest| format!("/dns4/peer.firmchain.test/{rest}"))
        .collect();
    assert!(!by_name.is_empty(), "{:?}", repo.addrs);
    let port = chain.anvil.url.rsplit(':').next().unwrap().to_owned();
    let rpc = format!("http://rpc.firmchain.test:{port}");
    let device = NodeProc::spawn(
        &bin,
        &rpc,
        &chain.contract,
        &NodeSpec {
            dir: dir.path().join("device"),
            bootstrap: by_name,
            initial_image: Some(factory),
            set: vec!["p2p.mdns=false".into()],
            ..NodeSpec::default()
        },
    )
    .unwrap();
    repo.publish(&imgs[1]).unwrap();
    let s = device.wait_installed(1, Duration::from_secs(90)).unwrap();
    assert!(s["chain_error"].is_null(), "{s}");
    let log = std::fs::read_to_string(dir.path().join("device/node.log")).unwrap_or_default();
    assert!(!log.contains("failed to lookup"), "{log}");
}
