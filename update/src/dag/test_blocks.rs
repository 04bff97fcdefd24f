//! Test support: a DAG built in memory and a block source over it.

use std::collections::HashMap;

use cid::Cid;

use super::{BlockSource, DagOptions, build_from_reader};

#[derive(Debug, thiserror::Error)]
#[error("missing")]
pub struct Missing;

/// Blocks by CID.
#[derive(Debug)]
pub struct Map(pub HashMap<Cid, Vec<u8>>);

impl BlockSource for Map {
    type Error = Missing;
    fn get(&mut self, cid: &Cid) -> Result<Vec<u8>, Missing> {
        self.0.get(cid).cloned().ok_or(Missing)
    }
}

impl BlockSource for &Map {
    type Error = Missing;
    fn get(&mut self, cid: &Cid) -> Result<Vec<u8>, Missing> {
        self.0.get(cid).cloned().ok_or(Missing)
    }
}

/// The DAG of `data` cut into `chunk`-byte leaves under nodes of at most `links` links: its root and blocks.
pub fn build(data: &[u8], chunk: usize, links: usize) -> (Cid, Map) {
    let mut blocks = HashMap::new();
    let opts = DagOptions {
        chunk_size: chunk,
        max_links: links,
        ..Default::default()
    };
    let root = build_from_reader(data, opts, |c, b| {
        blocks.insert(*c, b.to_vec());
    })
    .unwrap();
    assert_eq!(root.size, data.len() as u64);
    (root.cid, Map(blocks))
}
