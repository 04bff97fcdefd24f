use super::*;
use crate::record::{ParseRolloutError, ReleaseTerms, RolloutSchedule};
use crate::{Blake3Hash, ProductId, ReleaseKind, Sequence};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    digest: String,
    shares: Vec<ShareVector>,
    eligibility: Vec<DeviceVector>,
}

#[derive(Deserialize)]
struct ShareVector {
    start: u16,
    step: u16,
    interval: String,
    installable_at: String,
    time: String,
    share: u16,
}

#[derive(Deserialize)]
struct DeviceVector {
    name: String,
    id: String,
    place: String,
    min_share: u16,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("../../testdata/rollout-vectors.json")).unwrap()
}

fn b32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim_start_matches("0x"), &mut out).unwrap();
    out
}

#[test]
fn shares_follow_the_shared_vectors() {
    for v in vectors().shares {
        let s = RolloutSchedule {
            start_bps: v.start,
            step_bps: v.step,
            interval_secs: v.interval.parse().unwrap(),
        };
        let (at, now) = (v.installable_at.parse().unwrap(), v.time.parse().unwrap());
        assert_eq!(s.share_at(at, now), v.share, "{s} at {now}");
    }
}

#[test]
fn places_follow_the_shared_vectors() {
    let v = vectors();
    let digest = b32(&v.digest);
    for d in v.eligibility {
        let id = DeviceId::from_name(&d.name);
        assert_eq!(id.0, b32(&d.id), "id of {}", d.name);
        let p = place(&id, &digest);
        assert_eq!(p.to_string(), d.place, "place of {}", d.name);
        assert_eq!(min_share(p), d.min_share, "min share of {}", d.name);
        assert!(
            inside(p, d.min_share) && !inside(p, d.min_share - 1),
            "{}",
            d.name
        );
    }
}

#[test]
fn share_edges() {
    assert!(!inside(0, 0), "a zero share holds everyone");
    assert!(inside(u64::MAX, FULL_SHARE), "the whole fleet holds everyone");
    assert_eq!(min_share(0), 1);
    assert_eq!(min_share(u64::MAX), FULL_SHARE);
    let s: RolloutSchedule = "10%,+20%/1h".parse().unwrap();
    assert_eq!(s.share_at(100, 99), 0, "nothing before it is installable");
    assert_eq!(s.next_step_at(100, 99), Some(100));
    assert_eq!(s.next_step_at(100, 100), Some(3700));
    assert_eq!(s.share_at(100, 100 + 5 * 3600), FULL_SHARE);
    assert_eq!(s.next_step_at(100, 100 + 5 * 3600), None, "full: no further step");
    assert_eq!(RolloutSchedule::FULL.next_step_at(0, 5), None);
    let huge = RolloutSchedule {
        start_bps: 0,
        step_bps: 1,
        interval_secs: 1,
    };
    assert_eq!(huge.share_at(0, u64::MAX), FULL_SHARE, "no overflow");
}

#[test]
fn rollout_strings() {
    let s: RolloutSchedule = "10%,+20%/1h".parse().unwrap();
    assert_eq!(
        s,
        RolloutSchedule {
            start_bps: 1000,
            step_bps: 2000,
            interval_secs: 3600
        }
    );
    assert_eq!(s.to_string(), "10%,+20%/1h");
    for text in ["100%", "2.5%", "0.01%,+0.5%/90s", "25%,+25%/30m", "0%,+100%/1d"] {
        let s: RolloutSchedule = text.parse().unwrap();
        assert_eq!(s.to_string(), text);
    }
    assert_eq!("0%".parse::<RolloutSchedule>(), Err(ParseRolloutError::Nobody));
    assert_eq!(
        "101%".parse::<RolloutSchedule>(),
        Err(ParseRolloutError::ShareAboveAll(10100))
    );
    for bad in [
        "10",
        "10%,20%/1h",
        "10%,+20%",
        "10%,+20%/1x",
        "10%,+20%/0h",
        "1.234%",
        "-1%",
        "",
    ] {
        assert!(bad.parse::<RolloutSchedule>().is_err(), "{bad:?}");
    }
}

