//! Chain proofs on the node: a node with chain access serves them ([`serve`]), a `peers`-mode device follows
//! the index through them alone ([`follow`], over the pure [`book`]), and a light-mode node with
//! `chain.peers_fallback` follows them when its own sources fail or fall behind ([`fallback`]). The proof
//! format and its verification are the light client's (`firmchain_lightclient::proof`); the transport is p2p's
//! (`firmchain_p2p::proofs`).

pub mod book;
pub mod fallback;
pub mod follow;
pub mod serve;

pub use book::{FollowError, ProofBook, SavedProofs};
pub use follow::{FollowerPorts, OfferProofs, ProofFollower, Source};
pub use serve::ProofServing;
