//! Offline install: `firmchain export` packs a release (bundle blocks and its proofs, fetched from the
//! repository over libp2p and verified) into one CAR; `firmchain install release.car` on a device with no network
//! verifies it from the device's own checkpoint and installs it through the slots. A CAR with a changed block, or
//! with a release proof whose record was changed (re-addressed so the CAR itself is consistent), is refused with
//! the reason and nothing is installed.

mod common;
use common::beacon::{Beacon, Miner};
use common::{Fleet, bin};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use firmchain_lightclient::proof::{decode_release_proof, encode_release_proof};
use firmchain_tests::fleet::{PRODUCT, active_image};
use firmchain_update::car::{CarReader, encode_header, write_section};
use firmchain_update::dag;
use serde_json::Value;

fn chain_sets(f: &Fleet, beacon: &Beacon) -> Vec<String> {
    let mut sets = beacon.peers_sets();
    sets.push(format!("chain.contract={}", f.chain.contract));
    sets.push(format!("chain.product={PRODUCT}"));
    sets
}

fn firmchain(data: &Path, sets: &[String], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("--json").args(args).arg("--data").arg(data);
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Rewrite `car` with its release proof replaced by `forge(proof)` (new CID, new roots).
fn forge_release(car: &Path, out: &Path, forge: impl Fn(&mut firmchain_lightclient::proof::ReleaseProof)) {
    let mut r = CarReader::new(std::fs::File::open(car).unwrap()).unwrap();
    let mut roots = r.roots().to_vec();
    let mut blocks = Vec::new();
    while let Some((cid, _, data)) = r.next_block().unwrap() {
        blocks.push((cid, data));
    }
    let i = blocks.iter().position(|(c, _)| *c == roots[2]).unwrap();
    let mut proof = decode_release_proof(&blocks[i].1).unwrap();
    forge(&mut proof);
    let bytes = encode_release_proof(&proof);
    let cid = dag::cid_of(dag::RAW, &bytes);
    blocks[i] = (cid, bytes);
    roots[2] = cid;
    let mut w = encode_header(&roots);
    for (cid, data) in &blocks {
        write_section(&mut w, cid, data).unwrap();
    }
    std::fs::write(out, w).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_exported_to_a_car_installs_offline_and_a_tampered_car_is_refused() {
    let f = Fleet::new(300_000, 1).await;
    let beacon = Beacon::start(&f);
    let mine = Miner::start(&f.chain.anvil.url);
    let repo = f.spawn(beacon.repository_spec(&f));
    repo.publish(&f.images[1]).unwrap();
    let sets = chain_sets(&f, &beacon);
    let car = f.dir.path().join("release.car");
    let gateway = f.dir.path().join("gateway");
    let args = ["export", "--sequence", "1", "--peer", &repo.addrs[0], "-o"];
    // The repository builds the release proof at its next poll after the release: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let exported = loop {
        let o = firmchain(&gateway, &sets, &[&args[..], &[car.to_str().unwrap()]].concat());
        if o.status.success() {
            break o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "export failed: {}",
            stderr(&o)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let v: Value = serde_json::from_slice(&exported.stdout).unwrap();
    assert_eq!(v["sequence"], 1, "{v}");
    drop(repo);
    drop(mine);

    let device = |name: &str| -> (PathBuf, Vec<String>) {
        let dir = f.dir.path().join(name);
        let mut s = sets.clone();
        s.push(format!("install.initial_image={}", f.image(0).display()));
        (dir, s)
    };
    // A changed block: the CAR is refused while it is read (the block does not match its CID).
    let mut bytes = std::fs::read(&car).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    let bad_block = f.dir.path().join("bad-block.car");
    std::fs::write(&bad_block, bytes).unwrap();
    let (dir, s) = device("d1");
    let o = firmchain(&dir, &s, &["install", bad_block.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not match its CID"), "{}", stderr(&o));

    // A changed record inside the release proof, the CAR re-addressed: the proof is refused, with the reason.
    let bad_proof = f.dir.path().join("bad-proof.car");
    forge_release(&car, &bad_proof, |p| {
        let last = p.record.len() - 1;
        p.record[last] ^= 1;
    });
    let o = firmchain(&dir, &s, &["install", bad_proof.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("release proof") && stderr(&o).contains("proven digest"),
        "{}",
        stderr(&o)
    );
    // A proof for another contract's slots: refused by name.
    let other = f.dir.path().join("other-contract.car");
    forge_release(&car, &other, |p| {
        p.state.contract = alloy::primitives::Address::repeat_byte(0xee)
    });
    let o = firmchain(&dir, &s, &["install", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(stderr(&o).contains("proof is for contract"), "{}", stderr(&o));

    // The honest CAR installs on the same device, through its slots.
    let o = firmchain(&dir, &s, &["install", car.to_str().unwrap()]);
    assert!(o.status.success(), "install failed: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["installed"], 1, "{v}");
    assert_eq!(active_image(&dir).unwrap(), f.images[1]);
    // Installing it again is refused: the device already runs it.
    let o = firmchain(&dir, &s, &["install", car.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(stderr(&o).contains("already runs release 1"), "{}", stderr(&o));
}
