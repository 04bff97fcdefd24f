//! The node's actix actors and their typed messages.
//!
//! `IndexWatcher`, `Coordinator`, `BlockFetcher`, `Verifier`, `Patcher`, `Installer`, `Publisher`, `Status`.
//! Done so far: the [`messages`], the [`coordinator::Coordinator`] over the pure `UpdateMachine`, the installer's
//! A/B image [`slots`] with their atomic pointer, and the crash-safe node [`state`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod coordinator;
pub mod messages;
pub mod slots;
pub mod state;