#[test]
fn hardware_class_names() {
    let c: HardwareClass = "acme-board-rev-b".parse().unwrap();
    assert_eq!(c.to_string(), "acme-board-rev-b");
    let raw = HardwareClass([0xff; 32]);
    assert_eq!(raw.to_string().parse::<HardwareClass>().unwrap(), raw);
    for bad in [
        "",
        "with space",
        &"x".repeat(33),
        &format!("0x{}", "00".repeat(32)),
    ] {
        assert!(bad.parse::<HardwareClass>().is_err(), "{bad:?}");
    }
}

fn record(terms: ReleaseTerms) -> ReleaseRecord {
    ReleaseRecord {
        product: ProductId([7; 32]),
        sequence: Sequence(3),
        base_hash: Blake3Hash::ZERO,
        target_hash: Blake3Hash([1; 32]),
        target_size: 10,
        patch_cid: vec![1],
        patch_hash: Blake3Hash([2; 32]),
        patch_size: 10,
        kind: ReleaseKind::Full,
        min_sequence: 0,
        terms: Box::new(terms),
    }
}

fn class(name: &str) -> HardwareClass {
    name.parse().unwrap()
}

#[test]
fn every_rule_names_itself() {
    let rev_a = class("rev-a");
    let device = |c: Option<HardwareClass>| Device {
        id: DeviceId::from_name("device-01"),
        class: c,
    };
    let terms = ReleaseTerms {
        hardware: vec![rev_a],
        not_after: 10_000,
        rollout: RolloutSchedule::FULL,
        notes_cid: vec![],
    };
    let r = record(terms.clone());
    let gate = ReleaseGate {
        live_at: 100,
        installable_at: 200,
        product_paused_until: 0,
        release_paused_until: 0,
    };
    let ok = device(Some(rev_a));
    assert_eq!(check(&r, &gate, &ok, 200), Ok(()));
    assert_eq!(
        check(&r, &gate, &device(Some(class("rev-b"))), 200),
        Err(Hold::OtherHardware)
    );
    assert_eq!(check(&r, &gate, &device(None), 200), Err(Hold::OtherHardware));
    assert_eq!(
        check(&r, &gate, &ok, 10_000),
        Err(Hold::Expired { not_after: 10_000 })
    );
    assert_eq!(check(&r, &gate, &ok, 199), Err(Hold::Delay { until: 200 }));
    let paused = ReleaseGate {
        release_paused_until: 500,
        ..gate
    };
    assert_eq!(check(&r, &paused, &ok, 499), Err(Hold::Paused { until: 500 }));
    assert_eq!(check(&r, &paused, &ok, 500), Ok(()), "a pause expires");
    let product_paused = ReleaseGate {
        product_paused_until: u64::MAX,
        ..gate
    };
    assert!(matches!(
        check(&r, &product_paused, &ok, 9_999),
        Err(Hold::Paused { .. })
    ));
    let open = record(ReleaseTerms::default());
    assert_eq!(
        check(&open, &gate, &device(None), 200),
        Ok(()),
        "no classes: every device"
    );
}

#[test]
fn a_device_outside_the_share_waits_for_its_step() {
    let mut terms = ReleaseTerms {
        rollout: "10%,+10%/1h".parse().unwrap(),
        ..Default::default()
    };
    terms.not_after = 0;
    let r = record(terms);
    let gate = ReleaseGate {
        installable_at: 1_000,
        ..Default::default()
    };
    // Find a device that needs more than the start share, and check it gets in exactly at its step.
    let (d, needs) = (0..)
        .map(|i| DeviceId::from_name(&format!("d{i}")))
        .map(|id| (id, min_share(place(&id, &r.digest()))))
        .find(|(_, needs)| *needs > 3000 && *needs <= 4000)
        .unwrap();
    let dev = Device { id: d, class: None };
    let at_step = 1_000 + 3 * 3600;
    assert_eq!(
        check(&r, &gate, &dev, at_step - 1),
        Err(Hold::Rollout {
            share_bps: 3000,
            needs_bps: needs,
            next_step_at: Some(at_step)
        })
    );
    assert_eq!(check(&r, &gate, &dev, at_step), Ok(()));
}

