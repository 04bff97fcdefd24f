//! Recorded mainnet light-client data (Capella era): every piece verifies, and each fails once tampered.

use super::*;

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/mainnet-capella/");
    let text = std::fs::read_to_string(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const CHECKPOINT: &str = "5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275";

fn checkpoint() -> [u8; 32] {
    let mut c = [0u8; 32];
    alloy::hex::decode_to_slice(CHECKPOINT, &mut c).unwrap();
    c
}

fn boot() -> Bootstrap {
    fixture::<Versioned<Bootstrap>>("bootstrap.json").data
}

fn updates() -> Vec<Update> {
    fixture::<Vec<Versioned<Update>>>("updates.json")
        .into_iter()
        .map(|v| v.data)
        .collect()
}

/// Bootstrap and apply the six period updates, each at its own signature slot.
fn synced() -> Store {
    let spec = ChainSpec::mainnet();
    let mut store = bootstrap(&spec, &checkpoint(), &boot()).unwrap();
    for u in updates() {
        process_update(&spec, &mut store, &u, u.signature_slot).unwrap();
    }
    store
}

#[test]
fn bootstrap_verifies_and_tampering_is_caught() {
    let spec = ChainSpec::mainnet();
    let store = bootstrap(&spec, &checkpoint(), &boot()).unwrap();
    assert_eq!(store.finalized_header.beacon.slot, 7069376);
    assert_eq!(
        store.finalized_header.execution.as_ref().unwrap().block_number,
        17883333
    );

    let mut wrong_root = checkpoint();
    wrong_root[0] ^= 1;
    assert!(matches!(
        bootstrap(&spec, &wrong_root, &boot()),
        Err(ConsensusError::CheckpointMismatch { .. })
    ));
    let mut b = boot();
    b.current_sync_committee.pubkeys[7][5] ^= 1;
    assert_eq!(
        bootstrap(&spec, &checkpoint(), &b).unwrap_err(),
        ConsensusError::InvalidCurrentCommitteeProof
    );
    let mut b = boot();
    b.header.execution.as_mut().unwrap().block_number += 1;
    assert!(matches!(
        bootstrap(&spec, &checkpoint(), &b),
        Err(ConsensusError::InvalidHeader { .. })
    ));
}

#[test]
fn six_period_updates_rotate_the_committee() {
    let store = synced();
    let last = updates().pop().unwrap();
    assert_eq!(store.finalized_header, last.finalized_header.clone().unwrap());
    assert!(store.next_sync_committee.is_some());
    assert_eq!(
        ChainSpec::mainnet().period(store.finalized_header.beacon.slot),
        867
    );
}

#[test]
fn tampered_updates_are_rejected() {
    let spec = ChainSpec::mainnet();
    let store = bootstrap(&spec, &checkpoint(), &boot()).unwrap();
    let u = updates().remove(0);
    validate_update(&spec, &store, &u, u.signature_slot).unwrap();

    let mut bad = u.clone();
    bad.next_sync_committee.as_mut().unwrap().pubkeys[0][3] ^= 1;
    assert_eq!(
        validate_update(&spec, &store, &bad, u.signature_slot),
        Err(ConsensusError::InvalidNextCommitteeProof)
    );

    let mut bad = u.clone();
    bad.finalized_header = Some(bad.attested_header.clone());
    assert_eq!(
        validate_update(&spec, &store, &bad, u.signature_slot),
        Err(ConsensusError::InvalidFinalityProof)
    );

    let mut bad = u.clone();
    bad.attested_header.beacon.proposer_index += 1;
    assert!(matches!(
        validate_update(&spec, &store, &bad, u.signature_slot),
        Err(ConsensusError::InvalidSignature { .. }
            | ConsensusError::InvalidNextCommitteeProof
            | ConsensusError::InvalidFinalityProof)
    ));

    let mut bad = u.clone();
    bad.sync_aggregate.sync_committee_signature = [0; 96];
    assert!(matches!(
        validate_update(&spec, &store, &bad, u.signature_slot),
        Err(ConsensusError::InvalidSignature { .. })
    ));

    // Dropping one signer's bit changes the aggregate key: the signature no longer verifies.
    let mut bad = u.clone();
    let first = (0..512).find(|&i| bad.sync_aggregate.bit(i)).unwrap();
    bad.sync_aggregate.sync_committee_bits[first / 8] &= !(1 << (first % 8));
    assert!(matches!(
        validate_update(&spec, &store, &bad, u.signature_slot),
        Err(ConsensusError::InvalidSignature { .. })
    ));

    // A current slot before the signature slot is a time-travelling update.
    assert!(matches!(
        validate_update(&spec, &store, &u, u.signature_slot - 1),
        Err(ConsensusError::SlotOrder { .. })
    ));
}

#[test]
fn finality_and_optimistic_updates_advance_the_heads() {
    let spec = ChainSpec::mainnet();
    let mut store = synced();
    let finality: Update = fixture::<Versioned<Update>>("finality.json").data;
    process_update(&spec, &mut store, &finality, finality.signature_slot).unwrap();
    assert_eq!(store.finalized_header.beacon.slot, 7109344);
    assert_eq!(
        store.finalized_header.execution.as_ref().unwrap().block_number,
        17923026
    );
    assert_eq!(store.optimistic_header.beacon.slot, 7109430);

    let optimistic: Update = fixture::<Versioned<Update>>("optimistic.json").data;
    process_update(&spec, &mut store, &optimistic, optimistic.signature_slot).unwrap();
    assert_eq!(store.optimistic_header.beacon.slot, 7109431);
    assert_eq!(
        store.optimistic_header.execution.as_ref().unwrap().block_number,
        17923113
    );
    assert_eq!(
        store.finalized_header.beacon.slot, 7109344,
        "an optimistic update does not finalize"
    );

    // The finalized header of an older period, in place of the one the finality branch proves.
    let mut swapped = finality.clone();
    swapped.finalized_header = updates().pop().unwrap().finalized_header;
    let store = synced();
    assert_eq!(
        validate_update(&spec, &store, &swapped, swapped.signature_slot),
        Err(ConsensusError::InvalidFinalityProof)
    );
    let mut changed = optimistic.clone();
    changed.attested_header.beacon.slot += 1;
    assert!(validate_update(&spec, &store, &changed, changed.signature_slot + 1).is_err());
}

/// A config that schedules a fork this client does not know the headers of (Gloas, here before the
/// recorded bootstrap): its headers are refused by name, not verified under Fulu's (or Capella's) rules.
#[test]
fn headers_of_a_fork_beyond_fulu_are_refused_by_name() {
    let mut config = String::from(
        "PRESET_BASE: mainnet\nGENESIS_TIME: 1606824023\n\
         GENESIS_VALIDATORS_ROOT: 0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95\n",
    );
    for (fork, epoch, v) in ChainSpec::mainnet().forks {
        let name = fork.config_name();
        config += &format!("{name}_FORK_VERSION: 0x{}\n", alloy::hex::encode(v));
        if fork != Fork::Phase0 {
            config += &format!("{name}_FORK_EPOCH: {}\n", epoch.min(200_000));
        }
    }
    config += "GLOAS_FORK_VERSION: 0x07000000\nGLOAS_FORK_EPOCH: 200000  # before the bootstrap\n";
    let spec = ChainSpec::from_config(&config).unwrap();
    assert_eq!(spec.fork_at(7069376), Fork::Gloas);
    let err = bootstrap(&spec, &checkpoint(), &boot()).unwrap_err();
    assert_eq!(
        err,
        ConsensusError::UnsupportedFork {
            slot: 7069376,
            fork: Fork::Gloas,
            newest: Fork::Fulu
        }
    );
    assert!(err.to_string().contains("gloas"), "{err}");
}
