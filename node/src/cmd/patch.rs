//! `apply` and `hash` (`diff` is in diff.rs).

use std::io::{BufReader, Cursor, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use firmchain_update::Blake3Hash;
use firmchain_update::hash::hash_reader;
use firmchain_update::patch::{self, ApplyLimits, PatchHeader, PayloadKind};
use serde::Serialize;

use super::{open, write_atomically};
use crate::error::CliError;
use crate::output::Output;

#[derive(Serialize)]
struct ApplyResult {
    output: String,
    kind: String,
    base_hash: Option<String>,
    target_hash: String,
    target_size: u64,
    seconds: f64,
}

pub fn apply(
    base: &Path,
    patch_path: &Path,
    output: &Path,
    expect: Option<Blake3Hash>,
    max_window_log: u32,
    out: &Output,
) -> Result<(), CliError> {
    let started = Instant::now();
    let mut patch_file = open(patch_path)?;
    let header = PatchHeader::read(&mut patch_file).map_err(|e| CliError::Apply(e.into()))?;
    patch_file
        .seek(SeekFrom::Start(0))
        .map_err(CliError::file(patch_path))?;
    // A full image needs no base image.
    let base_file = if header.kind == PayloadKind::Patch {
        Some(open(base)?)
    } else {
        None
    };
    let bar = out.bytes("applying", header.target_size);
    let limits = ApplyLimits {
        max_window_log,
        expect_target: expect,
        expect_size: None,
    };
    let applied = write_atomically(output, |w| {
        let progress = |n| bar.set_position(n);
        let patch_reader = BufReader::new(patch_file);
        match base_file {
            Some(f) => patch::apply(f, patch_reader, w, &limits, progress),
            None => patch::apply(Cursor::new(&[][..]), patch_reader, w, &limits, progress),
        }
        .map_err(CliError::Apply)
    });
    bar.finish_and_clear();
    let applied = applied?;
    let result = ApplyResult {
        output: output.display().to_string(),
        kind: applied.header.kind.to_string(),
        base_hash: (applied.header.kind == PayloadKind::Patch).then(|| applied.header.base_hash.to_string()),
        target_hash: applied.target_hash.to_string(),
        target_size: applied.written,
        seconds: started.elapsed().as_secs_f64(),
    };
    out.result(&result, || {
        format!(
            "verified and wrote {} ({} bytes)\n  blake3 {}",
            result.output, result.target_size, result.target_hash
        )
    });
    Ok(())
}

#[derive(Serialize)]
struct HashResult {
    file: String,
    blake3: String,
    size: u64,
}

pub fn hash(path: &Path, out: &Output) -> Result<(), CliError> {
    let file = open(path)?;
    let len = file.metadata().map_err(CliError::file(path))?.len();
    let bar = out.bytes("hashing", len);
    let (hash, size) =
        hash_reader(BufReader::new(file), |n| bar.set_position(n)).map_err(CliError::file(path))?;
    bar.finish_and_clear();
    let result = HashResult {
        file: path.display().to_string(),
        blake3: hash.to_string(),
        size,
    };
    out.result(&result, || format!("{}  {}", result.blake3, result.file));
    Ok(())
}
