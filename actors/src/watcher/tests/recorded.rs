//! The IndexWatcher on recorded chain data: `testdata/watcher-anvil.json` holds every execution RPC answer
//! (headers, `eth_getProof`, `eth_getLogs`) that a watcher got from a real anvil chain with the real
//! FirmwareIndex with releases 1 and 2 live, then release 2 revoked.
//! The replay serves them back call by call, so these tests run the watcher on real chain data without a
//! chain; edited copies of the recording play a dishonest RPC and a dead one.
//!
//! To record it again (after a change to what the watcher asks or to the contract):
//! `FIRMCHAIN_RECORD_WATCHER=1 cargo nextest run -p firmchain-actors --run-ignored only record_the_watcher_on_anvil`

use std::path::PathBuf;
use std::process::Command;

use alloy::signers::local::PrivateKeySigner;
use firmchain_contracts::{DEFAULT_TIMEOUT, IndexClient, provider};
use firmchain_harness::{Proc, find_anvil};
use firmchain_lightclient::execution_rpc::HttpExecutionRpc;
use firmchain_lightclient::recorded::{RecordedCall, Recorder, Recording, Replay};

use super::*;

fn recording_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/watcher-anvil.json")
}

fn recording() -> Recording {
    Recording::load(&recording_path()).expect("the recording (see the module doc to make it)")
}

/// The index's address: the `eth_getProof` calls name it.
fn index_of(r: &Recording) -> Address {
    r.calls
        .iter()
        .find_map(|c| match c {
            RecordedCall::Proof { address, .. } => Some(*address),
            _ => None,
        })
        .expect("a proof call")
}

/// The session the recording was made of, as the lines each poll produced: releases 1 and 2 are live at the
/// first poll, release 2 is revoked before the second.
async fn session<E: ExecutionRpc + Clone + Unpin + 'static>(rpc: E, index: Address) -> Vec<Vec<String>> {
    let mut s = setup_at(rpc, index, 0);
    let first = lines_of_a_poll(&mut s).await;
    vec![first, poll(&mut s).await]
}

/// Makes `testdata/watcher-anvil.json` on a real anvil. Run by hand (see the module doc).
#[actix::test]
#[ignore = "records testdata from a real anvil; set FIRMCHAIN_RECORD_WATCHER=1"]
async fn record_the_watcher_on_anvil() {
    if std::env::var_os("FIRMCHAIN_RECORD_WATCHER").is_none() {
        return;
    }
    let mut cmd = Command::new(find_anvil(None));
    cmd.args(["--host", "127.0.0.1", "--port", "0", "--accounts", "1"]);
    let anvil = Proc::spawn("anvil", &mut cmd).unwrap();
    let mut key = None;
    let rpc = anvil
        .wait_line(Duration::from_secs(30), |l| {
            let l = l.trim();
            // "(0) 0x…" lines list the accounts first, then their private keys (66 characters).
            let second = l.split_whitespace().nth(1).filter(|k| k.len() == 66);
            if key.is_none() && l.starts_with("(0)") && second.is_some() {
                key = second.map(str::to_owned);
            }
            l.strip_prefix("Listening on ").map(|a| format!("http://{a}"))
        })
        .unwrap();
    let signer: PrivateKeySigner = key.unwrap().parse().unwrap();
    let me = signer.address();
    let index = IndexClient::deploy(provider(&rpc, Some(signer)).unwrap(), me, 1, DEFAULT_TIMEOUT)
        .await
        .unwrap();
    index.add_publisher(me, None).await.unwrap();
    let recorder = Recorder::new(HttpExecutionRpc::new(vec![rpc], Duration::from_secs(10)).unwrap());

    index.publish(&record(1)).await.unwrap();
    index.publish(&record(2)).await.unwrap();
    let mut s = setup_at(recorder.clone(), index.address(), 0);
    // The poll at start, then one after the revocation.
    let mut lines = lines_of_a_poll(&mut s).await;
    index
        .revoke(&product(), Sequence(2), "bricks rev B")
        .await
        .unwrap();
    lines.extend(poll(&mut s).await);
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("chain error") || l.starts_with("rejected")),
        "a recording must be of an honest session: {lines:?}"
    );
    recorder.recording().save(&recording_path()).unwrap();
}

