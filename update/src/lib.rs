//! Pure update logic of firmchain.
//!
//! Everything here is plain functions over bytes, `Read`, `Write` and `Seek`: no async runtime, no network,
//! no clock. That keeps the code that decides what a device installs small, unit-tested and fuzzed.
//!
//! - [`record`]: the on-chain [`ReleaseRecord`], its canonical ABI encoding and keccak digest.
//! - [`patch`]: patch creation (bidiff + zstd) and streaming, memory-bounded application.
//! - [`dag`]: chunking into CIDv1 blocks and a UnixFS DAG that IPFS tools agree with, and reassembly.
//! - [`car`]: CAR v1 export, import and indexing.
//! - [`hash`]: blake3 helpers and the [`Blake3Hash`] newtype.
//! - [`rollout`]: the rollout rules a device enforces (hardware class, expiry, pause, delay, share).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod car;
pub mod dag;
pub mod hash;
pub mod machine;
pub mod patch;
pub mod record;
pub mod rollout;
pub mod varint;

pub use hash::Blake3Hash;
pub use record::{ProductId, ReleaseKind, ReleaseRecord, Sequence};
