//! Rollout control on a real chain (anvil): the contract's timing, pauses, delays and cancels, proven with
//! `eth_getProof` against verified headers, decide through `rollout::check` which of 20 fixed devices may
//! install, with chain time moved by anvil's clock.

use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use firmchain_contracts::proven::AtBlock;
use firmchain_contracts::proven_rollout::read_gates;
use firmchain_contracts::{
    ContractError, DEFAULT_TIMEOUT, FirmwareIndex, IndexClient, Revert, provider, slots,
};
use firmchain_lightclient::execution::{verify_header, verify_storage_values};
use firmchain_lightclient::execution_rpc::{ExecutionRpc, HttpExecutionRpc};
use firmchain_tests::Anvil;
use firmchain_update::record::{HardwareClass, ReleaseTerms};
use firmchain_update::rollout::{self, Device, DeviceId, Hold, ReleaseGate};
use firmchain_update::{ReleaseRecord, Sequence};

fn signer(anvil: &Anvil, i: usize) -> PrivateKeySigner {
    anvil.keys[i].parse().unwrap()
}

async fn client_as(anvil: &Anvil, i: usize, index: Address) -> IndexClient {
    let p = provider(&anvil.url, Some(signer(anvil, i))).unwrap();
    IndexClient::connect(p, index, DEFAULT_TIMEOUT).await.unwrap()
}

fn staged(seq: u64, image: &[u8], terms: ReleaseTerms) -> ReleaseRecord {
    let mut r = firmchain_tests::sample_release(seq, image);
    r.terms = Box::new(terms);
    r
}

/// Move anvil's clock forward and mine a block.
async fn advance(anvil: &Anvil, secs: u64) {
    let p = provider(&anvil.url, None).unwrap();
    let _: serde_json::Value = p.raw_request("evm_increaseTime".into(), (secs,)).await.unwrap();
    let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
}

/// The newest header (checked against its hash), its chain time, and the proven gate of `seq`.
async fn proven_gate(rpc: &HttpExecutionRpc, index: Address, r: &ReleaseRecord) -> (u64, ReleaseGate, bool) {
    let (header, hash) = rpc.header(BlockNumberOrTag::Latest).await.unwrap();
    verify_header(&header, hash).unwrap();
    let at = AtBlock {
        number: header.number,
        state_root: header.state_root,
    };
    let gates = read_gates(rpc, index, &r.product, &[r.sequence], at)
        .await
        .unwrap();
    let key = [slots::revoked(&r.product, r.sequence)];
    let proof = rpc.proof(index, key.to_vec(), header.number).await.unwrap();
    let revoked = !verify_storage_values(header.state_root, index, &key, &proof).unwrap()[0].is_zero();
    (header.timestamp, gates[0], revoked)
}

fn fleet(class: &str) -> Vec<Device> {
    (1..=20)
        .map(|i| Device {
            id: DeviceId::from_name(&format!("device-{i:02}")),
            class: Some(class.parse().unwrap()),
        })
        .collect()
}

/// Which devices of the fleet the rules admit (revoked: none).
fn admitted(
    r: &ReleaseRecord,
    gate: &ReleaseGate,
    revoked: bool,
    devices: &[Device],
    now: u64,
) -> Vec<usize> {
    (0..devices.len())
        .filter(|i| !revoked && rollout::check(r, gate, &devices[*i], now).is_ok())
        .collect()
}

fn rpc_of(anvil: &Anvil) -> HttpExecutionRpc {
    HttpExecutionRpc::new(vec![anvil.url.clone()], Duration::from_secs(10)).unwrap()
}