#[actix::test]
async fn on_recorded_chain_data_releases_and_a_revocation_are_seen_once() {
    let r = recording();
    let replay = Replay::new("watcher-anvil.json", r.clone());
    let polls = session(replay.clone(), index_of(&r)).await;
    assert!(
        polls[0].contains(&"seen 1 revoked=false".to_owned()),
        "{:?}",
        polls[0]
    );
    assert!(
        polls[0].contains(&"seen 2 revoked=false".to_owned()),
        "{:?}",
        polls[0]
    );
    assert!(polls[1].contains(&"revoked 2".to_owned()), "{:?}", polls[1]);
    assert!(!polls[1].iter().any(|l| l.starts_with("seen")), "{:?}", polls[1]);
    for p in &polls {
        assert!(
            !p.iter()
                .any(|l| l.starts_with("chain error") || l.starts_with("rejected")),
            "{p:?}"
        );
    }
    assert_eq!(
        replay.position(),
        r.calls.len(),
        "the watcher asked exactly what it asked of anvil"
    );
}

/// The recorded `ReleasePublished` log of release 1 rewritten with another target hash, as a dishonest RPC
/// would serve it: the proven digest refuses it, and release 1 is named, never seen.
#[actix::test]
async fn on_recorded_chain_data_a_forged_event_is_refused() {
    let mut r = recording();
    let mut forged = false;
    for call in &mut r.calls {
        let RecordedCall::Logs { answer, .. } = call else {
            continue;
        };
        for log in answer.iter_mut() {
            let Ok(mut event) = FirmwareIndex::ReleasePublished::decode_log_data(&log.inner.data) else {
                continue;
            };
            if event.sequence == 1 {
                event.record.targetHash = B256::repeat_byte(0x66);
                log.inner.data = event.encode_log_data();
                forged = true;
            }
        }
    }
    assert!(forged, "the recording holds release 1's event");
    let polls = session(
        Replay::new("watcher-anvil.json (forged)", r.clone()),
        index_of(&r),
    )
    .await;
    let all: Vec<&String> = polls.iter().flatten().collect();
    assert!(!all.iter().any(|l| l.starts_with("seen 1")), "{all:?}");
    assert!(
        all.iter().any(|l| l.starts_with("seen 2")),
        "release 2 is untouched: {all:?}"
    );
    let why = all.iter().find(|l| l.starts_with("rejected")).expect("named");
    assert!(
        why.contains("release 1") && why.contains("proven digest"),
        "{why}"
    );
}

/// The RPC dies after the first poll (the recording ends there): the next poll is a chain error naming the
/// call, and nothing is seen.
#[actix::test]
async fn on_recorded_chain_data_an_rpc_error_is_reported() {
    let r = recording();
    let index = index_of(&r);
    let first_poll_calls = {
        let replay = Replay::new("probe", r.clone());
        let mut s = setup_at(replay.clone(), index, 0);
        lines_of_a_poll(&mut s).await;
        replay.position()
    };
    let mut cut = r.clone();
    cut.calls.truncate(first_poll_calls);
    let mut s = setup_at(Replay::new("watcher-anvil.json (cut)", cut), index, 0);
    lines_of_a_poll(&mut s).await;
    let lines = poll(&mut s).await;
    let err = lines
        .iter()
        .find(|l| l.starts_with("chain error"))
        .expect("an error");
    assert!(err.contains("recording ends"), "{err}");
    assert!(!lines.iter().any(|l| l.starts_with("seen")), "{lines:?}");
}
