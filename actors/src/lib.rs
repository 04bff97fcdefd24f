//! The node's actix actors and their typed messages.
//!
//! `IndexWatcher`, `Coordinator`, `BlockFetcher`, `Verifier`, `Patcher`, `Installer`, `Publisher`, `Status`.
//! [`slots`] holds the installer's A/B image slots and their atomic pointer; [`state`] the crash-safe node state.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod slots;
pub mod state;
