use super::*;

fn product() -> ProductId {
    "acme-sensor".parse().unwrap()
}

fn persisted(checkpoint: &str) -> Persisted {
    Persisted {
        checkpoint: checkpoint.into(),
        finalized_slot: 64,
        finalized_block: Some(7),
        optimistic_slot: 70,
        optimistic_block: Some(9),
        period: Some(1),
        previous_max_active_participants: None,
        current_max_active_participants: Some(400),
    }
}

#[test]
fn state_survives_reopen_and_the_cursor_never_falls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let root = format!("0x{}", "ab".repeat(32));
    {
        let s = NodeState::open(&path).unwrap();
        assert_eq!(s.installed(&product()).unwrap(), None);
        s.set_installed(
            &product(),
            Installed {
                sequence: Sequence(3),
                hash: Blake3Hash([3; 32]),
            },
        )
        .unwrap();
        s.set_event_cursor(100).unwrap();
        s.set_event_cursor(50).unwrap();
        s.set_light_client(&persisted(&root)).unwrap();
        s.record_rollback(&product(), Sequence(4), "health check exited with code 1")
            .unwrap();
        s.record_rollback(&product(), Sequence(4), "again").unwrap();
        s.set_health_pending(&product(), Some(Sequence(5))).unwrap();
    }
    let s = NodeState::open(&path).unwrap();
    let i = s.installed(&product()).unwrap().unwrap();
    assert_eq!((i.sequence, i.hash), (Sequence(3), Blake3Hash([3; 32])));
    assert_eq!(s.event_cursor().unwrap(), 100, "the cursor never goes back");
    assert_eq!(s.light_client().unwrap(), Some(persisted(&root)));
    assert_eq!(
        s.rolled_back(&product()).unwrap(),
        vec![Rollback {
            sequence: 4,
            reason: "health check exited with code 1".into()
        }],
        "a release is recorded once, with its first reason"
    );
    assert_eq!(s.health_pending(&product()).unwrap(), Some(Sequence(5)));
    s.set_health_pending(&product(), None).unwrap();
    assert_eq!(s.health_pending(&product()).unwrap(), None);
    assert!(
        !s.entries()
            .unwrap()
            .iter()
            .any(|e| e.key.starts_with("health_pending")),
        "a cleared marker is removed, not written as empty bytes"
    );
    s.check().unwrap();
}

#[test]
fn keys_print_and_parse_back() {
    for key in [
        StateKey::Installed(product()),
        StateKey::RolledBack(product()),
        StateKey::HealthPending(product()),
        StateKey::LightClient,
        StateKey::EventCursor,
        StateKey::Proofs,
    ] {
        assert_eq!(key.to_string().parse::<StateKey>().unwrap(), key);
    }
    assert_eq!(
        StateKey::RolledBack(product()).to_string(),
        "rolled_back/acme-sensor"
    );
    for bad in ["installed", "rolled_back/", "cursor", "light_client/x"] {
        assert!(
            matches!(bad.parse::<StateKey>(), Err(StateError::UnknownKey(k)) if k == bad),
            "{bad}"
        );
    }
}

