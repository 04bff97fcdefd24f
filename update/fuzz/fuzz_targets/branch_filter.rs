//! The branch filters on arbitrary bytes, ranges and write sizes: undoing a filter through the streaming
//! writer never panics, and encoding undoes it exactly (each filter is a bijection).
#![no_main]

use std::io::Write;

use firmchain_update::patch::branch::{Arch, Filter, Unfilter, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, bytes) = data.split_at(4);
    let len = bytes.len() as u64;
    let arch = if head[0] & 1 == 0 { Arch::X86_64 } else { Arch::Aarch64 };
    let (a, b) = (u64::from(head[1]) * len / 255, u64::from(head[2]) * len / 255);
    let ranges = if a.min(b) < a.max(b) { vec![(a.min(b), a.max(b))] } else { vec![(0, len)] };
    let filter = Filter { arch, ranges };
    let chunk = usize::from(head[3]).max(1);
    let mut w = Unfilter::new(Vec::new(), Some(filter.clone()));
    for c in bytes.chunks(chunk) {
        w.write_all(c).unwrap();
    }
    let mut decoded = w.finish().unwrap();
    assert_eq!(decoded.len(), bytes.len());
    encode(&filter, &mut decoded);
    assert_eq!(decoded, bytes);
});
