//! The integration tests of firmchain, in one binary.

mod bitswap_streams;
mod contract;
mod execution_proofs;
mod helia_cid;
mod hostile_bench;
mod hostile_bitswap;
mod hostile_connections;
mod hostile_dht;
mod hostile_peer;
mod lightclient_dns;
mod lightclient_e2e;
mod lightclient_sync;
mod lightclient_tls;
mod lightclient_trust;
mod p2p_swarm;
mod proof_exchange;
mod release_proofs;
mod rollout;
