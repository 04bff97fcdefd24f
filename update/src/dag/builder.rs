//! The balanced UnixFS file builder.

use cid::Cid;

use super::pb::{PbLink, PbNode, UnixFs, UnixFsType};
use super::{BLAKE3, DAG_PB, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LINKS, RAW, SHA2_256, cid_of, multihash};

/// The hash of leaf blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafHash {
    /// sha2-256: what IPFS tools use by default.
    Sha2_256,
    /// blake3.
    Blake3,
}

/// Layout settings. The defaults are those of `ipfs add --cid-version 1 --raw-leaves --chunker size-262144`.
#[derive(Clone, Debug)]
pub struct DagOptions {
    /// Bytes per leaf.
    pub chunk_size: usize,
    /// Links per internal node.
    pub max_links: usize,
    /// Hash of the leaves (internal nodes use sha2-256).
    pub leaf_hash: LeafHash,
}

impl Default for DagOptions {
    fn default() -> Self {
        DagOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_links: DEFAULT_MAX_LINKS,
            leaf_hash: LeafHash::Sha2_256,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Child {
    cid: Cid,
    /// File bytes below this child.
    file_size: u64,
    /// Cumulative DAG size (block bytes of the child and everything below it).
    tsize: u64,
}

/// Builds a balanced file DAG from chunks pushed in order; hands every block to a sink as it is made.
#[derive(Debug)]
pub struct DagBuilder {
    opts: DagOptions,
    levels: Vec<Vec<Child>>,
    leaves: u64,
    bytes: u64,
}

/// What the builder made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DagRoot {
    /// The root CID.
    pub cid: Cid,
    /// File size in bytes.
    pub size: u64,
    /// Number of leaves.
    pub leaves: u64,
    /// Bytes of all the DAG's blocks (what a parent records as the link's `Tsize`).
    pub dag_size: u64,
}

impl DagBuilder {
    /// A builder; `opts.chunk_size` is clamped to 1..=1 MiB and `opts.max_links` to at least 2.
    pub fn new(mut opts: DagOptions) -> Self {
        opts.chunk_size = opts.chunk_size.clamp(1, 1 << 20);
        opts.max_links = opts.max_links.max(2);
        DagBuilder {
            opts,
            levels: vec![Vec::new()],
            leaves: 0,
            bytes: 0,
        }
    }

    /// Bytes per chunk.
    pub fn chunk_size(&self) -> usize {
        self.opts.chunk_size
    }

    /// Add the next chunk (at most `chunk_size` bytes; only the last may be shorter).
    pub fn push_chunk(&mut self, chunk: &[u8], sink: &mut impl FnMut(&Cid, &[u8])) {
        let mh = match self.opts.leaf_hash {
            LeafHash::Sha2_256 => multihash(SHA2_256, chunk),
            LeafHash::Blake3 => multihash(BLAKE3, chunk),
        };
        let cid = Cid::new_v1(RAW, mh.unwrap_or_default());
        sink(&cid, chunk);
        self.leaves += 1;
        self.bytes += chunk.len() as u64;
        let leaf = Child {
            cid,
            file_size: chunk.len() as u64,
            tsize: chunk.len() as u64,
        };
        self.add(0, leaf, sink);
    }

    fn add(&mut self, level: usize, child: Child, sink: &mut impl FnMut(&Cid, &[u8])) {
        if self.levels.len() <= level {
            self.levels.push(Vec::new());
        }
        self.levels[level].push(child);
        if self.levels[level].len() == self.opts.max_links {
            let batch = std::mem::take(&mut self.levels[level]);
            let parent = parent_of(&batch, sink);
            self.add(level + 1, parent, sink);
        }
    }

