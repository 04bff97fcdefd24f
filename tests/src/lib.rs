//! Cross-crate, end-to-end and interop tests of firmchain.
//!
//! Integration tests live in `tests/it/` (one test binary); this library holds the shared harness.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
