//! Trust on real networks, against real anvil and the sync-committee harness: a minority of the committee
//! authorises nothing (from the very first sync and after a restart mid-sync), a lying first endpoint is
//! demoted for the honest second (beacon and execution), and an execution RPC that rewrites the block numbers
//! of events cannot move the event cursor.

use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use firmchain_contracts::IndexClient;
use firmchain_contracts::events::{DEFAULT_LOOKBACK, next_cursor};
use firmchain_contracts::proven::{AtBlock, read_head, read_releases, with_failover};
use firmchain_lightclient::client::{DEFAULT_WEAK_SUBJECTIVITY_SECONDS, LightClient};
use firmchain_lightclient::consensus::{ChainSpec, bootstrap, process_update};
use firmchain_lightclient::execution::verify_header;
use firmchain_lightclient::execution_rpc::{ExecutionRpc, HttpExecutionRpc};
use firmchain_lightclient::rpc::{ConsensusRpc, HttpRpc};
use firmchain_tests::Anvil;
use firmchain_tests::beacon::{BeaconHarness, Behaviour};
use firmchain_tests::fleet::TamperingRpc;
use firmchain_update::{ReleaseRecord, Sequence};

const T: Duration = Duration::from_secs(30);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn release(seq: u64) -> ReleaseRecord {
    firmchain_tests::sample_release(seq, format!("image {seq}").as_bytes())
}

fn root(hex: &str) -> [u8; 32] {
    let mut r = [0u8; 32];
    hex::decode_to_slice(hex.trim_start_matches("0x"), &mut r).unwrap();
    r
}

fn rpc(urls: &[&str]) -> HttpRpc {
    HttpRpc::new(
        urls.iter().map(|u| u.to_string()).collect(),
        Duration::from_secs(10),
    )
    .unwrap()
}

async fn start(h: &BeaconHarness, urls: &[&str]) -> LightClient<HttpRpc> {
    let spec = ChainSpec::from_config(&h.config).unwrap();
    LightClient::start(
        spec,
        rpc(urls),
        root(&h.checkpoint),
        now(),
        DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
        false,
    )
    .await
    .unwrap()
}

