//! `diff`, `apply` and `hash`.

use std::io::{BufReader, Cursor, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use firmchain_update::Blake3Hash;
use firmchain_update::hash::hash_reader;
use firmchain_update::patch::{self, ApplyLimits, PatchHeader, PatchOptions, PayloadKind};
use serde::Serialize;

use super::{open, write_atomically};
use crate::cli::Kind;
use crate::error::CliError;
use crate::output::{Output, human_bytes};

#[derive(Serialize)]
struct DiffResult {
    output: String,
    kind: String,
    base_hash: Option<String>,
    target_hash: String,
    target_size: u64,
    patch_hash: String,
    patch_size: u64,
    patch_bytes: Option<u64>,
    full_bytes: Option<u64>,
    percent_of_new: f64,
    seconds: f64,
}

fn read_all(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(CliError::file(path))
}

pub fn diff(
    old: &Path,
    new: &Path,
    output: &Path,
    kind: Kind,
    level: i32,
    window_log: u32,
    out: &Output,
) -> Result<(), CliError> {
    let started = Instant::now();
    let old_bytes = read_all(old)?;
    let new_bytes = read_all(new)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let opts = PatchOptions {
        level,
        window_log,
        long_distance: true,
        workers,
    };
    let spinner = out.spinner("diffing");
    let (patch_bytes, full_bytes) = match kind {
        Kind::Auto => {
            let choice = patch::create_best(Some(&old_bytes), &new_bytes, &opts)?;
            (choice.patch, Some(choice.full))
        }
        Kind::Patch => (Some(patch::create_patch(&old_bytes, &new_bytes, &opts)?), None),
        Kind::Full => (None, Some(patch::create_full(&new_bytes, &opts)?)),
    };
    spinner.finish_and_clear();
    let (chosen, chosen_kind) = match (&patch_bytes, &full_bytes) {
        (Some(p), Some(f)) if f.len() <= p.len() => (f, PayloadKind::Full),
        (Some(p), _) => (p, PayloadKind::Patch),
        (None, Some(f)) => (f, PayloadKind::Full),
        (None, None) => return Err(CliError::Usage("nothing to write".into())),
    };
    write_atomically(output, |w| {
        std::io::Write::write_all(w, chosen).map_err(CliError::file(output))
    })?;
    let result = DiffResult {
        output: output.display().to_string(),
        kind: chosen_kind.to_string(),
        base_hash: (chosen_kind == PayloadKind::Patch).then(|| Blake3Hash::of(&old_bytes).to_string()),
        target_hash: Blake3Hash::of(&new_bytes).to_string(),
        target_size: new_bytes.len() as u64,
        patch_hash: Blake3Hash::of(chosen).to_string(),
        patch_size: chosen.len() as u64,
        patch_bytes: patch_bytes.as_ref().map(|p| p.len() as u64),
        full_bytes: full_bytes.as_ref().map(|f| f.len() as u64),
        percent_of_new: 100.0 * chosen.len() as f64 / new_bytes.len().max(1) as f64,
        seconds: started.elapsed().as_secs_f64(),
    };
    out.result(&result, || {
        let mut s = format!(
            "wrote {} update {} ({}, {:.2}% of the new image)\n  target  {} ({} bytes)\n  payload {}",
            result.kind,
            result.output,
            human_bytes(result.patch_size),
            result.percent_of_new,
            result.target_hash,
            result.target_size,
            result.patch_hash
        );
        if let (Some(p), Some(f)) = (result.patch_bytes, result.full_bytes) {
            let (other, size) = if chosen_kind == PayloadKind::Patch {
                ("full image", f)
            } else {
                ("patch", p)
            };
            s.push_str(&format!(
                "\n  the {other} would be {} ({size} bytes)",
                human_bytes(size)
            ));
        }
        s
    });
    Ok(())
}

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
