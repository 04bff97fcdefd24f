//! The light client end to end: a beacon light-client server over a real anvil chain, signed by 32 known BLS
//! keys (`firmchain_tests::beacon`); the client verifies the sync committee's signatures, then proves the
//! FirmwareIndex head against the execution state root it verified. Dishonest servers, a forged execution
//! header, a wrong fork version and a minority of signers are all rejected.

use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use firmchain_contracts::proven::read_head;
use firmchain_contracts::{IndexClient, provider};
use firmchain_lightclient::client::{ClientError, DEFAULT_WEAK_SUBJECTIVITY_SECONDS, LightClient};
use firmchain_lightclient::consensus::{ChainSpec, ConsensusError};
use firmchain_lightclient::execution_rpc::HttpExecutionRpc;
use firmchain_lightclient::rpc::HttpRpc;
use firmchain_tests::Anvil;
use firmchain_tests::beacon::{BeaconHarness, Behaviour};
use firmchain_update::ReleaseRecord;

fn release(seq: u64) -> ReleaseRecord {
    firmchain_tests::sample_release(seq, format!("image {seq}").as_bytes())
}

async fn deployed(anvil: &Anvil) -> IndexClient {
    firmchain_tests::index_with_publisher(anvil).await.unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn client(h: &BeaconHarness) -> LightClient<HttpRpc> {
    let spec = ChainSpec::from_config(&h.config).unwrap();
    let rpc = HttpRpc::new(vec![h.url.clone()], Duration::from_secs(10)).unwrap();
    let mut root = [0u8; 32];
    hex::decode_to_slice(h.checkpoint.trim_start_matches("0x"), &mut root).unwrap();
    LightClient::start(spec, rpc, root, now(), DEFAULT_WEAK_SUBJECTIVITY_SECONDS, false)
        .await
        .unwrap()
}

/// Sync until the finalized header carries block `n` or later (the server moves its head every few slots).
async fn sync_to(c: &mut LightClient<HttpRpc>, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = c.sync(now()).await.unwrap();
        let block = report.finalized_block.unwrap_or(0);
        if block >= n {
            return block;
        }
        assert!(
            Instant::now() < deadline,
            "finalized block stuck at {block}, waiting for {n}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The index head proven against the state root the light client verified.
async fn proven_head(anvil: &Anvil, index: &IndexClient, c: &LightClient<HttpRpc>) -> (U256, B256) {
    let exec = c.store.finalized_header.execution.as_ref().unwrap();
    let rpc = HttpExecutionRpc::new(vec![anvil.url.clone()], Duration::from_secs(10)).unwrap();
    let head = read_head(
        &rpc,
        index.address(),
        &release(1).product,
        exec.block_number,
        B256::from(exec.state_root),
    )
    .await
    .unwrap();
    (U256::from(head.sequence.0), head.digest)
}

use alloy::providers::Provider;

#[tokio::test]
async fn light_client_follows_anvil_and_proves_the_index_head() {
    let anvil = Anvil::start().unwrap();
    let index = deployed(&anvil).await;
    let harness = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    let mut c = client(&harness).await;
    let first = release(1);
    let n = index.publish(&first).await.unwrap().block.unwrap();
    let at = sync_to(&mut c, n).await;
    assert!(at >= n);
    // The verified execution header is anvil's block: same hash.
    let exec = c.store.finalized_header.execution.as_ref().unwrap();
    let block = provider(&anvil.url, None)
        .unwrap()
        .get_block_by_number(exec.block_number.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(B256::from(exec.block_hash), block.header.hash);
    let (head, digest) = proven_head(&anvil, &index, &c).await;
    assert_eq!(head, U256::from(1));
    assert_eq!(digest, B256::from(first.digest()));
}

async fn rejected(behaviour: Behaviour) -> ClientError {
    let anvil = Anvil::start().unwrap();
    let harness = BeaconHarness::start(&anvil.url, behaviour).unwrap();
    // The bootstrap is checked against the trusted checkpoint, so it is the honest one; what follows is not.
    let mut c = client(&harness).await;
    c.sync(now()).await.unwrap_err()
}

#[tokio::test]
async fn updates_signed_by_other_keys_are_rejected() {
    let err = rejected(Behaviour::ForeignKeys).await;
    assert!(
        matches!(
            err,
            ClientError::Consensus {
                source: ConsensusError::InvalidSignature { participants: 32 },
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn updates_signed_under_another_fork_version_are_rejected() {
    let err = rejected(Behaviour::WrongForkVersion).await;
    assert!(
        matches!(
            err,
            ClientError::Consensus {
                source: ConsensusError::InvalidSignature { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_forged_execution_header_is_rejected() {
    let err = rejected(Behaviour::TamperedExecution).await;
    assert!(
        matches!(
            err,
            ClientError::Consensus {
                source: ConsensusError::InvalidHeader { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("not proven into the block body"),
        "{err}"
    );
}

#[tokio::test]
async fn a_minority_of_signers_cannot_move_the_verified_head() {
    let anvil = Anvil::start().unwrap();
    let index = deployed(&anvil).await;
    let harness = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    let mut c = client(&harness).await;
    let n1 = index.publish(&release(1)).await.unwrap().block.unwrap();
    let at = sync_to(&mut c, n1).await;
    let verified = c.store.finalized_header.clone();
    let optimistic = c.store.optimistic_header.clone();

    // 8 of 32 members sign a newer header whose execution state root is forged.
    harness.set_behaviour(Behaviour::Minority);
    let n2 = index.publish(&release(2)).await.unwrap().block.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.head_block().unwrap() < n2 {
        assert!(Instant::now() < deadline, "the server never moved to block {n2}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let report = c.sync(now()).await.unwrap();
    assert_eq!(
        report.finalized_block,
        Some(at),
        "finality needs two thirds of the committee"
    );
    assert_eq!(c.store.finalized_header, verified);
    assert_eq!(
        c.store.optimistic_header, optimistic,
        "8 signers are below the safety threshold"
    );
    assert_ne!(
        c.store.finalized_header.execution.as_ref().unwrap().state_root,
        [0x66; 32],
        "the forged state root never became verified"
    );
    let (head, _) = proven_head(&anvil, &index, &c).await;
    assert_eq!(
        head,
        U256::from(1),
        "reads still come from the last verified block"
    );
}
