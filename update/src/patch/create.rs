//! Patch creation (publisher side): branch filter, bsdiff matching against the old image ([`super::matcher`]),
//! then zstd or LZMA2 per stream.

use std::io::{self, Write};

use super::branch::{self, Arch};
use super::coder::{self, Coder, LzmaTuning};
use super::header::{AddCoding, HEADER_LEN, PatchHeader, PayloadKind, VERSION_1, VERSION_2};
use super::layout::{Layout, StreamEntry};
use super::matcher::{Match, Scan, SuffixArray};
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
    #[error("the old image is {size} bytes; patches are made against images of at most {max} bytes")]
    OldTooLarge { size: u64, max: u64 },
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
pub(super) struct Streams {
    pub(super) control: Vec<u8>,
    pub(super) add: Vec<u8>,
    pub(super) copy: Vec<u8>,
}

/// The bidiff instructions that turn `old` into `new`, split into streams (`old` at most `i32::MAX` bytes:
/// [`create_patch`] checks).
pub(super) fn bidiff_streams(old: &[u8], new: &[u8]) -> Streams {
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
    let sa = SuffixArray::new(old);
    // Each instruction is written when the next one is known: its seek leads to the next one's old start.
    let mut add = Vec::new();
    let mut prev: Option<Match> = None;
    for m in Scan::new(old, new, &sa) {
        if let Some(p) = prev {
            let seek = m.add_old_start as i64 - (p.add_old_start + p.add_length) as i64;
            emit(&add, &new[p.copy_start()..p.copy_end], seek);
        }
        add.clear();
        let (o, n) = (&old[m.add_old_start..], &new[m.add_new_start..]);
        add.extend(
            o[..m.add_length]
                .iter()
                .zip(&n[..m.add_length])
                .map(|(o, n)| n.wrapping_sub(*o)),
        );
        prev = Some(m);
    }
    if let Some(p) = prev {
        emit(&add, &new[p.copy_start()..p.copy_end], 0);
    }
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

/// One candidate coding of a stream: its coder, window log and bytes.
struct Coded {
    coder: Coder,
    window_log: u8,
    bytes: Vec<u8>,
}

/// Raw add streams up to this size also try LZMA2.
const RAW_ADD_LZMA: usize = 8 << 20;

/// Streams up to this size also try zstd (cheap there; on larger streams LZMA2 has always won).
const ZSTD_TRIAL: usize = 4 << 20;

/// The smallest coding of `data` among LZMA2 with each of `tunings` and (for small streams, or with no
/// tunings) zstd, each with the smallest window that holds the stream, at most 2^`max_log`.
fn smallest(
    data: &[u8],
    max_log: u8,
    tunings: &[LzmaTuning],
    opts: &PatchOptions,
) -> Result<Coded, CreateError> {
    let mut best: Option<Coded> = None;
    let mut keep = |c: Coded| {
        if best.as_ref().is_none_or(|b| c.bytes.len() < b.bytes.len()) {
            best = Some(c);
        }
    };
    if max_log >= 12 {
        let log = coder::fitting_log(data.len(), 12, max_log);
        for t in tunings {
            let bytes =
                coder::lzma2_compress(data, log, *t, opts.level >= 19).map_err(CreateError::Compress)?;
            keep(Coded {
                coder: Coder::Lzma2,
                window_log: log,
                bytes,
            });
        }
    }
    if data.len() <= ZSTD_TRIAL || tunings.is_empty() || max_log < 12 {
        let log = coder::fitting_log(data.len(), 10, max_log);
        keep(Coded {
            coder: Coder::Zstd,
            window_log: log,
            bytes: compress_into(Vec::new(), data, log.into(), opts)?,
        });
    }
    best.ok_or_else(|| CreateError::Compress(io::Error::other("no coder for the stream")))
}

/// The three streams, each coded its smallest way.
struct CodedStreams {
    add_coding: AddCoding,
    coded: [Coded; 3],
}

/// Code the three streams, the candidates of each on their own thread.
fn code_streams(streams: &Streams, max_log: u8, opts: &PatchOptions) -> Result<CodedStreams, CreateError> {
    use LzmaTuning as T;
    let joined = |h: std::thread::ScopedJoinHandle<'_, Result<Coded, CreateError>>| {
        h.join()
            .map_err(|_| CreateError::Compress(io::Error::other("coding thread panicked")))?
    };
    let (control, runs, raw, copy) = std::thread::scope(|scope| {
        let control = scope.spawn(|| smallest(&streams.control, max_log, &[T::DEFAULT, T::BYTES], opts));
        // The add stream is coded as zero runs, or raw when that is smaller. LZMA2 on a large raw add
        // stream (mostly zeros) takes many times as long as on its zero runs for about 1% less, so large
        // ones try zstd only, and the largest nothing.
        let runs = scope.spawn(|| {
            smallest(
                &zero_runs::encode(&streams.add),
                max_log,
                &[T::RUNS, T::BYTES],
                opts,
            )
        });
        let raw = scope.spawn(|| {
            let tunings: &[LzmaTuning] = if streams.add.len() <= RAW_ADD_LZMA {
                &[T::BYTES]
            } else {
                &[]
            };
            (streams.add.len() <= ZSTD_TRIAL || !tunings.is_empty())
                .then(|| smallest(&streams.add, max_log, tunings, opts))
                .transpose()
        });
        let copy = smallest(&streams.copy, max_log, &[T::DEFAULT, T::CODE], opts);
        let raw = raw
            .join()
            .map_err(|_| CreateError::Compress(io::Error::other("coding thread panicked")))
            .and_then(|r| r);
        (joined(control), joined(runs), raw, copy)
    });
    let (control, runs, raw, copy) = (control?, runs?, raw?, copy?);
    let add = match raw {
        Some(raw) if raw.bytes.len() < runs.bytes.len() => (AddCoding::Raw, raw),
        _ => (AddCoding::ZeroRuns, runs),
    };
    Ok(CodedStreams {
        add_coding: add.0,
        coded: [control, add.1, copy],
    })
}

