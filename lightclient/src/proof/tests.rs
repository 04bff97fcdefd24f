use alloy::primitives::{Address, B256, Bytes, U256, keccak256};

use super::testkit::{COMMITTEE, Chain, World};
use super::verify::verify_signed_header;
use super::wire::{Kind, MAGIC, VERSION, Writer};
use super::*;
use crate::consensus::ConsensusError;
use crate::execution::ExecutionError;
use layout::FIRMWARE_INDEX;

const CONTRACT: Address = Address::repeat_byte(0xc0);
const OTHER_CONTRACT: Address = Address::repeat_byte(0xc1);
const PRODUCT: B256 = B256::repeat_byte(0x50);
const OTHER_PRODUCT: B256 = B256::repeat_byte(0x51);
const SLOT: u64 = 20;
const NOW: u64 = 40;

fn record(seq: u64) -> Vec<u8> {
    format!("record {seq} of the product, as abi.encode would make it").into_bytes()
}

/// A chain with releases 1..=3 of PRODUCT on CONTRACT, release 1 of OTHER_PRODUCT, and a second index
/// contract that also has release 1 of PRODUCT.
fn world() -> World {
    let mut w = World {
        block_number: 100,
        ..World::default()
    };
    for seq in 1..=3 {
        w.publish(CONTRACT, PRODUCT, seq, &record(seq));
    }
    w.publish(CONTRACT, OTHER_PRODUCT, 1, &record(11));
    w.publish(OTHER_CONTRACT, PRODUCT, 1, &record(21));
    w
}

fn expected(chain: &Chain) -> Expected<'_> {
    Expected {
        spec: &chain.spec,
        contract: CONTRACT,
        layout: FIRMWARE_INDEX,
        product: PRODUCT,
        current_slot: NOW,
        participation: TWO_THIRDS,
    }
}

fn release_proof(chain: &Chain, w: &World, seq: u64, signers: usize) -> ReleaseProof {
    let keys = FIRMWARE_INDEX.release_slots(PRODUCT, seq);
    let r = w.get_proof(CONTRACT, &keys);
    ReleaseProof {
        header: chain.finality_update(w, SLOT, signers),
        product: PRODUCT,
        sequence: seq,
        state: StateProof {
            contract: r.address,
            nonce: r.nonce,
            balance: r.balance,
            storage_root: r.storage_hash,
            code_hash: r.code_hash,
            account_proof: r.account_proof,
            storage: r.storage_proof.into_iter().map(|s| (s.value, s.proof)).collect(),
        },
        record: record(seq),
    }
}

fn head_proof(chain: &Chain, w: &World, slot: u64, from: u64) -> HeadProof {
    let head: u64 = w.accounts[&CONTRACT][&FIRMWARE_INDEX.head(PRODUCT)].to();
    let r = w.get_proof(CONTRACT, &FIRMWARE_INDEX.head_slots(PRODUCT, head, from));
    HeadProof {
        header: chain.finality_update(w, slot, COMMITTEE),
        product: PRODUCT,
        revocations_from: from,
        state: StateProof {
            contract: r.address,
            nonce: r.nonce,
            balance: r.balance,
            storage_root: r.storage_hash,
            code_hash: r.code_hash,
            account_proof: r.account_proof,
            storage: r.storage_proof.into_iter().map(|s| (s.value, s.proof)).collect(),
        },
    }
}

#[test]
fn a_release_proof_verifies_from_the_checkpoint_and_round_trips() {
    let (chain, w) = (Chain::default(), world());
    let proof = release_proof(&chain, &w, 2, COMMITTEE);
    let bytes = encode_release_proof(&proof);
    assert_eq!(&bytes[..4], &MAGIC);
    assert_eq!(decode_release_proof(&bytes).unwrap(), proof);
    let v = verify_release_proof(&chain.store(&w), &proof, &expected(&chain)).unwrap();
    assert_eq!((v.sequence, v.head, v.revoked), (2, 3, false));
    assert_eq!(v.digest, keccak256(record(2)));
    assert_eq!(v.record, record(2));
    assert_eq!(v.anchor.slot, SLOT, "the finalized header anchors the state");
    assert_eq!(v.anchor.block_number, 100);
    assert_eq!(v.anchor.state_root, w.state_root());
    assert_eq!(v.anchor.timestamp, 1_700_000_000 + SLOT);
    assert_eq!(v.anchor.participants, COMMITTEE);
}

