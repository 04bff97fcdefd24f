use super::*;
use proptest::prelude::*;

fn h(i: u8) -> Blake3Hash {
    Blake3Hash([i; 32])
}

fn product() -> ProductId {
    "acme-sensor".parse().unwrap()
}

/// Release `seq`: a patch from image `base` to image `seq` (or a full image when `base` is None).
fn rel(seq: u64, base: Option<u8>) -> ReleaseRecord {
    ReleaseRecord {
        product: product(),
        sequence: Sequence(seq),
        base_hash: base.map_or(Blake3Hash::ZERO, h),
        target_hash: h(seq as u8),
        target_size: 1000,
        patch_cid: vec![1],
        patch_hash: h(100 + seq as u8),
        patch_size: 100,
        kind: if base.is_some() {
            ReleaseKind::Patch
        } else {
            ReleaseKind::Full
        },
        min_sequence: 0,
        terms: Default::default(),
    }
}

fn machine(seq: u64, image: u8) -> UpdateMachine {
    UpdateMachine::new(
        product(),
        Installed {
            sequence: Sequence(seq),
            hash: h(image),
        },
        Policy::default(),
    )
}

fn seen(m: &mut UpdateMachine, r: ReleaseRecord) -> Vec<Action> {
    m.handle(Input::ReleaseSeen {
        record: r,
        revoked: false,
    })
}

fn fetch(seq: u64, payload: Payload, base: Option<u8>) -> Action {
    Action::Fetch {
        record: rel(seq, base),
        payload,
    }
}

#[test]
fn a_matching_patch_is_fetched_installed_and_done() {
    let mut m = machine(1, 1);
    assert_eq!(
        seen(&mut m, rel(2, Some(1))),
        vec![fetch(2, Payload::Patch, Some(1))]
    );
    let install = m.handle(Input::Fetched {
        sequence: Sequence(2),
        payload: Payload::Patch,
    });
    assert_eq!(
        install,
        vec![Action::Install {
            record: rel(2, Some(1)),
            payload: Payload::Patch
        }]
    );
    assert!(
        m.handle(Input::Installed {
            sequence: Sequence(2),
            hash: h(2)
        })
        .is_empty()
    );
    assert_eq!(m.installed().sequence, Sequence(2));
    // Old news changes nothing.
    assert!(seen(&mut m, rel(2, Some(1))).is_empty());
    assert!(seen(&mut m, rel(1, None)).is_empty());
}

#[test]
fn a_device_whose_base_does_not_match_takes_the_full_image() {
    let mut m = machine(1, 99);
    assert_eq!(
        seen(&mut m, rel(2, Some(1))),
        vec![fetch(2, Payload::Full, Some(1))]
    );
}

#[test]
fn other_products_are_ignored() {
    let mut m = machine(0, 0);
    let mut r = rel(1, None);
    r.product = "other".parse().unwrap();
    assert!(seen(&mut m, r).is_empty());
}

#[test]
fn an_offline_device_catches_up_by_a_chain_of_patches_or_the_full_image() {
    let mut m = machine(1, 1);
    m.handle(Input::ReleaseSeen {
        record: rel(2, Some(1)),
        revoked: false,
    });
    // Seen while busy with 2: 3 supersedes nothing yet, the chain 2 → 3 starts at 2.
    let a = seen(&mut m, rel(3, Some(2)));
    assert!(a.is_empty(), "{a:?}");
    m.handle(Input::Fetched {
        sequence: Sequence(2),
        payload: Payload::Patch,
    });
    let next = m.handle(Input::Installed {
        sequence: Sequence(2),
        hash: h(2),
    });
    assert_eq!(next, vec![fetch(3, Payload::Patch, Some(2))]);

    // A chain longer than max_chain: the newest release's full image instead.
    let mut far = machine(1, 1);
    let mut out = Vec::new();
    for s in 2..=7 {
        out = far.handle(Input::ReleaseSeen {
            record: rel(s, Some(s as u8 - 1)),
            revoked: false,
        });
    }
    assert_eq!(
        far.job().map(|j| (j.sequence, j.payload)),
        Some((Sequence(7), Payload::Full)),
        "{out:?}"
    );
}

#[test]
fn revoked_releases_are_never_installed() {
    let mut m = machine(1, 1);
    let a = m.handle(Input::ReleaseSeen {
        record: rel(2, Some(1)),
        revoked: true,
    });
    assert!(a.is_empty());
    // Revoked while being fetched: cancelled, and the previous good release (none here) stays.
    let mut m = machine(1, 1);
    seen(&mut m, rel(2, Some(1)));
    assert_eq!(
        m.handle(Input::Revoked {
            sequence: Sequence(2)
        }),
        vec![Action::Cancel {
            sequence: Sequence(2)
        }]
    );
    assert!(
        m.handle(Input::Fetched {
            sequence: Sequence(2),
            payload: Payload::Patch
        })
        .is_empty(),
        "a fetch that completes after the revocation is not installed"
    );
    // The newest is revoked: the one before it is the target.
    let mut m = machine(1, 1);
    m.handle(Input::ReleaseSeen {
        record: rel(3, Some(2)),
        revoked: true,
    });
    assert_eq!(
        seen(&mut m, rel(2, Some(1))),
        vec![fetch(2, Payload::Patch, Some(1))]
    );
}

