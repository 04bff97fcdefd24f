//! Branch-target normalisation of executables (BCJ-style filters), applied to both images before diffing
//! and undone, streaming, while patching.
//!
//! When code moves, every relative `call`/`jmp` (x86-64) or `BL`/`B`/`ADRP` (AArch64) whose target did not
//! move changes its displacement: one insertion changes thousands of scattered words. Rewriting each
//! displacement as an absolute target (displacement + position) turns those changes back into equal
//! bytes, which the diff then matches. Both filters are bijections on the bytes of an executable range
//! (the decision to convert depends only on bytes the conversion leaves alone), so any input decodes, and
//! decoding inverts encoding exactly.
//!
//! - x86-64: the rel32 after `E8` (call), `E9` (jmp) and `0F 80..8F` (jcc), when its top byte is `00` or
//!   `FF` (a displacement within ±16 MiB): the low 25 bits become `(rel + end of instruction) mod 2^25`,
//!   sign-extended back into the top byte.
//! - AArch64: on 4-byte aligned words, the imm26 of `B`/`BL` becomes `(imm26 + position/4) mod 2^26`, the
//!   imm21 of `ADRP` becomes `(imm21 + position/4096) mod 2^21`.
//!
//! Only the executable sections of an ELF file are converted ([`detect`]); the patch records their ranges.

use std::io::{self, Write};

/// Which filter a patch uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    /// x86-64 rel32 branches and calls.
    X86_64,
    /// AArch64 `B`, `BL` and `ADRP`.
    Aarch64,
}

/// The most executable ranges a patch may name.
pub const MAX_RANGES: usize = 16;

/// A filter: the architecture and the byte ranges `[start, end)` of the image it converts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Filter {
    /// The instruction set.
    pub arch: Arch,
    /// Sorted, disjoint, non-empty ranges of the image.
    pub ranges: Vec<(u64, u64)>,
}

/// The executable ranges of an ELF64 little-endian x86-64 or AArch64 file, from its section headers (or,
/// without them, its executable `PT_LOAD` segments). `None` for anything else.
pub fn detect(image: &[u8]) -> Option<Filter> {
    if image.len() < 64 || &image[..4] != b"\x7fELF" || image[4] != 2 || image[5] != 1 {
        return None;
    }
    let u16_at = |at: usize| image.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| {
        image
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        image
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    let arch = match u16_at(18)? {
        62 => Arch::X86_64,
        183 => Arch::Aarch64,
        _ => return None,
    };
    let table = |off: u64, size: u16, count: u16| -> Vec<usize> {
        let (Ok(off), size) = (usize::try_from(off), usize::from(size)) else {
            return Vec::new();
        };
        (0..usize::from(count))
            .map(|i| off.saturating_add(i * size))
            .collect()
    };
    let mut ranges = Vec::new();
    // Sections: SHF_EXECINSTR, not SHT_NOBITS.
    for at in table(u64_at(0x28)?, u16_at(0x3A)?, u16_at(0x3C)?) {
        let (Some(kind), Some(flags), Some(off), Some(size)) = (
            u32_at(at + 4),
            u64_at(at + 8),
            u64_at(at + 0x18),
            u64_at(at + 0x20),
        ) else {
            break;
        };
        if flags & 4 != 0 && kind != 8 && size > 0 {
            ranges.push((off, off.saturating_add(size)));
        }
    }
    if ranges.is_empty() {
        // Segments: PT_LOAD with PF_X.
        for at in table(u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?) {
            let (Some(kind), Some(flags), Some(off), Some(size)) =
                (u32_at(at), u32_at(at + 4), u64_at(at + 8), u64_at(at + 0x20))
            else {
                break;
            };
            if kind == 1 && flags & 1 != 0 && size > 0 {
                ranges.push((off, off.saturating_add(size)));
            }
        }
    }
    let ranges = normalise(ranges, image.len() as u64);
    (!ranges.is_empty()).then_some(Filter { arch, ranges })
}

/// Clamp to `len`, sort, merge overlapping or touching ranges, and merge the closest neighbours until at
/// most [`MAX_RANGES`] remain.
fn normalise(mut ranges: Vec<(u64, u64)>, len: u64) -> Vec<(u64, u64)> {
    for r in &mut ranges {
        *r = (r.0.min(len), r.1.min(len));
    }
    ranges.retain(|r| r.0 < r.1);
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
            _ => merged.push(r),
        }
    }
    while merged.len() > MAX_RANGES {
        let i = (1..merged.len())
            .min_by_key(|&i| merged[i].0 - merged[i - 1].1)
            .unwrap_or(1);
        merged[i - 1].1 = merged[i].1;
        merged.remove(i);
    }
    merged
}

