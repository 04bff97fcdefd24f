//! The light client end to end on recorded mainnet data: through the file-backed RPC, and through the
//! real HTTP client against a local beacon API server (one dead endpoint first, then an honest one; and a
//! dishonest one).

use std::path::PathBuf;
use std::time::Duration;

use firmchain_lightclient::client::{ClientError, DEFAULT_WEAK_SUBJECTIVITY_SECONDS, LightClient};
use firmchain_lightclient::consensus::{ChainSpec, ConsensusError};
use firmchain_lightclient::rpc::{FileRpc, HttpRpc};

fn fixtures() -> PathBuf {
    firmchain_tests::mainnet_lightclient_fixtures()
}

fn checkpoint() -> [u8; 32] {
    let mut c = [0u8; 32];
    alloy::hex::decode_to_slice(
        "5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275",
        &mut c,
    )
    .unwrap();
    c
}

/// A client bootstrapped from the recorded checkpoint, with the default window.
async fn started<R: firmchain_lightclient::rpc::ConsensusRpc>(rpc: R) -> LightClient<R> {
    let window = DEFAULT_WEAK_SUBJECTIVITY_SECONDS;
    LightClient::start(ChainSpec::mainnet(), rpc, checkpoint(), now(), window, false)
        .await
        .unwrap()
}

/// Just after the optimistic update's signature slot.
fn now() -> u64 {
    ChainSpec::mainnet().time_of(7109432) + 3
}

#[tokio::test]
async fn syncs_from_recorded_data_to_the_expected_heads() {
    let rpc = FileRpc {
        dir: fixtures(),
        slots_per_period: 8192,
    };
    let mut client = started(rpc).await;
    let report = client.sync(now()).await.unwrap();
    assert_eq!(
        (report.finalized_slot, report.finalized_block),
        (7109344, Some(17923026))
    );
    assert_eq!(
        (report.optimistic_slot, report.optimistic_block),
        (7109431, Some(17923113))
    );
    assert!(
        report.accepted >= 8,
        "6 period updates, finality and optimistic: {report:?}"
    );
    assert_eq!(
        client.staleness(now()),
        15,
        "the optimistic head's slot began 15 s ago"
    );
}

#[tokio::test]
async fn old_checkpoints_are_refused_unless_forced() {
    let rpc = || FileRpc {
        dir: fixtures(),
        slots_per_period: 8192,
    };
    let day = 24 * 3600;
    let err = LightClient::start(ChainSpec::mainnet(), rpc(), checkpoint(), now(), day, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::CheckpointTooOld {
                checkpoint_slot: 7069376,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("weak-subjectivity"));
    LightClient::start(ChainSpec::mainnet(), rpc(), checkpoint(), now(), day, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn http_client_fails_over_and_syncs() {
    let honest = firmchain_tests::serve_beacon_fixtures(|_, body| body);
    // Nothing listens on port 1 of loopback: the client moves on to the next endpoint.
    let rpc = HttpRpc::new(vec!["http://127.0.0.1:1".into(), honest], Duration::from_secs(10)).unwrap();
    let mut client = started(rpc).await;
    let report = client.sync(now()).await.unwrap();
    assert_eq!(report.finalized_block, Some(17923026));
    assert_eq!(report.optimistic_block, Some(17923113));
}

#[tokio::test]
async fn a_dishonest_server_is_caught() {
    // The server swaps the finality update's finalized header for the attested one.
    let liar = firmchain_tests::serve_beacon_fixtures(|file, body| {
        if file != "finality.json" {
            return body;
        }
        let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["finalized_header"] = v["data"]["attested_header"].clone();
        v.to_string()
    });
    let rpc = HttpRpc::new(vec![liar], Duration::from_secs(10)).unwrap();
    let mut client = started(rpc).await;
    let err = client.sync(now()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Consensus {
                source: ConsensusError::SlotOrder { .. } | ConsensusError::InvalidFinalityProof,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        client.store.finalized_header.beacon.slot < 7109344,
        "nothing from the forged update was applied"
    );
}

#[tokio::test]
async fn persisted_checkpoint_restarts_from_the_finalized_header() {
    let rpc = || FileRpc {
        dir: fixtures(),
        slots_per_period: 8192,
    };
    let mut client = started(rpc()).await;
    client.sync(now()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightclient.json");
    client.persisted().save(&path).unwrap();
    let saved = firmchain_lightclient::client::Persisted::load(&path).unwrap();
    assert_eq!(saved, client.persisted());
    assert_eq!(saved.finalized_block, Some(17923026));
    // The saved checkpoint is the finalized header's root: a restart bootstraps from it only if a server
    // has its bootstrap; the recorded server has only the original one, so the roots must differ and the
    // original bootstrap is refused for the saved checkpoint.
    let root = saved.checkpoint_root().unwrap();
    assert_ne!(root, checkpoint());
    let err = LightClient::start(
        ChainSpec::mainnet(),
        rpc(),
        root,
        now(),
        DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Consensus {
                source: ConsensusError::CheckpointMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
}
