//! Streaming patch application with bounded memory.

use std::cell::RefCell;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use super::DEFAULT_MAX_WINDOW_LOG;
use super::base::Base;
use super::branch::Unfilter;
use super::coder::{self, Coder};
use super::header::{AddCoding, HEADER_LEN, HeaderError, PatchHeader, PayloadKind, VERSION_1};
use super::layout::{Layout, LayoutError, StreamEntry};
use super::zero_runs::ZeroRunReader;
use crate::hash::{Blake3Hash, HashingWriter};
use crate::varint::{self, ReadVarint};

const BUF: usize = 64 * 1024;

/// What the device is willing to apply.
#[derive(Clone, Debug)]
pub struct ApplyLimits {
    /// The largest window (log2) accepted for any stream, zstd window or LZMA2 dictionary; bounds each
    /// decoder's memory at 2^this bytes, checked before any decoder is built.
    pub max_window_log: u32,
    /// The target hash the caller expects (from a verified release record, or `--expect`).
    pub expect_target: Option<Blake3Hash>,
    /// The target size the caller expects.
    pub expect_size: Option<u64>,
}

impl Default for ApplyLimits {
    fn default() -> Self {
        ApplyLimits {
            max_window_log: DEFAULT_MAX_WINDOW_LOG,
            expect_target: None,
            expect_size: None,
        }
    }
}

/// The outcome of a successful application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The patch's header.
    pub header: PatchHeader,
    /// blake3 of what was written (equal to `header.target_hash`).
    pub target_hash: Blake3Hash,
    /// Bytes written.
    pub written: u64,
}

/// Why a patch was not applied. Nothing that fails here is a valid result: callers must discard the output.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("bad patch header: {0}")]
    Header(#[from] HeaderError),
    #[error("bad stream table: {0}")]
    Layout(#[from] LayoutError),
    #[error(
        "wrong base image: the patch applies to {expected} ({expected_size} bytes), this image is {actual} ({actual_size} bytes)"
    )]
    WrongBase {
        expected: Blake3Hash,
        expected_size: u64,
        actual: Blake3Hash,
        actual_size: u64,
    },
    #[error("patch makes {announced}, but {expected} was expected")]
    UnexpectedTarget {
        expected: Blake3Hash,
        announced: Blake3Hash,
    },
    #[error("patch makes {announced} bytes, but {expected} bytes were expected")]
    UnexpectedSize { expected: u64, announced: u64 },
    #[error("patch needs a window of 2^{needed} bytes, this device allows 2^{limit}")]
    WindowTooLarge { needed: u32, limit: u32 },
    #[error("patch is truncated: {0}")]
    Truncated(String),
    #[error("patch is corrupt: {0}")]
    Corrupt(String),
    #[error("patch reads outside the base image (position {position}, image is {size} bytes)")]
    BaseOutOfRange { position: i128, size: u64 },
    #[error("patch produces more than the announced {limit} bytes")]
    OutputTooLarge { limit: u64 },
    #[error("patch produces {actual} bytes, the header announced {expected}")]
    OutputTooShort { expected: u64, actual: u64 },
    #[error("result hash mismatch: expected {expected}, got {actual}")]
    TargetHashMismatch {
        expected: Blake3Hash,
        actual: Blake3Hash,
    },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
}

/// Coarse classes of [`ApplyError`], for exit codes and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The patch is for another image.
    WrongBase,
    /// The patch is malformed.
    Corrupt,
    /// A hash or size does not match what was expected.
    HashMismatch,
    /// The patch ends early.
    Truncated,
    /// Reading or writing failed.
    Io,
}

impl ApplyError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ApplyError::WrongBase { .. } => ErrorClass::WrongBase,
            ApplyError::Header(HeaderError::Truncated)
            | ApplyError::Layout(LayoutError::Truncated)
            | ApplyError::Truncated(_) => ErrorClass::Truncated,
            ApplyError::Header(HeaderError::Io(_))
            | ApplyError::Layout(LayoutError::Io(_))
            | ApplyError::Io { .. } => ErrorClass::Io,
            ApplyError::UnexpectedTarget { .. }
            | ApplyError::UnexpectedSize { .. }
            | ApplyError::TargetHashMismatch { .. } => ErrorClass::HashMismatch,
            _ => ErrorClass::Corrupt,
        }
    }
}

