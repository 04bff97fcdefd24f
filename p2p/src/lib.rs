//! The libp2p swarm: Kademlia provider discovery, Bitswap block exchange, the persistent blockstore.
//!
//! The `Swarm` runs in one event-loop task behind a cloneable handle; every block is checked against its CID before it is stored.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
