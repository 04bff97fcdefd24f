//! The node's actix actors and their typed messages (DESIGN.md, "Flow").
//!
//! - [`watcher::IndexWatcher`]: verified reads of the index → `ReleaseSeen`, `ReleaseRevoked`.
//! - [`coordinator::Coordinator`]: a thin shell over the pure `UpdateMachine` → `FetchRelease`, `InstallRelease`.
//! - [`fetcher::BlockFetcher`] and [`fetcher::Verifier`] (a `SyncArbiter`): Bitswap fetch, then blake3 and size.
//! - [`installer::Patcher`] (a `SyncArbiter`) and [`installer::Installer`]: apply into the inactive slot, switch,
//!   health check, rollback; or an external installer command.
//! - [`publisher::Publisher`] (repository role) and [`status::Status`].
//!
//! The installer's A/B image [`slots`] and the crash-safe node [`state`] live here too, and the composition root
//! [`node::Node::start`] that wires them.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chain;
pub mod coordinator;
pub mod error;
pub mod fetcher;
pub mod installer;
pub mod messages;
pub mod node;
pub mod proofs;
pub mod publisher;
pub mod rollout;
pub mod slots;
pub mod state;
pub mod status;
pub mod watcher;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