#[test]
fn a_revoked_release_is_proven_revoked() {
    let (chain, mut w) = (Chain::default(), world());
    w.revoke(CONTRACT, PRODUCT, 2);
    let proof = release_proof(&chain, &w, 2, COMMITTEE);
    let v = verify_release_proof(&chain.store(&w), &proof, &expected(&chain)).unwrap();
    assert!(v.revoked);
}

#[test]
fn a_forged_state_root_is_refused() {
    let (chain, w) = (Chain::default(), world());
    let store = chain.store(&w);
    let mut proof = release_proof(&chain, &w, 2, COMMITTEE);
    // Only the execution header changes: its branch into the signed body no longer verifies.
    let finalized = proof.header.finalized_header.as_mut().unwrap();
    finalized.execution.as_mut().unwrap().state_root = [0x66; 32];
    let err = verify_release_proof(&store, &proof, &expected(&chain)).unwrap_err();
    assert!(
        matches!(
            err,
            ProofError::Consensus(ConsensusError::InvalidHeader { slot: SLOT, .. })
        ),
        "{err}"
    );
    // A state with a forged release, signed by the right headers' structure but not by the committee.
    let mut forged = w.clone();
    forged.publish(CONTRACT, PRODUCT, 4, b"evil");
    let mut proof = release_proof(&chain, &forged, 4, COMMITTEE);
    proof.header.sync_aggregate = chain.finality_update(&w, SLOT, COMMITTEE).sync_aggregate;
    let err = verify_release_proof(&store, &proof, &expected(&chain)).unwrap_err();
    assert!(
        matches!(
            err,
            ProofError::Consensus(ConsensusError::InvalidSignature { .. })
        ),
        "{err}"
    );
}

#[test]
fn a_minority_signed_header_is_refused_and_two_thirds_is_the_line() {
    let (chain, w) = (Chain::default(), world());
    let store = chain.store(&w);
    let err = verify_release_proof(&store, &release_proof(&chain, &w, 2, 8), &expected(&chain)).unwrap_err();
    assert_eq!(
        err,
        ProofError::Participation {
            participants: 8,
            committee: 32,
            required: 22
        }
    );
    assert!(!err.is_benign(), "the sender of a minority header is to blame");
    assert!(matches!(
        verify_release_proof(&store, &release_proof(&chain, &w, 2, 21), &expected(&chain)),
        Err(ProofError::Participation { participants: 21, .. })
    ));
    verify_release_proof(&store, &release_proof(&chain, &w, 2, 22), &expected(&chain)).unwrap();
    // The 8 signatures are genuine: the sync protocol's own checks accept them, only the rule refuses.
    let any = Expected {
        participation: Participation {
            numerator: 0,
            denominator: 1,
        },
        ..expected(&chain)
    };
    verify_release_proof(&store, &release_proof(&chain, &w, 2, 8), &any).unwrap();
}

#[test]
fn a_header_signed_by_another_committee_is_refused() {
    let (chain, w) = (Chain::default(), world());
    let mut proof = release_proof(&chain, &w, 2, COMMITTEE);
    Chain::new(100).sign(&mut proof.header, COMMITTEE);
    let err = verify_release_proof(&chain.store(&w), &proof, &expected(&chain)).unwrap_err();
    assert!(
        matches!(
            err,
            ProofError::Consensus(ConsensusError::InvalidSignature { participants: 32 })
        ),
        "{err}"
    );
}

#[test]
fn a_proof_for_another_contract_is_refused() {
    let (chain, w) = (Chain::default(), world());
    let store = chain.store(&w);
    let mut proof = release_proof(&chain, &w, 1, COMMITTEE);
    let r = w.get_proof(OTHER_CONTRACT, &FIRMWARE_INDEX.release_slots(PRODUCT, 1));
    proof.state.contract = OTHER_CONTRACT;
    proof.state.account_proof = r.account_proof.clone();
    proof.state.storage_root = r.storage_hash;
    proof.state.code_hash = r.code_hash;
    proof.state.storage = r
        .storage_proof
        .iter()
        .map(|s| (s.value, s.proof.clone()))
        .collect();
    proof.record = record(21);
    let err = verify_release_proof(&store, &proof, &expected(&chain)).unwrap_err();
    assert_eq!(
        err,
        ProofError::WrongContract {
            expected: CONTRACT,
            actual: OTHER_CONTRACT
        }
    );
    // The same proof claiming to be for the configured contract: the account proof does not verify.
    proof.state.contract = CONTRACT;
    let err = verify_release_proof(&store, &proof, &expected(&chain)).unwrap_err();
    assert!(
        matches!(err, ProofError::State(ExecutionError::AccountProof { .. })),
        "{err}"
    );
}