#[test]
fn a_release_above_the_device_s_floor_waits_for_a_stepping_stone() {
    let mut m = machine(1, 1);
    let mut five = rel(5, None);
    five.min_sequence = 3;
    assert!(seen(&mut m, five.clone()).is_empty(), "nothing installable yet");
    assert_eq!(seen(&mut m, rel(3, None)), vec![fetch(3, Payload::Full, None)]);
    m.handle(Input::Fetched {
        sequence: Sequence(3),
        payload: Payload::Full,
    });
    assert_eq!(
        m.handle(Input::Installed {
            sequence: Sequence(3),
            hash: h(3)
        }),
        vec![Action::Fetch {
            record: five,
            payload: Payload::Full
        }]
    );
}

#[test]
fn failures_back_off_then_fall_back_to_the_full_image() {
    let mut m = machine(1, 1);
    seen(&mut m, rel(2, Some(1)));
    let fail = |m: &mut UpdateMachine, payload, now| {
        m.handle(Input::FetchFailed {
            sequence: Sequence(2),
            payload,
            now,
        })
    };
    assert!(fail(&mut m, Payload::Patch, 100).is_empty());
    assert!(m.handle(Input::Tick { now: 104 }).is_empty(), "5 s backoff");
    assert_eq!(
        m.handle(Input::Tick { now: 105 }),
        vec![fetch(2, Payload::Patch, Some(1))]
    );
    assert!(fail(&mut m, Payload::Patch, 200).is_empty());
    assert!(m.handle(Input::Tick { now: 209 }).is_empty(), "10 s backoff");
    assert_eq!(
        m.handle(Input::Tick { now: 210 }),
        vec![fetch(2, Payload::Patch, Some(1))]
    );
    // Third failure: the full image, right away.
    assert_eq!(
        fail(&mut m, Payload::Patch, 300),
        vec![fetch(2, Payload::Full, Some(1))]
    );
    // Full images are retried for ever, at most every 10 minutes.
    for i in 0..20 {
        fail(&mut m, Payload::Full, 1000 * i);
    }
    assert!(m.handle(Input::Tick { now: 19_000 + 599 }).is_empty());
    assert_eq!(
        m.handle(Input::Tick { now: 19_000 + 600 }),
        vec![fetch(2, Payload::Full, Some(1))]
    );
}

#[test]
fn a_rolled_back_release_is_not_retried_but_a_newer_one_is() {
    let mut m = machine(1, 1);
    seen(&mut m, rel(2, Some(1)));
    m.handle(Input::Fetched {
        sequence: Sequence(2),
        payload: Payload::Patch,
    });
    assert!(
        m.handle(Input::RolledBack {
            sequence: Sequence(2)
        })
        .is_empty()
    );
    assert!(m.handle(Input::Tick { now: 1_000_000 }).is_empty());
    assert_eq!(m.rolled_back().collect::<Vec<_>>(), vec![Sequence(2)]);
    // 3 patches from 2, which this device does not run: its full image.
    assert_eq!(
        seen(&mut m, rel(3, Some(2))),
        vec![fetch(3, Payload::Full, Some(2))]
    );
}

/// A transient install fault (I/O, a full disk) is retried with backoff, from the fetch on, and never counts as a
/// rollback.
#[test]
fn a_transient_install_failure_is_retried_with_backoff_not_rolled_back() {
    let mut m = machine(1, 1);
    seen(&mut m, rel(2, Some(1)));
    m.handle(Input::Fetched {
        sequence: Sequence(2),
        payload: Payload::Patch,
    });
    let failed = m.handle(Input::InstallFailed {
        sequence: Sequence(2),
        now: 1000,
    });
    assert!(failed.is_empty(), "nothing before the backoff: {failed:?}");
    assert_eq!(m.rolled_back().count(), 0);
    assert_eq!(m.job().map(|j| j.failures), Some(1));
    assert!(m.handle(Input::Tick { now: 1004 }).is_empty());
    assert_eq!(
        m.handle(Input::Tick { now: 1005 }),
        vec![fetch(2, Payload::Patch, Some(1))]
    );
    m.handle(Input::Fetched {
        sequence: Sequence(2),
        payload: Payload::Patch,
    });
    // A second failure waits twice as long.
    m.handle(Input::InstallFailed {
        sequence: Sequence(2),
        now: 2000,
    });
    assert!(m.handle(Input::Tick { now: 2009 }).is_empty());
    assert_eq!(m.handle(Input::Tick { now: 2010 }).len(), 1);
    // A stale report (no install in progress) changes nothing.
    let job = m.job().cloned();
    m.handle(Input::InstallFailed {
        sequence: Sequence(2),
        now: 3000,
    });
    assert_eq!(m.job().cloned(), job);
}

