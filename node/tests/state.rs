//! `firmchain state` and a damaged state store: the node refuses to start naming the key, `state show` names it,
//! `state reset KEY` is the way out.

mod common;
use common::NO_CHAIN;

use std::process::{Command, Output};

use firmchain_actors::state::{NodeState, StateKey};

fn firmchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firmchain"))
        .args(args)
        .env_remove("FIRMCHAIN_DATA_DIR")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `run` on `data` with a configuration that passes validation (nothing listens on the RPC: the node must stop
/// at its state store, before any network work).
fn run_node(data: &str) -> Output {
    firmchain(
        &[
            &["run", "--data", data][..],
            &NO_CHAIN,
            &["--set", "p2p.listen=/ip4/127.0.0.1/tcp/0", "--set", "api.listen="][..],
        ]
        .concat(),
    )
}

#[test]
fn a_damaged_state_store_stops_the_node_naming_the_key_until_it_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let product = "acme-sensor".parse().unwrap();
    {
        let state = NodeState::open(&dir.path().join("state.redb")).unwrap();
        state
            .record_rollback(
                &product,
                firmchain_update::Sequence(2),
                "health check exited with code 1",
            )
            .unwrap();
        state.put_raw(&StateKey::EventCursor, b"\x01\x02").unwrap();
    }

    let out = run_node(data);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("event_cursor") && err.contains("state.redb") && err.contains("damaged"),
        "{err}"
    );
    assert!(
        err.contains("firmchain state reset event_cursor"),
        "the way out is named: {err}"
    );

    let shown = firmchain(&["--json", "state", "show", "--data", data]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let entries = v["entries"].as_array().unwrap();
    let find = |k: &str| entries.iter().find(|e| e["key"] == k).cloned().unwrap();
    assert!(
        find("event_cursor")["damaged"]
            .as_str()
            .unwrap()
            .contains("2 bytes")
    );
    let rolled = find("rolled_back/acme-sensor");
    assert_eq!(rolled["value"][0]["sequence"], 2);
    assert_eq!(rolled["value"][0]["reason"], "health check exited with code 1");

    let bad = firmchain(&["state", "reset", "cursor", "--data", data]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("event_cursor"), "{}", stderr(&bad));

    let reset = firmchain(&["--json", "state", "reset", "event_cursor", "--data", data]);
    let v: serde_json::Value = serde_json::from_slice(&reset.stdout).unwrap();
    assert_eq!(v["removed"], true, "{}", stderr(&reset));

    // The store is whole again, and the reset touched one key.
    let state = NodeState::open(&dir.path().join("state.redb")).unwrap();
    state.check().unwrap();
    assert_eq!(state.rolled_back(&product).unwrap().len(), 1);
}
