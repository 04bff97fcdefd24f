//! Reassembling a file from the blocks of its UnixFS DAG.

use std::io::Write;

use cid::Cid;

use super::pb::{PbError, PbNode, UnixFs, UnixFsType};
use super::{BlockError, DAG_PB, RAW, verify_block};

/// Where blocks come from: a blockstore, a CAR file, the network.
pub trait BlockSource {
    /// The error of this source.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The block with this CID (the reader verifies it against the CID).
    fn get(&mut self, cid: &Cid) -> Result<Vec<u8>, Self::Error>;
}

/// Bounds on what a DAG may make us do.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// The most file bytes to write.
    pub max_size: u64,
    /// The deepest DAG accepted.
    pub max_depth: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_size: u64::MAX,
            max_depth: 32,
        }
    }
}

/// Why a file could not be reassembled.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E: std::error::Error + 'static> {
    #[error("fetching block {cid}: {source}")]
    Source { cid: Cid, source: E },
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("block {cid} is not valid dag-pb: {source}")]
    Pb { cid: Cid, source: PbError },
    #[error("block {cid} is not a UnixFS file node ({what})")]
    NotAFile { cid: Cid, what: String },
    #[error("block {cid} has unsupported codec 0x{codec:x}")]
    Codec { cid: Cid, codec: u64 },
    #[error("block {cid} holds {actual} file bytes, its parent announced {expected}")]
    SizeMismatch { cid: Cid, expected: u64, actual: u64 },
    #[error("file exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("DAG is deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("writing the file: {0}")]
    Write(#[source] std::io::Error),
}

enum Frame {
    Visit {
        cid: Cid,
        expected: Option<u64>,
        depth: usize,
    },
    Check {
        cid: Cid,
        start: u64,
        expected: u64,
    },
}

/// Write the file under `root` to `out`, depth first, checking every block and size on the way.
/// Returns the number of bytes written.
pub fn read_file<S: BlockSource, W: Write>(
    root: &Cid,
    source: &mut S,
    out: &mut W,
    limits: ReadLimits,
    mut progress: impl FnMut(u64),
) -> Result<u64, ReadError<S::Error>> {
    let mut written = 0u64;
    let mut stack = vec![Frame::Visit {
        cid: *root,
        expected: None,
        depth: 0,
    }];
    let mut emit = |bytes: &[u8], written: &mut u64| -> Result<(), ReadError<S::Error>> {
        if *written + bytes.len() as u64 > limits.max_size {
            return Err(ReadError::TooLarge {
                limit: limits.max_size,
            });
        }
        out.write_all(bytes).map_err(ReadError::Write)?;
        *written += bytes.len() as u64;
        progress(*written);
        Ok(())
    };
    while let Some(frame) = stack.pop() {
        let (cid, expected, depth) = match frame {
            Frame::Check { cid, start, expected } => {
                if written - start != expected {
                    return Err(ReadError::SizeMismatch {
                        cid,
                        expected,
                        actual: written - start,
                    });
                }
                continue;
            }
            Frame::Visit { cid, expected, depth } => (cid, expected, depth),
        };
        if depth > limits.max_depth {
            return Err(ReadError::TooDeep {
                limit: limits.max_depth,
            });
        }
        let block = source
            .get(&cid)
            .map_err(|source| ReadError::Source { cid, source })?;
        verify_block(&cid, &block)?;
        match cid.codec() {
            RAW => {
                if let Some(expected) = expected.filter(|e| *e != block.len() as u64) {
                    return Err(ReadError::SizeMismatch {
                        cid,
                        expected,
                        actual: block.len() as u64,
                    });
                }
                emit(&block, &mut written)?;
            }
            DAG_PB => {
                let node = PbNode::decode(&block).map_err(|source| ReadError::Pb { cid, source })?;
                let data = node.data.as_deref().ok_or_else(|| ReadError::NotAFile {
                    cid,
                    what: "no data".into(),
                })?;
                let fs = UnixFs::decode(data).map_err(|source| ReadError::Pb { cid, source })?;
                if !matches!(fs.kind, UnixFsType::File | UnixFsType::Raw) {
                    return Err(ReadError::NotAFile {
                        cid,
                        what: format!("{:?}", fs.kind),
                    });
                }
                let own = fs.data.as_deref().unwrap_or_default();
                let total = fs
                    .filesize
                    .unwrap_or_else(|| own.len() as u64 + fs.blocksizes.iter().sum::<u64>());
                if let Some(expected) = expected.filter(|e| *e != total) {
                    return Err(ReadError::SizeMismatch {
                        cid,
                        expected,
                        actual: total,
                    });
                }
                stack.push(Frame::Check {
                    cid,
                    start: written,
                    expected: total,
                });
                let sizes_known = fs.blocksizes.len() == node.links.len();
                for (i, link) in node.links.iter().enumerate().rev() {
                    let expected = sizes_known.then(|| fs.blocksizes[i]);
                    stack.push(Frame::Visit {
                        cid: link.cid,
                        expected,
                        depth: depth + 1,
                    });
                }
                emit(own, &mut written)?;
            }
            codec => return Err(ReadError::Codec { cid, codec }),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::test_blocks::build;

    #[test]
    fn round_trips_multi_level_dags() {
        for len in [0usize, 1, 9, 10, 11, 45, 100, 1000, 1001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            let (root, mut src) = build(&data, 10, 3);
            let mut out = Vec::new();
            let n = read_file(&root, &mut src, &mut out, ReadLimits::default(), |_| {}).unwrap();
            assert_eq!((n, out), (len as u64, data), "len {len}");
        }
    }

    #[test]
    fn tampered_block_is_rejected() {
        let data = vec![7u8; 100];
        let (root, mut src) = build(&data, 10, 3);
        let leaf = *src.0.keys().find(|c| c.codec() == RAW).unwrap();
        src.0.get_mut(&leaf).unwrap()[0] ^= 1;
        let err = read_file(&root, &mut src, &mut Vec::new(), ReadLimits::default(), |_| {}).unwrap_err();
        assert!(matches!(err, ReadError::Block(BlockError::HashMismatch { cid, .. }) if cid == leaf));
    }

    #[test]
    fn limits_are_enforced() {
        let data = vec![1u8; 100];
        let (root, mut src) = build(&data, 10, 3);
        let err = read_file(
            &root,
            &mut src,
            &mut Vec::new(),
            ReadLimits {
                max_size: 99,
                max_depth: 32,
            },
            |_| {},
        );
        assert!(matches!(err, Err(ReadError::TooLarge { limit: 99 })));
        let err = read_file(
            &root,
            &mut src,
            &mut Vec::new(),
            ReadLimits {
                max_size: 1000,
                max_depth: 1,
            },
            |_| {},
        );
        assert!(matches!(err, Err(ReadError::TooDeep { limit: 1 })));
    }

    #[test]
    fn missing_block_names_the_cid() {
        let data = vec![3u8; 50];
        let (root, mut src) = build(&data, 10, 3);
        let leaf = *src.0.keys().find(|c| c.codec() == RAW).unwrap();
        src.0.remove(&leaf);
        let err = read_file(&root, &mut src, &mut Vec::new(), ReadLimits::default(), |_| {}).unwrap_err();
        assert!(err.to_string().contains(&leaf.to_string()), "{err}");
    }
}
