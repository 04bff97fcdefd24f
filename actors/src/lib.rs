//! The node's actix actors and their typed messages.
//!
//! `IndexWatcher`, `Coordinator`, `BlockFetcher`, `Verifier`, `Patcher`, `Installer`, `Publisher`, `Status`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
