use super::*;
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    product: String,
    sequence: String,
    base_hash: String,
    target_hash: String,
    target_size: String,
    patch_cid: String,
    patch_hash: String,
    patch_size: String,
    kind: u8,
    min_sequence: String,
    hardware: Vec<String>,
    not_after: String,
    rollout_start: u16,
    rollout_step: u16,
    rollout_interval: String,
    notes_cid: String,
    encoded: String,
    digest: String,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../../testdata/record-vectors.json");
    serde_json::from_str::<Vec<Vector>>(text).unwrap()
}

fn record_of(v: &Vector) -> ReleaseRecord {
    let h = |s: &str| s.parse::<Blake3Hash>().unwrap();
    ReleaseRecord {
        product: v.product.parse().unwrap(),
        sequence: Sequence(v.sequence.parse().unwrap()),
        base_hash: h(&v.base_hash),
        target_hash: h(&v.target_hash),
        target_size: v.target_size.parse().unwrap(),
        patch_cid: hex::decode(v.patch_cid.trim_start_matches("0x")).unwrap(),
        patch_hash: h(&v.patch_hash),
        patch_size: v.patch_size.parse().unwrap(),
        kind: if v.kind == 0 {
            ReleaseKind::Patch
        } else {
            ReleaseKind::Full
        },
        min_sequence: v.min_sequence.parse().unwrap(),
        terms: Box::new(ReleaseTerms {
            hardware: v.hardware.iter().map(|c| HardwareClass(h(c).0)).collect(),
            not_after: v.not_after.parse().unwrap(),
            rollout: RolloutSchedule {
                start_bps: v.rollout_start,
                step_bps: v.rollout_step,
                interval_secs: v.rollout_interval.parse().unwrap(),
            },
            notes_cid: hex::decode(v.notes_cid.trim_start_matches("0x")).unwrap(),
        }),
    }
}

#[test]
fn shared_vectors_encode_and_digest() {
    for v in vectors() {
        let r = record_of(&v);
        assert_eq!(
            format!("0x{}", hex::encode(r.abi_encode())),
            v.encoded,
            "encoding of {}",
            v.product
        );
        assert_eq!(
            format!("0x{}", hex::encode(r.digest())),
            v.digest,
            "digest of {}",
            v.product
        );
        assert_eq!(ReleaseRecord::abi_decode(&r.abi_encode()).unwrap(), r);
        r.validate().unwrap();
    }
}

fn sample() -> ReleaseRecord {
    record_of(&vectors()[0])
}

/// Word index of the terms' head in the encoding of `r`.
fn terms_word(r: &ReleaseRecord) -> usize {
    13 + r.patch_cid.len().div_ceil(32)
}

#[test]
fn rejects_non_canonical_encodings() {
    let r = sample();
    let good = r.abi_encode();
    let t = terms_word(&r);
    let set = |word: usize, byte: usize, v: u8| {
        let mut b = good.clone();
        b[word * 32 + byte] = v;
        ReleaseRecord::abi_decode(&b)
    };
    let mut dirty_pad = good.clone();
    *dirty_pad.last_mut().unwrap() = 1;
    assert!(matches!(
        ReleaseRecord::abi_decode(&dirty_pad),
        Err(RecordError::NonCanonical {
            field: "notes_cid",
            ..
        })
    ));
    assert!(matches!(
        set(12 + 2, 31, 1),
        Err(RecordError::NonCanonical {
            field: "patch_cid",
            reason: "padding is not zero",
            ..
        })
    ));
    assert!(matches!(
        set(2, 0, 1),
        Err(RecordError::NonCanonical {
            field: "sequence",
            ..
        })
    ));
    assert!(matches!(
        set(6, 31, 0x40),
        Err(RecordError::NonCanonical { word: 6, .. })
    ));
    assert!(matches!(
        set(11, 31, 0),
        Err(RecordError::NonCanonical {
            field: "terms offset",
            ..
        })
    ));
    assert!(matches!(
        set(t, 31, 0xe0),
        Err(RecordError::NonCanonical {
            field: "hardware offset",
            ..
        })
    ));
    assert!(matches!(
        set(t + 5, 31, 0),
        Err(RecordError::NonCanonical {
            field: "notes_cid offset",
            ..
        })
    ));
    assert!(matches!(
        set(t + 2, 29, 1),
        Err(RecordError::NonCanonical {
            field: "rollout_start",
            reason: "value exceeds 16 bits",
            ..
        })
    ));
    assert_eq!(set(t + 6, 31, 17), Err(RecordError::TooManyHardwareClasses(17)));
    assert!(matches!(
        set(t + 6, 31, 3),
        Err(RecordError::NonCanonical { .. } | RecordError::TooShort(_))
    ));
    let mut extra = good.clone();
    extra.extend_from_slice(&[0; 32]);
    assert!(matches!(
        ReleaseRecord::abi_decode(&extra),
        Err(RecordError::Length { .. })
    ));
    assert!(matches!(
        ReleaseRecord::abi_decode(&good[..100]),
        Err(RecordError::TooShort(100))
    ));
    assert!(matches!(
        ReleaseRecord::abi_decode(&good[..good.len() - 32]),
        Err(RecordError::TooShort(_))
    ));
    assert_eq!(set(9, 31, 2), Err(RecordError::Kind(2)));
}

