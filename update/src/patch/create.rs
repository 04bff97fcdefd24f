//! Patch creation (publisher side): bidiff against the old image, then zstd.

use std::io::{self, Write};

use super::header::{AddCoding, HEADER_LEN, PatchHeader, PayloadKind};
use super::{STREAM_WINDOW_LOG, zero_runs};
use crate::hash::Blake3Hash;
use crate::varint;

/// How patches are made.
#[derive(Clone, Debug)]
pub struct PatchOptions {
    /// zstd level, 1..=22.
    pub level: i32,
    /// log2 of the zstd window; devices must accept at least this (see [`super::ApplyLimits`]).
    pub window_log: u32,
    /// zstd long-distance matching.
    pub long_distance: bool,
    /// zstd worker threads (0: compress on the calling thread).
    pub workers: u32,
}

impl Default for PatchOptions {
    fn default() -> Self {
        PatchOptions {
            level: 19,
            window_log: super::DEFAULT_MAX_WINDOW_LOG,
            long_distance: true,
            workers: 0,
        }
    }
}

/// Why a patch could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("zstd level {0} is outside 1..=22")]
    Level(i32),
    #[error("zstd window log {0} is outside 10..=31")]
    WindowLog(u32),
    #[error("compressing: {0}")]
    Compress(#[source] io::Error),
}

impl PatchOptions {
    fn check(&self) -> Result<(), CreateError> {
        if !(1..=22).contains(&self.level) {
            return Err(CreateError::Level(self.level));
        }
        if !(10..=31).contains(&self.window_log) {
            return Err(CreateError::WindowLog(self.window_log));
        }
        Ok(())
    }
}

/// The three streams of a bidiff patch, kept apart because they compress very differently: instructions,
/// add bytes (new minus old, mostly zeros) and copy bytes (new data).
#[derive(Default)]
struct Streams {
    control: Vec<u8>,
    add: Vec<u8>,
    copy: Vec<u8>,
}

/// The bidiff instructions that turn `old` into `new`, split into streams.
fn bidiff_streams(old: &[u8], new: &[u8]) -> Streams {
    let mut s = Streams::default();
    let mut emit = |add: &[u8], copy: &[u8], seek: i64| {
        varint::encode(add.len() as u64, &mut s.control);
        varint::encode(copy.len() as u64, &mut s.control);
        varint::encode(((seek << 1) ^ (seek >> 63)) as u64, &mut s.control);
        s.add.extend_from_slice(add);
        s.copy.extend_from_slice(copy);
    };
    if new.is_empty() {
        return s;
    }
    if old.is_empty() {
        emit(&[], new, 0);
        return s;
    }
    let mut translator =
        bidiff::Translator::new(old, new, |c: &bidiff::Control| -> Result<(), std::io::Error> {
            emit(c.add, c.copy, c.seek);
            Ok(())
        });
    // Neither closure fails, so neither call can.
    let _ = bidiff::diff(old, new, &bidiff::DiffParams::default(), |m| {
        translator.translate(m)
    });
    let _ = translator.close();
    s
}

/// One zstd frame of `payload` appended to `out`.
fn compress_into(
    out: Vec<u8>,
    payload: &[u8],
    window_log: u32,
    opts: &PatchOptions,
) -> Result<Vec<u8>, CreateError> {
    let mut enc = zstd::stream::Encoder::new(out, opts.level).map_err(CreateError::Compress)?;
    let setup = |enc: &mut zstd::stream::Encoder<'_, Vec<u8>>| -> io::Result<()> {
        enc.set_pledged_src_size(Some(payload.len() as u64))?;
        enc.include_checksum(false)?;
        enc.include_contentsize(true)?;
        enc.window_log(window_log)?;
        enc.long_distance_matching(opts.long_distance)?;
        if opts.workers > 0 {
            enc.multithread(opts.workers)?;
        }
        Ok(())
    };
    setup(&mut enc).map_err(CreateError::Compress)?;
    enc.write_all(payload).map_err(CreateError::Compress)?;
    enc.finish().map_err(CreateError::Compress)
}

/// A patch file that turns `old` into `new`.
pub fn create_patch(old: &[u8], new: &[u8], opts: &PatchOptions) -> Result<Vec<u8>, CreateError> {
    opts.check()?;
    let window_log = opts.window_log.min(STREAM_WINDOW_LOG);
    let streams = bidiff_streams(old, new);
    // The add stream is coded raw or as zero runs, whichever compresses smaller.
    let raw_add = compress_into(Vec::new(), &streams.add, window_log, opts)?;
    let runs_add = compress_into(Vec::new(), &zero_runs::encode(&streams.add), window_log, opts)?;
    let (add_coding, add_frame) = if runs_add.len() < raw_add.len() {
        (AddCoding::ZeroRuns, runs_add)
    } else {
        (AddCoding::Raw, raw_add)
    };
    let header = PatchHeader {
        kind: PayloadKind::Patch,
        window_log: window_log as u8,
        add_coding,
        base_hash: Blake3Hash::of(old),
        base_size: old.len() as u64,
        target_hash: Blake3Hash::of(new),
        target_size: new.len() as u64,
    };
    let control = compress_into(Vec::new(), &streams.control, window_log, opts)?;
    let copy = compress_into(Vec::new(), &streams.copy, window_log, opts)?;
    let frames = [control, add_frame, copy];
    let mut out = Vec::with_capacity(HEADER_LEN + 24 + frames.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(&header.to_bytes());
    for frame in &frames {
        out.extend_from_slice(&(frame.len() as u64).to_le_bytes());
    }
    for frame in &frames {
        out.extend_from_slice(frame);
    }
    Ok(out)
}

/// A patch file that carries the whole of `new`, for devices whose image is unknown or too old.
pub fn create_full(new: &[u8], opts: &PatchOptions) -> Result<Vec<u8>, CreateError> {
    opts.check()?;
    let header = PatchHeader {
        kind: PayloadKind::Full,
        window_log: opts.window_log as u8,
        add_coding: AddCoding::Raw,
        base_hash: Blake3Hash::ZERO,
        base_size: 0,
        target_hash: Blake3Hash::of(new),
        target_size: new.len() as u64,
    };
    let mut out = header.to_bytes().to_vec();
    out.reserve(new.len() / 3);
    compress_into(out, new, opts.window_log, opts)
}

/// Both payloads of a release and which of them is smaller.
#[derive(Debug)]
pub struct Choice {
    /// The patch from the old image (absent when there is no old image).
    pub patch: Option<Vec<u8>>,
    /// The compressed full image.
    pub full: Vec<u8>,
}

impl Choice {
    /// The kind that costs the fewest bytes to ship.
    pub fn smaller_kind(&self) -> PayloadKind {
        match &self.patch {
            Some(p) if p.len() < self.full.len() => PayloadKind::Patch,
            _ => PayloadKind::Full,
        }
    }

    /// The smaller payload's bytes.
    pub fn smaller(&self) -> &[u8] {
        match (&self.patch, self.smaller_kind()) {
            (Some(p), PayloadKind::Patch) => p,
            _ => &self.full,
        }
    }
}

/// Make both the patch and the full image; [`Choice::smaller`] says which to ship.
pub fn create_best(old: Option<&[u8]>, new: &[u8], opts: &PatchOptions) -> Result<Choice, CreateError> {
    let patch = old.map(|old| create_patch(old, new, opts)).transpose()?;
    Ok(Choice {
        patch,
        full: create_full(new, opts)?,
    })
}
