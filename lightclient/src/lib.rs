//! Ethereum light client: verified headers and storage proofs without a full node.
//!
//! Consensus sync (bootstrap, sync-committee updates, finality) and execution proofs (`eth_getProof`,
//! receipts) as pure functions over data; RPC clients behind traits. [`execution`] verifies what an untrusted
//! execution RPC returns against a trusted header: the header's hash, account and storage proofs against its
//! state root, and receipts against its receipts root.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod consensus;
pub mod execution;
pub mod execution_rpc;
pub mod http;
pub mod proof;
pub mod recorded;
pub mod rpc;