#[test]
fn a_proof_for_another_product_is_refused() {
    let (chain, w) = (Chain::default(), world());
    let store = chain.store(&w);
    let mut proof = release_proof(&chain, &w, 1, COMMITTEE);
    let r = w.get_proof(CONTRACT, &FIRMWARE_INDEX.release_slots(OTHER_PRODUCT, 1));
    proof.product = OTHER_PRODUCT;
    proof.state.storage = r
        .storage_proof
        .iter()
        .map(|s| (s.value, s.proof.clone()))
        .collect();
    proof.record = record(11);
    let err = verify_release_proof(&store, &proof, &expected(&chain)).unwrap_err();
    assert_eq!(
        err,
        ProofError::WrongProduct {
            expected: PRODUCT,
            actual: OTHER_PRODUCT
        }
    );
    // Relabelled as the device's product, the storage proofs are for other keys and fail.
    proof.product = PRODUCT;
    let err = verify_release_proof(&store, &proof, &expected(&chain)).unwrap_err();
    assert!(
        matches!(err, ProofError::State(ExecutionError::StorageProof { .. })),
        "{err}"
    );
}

#[test]
fn a_record_that_does_not_hash_to_the_digest_is_refused() {
    let (chain, w) = (Chain::default(), world());
    let mut proof = release_proof(&chain, &w, 2, COMMITTEE);
    proof.record = record(3);
    let err = verify_release_proof(&chain.store(&w), &proof, &expected(&chain)).unwrap_err();
    assert_eq!(
        err,
        ProofError::RecordDigest {
            expected: keccak256(record(2)),
            actual: keccak256(record(3))
        }
    );
}

#[test]
fn a_release_that_is_not_in_the_index_is_refused() {
    let (chain, w) = (Chain::default(), world());
    let proof = release_proof(&chain, &w, 4, COMMITTEE);
    let err = verify_release_proof(&chain.store(&w), &proof, &expected(&chain)).unwrap_err();
    assert_eq!(err, ProofError::NoSuchRelease { sequence: 4, head: 3 });
}

#[test]
fn a_finalized_header_without_its_finality_branch_is_refused() {
    let (chain, w) = (Chain::default(), world());
    let mut proof = release_proof(&chain, &w, 2, COMMITTEE);
    proof.header.finality_branch = vec![[0; 32]; 6];
    let err = verify_release_proof(&chain.store(&w), &proof, &expected(&chain)).unwrap_err();
    assert_eq!(err, ProofError::FinalityNotProven { slot: SLOT });
}

#[test]
fn an_attested_header_alone_can_anchor_a_proof() {
    let (chain, w) = (Chain::default(), world());
    let mut proof = release_proof(&chain, &w, 2, COMMITTEE);
    proof.header.finalized_header = None;
    proof.header.finality_branch.clear();
    let v = verify_release_proof(&chain.store(&w), &proof, &expected(&chain)).unwrap();
    assert_eq!(v.anchor.slot, SLOT + 1);
}

#[test]
fn a_header_older_than_the_store_head_still_verifies() {
    let (chain, w) = (Chain::default(), world());
    let mut store = chain.store(&w);
    let newer = chain.finality_update(&w, SLOT + 10, COMMITTEE);
    advance_store(&chain.spec, &mut store, &[newer], NOW).unwrap();
    assert_eq!(store.finalized_header.beacon.slot, SLOT + 10);
    let proof = release_proof(&chain, &w, 2, COMMITTEE);
    verify_release_proof(&store, &proof, &expected(&chain)).unwrap();
}