/// One x86-64 decision at `buf[i..]` (absolute position `pos`): the bytes to the next decision. An opcode
/// whose rel32 fits in `buf` always takes its whole instruction, converted or not, so no later conversion
/// touches the bytes this decision looked at, and the decoder sees the same opcodes and top bytes.
#[inline]
fn x86_at(buf: &mut [u8], i: usize, pos: u64, encode: bool) -> usize {
    let op_len = match buf[i] {
        0xE8 | 0xE9 => 1,
        0x0F if buf.get(i + 1).is_some_and(|b| b & 0xF0 == 0x80) => 2,
        _ => return 1,
    };
    let at = i + op_len;
    let Some(word) = buf.get(at..at + 4) else {
        return 1;
    };
    if word[3] == 0 || word[3] == 0xFF {
        let v = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        let end = pos.wrapping_add((op_len + 4) as u64) as u32;
        let moved = (if encode {
            v.wrapping_add(end)
        } else {
            v.wrapping_sub(end)
        }) & 0x01FF_FFFF;
        let out = if moved & 0x0100_0000 != 0 {
            moved | 0xFE00_0000
        } else {
            moved
        };
        buf[at..at + 4].copy_from_slice(&out.to_le_bytes());
    }
    op_len + 4
}

/// Convert one aligned AArch64 word at absolute position `pos` (a multiple of 4).
#[inline]
fn arm64_word(w: u32, pos: u64, encode: bool) -> u32 {
    let step = |v: u32, by: u32, mask: u32| {
        (if encode {
            v.wrapping_add(by)
        } else {
            v.wrapping_sub(by)
        }) & mask
    };
    if w & 0x7C00_0000 == 0x1400_0000 {
        // B (000101) and BL (100101).
        (w & 0xFC00_0000) | step(w & 0x03FF_FFFF, (pos >> 2) as u32, 0x03FF_FFFF)
    } else if w & 0x9F00_0000 == 0x9000_0000 {
        // ADRP: immlo in bits 29..31, immhi in bits 5..24.
        let imm = ((w >> 29) & 3) | ((w >> 3) & 0x001F_FFFC);
        let imm = step(imm, (pos >> 12) as u32, 0x001F_FFFF);
        (w & 0x9F00_001F) | ((imm & 3) << 29) | ((imm & 0x001F_FFFC) << 3)
    } else {
        w
    }
}

/// Apply the filter to a whole image in place (the publisher's side).
pub fn encode(filter: &Filter, image: &mut [u8]) {
    for &(start, end) in &filter.ranges {
        let (Ok(s), Ok(e)) = (usize::try_from(start), usize::try_from(end)) else {
            continue;
        };
        let e = e.min(image.len());
        if s >= e {
            continue;
        }
        let mut next = start;
        convert_until(filter.arch, &mut image[s..e], start, &mut next, e as u64, true);
    }
}

/// Undo the filter on a whole image in place (for tests; devices use [`Unfilter`]).
pub fn decode(filter: &Filter, image: &mut [u8]) {
    let mut w = Unfilter::new(Vec::with_capacity(image.len()), Some(filter.clone()));
    // Writing to a Vec cannot fail.
    let _ = w
        .write_all(image)
        .and_then(|()| w.finish().map(|v| image.copy_from_slice(&v)));
}

/// Bytes the x86-64 decoder keeps back so a decision near the end of a write sees its whole instruction.
const LOOKAHEAD: usize = 6;
const CHUNK: usize = 16 * 1024;

/// A writer that undoes a [`Filter`] on the bytes written through it, holding back at most a few bytes.
#[derive(Debug)]
pub struct Unfilter<W> {
    inner: W,
    filter: Option<Filter>,
    /// Index of the range that contains or follows `pos`.
    range: usize,
    /// Absolute position of `pending[0]`.
    pos: u64,
    /// Position of the next conversion decision.
    next: u64,
    pending: Vec<u8>,
}

