//! The rollout rules inside the machine: it never fetches or installs a release they hold back.

use super::*;
use crate::record::{HardwareClass, ReleaseTerms, RolloutSchedule};
use crate::rollout::DeviceId;
use proptest::prelude::*;

fn h(i: u8) -> Blake3Hash {
    Blake3Hash([i; 32])
}

fn product() -> ProductId {
    "acme-sensor".parse().unwrap()
}

fn class(i: u8) -> HardwareClass {
    HardwareClass([i; 32])
}

/// A full-image release `seq` with `terms`.
fn rel(seq: u64, terms: ReleaseTerms) -> ReleaseRecord {
    ReleaseRecord {
        product: product(),
        sequence: Sequence(seq),
        base_hash: Blake3Hash::ZERO,
        target_hash: h(seq as u8),
        target_size: 1000,
        patch_cid: vec![1],
        patch_hash: h(100 + seq as u8),
        patch_size: 100,
        kind: ReleaseKind::Full,
        min_sequence: 0,
        terms: Box::new(terms),
    }
}

fn device(name: &str, c: Option<u8>) -> Device {
    Device {
        id: DeviceId::from_name(name),
        class: c.map(class),
    }
}

fn machine(d: Device) -> UpdateMachine {
    UpdateMachine::new(
        product(),
        Installed {
            sequence: Sequence(0),
            hash: h(0),
        },
        Policy::default(),
    )
    .with_rollout(d)
}

fn gate(installable_at: u64) -> ReleaseGate {
    ReleaseGate {
        live_at: installable_at,
        installable_at,
        ..Default::default()
    }
}

fn fetches(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Fetch { record, .. } => Some(record.sequence.0),
            _ => None,
        })
        .collect()
}

fn see(m: &mut UpdateMachine, r: ReleaseRecord, g: Option<ReleaseGate>, now: u64) -> Vec<Action> {
    let seq = r.sequence;
    let mut out = m.handle(Input::ChainTime { now });
    out.extend(m.handle(Input::ReleaseSeen {
        record: r,
        revoked: false,
    }));
    if let Some(gate) = g {
        out.extend(m.handle(Input::RolloutProven { sequence: seq, gate }));
    }
    out
}

#[test]
fn without_a_proven_gate_nothing_is_fetched() {
    let mut m = machine(device("device-01", None));
    assert!(fetches(&see(&mut m, rel(1, ReleaseTerms::default()), None, 100)).is_empty());
    assert_eq!(m.hold(Sequence(1)), Some(Hold::Unproven));
    let a = m.handle(Input::RolloutProven {
        sequence: Sequence(1),
        gate: gate(100),
    });
    assert_eq!(fetches(&a), vec![1]);
}

#[test]
fn rules_off_keep_the_old_policy() {
    let mut m = UpdateMachine::new(
        product(),
        Installed {
            sequence: Sequence(0),
            hash: h(0),
        },
        Policy::default(),
    );
    let terms = ReleaseTerms {
        hardware: vec![class(9)],
        ..Default::default()
    };
    assert_eq!(fetches(&see(&mut m, rel(1, terms), None, 0)), vec![1]);
    assert_eq!(m.hold(Sequence(1)), None);
}

#[test]
fn another_hardware_class_never_fetches() {
    let terms = ReleaseTerms {
        hardware: vec![class(1), class(2)],
        ..Default::default()
    };
    let mut other = machine(device("device-01", Some(3)));
    assert!(fetches(&see(&mut other, rel(1, terms.clone()), Some(gate(0)), 10)).is_empty());
    assert_eq!(other.hold(Sequence(1)), Some(Hold::OtherHardware));
    let mut unset = machine(device("device-01", None));
    assert!(fetches(&see(&mut unset, rel(1, terms.clone()), Some(gate(0)), 10)).is_empty());
    let mut listed = machine(device("device-01", Some(2)));
    assert_eq!(
        fetches(&see(&mut listed, rel(1, terms), Some(gate(0)), 10)),
        vec![1]
    );
}

#[test]
fn an_expired_release_is_never_started() {
    let terms = ReleaseTerms {
        not_after: 1_000,
        ..Default::default()
    };
    let mut m = machine(device("device-01", None));
    assert!(fetches(&see(&mut m, rel(1, terms), Some(gate(0)), 1_000)).is_empty());
    assert_eq!(m.hold(Sequence(1)), Some(Hold::Expired { not_after: 1_000 }));
}

