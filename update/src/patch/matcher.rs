//! bsdiff's matching: a suffix array of the old image, and a scan over the new image that finds, for each
//! stretch, the old position whose bytes it shares most (Percival's bsdiff 4.3, as the `bidiff` crate
//! implements it).
//!
//! The scan and the search decide exactly as `bidiff` 1.0 does (the same binary search over the same suffix
//! array, the same ties, the same scores), so patches are byte for byte what `bidiff` made
//! (`matches_are_bidiffs` checks it on random and structured pairs); what differs is the cost of a search. A
//! search compares the wanted bytes with log2(n) suffixes, and on a new release most of them share long
//! prefixes with it (unchanged code), so `bidiff` spent most of a 38 MB diff in those comparisons
//! (bench/results/patch.md). Here a search starts in the range of suffixes that share the wanted bytes' first
//! two (a table of 65,792 starts), each comparison starts past the prefix that both ends of the remaining range
//! share with the wanted bytes (every suffix between them shares it too), and prefixes are compared 8 bytes at
//! a time.

use std::cmp::min;

/// One bsdiff instruction: add `add_length` bytes of new minus old from `add_old_start`/`add_new_start`, then
/// copy the new bytes up to `copy_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Match {
    pub(super) add_old_start: usize,
    pub(super) add_new_start: usize,
    pub(super) add_length: usize,
    pub(super) copy_end: usize,
}

impl Match {
    pub(super) fn copy_start(&self) -> usize {
        self.add_new_start + self.add_length
    }
}