#[test]
fn head_proofs_must_be_newer_than_the_last_accepted() {
    let (chain, mut w) = (Chain::default(), world());
    let store = chain.store(&w);
    let old = head_proof(&chain, &w, SLOT, 1);
    let first = verify_head_proof(&store, &old, &expected(&chain), None).unwrap();
    assert_eq!((first.head, first.digest), (3, keccak256(record(3))));
    assert_eq!(first.revoked, vec![(1, false), (2, false), (3, false)]);

    w.revoke(CONTRACT, PRODUCT, 3);
    w.block_number += 1;
    let new = head_proof(&chain, &w, SLOT + 5, 2);
    let second = verify_head_proof(&store, &new, &expected(&chain), Some(first.anchor.mark())).unwrap();
    assert_eq!(second.revoked, vec![(2, false), (3, true)]);

    // Replaying the old proof (or the same one) after the new one is refused, before any signature work.
    for replay in [&old, &new] {
        let err =
            verify_head_proof(&store, replay, &expected(&chain), Some(second.anchor.mark())).unwrap_err();
        assert!(
            matches!(err, ProofError::NotNewer { last_slot, .. } if last_slot == SLOT + 5),
            "{err}"
        );
        assert!(err.is_benign(), "a replay may be an honest peer's late copy");
    }
}

#[test]
fn head_proof_windows_are_bounded_and_must_match_the_slots() {
    let (chain, w) = (Chain::default(), world());
    let store = chain.store(&w);
    let mut p = head_proof(&chain, &w, SLOT, 1);
    p.revocations_from = 0;
    assert!(matches!(
        verify_head_proof(&store, &p, &expected(&chain), None),
        Err(ProofError::RevocationWindow { from: 0, head: 3, .. })
    ));
    let mut p = head_proof(&chain, &w, SLOT, 1);
    p.revocations_from = 2;
    assert_eq!(
        verify_head_proof(&store, &p, &expected(&chain), None).unwrap_err(),
        ProofError::SlotCount {
            expected: 7,
            actual: 8
        }
    );
    let mut p = head_proof(&chain, &w, SLOT, 1);
    p.state.storage[0].0 = U256::from(2);
    assert!(verify_head_proof(&store, &p, &expected(&chain), None).is_err());
}

