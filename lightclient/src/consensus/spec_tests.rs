//! Consensus spec-test vectors (minimal preset): every case directory under `spec-tests-minimal/<fork>/`
//! is replayed step by step, asserting the finalized and optimistic headers after each step.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ssz::Root;
use super::*;

#[derive(Deserialize)]
struct Meta {
    genesis_validators_root: String,
    trusted_block_root: String,
}

#[derive(Deserialize)]
struct Check {
    slot: u64,
    beacon_root: String,
    execution_root: String,
}

#[derive(Deserialize)]
struct Checks {
    finalized_header: Check,
    optimistic_header: Check,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Step {
    ProcessUpdate {
        update: String,
        current_slot: u64,
        checks: Checks,
    },
    ForceUpdate {
        current_slot: u64,
        checks: Checks,
    },
}

fn root(hex: &str) -> Root {
    let mut out = [0u8; 32];
    alloy::hex::decode_to_slice(hex.trim_start_matches("0x"), &mut out).unwrap();
    out
}

fn snappy(path: &Path) -> Vec<u8> {
    let compressed = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    snap::raw::Decoder::new().decompress_vec(&compressed).unwrap()
}

fn check(what: &str, header: &LightClientHeader, expected: &Check, case: &str, step: usize) {
    let at = format!("{case} step {step} {what}");
    assert_eq!(header.beacon.slot, expected.slot, "{at}: slot");
    assert_eq!(
        header.beacon.hash_tree_root(),
        root(&expected.beacon_root),
        "{at}: beacon root"
    );
    let execution = header
        .execution
        .as_ref()
        .map(|e| e.hash_tree_root())
        .unwrap_or_default();
    assert_eq!(execution, root(&expected.execution_root), "{at}: execution root");
}

fn fork_of(name: &str) -> Fork {
    match name {
        "capella" => Fork::Capella,
        "deneb" => Fork::Deneb,
        "electra" => Fork::Electra,
        "fulu" => Fork::Fulu,
        other => panic!("unknown fork directory {other}"),
    }
}

fn run_case(dir: &Path, fork: Fork) -> usize {
    let case = dir.display().to_string();
    let meta: Meta = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let config = std::fs::read_to_string(dir.join("config.yaml")).unwrap();
    let spec = ChainSpec::minimal_from_config(&config, root(&meta.genesis_validators_root)).unwrap();
    let boot = decode::bootstrap(&spec, &snappy(&dir.join("bootstrap.ssz_snappy")), fork).unwrap();
    let mut store = bootstrap(&spec, &root(&meta.trusted_block_root), &boot).unwrap();
    let steps: Vec<Step> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("steps.json")).unwrap()).unwrap();
    for (i, step) in steps.iter().enumerate() {
        let checks = match step {
            Step::ProcessUpdate {
                update,
                current_slot,
                checks,
            } => {
                let u =
                    decode::update(&spec, &snappy(&dir.join(format!("{update}.ssz_snappy"))), fork).unwrap();
                process_update(&spec, &mut store, &u, *current_slot)
                    .unwrap_or_else(|e| panic!("{case} step {i}: {e}"));
                checks
            }
            Step::ForceUpdate { current_slot, checks } => {
                force_update(&spec, &mut store, *current_slot)
                    .unwrap_or_else(|e| panic!("{case} step {i}: {e}"));
                checks
            }
        };
        check(
            "finalized",
            &store.finalized_header,
            &checks.finalized_header,
            &case,
            i,
        );
        check(
            "optimistic",
            &store.optimistic_header,
            &checks.optimistic_header,
            &case,
            i,
        );
    }
    steps.len()
}

#[test]
fn every_spec_test_case_replays_with_every_step_checked() {
    let root = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/spec-tests-minimal"
    ));
    let mut cases = 0;
    let mut steps = 0;
    let mut forks: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    forks.sort();
    for fork_dir in forks {
        let fork = fork_of(fork_dir.file_name().unwrap().to_str().unwrap());
        let mut dirs: Vec<_> = std::fs::read_dir(&fork_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        for case in dirs.iter().filter(|d| d.join("steps.json").exists()) {
            steps += run_case(case, fork);
            cases += 1;
        }
    }
    assert!(cases >= 4 && steps >= 30, "ran {cases} cases and {steps} steps");
}
