//! The entropy coders of a patch's streams: zstd, or raw LZMA2 (liblzma), chosen per stream.
//!
//! Both decoders need a window (dictionary) of 2^`window_log` bytes, which the patch's stream table states
//! and the device checks before it builds a decoder; LZMA2 is raw (no xz container), so the dictionary a
//! decoder allocates is the table's, never one read from the stream.

use std::io::{self, BufRead, Read};

use liblzma::stream::{Filters, LzmaOptions, MatchFinder, Mode, Stream};

/// How one stream is compressed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Coder {
    /// One zstd frame.
    Zstd,
    /// Raw LZMA2 with its end marker.
    Lzma2,
}

impl Coder {
    /// The byte that names this coder in a stream table.
    pub fn to_byte(self) -> u8 {
        match self {
            Coder::Zstd => 0,
            Coder::Lzma2 => 1,
        }
    }

    /// The coder a stream-table byte names.
    pub fn from_byte(b: u8) -> Option<Coder> {
        match b {
            0 => Some(Coder::Zstd),
            1 => Some(Coder::Lzma2),
            _ => None,
        }
    }

    /// The window logs this coder can use.
    pub fn window_logs(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Coder::Zstd => 10..=31,
            // LZMA2 dictionaries are 4 KiB .. 1.5 GiB; 2^30 is the largest power of two.
            Coder::Lzma2 => 12..=30,
        }
    }
}

/// How the publisher tunes LZMA2 for one stream's data.
#[derive(Clone, Copy, Debug)]
pub struct LzmaTuning {
    /// Literal context bits (lc).
    pub lc: u32,
    /// Literal position bits (lp).
    pub lp: u32,
    /// Position bits (pb).
    pub pb: u32,
}

impl LzmaTuning {
    /// xz's defaults: good on text and mixed data.
    pub const DEFAULT: LzmaTuning = LzmaTuning { lc: 3, lp: 0, pb: 2 };
    /// Machine code: 4-byte structure, literals predicted by position rather than by the previous byte.
    pub const CODE: LzmaTuning = LzmaTuning { lc: 0, lp: 2, pb: 2 };
    /// Zero-run coded add streams: varints and literal runs with no alignment.
    pub const RUNS: LzmaTuning = LzmaTuning { lc: 3, lp: 0, pb: 0 };
    /// Byte-wise data with no 4-byte structure (add streams, whose zero runs make positions meaningless).
    pub const BYTES: LzmaTuning = LzmaTuning { lc: 1, lp: 0, pb: 0 };
}

fn lzma_options(
    window_log: u8,
    tuning: Option<LzmaTuning>,
    best: bool,
) -> Result<LzmaOptions, liblzma::stream::Error> {
    let preset = if best {
        9 | liblzma::stream::PRESET_EXTREME
    } else {
        6
    };
    let mut o = LzmaOptions::new_preset(preset)?;
    o.dict_size(1u32 << window_log);
    if let Some(t) = tuning {
        o.literal_context_bits(t.lc)
            .literal_position_bits(t.lp)
            .position_bits(t.pb);
        if best {
            o.mode(Mode::Normal)
                .match_finder(MatchFinder::BinaryTree4)
                .nice_len(273);
        }
    }
    Ok(o)
}

/// Compress `data` as raw LZMA2 with a 2^`window_log` dictionary; `best` takes xz's slowest preset (9e with
/// the longest matches), otherwise preset 6.
pub fn lzma2_compress(data: &[u8], window_log: u8, tuning: LzmaTuning, best: bool) -> io::Result<Vec<u8>> {
    let mut filters = Filters::new();
    filters.lzma2(&lzma_options(window_log, Some(tuning), best).map_err(io::Error::other)?);
    let mut stream = Stream::new_raw_encoder(&filters).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(256 * 1024);
        }
        let before = stream.total_in();
        let status = stream
            .process_vec(input, &mut out, liblzma::stream::Action::Finish)
            .map_err(io::Error::other)?;
        input = &input[(stream.total_in() - before) as usize..];
        if status == liblzma::stream::Status::StreamEnd {
            return Ok(out);
        }
    }
}

/// A raw LZMA2 decoder over `inner` with a 2^`window_log` dictionary (the caller has checked the log).
pub fn lzma2_decoder<R: BufRead>(inner: R, window_log: u8) -> io::Result<liblzma::bufread::XzDecoder<R>> {
    let mut filters = Filters::new();
    filters.lzma2(&lzma_options(window_log, None, false).map_err(io::Error::other)?);
    let stream = Stream::new_raw_decoder(&filters).map_err(io::Error::other)?;
    Ok(liblzma::bufread::XzDecoder::new_stream(inner, stream))
}

/// The smallest window log (at least `min`, at most `max`) that holds `len` bytes: a decoder of a small
/// stream need not allocate a large window.
pub fn fitting_log(len: usize, min: u8, max: u8) -> u8 {
    let mut log = min;
    while log < max && (1usize << log) < len {
        log += 1;
    }
    log
}

/// Decompress a whole raw LZMA2 buffer (tests and tools).
pub fn lzma2_decompress(data: &[u8], window_log: u8) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    lzma2_decoder(data, window_log)?.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fitting_log_is_the_smallest_window_that_holds_the_stream() {
        assert_eq!(fitting_log(0, 12, 21), 12);
        assert_eq!(fitting_log(4096, 12, 21), 12);
        assert_eq!(fitting_log(4097, 12, 21), 13);
        assert_eq!(fitting_log(100 << 20, 12, 21), 21);
    }

    #[test]
    fn truncated_and_garbage_lzma2_are_errors() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let packed = lzma2_compress(&data, 17, LzmaTuning::DEFAULT, false).unwrap();
        assert!(lzma2_decompress(&packed[..packed.len() / 2], 17).is_err());
        assert!(lzma2_decompress(&[0xFF; 64], 17).is_err());
        assert_eq!(lzma2_decompress(&packed, 17).unwrap(), data);
    }

    #[test]
    fn a_dictionary_smaller_than_the_encoders_is_refused_not_misread() {
        // Matches 100 KiB back need a 128 KiB dictionary; a 4 KiB decoder must fail, not produce garbage.
        let chunk: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let data = [chunk.clone(), chunk].concat();
        let packed = lzma2_compress(&data, 18, LzmaTuning::DEFAULT, true).unwrap();
        assert!(packed.len() < 150_000);
        assert!(lzma2_decompress(&packed, 12).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn lzma2_round_trips(
            data in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..20_000),
                proptest::collection::vec(prop_oneof![8 => Just(0u8), 1 => any::<u8>()], 0..60_000),
            ],
            tuning in prop_oneof![Just(LzmaTuning::DEFAULT), Just(LzmaTuning::CODE), Just(LzmaTuning::RUNS), Just(LzmaTuning::BYTES)],
            best in any::<bool>(),
        ) {
            let log = fitting_log(data.len(), 12, 21);
            let packed = lzma2_compress(&data, log, tuning, best).unwrap();
            prop_assert!(lzma2_decompress(&packed, log).unwrap() == data);
        }
    }
}
