//! `pack` and `unpack`: files to and from CAR v1.

use std::io::BufReader;
use std::path::Path;

use firmchain_update::car::{IndexedCar, write_car};
use firmchain_update::dag::{DagOptions, ReadLimits, read_file};
use firmchain_update::patch::ErrorClass;
use serde::Serialize;

use super::{open, write_atomically};
use crate::error::{CliError, car_class};
use crate::output::Output;

#[derive(Serialize)]
struct PackResult {
    root: String,
    output: String,
    file_size: u64,
    blocks: u64,
    car_size: u64,
}

pub fn pack(file: &Path, output: &Path, chunk_size: usize, out: &Output) -> Result<(), CliError> {
    let f = open(file)?;
    let len = f.metadata().map_err(CliError::file(file))?.len();
    let bar = out.bytes("packing", len);
    let opts = DagOptions {
        chunk_size,
        ..Default::default()
    };
    let packed = write_atomically(output, |w| {
        write_car(BufReader::new(f), opts, w, |n| bar.set_position(n)).map_err(CliError::car(file))
    });
    bar.finish_and_clear();
    let packed = packed?;
    let result = PackResult {
        root: packed.root.cid.to_string(),
        output: output.display().to_string(),
        file_size: packed.root.size,
        blocks: packed.blocks,
        car_size: packed.car_bytes,
    };
    out.result(&result, || {
        format!(
            "{}\n  {} bytes in {} blocks, wrote {}",
            result.root, result.file_size, result.blocks, result.output
        )
    });
    Ok(())
}

#[derive(Serialize)]
struct UnpackResult {
    root: String,
    output: String,
    size: u64,
    blocks: usize,
}

pub fn unpack(car: &Path, output: &Path, root: Option<&str>, out: &Output) -> Result<(), CliError> {
    let car_err = CliError::car(car);
    let mut indexed = IndexedCar::open(BufReader::new(open(car)?)).map_err(car_err)?;
    let root = match root {
        Some(text) => text
            .parse()
            .map_err(|e| CliError::Usage(format!("--root {text:?} is not a CID: {e}")))?,
        None => match indexed.roots() {
            [only] => *only,
            [] => {
                return Err(CliError::Usage(format!(
                    "{} names no root; pass --root",
                    car.display()
                )));
            }
            _ => {
                return Err(CliError::Usage(format!(
                    "{} has several roots; pass --root",
                    car.display()
                )));
            }
        },
    };
    let blocks = indexed.len();
    let bar = out.spinner("unpacking");
    let size = write_atomically(output, |w| {
        read_file(&root, &mut indexed, w, ReadLimits::default(), |n| {
            bar.set_position(n)
        })
        .map_err(|e| {
            let class = match &e {
                firmchain_update::dag::ReadError::Source { source, .. } => car_class(source),
                firmchain_update::dag::ReadError::Block(_) => ErrorClass::HashMismatch,
                firmchain_update::dag::ReadError::Write(_) => ErrorClass::Io,
                _ => ErrorClass::Corrupt,
            };
            CliError::Unpack {
                path: car.to_owned(),
                message: e.to_string(),
                class,
            }
        })
    });
    bar.finish_and_clear();
    let size = size?;
    let result = UnpackResult {
        root: root.to_string(),
        output: output.display().to_string(),
        size,
        blocks,
    };
    out.result(&result, || {
        format!(
            "verified {} and wrote {} ({} bytes)",
            result.root, result.output, result.size
        )
    });
    Ok(())
}
