//! Our UnixFS DAG builder gives the same root CIDs as Helia's (`@helia/unixfs`, a real IPFS implementation
//! that we did not write) with the settings of `ipfs add --cid-version 1 --raw-leaves --chunker size-262144`.

use std::io::Write;

use firmchain_tests::{helia_dir, loopback_only, node22, pseudo_random};
use firmchain_update::dag::{DagOptions, build_from_reader};
use serde::Deserialize;

#[derive(Deserialize)]
struct HeliaCid {
    file: String,
    cid: String,
}

#[test]
fn root_cids_match_helia_for_every_layout_shape() {
    const CHUNK: usize = 262_144;
    let sizes = [
        0,                  // empty file: a single empty raw leaf
        1,                  // one short leaf: the leaf is the root
        CHUNK,              // exactly one leaf
        CHUNK + 1,          // two leaves under one node
        3 * CHUNK + 12_345, // several leaves
        174 * CHUNK,        // exactly one full node
        174 * CHUNK + 1,    // two levels
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let path = dir.path().join(format!("file-{i}-{len}.bin"));
        let mut data = pseudo_random(len, i as u64 + 1);
        if i == 5 {
            // Repeated chunks must not collapse: two identical leaves are still two links.
            data[CHUNK..2 * CHUNK].fill(0);
            data[2 * CHUNK..3 * CHUNK].fill(0);
        }
        std::fs::File::create(&path).unwrap().write_all(&data).unwrap();
        let ours = build_from_reader(&data[..], DagOptions::default(), |_, _| {}).unwrap();
        assert_eq!(ours.size, len as u64);
        files.push((path, ours.cid.to_string()));
    }

    let node = node22().unwrap();
    let helia = helia_dir().unwrap();
    let output = loopback_only(&node)
        .current_dir(&helia)
        .arg(helia.join("unixfs-cid.mjs"))
        .args(files.iter().map(|(p, _)| p))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helia failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: Vec<HeliaCid> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(theirs.len(), files.len());
    for ((path, ours), theirs) in files.iter().zip(&theirs) {
        assert_eq!(theirs.file, path.display().to_string());
        assert_eq!(
            &theirs.cid,
            ours,
            "root CID of {} differs from Helia's",
            path.display()
        );
    }
}
