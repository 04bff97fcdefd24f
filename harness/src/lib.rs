//! Local fleets of firmchain processes, for `firmchain demo` and the tests: a supervisor for child processes
//! ([`Proc`]), the anvil finder ([`find_anvil`]) and the command line of a local node ([`node_command`],
//! [`NodeStart`]), and a local beacon light-client server over anvil ([`beacon`], for `firmchain demo --peers`
//! and the light-mode tests). Nothing here is test-only machinery of the node itself: the demo ships with the
//! binary.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod beacon;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Why a process could not be run or waited for.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("starting {name}: {source}")]
    Spawn { name: String, source: std::io::Error },
    #[error("{name} printed nothing within {timeout:?}")]
    Silent { name: String, timeout: Duration },
    #[error("{name} did not stop within {timeout:?} of SIGTERM")]
    NoStop { name: String, timeout: Duration },
    #[error("{name}: {source}")]
    Wait { name: String, source: std::io::Error },
}

/// A child process whose stdout is read line by line (so it never blocks on a full pipe). Dropped, it is
/// killed; with [`Proc::graceful`] it gets SIGTERM and 5 s to stop first.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    graceful: bool,
}

impl Proc {
    /// Spawn `cmd` with its stdout piped (stdin and stderr as the caller set them).
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Proc, HarnessError> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                name: name.to_owned(),
                source,
            })?;
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Ok(Proc {
            name: name.to_owned(),
            child,
            lines,
            graceful: false,
        })
    }

    /// Stop with SIGTERM (then SIGKILL after 5 s) when dropped.
    pub fn graceful(mut self) -> Proc {
        self.graceful = true;
        self
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints, waiting up to `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Result<String, HarnessError> {
        self.lines
            .recv_timeout(timeout)
            .map_err(|_| HarnessError::Silent {
                name: self.name.clone(),
                timeout,
            })
    }

    /// The first line for which `pick` returns something, within `timeout`.
    pub fn wait_line<T>(
        &self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line(left).map_err(|_| HarnessError::Silent {
                name: self.name.clone(),
                timeout,
            })?;
            if let Some(v) = pick(&line) {
                return Ok(v);
            }
        }
    }

    /// Ask it to stop (SIGTERM) and wait up to `timeout`; returns its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<i32>, HarnessError> {
        let wait = |source| HarnessError::Wait {
            name: self.name.clone(),
            source,
        };
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(wait)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|source| HarnessError::Wait {
                name: self.name.clone(),
                source,
            })? {
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::NoStop {
                    name: self.name.clone(),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill it (SIGKILL, as a power cut would) and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.graceful && self.terminate(Duration::from_secs(5)).is_ok() {
            return;
        }
        self.kill9();
    }
}

/// Where `scripts/setup` installs anvil, below the workspace.
pub const ANVIL_IN_WORKSPACE: &str = "contracts/tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

/// anvil: `given`, FIRMCHAIN_ANVIL, the npm package that `scripts/setup` installs (looked up from the working
/// folder and from this program's folder upwards), or `anvil` on the PATH.
pub fn find_anvil(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_owned();
    }
    if let Some(p) = std::env::var_os("FIRMCHAIN_ANVIL") {
        return PathBuf::from(p);
    }
    let mut starts = vec![std::env::current_dir().unwrap_or_default()];
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    for start in starts {
        for dir in start.ancestors() {
            if dir.join(ANVIL_IN_WORKSPACE).exists() {
                return dir.join(ANVIL_IN_WORKSPACE);
            }
        }
    }
    PathBuf::from("anvil")
}

/// `firmchain --json run` of a local node on an `rpc`-mode dev chain: loopback ports of its choosing, a poll
/// every second, then `extra` `--set` values.
pub fn node_command(
    bin: &Path,
    dir: &Path,
    rpc: &str,
    contract: &str,
    product: &str,
    extra: &[String],
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--json", "run", "--data"]).arg(dir);
    let base = [
        "chain.mode=rpc".to_owned(),
        format!("chain.execution_rpc={rpc}"),
        format!("chain.contract={contract}"),
        format!("chain.product={product}"),
        "chain.poll_interval_secs=1".into(),
        "p2p.listen=/ip4/127.0.0.1/tcp/0".into(),
        "api.listen=127.0.0.1:0".into(),
    ];
    for s in base.iter().chain(extra) {
        cmd.arg("--set").arg(s);
    }
    cmd.env("FIRMCHAIN_LOG", "info,libp2p_kad=error");
    cmd
}

/// What a node's start-up line (`firmchain --json run`) says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStart {
    /// `127.0.0.1:PORT` of its API.
    pub api: String,
    /// Its peer id.
    pub peer_id: String,
    /// Its multiaddrs with `/p2p/<peer id>`.
    pub addrs: Vec<String>,
}

impl NodeStart {
    /// Read the start-up line; `None` if it is not one.
    pub fn parse(line: &str) -> Option<NodeStart> {
        let v: Value = serde_json::from_str(line).ok()?;
        let field = |k: &str| v[k].as_str().map(str::to_owned);
        Some(NodeStart {
            api: field("api")?,
            peer_id: field("peer_id")?,
            addrs: v["addrs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_line_is_read_and_other_lines_are_not() {
        let line = r#"{"running":"device","api":"127.0.0.1:5","peer_id":"12D3","addrs":["/ip4/127.0.0.1/tcp/1/p2p/12D3"]}"#;
        let s = NodeStart::parse(line).unwrap();
        assert_eq!(
            (s.api.as_str(), s.peer_id.as_str(), s.addrs.len()),
            ("127.0.0.1:5", "12D3", 1)
        );
        assert_eq!(NodeStart::parse("starting"), None);
        assert_eq!(NodeStart::parse(r#"{"api":null}"#), None);
    }

    #[test]
    fn a_process_is_read_line_by_line_and_stopped() {
        let mut p = Proc::spawn(
            "sh",
            Command::new("sh").args(["-c", "echo one; echo two; exec sleep 30"]),
        )
        .unwrap()
        .graceful();
        assert_eq!(p.next_line(Duration::from_secs(10)).unwrap(), "one");
        assert_eq!(
            p.wait_line(Duration::from_secs(10), |l| (l == "two").then_some(2))
                .unwrap(),
            2
        );
        assert!(matches!(
            p.next_line(Duration::from_millis(100)),
            Err(HarnessError::Silent { .. })
        ));
        assert!(p.terminate(Duration::from_secs(10)).is_ok());
    }
}
