//! `firmchain demo`: a walk-through of the update pipeline on generated sample firmware.

use std::io::{BufReader, Cursor};
use std::path::Path;
use std::time::Instant;

use firmchain_update::Blake3Hash;
use firmchain_update::car::{IndexedCar, write_car};
use firmchain_update::dag::{DagOptions, ReadLimits, read_file};
use firmchain_update::patch::{self, ApplyLimits, PatchOptions};
use serde::Serialize;

use super::open;
use crate::error::CliError;
use crate::output::{Output, human_bytes};

/// Sample firmware: code-like bytes (repeating instruction patterns with varying operands).
pub fn sample_firmware(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let op = [0x48, 0x89, 0xe5, 0x8b, 0x45, 0xfc, 0xc3, 0x90][(x % 8) as usize];
        out.extend_from_slice(&[op, (x >> 8) as u8 & 0x1f, 0x00, 0x48, (x >> 16) as u8]);
    }
    out.truncate(size);
    out
}

/// The next release of `old`: a few edits, a 4 KiB insertion of new code, a patch to a table.
pub fn next_release(old: &[u8]) -> Vec<u8> {
    next_release_with(old, 0, 7)
}

/// [`next_release`] that also inserts `new_bytes` bytes that compress poorly (new data, keys, assets), seeded
/// by `seed`, so the patch grows with them.
pub fn next_release_with(old: &[u8], new_bytes: usize, seed: u64) -> Vec<u8> {
    let mut new = old.to_vec();
    let n = new.len();
    new.splice(n / 5..n / 5, sample_firmware(4096, seed));
    let mut x = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    let noise: Vec<u8> = (0..new_bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    new.splice(n / 3..n / 3, noise);
    for i in (n / 2..n / 2 + 2048).step_by(5) {
        if i < new.len() {
            new[i] = new[i].wrapping_add(1);
        }
    }
    new.extend_from_slice(b"firmchain sample firmware v2\0");
    new
}

#[derive(Serialize)]
struct DemoResult {
    dir: String,
    image_size: u64,
    patch_kind: String,
    patch_size: u64,
    full_size: u64,
    root_cid: String,
    blocks: u64,
    target_hash: String,
    verified: bool,
    wrong_base_rejected: String,
}

fn step(out: &Output, text: &str) {
    if !out.is_json() {
        println!("==> {text}");
    }
}

pub fn run(dir: Option<&Path>, size_mib: u32, out: &Output) -> Result<(), CliError> {
    let tmp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(CliError::file(d))?;
            d.to_owned()
        }
        None => {
            tmp = tempfile::tempdir().map_err(CliError::file(Path::new("temporary folder")))?;
            tmp.path().to_owned()
        }
    };
    let write = |name: &str, bytes: &[u8]| -> Result<std::path::PathBuf, CliError> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(CliError::file(&path))?;
        Ok(path)
    };
    let started = Instant::now();
    step(
        out,
        &format!(
            "generating sample firmware v1 and v2 ({size_mib} MiB) in {}",
            dir.display()
        ),
    );
    let v1 = sample_firmware(size_mib as usize * 1024 * 1024, 1);
    let v2 = next_release(&v1);
    write("firmware-v1.bin", &v1)?;
    write("firmware-v2.bin", &v2)?;
    let (h1, h2) = (Blake3Hash::of(&v1), Blake3Hash::of(&v2));
    step(out, &format!("v1 blake3 {h1}\n    v2 blake3 {h2}"));

    step(
        out,
        "diff: bidiff + zstd, and the compressed full image for comparison",
    );
    let opts = PatchOptions {
        workers: 2,
        ..Default::default()
    };
    let choice = patch::create_best(Some(&v1), &v2, &opts)?;
    let payload = choice.smaller().to_vec();
    write("v1-to-v2.patch", &payload)?;
    let patch_size = choice.patch.as_ref().map_or(0, Vec::len) as u64;
    step(
        out,
        &format!(
            "{} chosen: patch {} vs full image {} ({:.2}% of v2)",
            choice.smaller_kind(),
            human_bytes(patch_size),
            human_bytes(choice.full.len() as u64),
            100.0 * payload.len() as f64 / v2.len() as f64
        ),
    );

    step(
        out,
        "pack: chunk the update into 256 KiB CIDv1 blocks, write a CAR",
    );
    let car_path = dir.join("v1-to-v2.car");
    let mut car = Vec::new();
    let packed = write_car(Cursor::new(&payload), DagOptions::default(), &mut car, |_| {})
        .map_err(CliError::car(&car_path))?;
    std::fs::write(&car_path, &car).map_err(CliError::file(&car_path))?;
    step(
        out,
        &format!("root {} ({} blocks)", packed.root.cid, packed.blocks),
    );

    step(out, "unpack: verify every block against its CID and reassemble");
    let car_err = CliError::car(&car_path);
    let mut indexed = IndexedCar::open(BufReader::new(open(&car_path)?)).map_err(car_err)?;
    let mut unpacked = Vec::new();
    read_file(
        &packed.root.cid,
        &mut indexed,
        &mut unpacked,
        ReadLimits::default(),
        |_| {},
    )
    .map_err(|e| CliError::Demo(format!("unpack failed: {e}")))?;
    if unpacked != payload {
        return Err(CliError::Demo(
            "unpacked update differs from the packed one".into(),
        ));
    }

    step(
        out,
        "apply: stream the patch over v1, check the result against v2's hash",
    );
    let limits = ApplyLimits {
        expect_target: Some(h2),
        ..Default::default()
    };
    let mut result = Vec::new();
    let applied = patch::apply(
        Cursor::new(&v1),
        Cursor::new(&unpacked),
        &mut result,
        &limits,
        |_| {},
    )?;
    write("firmware-v2.applied.bin", &result)?;
    let verified = applied.target_hash == h2 && result == v2;

    step(
        out,
        "tamper check: the same patch on a modified v1 must be refused",
    );
    let mut wrong = v1.clone();
    let at = 12345 % wrong.len();
    wrong[at] ^= 0xff;
    let rejection = match patch::apply(
        Cursor::new(&wrong),
        Cursor::new(&unpacked),
        &mut Vec::new(),
        &limits,
        |_| {},
    ) {
        Ok(_) => {
            return Err(CliError::Demo(
                "a patch applied to the wrong base was accepted".into(),
            ));
        }
        Err(e) => e.to_string(),
    };
    step(out, &format!("refused: {rejection}"));

    let summary = DemoResult {
        dir: dir.display().to_string(),
        image_size: v2.len() as u64,
        patch_kind: choice.smaller_kind().to_string(),
        patch_size: payload.len() as u64,
        full_size: choice.full.len() as u64,
        root_cid: packed.root.cid.to_string(),
        blocks: packed.blocks,
        target_hash: applied.target_hash.to_string(),
        verified,
        wrong_base_rejected: rejection,
    };
    out.result(&summary, || {
        format!(
            "demo {} in {:.1}s: v2 rebuilt from v1 + a {} update, blake3 {}",
            if verified { "passed" } else { "FAILED" },
            started.elapsed().as_secs_f64(),
            human_bytes(summary.patch_size),
            summary.target_hash
        )
    });
    if verified {
        Ok(())
    } else {
        Err(CliError::Demo("the applied image does not match v2".into()))
    }
}
