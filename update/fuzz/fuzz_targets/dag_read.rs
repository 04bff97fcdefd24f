//! dag-pb and UnixFS parsing, and DAG walking over a block map built from the input: never panics, and
//! never writes more than the limit.
#![no_main]

use std::collections::HashMap;

use firmchain_update::dag::pb::{PbNode, UnixFs};
use firmchain_update::dag::{BlockSource, DAG_PB, RAW, ReadLimits, cid_of, read_file};
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Missing;
impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("missing")
    }
}
impl std::error::Error for Missing {}

struct Map(HashMap<cid::Cid, Vec<u8>>);
impl BlockSource for Map {
    type Error = Missing;
    fn get(&mut self, cid: &cid::Cid) -> Result<Vec<u8>, Missing> {
        self.0.get(cid).cloned().ok_or(Missing)
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = UnixFs::decode(data);
    // Split the input into blocks at 0xff 0xff; every piece is stored as dag-pb and as raw.
    let mut map = HashMap::new();
    let mut first = None;
    for piece in data.split(|&b| b == 0xff).filter(|p| !p.is_empty()) {
        let _ = PbNode::decode(piece);
        let pb = cid_of(DAG_PB, piece);
        first.get_or_insert(pb);
        map.insert(pb, piece.to_vec());
        map.insert(cid_of(RAW, piece), piece.to_vec());
    }
    if let Some(root) = first {
        let mut out = Vec::new();
        let limits = ReadLimits { max_size: 1 << 16, max_depth: 16 };
        let _ = read_file(&root, &mut Map(map), &mut out, limits, |_| {});
        assert!(out.len() <= 1 << 16);
    }
});
