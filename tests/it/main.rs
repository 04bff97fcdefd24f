//! The integration tests of firmchain, in one binary.

mod helia_cid;
