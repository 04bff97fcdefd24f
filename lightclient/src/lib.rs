//! Ethereum light client: verified headers and storage proofs without a full node.
//!
//! Consensus sync (bootstrap, sync-committee updates, finality) and execution proofs (`eth_getProof`, receipts) as pure functions over data; RPC clients behind traits.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
