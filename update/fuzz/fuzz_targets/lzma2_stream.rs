//! The raw LZMA2 stream decoder on arbitrary input, with the smallest and a device-sized dictionary: errors,
//! never panics, and never yields more than it was asked for.
#![no_main]

use std::io::Read;

use firmchain_update::patch::coder::lzma2_decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for log in [12u8, 20] {
        let Ok(decoder) = lzma2_decoder(data, log) else { return };
        let mut out = Vec::new();
        let _ = decoder.take(1 << 20).read_to_end(&mut out);
        assert!(out.len() <= 1 << 20);
    }
});
