//! Patches: creation (bidiff + zstd) and streaming, memory-bounded application.
//!
//! A patch file is an 88-byte [`PatchHeader`] followed by one zstd frame. The frame holds either a bidiff
//! stream (`kind = patch`: add/copy/seek instructions against the base image) or the whole new image
//! (`kind = full`). The header names the base and target images by blake3 hash and size, so a patch applied
//! to the wrong image fails before a byte is written, and the result is checked against the target hash.
//!
//! Application reads the base through `Read + Seek`, the patch through `Read`, and writes through `Write`:
//! memory is the zstd window (capped, 8 MiB by default) plus fixed buffers, whatever the image size.

mod apply;
mod create;
mod header;

pub use apply::{Applied, ApplyError, ApplyLimits, ErrorClass, apply};
pub use create::{Choice, CreateError, PatchOptions, create_best, create_full, create_patch};
pub use header::{HEADER_LEN, HeaderError, PatchHeader, PayloadKind};

/// The largest zstd window a device accepts by default: 2^23 = 8 MiB.
pub const DEFAULT_MAX_WINDOW_LOG: u32 = 23;

/// The bidiff stream's magic number and version (little-endian u32s at its start).
pub(crate) const BIDIFF_MAGIC: u32 = 0xB1DF;
pub(crate) const BIDIFF_VERSION: u32 = 0x1000;

#[cfg(test)]
mod tests;
