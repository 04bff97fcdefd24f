//! Patches: creation (branch filter, bidiff, zstd or LZMA2 per stream) and streaming, memory-bounded
//! application.
//!
//! A patch file is an 88-byte [`PatchHeader`] and a payload. A full image (`kind = full`, version 1) is one
//! zstd frame of the new image. A patch (`kind = patch`) holds bidiff instructions against the base image,
//! split into three streams that compress far better apart than interleaved (as in bsdiff): the control
//! stream (varints: add length, copy length, zigzag seek), the add stream (new minus old, bytewise; zero-run
//! coded when that is smaller, as the header's [`AddCoding`] says) and the copy stream (new bytes). Version 2
//! puts a [`layout`] table after the header (the [`branch`] filter of executables, and each stream's
//! [`coder`], window and length); version 1 has only the three lengths and zstd frames. The header names the
//! base and target images by blake3 hash and size, so a patch applied to the wrong image fails before a byte
//! is written, and the result is checked against the target hash.
//!
//! Application reads the base through `Read + Seek`, the patch through `Read + Seek`, and writes through
//! `Write`: memory is the stream windows (one zstd frame for a full image; three streams for a patch, each at
//! most 2^[`STREAM_WINDOW_LOG`] as made here, and never more than the device's limit) plus fixed buffers and,
//! with the x86-64 filter, a byte per 4 KiB of base image, whatever the image size.

mod apply;
mod base;
pub mod branch;
pub mod coder;
#[cfg(feature = "diff")]
mod create;
mod header;
pub mod layout;
#[cfg(feature = "diff")]
mod matcher;
pub mod zero_runs;

pub use apply::{Applied, ApplyError, ApplyLimits, ErrorClass, apply};
#[cfg(feature = "diff")]
pub use create::{Choice, CreateError, PatchOptions, create_best, create_full, create_patch};
pub use header::{AddCoding, HEADER_LEN, HeaderError, PatchHeader, PayloadKind, VERSION_1, VERSION_2};
pub use layout::LayoutError;

/// The largest zstd window a device accepts by default: 2^23 = 8 MiB.
pub const DEFAULT_MAX_WINDOW_LOG: u32 = 23;

/// The largest window (zstd) or dictionary (LZMA2) of a patch stream: 2^20 = 1 MiB, so a patch decodes in
/// 3 MiB of windows. Split streams gain next to nothing from larger ones (a 38 MB executable: 0.02% at 2^21).
pub const STREAM_WINDOW_LOG: u32 = 20;

// The patch tests make their patches, so they need the creating half.
#[cfg(all(test, feature = "diff"))]
mod tests;
