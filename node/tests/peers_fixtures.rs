//! Records the real proofs the unit tests of `actors/src/proofs/book.rs` verify (`actors/src/proofs/testdata/`):
//! a repository in light mode over anvil and the beacon harness publishes a release, and `firmchain export` is
//! run twice a few slots apart, so the fixtures hold a committee chain from the harness's checkpoint, an older
//! and a newer head proof and a release proof, with the chain config and the time they were made at.
//!
//!   FIRMCHAIN_RECORD_FIXTURES=actors/src/proofs/testdata cargo nextest run -p firmchain --test peers_fixtures \
//!     --run-ignored only

mod common;
use common::beacon::{Beacon, Miner};
use common::{Fleet, bin};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use firmchain_tests::fleet::PRODUCT;
use firmchain_update::car::CarReader;

/// The blocks of the CAR's first three roots: committee chain, head proof, release proof.
fn proofs_of(car: &Path) -> Vec<Vec<u8>> {
    let mut r = CarReader::new(std::fs::File::open(car).unwrap()).unwrap();
    let roots = r.roots().to_vec();
    let mut out = vec![Vec::new(); 3];
    while let Some((cid, _, data)) = r.next_block().unwrap() {
        if let Some(i) = roots[..3].iter().position(|c| *c == cid) {
            out[i] = data.to_vec();
        }
    }
    assert!(out.iter().all(|b| !b.is_empty()), "the CAR lacks a proof");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes fixtures: run with FIRMCHAIN_RECORD_FIXTURES=DIR"]
async fn record_proof_fixtures() {
    let out = std::path::PathBuf::from(std::env::var("FIRMCHAIN_RECORD_FIXTURES").unwrap());
    let f = Fleet::new(100_000, 1).await;
    let beacon = Beacon::start(&f);
    let _mine = Miner::start(&f.chain.anvil.url);
    let repo = f.spawn(beacon.repository_spec(&f));
    repo.publish(&f.images[1]).unwrap();
    let mut sets = beacon.peers_sets();
    sets.push(format!("chain.contract={}", f.chain.contract));
    sets.push(format!("chain.product={PRODUCT}"));
    let export = |name: &str| -> Vec<Vec<u8>> {
        let car = f.dir.path().join(format!("{name}.car"));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut cmd = Command::new(bin());
            cmd.args([
                "--json",
                "export",
                "--sequence",
                "1",
                "--peer",
                &repo.addrs[0],
                "-o",
            ])
            .arg(&car)
            .arg("--data")
            .arg(f.dir.path().join(name));
            for s in &sets {
                cmd.arg("--set").arg(s);
            }
            let o = cmd.output().unwrap();
            if o.status.success() {
                return proofs_of(&car);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "export failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let first = export("first");
    let second = loop {
        let p = export("second");
        if p[1] != first[1] {
            break p;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("chain.yaml"), &beacon.harness.config).unwrap();
    std::fs::write(out.join("committee-chain.bin"), &first[0]).unwrap();
    std::fs::write(out.join("head-older.bin"), &first[1]).unwrap();
    std::fs::write(out.join("head-newer.bin"), &second[1]).unwrap();
    std::fs::write(out.join("release-1.bin"), &first[2]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let meta = serde_json::json!({
        "checkpoint": beacon.harness.checkpoint,
        "contract": f.chain.contract,
        "product": PRODUCT,
        "now": now,
    });
    std::fs::write(out.join("meta.json"), meta.to_string()).unwrap();
}
