use firmchain_config::Sources;

use super::*;
use crate::state::StateKey;

fn config(data: &Path) -> Config {
    Config::load(&Sources {
        toml: Some(format!(
            "data_dir = {data:?}\n[chain]\nmode = \"rpc\"\nexecution_rpc = [\"http://127.0.0.1:9\"]\n\
             contract = \"0x5FbDB2315678afecb367f032c93F642f64180aa3\"\nproduct = \"acme-sensor\"\n\
             [p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n[api]\nlisten = \"\"\n"
        )),
        ..Sources::default()
    })
    .unwrap()
}

/// A damaged state store: the node does not start, and the error names the file and the key.
#[actix::test]
async fn a_damaged_state_store_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let product = "acme-sensor".parse().unwrap();
    {
        let state = NodeState::open(&dir.path().join("state.redb")).unwrap();
        state.put_raw(&StateKey::RolledBack(product), b"[1,").unwrap();
    }
    let err = Node::start(NodeConfig::new(config(dir.path()), None).unwrap())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            NodeError::State(StateError::Damaged {
                key: StateKey::RolledBack(_),
                ..
            })
        ),
        "{msg}"
    );
    assert!(
        msg.contains("rolled_back/acme-sensor") && msg.contains("state.redb"),
        "{msg}"
    );
    assert!(
        !dir.path().join("identity.key").exists(),
        "nothing else was started or created"
    );
}

/// The repository role needs its signer before anything starts.
#[actix::test]
async fn a_repository_without_a_signer_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.repository = true;
    let err = Node::start(NodeConfig::new(c, None).unwrap()).await.unwrap_err();
    assert!(matches!(err, NodeError::NoSigner), "{err}");
}

/// `p2p.fetch_window` bounds the blocks in flight of every fetch, from all peers together; at 0, the full
/// build keeps the p2p defaults and a device build the device's window.
#[test]
fn the_fetch_window_bounds_the_blocks_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.p2p.fetch_window = 4;
    let s = p2p_config(&c).unwrap().fetch.schedule;
    assert_eq!((s.window, s.max_in_flight), (4, 4));
    c.p2p.fetch_window = 0;
    let s = p2p_config(&c).unwrap().fetch.schedule;
    let defaults = ScheduleConfig::default();
    if cfg!(feature = "repository") {
        assert_eq!(
            (s.window, s.max_in_flight),
            (defaults.window, defaults.max_in_flight)
        );
    } else {
        let w = firmchain_config::DEVICE_FETCH_WINDOW as usize;
        assert_eq!((s.window, s.max_in_flight), (w, w));
    }
}