/// The length of the common prefix of `a` and `b`.
pub(super) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = min(a.len(), b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut done = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_le_bytes(y.try_into().unwrap_or_default());
        let diff = x ^ y;
        if diff != 0 {
            return done + (diff.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    done + a[done..]
        .iter()
        .zip(&b[done..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// The bucket of a suffix by its first two bytes, in suffix order: a one-byte suffix `x` sorts before every
/// longer suffix starting with `x`.
fn bucket(suffix: &[u8]) -> usize {
    match suffix {
        [] => 0,
        [x] => usize::from(*x) * 257,
        [x, y, ..] => usize::from(*x) * 257 + 1 + usize::from(*y),
    }
}

const BUCKETS: usize = 256 * 257;

/// A suffix array of a text (at most `i32::MAX` bytes, divsufsort's index), with the first suffix of each
/// two-byte bucket, so that a search starts in the bucket of its first two bytes.
pub(super) struct SuffixArray<'a> {
    text: &'a [u8],
    sa: Vec<i32>,
    /// `starts[k]`: the index in `sa` of the first suffix of bucket `k` or a later one (`BUCKETS + 1` entries).
    starts: Vec<u32>,
}

impl<'a> SuffixArray<'a> {
    /// Sort the suffixes of `text` (not empty, at most `i32::MAX` bytes: the caller checks).
    pub(super) fn new(text: &'a [u8]) -> Self {
        let mut sa = vec![0i32; text.len()];
        divsufsort::sort_in_place(text, &mut sa);
        let mut starts = vec![0u32; BUCKETS + 1];
        for i in 0..text.len() {
            starts[bucket(&text[i..min(text.len(), i + 2)]) + 1] += 1;
        }
        for k in 1..starts.len() {
            starts[k] += starts[k - 1];
        }
        SuffixArray { text, sa, starts }
    }

    fn suffix(&self, i: usize) -> &'a [u8] {
        &self.text[self.sa[i] as usize..]
    }

    /// The first index `b` whose suffix is not smaller than `needle` (`sa.len()` when every suffix is): a
    /// binary search inside the bucket of `needle`'s first two bytes, each comparison starting past the prefix
    /// that the suffixes around the remaining range share with `needle`. Also what the suffixes at `b - 1`
    /// and `b` are known to share with `needle` (exact when the search compared them, else 0).
    fn boundary(&self, needle: &[u8]) -> (usize, usize, usize) {
        let k = bucket(needle);
        let (mut a, mut c) = (self.starts[k] as usize, self.starts[k + 1] as usize);
        // Every suffix of the bucket starts with needle's first (up to) two bytes.
        let shared = min(needle.len(), 2);
        let (mut at_a, mut at_c) = (shared, shared);
        let (mut moved_a, mut moved_c) = (false, false);
        while a < c {
            let mid = a + (c - a) / 2;
            let s = self.suffix(mid);
            let known = min(at_a, at_c);
            let l = known + common_prefix(&s[known..], &needle[known..]);
            // needle > s: s is a proper prefix of needle, or the first differing byte is larger.
            if l < needle.len() && (l == s.len() || needle[l] > s[l]) {
                (a, at_a, moved_a) = (mid + 1, l, true);
            } else {
                (c, at_c, moved_c) = (mid, l, true);
            }
        }
        (a, if moved_a { at_a } else { 0 }, if moved_c { at_c } else { 0 })
    }

    /// The start and length of the suffix that shares the longest prefix with `needle`, as `sacabase`'s
    /// `longest_substring_match` finds it. Its binary search (keep `[mid..]` when `needle` is greater than the
    /// middle suffix, `[..=mid]` otherwise, down to two, and take the second on a tie) always ends on the two
    /// suffixes around the boundary of the suffixes smaller than `needle`, whatever path it took, so finding
    /// that boundary faster finds the same match.
    pub(super) fn longest_match(&self, needle: &[u8]) -> (usize, usize) {
        let lcp = |i: usize, known: usize| {
            let s = self.suffix(i);
            known + common_prefix(&s[known..], &needle[known..])
        };
        let n = self.sa.len();
        if n == 1 {
            return (self.sa[0] as usize, lcp(0, 0));
        }
        let (b, at_before, at_b) = self.boundary(needle);
        let lo = b.saturating_sub(1).min(n - 2);
        let (x, y) = if lo + 1 == b {
            (lcp(lo, at_before), lcp(b, at_b))
        } else {
            (lcp(lo, 0), lcp(lo + 1, 0))
        };
        if x > y {
            (self.sa[lo] as usize, x)
        } else {
            (self.sa[lo + 1] as usize, y)
        }
    }
}

/// The scan over the new image: yields the instructions in order, the last one copying to the end.
pub(super) struct Scan<'a> {
    scan: usize,
    pos: usize,
    length: usize,
    lastscan: usize,
    lastpos: usize,
    lastoffset: isize,
    old: &'a [u8],
    new: &'a [u8],
    sa: &'a SuffixArray<'a>,
}

impl<'a> Scan<'a> {
    /// A scan of `new` against `sa`, the suffix array of `old`.
    pub(super) fn new(old: &'a [u8], new: &'a [u8], sa: &'a SuffixArray<'a>) -> Self {
        Scan {
            scan: 0,
            pos: 0,
            length: 0,
            lastscan: 0,
            lastpos: 0,
            lastoffset: 0,
            old,
            new,
            sa,
        }
    }

    /// How far forward from the last match the old bytes still pay (bsdiff's `lenf`).
    fn forward_len(&self) -> usize {
        let (mut s, mut sf, mut lenf) = (0isize, 0isize, 0isize);
        for i in 0..min(self.scan - self.lastscan, self.old.len() - self.lastpos) {
            if self.old[self.lastpos + i] == self.new[self.lastscan + i] {
                s += 1;
            }
            let i = i as isize + 1;
            if s * 2 - i > sf * 2 - lenf {
                sf = s;
                lenf = i;
            }
        }
        lenf as usize
    }

    /// How far back from the new match its old bytes pay (bsdiff's `lenb`).
    fn backward_len(&self) -> usize {
        if self.scan >= self.new.len() {
            return 0;
        }
        let (mut s, mut sb, mut lenb) = (0isize, 0isize, 0isize);
        for i in 1..=min(self.scan - self.lastscan, self.pos) {
            if self.old[self.pos - i] == self.new[self.scan - i] {
                s += 1;
            }
            if s * 2 - i as isize > sb * 2 - lenb {
                sb = s;
                lenb = i as isize;
            }
        }
        lenb as usize
    }

    /// Where an overlap of the forward and backward extensions is best split (bsdiff's `lens`).
    fn split_overlap(&self, lenf: usize, lenb: usize, overlap: usize) -> usize {
        let (mut s, mut ss, mut lens) = (0isize, 0isize, 0);
        for i in 0..overlap {
            if self.new[self.lastscan + lenf - overlap + i] == self.old[self.lastpos + lenf - overlap + i] {
                s += 1;
            }
            if self.new[self.scan - lenb + i] == self.old[self.pos - lenb + i] {
                s -= 1;
            }
            if s > ss {
                ss = s;
                lens = i + 1;
            }
        }
        lens
    }
}

impl Iterator for Scan<'_> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        let (old_len, new_len) = (self.old.len(), self.new.len());
        while self.scan < new_len {
            let mut oldscore = 0usize;
            self.scan += self.length;
            let mut scsc = self.scan;
            while self.scan < new_len {
                (self.pos, self.length) = self.sa.longest_match(&self.new[self.scan..]);
                while scsc < self.scan + self.length {
                    let oi = (scsc as isize + self.lastoffset) as usize;
                    if oi < old_len && self.old[oi] == self.new[scsc] {
                        oldscore += 1;
                    }
                    scsc += 1;
                }
                let significantly_better = self.length > oldscore + 8;
                let same_length = self.length == oldscore && self.length != 0;
                if same_length || significantly_better {
                    break;
                }
                let oi = (self.scan as isize + self.lastoffset) as usize;
                if oi < old_len && self.old[oi] == self.new[self.scan] {
                    oldscore -= 1;
                }
                self.scan += 1;
            }
            if self.length != oldscore || self.scan == new_len {
                let mut lenf = self.forward_len();
                let mut lenb = self.backward_len();
                if self.lastscan + lenf > self.scan - lenb {
                    let overlap = (self.lastscan + lenf) - (self.scan - lenb);
                    let lens = self.split_overlap(lenf, lenb, overlap);
                    lenf += lens;
                    lenf -= overlap;
                    lenb -= lens;
                }
                let m = Match {
                    add_old_start: self.lastpos,
                    add_new_start: self.lastscan,
                    add_length: lenf,
                    copy_end: self.scan - lenb,
                };
                self.lastscan = self.scan - lenb;
                self.lastpos = self.pos - lenb;
                self.lastoffset = self.pos as isize - self.scan as isize;
                return Some(m);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `sacabase`'s search, as `bidiff` runs it: the reference for [`SuffixArray::longest_match`].
    fn reference(text: &[u8], sa: &[i32], needle: &[u8]) -> (usize, usize) {
        let mut sa = sa;
        let suff = |sa: &[i32], x: usize| &text[sa[x] as usize..];
        let len = |sa: &[i32], x: usize| common_prefix(suff(sa, x), needle);
        loop {
            match sa.len() {
                1 => return (sa[0] as usize, len(sa, 0)),
                2 => {
                    let (x, y) = (len(sa, 0), len(sa, 1));
                    return if x > y {
                        (sa[0] as usize, x)
                    } else {
                        (sa[1] as usize, y)
                    };
                }
                n => {
                    let mid = n / 2;
                    if needle > suff(sa, mid) {
                        sa = &sa[mid..];
                    } else {
                        sa = &sa[..=mid];
                    }
                }
            }
        }
    }

    /// The streams `bidiff` 1.0 makes of a pair (the matcher's reference).
    fn bidiffs(old: &[u8], new: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (mut control, mut add, mut copy) = (Vec::new(), Vec::new(), Vec::new());
        if new.is_empty() {
            return (control, add, copy);
        }
        let mut emit = |a: &[u8], c: &[u8], seek: i64| {
            crate::varint::encode(a.len() as u64, &mut control);
            crate::varint::encode(c.len() as u64, &mut control);
            crate::varint::encode(((seek << 1) ^ (seek >> 63)) as u64, &mut control);
            add.extend_from_slice(a);
            copy.extend_from_slice(c);
        };
        if old.is_empty() {
            emit(&[], new, 0);
            return (control, add, copy);
        }
        let mut translator =
            bidiff::Translator::new(old, new, |c: &bidiff::Control| -> Result<(), std::io::Error> {
                emit(c.add, c.copy, c.seek);
                Ok(())
            });
        bidiff::diff(old, new, &bidiff::DiffParams::default(), |m| {
            translator.translate(m)
        })
        .unwrap();
        translator.close().unwrap();
        (control, add, copy)
    }

    fn ours(old: &[u8], new: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let s = super::super::create::bidiff_streams(old, new);
        (s.control, s.add, s.copy)
    }

    /// A pair like two releases: blocks of structured and random bytes, moved, edited and extended.
    fn release_pair(seed: u64, len: usize) -> (Vec<u8>, Vec<u8>) {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let old: Vec<u8> = (0..len)
            .map(|i| {
                if i % 4096 < 3000 {
                    (i / 7) as u8
                } else {
                    next() as u8
                }
            })
            .collect();
        let mut new = Vec::with_capacity(len + len / 8);
        for block in old.chunks(8192).rev() {
            new.extend_from_slice(block);
            new.extend((0..next() % 300).map(|_| next() as u8));
        }
        for i in (0..new.len()).step_by(1009) {
            new[i] = new[i].wrapping_add(4);
        }
        (old, new)
    }

    /// Patches are byte for byte what bidiff made: the same instructions, add and copy bytes.
    #[test]
    fn matches_are_bidiffs() {
        for (seed, len) in [(1, 1), (2, 100), (3, 50_000), (4, 600_000)] {
            let (old, new) = release_pair(seed, len);
            assert!(
                ours(&old, &new) == bidiffs(&old, &new),
                "pair {seed} of {len} bytes"
            );
        }
        let text = b"the quick brown fox jumps over the lazy dog; ".repeat(500);
        let mut moved = text[9000..].to_vec();
        moved.extend_from_slice(&text[..9000]);
        assert!(ours(&text, &moved) == bidiffs(&text, &moved));
        assert!(ours(&[], b"new") == bidiffs(&[], b"new"));
        assert!(ours(b"old", &[]) == bidiffs(b"old", &[]));
    }

    #[test]
    fn common_prefix_counts_equal_bytes() {
        assert_eq!(common_prefix(b"", b"abc"), 0);
        assert_eq!(common_prefix(b"abcdefghij", b"abcdefghij"), 10);
        assert_eq!(common_prefix(b"abcdefghij", b"abcdefghiX"), 9);
        assert_eq!(common_prefix(b"abcdefgXij", b"abcdefghij"), 7);
        assert_eq!(common_prefix(b"abcdefghijklmnop", b"abcdefghijklmnoq"), 15);
        assert_eq!(common_prefix(b"abc", b"abcdefgh"), 3);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The same start and length as sacabase's search, for needles taken from the text, changed, or new.
        #[test]
        fn longest_match_is_sacabases(
            text in prop_oneof![
                proptest::collection::vec(0u8..4, 1..3000),
                proptest::collection::vec(any::<u8>(), 1..3000),
                (proptest::collection::vec(any::<u8>(), 1..200), 2usize..20)
                    .prop_map(|(unit, times)| unit.repeat(times)),
            ],
            picks in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..300, any::<u8>(), any::<bool>()), 1..40),
        ) {
            let sa = SuffixArray::new(&text);
            for (at, len, byte, change) in picks {
                let start = at.index(text.len());
                let mut needle = text[start..min(text.len(), start + len + 1)].to_vec();
                if change {
                    let i = at.index(needle.len());
                    needle[i] = byte;
                }
                prop_assert_eq!(sa.longest_match(&needle), reference(&text, &sa.sa, &needle));
            }
        }

        #[test]
        fn matches_are_bidiffs_on_random_and_edited_pairs(
            old in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..3000),
                proptest::collection::vec(0u8..4, 1..20_000),
            ],
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..64, any::<u8>()), 0..12),
        ) {
            let mut new = old.clone();
            for (at, len, byte) in edits {
                let at = at.index(new.len().max(1)).min(new.len());
                match byte % 3 {
                    0 => { new.splice(at..at, std::iter::repeat_n(byte, len)); }
                    1 => { let end = (at + len).min(new.len()); new.drain(at..end); }
                    _ => { for b in new.iter_mut().skip(at).take(len) { *b ^= byte; } }
                }
            }
            prop_assert!(ours(&old, &new) == bidiffs(&old, &new));
        }
    }
}
