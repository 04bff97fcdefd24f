use std::io::Cursor;

use proptest::prelude::*;

use super::*;
use crate::hash::Blake3Hash;

fn opts() -> PatchOptions {
    PatchOptions {
        level: 3,
        ..Default::default()
    }
}

fn run(base: &[u8], patch: &[u8], limits: &ApplyLimits) -> Result<Vec<u8>, ApplyError> {
    let mut out = Vec::new();
    apply(Cursor::new(base), Cursor::new(patch), &mut out, limits, |_| {})?;
    Ok(out)
}

/// The header of a hand-made (version 1) patch from `old` to a target with this hash and size.
fn header_for(old: &[u8], target: &[u8], target_size: u64) -> PatchHeader {
    PatchHeader {
        version: VERSION_1,
        kind: PayloadKind::Patch,
        window_log: 21,
        add_coding: AddCoding::Raw,
        base_hash: Blake3Hash::of(old),
        base_size: old.len() as u64,
        target_hash: Blake3Hash::of(target),
        target_size,
    }
}

/// A hand-made version-1 patch: header, the three frame lengths, then the three streams as zstd frames.
fn raw_patch(header: &PatchHeader, control: &[u8], add: &[u8], copy: &[u8]) -> Vec<u8> {
    let frames: Vec<Vec<u8>> = [control, add, copy]
        .iter()
        .map(|s| zstd::bulk::compress(s, 3).unwrap())
        .collect();
    let mut patch = header.to_bytes().to_vec();
    for f in &frames {
        patch.extend_from_slice(&(f.len() as u64).to_le_bytes());
    }
    for f in &frames {
        patch.extend_from_slice(f);
    }
    patch
}

/// A firmware-like pair: shared structure, an insertion, a change, a deletion.
fn structured(seed: u64, len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut x = seed | 1;
    let old: Vec<u8> = (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 64 < 40 { (i / 64) as u8 } else { x as u8 }
        })
        .collect();
    let mut new = old.clone();
    if len > 100 {
        new.splice(len / 3..len / 3, b"inserted section".iter().copied());
        new[len / 2] ^= 0x55;
        new.drain(len * 3 / 4..len * 3 / 4 + 20);
        for b in new.iter_mut().step_by(97) {
            *b = b.wrapping_add(3);
        }
    }
    (old, new)
}

#[test]
fn patch_round_trip_on_structured_images() {
    for (seed, len) in [(1, 0), (2, 1), (3, 1000), (4, 300_000)] {
        let (old, new) = structured(seed, len);
        let patch = create_patch(&old, &new, &opts()).unwrap();
        assert_eq!(run(&old, &patch, &ApplyLimits::default()).unwrap(), new);
    }
}

#[test]
fn full_image_round_trip_ignores_base() {
    let (_, new) = structured(9, 50_000);
    let full = create_full(&new, &opts()).unwrap();
    assert_eq!(run(b"anything", &full, &ApplyLimits::default()).unwrap(), new);
}

#[test]
fn best_choice_picks_the_smaller() {
    let (old, new) = structured(5, 200_000);
    let choice = create_best(Some(&old), &new, &opts()).unwrap();
    assert_eq!(choice.smaller_kind(), PayloadKind::Patch);
    assert!(choice.smaller().len() < choice.full.len());
    let unrelated: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let choice = create_best(Some(&unrelated), b"short new image", &opts()).unwrap();
    assert_eq!(choice.smaller_kind(), PayloadKind::Full);
    assert_eq!(
        create_best(None, &new, &opts()).unwrap().smaller_kind(),
        PayloadKind::Full
    );
}

#[test]
fn wrong_base_names_both_hashes() {
    let (old, new) = structured(6, 10_000);
    let patch = create_patch(&old, &new, &opts()).unwrap();
    let mut other = old.clone();
    other[0] ^= 1;
    let err = run(&other, &patch, &ApplyLimits::default()).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.class(), ErrorClass::WrongBase);
    assert!(msg.contains(&Blake3Hash::of(&old).to_string()), "{msg}");
    assert!(msg.contains(&Blake3Hash::of(&other).to_string()), "{msg}");
}

