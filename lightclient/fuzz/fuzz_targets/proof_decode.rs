//! Proof decoding (committee chains, release proofs, head proofs): never panics, never allocates beyond the
//! caps, and whatever decodes re-encodes to the same bytes (one encoding per value).
#![no_main]

use firmchain_lightclient::proof::{
    decode_committee_chain, decode_head_proof, decode_release_proof, encode_committee_chain,
    encode_head_proof, encode_release_proof,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(chain) = decode_committee_chain(data) {
        assert_eq!(encode_committee_chain(&chain), data);
    }
    if let Ok(proof) = decode_release_proof(data) {
        assert_eq!(encode_release_proof(&proof), data);
    }
    if let Ok(proof) = decode_head_proof(data) {
        assert_eq!(encode_head_proof(&proof), data);
    }
});
