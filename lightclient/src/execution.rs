//! Verification of execution-layer data against a trusted header.
//!
//! The trusted values are a block hash or the roots of a header that consensus verification produced (or,
//! in `rpc` mode on dev chains, a header the operator chose to trust). Everything else an execution RPC says
//! — the header body, account and storage values, receipts — is checked here before it is used.

use alloy::consensus::Header;
use alloy::consensus::proofs::calculate_receipt_root;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::rpc::types::{EIP1186AccountProofResponse, EIP1186StorageProof, TransactionReceipt};
use alloy::trie::{Nibbles, TrieAccount, proof::verify_proof};

/// Why execution data does not match the trusted header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecutionError {
    #[error("header hashes to {actual}, the trusted block hash is {expected}")]
    HeaderHash { expected: B256, actual: B256 },
    #[error("proof is for account {actual}, {expected} was asked for")]
    WrongAccount { expected: Address, actual: Address },
    #[error("account proof of {address} does not verify against state root {state_root}: {reason}")]
    AccountProof {
        address: Address,
        state_root: B256,
        reason: String,
    },
    #[error("storage proof of slot {slot} does not verify against storage root {storage_root}: {reason}")]
    StorageProof {
        slot: B256,
        storage_root: B256,
        reason: String,
    },
    #[error("storage proof is for slot {actual}, {expected} was asked for")]
    WrongSlot { expected: B256, actual: B256 },
    #[error("receipts hash to root {actual}, the trusted receipts root is {expected}")]
    ReceiptsRoot { expected: B256, actual: B256 },
}

/// Check that `header` is the block with the trusted hash (the hash of its RLP encoding).
pub fn verify_header(header: &Header, trusted_hash: B256) -> Result<(), ExecutionError> {
    let actual = header.hash_slow();
    if actual != trusted_hash {
        return Err(ExecutionError::HeaderHash {
            expected: trusted_hash,
            actual,
        });
    }
    Ok(())
}

/// An account whose fields were proven against a state root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedAccount {
    pub address: Address,
    pub nonce: u64,
    pub balance: U256,
    pub storage_root: B256,
    pub code_hash: B256,
}

/// Verify an `eth_getProof` account proof for `address` against a trusted state root. An account that does
/// not exist must come with a valid exclusion proof (and is returned with empty fields).
pub fn verify_account(
    state_root: B256,
    address: Address,
    proof: &EIP1186AccountProofResponse,
) -> Result<VerifiedAccount, ExecutionError> {
    if proof.address != address {
        return Err(ExecutionError::WrongAccount {
            expected: address,
            actual: proof.address,
        });
    }
    let account = TrieAccount {
        nonce: proof.nonce,
        balance: proof.balance,
        storage_root: proof.storage_hash,
        code_hash: proof.code_hash,
    };
    let empty = account.nonce == 0
        && account.balance.is_zero()
        && account.storage_root == alloy::trie::EMPTY_ROOT_HASH
        && account.code_hash == alloy::primitives::KECCAK256_EMPTY;
    let expected = (!empty).then(|| alloy::rlp::encode(account));
    verify_proof(
        state_root,
        Nibbles::unpack(keccak256(address)),
        expected,
        &proof.account_proof,
    )
    .map_err(|e| ExecutionError::AccountProof {
        address,
        state_root,
        reason: e.to_string(),
    })?;
    Ok(VerifiedAccount {
        address,
        nonce: account.nonce,
        balance: account.balance,
        storage_root: account.storage_root,
        code_hash: account.code_hash,
    })
}

/// Verify one storage proof against a verified account; returns the proven value (zero: slot empty).
pub fn verify_storage(
    account: &VerifiedAccount,
    slot: B256,
    proof: &EIP1186StorageProof,
) -> Result<U256, ExecutionError> {
    let asked = proof.key.as_b256();
    if asked != slot {
        return Err(ExecutionError::WrongSlot {
            expected: slot,
            actual: asked,
        });
    }
    let key = Nibbles::unpack(keccak256(slot));
    let root = account.storage_root;
    let checked = if proof.value.is_zero() {
        // A zero slot is absent from a canonical trie. Some nodes (anvil) keep a slot that a transaction read or
        // wrote as zero as a leaf holding RLP(0), committed in the storage root: it proves the same value.
        verify_proof(root, key, None, &proof.proof).or_else(|absent| {
            verify_proof(root, key, Some(alloy::rlp::encode(U256::ZERO)), &proof.proof).map_err(|_| absent)
        })
    } else {
        verify_proof(root, key, Some(alloy::rlp::encode(proof.value)), &proof.proof)
    };
    checked.map_err(|e| ExecutionError::StorageProof {
        slot,
        storage_root: root,
        reason: e.to_string(),
    })?;
    Ok(proof.value)
}

/// Verify the account and each requested slot of an `eth_getProof` answer; returns the values in order.
pub fn verify_storage_values(
    state_root: B256,
    address: Address,
    slots: &[B256],
    proof: &EIP1186AccountProofResponse,
) -> Result<Vec<U256>, ExecutionError> {
    let account = verify_account(state_root, address, proof)?;
    if proof.storage_proof.len() != slots.len() {
        let missing = slots.get(proof.storage_proof.len()).copied().unwrap_or_default();
        return Err(ExecutionError::StorageProof {
            slot: missing,
            storage_root: account.storage_root,
            reason: format!("{} proofs for {} slots", proof.storage_proof.len(), slots.len()),
        });
    }
    slots
        .iter()
        .zip(&proof.storage_proof)
        .map(|(slot, p)| verify_storage(&account, *slot, p))
        .collect()
}

