//! A minimal stand-in for `firmchain diff` / `firmchain apply` (same arguments), for quick patch-format
//! measurements without building the whole node: `FC="target/release/examples/patch_tool" bash bench/patch.sh`.
//!
//!   patch_tool --quiet diff OLD NEW -o OUT [--kind patch|full]
//!   patch_tool --quiet apply BASE PATCH -o OUT

use std::fs::File;
use std::io::{BufReader, BufWriter};

use firmchain_update::patch::{self, ApplyLimits, PatchOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--quiet").collect();
    let out_at = args.iter().position(|a| a == "-o").ok_or("missing -o")?;
    let out = &args[out_at + 1];
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    // WINDOW_LOG=n caps every stream's window (for measuring what smaller device windows cost).
    let window_log = std::env::var("WINDOW_LOG").ok().and_then(|v| v.parse().ok());
    let opts = PatchOptions {
        workers,
        window_log: window_log.unwrap_or(PatchOptions::default().window_log),
        ..PatchOptions::default()
    };
    match args[0].as_str() {
        "diff" => {
            let old = std::fs::read(&args[1])?;
            let new = std::fs::read(&args[2])?;
            let bytes = if args.iter().any(|a| a == "full") {
                patch::create_full(&new, &opts)?
            } else {
                patch::create_patch(&old, &new, &opts)?
            };
            std::fs::write(out, bytes)?;
        }
        "apply" => {
            let base = File::open(&args[1])?;
            let p = BufReader::new(File::open(&args[2])?);
            let w = BufWriter::new(File::create(out)?);
            patch::apply(base, p, w, &ApplyLimits::default(), |_| {})?;
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}