#[test]
fn committee_chains_start_a_store_from_a_checkpoint() {
    let (chain, w) = (Chain::default(), world());
    let (root, boot) = chain.bootstrap(&w);
    let c = CommitteeChain {
        bootstrap: Some(boot.clone()),
        updates: vec![chain.period_update(&w, 16)],
    };
    let bytes = encode_committee_chain(&c);
    assert_eq!(decode_committee_chain(&bytes).unwrap(), c);
    let store = store_from_checkpoint(&chain.spec, &root, &c, NOW).unwrap();
    assert!(store.next_sync_committee.is_some());
    assert_eq!(store.finalized_header.beacon.slot, 16);

    let no_boot = CommitteeChain {
        bootstrap: None,
        updates: c.updates.clone(),
    };
    assert_eq!(
        store_from_checkpoint(&chain.spec, &root, &no_boot, NOW).unwrap_err(),
        ProofError::NoBootstrap
    );
    assert!(matches!(
        store_from_checkpoint(&chain.spec, &[9; 32], &c, NOW),
        Err(ProofError::Bootstrap(ConsensusError::CheckpointMismatch { .. }))
    ));
    // One bad update refuses the whole chain and leaves the store as it was.
    let mut store = chain.store(&w);
    let mut bad = chain.finality_update(&w, 24, COMMITTEE);
    bad.sync_aggregate.sync_committee_signature = [0; 96];
    let before = store.finalized_header.clone();
    let err = advance_store(&chain.spec, &mut store, &[chain.period_update(&w, 16), bad], NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ProofError::ChainUpdate {
                index: 1,
                slot: 25,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.finalized_header, before);
}

#[test]
fn proofs_signed_after_the_current_slot_are_refused() {
    let (chain, w) = (Chain::default(), world());
    let proof = release_proof(&chain, &w, 2, COMMITTEE);
    let early = Expected {
        current_slot: SLOT + 1,
        ..expected(&chain)
    };
    assert!(matches!(
        verify_signed_header(
            &chain.spec,
            &chain.store(&w),
            &proof.header,
            early.current_slot,
            TWO_THIRDS
        ),
        Err(ProofError::Consensus(ConsensusError::SlotOrder { .. }))
    ));
}

#[test]
fn decoding_checks_the_size_cap_first() {
    let huge = vec![0u8; MAX_PROOF_BYTES + 1];
    assert_eq!(
        decode_release_proof(&huge).unwrap_err(),
        ProofError::TooLarge {
            what: "release proof",
            len: MAX_PROOF_BYTES + 1,
            max: MAX_PROOF_BYTES
        }
    );
    let huge = vec![0u8; MAX_COMMITTEE_CHAIN_BYTES + 1];
    assert!(matches!(
        decode_committee_chain(&huge),
        Err(ProofError::TooLarge { .. })
    ));
}

#[test]
fn decoding_refuses_other_magic_versions_kinds_and_trailing_bytes() {
    let (chain, w) = (Chain::default(), world());
    let bytes = encode_release_proof(&release_proof(&chain, &w, 2, COMMITTEE));
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(matches!(
        decode_release_proof(&b),
        Err(ProofError::BadMagic { .. })
    ));
    let mut b = bytes.clone();
    b[4] = VERSION + 1;
    assert_eq!(
        decode_release_proof(&b).unwrap_err(),
        ProofError::UnsupportedVersion {
            found: VERSION + 1,
            supported: VERSION
        }
    );
    assert_eq!(
        decode_head_proof(&bytes).unwrap_err(),
        ProofError::WrongKind {
            expected: Kind::Head as u8,
            found: Kind::Release as u8
        }
    );
    let mut b = bytes.clone();
    b.push(0);
    assert_eq!(
        decode_release_proof(&b).unwrap_err(),
        ProofError::TrailingBytes {
            offset: bytes.len(),
            len: bytes.len() + 1
        }
    );
    for cut in (0..bytes.len()).step_by(7) {
        assert!(
            decode_release_proof(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes decoded"
        );
    }
    assert!(decode_release_proof(b"garbage").is_err());
    assert!(decode_release_proof(&[]).is_err());
}

#[test]
fn decoding_refuses_non_canonical_forms() {
    let (chain, w) = (Chain::default(), world());
    let proof = release_proof(&chain, &w, 2, COMMITTEE);

    // A flag byte that is neither 0 nor 1.
    let mut w1 = Writer::envelope(Kind::Release);
    codec::header(&mut w1, &proof.header.attested_header);
    let flag_at = w1.0.len();
    let mut b = encode_release_proof(&proof);
    assert_eq!(b[flag_at], 0, "no next committee");
    b[flag_at] = 2;
    assert!(matches!(
        decode_release_proof(&b),
        Err(ProofError::BadFlag {
            field: "next_sync_committee",
            ..
        })
    ));

    // Three other tables for the same proof: a node stored twice, an unused node, the order changed. Each
    // decodes to the same value, so only the canonical check can refuse them.
    let (table, paths) = canonical_table(&proof.state);
    let mut dup = table.clone();
    dup.push(table[0].clone());
    let mut dup_paths = paths.clone();
    dup_paths[0][0] = (dup.len() - 1) as u16;
    let mut unused = table.clone();
    unused.push(Bytes::from_static(b"never referenced"));
    let mut swapped = table.clone();
    swapped.swap(0, 1);
    let swap = |i: &u16| match *i {
        0 => 1,
        1 => 0,
        i => i,
    };
    let swapped_paths: Vec<Vec<u16>> = paths.iter().map(|p| p.iter().map(swap).collect()).collect();
    assert_eq!(raw(&proof, &table, &paths), encode_release_proof(&proof));
    for (t, p) in [(&dup, &dup_paths), (&unused, &paths), (&swapped, &swapped_paths)] {
        assert_eq!(
            decode_release_proof(&raw(&proof, t, p)).unwrap_err(),
            ProofError::NonCanonical {
                what: "the bytes are not the encoding of the value they decode to"
            }
        );
    }
    let mut bad_index = paths.clone();
    bad_index[1][0] = table.len() as u16;
    assert_eq!(
        decode_release_proof(&raw(&proof, &table, &bad_index)).unwrap_err(),
        ProofError::BadNodeIndex {
            index: table.len(),
            nodes: table.len()
        }
    );
}

/// The node table and paths the encoder writes: distinct nodes in order of first appearance.
fn canonical_table(s: &StateProof) -> (Vec<Bytes>, Vec<Vec<u16>>) {
    let mut table: Vec<Bytes> = Vec::new();
    let paths = std::iter::once(&s.account_proof)
        .chain(s.storage.iter().map(|(_, p)| p))
        .map(|path| {
            path.iter()
                .map(|n| match table.iter().position(|t| t == n) {
                    Some(i) => i as u16,
                    None => {
                        table.push(n.clone());
                        (table.len() - 1) as u16
                    }
                })
                .collect()
        })
        .collect();
    (table, paths)
}

/// A release proof written field by field with the given node table and paths.
fn raw(p: &ReleaseProof, table: &[Bytes], paths: &[Vec<u16>]) -> Vec<u8> {
    let mut w = Writer::envelope(Kind::Release);
    codec::update(&mut w, &p.header);
    w.bytes(p.product.as_slice());
    w.u64(p.sequence);
    let s = &p.state;
    w.bytes(s.contract.as_slice());
    w.u64(s.nonce);
    w.bytes(&s.balance.to_be_bytes::<32>());
    w.bytes(s.storage_root.as_slice());
    w.bytes(s.code_hash.as_slice());
    w.u16(table.len() as u16);
    for n in table {
        w.u16(n.len() as u16);
        w.bytes(n);
    }
    let path = |w: &mut Writer, ids: &[u16]| {
        w.u8(ids.len() as u8);
        for i in ids {
            w.u16(*i);
        }
    };
    path(&mut w, &paths[0]);
    w.u8(s.storage.len() as u8);
    for ((value, _), ids) in s.storage.iter().zip(&paths[1..]) {
        w.bytes(&value.to_be_bytes::<32>());
        path(&mut w, ids);
    }
    codec::record(&mut w, &p.record);
    w.0
}

#[test]
fn counts_over_their_caps_are_refused_before_allocation() {
    let mut w = Writer::envelope(Kind::CommitteeChain);
    w.flag(false);
    w.u8((MAX_CHAIN_UPDATES + 1) as u8);
    assert_eq!(
        decode_committee_chain(&w.0).unwrap_err(),
        ProofError::FieldTooLarge {
            field: "committee chain updates",
            count: MAX_CHAIN_UPDATES + 1,
            max: MAX_CHAIN_UPDATES
        }
    );
    let mut w = Writer::envelope(Kind::CommitteeChain);
    w.flag(true);
    codec::header(&mut w, &Default::default());
    w.u16(u16::MAX);
    assert!(matches!(
        decode_committee_chain(&w.0),
        Err(ProofError::FieldTooLarge {
            field: "sync committee size",
            ..
        })
    ));
}

/// Flipping any byte of a valid proof makes it fail to decode or to verify; the one field a flip may leave
/// valid is the signature slot, which the sync protocol does not sign.
#[test]
fn every_flipped_byte_is_caught() {
    let (chain, w) = (Chain::default(), world());
    let store = chain.store(&w);
    let proof = release_proof(&chain, &w, 2, COMMITTEE);
    let bytes = encode_release_proof(&proof);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x as usize) % bytes.len();
        let mut b = bytes.clone();
        b[at] ^= 1 << (x % 8);
        let Ok(p) = decode_release_proof(&b) else { continue };
        if verify_release_proof(&store, &p, &expected(&chain)).is_ok() {
            let mut same = p.clone();
            same.header.signature_slot = proof.header.signature_slot;
            assert_eq!(same, proof, "a flip at byte {at} verified");
        }
    }
}