#[test]
fn truncated_patch_is_reported_as_truncated() {
    let (old, new) = structured(7, 100_000);
    let patch = create_patch(&old, &new, &opts()).unwrap();
    for cut in [10, HEADER_LEN, HEADER_LEN + 5, patch.len() / 2, patch.len() - 1] {
        let err = run(&old, &patch[..cut], &ApplyLimits::default()).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Truncated, "cut at {cut}: {err}");
    }
}

#[test]
fn corrupt_payload_never_verifies() {
    let (old, new) = structured(8, 100_000);
    let patch = create_patch(&old, &new, &opts()).unwrap();
    for at in [HEADER_LEN + 3, HEADER_LEN + 40, patch.len() / 2, patch.len() - 2] {
        let mut bad = patch.clone();
        bad[at] ^= 0x5a;
        let err = run(&old, &bad, &ApplyLimits::default()).unwrap_err();
        assert!(
            matches!(
                err.class(),
                ErrorClass::Corrupt | ErrorClass::HashMismatch | ErrorClass::Truncated
            ),
            "{err}"
        );
    }
    let mut trailing = patch.clone();
    trailing.push(0);
    assert!(matches!(
        run(&old, &trailing, &ApplyLimits::default()),
        Err(ApplyError::Corrupt(_))
    ));
}

#[test]
fn forged_target_hash_is_a_hash_mismatch() {
    let (old, new) = structured(10, 10_000);
    let mut patch = create_patch(&old, &new, &opts()).unwrap();
    patch[48] ^= 1; // target hash in the header
    let err = run(&old, &patch, &ApplyLimits::default()).unwrap_err();
    assert!(matches!(err, ApplyError::TargetHashMismatch { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::HashMismatch);
}

#[test]
fn expectations_are_checked_before_any_work() {
    let (old, new) = structured(11, 10_000);
    let patch = create_patch(&old, &new, &opts()).unwrap();
    let limits = ApplyLimits {
        expect_target: Some(Blake3Hash::of(b"something else")),
        ..Default::default()
    };
    assert!(matches!(
        run(&old, &patch, &limits),
        Err(ApplyError::UnexpectedTarget { .. })
    ));
    let limits = ApplyLimits {
        expect_size: Some(1),
        ..Default::default()
    };
    assert!(matches!(
        run(&old, &patch, &limits),
        Err(ApplyError::UnexpectedSize { expected: 1, .. })
    ));
    let limits = ApplyLimits {
        expect_target: Some(Blake3Hash::of(&new)),
        expect_size: Some(new.len() as u64),
        ..Default::default()
    };
    assert_eq!(run(&old, &patch, &limits).unwrap(), new);
}

#[test]
fn window_larger_than_the_device_allows_is_refused() {
    let (old, new) = structured(12, 10_000);
    let full = create_full(
        &new,
        &PatchOptions {
            window_log: 27,
            ..opts()
        },
    )
    .unwrap();
    let err = run(&old, &full, &ApplyLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::WindowTooLarge {
                needed: 27,
                limit: 23
            }
        ),
        "{err}"
    );
    let patch = create_patch(&old, &new, &opts()).unwrap();
    let needed = u32::from(
        PatchHeader::from_bytes(patch[..HEADER_LEN].try_into().unwrap())
            .unwrap()
            .window_log,
    );
    let err = run(
        &old,
        &patch,
        &ApplyLimits {
            max_window_log: needed - 1,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, ApplyError::WindowTooLarge { needed: n, limit } if n == needed && limit == needed - 1),
        "{err}"
    );
}

#[test]
fn understated_target_size_cannot_overflow_the_output() {
    let (old, new) = structured(13, 10_000);
    let mut patch = create_patch(&old, &new, &opts()).unwrap();
    patch[80..88].copy_from_slice(&100u64.to_le_bytes());
    let err = run(&old, &patch, &ApplyLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::OutputTooLarge { limit: 100 } | ApplyError::Corrupt(_)
        ),
        "{err}"
    );
}

#[test]
fn decompression_bomb_is_bounded() {
    // A tiny frame of 64 MiB of zeros as the control stream: empty instructions, announcing a 1-byte target.
    let old = b"x".to_vec();
    let header = header_for(&old, b"y", 1);
    let patch = raw_patch(&header, &vec![0u8; 64 << 20], b"", b"");
    assert!(patch.len() < 10_000);
    let err = run(&old, &patch, &ApplyLimits::default()).unwrap_err();
    assert!(
        matches!(err, ApplyError::Corrupt(ref m) if m.contains("bound")),
        "{err}"
    );
}