/// A reader that fails (rather than ending) once more than `limit` bytes were asked of it.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "decompressed payload exceeds its bound",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Map an error from the decompressed payload stream.
fn payload_error(e: io::Error, what: &str) -> ApplyError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => ApplyError::Truncated(format!("{what}: {e}")),
        _ => ApplyError::Corrupt(format!("{what}: {e}")),
    }
}

fn write_error(e: io::Error, limit: u64) -> ApplyError {
    match e.kind() {
        io::ErrorKind::FileTooLarge => ApplyError::OutputTooLarge { limit },
        _ => ApplyError::Io {
            context: "writing the result",
            source: e,
        },
    }
}

/// A window onto `[pos, end)` of a shared patch file, so the three frames of a patch stream side by side.
struct Section<'a, P> {
    file: &'a RefCell<P>,
    pos: u64,
    end: u64,
}

impl<P: Read + Seek> Read for Section<'_, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let mut file = self.file.borrow_mut();
        file.seek(SeekFrom::Start(self.pos))?;
        let n = file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The decoder of one stream.
enum Decoder<'a, P: Read + Seek> {
    Zstd(zstd::stream::read::Decoder<'static, BufReader<Section<'a, P>>>),
    Lzma2(liblzma::bufread::XzDecoder<BufReader<Section<'a, P>>>),
}

impl<P: Read + Seek> Read for Decoder<'_, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Lzma2(d) => d.read(buf),
        }
    }
}

impl<'a, P: Read + Seek> Decoder<'a, P> {
    /// What is left of the stream's section after the decoder stopped.
    fn finish(self) -> BufReader<Section<'a, P>> {
        match self {
            Decoder::Zstd(d) => d.finish(),
            Decoder::Lzma2(d) => d.into_inner(),
        }
    }
}

type Frame<'a, P> = Capped<Decoder<'a, P>>;

/// A decoder of the one stream in `section`, with its coder and window (checked against the header's, and
/// so the device's, limit when the table was read), limited to `bound` decompressed bytes.
fn frame<P: Read + Seek>(
    section: Section<'_, P>,
    entry: StreamEntry,
    bound: u64,
) -> Result<Frame<'_, P>, ApplyError> {
    let io = |context| move |source| ApplyError::Io { context, source };
    let inner = match entry.coder {
        Coder::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(section)
                .map_err(io("starting zstd"))?
                .single_frame();
            decoder
                .window_log_max(entry.window_log.into())
                .map_err(io("configuring zstd"))?;
            Decoder::Zstd(decoder)
        }
        Coder::Lzma2 => Decoder::Lzma2(
            coder::lzma2_decoder(BufReader::new(section), entry.window_log).map_err(io("starting lzma2"))?,
        ),
    };
    Ok(Capped { inner, left: bound })
}

/// Check that a reader has nothing left.
fn probe_end<R: Read>(reader: &mut R, what: &str) -> Result<(), ApplyError> {
    match reader.read(&mut [0u8; 1]) {
        Ok(0) => Ok(()),
        Ok(_) => Err(ApplyError::Corrupt(format!(
            "{what} has data past the end of the instructions"
        ))),
        Err(e) => Err(payload_error(e, what)),
    }
}

/// Check that a frame was read to its end and nothing follows it in its section.
fn finish_frame<P: Read + Seek>(mut frame: Frame<'_, P>, what: &str) -> Result<(), ApplyError> {
    probe_end(&mut frame, what)?;
    let mut rest = frame.inner.finish();
    match rest.read(&mut [0u8; 1]) {
        Ok(0) => Ok(()),
        Ok(_) => Err(ApplyError::Corrupt(format!(
            "trailing bytes after the {what} frame"
        ))),
        Err(source) => Err(ApplyError::Io {
            context: "reading the patch",
            source,
        }),
    }
}

