//! Typed, layered node configuration.
//!
//! Defaults, then TOML, then `FIRMCHAIN_*` environment variables, then CLI flags; one `validate()` with typed errors.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
