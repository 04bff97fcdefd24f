//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use firmchain_update::Blake3Hash;

/// Secure, decentralised firmware distribution for IoT fleets.
///
/// Exit codes: 0 success, 1 I/O or other failure, 2 usage, 3 wrong base image, 4 corrupt input,
/// 5 hash mismatch, 6 truncated input.
#[derive(Debug, Parser)]
#[command(name = "firmchain", version, about, long_about = None)]
pub struct Cli {
    /// Print results as JSON on stdout (one object per command), and no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make an update from OLD to NEW: a bidiff+zstd patch, or the compressed full image if that is smaller.
    Diff {
        /// The image devices run now.
        old: PathBuf,
        /// The new image.
        new: PathBuf,
        /// Where to write the update.
        #[arg(short, long)]
        output: PathBuf,
        /// Which payload to write: the smaller one, the patch, or the full image.
        #[arg(long, value_enum, default_value_t = Kind::Auto)]
        kind: Kind,
        /// zstd compression level (1-22).
        #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
        level: i32,
        /// log2 of the zstd window; devices must allow it (default 23 = 8 MiB).
        #[arg(long, default_value_t = 23, value_parser = clap::value_parser!(u32).range(10..=30))]
        window_log: u32,
    },
    /// Apply an update to BASE and write the verified result to OUT (OUT is untouched unless it verifies).
    Apply {
        /// The image the update applies to (ignored for a full-image update).
        base: PathBuf,
        /// The update made by `firmchain diff`.
        patch: PathBuf,
        /// Where to write the new image.
        #[arg(short, long)]
        output: PathBuf,
        /// Refuse unless the result has this blake3 hash (64 hex digits).
        #[arg(long)]
        expect: Option<Blake3Hash>,
        /// The largest zstd window (log2) to accept.
        #[arg(long, default_value_t = 23, value_parser = clap::value_parser!(u32).range(10..=30))]
        max_window_log: u32,
    },
    /// Print the blake3 hash and size of a file.
    Hash {
        /// The file to hash.
        file: PathBuf,
    },
    /// Chunk a file into IPFS blocks and write them as a CAR v1; prints the root CID.
    Pack {
        /// The file to pack.
        file: PathBuf,
        /// Where to write the CAR.
        #[arg(short, long)]
        output: PathBuf,
        /// Bytes per chunk (at most 1 MiB).
        #[arg(long, default_value_t = 262_144, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        chunk_size: u32,
    },
    /// Reassemble the file in a CAR, verifying every block against its CID.
    Unpack {
        /// The CAR file.
        car: PathBuf,
        /// Where to write the file.
        #[arg(short, long)]
        output: PathBuf,
        /// The root to extract (default: the CAR's only root).
        #[arg(long)]
        root: Option<String>,
    },
    /// Run a local walk-through of diff, pack, unpack and apply on generated sample firmware.
    Demo {
        /// Work in this folder (kept afterwards) instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Size of the sample firmware in MiB.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
        size_mib: u32,
    },
}

/// Which payload `diff` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Whichever is smaller.
    Auto,
    /// The patch against OLD.
    Patch,
    /// The compressed full image.
    Full,
}