#[test]
fn over_a_fleet_the_admitted_share_follows_the_schedule_and_status_agrees_with_check() {
    let r = record(ReleaseTerms {
        rollout: "10%,+20%/1h".parse().unwrap(),
        ..Default::default()
    });
    let gate = ReleaseGate {
        live_at: 0,
        installable_at: 3_600,
        ..Default::default()
    };
    let devices: Vec<Device> = (0..1000)
        .map(|i| Device {
            id: DeviceId::from_name(&format!("sensor-{i:04}")),
            class: None,
        })
        .collect();
    let mut before = vec![false; devices.len()];
    for (step, now) in (0..6).map(|k| (k, 3_600 + k * 3_600)) {
        let s = status(&r, &gate, &devices, now);
        let want = (1000 + 2000 * step as u16).min(FULL_SHARE);
        assert_eq!(s.share_bps, want);
        assert_eq!(s.held, None);
        let n = s.admitted.iter().filter(|a| **a).count() as f64;
        let p = f64::from(want) / f64::from(FULL_SHARE);
        let sd = (1000.0 * p * (1.0 - p)).sqrt();
        assert!(
            (n - 1000.0 * p).abs() <= 4.0 * sd + 1.0,
            "{n} of 1000 at {want} bps"
        );
        for (i, d) in devices.iter().enumerate() {
            assert_eq!(
                s.admitted[i],
                check(&r, &gate, d, now).is_ok(),
                "device {i} at {now}"
            );
            assert!(
                !before[i] || s.admitted[i],
                "device {i} left the rollout at {now}"
            );
        }
        before = s.admitted;
    }
    let early = status(&r, &gate, &devices, 100);
    assert_eq!(early.held, Some(Hold::Delay { until: 3_600 }));
    assert!(early.admitted.iter().all(|a| !a));
}

proptest! {
    // Each case hashes a whole fleet: a few cases suffice (and keep the debug build fast).
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Over a fleet, the eligible share is the schedule's share (within 4 standard deviations).
    #[test]
    fn the_eligible_share_of_a_fleet_matches_the_schedule(share in 0u16..=FULL_SHARE, salt in any::<[u8; 32]>()) {
        let n = 2000usize;
        let eligible = (0..n).filter(|i| inside(place(&DeviceId::from_name(&format!("dev-{i}")), &salt), share)).count();
        let p = f64::from(share) / f64::from(FULL_SHARE);
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        prop_assert!((eligible as f64 - n as f64 * p).abs() <= 4.0 * sd + 1.0, "{eligible} of {n} at {share} bps");
    }
}

proptest! {
    /// A device that is in at some share stays in at every larger share (the rollout only grows).
    #[test]
    fn shares_are_monotone(device in any::<[u8; 32]>(), digest in any::<[u8; 32]>(), a in 0u16..=FULL_SHARE, b in 0u16..=FULL_SHARE) {
        let p = place(&DeviceId(device), &digest);
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(!inside(p, lo) || inside(p, hi));
        prop_assert_eq!(inside(p, a), a >= min_share(p));
    }

    /// The share never goes down with chain time and never exceeds the whole fleet.
    #[test]
    fn share_grows_with_time(start in 0u16..=FULL_SHARE, step in 0u16..=FULL_SHARE, interval in 1u64..100_000, at in 0u64..1 << 40, t1 in 0u64..1 << 41, t2 in 0u64..1 << 41) {
        let s = RolloutSchedule { start_bps: start, step_bps: step, interval_secs: interval };
        let (lo, hi) = (t1.min(t2), t1.max(t2));
        prop_assert!(s.share_at(at, lo) <= s.share_at(at, hi));
        prop_assert!(s.share_at(at, hi) <= FULL_SHARE);
        if let Some(next) = s.next_step_at(at, lo) {
            prop_assert!(next > lo);
            prop_assert!(s.share_at(at, next) > s.share_at(at, lo) || lo < at);
            prop_assert_eq!(s.share_at(at, next - 1), s.share_at(at, lo));
        }
    }
}
