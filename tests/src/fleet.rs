//! A fleet of real `firmchain run` processes on loopback over a real anvil chain: spawn nodes, talk to their
//! HTTP API, wait for conditions on `/status` with deadlines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Anvil, Daemon};

/// The product every fleet test uses.
pub const PRODUCT: &str = "acme-sensor";

/// anvil with a FirmwareIndex whose publisher is account 0.
#[derive(Debug)]
pub struct Chain {
    pub anvil: Anvil,
    pub index: firmchain_contracts::IndexClient,
    pub contract: String,
}

impl Chain {
    /// Start anvil, deploy the index and authorise account 0.
    pub async fn start() -> Result<Chain, String> {
        let anvil = Anvil::start()?;
        let index = crate::index_with_publisher(&anvil).await?;
        let contract = index.address().to_string();
        Ok(Chain {
            anvil,
            index,
            contract,
        })
    }

    /// The publisher's private key.
    pub fn key(&self) -> &str {
        self.anvil.keys.first().map_or("", |k| k.as_str())
    }
}

/// How to start one node.
#[derive(Clone, Debug, Default)]
pub struct NodeSpec {
    /// Its data folder.
    pub dir: PathBuf,
    /// Repository role (signing with `key`).
    pub repository: bool,
    /// FIRMCHAIN_PRIVATE_KEY for the repository role.
    pub key: Option<String>,
    /// Peers to bootstrap from.
    pub bootstrap: Vec<String>,
    /// The image a device runs before its first update.
    pub initial_image: Option<PathBuf>,
    /// More `--set` values.
    pub set: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
}

/// A running node.
#[derive(Debug)]
pub struct NodeProc {
    pub daemon: Daemon,
    /// `127.0.0.1:PORT` of its API.
    pub api: String,
    /// Its multiaddrs with `/p2p/<peer id>`.
    pub addrs: Vec<String>,
    pub peer_id: String,
    pub dir: PathBuf,
}

