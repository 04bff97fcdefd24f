//! The SSZ merkleization the light-client containers need: chunks, `merkleize`, branch checks.
//!
//! Written out rather than derived so one set of types serves every preset (the sync committee has 512 keys
//! on mainnet and 32 on the minimal preset) without type-level sizes.

use sha2::{Digest, Sha256};

/// A 32-byte SSZ chunk or root.
pub type Root = [u8; 32];

/// sha256(a ++ b).
pub fn hash_pair(a: &Root, b: &Root) -> Root {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// The levels of a Merkle tree over `leaves` (a power of two), leaves first: for building proofs (test
/// servers, fixtures).
pub fn tree_levels(leaves: Vec<Root>) -> Vec<Vec<Root>> {
    let mut levels = vec![leaves];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let prev = levels.last().cloned().unwrap_or_default();
        levels.push(prev.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect());
    }
    levels
}

/// The Merkle branch (siblings, leaf level first) of leaf `index` in the `levels` of [`tree_levels`].
pub fn tree_branch(levels: &[Vec<Root>], mut index: usize) -> Vec<Root> {
    let mut out = Vec::new();
    for level in levels.iter().take(levels.len().saturating_sub(1)) {
        out.push(level[index ^ 1]);
        index /= 2;
    }
    out
}

/// The root of `chunks` padded with zero chunks to `limit` (a power of two at least `chunks.len()`), or to
/// the next power of two when `limit` is `None`.
pub fn merkleize(chunks: &[Root], limit: Option<usize>) -> Root {
    let width = limit
        .unwrap_or(chunks.len())
        .max(chunks.len())
        .max(1)
        .next_power_of_two();
    let mut layer: Vec<Root> = chunks.to_vec();
    let mut zero = [0u8; 32];
    let mut size = width;
    while size > 1 {
        if layer.len() % 2 == 1 {
            layer.push(zero);
        }
        layer = layer.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        zero = hash_pair(&zero, &zero);
        size /= 2;
    }
    layer.first().copied().unwrap_or(zero)
}

/// `mix_in_length(root, len)` for lists.
pub fn mix_in_length(root: &Root, len: usize) -> Root {
    let mut l = [0u8; 32];
    l[..8].copy_from_slice(&(len as u64).to_le_bytes());
    hash_pair(root, &l)
}

/// A little-endian uint64 as a chunk.
pub fn u64_chunk(v: u64) -> Root {
    let mut c = [0u8; 32];
    c[..8].copy_from_slice(&v.to_le_bytes());
    c
}

/// Bytes packed into chunks (the last one zero-padded).
pub fn pack(bytes: &[u8]) -> Vec<Root> {
    bytes
        .chunks(32)
        .map(|c| {
            let mut out = [0u8; 32];
            out[..c.len()].copy_from_slice(c);
            out
        })
        .collect()
}

/// The root of a fixed-size byte vector (`Bytes20`, `Bytes48`, `ByteVector[256]`, ...).
pub fn bytes_root(bytes: &[u8]) -> Root {
    merkleize(&pack(bytes), None)
}

/// The root of a `ByteList[max]`.
pub fn byte_list_root(bytes: &[u8], max: usize) -> Root {
    mix_in_length(&merkleize(&pack(bytes), Some(max.div_ceil(32))), bytes.len())
}

/// Whether `leaf` sits at `gindex` under `root`, proven by `branch` (spec `is_valid_merkle_branch` with
/// depth and index taken from the generalized index).
pub fn is_valid_branch(leaf: &Root, branch: &[Root], gindex: u64, root: &Root) -> bool {
    let depth = 63 - gindex.leading_zeros() as usize;
    if branch.len() != depth {
        return false;
    }
    let index = gindex - (1 << depth);
    let mut value = *leaf;
    for (i, node) in branch.iter().enumerate() {
        value = if (index >> i) & 1 == 1 {
            hash_pair(node, &value)
        } else {
            hash_pair(&value, node)
        };
    }
    &value == root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkleize_pads_with_zero_subtrees() {
        let a = [1u8; 32];
        assert_eq!(merkleize(&[a], None), a);
        let z = [0u8; 32];
        assert_eq!(
            merkleize(&[a], Some(4)),
            hash_pair(&hash_pair(&a, &z), &hash_pair(&z, &z))
        );
        assert_eq!(merkleize(&[], Some(2)), hash_pair(&z, &z));
    }

    #[test]
    fn branch_round_trip() {
        let leaves: Vec<Root> = (0..8u8).map(|i| [i; 32]).collect();
        let root = merkleize(&leaves, None);
        // Branch for leaf 5 (gindex 8 + 5 = 13): sibling 4, then hash(6,7), then hash(hash(0,1),hash(2,3)).
        let l = |i: usize| leaves[i];
        let branch = [
            l(4),
            hash_pair(&l(6), &l(7)),
            hash_pair(&hash_pair(&l(0), &l(1)), &hash_pair(&l(2), &l(3))),
        ];
        assert!(is_valid_branch(&l(5), &branch, 13, &root));
        assert!(!is_valid_branch(&l(4), &branch, 13, &root));
        assert!(!is_valid_branch(&l(5), &branch[..2], 13, &root));
    }
}