/// Wait until the harness serves a head carrying block `n` or later.
async fn served(h: &BeaconHarness, n: u64) {
    let deadline = Instant::now() + T;
    while h.head_block().unwrap() < n {
        assert!(Instant::now() < deadline, "the server never moved to block {n}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sync until the authorised header carries block `n` or later.
async fn sync_to(c: &mut LightClient<HttpRpc>, n: u64) {
    let deadline = Instant::now() + T;
    loop {
        let report = c.sync(now()).await.unwrap();
        if report.authorised_block.unwrap_or(0) >= n && report.finalized_block.unwrap_or(0) >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stuck at {report:?}, waiting for block {n}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The spec's store fed the same data, as the client kept it before supermajority authorisation: a fresh
/// bootstrap has participation maxima of 0, so 8 of 32 signers move its optimistic head onto a forged state.
async fn spec_store_is_fooled(h: &BeaconHarness, checkpoint: [u8; 32]) {
    let spec = ChainSpec::from_config(&h.config).unwrap();
    let r = rpc(&[&h.url]);
    let mut raw = bootstrap(&spec, &checkpoint, &r.bootstrap(checkpoint).await.unwrap()).unwrap();
    let u = r.optimistic_update().await.unwrap();
    process_update(&spec, &mut raw, &u, spec.slot_at(now())).unwrap();
    assert_eq!(
        raw.optimistic_header.execution.as_ref().unwrap().state_root,
        [0x66; 32],
        "the attack is real against the plain spec store"
    );
}

async fn deployed(anvil: &Anvil) -> IndexClient {
    firmchain_tests::index_with_publisher(anvil).await.unwrap()
}

#[tokio::test]
async fn a_minority_from_the_first_sync_authorises_nothing() {
    let anvil = Anvil::start().unwrap();
    let index = deployed(&anvil).await;
    let harness = BeaconHarness::start(&anvil.url, Behaviour::Minority).unwrap();
    let mut c = start(&harness, &[&harness.url]).await;
    let boot = c.store.finalized_header.clone();
    let n = index.publish(&release(1)).await.unwrap().block.unwrap();
    served(&harness, n).await;

    let report = c.sync(now()).await.unwrap();
    assert_eq!(c.authorised_header(), &boot, "only the checkpoint is trusted");
    assert_eq!(
        c.store.optimistic_header, boot,
        "8 of 32 signers cannot move even the optimistic head"
    );
    assert_eq!(report.authorised_block, Some(0));
    let withheld = report.withheld.expect("the reason is reported");
    assert_eq!((withheld.participants, withheld.committee_size), (8, 32));
    assert!(withheld.to_string().contains("8 of 32"), "{withheld}");
    spec_store_is_fooled(&harness, root(&harness.checkpoint)).await;
}

#[tokio::test]
async fn a_minority_after_a_restart_mid_sync_authorises_nothing() {
    let anvil = Anvil::start().unwrap();
    let index = deployed(&anvil).await;
    let harness = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    let mut c = start(&harness, &[&harness.url]).await;
    let n1 = index.publish(&release(1)).await.unwrap().block.unwrap();
    sync_to(&mut c, n1).await;
    let saved = c.persisted();
    assert_eq!(saved.current_max_active_participants, Some(32));
    drop(c);

    // The device restarts; from now on only 8 of the 32 members sign, over a forged state root.
    harness.set_behaviour(Behaviour::Minority);
    let n2 = index.publish(&release(2)).await.unwrap().block.unwrap();
    served(&harness, n2).await;
    let spec = ChainSpec::from_config(&harness.config).unwrap();
    let mut c = LightClient::resume(
        spec,
        rpc(&[&harness.url]),
        Some(root(&harness.checkpoint)),
        Some(&saved),
        now(),
        DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        c.store.finalized_header.beacon.slot, saved.finalized_slot,
        "the persisted checkpoint is newer than the configured one"
    );
    assert_eq!(c.store.current_max_active_participants, 32, "maxima survive");
    let resumed = c.store.finalized_header.clone();
    let report = c.sync(now()).await.unwrap();
    assert_eq!(c.authorised_header(), &resumed);
    assert_eq!(c.store.optimistic_header, resumed);
    assert!(report.authorised_block.unwrap() < n2);
    assert!(report.withheld.is_some());
    spec_store_is_fooled(&harness, root(&saved.checkpoint)).await;
}

#[tokio::test]
async fn a_lying_first_beacon_endpoint_is_demoted_for_the_honest_second() {
    let anvil = Anvil::start().unwrap();
    let index = deployed(&anvil).await;
    let liar = BeaconHarness::start(&anvil.url, Behaviour::ForeignKeys).unwrap();
    let honest = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    assert_eq!(
        liar.checkpoint, honest.checkpoint,
        "same committee, same bootstrap"
    );
    let mut c = start(&honest, &[&liar.url, &honest.url]).await;
    let n = index.publish(&release(1)).await.unwrap().block.unwrap();
    sync_to(&mut c, n).await;
    let demoted = c.demotions();
    assert_eq!(demoted.len(), 1, "{demoted:?}");
    assert_eq!(demoted[0].endpoint, liar.url);
    assert!(demoted[0].reason.contains("rejected"), "{}", demoted[0].reason);
}

async fn verified(rpc: &HttpExecutionRpc) -> AtBlock {
    let (header, hash) = rpc.header(BlockNumberOrTag::Latest).await.unwrap();
    verify_header(&header, hash).unwrap();
    AtBlock {
        number: header.number,
        state_root: header.state_root,
    }
}

#[tokio::test]
async fn a_lying_first_execution_endpoint_is_demoted_for_the_honest_second() {
    let anvil = Anvil::start().unwrap();
    let index = deployed(&anvil).await;
    index.publish(&release(1)).await.unwrap();
    let forge = |answer: &mut serde_json::Value| {
        for p in answer["result"]["storageProof"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            p["value"] = serde_json::Value::String("0x5".into());
        }
    };
    let liar = TamperingRpc::start(&anvil.url, "eth_getProof", forge).unwrap();
    let rpc =
        HttpExecutionRpc::new(vec![liar.url.clone(), anvil.url.clone()], Duration::from_secs(10)).unwrap();
    let at = verified(&rpc).await;
    let product = release(1).product;
    let read = |r| read_head(r, index.address(), &product, at.number, at.state_root);
    let err = read(&rpc).await.unwrap_err();
    assert!(err.to_string().contains("verification failed"), "{err}");
    let head = with_failover(&rpc, read).await.unwrap();
    assert_eq!(head.sequence, Sequence(1));
    assert_eq!(head.digest.0, release(1).digest());
    let demoted = rpc.demotions();
    assert_eq!(demoted.len(), 1, "{demoted:?}");
    assert_eq!(demoted[0].endpoint, liar.url);
    assert!(
        demoted[0].reason.contains("storage proof"),
        "{}",
        demoted[0].reason
    );
}

#[tokio::test]
async fn an_event_claiming_block_ten_to_the_twelve_cannot_move_the_cursor() {
    let anvil = Anvil::start().unwrap();
    let index = deployed(&anvil).await;
    let n1 = index.publish(&release(1)).await.unwrap().block.unwrap();
    let forge = |answer: &mut serde_json::Value| {
        for log in answer["result"].as_array_mut().into_iter().flatten() {
            log["blockNumber"] = serde_json::Value::String(format!("{:#x}", 1_000_000_000_000u64));
        }
    };
    let liar = TamperingRpc::start(&anvil.url, "eth_getLogs", forge).unwrap();
    let rpc = HttpExecutionRpc::new(vec![liar.url.clone()], Duration::from_secs(10)).unwrap();
    let at = verified(&rpc).await;
    let product = release(1).product;
    let head = read_head(&rpc, index.address(), &product, at.number, at.state_root)
        .await
        .unwrap();
    let r = read_releases(&rpc, index.address(), &product, Sequence(0), head.sequence, 0, at)
        .await
        .unwrap();
    // The record is proven, so the release counts; where the event sits is not believed.
    assert_eq!(r.found.len(), 1, "{r:?}");
    let block = r.found[0].0;
    assert!(
        block <= at.number,
        "the event's block {block} is beyond the verified {}",
        at.number
    );
    assert!(r.lies.iter().any(|l| l.contains("1000000000000")), "{:?}", r.lies);
    let cursor = next_cursor(0, 0, at.number, DEFAULT_LOOKBACK, Some(block), Some(at.number));
    assert!(cursor <= n1, "cursor {cursor} skips the event at {n1}");
    // A cursor that an earlier version persisted from the lie comes back down on an honest RPC.
    let honest = HttpExecutionRpc::new(vec![anvil.url.clone()], Duration::from_secs(10)).unwrap();
    let at = verified(&honest).await;
    let cursor = next_cursor(
        1_000_000_000_000,
        0,
        at.number,
        DEFAULT_LOOKBACK,
        None,
        Some(at.number),
    );
    assert!(cursor <= at.number);
    let again = read_releases(
        &honest,
        index.address(),
        &product,
        Sequence(0),
        head.sequence,
        cursor.min(n1),
        at,
    )
    .await
    .unwrap();
    assert_eq!(again.found.len(), 1);
    assert_eq!(
        again.found[0].0, n1,
        "the honest RPC's block is verified and kept"
    );
    assert!(again.lies.is_empty());
}

#[tokio::test]
async fn a_newer_configured_checkpoint_wins_over_the_persisted_one() {
    let anvil = Anvil::start().unwrap();
    let index = deployed(&anvil).await;
    let harness = BeaconHarness::start(&anvil.url, Behaviour::Honest).unwrap();
    let mut c = start(&harness, &[&harness.url]).await;
    let n1 = index.publish(&release(1)).await.unwrap().block.unwrap();
    sync_to(&mut c, n1).await;
    let old = c.persisted();
    let n2 = index.publish(&release(2)).await.unwrap().block.unwrap();
    sync_to(&mut c, n2).await;
    // The operator configures a fresher checkpoint (say, after the device was offline too long).
    let fresh = c.persisted();
    assert!(fresh.finalized_slot > old.finalized_slot);
    let spec = ChainSpec::from_config(&harness.config).unwrap();
    let resumed = LightClient::resume(
        spec,
        rpc(&[&harness.url]),
        fresh.checkpoint_root(),
        Some(&old),
        now(),
        DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
        false,
    )
    .await
    .unwrap();
    assert_eq!(resumed.store.finalized_header.beacon.slot, fresh.finalized_slot);
    assert!(
        resumed
            .authorised_header()
            .execution
            .as_ref()
            .unwrap()
            .block_number
            >= n2
    );
}