/// A quick measure of how well streams will code (zstd level 3), to choose between diffs before the slow
/// coders run.
fn estimate(streams: &Streams) -> usize {
    [&streams.control, &zero_runs::encode(&streams.add), &streams.copy]
        .iter()
        .map(|s| zstd::bulk::compress(s, 3).map_or(s.len(), |c| c.len()))
        .sum()
}

/// The branch filters the publisher tries. On every x86-64 pair of the bench corpus (bench/patch.sh) the
/// plain diff coded smaller than the filtered one (bsdiff's add stream already absorbs the shifted rel32s),
/// so only AArch64, where the filter won on every pair, is tried; devices decode both.
pub(super) const TRIED_FILTERS: &[Arch] = &[Arch::Aarch64];

/// A patch file that turns `old` into `new`.
///
/// ELF executables for the architectures of [`TRIED_FILTERS`] are also diffed through their branch filter
/// ([`super::branch`]), in parallel, and the diff whose streams code smaller (by a quick estimate) is kept.
/// Each stream then gets whichever of zstd and LZMA2 codes it smallest, with a window of at most
/// 2^min(`opts.window_log`, [`STREAM_WINDOW_LOG`]).
pub fn create_patch(old: &[u8], new: &[u8], opts: &PatchOptions) -> Result<Vec<u8>, CreateError> {
    create_patch_trying(old, new, opts, TRIED_FILTERS)
}

/// [`create_patch`], trying the filters of `archs`.
pub(super) fn create_patch_trying(
    old: &[u8],
    new: &[u8],
    opts: &PatchOptions,
    archs: &[Arch],
) -> Result<Vec<u8>, CreateError> {
    opts.check()?;
    if i32::try_from(old.len()).is_err() {
        return Err(CreateError::OldTooLarge {
            size: old.len() as u64,
            max: i32::MAX as u64,
        });
    }
    let max_log = opts.window_log.min(STREAM_WINDOW_LOG) as u8;
    let filters = match (branch::detect(old), branch::detect(new)) {
        (Some(o), Some(n)) if o.arch == n.arch && archs.contains(&o.arch) => Some((o, n)),
        _ => None,
    };
    let (plain, filtered) = std::thread::scope(|scope| {
        let filtered = filters.map(|(fo, fnew)| {
            scope.spawn(move || {
                let (mut o, mut n) = (old.to_vec(), new.to_vec());
                branch::encode(&fo, &mut o);
                branch::encode(&fnew, &mut n);
                let streams = bidiff_streams(&o, &n);
                (estimate(&streams), streams, (fo, fnew))
            })
        });
        let streams = bidiff_streams(old, new);
        ((estimate(&streams), streams), filtered.map(|h| h.join()))
    });
    let (streams, filters) = match filtered {
        Some(Ok((size, streams, f))) if size < plain.0 => (streams, Some(f)),
        Some(Err(_)) => return Err(CreateError::Compress(io::Error::other("diff thread panicked"))),
        _ => (plain.1, None),
    };
    let best = (code_streams(&streams, max_log, opts)?, filters);
    let (CodedStreams { add_coding, coded }, filters) = best;
    let (old_filter, filter) = filters.unzip();
    let layout = Layout {
        filter,
        old_filter,
        streams: [0, 1, 2].map(|i| StreamEntry {
            coder: coded[i].coder,
            window_log: coded[i].window_log,
            len: coded[i].bytes.len() as u64,
        }),
    };
    let header = PatchHeader {
        version: VERSION_2,
        kind: PayloadKind::Patch,
        window_log: coded.iter().map(|c| c.window_log).max().unwrap_or(10).max(10),
        add_coding,
        base_hash: Blake3Hash::of(old),
        base_size: old.len() as u64,
        target_hash: Blake3Hash::of(new),
        target_size: new.len() as u64,
    };
    let table = layout.to_bytes();
    let mut out =
        Vec::with_capacity(HEADER_LEN + table.len() + coded.iter().map(|c| c.bytes.len()).sum::<usize>());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&table);
    for c in &coded {
        out.extend_from_slice(&c.bytes);
    }
    Ok(out)
}

/// A patch file that carries the whole of `new`, for devices whose image is unknown or too old.
pub fn create_full(new: &[u8], opts: &PatchOptions) -> Result<Vec<u8>, CreateError> {
    opts.check()?;
    let header = PatchHeader {
        version: VERSION_1,
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
