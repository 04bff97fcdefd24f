//! Patch application on arbitrary patches (formats 1 and 2: zstd and LZMA2 streams, branch filters): never
//! panics, never writes past the announced size, and anything it accepts hashes to the announced target.
#![no_main]

use std::io::Cursor;

use firmchain_update::Blake3Hash;
use firmchain_update::patch::{ApplyLimits, HEADER_LEN, PatchHeader, apply};
use libfuzzer_sys::fuzz_target;

const BASE: &[u8] = b"firmware image v1: the quick brown fox jumps over the lazy dog, 0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    // Half the time, give the input a valid header for BASE so the fuzzer reaches the payload decoder.
    let patch = if data.first().is_some_and(|b| b & 1 == 1) && data.len() > 9 {
        let header = PatchHeader {
            // Full images are always version 1; patches are either.
            version: if data[1] & 5 == 4 { 2 } else { 1 },
            kind: if data[1] & 1 == 0 { firmchain_update::patch::PayloadKind::Patch } else { firmchain_update::patch::PayloadKind::Full },
            window_log: 20,
            add_coding: if data[1] & 2 == 0 || data[1] & 1 == 1 {
                firmchain_update::patch::AddCoding::Raw
            } else {
                firmchain_update::patch::AddCoding::ZeroRuns
            },
            base_hash: if data[1] & 1 == 0 { Blake3Hash::of(BASE) } else { Blake3Hash::ZERO },
            base_size: if data[1] & 1 == 0 { BASE.len() as u64 } else { 0 },
            target_hash: Blake3Hash::of(&data[2..6]),
            target_size: u64::from(data[6]) * 16,
        };
        let mut p = header.to_bytes().to_vec();
        p.extend_from_slice(&data[7..]);
        p
    } else {
        data.to_vec()
    };
    let mut out = Vec::new();
    if let Ok(applied) = apply(Cursor::new(BASE), Cursor::new(&patch), &mut out, &ApplyLimits::default(), |_| {}) {
        assert_eq!(applied.written, out.len() as u64);
        assert_eq!(Blake3Hash::of(&out), applied.header.target_hash);
    } else if patch.len() >= HEADER_LEN {
        if let Ok(header) = PatchHeader::from_bytes(patch[..HEADER_LEN].try_into().unwrap()) {
            assert!(out.len() as u64 <= header.target_size);
        }
    }
});