/// Apply `patch` to `base`, writing the new image to `out`. `progress` gets the bytes written so far.
///
/// Checks, in order: the header; the expectations in `limits`; the window; the stream table (each stream's
/// window within the header's) and the stream lengths against the file; the base image's hash (patches
/// only); then streams the payload, never writing past the announced size; finally the result's hash. On
/// error, whatever was written to `out` must be discarded.
pub fn apply<B, P, W>(
    base: B,
    mut patch: P,
    out: W,
    limits: &ApplyLimits,
    mut progress: impl FnMut(u64),
) -> Result<Applied, ApplyError>
where
    B: Read + Seek,
    P: Read + Seek,
    W: Write,
{
    let header = PatchHeader::read(&mut patch)?;
    if let Some(expected) = limits.expect_target.filter(|e| *e != header.target_hash) {
        return Err(ApplyError::UnexpectedTarget {
            expected,
            announced: header.target_hash,
        });
    }
    if let Some(expected) = limits.expect_size.filter(|e| *e != header.target_size) {
        return Err(ApplyError::UnexpectedSize {
            expected,
            announced: header.target_size,
        });
    }
    if u32::from(header.window_log) > limits.max_window_log {
        return Err(ApplyError::WindowTooLarge {
            needed: header.window_log.into(),
            limit: limits.max_window_log,
        });
    }
    let io = |context| move |source| ApplyError::Io { context, source };
    let patch_len = patch.seek(SeekFrom::End(0)).map_err(io("reading the patch"))?;
    patch
        .seek(SeekFrom::Start(HEADER_LEN as u64))
        .map_err(io("reading the patch"))?;
    let layout = match header.kind {
        PayloadKind::Full => None,
        PayloadKind::Patch if header.version == VERSION_1 => {
            Some(Layout::read_v1(&mut patch, header.window_log)?)
        }
        PayloadKind::Patch => Some(Layout::read(
            &mut patch,
            header.base_size,
            header.target_size,
            header.window_log,
        )?),
    };
    let frames_at = patch.stream_position().map_err(io("reading the patch"))?;
    if let Some(layout) = &layout {
        check_lengths(layout, frames_at, patch_len)?;
    }

    let mut base = Base::new(base, layout.as_ref().and_then(|l| l.old_filter.clone()));
    if header.kind == PayloadKind::Patch {
        let (actual, actual_size) = base.verify().map_err(io("reading the base image"))?;
        if actual != header.base_hash || actual_size != header.base_size {
            return Err(ApplyError::WrongBase {
                expected: header.base_hash,
                expected_size: header.base_size,
                actual,
                actual_size,
            });
        }
    }

    let file = RefCell::new(patch);
    let target = header.target_size;
    let filter = layout.as_ref().and_then(|l| l.filter.clone());
    let mut out = Unfilter::new(HashingWriter::new(out, target), filter);
    match layout {
        None => {
            let entry = StreamEntry {
                coder: Coder::Zstd,
                window_log: header.window_log,
                len: patch_len - frames_at,
            };
            let section = Section {
                file: &file,
                pos: frames_at,
                end: patch_len,
            };
            let mut full = frame(section, entry, target)?;
            copy_exact(&mut full, &mut out, u64::MAX, true, &mut progress)?;
            finish_frame(full, "image")?;
        }
        Some(layout) => {
            let mut at = frames_at;
            let mut section = |len: u64| {
                let s = Section {
                    file: &file,
                    pos: at,
                    end: at + len,
                };
                at += len;
                s
            };
            let [control_e, add_e, copy_e] = layout.streams;
            // A valid control stream is at most a few varints per instruction; anything far larger is a
            // decompression bomb. The add and copy streams together are exactly the target.
            let mut control = frame(
                section(control_e.len),
                control_e,
                target.saturating_mul(4).saturating_add(1 << 16),
            )?;
            let add_bound = match header.add_coding {
                AddCoding::Raw => target,
                // Zero-run coding is at most a few varints per run on top of the literal bytes.
                AddCoding::ZeroRuns => target.saturating_mul(3).saturating_add(1 << 16),
            };
            let mut add = frame(section(add_e.len), add_e, add_bound)?;
            let mut copy = frame(section(copy_e.len), copy_e, target)?;
            let mut run = |add: &mut dyn Read| {
                apply_bidiff(
                    &mut base,
                    header.base_size,
                    &mut control,
                    add,
                    &mut copy,
                    &mut out,
                    &mut progress,
                )
            };
            match header.add_coding {
                AddCoding::Raw => run(&mut add)?,
                AddCoding::ZeroRuns => {
                    let mut expanded = Capped {
                        inner: ZeroRunReader::new(&mut add),
                        left: target,
                    };
                    run(&mut expanded)?;
                    probe_end(&mut expanded, "add stream")?;
                }
            }
            finish_frame(control, "control stream")?;
            finish_frame(add, "add stream")?;
            finish_frame(copy, "copy stream")?;
        }
    }

    let limit = out.get_ref().limit();
    let hashing = out.finish().map_err(|e| write_error(e, limit))?;
    let (actual, written, mut sink) = hashing.finish();
    sink.flush().map_err(io("flushing the result"))?;
    if written != header.target_size {
        return Err(ApplyError::OutputTooShort {
            expected: header.target_size,
            actual: written,
        });
    }
    if actual != header.target_hash {
        return Err(ApplyError::TargetHashMismatch {
            expected: header.target_hash,
            actual,
        });
    }
    Ok(Applied {
        header,
        target_hash: actual,
        written,
    })
}