#[test]
fn seeking_outside_the_base_is_refused() {
    let old = b"0123456789".to_vec();
    let header = header_for(&old, b"z", 1);
    let patch = raw_patch(&header, &[0, 0, 41], b"", b""); // add 0, copy 0, seek -21
    let err = run(&old, &patch, &ApplyLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::BaseOutOfRange {
                position: -21,
                size: 10
            }
        ),
        "{err}"
    );
}

#[test]
fn streams_that_disagree_with_the_instructions_are_corrupt() {
    let old = b"0123456789".to_vec();
    let header = header_for(&old, b"0123", 4);
    // add 4 bytes, but the add stream holds 2
    let err = run(
        &old,
        &raw_patch(&header, &[4, 0, 0], &[0, 0], b""),
        &ApplyLimits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ApplyError::Corrupt(ref m) if m.contains("add stream")),
        "{err}"
    );
    // the right result, but extra bytes left in the copy stream
    let err = run(
        &old,
        &raw_patch(&header, &[4, 0, 0], &[0; 4], b"extra"),
        &ApplyLimits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ApplyError::Corrupt(ref m) if m.contains("copy stream")),
        "{err}"
    );
    // and the honest version applies
    assert_eq!(
        run(
            &old,
            &raw_patch(&header, &[4, 0, 0], &[0; 4], b""),
            &ApplyLimits::default()
        )
        .unwrap(),
        b"0123"
    );
}

