//! A UnixFS file read in place: `Read + Seek` over its DAG, one leaf in memory at a time. A seek walks down from
//! the root by the link sizes; every block is checked against its CID and every node's size against what its
//! parent announced, as [`read_file`](super::read_file) does. The last [`CACHED_LEAVES`] leaves stay in memory,
//! so a reader that interleaves a few sections of the file (a patch's three streams) does not load a leaf again
//! for every buffer it fills.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};

use cid::Cid;

use super::pb::{PbNode, UnixFs, UnixFsType};
use super::reader::{BlockSource, ReadError, ReadLimits};
use super::{DAG_PB, RAW, verify_block};

/// How many leaves a [`DagFile`] keeps in memory.
pub const CACHED_LEAVES: usize = 4;

/// The bytes of one leaf (raw block or a node's own data) and where they start in the file.
struct Leaf {
    start: u64,
    bytes: Vec<u8>,
}

/// A file in a DAG, readable and seekable without copying it out.
pub struct DagFile<S: BlockSource> {
    source: S,
    root: Cid,
    size: u64,
    pos: u64,
    /// Most recently used first.
    leaves: VecDeque<Leaf>,
    max_depth: usize,
    failure: Option<String>,
}

impl<S: BlockSource> std::fmt::Debug for DagFile<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DagFile")
            .field("root", &self.root)
            .field("size", &self.size)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

/// A node's parsed view: its own data, then its children with the sizes it announces.
enum Node {
    Leaf(Vec<u8>),
    Inner { own: Vec<u8>, children: Vec<(Cid, u64)> },
}

impl<S: BlockSource> DagFile<S> {
    /// Open the file under `root`; fails when the root is missing, damaged, not a file or larger than
    /// `limits.max_size`.
    pub fn open(root: Cid, mut source: S, limits: ReadLimits) -> Result<Self, ReadError<S::Error>> {
        let (node, size) = load(&mut source, &root, None)?;
        if size > limits.max_size {
            return Err(ReadError::TooLarge {
                limit: limits.max_size,
            });
        }
        let mut leaves = VecDeque::with_capacity(CACHED_LEAVES);
        if let Node::Leaf(bytes) = node {
            leaves.push_front(Leaf { start: 0, bytes });
        }
        Ok(DagFile {
            source,
            root,
            size,
            pos: 0,
            leaves,
            max_depth: limits.max_depth,
            failure: None,
        })
    }

    /// The file's size, as its root announces it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Why the last failed read failed (a missing or damaged block), if one did: a consumer that maps read
    /// errors to its own verdicts can tell the store's faults from bad content.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Find the leaf holding byte `pos` (< size), walking down from the root.
    fn find(&mut self, pos: u64) -> Result<Leaf, ReadError<S::Error>> {
        let (mut cid, mut expected, mut base) = (self.root, Some(self.size), 0u64);
        for _ in 0..=self.max_depth {
            let (node, _) = load(&mut self.source, &cid, expected)?;
            match node {
                Node::Leaf(bytes) => return Ok(Leaf { start: base, bytes }),
                Node::Inner { own, children } => {
                    if pos < base + own.len() as u64 {
                        return Ok(Leaf {
                            start: base,
                            bytes: own,
                        });
                    }
                    let mut at = base + own.len() as u64;
                    let next = children.into_iter().find(|(_, len)| {
                        let hit = pos < at + len;
                        if !hit {
                            at += len;
                        }
                        hit
                    });
                    let Some((child, len)) = next else {
                        return Err(ReadError::SizeMismatch {
                            cid,
                            expected: pos + 1 - base,
                            actual: at - base,
                        });
                    };
                    (cid, expected, base) = (child, Some(len), at);
                }
            }
        }
        Err(ReadError::TooDeep {
            limit: self.max_depth,
        })
    }
}

/// Fetch, verify and parse one block; returns it with its file size. `expected`: what the parent announced.
fn load<S: BlockSource>(
    source: &mut S,
    cid: &Cid,
    expected: Option<u64>,
) -> Result<(Node, u64), ReadError<S::Error>> {
    let cid = *cid;
    let block = source
        .get(&cid)
        .map_err(|source| ReadError::Source { cid, source })?;
    verify_block(&cid, &block)?;
    let (node, size) = match cid.codec() {
        RAW => {
            let size = block.len() as u64;
            (Node::Leaf(block), size)
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
            let own = fs.data.unwrap_or_default();
            if fs.blocksizes.len() != node.links.len() {
                return Err(ReadError::NotAFile {
                    cid,
                    what: format!(
                        "{} links but {} block sizes: not seekable",
                        node.links.len(),
                        fs.blocksizes.len()
                    ),
                });
            }
            let sum = own.len() as u64 + fs.blocksizes.iter().sum::<u64>();
            if let Some(announced) = fs.filesize.filter(|s| *s != sum) {
                return Err(ReadError::SizeMismatch {
                    cid,
                    expected: announced,
                    actual: sum,
                });
            }
            let children = node.links.iter().map(|l| l.cid).zip(fs.blocksizes).collect();
            (Node::Inner { own, children }, sum)
        }
        codec => return Err(ReadError::Codec { cid, codec }),
    };
    if let Some(expected) = expected.filter(|e| *e != size) {
        return Err(ReadError::SizeMismatch {
            cid,
            expected,
            actual: size,
        });
    }
    Ok((node, size))
}

