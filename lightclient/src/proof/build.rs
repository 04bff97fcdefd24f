//! Building proofs on a node with chain access (a repository, or a gateway): from a signed header its light
//! client verified and `eth_getProof` answers of an untrusted execution RPC. Every proof is verified as a
//! device would verify it, and round-tripped through the encoding, before it is handed out: a node never
//! serves a proof that fails.

use alloy::primitives::U256;
use alloy::rpc::types::EIP1186AccountProofResponse;

use super::verify::{Expected, store_from_checkpoint, verify_signed_header};
use super::{
    CommitteeChain, HeadProof, MAX_CHAIN_UPDATES, MAX_REVOCATIONS, ProofError, ReleaseProof, StateProof,
    decode_committee_chain, decode_head_proof, decode_release_proof, encode_committee_chain,
    encode_head_proof, encode_release_proof, verify_head_proof, verify_release_proof,
};
use crate::consensus::ssz::Root;
use crate::consensus::{ChainSpec, Store, Update};
use crate::execution::verify_storage_values;
use crate::execution_rpc::ExecutionRpc;
use crate::rpc::{ConsensusRpc, RpcError};

/// Why a proof could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("the proof built does not verify: {0}")]
    Verify(#[from] ProofError),
    #[error("a committee chain covers at most {max} periods, {asked} were asked for")]
    TooManyPeriods { asked: u64, max: usize },
}

fn state_from(response: EIP1186AccountProofResponse) -> StateProof {
    StateProof {
        contract: response.address,
        nonce: response.nonce,
        balance: response.balance,
        storage_root: response.storage_hash,
        code_hash: response.code_hash,
        account_proof: response.account_proof,
        storage: response
            .storage_proof
            .into_iter()
            .map(|s| (s.value, s.proof))
            .collect(),
    }
}

/// Decode what `encode` made and compare: the proof survives the wire unchanged.
fn round_trip<T: PartialEq>(
    value: &T,
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, ProofError>,
) -> Result<(), ProofError> {
    if &decode(&encode(value))? != value {
        return Err(ProofError::NonCanonical {
            what: "the value changes through its encoding",
        });
    }
    Ok(())
}

/// A release proof for `sequence` of `expected.product`, anchored at `header` (a finality update or an
/// update the node's light client accepted; it must verify against `store`). `record` is the release
/// record's ABI encoding, which the node holds from the release's event or its own publication.
pub async fn build_release_proof(
    rpc: &impl ExecutionRpc,
    store: &Store,
    header: Update,
    expected: &Expected<'_>,
    sequence: u64,
    record: Vec<u8>,
) -> Result<ReleaseProof, BuildError> {
    let anchor = verify_signed_header(
        expected.spec,
        store,
        &header,
        expected.current_slot,
        expected.participation,
    )?;
    let keys = expected.layout.release_slots(expected.product, sequence);
    let response = rpc
        .proof(expected.contract, keys.to_vec(), anchor.block_number)
        .await?;
    let proof = ReleaseProof {
        header,
        product: expected.product,
        sequence,
        state: state_from(response),
        record,
    };
    verify_release_proof(store, &proof, expected)?;
    round_trip(&proof, encode_release_proof, decode_release_proof)?;
    Ok(proof)
}

/// A head proof for `expected.product` at `header`, with the revocation flags of the last `window`
/// sequences (at most [`MAX_REVOCATIONS`]; a device asking about its own release passes
/// `head - installed + 1`).
pub async fn build_head_proof(
    rpc: &impl ExecutionRpc,
    store: &Store,
    header: Update,
    expected: &Expected<'_>,
    window: usize,
) -> Result<HeadProof, BuildError> {
    let anchor = verify_signed_header(
        expected.spec,
        store,
        &header,
        expected.current_slot,
        expected.participation,
    )?;
    let head_key = [expected.layout.head(expected.product)];
    let first = rpc
        .proof(expected.contract, head_key.to_vec(), anchor.block_number)
        .await?;
    let head: U256 = verify_storage_values(anchor.state_root, expected.contract, &head_key, &first)
        .map_err(ProofError::from)?[0];
    let head = u64::try_from(head).map_err(|_| ProofError::NonCanonical {
        what: "head[product] exceeds 64 bits",
    })?;
    let window = window.clamp(0, MAX_REVOCATIONS) as u64;
    let revocations_from = head.saturating_add(1).saturating_sub(window).max(1);
    let keys = expected
        .layout
        .head_slots(expected.product, head, revocations_from);
    let response = rpc.proof(expected.contract, keys, anchor.block_number).await?;
    let proof = HeadProof {
        header,
        product: expected.product,
        revocations_from,
        state: state_from(response),
    };
    verify_head_proof(store, &proof, expected, None)?;
    round_trip(&proof, encode_head_proof, decode_head_proof)?;
    Ok(proof)
}

/// A committee chain from `checkpoint` through the updates of periods `from_period..from_period + count`,
/// fetched from a beacon API and verified from the checkpoint before it is returned. `with_bootstrap`:
/// include the checkpoint's bootstrap (for a receiver that has no store yet).
pub async fn build_committee_chain(
    spec: &ChainSpec,
    rpc: &impl ConsensusRpc,
    checkpoint: Root,
    with_bootstrap: bool,
    from_period: u64,
    count: u64,
    current_slot: u64,
) -> Result<CommitteeChain, BuildError> {
    if count > MAX_CHAIN_UPDATES as u64 {
        return Err(BuildError::TooManyPeriods {
            asked: count,
            max: MAX_CHAIN_UPDATES,
        });
    }
    let bootstrap = rpc.bootstrap(checkpoint).await?;
    let updates = if count == 0 {
        Vec::new()
    } else {
        rpc.updates(from_period, count).await?
    };
    let full = CommitteeChain {
        bootstrap: Some(bootstrap),
        updates,
    };
    store_from_checkpoint(spec, &checkpoint, &full, current_slot)?;
    let chain = CommitteeChain {
        bootstrap: full.bootstrap.filter(|_| with_bootstrap),
        updates: full.updates,
    };
    round_trip(&chain, encode_committee_chain, decode_committee_chain)?;
    Ok(chain)
}
