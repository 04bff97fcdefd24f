//! Release and head proofs end to end over a real anvil and the beacon harness: a node with chain access
//! builds them from its verified light client and `eth_getProof`; a device with only a checkpoint verifies
//! them after they went through the wire encoding. Forged state roots, minority-signed headers, proofs for
//! another contract or product, replayed head proofs and garbage are refused with the error that names them.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use firmchain_contracts::{IndexClient, provider, slots};
use firmchain_lightclient::client::{DEFAULT_WEAK_SUBJECTIVITY_SECONDS, LightClient};
use firmchain_lightclient::consensus::ssz::Root;
use firmchain_lightclient::consensus::{ChainSpec, ConsensusError, Store, Update};
use firmchain_lightclient::execution_rpc::HttpExecutionRpc;
use firmchain_lightclient::proof::layout::FIRMWARE_INDEX;
use firmchain_lightclient::proof::{
    self, Expected, IndexLayout, ProofError, TWO_THIRDS, build_committee_chain, build_head_proof,
    build_release_proof, decode_committee_chain, decode_head_proof, decode_release_proof,
    encode_committee_chain, encode_head_proof, encode_release_proof, store_from_checkpoint,
    verify_head_proof, verify_release_proof,
};
use firmchain_lightclient::rpc::{ConsensusRpc, HttpRpc};
use firmchain_tests::Anvil;
use firmchain_tests::beacon::{BeaconHarness, Behaviour};
use firmchain_update::{ProductId, ReleaseRecord, Sequence};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn release(seq: u64) -> ReleaseRecord {
    firmchain_tests::sample_release(seq, format!("image {seq}").as_bytes())
}

fn other_product_release() -> ReleaseRecord {
    ReleaseRecord {
        product: "other-sensor".parse().unwrap(),
        ..release(1)
    }
}

/// The layout the contract crate declares (checked there against the compiled artifact).
const LAYOUT: IndexLayout = IndexLayout {
    head: slots::HEAD,
    digest: slots::DIGEST,
    revoked: slots::REVOKED,
    timing: slots::TIMING,
    paused_until: slots::PAUSED_UNTIL,
};

fn checkpoint(h: &BeaconHarness) -> Root {
    let mut root = [0u8; 32];
    hex::decode_to_slice(h.checkpoint.trim_start_matches("0x"), &mut root).unwrap();
    root
}

/// What a device expects, at the current slot.
fn expected<'a>(spec: &'a ChainSpec, contract: Address, product: &ProductId) -> Expected<'a> {
    Expected {
        spec,
        contract,
        layout: LAYOUT,
        product: B256::from(product.0),
        current_slot: spec.slot_at(now()),
        participation: TWO_THIRDS,
    }
}

struct Gateway {
    spec: ChainSpec,
    beacon: HttpRpc,
    exec: HttpExecutionRpc,
    client: LightClient<HttpRpc>,
}

impl Gateway {
    async fn start(anvil: &Anvil, h: &BeaconHarness) -> Gateway {
        let spec = ChainSpec::from_config(&h.config).unwrap();
        let beacon = HttpRpc::new(vec![h.url.clone()], Duration::from_secs(10)).unwrap();
        let client = LightClient::start(
            spec.clone(),
            beacon.clone(),
            checkpoint(h),
            now(),
            DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
            false,
        )
        .await
        .unwrap();
        let exec = HttpExecutionRpc::new(vec![anvil.url.clone()], Duration::from_secs(10)).unwrap();
        Gateway {
            spec,
            beacon,
            exec,
            client,
        }
    }