#[test]
fn the_builder_makes_proofs_that_verify_and_refuses_bad_records() {
    let (chain, mut w) = (Chain::default(), world());
    w.revoke(CONTRACT, PRODUCT, 1);
    let store = chain.store(&w);
    let header = chain.finality_update(&w, SLOT, COMMITTEE);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let e = expected(&chain);
    let proof = rt
        .block_on(build_release_proof(&w, &store, header.clone(), &e, 3, record(3)))
        .unwrap();
    assert_eq!(verify_release_proof(&store, &proof, &e).unwrap().sequence, 3);
    let err = rt
        .block_on(build_release_proof(&w, &store, header.clone(), &e, 3, record(2)))
        .unwrap_err();
    assert!(
        matches!(err, BuildError::Verify(ProofError::RecordDigest { .. })),
        "{err}"
    );
    let head = rt
        .block_on(build_head_proof(&w, &store, header.clone(), &e, 2))
        .unwrap();
    assert_eq!(head.revocations_from, 2);
    let v = verify_head_proof(&store, &head, &e, None).unwrap();
    assert_eq!(v.revoked, vec![(2, false), (3, false)]);
    let all = rt
        .block_on(build_head_proof(&w, &store, header.clone(), &e, 64))
        .unwrap();
    let v = verify_head_proof(&store, &all, &e, None).unwrap();
    assert_eq!(v.revoked[0], (1, true));
    // A product with nothing published yet: head 0, no digest, no flags.
    let none = Expected {
        product: B256::repeat_byte(0x52),
        ..e
    };
    let empty = rt
        .block_on(build_head_proof(&w, &store, header, &none, 16))
        .unwrap();
    let v = verify_head_proof(&store, &empty, &none, None).unwrap();
    assert_eq!((v.head, v.digest, v.revoked.len()), (0, B256::ZERO, 0));
}

