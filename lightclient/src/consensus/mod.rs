//! Consensus verification: bootstrap from a trusted checkpoint, then follow the sync committee through
//! updates, finality and optimistic updates. Every header that comes out carries an execution payload
//! header proven into its block, so its `state_root` and `block_hash` can anchor execution proofs.

pub mod bls;
pub mod config;
pub mod decode;
pub mod spec;
pub mod ssz;
pub mod store;
pub mod types;

pub use spec::{ChainSpec, Fork};
pub use store::{
    ConsensusError, Store, bootstrap, force_update, is_better_update, process_update, validate_update,
};
pub use types::{Bootstrap, LightClientHeader, SyncCommittee, Update, Versioned};

#[cfg(test)]
mod mainnet_tests;
#[cfg(test)]
mod spec_tests;