#[tokio::test]
async fn a_staged_rollout_with_a_delay_and_a_pause_admits_exactly_the_predicted_devices() {
    let anvil = Anvil::start().unwrap();
    let owner = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let at = owner.address();
    let guardian = client_as(&anvil, 1, at).await;
    let product = firmchain_tests::sample_release(1, b"x").product;
    owner
        .add_guardian(signer(&anvil, 1).address(), None)
        .await
        .unwrap();
    owner.set_activation_delay(&product, 3600).await.unwrap();
    assert_eq!(owner.delays(&product).await.unwrap(), (3600, 3 * 86_400));

    let rev_a: HardwareClass = "rev-a".parse().unwrap();
    let terms = ReleaseTerms {
        hardware: vec![rev_a],
        rollout: "25%,+25%/1h".parse().unwrap(),
        ..Default::default()
    };
    let r = staged(1, b"image one", terms);
    owner.publish(&r).await.unwrap();
    let devices = fleet("rev-a");
    let others = fleet("rev-b");
    let rpc = rpc_of(&anvil);

    // Inside the delay: nobody.
    let (now, gate, revoked) = proven_gate(&rpc, at, &r).await;
    assert_eq!(gate.live_at, now, "went live in this block");
    assert_eq!(gate.installable_at, now + 3600);
    assert_eq!(
        rollout::check(&r, &gate, &devices[0], now),
        Err(Hold::Delay { until: now + 3600 })
    );
    assert!(admitted(&r, &gate, revoked, &devices, now).is_empty());

    // The predicted 25%, exactly, and never a device of another class.
    let needs: Vec<u16> = devices
        .iter()
        .map(|d| rollout::min_share(rollout::place(&d.id, &r.digest())))
        .collect();
    let expect = |share: u16| (0..20).filter(|i| needs[*i] <= share).collect::<Vec<_>>();
    let (quarter, half) = (expect(2500).len(), expect(5000).len());
    assert!(
        0 < quarter && quarter < half && half < 20,
        "a telling fleet: {quarter}, {half} of 20"
    );
    advance(&anvil, 3600).await;
    let (now, gate, revoked) = proven_gate(&rpc, at, &r).await;
    assert_eq!(admitted(&r, &gate, revoked, &devices, now), expect(2500));
    assert!(admitted(&r, &gate, revoked, &others, now).is_empty());

    // A guardian pauses: nobody new; after the owner-set bound or a resume, the schedule goes on.
    let (_, until) = guardian.pause(&product, Sequence(0)).await.unwrap();
    let (now, gate, revoked) = proven_gate(&rpc, at, &r).await;
    assert_eq!(gate.product_paused_until, until);
    assert!(admitted(&r, &gate, revoked, &devices, now).is_empty());
    advance(&anvil, 3600).await;
    let (now, gate, revoked) = proven_gate(&rpc, at, &r).await;
    assert!(
        admitted(&r, &gate, revoked, &devices, now).is_empty(),
        "still paused"
    );
    let resumed = owner.resume(&product, Sequence(0)).await.unwrap();
    assert!(resumed.done, "threshold 1: one publisher resumes");
    let (now, gate, revoked) = proven_gate(&rpc, at, &r).await;
    assert_eq!(admitted(&r, &gate, revoked, &devices, now), expect(5000));

    // Past the window a guardian can no longer cancel.
    let late = guardian.cancel(&product, Sequence(1), "too late").await;
    assert!(matches!(
        late,
        Err(ContractError::Revert(Revert(
            FirmwareIndex::FirmwareIndexErrors::WindowClosed(_)
        )))
    ));
    advance(&anvil, 2 * 3600).await;
    let (now, gate, revoked) = proven_gate(&rpc, at, &r).await;
    assert_eq!(
        admitted(&r, &gate, revoked, &devices, now),
        (0..20).collect::<Vec<_>>()
    );
    let state = owner.rollout_state(&product, Sequence(1)).await.unwrap();
    assert_eq!(
        (state.gate, state.revoked),
        (gate, false),
        "the view agrees with the proofs"
    );
}