/// Each damaged value is an error naming the file and the key, never a default; `reset` clears it.
#[test]
fn a_damaged_value_is_an_error_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let s = NodeState::open(&path).unwrap();
    let p = product();
    let cases: [(StateKey, &[u8]); 7] = [
        (StateKey::Installed(p), b"short"),
        (StateKey::RolledBack(p), b"[1, \"x\""),
        (StateKey::HealthPending(p), b"\x01\x02"),
        (StateKey::LightClient, b"{\"checkpoint\": 1}"),
        (StateKey::EventCursor, b"\x01"),
        (StateKey::Proofs, b"{\"chain\": 7}"),
        (StateKey::CommitPending(p), b"{\"sequence\": 2}"),
    ];
    for (key, bytes) in cases {
        s.put_raw(&key, bytes).unwrap();
        let read = match key {
            StateKey::Installed(_) => s.installed(&p).map(drop),
            StateKey::RolledBack(_) => s.rolled_back(&p).map(drop),
            StateKey::HealthPending(_) => s.health_pending(&p).map(drop),
            StateKey::LightClient => s.light_client().map(drop),
            StateKey::EventCursor => s.event_cursor().map(drop),
            StateKey::Proofs => s.proofs().map(drop),
            StateKey::CommitPending(_) => s.commit_pending(&p).map(drop),
        };
        let err = read.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, StateError::Damaged { key: k, .. } if *k == key),
            "{msg}"
        );
        assert!(
            msg.contains(&key.to_string()) && msg.contains("state.redb"),
            "{msg}"
        );
        let check = s.check().unwrap_err().to_string();
        assert!(check.contains(&key.to_string()), "{check}");
        let shown = s.entries().unwrap();
        let e = shown.iter().find(|e| e.key == key.to_string()).unwrap();
        assert!(e.damaged.is_some() && e.value.is_none(), "{e:?}");
        assert!(s.reset(&key).unwrap());
        assert!(!s.reset(&key).unwrap(), "a second reset finds nothing");
        s.check().unwrap();
    }
}

/// Values written by earlier versions still read: a 48-byte product entry (with the dropped rollback floor),
/// a rolled-back list of bare sequences, an empty cleared marker.
#[test]
fn values_of_earlier_stores_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = NodeState::open(&dir.path().join("state.redb")).unwrap();
    let p = product();
    let mut old = Vec::new();
    old.extend_from_slice(&2u64.to_le_bytes());
    old.extend_from_slice(&[2; 32]);
    old.extend_from_slice(&2u64.to_le_bytes());
    s.put_raw(&StateKey::Installed(p), &old).unwrap();
    s.put_raw(&StateKey::RolledBack(p), b"[3]").unwrap();
    s.put_raw(&StateKey::HealthPending(p), b"").unwrap();
    assert_eq!(
        s.installed(&p).unwrap(),
        Some(Installed {
            sequence: Sequence(2),
            hash: Blake3Hash([2; 32])
        })
    );
    assert_eq!(s.rolled_back(&p).unwrap()[0].sequence, 3);
    assert_eq!(s.health_pending(&p).unwrap(), None);
    s.check().unwrap();
}

/// The pending commit of a two-phase install survives a reopen, shows in `state show`, and a damaged one stops
/// the node naming its key (never read as "nothing pending").
#[test]
fn a_pending_commit_survives_reopen_and_a_damaged_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let pending = PendingCommit {
        sequence: 2,
        hash: Blake3Hash([2; 32]).to_string(),
        installer: "rauc".into(),
        from_slot: "rootfs.0".into(),
        boot_id: "b00t-1".into(),
        at: 1_700_000_000,
    };
    {
        let s = NodeState::open(&path).unwrap();
        assert_eq!(s.commit_pending(&product()).unwrap(), None);
        s.set_commit_pending(&product(), Some(&pending)).unwrap();
    }
    let s = NodeState::open(&path).unwrap();
    assert_eq!(s.commit_pending(&product()).unwrap(), Some(pending));
    let key = "commit_pending/acme-sensor";
    let shown = s.entries().unwrap();
    let e = shown.iter().find(|e| e.key == key).unwrap();
    assert_eq!(e.value.as_ref().unwrap()["from_slot"], "rootfs.0");
    assert_eq!(
        key.parse::<StateKey>().unwrap(),
        StateKey::CommitPending(product())
    );
    s.set_commit_pending(&product(), None).unwrap();
    assert_eq!(s.commit_pending(&product()).unwrap(), None);

    s.put_raw(&StateKey::CommitPending(product()), br#"{"sequence":2}"#)
        .unwrap();
    let err = s.check().unwrap_err().to_string();
    assert!(err.contains(key) && err.contains("state reset"), "{err}");
}