/// Check that the streams, starting at `frames_at`, end exactly at the end of the file.
fn check_lengths(layout: &Layout, frames_at: u64, patch_len: u64) -> Result<(), ApplyError> {
    let needed = layout
        .streams
        .iter()
        .try_fold(frames_at, |acc, s| acc.checked_add(s.len))
        .ok_or_else(|| ApplyError::Corrupt("frame lengths overflow".into()))?;
    if needed > patch_len {
        return Err(ApplyError::Truncated(format!(
            "patch is {patch_len} bytes, its frames need {needed}"
        )));
    }
    if needed < patch_len {
        return Err(ApplyError::Corrupt(format!(
            "{} trailing bytes after the last frame",
            patch_len - needed
        )));
    }
    Ok(())
}

/// Copy `len` bytes (or everything, when `to_end`) from the payload to the output.
fn copy_exact<R: Read, W: Write>(
    from: &mut R,
    to: &mut Unfilter<HashingWriter<W>>,
    len: u64,
    to_end: bool,
    progress: &mut impl FnMut(u64),
) -> Result<(), ApplyError> {
    let limit = to.get_ref().limit();
    let mut buf = [0u8; 16 * 1024];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match from.read(&mut buf[..want]) {
            Ok(0) if to_end => return Ok(()),
            Ok(0) => {
                return Err(ApplyError::Corrupt(format!(
                    "copy stream ends {left} bytes into a copy"
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(payload_error(e, "payload")),
        };
        to.write_all(&buf[..n]).map_err(|e| write_error(e, limit))?;
        left -= n as u64;
        progress(to.written());
    }
    Ok(())
}

fn apply_bidiff<B: Read + Seek, R: Read, W: Write>(
    base: &mut Base<B>,
    base_size: u64,
    control: &mut R,
    add: &mut dyn Read,
    copy: &mut R,
    out: &mut Unfilter<HashingWriter<W>>,
    progress: &mut impl FnMut(u64),
) -> Result<(), ApplyError> {
    let limit = out.get_ref().limit();
    let instruction =
        |control: &mut R| varint::read_required(control).map_err(|e| payload_error(e, "control stream"));
    let mut pos: u64 = 0;
    let mut old = vec![0u8; BUF];
    let mut dif = vec![0u8; BUF];
    loop {
        let add_len = match varint::read(control).map_err(|e| payload_error(e, "control stream"))? {
            ReadVarint::Eof => return Ok(()),
            ReadVarint::Value(v) => v,
        };
        let copy_len = instruction(control)?;
        let seek = varint::unzigzag(instruction(control)?);
        let room = limit - out.written();
        if add_len > room || copy_len > room - add_len {
            return Err(ApplyError::OutputTooLarge { limit });
        }
        if pos.checked_add(add_len).is_none_or(|end| end > base_size) {
            return Err(ApplyError::BaseOutOfRange {
                position: i128::from(pos) + i128::from(add_len),
                size: base_size,
            });
        }
        let mut left = add_len;
        while left > 0 {
            let n = old.len().min(left as usize);
            base.read_exact(&mut old[..n]).map_err(|source| ApplyError::Io {
                context: "reading the base image",
                source,
            })?;
            add.read_exact(&mut dif[..n]).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => ApplyError::Corrupt("add stream ends early".into()),
                _ => payload_error(e, "add stream"),
            })?;
            for (o, d) in old[..n].iter_mut().zip(&dif[..n]) {
                *o = o.wrapping_add(*d);
            }
            out.write_all(&old[..n]).map_err(|e| write_error(e, limit))?;
            left -= n as u64;
            progress(out.written());
        }
        pos += add_len;
        copy_exact(copy, out, copy_len, false, progress)?;
        let target = i128::from(pos) + i128::from(seek);
        if target < 0 || target > i128::from(base_size) {
            return Err(ApplyError::BaseOutOfRange {
                position: target,
                size: base_size,
            });
        }
        base.seek_relative(seek);
        pos = target as u64;
    }
}