#[test]
fn a_v1_encoding_is_refused() {
    // The v1 layout: ten head words, the CID right after them at offset 0x140.
    let r = sample();
    let mut v1 = Vec::new();
    v1.extend_from_slice(&good_word(32));
    v1.extend_from_slice(&r.product.0);
    v1.extend_from_slice(&good_word(r.sequence.0));
    v1.extend_from_slice(&r.base_hash.0);
    v1.extend_from_slice(&r.target_hash.0);
    v1.extend_from_slice(&good_word(r.target_size));
    v1.extend_from_slice(&good_word(0x140));
    v1.extend_from_slice(&r.patch_hash.0);
    v1.extend_from_slice(&good_word(r.patch_size));
    v1.extend_from_slice(&good_word(r.kind as u64));
    v1.extend_from_slice(&good_word(r.min_sequence));
    v1.extend_from_slice(&good_word(r.patch_cid.len() as u64));
    v1.extend_from_slice(&r.patch_cid);
    v1.resize(v1.len().div_ceil(32) * 32, 0);
    assert!(matches!(
        ReleaseRecord::abi_decode(&v1),
        Err(RecordError::NonCanonical { word: 6, .. })
    ));
}

fn good_word(v: u64) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&v.to_be_bytes());
    w
}

#[test]
fn validate_names_the_rule() {
    let mut r = sample();
    r.kind = ReleaseKind::Full;
    assert_eq!(r.validate(), Err(RecordError::FullWithBase));
    let mut r = sample();
    r.min_sequence = r.sequence.0 + 1;
    assert!(matches!(r.validate(), Err(RecordError::MinSequenceAbove { .. })));
    let mut r = sample();
    r.patch_cid = vec![1, 2, 3];
    assert!(matches!(r.validate(), Err(RecordError::Cid(_))));
    let mut r = sample();
    r.sequence = Sequence(0);
    assert_eq!(r.validate(), Err(RecordError::ZeroSequence));
    let mut r = sample();
    r.terms.hardware.reverse();
    assert_eq!(r.validate(), Err(RecordError::HardwareNotAscending { index: 1 }));
    let mut r = sample();
    r.terms.hardware = vec![HardwareClass([0; 32])];
    assert_eq!(r.validate(), Err(RecordError::HardwareNotAscending { index: 0 }));
    let mut r = sample();
    r.terms.hardware = (1..=17u8).map(|i| HardwareClass([i; 32])).collect();
    assert_eq!(r.validate(), Err(RecordError::TooManyHardwareClasses(17)));
    let mut r = sample();
    r.terms.rollout.interval_secs = 0;
    assert!(matches!(
        r.validate(),
        Err(RecordError::Rollout(
            ParseRolloutError::StepWithoutInterval { .. }
        ))
    ));
    let mut r = sample();
    r.terms.notes_cid = vec![9; 3];
    assert!(matches!(r.validate(), Err(RecordError::NotesCid(_))));
}

