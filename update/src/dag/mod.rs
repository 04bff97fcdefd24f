//! Blocks, CIDs and UnixFS file DAGs.
//!
//! [`DagBuilder`] cuts a byte stream into fixed-size raw leaves and links them into a balanced dag-pb tree, the
//! layout of `ipfs add --cid-version 1 --raw-leaves --chunker size-262144` (174 links per node), so the same
//! bytes get the same root CID here as in kubo and Helia. [`read_file`] walks any UnixFS file DAG that IPFS
//! tools make (CIDv0 or CIDv1, dag-pb or raw leaves, sha2-256 or blake3), verifying every block against its
//! CID and every size against what its parent announced.

mod builder;
pub mod pb;
mod reader;
mod seek;
#[cfg(test)]
mod test_blocks;

use cid::Cid;
use cid::multihash::Multihash;
use sha2::Digest;

pub use builder::{DagBuilder, DagOptions, DagRoot, LeafHash, build_from_reader, directory, read_full};
pub use reader::{BlockSource, ReadError, ReadLimits, read_file};
pub use seek::DagFile;

/// The multicodec of raw blocks.
pub const RAW: u64 = 0x55;
/// The multicodec of dag-pb blocks.
pub const DAG_PB: u64 = 0x70;
/// The multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// The multihash code of blake3 (32-byte digests).
pub const BLAKE3: u64 = 0x1e;
/// The identity multihash (the "digest" is the data itself).
pub const IDENTITY: u64 = 0x00;
/// The chunk size `ipfs add` uses by default and we use.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// Links per node in the balanced layout of kubo and Helia.
pub const DEFAULT_MAX_LINKS: usize = 174;
/// The largest block we accept from anyone (kubo and Helia's limit as well).
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;

/// Why a block does not match its CID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("block {cid} is {size} bytes, the limit is {MAX_BLOCK_SIZE}")]
    TooLarge { cid: Cid, size: usize },
    #[error("block {cid} uses unsupported multihash 0x{code:x}")]
    UnsupportedHash { cid: Cid, code: u64 },
    #[error("block does not match its CID {cid}: digest {actual}")]
    HashMismatch { cid: Cid, actual: String },
}

/// Hash `data` with the multihash `code`.
pub fn multihash(code: u64, data: &[u8]) -> Option<Multihash<64>> {
    match code {
        SHA2_256 => Multihash::wrap(SHA2_256, &sha2::Sha256::digest(data)).ok(),
        BLAKE3 => Multihash::wrap(BLAKE3, blake3::hash(data).as_bytes()).ok(),
        IDENTITY if data.len() <= 64 => Multihash::wrap(IDENTITY, data).ok(),
        _ => None,
    }
}

/// The CIDv1 of `data` under `codec`, hashed with sha2-256.
pub fn cid_of(codec: u64, data: &[u8]) -> Cid {
    let digest = sha2::Sha256::digest(data);
    // A 32-byte digest always fits a Multihash<64>.
    let mh = Multihash::wrap(SHA2_256, &digest).unwrap_or_default();
    Cid::new_v1(codec, mh)
}

/// Check a block against its CID: size limit, supported hash, matching digest.
pub fn verify_block(cid: &Cid, data: &[u8]) -> Result<(), BlockError> {
    if data.len() > MAX_BLOCK_SIZE {
        return Err(BlockError::TooLarge {
            cid: *cid,
            size: data.len(),
        });
    }
    let code = cid.hash().code();
    if code == IDENTITY && data.len() > 64 {
        return Err(BlockError::HashMismatch {
            cid: *cid,
            actual: "identity digest over 64 bytes".into(),
        });
    }
    let actual = multihash(code, data).ok_or(BlockError::UnsupportedHash { cid: *cid, code })?;
    if actual.digest() != cid.hash().digest() {
        return Err(BlockError::HashMismatch {
            cid: *cid,
            actual: hex::encode(actual.digest()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_cid_matches_known_vectors() {
        // `ipfs add --cid-version 1 --raw-leaves` of an empty file, and of "hello".
        assert_eq!(
            cid_of(RAW, b"").to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(
            cid_of(RAW, b"hello").to_string(),
            "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        );
    }

    #[test]
    fn verify_block_catches_tampering() {
        let cid = cid_of(RAW, b"block");
        verify_block(&cid, b"block").unwrap();
        assert!(matches!(
            verify_block(&cid, b"blocc"),
            Err(BlockError::HashMismatch { .. })
        ));
        let b3 = Cid::new_v1(RAW, multihash(BLAKE3, b"block").unwrap());
        verify_block(&b3, b"block").unwrap();
        assert!(verify_block(&b3, b"other").is_err());
        let odd = Cid::new_v1(RAW, Multihash::wrap(0x13, &[0; 64]).unwrap());
        assert!(matches!(
            verify_block(&odd, b"x"),
            Err(BlockError::UnsupportedHash { code: 0x13, .. })
        ));
        let big = vec![0u8; MAX_BLOCK_SIZE + 1];
        assert!(matches!(
            verify_block(&cid_of(RAW, &big), &big),
            Err(BlockError::TooLarge { .. })
        ));
    }
}
