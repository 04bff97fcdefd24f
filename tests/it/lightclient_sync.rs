//! The light client end to end on recorded mainnet data: through the file-backed RPC, and through the
//! real HTTP client against a local beacon API server (one dead endpoint first, then an honest one; and a
//! dishonest one).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use firmchain_lightclient::client::{ClientError, DEFAULT_WEAK_SUBJECTIVITY_SECONDS, LightClient};
use firmchain_lightclient::consensus::{ChainSpec, ConsensusError};
use firmchain_lightclient::rpc::{FileRpc, HttpRpc};

fn fixtures() -> PathBuf {
    firmchain_tests::workspace().join("../shared/fixtures/lightclient/mainnet-capella")
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
    let mut client = LightClient::start(
        ChainSpec::mainnet(),
        rpc,
        checkpoint(),
        now(),
        DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
        false,
    )
    .await
    .unwrap();
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

/// A tiny beacon API on 127.0.0.1 serving the fixture files; `tamper` edits an answer before it is sent.
fn serve(tamper: fn(&str, String) -> String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap_or_default();
            let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let file = ["bootstrap", "updates", "finality_update", "optimistic_update"]
                .into_iter()
                .find(|p| path.contains(p))
                .map(|p| match p {
                    "finality_update" => "finality.json",
                    "optimistic_update" => "optimistic.json",
                    "bootstrap" => "bootstrap.json",
                    _ => "updates.json",
                });
            let (status, body) = match file {
                Some(f) => (
                    "200 OK",
                    tamper(f, std::fs::read_to_string(fixtures().join(f)).unwrap()),
                ),
                None => ("404 Not Found", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[tokio::test]
async fn http_client_fails_over_and_syncs() {
    let honest = serve(|_, body| body);
    // Nothing listens on port 1 of loopback: the client moves on to the next endpoint.
    let rpc = HttpRpc::new(vec!["http://127.0.0.1:1".into(), honest], Duration::from_secs(10)).unwrap();
    let mut client = LightClient::start(
        ChainSpec::mainnet(),
        rpc,
        checkpoint(),
        now(),
        DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
        false,
    )
    .await
    .unwrap();
    let report = client.sync(now()).await.unwrap();
    assert_eq!(report.finalized_block, Some(17923026));
    assert_eq!(report.optimistic_block, Some(17923113));
}

#[tokio::test]
async fn a_dishonest_server_is_caught() {
    // The server swaps the finality update's finalized header for the attested one.
    let liar = serve(|file, body| {
        if file != "finality.json" {
            return body;
        }
        let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["finalized_header"] = v["data"]["attested_header"].clone();
        v.to_string()
    });
    let rpc = HttpRpc::new(vec![liar], Duration::from_secs(10)).unwrap();
    let mut client = LightClient::start(
        ChainSpec::mainnet(),
        rpc,
        checkpoint(),
        now(),
        DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
        false,
    )
    .await
    .unwrap();
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