#[test]
fn expiry_during_a_fetch_cancels_it() {
    let terms = ReleaseTerms {
        not_after: 1_000,
        ..Default::default()
    };
    let mut m = machine(device("device-01", None));
    assert_eq!(fetches(&see(&mut m, rel(1, terms), Some(gate(0)), 999)), vec![1]);
    let a = m.handle(Input::ChainTime { now: 1_000 });
    assert_eq!(
        a,
        vec![Action::Cancel {
            sequence: Sequence(1)
        }]
    );
    let a = m.handle(Input::Fetched {
        sequence: Sequence(1),
        payload: Payload::Full,
    });
    assert!(a.is_empty(), "no install of an expired release: {a:?}");
}

#[test]
fn a_pause_stops_and_its_end_or_a_resume_continues() {
    let mut m = machine(device("device-01", None));
    let paused = ReleaseGate {
        product_paused_until: 500,
        ..gate(0)
    };
    assert!(fetches(&see(&mut m, rel(1, ReleaseTerms::default()), Some(paused), 100)).is_empty());
    assert_eq!(m.hold(Sequence(1)), Some(Hold::Paused { until: 500 }));
    // Resumed on chain: a new proof shows no pause.
    let a = m.handle(Input::RolloutProven {
        sequence: Sequence(1),
        gate: gate(0),
    });
    assert_eq!(fetches(&a), vec![1]);
    // Paused again while fetching: the fetch stops.
    let a = m.handle(Input::RolloutProven {
        sequence: Sequence(1),
        gate: ReleaseGate {
            release_paused_until: 900,
            ..gate(0)
        },
    });
    assert_eq!(
        a,
        vec![Action::Cancel {
            sequence: Sequence(1)
        }]
    );
    // The single-key pause runs out at chain time 900.
    assert_eq!(fetches(&m.handle(Input::ChainTime { now: 900 })), vec![1]);
}

#[test]
fn nothing_installs_before_the_delay_and_a_cancel_means_never() {
    let mut m = machine(device("device-01", None));
    let g = ReleaseGate {
        live_at: 100,
        installable_at: 100 + 3600,
        ..Default::default()
    };
    assert!(fetches(&see(&mut m, rel(1, ReleaseTerms::default()), Some(g), 100)).is_empty());
    assert_eq!(m.hold(Sequence(1)), Some(Hold::Delay { until: 3700 }));
    assert!(m.handle(Input::ChainTime { now: 3699 }).is_empty());
    // A guardian cancelled it inside the window: the proven revoked flag.
    m.handle(Input::Revoked {
        sequence: Sequence(1),
    });
    assert!(m.handle(Input::ChainTime { now: 1_000_000 }).is_empty());
    assert!(m.job().is_none());
}

#[test]
fn a_held_newest_release_leaves_an_older_one_installable() {
    let mut m = machine(device("device-01", None));
    see(&mut m, rel(1, ReleaseTerms::default()), Some(gate(0)), 10);
    let paused = ReleaseGate {
        release_paused_until: u64::MAX,
        ..gate(0)
    };
    let a = see(&mut m, rel(2, ReleaseTerms::default()), Some(paused), 10);
    assert!(fetches(&a).is_empty(), "still on release 1: {a:?}");
    assert_eq!(m.job().map(|j| j.sequence), Some(Sequence(1)));
}

#[test]
fn chain_time_never_goes_back() {
    let mut m = machine(device("device-01", None));
    m.handle(Input::ChainTime { now: 500 });
    m.handle(Input::ChainTime { now: 100 });
    assert_eq!(m.chain_time(), 500);
}

fn terms_strategy() -> impl Strategy<Value = ReleaseTerms> {
    (
        proptest::collection::btree_set(1u8..5, 0..3),
        prop_oneof![Just(0u64), 0u64..20_000],
        prop_oneof![
            Just(RolloutSchedule::FULL),
            (0u16..=10_000, 1u16..5_000, 1u64..5_000).prop_map(|(start_bps, step_bps, interval_secs)| {
                RolloutSchedule {
                    start_bps,
                    step_bps,
                    interval_secs,
                }
            }),
            (1u16..=10_000).prop_map(|start_bps| RolloutSchedule {
                start_bps,
                step_bps: 0,
                interval_secs: 0
            }),
        ],
    )
        .prop_map(|(classes, not_after, rollout)| ReleaseTerms {
            hardware: classes.into_iter().map(class).collect(),
            not_after,
            rollout,
            notes_cid: vec![],
        })
}

