//! Applying a patch takes memory bounded by its stream windows, not by the image: the apply runs in a child
//! process (this test binary again) whose peak RSS (VmHWM) the test reads. The bound is generous (the
//! precise figure is `bench/patch.sh`'s); it fails if apply ever holds an image, a stream or a whole window
//! set more than once.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::Command;

use firmchain_update::patch::{self, ApplyLimits, HEADER_LEN, PatchHeader, PatchOptions, STREAM_WINDOW_LOG};

const CHILD: &str = "FIRMCHAIN_APPLY_MEMORY_CHILD";
const IMAGE: usize = 24 << 20;

fn kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// A 24 MiB pair whose streams are all larger than their windows: pseudo-random blocks, reordered, with a
/// byte changed every few hundred (large add and control streams) and fresh data (a large copy stream).
fn pair() -> (Vec<u8>, Vec<u8>) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let old: Vec<u8> = (0..IMAGE).map(|_| next() as u8).collect();
    let mut new = Vec::with_capacity(IMAGE + (1 << 20));
    for block in old.chunks(1 << 16).rev() {
        new.extend_from_slice(block);
        let fresh = (next() % 16_384) as usize;
        new.extend((0..fresh).map(|_| next() as u8));
    }
    for i in (0..new.len()).step_by(331) {
        new[i] = new[i].wrapping_add(1);
    }
    (old, new)
}

#[test]
fn apply_memory_is_bounded_by_the_stream_windows() {
    if let Ok(dir) = std::env::var(CHILD) {
        let dir = PathBuf::from(dir);
        let before = kib("VmRSS:");
        let base = std::fs::File::open(dir.join("old")).unwrap();
        let patch = BufReader::new(std::fs::File::open(dir.join("patch")).unwrap());
        let out = BufWriter::new(std::fs::File::create(dir.join("out")).unwrap());
        patch::apply(base, patch, out, &ApplyLimits::default(), |_| {}).unwrap();
        println!("rss-before {before} hwm {}", kib("VmHWM:"));
        return;
    }
    let dir = std::env::temp_dir().join(format!("firmchain-apply-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = pair();
    let bytes = patch::create_patch(
        &old,
        &new,
        &PatchOptions {
            level: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let header = PatchHeader::from_bytes(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!(
        u32::from(header.window_log),
        STREAM_WINDOW_LOG,
        "the streams should fill their windows"
    );
    std::fs::write(dir.join("old"), &old).unwrap();
    std::fs::write(dir.join("patch"), &bytes).unwrap();
    drop((old, bytes));
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "apply_memory_is_bounded_by_the_stream_windows",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let applied = std::fs::read(dir.join("out")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(applied == new, "the child's result differs from the new image");
    let at = stdout
        .find("rss-before")
        .unwrap_or_else(|| panic!("child reported no RSS: {stdout}"));
    let line = stdout[at..].lines().next().unwrap_or_default();
    let nums: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let growth_kib = nums[1].saturating_sub(nums[0]);
    // Three stream windows of 2^STREAM_WINDOW_LOG, decoder state and 64 KiB buffers; the image is 24 MiB.
    let bound_kib = (3u64 << STREAM_WINDOW_LOG) / 1024 + 4096;
    assert!(
        growth_kib <= bound_kib,
        "apply grew RSS by {growth_kib} KiB on a {} MiB image, bound {bound_kib} KiB",
        IMAGE >> 20
    );
    println!("apply grew RSS by {growth_kib} KiB (bound {bound_kib} KiB)");
}