impl<W: Write> Unfilter<W> {
    /// Undo `filter` (or pass everything through, with `None`) on the way to `inner`.
    pub fn new(inner: W, filter: Option<Filter>) -> Self {
        let next = filter.as_ref().and_then(|f| f.ranges.first()).map_or(0, |r| r.0);
        Unfilter {
            inner,
            filter,
            range: 0,
            pos: 0,
            next,
            pending: Vec::new(),
        }
    }

    /// Bytes written through so far (passed on or held back).
    pub fn written(&self) -> u64 {
        self.pos + self.pending.len() as u64
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Flush what is held back and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain(true)?;
        Ok(self.inner)
    }

    /// Decode and pass on what can be decided now (everything, when `last`).
    fn drain(&mut self, last: bool) -> io::Result<()> {
        let Some(filter) = &self.filter else {
            self.inner.write_all(&self.pending)?;
            self.pos += self.pending.len() as u64;
            self.pending.clear();
            return Ok(());
        };
        let end = self.pos + self.pending.len() as u64;
        // Walk the ranges that overlap what is pending.
        while let Some(&(start, stop)) = filter.ranges.get(self.range) {
            if stop <= self.next.max(start) {
                self.range += 1;
                self.next = filter.ranges.get(self.range).map_or(u64::MAX, |r| r.0);
                continue;
            }
            self.next = self.next.max(start);
            if self.next >= end {
                break;
            }
            // Convert within [next, min(stop, end)), keeping back a lookahead unless the range ends here.
            let upto = stop.min(end);
            let whole = upto == stop || last;
            let limit = if whole {
                upto
            } else {
                upto.saturating_sub(LOOKAHEAD as u64)
            };
            if limit <= self.next {
                break;
            }
            let (a, b) = (
                (self.pos.max(start) - self.pos) as usize,
                (upto - self.pos) as usize,
            );
            let slice = &mut self.pending[a..b];
            let slice_pos = self.pos.max(start);
            // Decide only positions below `limit`; instructions there may reach into the lookahead.
            convert_until(filter.arch, slice, slice_pos, &mut self.next, limit, false);
            if !whole {
                break;
            }
            // A range's last few bytes may hold no whole word.
            self.next = self.next.max(upto);
        }
        let ready = if last { end } else { self.next.min(end) };
        let n = (ready.saturating_sub(self.pos)) as usize;
        self.inner.write_all(&self.pending[..n])?;
        self.pending.drain(..n);
        self.pos += n as u64;
        Ok(())
    }
}

/// Encode the x86-64 instruction at `buf[i]` (absolute position `pos`) if it is one; the bytes to the next
/// decision.
pub(super) fn x86_decide(buf: &mut [u8], i: usize, pos: u64) -> usize {
    x86_at(buf, i, pos, true)
}

/// Convert `buf` (at absolute position `pos`) for the decisions from `*next` up to, not including, `limit`;
/// instructions must end within `buf`. Leaves `*next` at the first decision not taken.
pub(super) fn convert_until(arch: Arch, buf: &mut [u8], pos: u64, next: &mut u64, limit: u64, encode: bool) {
    let mut i = (*next - pos) as usize;
    let stop = (limit.saturating_sub(pos)) as usize;
    match arch {
        Arch::X86_64 => {
            while i < stop {
                i += x86_at(buf, i, pos + i as u64, encode)
            }
        }
        Arch::Aarch64 => {
            i += (4 - (pos + i as u64) % 4) as usize % 4;
            while i < stop && i + 4 <= buf.len() {
                let w = u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
                let w = arm64_word(w, pos + i as u64, encode);
                buf[i..i + 4].copy_from_slice(&w.to_le_bytes());
                i += 4;
            }
        }
    }
    *next = pos + i as u64;
}