fn gate_strategy() -> impl Strategy<Value = ReleaseGate> {
    (
        0u64..10_000,
        0u64..5_000,
        prop_oneof![Just(0u64), 0u64..20_000],
        prop_oneof![Just(0u64), 0u64..20_000],
    )
        .prop_map(|(live_at, delay, p, r)| ReleaseGate {
            live_at,
            installable_at: live_at + delay,
            product_paused_until: p,
            release_paused_until: r,
        })
}

#[derive(Clone, Debug)]
enum Step {
    Time(u64),
    Prove(u64, ReleaseGate),
    Revoke(u64),
    FetchDone,
    InstallDone,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..25_000).prop_map(Step::Time),
        (1u64..=4, gate_strategy()).prop_map(|(s, g)| Step::Prove(s, g)),
        (1u64..=4).prop_map(Step::Revoke),
        Just(Step::FetchDone),
        Just(Step::InstallDone),
    ]
}

proptest! {
    /// Whatever the order of proofs, chain times and outcomes: every fetch and install the machine asks for,
    /// and the job it keeps, is of a release that the rules admit at the chain time and proven gate of that
    /// moment, and that is not revoked.
    #[test]
    fn never_installs_outside_the_rules(
        terms in proptest::collection::vec(terms_strategy(), 4),
        class_of_device in proptest::option::of(1u8..5),
        name in "[a-z]{1,8}",
        steps in proptest::collection::vec(step_strategy(), 1..40),
    ) {
        let dev = device(&name, class_of_device);
        let mut m = machine(dev);
        let records: Vec<ReleaseRecord> = terms.into_iter().enumerate().map(|(i, t)| rel(i as u64 + 1, t)).collect();
        let mut gates: BTreeMap<u64, ReleaseGate> = BTreeMap::new();
        let mut revoked = BTreeSet::new();
        let mut actions = Vec::new();
        for r in &records {
            actions.extend(m.handle(Input::ReleaseSeen { record: r.clone(), revoked: false }));
        }
        let mut installed = 0;
        for step in steps {
            let out = match step {
                Step::Time(t) => m.handle(Input::ChainTime { now: t }),
                Step::Prove(s, g) => {
                    gates.insert(s, g);
                    m.handle(Input::RolloutProven { sequence: Sequence(s), gate: g })
                }
                Step::Revoke(s) => {
                    revoked.insert(s);
                    m.handle(Input::Revoked { sequence: Sequence(s) })
                }
                Step::FetchDone => match m.job().cloned() {
                    Some(j) => m.handle(Input::Fetched { sequence: j.sequence, payload: j.payload }),
                    None => vec![],
                },
                Step::InstallDone => match actions.iter().rev().find_map(|a| match a {
                    Action::Install { record, .. } => Some(record.clone()),
                    _ => None,
                }) {
                    Some(r) if m.job().is_some_and(|j| j.sequence == r.sequence) => {
                        installed = r.sequence.0;
                        m.handle(Input::Installed { sequence: r.sequence, hash: r.target_hash })
                    }
                    _ => vec![],
                },
            };
            let now = m.chain_time();
            for a in &out {
                if let Action::Fetch { record, .. } | Action::Install { record, .. } = a {
                    let s = record.sequence.0;
                    let g = gates.get(&s);
                    prop_assert!(g.is_some(), "release {} started without a proven gate", s);
                    prop_assert!(!revoked.contains(&s), "release {} is revoked", s);
                    prop_assert_eq!(rollout::check(record, g.unwrap_or(&ReleaseGate::default()), &dev, now), Ok(()));
                    prop_assert!(s > installed);
                }
            }
            if let Some(j) = m.job() {
                let s = j.sequence.0;
                let r = &records[s as usize - 1];
                prop_assert!(gates.get(&s).is_some_and(|g| rollout::check(r, g, &dev, now).is_ok()),
                    "the machine keeps working on release {} that the rules hold back", s);
                prop_assert!(!revoked.contains(&s));
            }
            actions.extend(out);
        }
    }
}
