//! Light-client benchmark on recorded mainnet data: bootstrap + six period updates, a finality update,
//! one storage proof verification, and the size of the client's state. Writes `bench/results/lightclient.md`.
//!
//!   cargo bench -p firmchain-lightclient --bench sync

use std::time::Instant;

use alloy::rpc::types::{Block, EIP1186AccountProofResponse};
use firmchain_lightclient::consensus::{Bootstrap, ChainSpec, Update, Versioned, bootstrap, process_update};
use firmchain_lightclient::execution::verify_storage_values;

fn fixture(path: &str) -> String {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/");
    std::fs::read_to_string(format!("{base}{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let spec = ChainSpec::mainnet();
    let boot: Bootstrap =
        serde_json::from_str::<Versioned<Bootstrap>>(&fixture("mainnet-capella/bootstrap.json"))
            .unwrap()
            .data;
    let updates: Vec<Update> =
        serde_json::from_str::<Vec<Versioned<Update>>>(&fixture("mainnet-capella/updates.json"))
            .unwrap()
            .into_iter()
            .map(|v| v.data)
            .collect();
    let finality: Update =
        serde_json::from_str::<Versioned<Update>>(&fixture("mainnet-capella/finality.json"))
            .unwrap()
            .data;
    let mut checkpoint = [0u8; 32];
    alloy::hex::decode_to_slice(
        "5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275",
        &mut checkpoint,
    )
    .unwrap();

    let runs = 10;
    let mut sync_ms = Vec::new();
    let mut store = None;
    for _ in 0..runs {
        let t = Instant::now();
        let mut s = bootstrap(&spec, &checkpoint, &boot).unwrap();
        for u in &updates {
            process_update(&spec, &mut s, u, u.signature_slot).unwrap();
        }
        process_update(&spec, &mut s, &finality, finality.signature_slot).unwrap();
        sync_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        store = Some(s);
    }
    let store = store.unwrap();

    let block: Block = serde_json::from_str(&fixture("mainnet-execution/block.json")).unwrap();
    let proof: EIP1186AccountProofResponse =
        serde_json::from_str(&fixture("mainnet-execution/proof.json")).unwrap();
    let slots: Vec<_> = proof.storage_proof.iter().map(|p| p.key.as_b256()).collect();
    let mut proof_us = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        verify_storage_values(block.header.state_root, proof.address, &slots, &proof).unwrap();
        proof_us.push(t.elapsed().as_secs_f64() * 1e6);
    }

    // The state a device keeps, counted from the store: committees (compressed keys, as persisted) and
    // headers; in memory each validated key is also held as a decompressed point (96 bytes affine).
    let committees = [
        Some(&store.current_sync_committee),
        store.next_sync_committee.as_ref(),
    ];
    let keys: usize = committees.iter().flatten().map(|c| c.ssz.pubkeys.len() + 1).sum();
    let header_bytes = |h: &firmchain_lightclient::consensus::LightClientHeader| {
        112 + h.execution_branch.len() * 32 + h.execution.as_ref().map_or(0, |e| 600 + e.extra_data.len())
    };
    let persisted =
        keys * 48 + header_bytes(&store.finalized_header) + header_bytes(&store.optimistic_header);
    let in_memory = persisted + keys * 96;
    let report = format!(
        "# Light-client benchmark\n\n\
         Made by `cargo bench -p firmchain-lightclient --bench sync` ({} cores). Recorded mainnet data (Capella era).\n\n\
         | what | result |\n|---|---|\n\
         | bootstrap + 6 period updates + finality update (512-key committees, BLS) | {:.1} ms median of {runs} |\n\
         | storage proof verification (account + 1 slot, mainnet block 21925176) | {:.1} µs median of 1000 |\n\
         | client state, persisted (2 committees, 2 headers; counted from the store) | {:.1} KB |\n\
         | client state, in memory with decompressed keys | {:.1} KB |\n\n\
         Targets: state under 1 MB, sync of six periods under 1 s.\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        median(sync_ms),
        median(proof_us),
        persisted as f64 / 1000.0,
        in_memory as f64 / 1000.0,
    );
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/results/lightclient.md");
    std::fs::write(out, &report).unwrap();
    print!("{report}");
}