fn io_error<E: std::error::Error + Send + Sync + 'static>(e: ReadError<E>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: BlockSource> Read for DagFile<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let pos = self.pos;
        let cached = self
            .leaves
            .iter()
            .position(|l| pos >= l.start && pos < l.start + l.bytes.len() as u64);
        match cached {
            Some(i) => {
                if let Some(leaf) = self.leaves.remove(i) {
                    self.leaves.push_front(leaf);
                }
            }
            None => match self.find(pos) {
                Ok(leaf) => {
                    self.leaves.truncate(CACHED_LEAVES - 1);
                    self.leaves.push_front(leaf);
                }
                Err(e) => {
                    self.failure = Some(e.to_string());
                    return Err(io_error(e));
                }
            },
        }
        let Some(leaf) = self.leaves.front() else {
            return Ok(0);
        };
        let from = (pos - leaf.start) as usize;
        let n = buf.len().min(leaf.bytes.len() - from);
        buf[..n].copy_from_slice(&leaf.bytes[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<S: BlockSource> Seek for DagFile<S> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the file")
        })?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::test_blocks::{Map, Missing, build};

    #[test]
    fn reads_and_seeks_like_the_bytes() {
        for len in [0usize, 1, 9, 10, 11, 45, 100, 1000, 1001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let (root, map) = build(&data, 10, 3);
            let mut f = DagFile::open(root, &map, ReadLimits::default()).unwrap();
            assert_eq!(f.size(), len as u64);
            let mut all = Vec::new();
            f.read_to_end(&mut all).unwrap();
            assert_eq!(all, data, "len {len}");
            for start in [0, 1, 9, 10, 37, len / 2, len.saturating_sub(3), len] {
                let start = start.min(len);
                f.seek(SeekFrom::Start(start as u64)).unwrap();
                let mut buf = vec![0u8; 23];
                let mut got = Vec::new();
                let n = f.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                assert_eq!(got, data[start..(start + n)], "len {len} start {start}");
                assert!(n > 0 || start == len);
            }
            f.seek(SeekFrom::End(-1)).ok();
            let mut last = Vec::new();
            f.read_to_end(&mut last).unwrap();
            assert_eq!(last, data[len.saturating_sub(1)..]);
        }
    }

    /// Counts the block bytes it hands out.
    struct Counting<'a>(&'a Map, usize);

    impl BlockSource for &mut Counting<'_> {
        type Error = Missing;
        fn get(&mut self, cid: &Cid) -> Result<Vec<u8>, Missing> {
            let block = self.0.0.get(cid).cloned().ok_or(Missing)?;
            self.1 += block.len();
            Ok(block)
        }
    }

    /// A patch applied straight from its DAG gives the same image as from its bytes, reading each block about once
    /// (the inner nodes again for each leaf; they are small).
    #[test]
    #[cfg(feature = "diff")]
    fn a_patch_applies_from_its_dag_reading_each_block_about_once() {
        use crate::patch::{ApplyLimits, PatchOptions, apply, create_best};
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let old: Vec<u8> = (0..512 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut new = old.clone();
        for i in (0..new.len()).step_by(997) {
            new[i] = new[i].wrapping_add(1);
        }
        new.extend_from_slice(&old[..100_000]);
        let fresh: Vec<u8> = (0..200 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        new.extend_from_slice(&fresh);
        let opts = PatchOptions {
            level: 3,
            ..PatchOptions::default()
        };
        let patch = create_best(Some(&old), &new, &opts).unwrap().patch.unwrap();
        let (root, map) = build(&patch, 4096, 16);
        let dag_bytes: usize = map.0.values().map(Vec::len).sum();
        let mut counting = Counting(&map, 0);
        let file = DagFile::open(root, &mut counting, ReadLimits::default()).unwrap();
        let mut out = Vec::new();
        let limits = ApplyLimits::default();
        apply(io::Cursor::new(&old), file, &mut out, &limits, |_| {}).unwrap();
        assert_eq!(out, new);
        let read = counting.1;
        assert!(
            read < dag_bytes * 3 / 2,
            "{read} block bytes read for a DAG of {dag_bytes} bytes ({} patch bytes)",
            patch.len()
        );
    }

    #[test]
    fn a_tampered_leaf_fails_the_read_that_reaches_it() {
        let data = vec![7u8; 100];
        let (root, mut map) = build(&data, 10, 3);
        let leaf = *map.0.keys().find(|c| c.codec() == RAW).unwrap();
        map.0.get_mut(&leaf).unwrap()[0] ^= 1;
        let mut f = DagFile::open(root, &map, ReadLimits::default()).unwrap();
        let err = f.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains(&leaf.to_string()), "{err}");
        assert!(f.failure().is_some_and(|m| m.contains(&leaf.to_string())));
    }

    #[test]
    fn limits_and_bad_seeks_are_refused() {
        let (root, map) = build(&[1u8; 100], 10, 3);
        let small = ReadLimits {
            max_size: 99,
            max_depth: 32,
        };
        assert!(matches!(
            DagFile::open(root, &map, small),
            Err(ReadError::TooLarge { limit: 99 })
        ));
        let shallow = ReadLimits {
            max_size: 1000,
            max_depth: 1,
        };
        let mut f = DagFile::open(root, &map, shallow).unwrap();
        assert!(f.read(&mut [0u8; 4]).is_err());
        let mut f = DagFile::open(root, &map, ReadLimits::default()).unwrap();
        assert!(f.seek(SeekFrom::Current(-1)).is_err());
        f.seek(SeekFrom::Start(500)).unwrap();
        assert_eq!(f.read(&mut [0u8; 4]).unwrap(), 0);
    }
}