    /// Finish the DAG: reduce what is left, level by level, to one root.
    pub fn finish(mut self, sink: &mut impl FnMut(&Cid, &[u8])) -> DagRoot {
        if self.leaves == 0 {
            // Like `ipfs add` of an empty file: one empty raw leaf.
            self.push_chunk(&[], sink);
        }
        let (leaves, size) = (self.leaves, self.bytes);
        if leaves == 1 {
            let only = self.levels[0][0];
            return DagRoot {
                cid: only.cid,
                size,
                leaves,
                dag_size: only.tsize,
            };
        }
        let mut level = 0;
        loop {
            let top = level + 1 == self.levels.len();
            let batch = std::mem::take(&mut self.levels[level]);
            if top && batch.len() == 1 {
                return DagRoot {
                    cid: batch[0].cid,
                    size,
                    leaves,
                    dag_size: batch[0].tsize,
                };
            }
            if !batch.is_empty() {
                let parent = parent_of(&batch, sink);
                if top {
                    self.levels.push(Vec::new());
                }
                self.levels[level + 1].push(parent);
            }
            level += 1;
        }
    }
}

/// The internal node over `children`; empty raw leaves are left out, as the IPFS importers do.
fn parent_of(children: &[Child], sink: &mut impl FnMut(&Cid, &[u8])) -> Child {
    let kept: Vec<&Child> = children.iter().filter(|c| c.file_size > 0).collect();
    let fs = UnixFs {
        kind: UnixFsType::File,
        data: None,
        filesize: Some(kept.iter().map(|c| c.file_size).sum()),
        blocksizes: kept.iter().map(|c| c.file_size).collect(),
    };
    let node = PbNode {
        links: kept
            .iter()
            .map(|c| PbLink {
                cid: c.cid,
                name: Some(String::new()),
                tsize: Some(c.tsize),
            })
            .collect(),
        data: Some(fs.encode()),
    };
    let block = node.encode();
    let cid = cid_of(DAG_PB, &block);
    sink(&cid, &block);
    let below: u64 = kept.iter().map(|c| c.tsize).sum();
    Child {
        cid,
        file_size: fs.filesize.unwrap_or(0),
        tsize: block.len() as u64 + below,
    }
}

/// A UnixFS directory node over named entries `(name, cid, cumulative DAG size)`, links sorted by name as
/// dag-pb requires; returns its CID (CIDv1, dag-pb, sha2-256) and its block. Names must be unique.
pub fn directory(entries: &[(&str, Cid, u64)]) -> (Cid, Vec<u8>) {
    let mut links: Vec<PbLink> = entries
        .iter()
        .map(|(name, cid, tsize)| PbLink {
            cid: *cid,
            name: Some((*name).to_owned()),
            tsize: Some(*tsize),
        })
        .collect();
    links.sort_by(|a, b| {
        a.name
            .as_deref()
            .unwrap_or("")
            .as_bytes()
            .cmp(b.name.as_deref().unwrap_or("").as_bytes())
    });
    let node = PbNode {
        links,
        data: Some(
            UnixFs {
                kind: UnixFsType::Directory,
                data: None,
                filesize: None,
                blocksizes: Vec::new(),
            }
            .encode(),
        ),
    };
    let block = node.encode();
    (cid_of(DAG_PB, &block), block)
}

/// Chunk everything `reader` yields and build the DAG; `sink` gets every block (leaves and nodes).
pub fn build_from_reader<R: std::io::Read>(
    mut reader: R,
    opts: DagOptions,
    mut sink: impl FnMut(&Cid, &[u8]),
) -> std::io::Result<DagRoot> {
    let mut builder = DagBuilder::new(opts);
    let mut buf = vec![0u8; builder.chunk_size()];
    loop {
        let n = read_full(&mut reader, &mut buf)?;
        if n > 0 {
            builder.push_chunk(&buf[..n], &mut sink);
        }
        if n < buf.len() {
            return Ok(builder.finish(&mut sink));
        }
    }
}

/// Fill `buf` as far as the reader allows; returns the bytes read (less than `buf.len()` only at the end).
pub fn read_full<R: std::io::Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_match_helia() {
        // Recorded from Helia 7 (`@helia/unixfs`): addBytes of 300,000 × 0x07 and 1,000 × 0x09 (CIDv1, raw
        // leaves, balanced, 256 KiB chunks), then addDirectory({cidVersion: 1}) and cp as "patch" and "full".
        let build = |data: &[u8]| build_from_reader(data, DagOptions::default(), |_, _| {}).unwrap();
        let full = build(&[7u8; 300_000]);
        let patch = build(&[9u8; 1_000]);
        assert_eq!(
            full.cid.to_string(),
            "bafybeifkhqdf426lf6kl5oshczyo2ahhhib6zxruehy2yo72ay74kukg3q"
        );
        assert_eq!(
            patch.cid.to_string(),
            "bafkreidnjyapebld3haggefv2rdxo6lllvfgzjqpxsdpmne2n3y5m4mjsu"
        );
        let (dir, _) = directory(&[
            ("patch", patch.cid, patch.dag_size),
            ("full", full.cid, full.dag_size),
        ]);
        assert_eq!(
            dir.to_string(),
            "bafybeifojbzdfv4r7lwrqe6z2wkjl44khcr5bxka726af5nu4azawfvqhq"
        );
    }
}
