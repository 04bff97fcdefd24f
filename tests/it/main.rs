//! The integration tests of firmchain, in one binary.

mod contract;
mod helia_cid;
