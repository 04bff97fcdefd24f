//! FirmwareIndex: the on-chain release index, its compiled artifact and Rust bindings.
//!
//! Holds `FirmwareIndex.sol`, the committed artifact, alloy bindings and the storage-slot helpers used for `eth_getProof`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
