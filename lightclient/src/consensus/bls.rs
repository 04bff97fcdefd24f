//! Sync-committee signatures: BLS12-381 (min_pk) fast aggregate verification with blst.

use blst::BLST_ERROR;
use blst::min_pk::{AggregatePublicKey, PublicKey, Signature};

const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// A committee's public keys, decompressed and validated once.
#[derive(Clone, Debug)]
pub struct CommitteeKeys(pub Vec<PublicKey>);

/// A public key that is not a valid BLS12-381 G1 point in the subgroup.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sync committee member {0} has an invalid public key")]
pub struct InvalidKey(pub usize);

impl CommitteeKeys {
    /// Decompress and validate (on curve, in subgroup, not infinity) every key.
    pub fn new(pubkeys: &[[u8; 48]]) -> Result<Self, InvalidKey> {
        pubkeys
            .iter()
            .enumerate()
            .map(|(i, k)| PublicKey::key_validate(k).map_err(|_| InvalidKey(i)))
            .collect::<Result<Vec<_>, _>>()
            .map(CommitteeKeys)
    }

    /// Whether `signature` is the aggregate signature over `message` of the members `signed(i)` says.
    pub fn fast_aggregate_verify(
        &self,
        signed: impl Fn(usize) -> bool,
        message: &[u8; 32],
        signature: &[u8; 96],
    ) -> bool {
        let keys: Vec<&PublicKey> = self
            .0
            .iter()
            .enumerate()
            .filter(|(i, _)| signed(*i))
            .map(|(_, k)| k)
            .collect();
        if keys.is_empty() {
            return false;
        }
        let Ok(aggregate) = AggregatePublicKey::aggregate(&keys, false) else {
            return false;
        };
        let Ok(sig) = Signature::sig_validate(signature, true) else {
            return false;
        };
        sig.verify(false, message, DST, &[], &aggregate.to_public_key(), false) == BLST_ERROR::BLST_SUCCESS
    }
}