#[test]
fn add_stream_coding_is_the_smaller_one_and_both_apply() {
    // Text with a few edits: the add stream is long runs of zeros, where zero-run coding wins.
    let old: Vec<u8> = (0..400_000u32)
        .flat_map(|i| format!("line {i}: value = {}\n", i % 97).into_bytes())
        .collect();
    let mut new = old.clone();
    for at in (1000..new.len()).step_by(50_000) {
        new[at] = b'#';
    }
    let patch = create_patch(&old, &new, &opts()).unwrap();
    let header = PatchHeader::from_bytes(patch[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!(header.add_coding, AddCoding::ZeroRuns);
    assert_eq!(run(&old, &patch, &ApplyLimits::default()).unwrap(), new);
    // Random bytes against a shifted copy with dense small changes: no zero runs to exploit.
    let old: Vec<u8> = structured(15, 50_000).0;
    let new: Vec<u8> = old
        .iter()
        .enumerate()
        .map(|(i, b)| b.wrapping_add((i % 3) as u8))
        .collect();
    // (LZMA2 on zero runs usually wins here too; either coding must apply.)
    let patch = create_patch(&old, &new, &opts()).unwrap();
    assert_eq!(run(&old, &patch, &ApplyLimits::default()).unwrap(), new);
}

#[test]
fn malformed_zero_run_add_streams_are_corrupt() {
    let old = b"0123456789".to_vec();
    let mut header = header_for(&old, b"0133", 4);
    header.add_coding = AddCoding::ZeroRuns;
    let good = [2, 1, 1, 1, 0]; // two zeros, one literal byte (1), one zero: adds 0,0,1,0 to "0123"
    assert_eq!(
        run(
            &old,
            &raw_patch(&header, &[4, 0, 0], &good, b""),
            &ApplyLimits::default()
        )
        .unwrap(),
        b"0133"
    );
    for bad in [
        &[0u8, 0][..],
        &[2, 2, 1][..],
        &[2, 1, 1, 1, 0, 0, 0][..],
        &[9, 0][..],
    ] {
        let err = run(
            &old,
            &raw_patch(&header, &[4, 0, 0], bad, b""),
            &ApplyLimits::default(),
        )
        .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Corrupt, "{bad:?}: {err}");
    }
}

#[test]
fn patch_streams_use_small_windows() {
    let (old, new) = structured(14, 300_000);
    let patch = create_patch(&old, &new, &opts()).unwrap();
    let header = PatchHeader::from_bytes(patch[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert!(u32::from(header.window_log) <= STREAM_WINDOW_LOG);
    let full = create_full(&new, &opts()).unwrap();
    assert_eq!(
        u32::from(
            PatchHeader::from_bytes(full[..HEADER_LEN].try_into().unwrap())
                .unwrap()
                .window_log
        ),
        23
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn apply_inverts_diff_on_random_bytes(
        old in proptest::collection::vec(any::<u8>(), 0..2000),
        new in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let patch = create_patch(&old, &new, &opts()).unwrap();
        prop_assert_eq!(run(&old, &patch, &ApplyLimits::default()).unwrap(), new);
    }

    #[test]
    fn apply_inverts_diff_on_edited_images(
        old in proptest::collection::vec(0u8..4, 1..20_000),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..64, any::<u8>()), 0..12),
    ) {
        let mut new = old.clone();
        for (at, len, byte) in edits {
            let at = at.index(new.len().max(1));
            match byte % 3 {
                0 => { new.splice(at..at, std::iter::repeat_n(byte, len)); }
                1 => { let end = (at + len).min(new.len()); new.drain(at..end); }
                _ => { for b in new.iter_mut().skip(at).take(len) { *b ^= byte; } }
            }
        }
        let patch = create_patch(&old, &new, &opts()).unwrap();
        prop_assert_eq!(run(&old, &patch, &ApplyLimits::default()).unwrap(), new);
    }
}

/// A minimal ELF64 little-endian file for `machine` (62 x86-64, 183 AArch64) with one executable section
/// holding `code` at offset 0x1000.
fn elf(machine: u16, code: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 0x1000];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[18..20].copy_from_slice(&machine.to_le_bytes());
    f.extend_from_slice(code);
    let shoff = f.len() as u64;
    f[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    f[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
    f[0x3C..0x3E].copy_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&[0u8; 64]); // the null section
    let mut sh = [0u8; 64];
    sh[4..8].copy_from_slice(&1u32.to_le_bytes()); // PROGBITS
    sh[8..16].copy_from_slice(&6u64.to_le_bytes()); // ALLOC | EXECINSTR
    sh[0x18..0x20].copy_from_slice(&0x1000u64.to_le_bytes());
    sh[0x20..0x28].copy_from_slice(&(code.len() as u64).to_le_bytes());
    f.extend_from_slice(&sh);
    f
}

/// Code whose calls and branches all point at a table of fixed targets, so inserting bytes in the middle
/// changes the displacement of every call after the insertion: what the branch filters are for.
fn calls(machine: u16, n: usize, insert_at: usize, insert: usize) -> Vec<u8> {
    let mut code = Vec::new();
    let targets: Vec<u64> = (0..64).map(|i| 0x40_0000 + i * 0x1234).collect();
    let mut x = 7u64;
    for i in 0..n {
        if i == insert_at {
            code.extend(std::iter::repeat_n(0x90, insert));
        }
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let target = targets[(x >> 58) as usize];
        let pos = 0x1000 + code.len() as u64;
        if machine == 62 {
            let rel = target.wrapping_sub(pos + 5) as u32;
            code.push(0xE8);
            code.extend_from_slice(&rel.to_le_bytes());
            code.extend_from_slice(&[0x48, 0x89, 0xC7]);
        } else {
            while code.len() % 4 != 0 {
                code.push(0);
            }
            let pos = 0x1000 + code.len() as u64;
            let imm = (target.wrapping_sub(pos) >> 2) as u32 & 0x03FF_FFFF;
            code.extend_from_slice(&(0x9400_0000 | imm).to_le_bytes());
            code.extend_from_slice(&0xAA00_03E0u32.to_le_bytes());
        }
    }
    code
}

#[test]
fn executables_diff_through_their_branch_filter_and_round_trip() {
    for machine in [62u16, 183] {
        let old = elf(machine, &calls(machine, 40_000, usize::MAX, 0));
        let new = elf(machine, &calls(machine, 40_000, 1_000, 8));
        let both = [branch::Arch::X86_64, branch::Arch::Aarch64];
        let patch = super::create::create_patch_trying(&old, &new, &opts(), &both).unwrap();
        assert_eq!(
            patch[HEADER_LEN],
            if machine == 62 { 1 } else { 2 },
            "the filter should win here"
        );
        assert_eq!(run(&old, &patch, &ApplyLimits::default()).unwrap(), new);
        // and beats a patch made without it by far
        let plain_size = {
            let mut o = old.clone();
            let mut n = new.clone();
            o[18] = 0; // not a known machine: no filter
            n[18] = 0;
            create_patch(&o, &n, &opts()).unwrap().len()
        };
        assert!(
            patch.len() * 2 < plain_size,
            "filtered {} vs plain {plain_size}",
            patch.len()
        );
    }
}

#[test]
fn version_1_patches_still_apply() {
    let (old, new) = structured(21, 200_000);
    let streams = super::create::bidiff_streams(&old, &new);
    for coding in [AddCoding::Raw, AddCoding::ZeroRuns] {
        let mut header = header_for(&old, &new, new.len() as u64);
        header.add_coding = coding;
        let add = match coding {
            AddCoding::Raw => streams.add.clone(),
            AddCoding::ZeroRuns => zero_runs::encode(&streams.add),
        };
        let patch = raw_patch(&header, &streams.control, &add, &streams.copy);
        assert_eq!(patch[4], VERSION_1);
        assert_eq!(run(&old, &patch, &ApplyLimits::default()).unwrap(), new);
    }
}

/// A base image that must never be read.
struct Untouchable;

impl std::io::Read for Untouchable {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("the base image was read before the patch's windows were checked");
    }
}

impl std::io::Seek for Untouchable {
    fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
        panic!("the base image was touched before the patch's windows were checked");
    }
}