#[test]
fn product_names() {
    let p: ProductId = "acme-sensor".parse().unwrap();
    assert_eq!(p.to_string(), "acme-sensor");
    assert_eq!(&p.0[..11], b"acme-sensor");
    assert!("".parse::<ProductId>().is_err());
    assert!("has space".parse::<ProductId>().is_err());
    assert!("x".repeat(33).parse::<ProductId>().is_err());
    let raw = ProductId([0xff; 32]);
    assert_eq!(raw.to_string().parse::<ProductId>().unwrap(), raw);
}

#[test]
fn product_names_are_never_paths() {
    for bad in [
        "../x",
        "..",
        ".",
        "/etc",
        "/tmp/abs",
        "a/b",
        "a\\b",
        ".hidden",
        "-rf",
        "x\0y",
        "caf\u{e9}",
    ] {
        let err = bad.parse::<ProductId>().unwrap_err();
        assert!(err.to_string().contains("must be"), "{bad}: {err}");
    }
    for good in ["acme-sensor", "Sensor_v2.1", "0", "a..b"] {
        assert_eq!(good.parse::<ProductId>().unwrap().to_string(), good);
    }
    // An id from the chain whose bytes spell a path is shown, and stored, as hex only.
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(b"../x");
    let id = ProductId(bytes);
    assert_eq!(id.name(), None);
    assert!(id.to_string().starts_with("0x"));
    assert_eq!(id.hex().len(), 64);
    assert!(id.hex().bytes().all(|b| b.is_ascii_hexdigit()));
}

proptest! {
    #[test]
    fn decode_inverts_encode(
        product in any::<[u8; 32]>(), seq in any::<u64>(), base in any::<[u8; 32]>(),
        target in any::<[u8; 32]>(), size in any::<u64>(), cid in proptest::collection::vec(any::<u8>(), 0..=MAX_CID_LEN),
        ph in any::<[u8; 32]>(), ps in any::<u64>(), full in any::<bool>(), min in any::<u64>(),
        hw in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_HARDWARE_CLASSES), not_after in any::<u64>(),
        start in any::<u16>(), step in any::<u16>(), interval in any::<u64>(),
        notes in proptest::collection::vec(any::<u8>(), 0..=MAX_CID_LEN),
    ) {
        let r = ReleaseRecord {
            product: ProductId(product), sequence: Sequence(seq), base_hash: Blake3Hash(base),
            target_hash: Blake3Hash(target), target_size: size, patch_cid: cid, patch_hash: Blake3Hash(ph),
            patch_size: ps, kind: if full { ReleaseKind::Full } else { ReleaseKind::Patch }, min_sequence: min,
            terms: Box::new(ReleaseTerms {
                hardware: hw.into_iter().map(HardwareClass).collect(), not_after,
                rollout: RolloutSchedule { start_bps: start, step_bps: step, interval_secs: interval },
                notes_cid: notes,
            }),
        };
        let enc = r.abi_encode();
        prop_assert_eq!(enc.len() % 32, 0);
        prop_assert_eq!(ReleaseRecord::abi_decode(&enc).unwrap(), r);
    }

    #[test]
    fn whatever_decodes_re_encodes_identically(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        if let Ok(r) = ReleaseRecord::abi_decode(&bytes) {
            prop_assert_eq!(r.abi_encode(), bytes);
        }
    }

    /// Damage near the canonical encoding (a changed byte, a cut, extra bytes): the decoder refuses it, or
    /// what it decodes re-encodes to exactly the damaged bytes (only a value changed, never the layout).
    #[test]
    fn damaged_encodings_never_decode_to_something_else(
        vector in 0usize..3, at in any::<prop::sample::Index>(), byte in any::<u8>(),
        cut in any::<prop::sample::Index>(), extra in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let good = record_of(&vectors()[vector]).abi_encode();
        let mut changed = good.clone();
        changed[at.index(good.len())] = byte;
        let mut longer = good.clone();
        longer.extend_from_slice(&extra);
        let shorter = &good[..cut.index(good.len())];
        for bytes in [&changed[..], &longer[..], shorter] {
            if let Ok(r) = ReleaseRecord::abi_decode(bytes) {
                prop_assert_eq!(r.abi_encode(), bytes);
            }
        }
        prop_assert!(ReleaseRecord::abi_decode(shorter).is_err());
        prop_assert_eq!(ReleaseRecord::abi_decode(&longer).is_ok(), extra.is_empty());
    }
}