#[test]
fn a_newer_release_supersedes_one_being_fetched_but_not_one_being_installed() {
    let mut m = machine(1, 1);
    seen(&mut m, rel(2, None));
    assert_eq!(
        seen(&mut m, rel(3, None)),
        vec![
            Action::Cancel {
                sequence: Sequence(2)
            },
            fetch(3, Payload::Full, None)
        ]
    );
    m.handle(Input::Fetched {
        sequence: Sequence(3),
        payload: Payload::Full,
    });
    assert!(seen(&mut m, rel(4, None)).is_empty(), "installing 3 goes on");
    assert_eq!(
        m.handle(Input::Installed {
            sequence: Sequence(3),
            hash: h(3)
        }),
        vec![fetch(4, Payload::Full, None)]
    );
}

proptest! {
    /// Whatever happens, an Install is only ever for a release that was fetched with that payload, is newer than
    /// what runs, not revoked and not rolled back.
    #[test]
    fn installs_are_always_fetched_newer_unrevoked_and_not_rolled_back(
        steps in proptest::collection::vec((0u8..7, 1u64..8, any::<bool>(), 0u64..50), 1..60)
    ) {
        let mut m = machine(1, 1);
        let mut revoked = BTreeSet::new();
        let mut rolled = BTreeSet::new();
        let mut fetched = BTreeSet::new();
        let mut now = 0;
        for (kind, seq, flag, dt) in steps {
            now += dt;
            let payload = if flag { Payload::Patch } else { Payload::Full };
            let input = match kind {
                0 => Input::ReleaseSeen { record: rel(seq, if flag { Some(seq as u8 - 1) } else { None }), revoked: false },
                1 => { revoked.insert(seq); Input::Revoked { sequence: Sequence(seq) } }
                2 => { fetched.insert((seq, payload)); Input::Fetched { sequence: Sequence(seq), payload } }
                3 => Input::FetchFailed { sequence: Sequence(seq), payload, now },
                4 => Input::Installed { sequence: Sequence(seq.max(m.installed().sequence.0)), hash: h(seq as u8) },
                5 => { rolled.insert(seq); Input::RolledBack { sequence: Sequence(seq) } }
                _ => Input::Tick { now },
            };
            let before = m.installed().sequence;
            for a in m.handle(input) {
                if let Action::Install { record, payload } = a {
                    let s = record.sequence.0;
                    prop_assert!(fetched.contains(&(s, payload)));
                    prop_assert!(record.sequence > before);
                    prop_assert!(!revoked.contains(&s));
                    prop_assert!(!rolled.contains(&s));
                }
            }
        }
    }

    /// With honest outcomes, a device converges on the newest release that is not revoked, whatever it ran
    /// before, in whatever order it learns of the releases.
    #[test]
    fn honest_outcomes_converge_on_the_newest_unrevoked_release(
        releases in proptest::collection::vec((any::<bool>(), any::<bool>()), 1..10),
        start_image in 0u8..3,
        order in proptest::collection::vec(any::<u16>(), 10),
    ) {
        let mut m = machine(0, start_image);
        let mut records: Vec<(ReleaseRecord, bool)> = releases
            .iter()
            .enumerate()
            .map(|(i, (patch, revoked))| {
                let seq = i as u64 + 1;
                (rel(seq, patch.then_some(seq as u8 - 1)), *revoked)
            })
            .collect();
        let expected = records.iter().rev().find(|(_, r)| !r).map(|(r, _)| r.sequence);
        records.sort_by_key(|(r, _)| order.get(r.sequence.0 as usize).copied().unwrap_or(0));
        let mut queue: Vec<Action> = Vec::new();
        for (record, revoked) in records {
            queue.extend(m.handle(Input::ReleaseSeen { record, revoked }));
        }
        let mut steps = 0;
        while let Some(a) = queue.pop() {
            steps += 1;
            prop_assert!(steps < 200, "no convergence");
            let input = match a {
                Action::Fetch { record, payload } => Input::Fetched { sequence: record.sequence, payload },
                Action::Install { record, .. } => Input::Installed { sequence: record.sequence, hash: record.target_hash },
                Action::Cancel { .. } => continue,
            };
            queue.extend(m.handle(input));
        }
        prop_assert_eq!(Some(m.installed().sequence).filter(|s| s.0 > 0), expected);
    }
}
