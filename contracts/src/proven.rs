//! Reads of the index proven against a state root: `head[product]`, then `digest` and `revoked` of that
//! sequence, all at one block, each checked with `eth_getProof` (account proof, then storage proofs). The
//! state root comes from a verified header (the light client, or a header checked against its hash).

use alloy::primitives::{Address, B256};
use firmchain_lightclient::execution::{ExecutionError, verify_storage_values};
use firmchain_lightclient::execution_rpc::ExecutionRpc;
use firmchain_lightclient::rpc::RpcError;
use firmchain_update::{ProductId, Sequence};

use crate::slots;

/// A product's newest release as the index holds it at one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvenHead {
    /// The newest sequence (0: no release yet).
    pub sequence: Sequence,
    /// keccak of the release record.
    pub digest: B256,
    /// Whether that release is revoked.
    pub revoked: bool,
}

/// Why a proven read failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvenError {
    #[error("eth_getProof: {0}")]
    Rpc(#[from] RpcError),
    #[error("verification failed: {0}")]
    Verify(#[from] ExecutionError),
}

/// Read and prove `product`'s head at block `number`, whose state root is `state_root`.
pub async fn read_head(
    rpc: &impl ExecutionRpc,
    index: Address,
    product: &ProductId,
    number: u64,
    state_root: B256,
) -> Result<ProvenHead, ProvenError> {
    let head_slot = [slots::head(product)];
    let proof = rpc.proof(index, head_slot.to_vec(), number).await?;
    let head = verify_storage_values(state_root, index, &head_slot, &proof)?[0];
    let sequence = Sequence(head.saturating_to());
    let keys = [
        slots::digest(product, sequence),
        slots::revoked(product, sequence),
    ];
    let proof = rpc.proof(index, keys.to_vec(), number).await?;
    let values = verify_storage_values(state_root, index, &keys, &proof)?;
    Ok(ProvenHead {
        sequence,
        digest: B256::from(values[0]),
        revoked: !values[1].is_zero(),
    })
}