#[test]
fn oversized_dictionaries_are_refused_before_any_allocation() {
    let (old, new) = structured(22, 100_000);
    let patch = create_patch(&old, &new, &opts()).unwrap();
    let apply_to_untouchable = |p: &[u8]| {
        apply(
            Untouchable,
            Cursor::new(p),
            Vec::new(),
            &ApplyLimits::default(),
            |_| {},
        )
        .unwrap_err()
    };
    // The stream table sits after the (empty) filter: 3 bytes, then 10 bytes per stream.
    let entry = |stream: usize| HEADER_LEN + 3 + 10 * stream;
    for stream in 0..3 {
        // A stream claiming a 1 GiB LZMA2 dictionary behind a header that claims 2^21.
        let mut p = patch.clone();
        p[entry(stream)] = 1;
        p[entry(stream) + 1] = 30;
        let err = apply_to_untouchable(&p);
        assert!(
            matches!(err, ApplyError::Layout(LayoutError::AboveHeader { log: 30, .. })),
            "stream {stream}: {err}"
        );
        // The same claim in the header too: over the device's 2^23.
        p[6] = 30;
        let err = apply_to_untouchable(&p);
        assert!(
            matches!(
                err,
                ApplyError::WindowTooLarge {
                    needed: 30,
                    limit: 23
                }
            ),
            "{err}"
        );
        // A window no coder has.
        let mut p = patch.clone();
        p[entry(stream) + 1] = 5;
        let err = apply_to_untouchable(&p);
        assert!(
            matches!(err, ApplyError::Layout(LayoutError::WindowLog { log: 5, .. })),
            "{err}"
        );
    }
    // Filter ranges past the image, or too many of them, are refused before the base is read as well.
    let mut p = patch.clone();
    p[HEADER_LEN] = 1;
    p[HEADER_LEN + 1] = 17;
    let err = apply_to_untouchable(&p);
    assert!(
        matches!(err, ApplyError::Layout(LayoutError::TooManyRanges { count: 17 })),
        "{err}"
    );
    let mut p = patch[..HEADER_LEN].to_vec();
    p.extend_from_slice(&[1, 1, 0]);
    p.extend_from_slice(&0u64.to_le_bytes());
    p.extend_from_slice(&(new.len() as u64 + 1).to_le_bytes());
    p.extend_from_slice(&patch[HEADER_LEN + 3..]);
    let err = apply_to_untouchable(&p);
    assert!(
        matches!(err, ApplyError::Layout(LayoutError::Range { .. })),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn executables_round_trip_whatever_the_edit(
        machine in prop_oneof![Just(62u16), Just(183u16)],
        n in 1usize..3000,
        at in any::<prop::sample::Index>(),
        insert in 0usize..40,
        flips in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let old = elf(machine, &calls(machine, n, usize::MAX, 0));
        let mut new = elf(machine, &calls(machine, n + 10, at.index(n), insert));
        for f in flips {
            let i = f.index(new.len());
            new[i] ^= 0x5A;
        }
        let both = [branch::Arch::X86_64, branch::Arch::Aarch64];
        let patch = super::create::create_patch_trying(&old, &new, &opts(), &both).unwrap();
        prop_assert!(run(&old, &patch, &ApplyLimits::default()).unwrap() == new);
    }
}