#[tokio::test]
async fn a_cancel_inside_the_window_means_nothing_ever_installs() {
    let anvil = Anvil::start().unwrap();
    let owner = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let at = owner.address();
    let guardian = client_as(&anvil, 1, at).await;
    let r = staged(1, b"backdoor", ReleaseTerms::default());
    owner
        .add_guardian(signer(&anvil, 1).address(), Some(&r.product))
        .await
        .unwrap();
    owner.set_activation_delay(&r.product, 600).await.unwrap();
    owner.publish(&r).await.unwrap();
    guardian
        .cancel(&r.product, Sequence(1), "not ours")
        .await
        .unwrap();
    advance(&anvil, 7 * 86_400).await;
    let (now, gate, revoked) = proven_gate(&rpc_of(&anvil), at, &r).await;
    assert!(revoked, "the cancel is the proven revoked flag");
    assert!(now > gate.installable_at);
    let devices = fleet("any");
    assert!(admitted(&r, &gate, revoked, &devices, now).is_empty());
}

#[tokio::test]
async fn an_expired_release_is_admitted_to_nobody() {
    let anvil = Anvil::start().unwrap();
    let owner = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let rpc = rpc_of(&anvil);
    let (header, _) = rpc.header(BlockNumberOrTag::Latest).await.unwrap();
    let terms = ReleaseTerms {
        not_after: header.timestamp + 600,
        ..Default::default()
    };
    let r = staged(1, b"short-lived", terms);
    owner.publish(&r).await.unwrap();
    let devices = fleet("any");
    let (now, gate, revoked) = proven_gate(&rpc, owner.address(), &r).await;
    assert_eq!(admitted(&r, &gate, revoked, &devices, now).len(), 20);
    advance(&anvil, 600).await;
    let (now, gate, revoked) = proven_gate(&rpc, owner.address(), &r).await;
    assert!(admitted(&r, &gate, revoked, &devices, now).is_empty());
    assert_eq!(
        rollout::check(&r, &gate, &devices[0], now),
        Err(Hold::Expired {
            not_after: r.terms.not_after
        })
    );
}

#[tokio::test]
async fn one_publisher_key_at_threshold_two_can_neither_revoke_nor_resume() {
    let anvil = Anvil::start().unwrap();
    let owner = firmchain_tests::index_with_publisher(&anvil).await.unwrap();
    let at = owner.address();
    owner
        .add_publisher(signer(&anvil, 2).address(), None)
        .await
        .unwrap();
    owner.set_threshold(2).await.unwrap();
    let alice = client_as(&anvil, 0, at).await;
    let bob = client_as(&anvil, 2, at).await;
    let r = staged(1, b"good", ReleaseTerms::default());
    assert!(!alice.publish(&r).await.unwrap().live);
    assert!(bob.approve(&r).await.unwrap().live);

    // Bob's key is stolen.
    let revoked = bob.revoke(&r.product, Sequence(1), "stolen").await.unwrap();
    assert!(!revoked.done);
    assert!(!owner.is_revoked(&r.product, Sequence(1)).await.unwrap());
    alice.pause(&r.product, Sequence(1)).await.unwrap();
    let resumed = bob.resume(&r.product, Sequence(1)).await.unwrap();
    assert!(!resumed.done);
    let state = owner.rollout_state(&r.product, Sequence(1)).await.unwrap();
    let (header, _) = rpc_of(&anvil).header(BlockNumberOrTag::Latest).await.unwrap();
    assert!(state.gate.release_paused_until > header.timestamp, "still paused");
    // Both keys together do what one cannot.
    assert!(alice.resume(&r.product, Sequence(1)).await.unwrap().done);
    assert!(alice.revoke(&r.product, Sequence(1), "real").await.unwrap().done);
    assert!(owner.is_revoked(&r.product, Sequence(1)).await.unwrap());
    // The proof sees the same: storage, not events.
    let (header, _) = rpc_of(&anvil).header(BlockNumberOrTag::Latest).await.unwrap();
    let key = [slots::revoked(&r.product, Sequence(1))];
    let proof = rpc_of(&anvil)
        .proof(at, key.to_vec(), header.number)
        .await
        .unwrap();
    assert_eq!(
        verify_storage_values(header.state_root, at, &key, &proof).unwrap()[0],
        U256::from(1)
    );
}
