//! `diff` (publishers: the full build only).

use std::path::Path;
use std::time::Instant;

use firmchain_update::Blake3Hash;
use firmchain_update::patch::{self, PatchOptions, PayloadKind};
use serde::Serialize;

use super::write_atomically;
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
