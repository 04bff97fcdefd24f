//! The rollout state of releases proven against a state root: `timing[product][sequence]` (go-live time and
//! the end of the activation delay) and `pausedUntil[product][0]` and `pausedUntil[product][sequence]`, all at
//! one block, in one `eth_getProof`. Revocation and cancellation share the `revoked` flag that
//! [`crate::proven`] reads.

use alloy::primitives::Address;
use firmchain_lightclient::execution::verify_storage_values;
use firmchain_lightclient::execution_rpc::ExecutionRpc;
use firmchain_update::rollout::ReleaseGate;
use firmchain_update::{ProductId, Sequence};

use crate::proven::{AtBlock, ProvenError};
use crate::slots;

/// The storage slots whose values [`read_gates`] proves, in order: the product's pause, then for each
/// sequence its timing and its own pause.
pub fn gate_slots(product: &ProductId, seqs: &[Sequence]) -> Vec<alloy::primitives::B256> {
    std::iter::once(slots::paused_until(product, Sequence(0)))
        .chain(
            seqs.iter()
                .flat_map(|s| [slots::timing(product, *s), slots::paused_until(product, *s)]),
        )
        .collect()
}

/// The proven [`ReleaseGate`] of each of `seqs` at block `at`. A release the index does not hold reads as
/// all zeros (live at time 0): callers only ask for sequences whose digest they proved.
pub async fn read_gates(
    rpc: &impl ExecutionRpc,
    index: Address,
    product: &ProductId,
    seqs: &[Sequence],
    at: AtBlock,
) -> Result<Vec<ReleaseGate>, ProvenError> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let keys = gate_slots(product, seqs);
    let proof = rpc.proof(index, keys.clone(), at.number).await?;
    let values = verify_storage_values(at.state_root, index, &keys, &proof)?;
    Ok(gates_of(&values))
}

/// The gates from the proven values of [`gate_slots`] (the product's pause first).
pub fn gates_of(values: &[alloy::primitives::U256]) -> Vec<ReleaseGate> {
    let product_paused_until = values.first().map_or(0, |v| v.saturating_to());
    values[values.len().min(1)..]
        .chunks_exact(2)
        .map(|pair| {
            let (live_at, installable_at) = slots::timing_of(pair[0]);
            ReleaseGate {
                live_at,
                installable_at,
                product_paused_until,
                release_paused_until: pair[1].saturating_to(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;

    #[test]
    fn gates_pair_timing_with_pauses() {
        let timing = (U256::from(160u64) << 64) | U256::from(100u64);
        let values = [U256::from(50u64), timing, U256::from(0u64), timing, U256::MAX];
        let gates = gates_of(&values);
        assert_eq!(gates.len(), 2);
        assert_eq!(
            gates[0],
            ReleaseGate {
                live_at: 100,
                installable_at: 160,
                product_paused_until: 50,
                release_paused_until: 0
            }
        );
        assert_eq!(
            gates[1].release_paused_until,
            u64::MAX,
            "a value above 64 bits saturates"
        );
        assert_eq!(
            gate_slots(&ProductId([1; 32]), &[Sequence(1), Sequence(2)]).len(),
            5
        );
    }
}