/// Check a block's receipts (from `eth_getBlockReceipts`, in order) against its trusted receipts root.
pub fn verify_receipts(receipts_root: B256, receipts: &[TransactionReceipt]) -> Result<(), ExecutionError> {
    let envelopes: Vec<_> = receipts
        .iter()
        .map(|r| r.inner.clone().into_primitives_receipt())
        .collect();
    let actual = calculate_receipt_root(&envelopes);
    if actual != receipts_root {
        return Err(ExecutionError::ReceiptsRoot {
            expected: receipts_root,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::rpc::types::Block;

    fn fixture(name: &str) -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/mainnet-execution/");
        std::fs::read_to_string(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn block() -> Block {
        serde_json::from_str(&fixture("block.json")).unwrap()
    }

    #[test]
    fn mainnet_header_hash_verifies_and_a_changed_field_does_not() {
        let b = block();
        verify_header(&b.header.inner, b.header.hash).unwrap();
        let mut forged = b.header.inner.clone();
        forged.state_root = B256::repeat_byte(7);
        assert!(matches!(
            verify_header(&forged, b.header.hash),
            Err(ExecutionError::HeaderHash { .. })
        ));
    }

    #[test]
    fn mainnet_receipts_root_of_202_receipts() {
        let b = block();
        let receipts: Vec<TransactionReceipt> = serde_json::from_str(&fixture("receipts.json")).unwrap();
        assert_eq!(receipts.len(), 202);
        verify_receipts(b.header.receipts_root, &receipts).unwrap();
        let mut dropped = receipts.clone();
        dropped.remove(100);
        assert!(matches!(
            verify_receipts(b.header.receipts_root, &dropped),
            Err(ExecutionError::ReceiptsRoot { .. })
        ));
    }

    #[test]
    fn mainnet_storage_proof_verifies_and_forgeries_do_not() {
        let b = block();
        let proof: EIP1186AccountProofResponse = serde_json::from_str(&fixture("proof.json")).unwrap();
        let slots: Vec<B256> = proof.storage_proof.iter().map(|p| p.key.as_b256()).collect();
        let values = verify_storage_values(b.header.state_root, proof.address, &slots, &proof).unwrap();
        assert_eq!(values.len(), slots.len());

        let mut forged_value = proof.clone();
        forged_value.storage_proof[0].value += U256::from(1);
        assert!(matches!(
            verify_storage_values(b.header.state_root, proof.address, &slots, &forged_value),
            Err(ExecutionError::StorageProof { .. })
        ));
        let mut forged_balance = proof.clone();
        forged_balance.balance += U256::from(1);
        assert!(matches!(
            verify_account(b.header.state_root, proof.address, &forged_balance),
            Err(ExecutionError::AccountProof { .. })
        ));
        let other_root = B256::repeat_byte(1);
        assert!(verify_account(other_root, proof.address, &proof).is_err());
        let mut cut = proof.clone();
        cut.account_proof.pop();
        assert!(verify_account(b.header.state_root, proof.address, &cut).is_err());
        assert!(matches!(
            verify_account(b.header.state_root, Address::repeat_byte(9), &proof),
            Err(ExecutionError::WrongAccount { .. })
        ));
    }

    /// A storage trie with one leaf per (slot, RLP value) and the proof of `target`.
    fn storage_trie(leaves: &[(B256, Vec<u8>)], target: B256) -> (B256, Vec<alloy::primitives::Bytes>) {
        use alloy::trie::{HashBuilder, proof::ProofRetainer};
        let mut hashed: Vec<(B256, &Vec<u8>)> = leaves.iter().map(|(k, v)| (keccak256(k), v)).collect();
        hashed.sort();
        let wanted = Nibbles::unpack(keccak256(target));
        let mut hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(vec![wanted]));
        for (k, v) in hashed {
            hb.add_leaf(Nibbles::unpack(k), v);
        }
        let root = hb.root();
        let nodes = hb.take_proof_nodes().matching_nodes_sorted(&wanted);
        (root, nodes.into_iter().map(|(_, n)| n).collect())
    }

    fn prove(
        root: B256,
        slot: B256,
        value: U256,
        proof: Vec<alloy::primitives::Bytes>,
    ) -> Result<U256, ExecutionError> {
        let account = VerifiedAccount {
            address: Address::repeat_byte(1),
            nonce: 1,
            balance: U256::ZERO,
            storage_root: root,
            code_hash: B256::ZERO,
        };
        let p = EIP1186StorageProof {
            key: slot.into(),
            value,
            proof,
        };
        verify_storage(&account, slot, &p)
    }

    #[test]
    fn a_slot_kept_as_a_zero_leaf_proves_zero_and_nothing_else() {
        // As anvil commits a slot that a transaction touched but left at zero.
        let (zero, five) = (B256::repeat_byte(0xa), B256::repeat_byte(0xb));
        let leaves = [
            (zero, alloy::rlp::encode(U256::ZERO)),
            (five, alloy::rlp::encode(U256::from(5))),
        ];
        let (root, proof) = storage_trie(&leaves, zero);
        assert_eq!(prove(root, zero, U256::ZERO, proof.clone()), Ok(U256::ZERO));
        assert!(matches!(
            prove(root, zero, U256::from(1), proof),
            Err(ExecutionError::StorageProof { .. })
        ));
        let (root, proof) = storage_trie(&leaves, five);
        assert_eq!(prove(root, five, U256::from(5), proof.clone()), Ok(U256::from(5)));
        assert!(matches!(
            prove(root, five, U256::ZERO, proof),
            Err(ExecutionError::StorageProof { .. })
        ));
    }
}