    /// A finality update, verified by the gateway's light client, whose finalized header carries block `n`
    /// or later (the harness moves its head every few slots).
    async fn header_at(&mut self, n: u64) -> Update {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.client.sync(now()).await.unwrap();
            let u = self.beacon.finality_update().await.unwrap();
            let block = u
                .finalized_header
                .as_ref()
                .and_then(|h| h.execution.as_ref())
                .map_or(0, |e| e.block_number);
            if block >= n {
                return u;
            }
            assert!(
                Instant::now() < deadline,
                "the harness never reached block {n} (at {block})"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn release_proof(&mut self, index: &IndexClient, r: &ReleaseRecord, n: u64) -> proof::ReleaseProof {
        let header = self.header_at(n).await;
        let e = expected(&self.spec, index.address(), &r.product);
        build_release_proof(
            &self.exec,
            &self.client.store,
            header,
            &e,
            r.sequence.0,
            r.abi_encode(),
        )
        .await
        .unwrap()
    }
}

/// A device: only the checkpoint, the contract and its product; its store comes from a committee chain
/// that reached it as bytes.
fn device(spec: &ChainSpec, checkpoint: &Root, chain_bytes: &[u8]) -> Store {
    let chain = decode_committee_chain(chain_bytes).unwrap();
    store_from_checkpoint(spec, checkpoint, &chain, spec.slot_at(now())).unwrap()
}

async fn block_now(anvil: &Anvil) -> u64 {
    provider(&anvil.url, None)
        .unwrap()
        .get_block_number()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_device_with_only_a_checkpoint_verifies_a_release_and_refuses_forgeries() {
    let anvil = Anvil::start().unwrap();
    let index = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let other_index = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let harness = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    let mut gw = Gateway::start(&anvil, &harness).await;
    let spec = gw.spec.clone();
    index.publish(&release(1)).await.unwrap();
    index.publish(&other_product_release()).await.unwrap();
    other_index.publish(&release(1)).await.unwrap();
    let n = index.publish(&release(2)).await.unwrap().block.unwrap();

    // The gateway builds the committee chain and the proof; the device gets bytes.
    let slot = spec.slot_at(now());
    let chain = build_committee_chain(&spec, &gw.beacon, checkpoint(&harness), true, 0, 1, slot)
        .await
        .unwrap();
    let chain_bytes = encode_committee_chain(&chain);
    let proof = gw.release_proof(&index, &release(2), n).await;
    let bytes = encode_release_proof(&proof);
    eprintln!(
        "committee chain {} bytes, release proof {} bytes",
        chain_bytes.len(),
        bytes.len()
    );
    let store = device(&spec, &checkpoint(&harness), &chain_bytes);
    let e = expected(&spec, index.address(), &release(2).product);
    let v = verify_release_proof(&store, &decode_release_proof(&bytes).unwrap(), &e).unwrap();
    assert_eq!((v.sequence, v.head, v.revoked), (2, 2, false));
    assert_eq!(ReleaseRecord::abi_decode(&v.record).unwrap(), release(2));
    assert!(v.anchor.block_number >= n);
    // The anchor is anvil's block.
    let block = provider(&anvil.url, None)
        .unwrap()
        .get_block_by_number(v.anchor.block_number.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.anchor.block_hash, block.header.hash);
    assert_eq!(v.anchor.state_root, block.header.state_root);

    // A forged state root in the anchoring execution header.
    let mut forged = proof.clone();
    let exec = forged
        .header
        .finalized_header
        .as_mut()
        .unwrap()
        .execution
        .as_mut()
        .unwrap();
    exec.state_root = [0x66; 32];
    let err = verify_release_proof(&store, &forged, &e).unwrap_err();
    assert!(
        matches!(err, ProofError::Consensus(ConsensusError::InvalidHeader { .. })),
        "{err}"
    );

    // A proof for another contract (valid for that contract), then relabelled as ours.
    let theirs = gw.release_proof(&other_index, &release(1), n).await;
    let err = verify_release_proof(&store, &theirs, &e).unwrap_err();
    assert_eq!(
        err,
        ProofError::WrongContract {
            expected: index.address(),
            actual: other_index.address()
        }
    );
    let mut relabelled = theirs.clone();
    relabelled.state.contract = index.address();
    assert!(matches!(
        verify_release_proof(&store, &relabelled, &e),
        Err(ProofError::State(_))
    ));

    // A proof for another product, then relabelled as ours.
    let other = other_product_release();
    let theirs = gw.release_proof(&index, &other, n).await;
    let err = verify_release_proof(&store, &theirs, &e).unwrap_err();
    assert_eq!(
        err,
        ProofError::WrongProduct {
            expected: B256::from(release(1).product.0),
            actual: B256::from(other.product.0)
        }
    );
    let mut relabelled = theirs.clone();
    relabelled.product = e.product;
    assert!(matches!(
        verify_release_proof(&store, &relabelled, &e),
        Err(ProofError::State(_) | ProofError::RecordDigest { .. })
    ));

    // Garbage, truncation, oversize.
    assert!(matches!(
        decode_release_proof(b"not a proof at all"),
        Err(ProofError::BadMagic { .. })
    ));
    assert!(matches!(
        decode_release_proof(&bytes[..bytes.len() - 1]),
        Err(ProofError::Truncated { .. })
    ));
    let mut big = bytes.clone();
    big.resize(proof::MAX_PROOF_BYTES + 1, 0);
    assert!(matches!(
        decode_release_proof(&big),
        Err(ProofError::TooLarge { .. })
    ));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        decode_release_proof(&trailing),
        Err(ProofError::TrailingBytes { .. })
    ));

    // A header signed by 8 of the 32 members (over a forged state root) cannot anchor a proof.
    harness.set_behaviour(Behaviour::Minority);
    let n3 = index.publish(&release(3)).await.unwrap().block.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.head_block().unwrap() < n3 {
        assert!(Instant::now() < deadline, "the harness never moved to block {n3}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let minority = gw.beacon.finality_update().await.unwrap();
    let mut forged = proof.clone();
    forged.header = minority;
    let err = verify_release_proof(
        &store,
        &forged,
        &expected(&spec, index.address(), &release(2).product),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProofError::Participation {
            participants: 8,
            committee: 32,
            required: 22
        }
    );

    // An execution header changed after signing (the harness's tampering server).
    harness.set_behaviour(Behaviour::TamperedExecution);
    let tampered = gw.beacon.finality_update().await.unwrap();
    let mut forged = proof.clone();
    forged.header = tampered;
    assert!(matches!(
        verify_release_proof(
            &store,
            &forged,
            &expected(&spec, index.address(), &release(2).product)
        ),
        Err(ProofError::Consensus(ConsensusError::InvalidHeader { .. }))
    ));
}

#[tokio::test]
async fn head_proofs_carry_revocations_and_an_old_one_cannot_be_replayed() {
    let anvil = Anvil::start().unwrap();
    let index = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let harness = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    let mut gw = Gateway::start(&anvil, &harness).await;
    let spec = gw.spec.clone();
    index.publish(&release(1)).await.unwrap();
    let n1 = index.publish(&release(2)).await.unwrap().block.unwrap();
    let product = release(1).product;

    let slot = spec.slot_at(now());
    let chain = build_committee_chain(&spec, &gw.beacon, checkpoint(&harness), true, 0, 0, slot)
        .await
        .unwrap();
    let store = device(&spec, &checkpoint(&harness), &encode_committee_chain(&chain));

    let header = gw.header_at(n1).await;
    let e = expected(&spec, index.address(), &product);
    let old = build_head_proof(&gw.exec, &gw.client.store, header, &e, 16)
        .await
        .unwrap();
    let old_bytes = encode_head_proof(&old);
    let first = verify_head_proof(&store, &decode_head_proof(&old_bytes).unwrap(), &e, None).unwrap();
    assert_eq!(first.head, 2);
    assert_eq!(first.revoked, vec![(1, false), (2, false)]);
    assert_eq!(first.digest, B256::from(release(2).digest()));

    index
        .revoke(&product, Sequence(2), "bricks sensors")
        .await
        .unwrap();
    let n2 = block_now(&anvil).await;
    let header = gw.header_at(n2).await;
    let e = expected(&spec, index.address(), &product);
    let new = build_head_proof(&gw.exec, &gw.client.store, header, &e, 16)
        .await
        .unwrap();
    let second = verify_head_proof(&store, &new, &e, Some(first.anchor.mark())).unwrap();
    assert_eq!(second.revoked, vec![(1, false), (2, true)]);
    assert!(second.anchor.slot > first.anchor.slot);

    // The old head proof (no revocation) replayed after the new one is refused.
    let replay = decode_head_proof(&old_bytes).unwrap();
    let err = verify_head_proof(&store, &replay, &e, Some(second.anchor.mark())).unwrap_err();
    assert!(
        matches!(err, ProofError::NotNewer { slot, last_slot, .. } if slot == first.anchor.slot && last_slot == second.anchor.slot),
        "{err}"
    );
    // So is a head proof for another contract.
    let elsewhere = Expected {
        contract: Address::repeat_byte(0xee),
        ..e
    };
    assert!(matches!(
        verify_head_proof(&store, &new, &elsewhere, None),
        Err(ProofError::WrongContract { .. })
    ));
}

#[test]
fn the_proof_layout_is_the_contract_layout() {
    assert_eq!(LAYOUT, FIRMWARE_INDEX);
    let p = release(1).product;
    let b = B256::from(p.0);
    assert_eq!(FIRMWARE_INDEX.head(b), slots::head(&p));
    assert_eq!(FIRMWARE_INDEX.digest(b, 7), slots::digest(&p, Sequence(7)));
    assert_eq!(FIRMWARE_INDEX.revoked(b, 7), slots::revoked(&p, Sequence(7)));
    assert_eq!(FIRMWARE_INDEX.timing(b, 7), slots::timing(&p, Sequence(7)));
    assert_eq!(
        FIRMWARE_INDEX.paused_until(b, 0),
        slots::paused_until(&p, Sequence(0))
    );
}

#[tokio::test]
async fn proofs_carry_the_same_rollout_gates_as_an_rpc_read() {
    let anvil = Anvil::start().unwrap();
    let index = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let harness = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    let mut gw = Gateway::start(&anvil, &harness).await;
    let spec = gw.spec.clone();
    index.publish(&release(1)).await.unwrap();
    let product = release(1).product;
    let (_, paused_until) = index.pause(&product, Sequence(0)).await.unwrap();
    let n = block_now(&anvil).await;

    let slot = spec.slot_at(now());
    let chain = build_committee_chain(&spec, &gw.beacon, checkpoint(&harness), true, 0, 0, slot)
        .await
        .unwrap();
    let store = device(&spec, &checkpoint(&harness), &encode_committee_chain(&chain));
    let e = expected(&spec, index.address(), &product);
    let release_proof = gw.release_proof(&index, &release(1), n).await;
    let v = verify_release_proof(&store, &release_proof, &e).unwrap();
    let header = gw.header_at(n).await;
    let head_proof = build_head_proof(&gw.exec, &gw.client.store, header, &e, 4)
        .await
        .unwrap();
    let h = verify_head_proof(&store, &head_proof, &e, None).unwrap();
    assert_eq!(v.gate.product_paused_until, paused_until);
    assert!(v.gate.live_at > 0, "a published release has gone live");
    assert_eq!(h.gate.product_paused_until, paused_until);
    assert_eq!(h.gate.live_at, v.gate.live_at);

    // What the RPC device reads with eth_getProof at the same block.
    let at = firmchain_contracts::proven::AtBlock {
        number: v.anchor.block_number,
        state_root: v.anchor.state_root,
    };
    let rpc = firmchain_contracts::proven_rollout::read_gates(
        &gw.exec,
        index.address(),
        &product,
        &[Sequence(1)],
        at,
    )
    .await
    .unwrap();
    assert_eq!(rpc[0].live_at, v.gate.live_at);
    assert_eq!(rpc[0].installable_at, v.gate.installable_at);
    assert_eq!(rpc[0].product_paused_until, v.gate.product_paused_until);
    assert_eq!(rpc[0].release_paused_until, v.gate.release_paused_until);
}