impl<W: Write> Write for Unfilter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.filter.is_none() {
            let n = self.inner.write(buf)?;
            self.pos += n as u64;
            return Ok(n);
        }
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= CHUNK {
            self.drain(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Code-like bytes: many branch opcodes and small displacements, so the filters convert a lot.
    fn code(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 5 {
                0 => out.extend_from_slice(&[0xE8, x as u8, (x >> 8) as u8, 0, 0]),
                1 => out.extend_from_slice(&[0x0F, 0x85, x as u8, (x >> 8) as u8, 0xFF, 0xFF]),
                2 => out.extend_from_slice(&(0x9400_0000u32 | (x as u32 & 0x3FF_FFFF)).to_le_bytes()),
                3 => out.extend_from_slice(&(0x9000_0000u32 | (x as u32 & 0x60FF_FFFF)).to_le_bytes()),
                _ => out.push(x as u8),
            }
        }
        out.truncate(len);
        out
    }

    fn unfilter_in_chunks(filter: &Filter, data: &[u8], chunk: usize) -> Vec<u8> {
        let mut w = Unfilter::new(Vec::new(), Some(filter.clone()));
        for c in data.chunks(chunk.max(1)) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    fn filters(len: u64, cuts: &[u64]) -> Vec<Filter> {
        let mut pts: Vec<u64> = cuts.iter().map(|c| c % (len + 1)).collect();
        pts.sort_unstable();
        pts.dedup();
        let ranges = normalise(
            pts.chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (p[0], p[1]))
                .collect(),
            len,
        );
        [Arch::X86_64, Arch::Aarch64]
            .into_iter()
            .flat_map(|arch| {
                [
                    Filter {
                        arch,
                        ranges: ranges.clone(),
                    },
                    Filter {
                        arch,
                        ranges: vec![(0, len)],
                    },
                ]
            })
            .filter(|f| !f.ranges.is_empty() && f.ranges[0].0 < f.ranges[0].1)
            .collect()
    }

    #[test]
    fn known_conversions() {
        // call +0x10 at 0x100: target 0x115.
        let mut b = vec![0u8; 0x200];
        b[0x100..0x105].copy_from_slice(&[0xE8, 0x10, 0, 0, 0]);
        let f = Filter {
            arch: Arch::X86_64,
            ranges: vec![(0, 0x200)],
        };
        encode(&f, &mut b);
        assert_eq!(&b[0x100..0x105], &[0xE8, 0x15, 0x01, 0, 0]);
        decode(&f, &mut b);
        assert_eq!(&b[0x100..0x105], &[0xE8, 0x10, 0, 0, 0]);
        // bl -4 at 0x1000: word target (0x1000 - 4) / 4 = 0x3FF.
        assert_eq!(arm64_word(0x97FF_FFFF, 0x1000, true), 0x9400_03FF);
        assert_eq!(arm64_word(0x9400_03FF, 0x1000, false), 0x97FF_FFFF);
        // adrp x0, +1 page at page 2: page 3.
        let adrp = 0x9000_0000 | (1 << 29);
        assert_eq!(arm64_word(adrp, 0x2000, true), 0x9000_0000 | (3 << 29));
        // Unrelated words and far displacements are left alone.
        assert_eq!(arm64_word(0xD503_201F, 0x1000, true), 0xD503_201F);
        let mut far = [0xE8, 0, 0, 0, 0x12];
        encode(&f, &mut far);
        assert_eq!(far, [0xE8, 0, 0, 0, 0x12]);
    }

    #[test]
    fn detect_finds_executable_sections_only() {
        assert_eq!(
            detect(b"not an elf at all, just some bytes of data of a length over sixty-four"),
            None
        );
        assert_eq!(detect(&[]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn unfilter_inverts_encode(seed in any::<u64>(), len in 0usize..70_000, cuts in proptest::collection::vec(any::<u64>(), 0..8), chunk in 1usize..40_000) {
            let data = code(seed, len);
            for f in filters(len as u64, &cuts) {
                let mut enc = data.clone();
                encode(&f, &mut enc);
                prop_assert!(unfilter_in_chunks(&f, &enc, chunk) == data, "{:?}", f);
                // Any bytes decode, and encoding undoes that too: the filter is a bijection.
                let dec = unfilter_in_chunks(&f, &data, chunk);
                let mut back = dec.clone();
                encode(&f, &mut back);
                prop_assert!(back == data);
            }
        }

        #[test]
        fn random_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), chunk in 1usize..3000) {
            for f in filters(data.len() as u64, &[0, data.len() as u64]) {
                let mut enc = data.clone();
                encode(&f, &mut enc);
                prop_assert!(unfilter_in_chunks(&f, &enc, chunk) == data);
            }
        }
    }
}