impl NodeProc {
    /// What the node wrote to its log so far (`node.log` in its folder, created when it was spawned).
    pub fn log(&self) -> String {
        let path = self.dir.join("node.log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Start a node from `bin` on `chain` as `spec` says; returns once it printed its start-up line.
    pub fn spawn(bin: &Path, chain_url: &str, contract: &str, spec: &NodeSpec) -> Result<NodeProc, String> {
        std::fs::create_dir_all(&spec.dir).map_err(|e| e.to_string())?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec.dir.join("node.log"))
            .map_err(|e| e.to_string())?;
        let mut extra = vec!["p2p.stall_timeout_secs=20".to_owned()];
        if !spec.bootstrap.is_empty() {
            extra.push(format!("p2p.bootstrap={}", spec.bootstrap.join(",")));
        }
        if let Some(img) = &spec.initial_image {
            extra.push(format!("install.initial_image={}", img.display()));
        }
        extra.extend(spec.set.iter().cloned());
        let mut cmd = firmchain_harness::node_command(bin, &spec.dir, chain_url, contract, PRODUCT, &extra);
        if spec.repository {
            cmd.arg("--repository");
        }
        if let Some(k) = &spec.key {
            cmd.env("FIRMCHAIN_PRIVATE_KEY", k);
        }
        cmd.envs(spec.env.iter().cloned()).stderr(Stdio::from(stderr));
        let daemon = Daemon::spawn(cmd, Duration::from_secs(60))?;
        let start = firmchain_harness::NodeStart::parse(&daemon.first_line)
            .ok_or_else(|| format!("{:?} is not a node's start-up line", daemon.first_line))?;
        Ok(NodeProc {
            api: start.api,
            peer_id: start.peer_id,
            addrs: start.addrs,
            daemon,
            dir: spec.dir.clone(),
        })
    }

    /// `GET /status`.
    pub fn status(&self) -> Result<Value, String> {
        let (code, v) = http(&self.api, "GET", "/status", &[], None)?;
        if code != 200 {
            return Err(format!("GET /status: {code} {v}"));
        }
        Ok(v)
    }

    /// Wait up to `timeout` until `/status` satisfies `pred`; the error shows the last status.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status();
            if let Ok(v) = &s
                && pred(v)
            {
                return Ok(v.clone());
            }
            if Instant::now() > deadline {
                let log = self.log();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                return Err(format!(
                    "{what}: not reached within {timeout:?}; last status {s:?}\nlog tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the device runs release `sequence` (and return its status).
    pub fn wait_installed(&self, sequence: u64, timeout: Duration) -> Result<Value, String> {
        self.wait_for(&format!("release {sequence} installed"), timeout, |v| {
            v["installed"]["sequence"].as_u64() == Some(sequence)
        })
    }

    /// Wait until the node's log holds `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{needle:?} not logged within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `POST /publish` of `image` (repository role); returns the published release.
    pub fn publish(&self, image: &[u8]) -> Result<Value, String> {
        let (code, v) = http(&self.api, "POST", "/publish", image, None)?;
        if code != 200 {
            return Err(format!("POST /publish: {code} {v}"));
        }
        Ok(v)
    }
}

/// The image in a device's active slot.
pub fn active_image(dir: &Path) -> Result<Vec<u8>, String> {
    let state = std::fs::read(dir.join("slots/state.json")).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&state).map_err(|e| e.to_string())?;
    let slot = v["active"]["slot"].as_str().ok_or("no active slot")?;
    std::fs::read(dir.join("slots").join(slot)).map_err(|e| e.to_string())
}

/// One HTTP/1.1 request to `addr` (`host:port`); returns the status code and the JSON body (or the text as a
/// JSON string).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    token: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // A server may answer (401, 404) and close before it read the whole body: read its answer anyway.
    let sent = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    if raw.is_empty() {
        sent.map_err(|e| e.to_string())?;
        read.map_err(|e| e.to_string())?;
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status")?;
    let v = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    Ok((code, v))
}

/// A sample firmware image and its successors: `n` releases of `size` bytes, each a few edits from the last.
pub fn images(size: usize, n: usize) -> Vec<Vec<u8>> {
    let mut out = vec![crate::pseudo_random(size, 11)];
    for i in 1..n {
        let mut next = out[i - 1].clone();
        let at = (size / (n + 1)) * i;
        let patch = crate::pseudo_random(4096, 100 + i as u64);
        next[at..at + 4096].copy_from_slice(&patch);
        next.extend_from_slice(format!("release {i}").as_bytes());
        out.push(next);
    }
    out
}

/// A JSON-RPC proxy in front of anvil that rewrites one method's answers: a dishonest RPC provider.
#[derive(Debug)]
pub struct TamperingRpc {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl TamperingRpc {
    /// Forward to `upstream` (`http://host:port`), passing the JSON answer of every `method` call through
    /// `tamper`.
    pub fn start(
        upstream: &str,
        method: &'static str,
        tamper: fn(&mut Value),
    ) -> Result<TamperingRpc, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
        let upstream = upstream.trim_start_matches("http://").to_owned();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let _ = proxy_one(conn, &upstream, method, tamper);
                });
            }
        });
        Ok(TamperingRpc { url })
    }
}

fn read_request(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    Ok(body)
}

/// One request per connection (answers close it), forwarded to `upstream`.
fn proxy_one(
    mut conn: TcpStream,
    upstream: &str,
    method: &str,
    tamper: fn(&mut Value),
) -> std::io::Result<()> {
    let body = read_request(&mut conn)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (code, mut answer) = http(upstream, "POST", "/", &body, None).map_err(std::io::Error::other)?;
    if request["method"] == method {
        tamper(&mut answer);
    }
    let text = answer.to_string();
    let reply = format!(
        "HTTP/1.1 {code} OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    conn.write_all(reply.as_bytes())
}
