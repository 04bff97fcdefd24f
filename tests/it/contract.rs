//! FirmwareIndex on a real anvil: deployment, publishing, storage proofs of what `latest` returns, and
//! reverts that come back as typed errors naming the rule.

use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use firmchain_contracts::{ContractError, Revert};
use firmchain_contracts::{
    DEFAULT_TIMEOUT, FirmwareIndex::FirmwareIndexErrors, IndexClient, provider, slots,
};
use firmchain_tests::Anvil;
use firmchain_update::{Blake3Hash, ProductId, ReleaseKind, ReleaseRecord, Sequence};

fn signer(anvil: &Anvil, i: usize) -> PrivateKeySigner {
    anvil.keys[i].parse().unwrap()
}

fn full(product: &str, seq: u64, image: &[u8]) -> ReleaseRecord {
    ReleaseRecord {
        product: product.parse().unwrap(),
        sequence: Sequence(seq),
        base_hash: Blake3Hash::ZERO,
        target_hash: Blake3Hash::of(image),
        target_size: image.len() as u64,
        patch_cid: firmchain_update::dag::cid_of(firmchain_update::dag::RAW, image).to_bytes(),
        patch_hash: Blake3Hash::of(&[image, b"payload"].concat()),
        patch_size: 100,
        kind: ReleaseKind::Full,
        min_sequence: 0,
        terms: Default::default(),
    }
}

/// Deploy with account 0 as owner and accounts 1 and 2 as global publishers; a client for each account.
async fn deployed(anvil: &Anvil, threshold: u64) -> (IndexClient, IndexClient, IndexClient, IndexClient) {
    let owner = IndexClient::deploy(
        provider(&anvil.url, Some(signer(anvil, 0))).unwrap(),
        signer(anvil, 0).address(),
        1,
        DEFAULT_TIMEOUT,
    )
    .await
    .unwrap();
    let as_account = |i| {
        let p = provider(&anvil.url, Some(signer(anvil, i))).unwrap();
        IndexClient::connect(p, owner.address(), DEFAULT_TIMEOUT)
    };
    let (alice, bob, mallory) = (
        as_account(1).await.unwrap(),
        as_account(2).await.unwrap(),
        as_account(3).await.unwrap(),
    );
    owner
        .add_publisher(signer(anvil, 1).address(), None)
        .await
        .unwrap();
    owner
        .add_publisher(signer(anvil, 2).address(), None)
        .await
        .unwrap();
    if threshold != 1 {
        owner.set_threshold(threshold).await.unwrap();
    }
    (owner, alice, bob, mallory)
}

#[tokio::test]
async fn storage_proof_values_equal_latest() {
    let anvil = Anvil::start().unwrap();
    let (owner, alice, _, _) = deployed(&anvil, 1).await;
    let record = full("acme-sensor", 1, b"image one");
    let published = alice.publish(&record).await.unwrap();
    assert!(published.live);
    let (seq, digest) = alice.latest(&record.product).await.unwrap();
    assert_eq!(seq, Sequence(1));
    assert_eq!(
        digest,
        record.digest(),
        "the contract's digest equals keccak256(abi.encode(record)) computed in Rust"
    );
    owner.revoke(&record.product, Sequence(1), "test").await.unwrap();

    let reader = provider(&anvil.url, None).unwrap();
    let keys = vec![
        slots::head(&record.product),
        slots::digest(&record.product, Sequence(1)),
        slots::revoked(&record.product, Sequence(1)),
    ];
    let proof = reader.get_proof(owner.address(), keys.clone()).await.unwrap();
    assert_eq!(proof.storage_proof.len(), 3);
    for (p, k) in proof.storage_proof.iter().zip(&keys) {
        assert_eq!(p.key.as_b256(), *k);
        assert!(!p.proof.is_empty(), "a proof for every slot");
    }
    assert_eq!(proof.storage_proof[0].value, alloy::primitives::U256::from(seq.0));
    assert_eq!(proof.storage_proof[1].value.to_be_bytes::<32>(), digest);
    assert_eq!(proof.storage_proof[2].value, alloy::primitives::U256::from(1));
    let other = reader
        .get_proof(
            owner.address(),
            vec![slots::head(&"other".parse::<ProductId>().unwrap())],
        )
        .await;
    assert_eq!(
        other.unwrap().storage_proof[0].value,
        alloy::primitives::U256::ZERO
    );
}

fn revert_of<T: std::fmt::Debug>(r: Result<T, ContractError>) -> FirmwareIndexErrors {
    match r {
        Err(ContractError::Revert(Revert(e))) => e,
        other => panic!("expected a typed revert, got {other:?}"),
    }
}

#[tokio::test]
async fn reverts_come_back_typed_and_named() {
    let anvil = Anvil::start().unwrap();
    let (_, alice, _, mallory) = deployed(&anvil, 1).await;
    let err = mallory.publish(&full("acme-sensor", 1, b"x")).await;
    let msg = err.as_ref().unwrap_err().to_string();
    assert!(matches!(revert_of(err), FirmwareIndexErrors::NotPublisher(_)));
    assert!(msg.contains("is not a publisher of acme-sensor"), "{msg}");

    let err = alice.publish(&full("acme-sensor", 2, b"x")).await;
    let msg = err.as_ref().unwrap_err().to_string();
    assert!(
        matches!(revert_of(err), FirmwareIndexErrors::SequenceNotNext(e) if e.expected == 1 && e.got == 2)
    );
    assert!(msg.contains("the next sequence is 1"), "{msg}");

    let mut patch = full("acme-sensor", 1, b"y");
    patch.kind = ReleaseKind::Patch;
    patch.base_hash = Blake3Hash::of(b"never released");
    assert!(matches!(
        revert_of(alice.publish(&patch).await),
        FirmwareIndexErrors::UnknownBase(_)
    ));

    let err = mallory.set_threshold(1).await;
    assert!(matches!(revert_of(err), FirmwareIndexErrors::NotOwner(_)));

    // Regression: a refused call must not leave the signer's nonce out of step with the chain.
    assert!(
        alice.publish(&full("acme-sensor", 1, b"x")).await.unwrap().live,
        "the next transaction goes through"
    );
}

#[tokio::test]
async fn one_compromised_publisher_cannot_move_head_at_threshold_two() {
    let anvil = Anvil::start().unwrap();
    let (owner, alice, bob, _) = deployed(&anvil, 2).await;
    let evil = full("acme-sensor", 1, b"backdoored image");
    assert!(!alice.publish(&evil).await.unwrap().live);
    assert!(matches!(
        revert_of(alice.approve(&evil).await),
        FirmwareIndexErrors::DuplicateApproval(_)
    ));
    assert_eq!(
        owner.latest(&evil.product).await.unwrap().0,
        Sequence(0),
        "head did not move"
    );

    let good = full("acme-sensor", 1, b"reviewed image");
    assert!(!alice.publish(&good).await.unwrap().live);
    assert!(
        bob.approve(&good).await.unwrap().live,
        "two distinct approvals make it live"
    );
    assert_eq!(
        owner.latest(&good.product).await.unwrap(),
        (Sequence(1), good.digest())
    );

    let (owner_addr, threshold, publishers) = owner.governance().await.unwrap();
    assert_eq!(owner_addr, signer(&anvil, 0).address());
    assert_eq!(threshold, 2);
    assert_eq!(publishers.len(), 2);
}