#[test]
fn the_layout_follows_solidity() {
    let inner = keccak256([PRODUCT.as_slice(), B256::from(U256::from(8)).as_slice()].concat());
    let expected = keccak256([B256::from(U256::from(5)).as_slice(), inner.as_slice()].concat());
    assert_eq!(FIRMWARE_INDEX.digest(PRODUCT, 5), expected);
    let head = keccak256([PRODUCT.as_slice(), B256::from(U256::from(7)).as_slice()].concat());
    assert_eq!(FIRMWARE_INDEX.head(PRODUCT), head);
    assert_eq!(FIRMWARE_INDEX.head_slots(PRODUCT, 0, 1).len(), 5);
    let timing = keccak256([PRODUCT.as_slice(), B256::from(U256::from(13)).as_slice()].concat());
    let timing = keccak256([B256::from(U256::from(5)).as_slice(), timing.as_slice()].concat());
    assert_eq!(FIRMWARE_INDEX.timing(PRODUCT, 5), timing);
    let paused = keccak256([PRODUCT.as_slice(), B256::from(U256::from(14)).as_slice()].concat());
    let paused = keccak256([B256::ZERO.as_slice(), paused.as_slice()].concat());
    assert_eq!(FIRMWARE_INDEX.paused_until(PRODUCT, 0), paused);
}

#[test]
fn two_thirds_is_the_light_clients_supermajority() {
    for size in [32, 512] {
        for participants in 0..=size {
            assert_eq!(
                participants >= TWO_THIRDS.required(size),
                crate::consensus::store::is_supermajority(participants, size),
                "{participants} of {size}"
            );
        }
    }
}

#[test]
fn proofs_carry_the_rollout_gates_of_the_contract() {
    let (chain, mut w) = (Chain::default(), world());
    w.time(CONTRACT, PRODUCT, 2, 1_000, 1_600);
    w.time(CONTRACT, PRODUCT, 3, 2_000, 2_000);
    w.pause(CONTRACT, PRODUCT, 0, 5_000);
    w.pause(CONTRACT, PRODUCT, 3, 9_000);
    let store = chain.store(&w);
    let v = verify_release_proof(
        &store,
        &release_proof(&chain, &w, 2, COMMITTEE),
        &expected(&chain),
    )
    .unwrap();
    assert_eq!(
        v.gate,
        ProvenGate {
            live_at: 1_000,
            installable_at: 1_600,
            product_paused_until: 5_000,
            release_paused_until: 0
        }
    );
    let h = verify_head_proof(&store, &head_proof(&chain, &w, SLOT, 1), &expected(&chain), None).unwrap();
    assert_eq!(
        h.gate,
        ProvenGate {
            live_at: 2_000,
            installable_at: 2_000,
            product_paused_until: 5_000,
            release_paused_until: 9_000
        }
    );
    // A relay that rewrites a gate value (to lift a pause) breaks the storage proof.
    let mut lifted = release_proof(&chain, &w, 2, COMMITTEE);
    lifted.state.storage[3].0 = U256::ZERO;
    let err = verify_release_proof(&store, &lifted, &expected(&chain)).unwrap_err();
    assert!(
        matches!(err, ProofError::State(ExecutionError::StorageProof { .. })),
        "{err}"
    );
    // Dropping the gate slots (a version-1-shaped proof) is refused by count.
    let mut short = release_proof(&chain, &w, 2, COMMITTEE);
    short.state.storage.truncate(3);
    assert_eq!(
        verify_release_proof(&store, &short, &expected(&chain)).unwrap_err(),
        ProofError::SlotCount {
            expected: 6,
            actual: 3
        }
    );
}

#[test]
fn version_one_proofs_are_refused_by_name() {
    let (chain, w) = (Chain::default(), world());
    let mut b = encode_release_proof(&release_proof(&chain, &w, 1, COMMITTEE));
    b[4] = 1;
    assert_eq!(
        decode_release_proof(&b).unwrap_err(),
        ProofError::UnsupportedVersion {
            found: 1,
            supported: 2
        }
    );
}
