//! Patches: creation (bidiff + zstd) and streaming, memory-bounded application.
//!
//! A patch file is an 88-byte [`PatchHeader`] and a payload. A full image (`kind = full`) is one zstd frame
//! of the new image. A patch (`kind = patch`) holds bidiff instructions against the base image, split into
//! three streams that compress far better apart than interleaved (as in bsdiff): the compressed lengths of
//! the three frames (3 × u64 little-endian), then the control frame (varints: add length, copy length,
//! zigzag seek), the add frame (new minus old, bytewise; zero-run coded when that is smaller, as the
//! header's [`AddCoding`] says) and the copy frame (new bytes). The header names the base and target images by blake3 hash and size, so a patch applied
//! to the wrong image fails before a byte is written, and the result is checked against the target hash.
//!
//! Application reads the base through `Read + Seek`, the patch through `Read`, and writes through `Write`:
//! memory is the zstd windows (one frame for a full image, three for a patch, each at most
//! 2^`window_log`; patches use 2 MiB windows) plus fixed buffers, whatever the image size.

mod apply;
mod base;
pub mod branch;
pub mod coder;
mod create;
mod header;
pub mod layout;
pub mod zero_runs;

pub use apply::{Applied, ApplyError, ApplyLimits, ErrorClass, apply};
pub use create::{Choice, CreateError, PatchOptions, create_best, create_full, create_patch};
pub use header::{AddCoding, HEADER_LEN, HeaderError, PatchHeader, PayloadKind, VERSION_1, VERSION_2};
pub use layout::LayoutError;

/// The largest zstd window a device accepts by default: 2^23 = 8 MiB.
pub const DEFAULT_MAX_WINDOW_LOG: u32 = 23;

/// The zstd window of each patch stream: 2^21 = 2 MiB. Split streams gain nothing from larger windows.
pub const STREAM_WINDOW_LOG: u32 = 21;

#[cfg(test)]
mod lab;
#[cfg(test)]
mod tests;
