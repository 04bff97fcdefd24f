//! Zero-run coding of the add stream. A patch's add bytes (new minus old) are mostly zeros; on text and on
//! lightly changed files, coding them as (zero run, literal run, literal bytes) triples compresses about
//! twice as well. The publisher keeps whichever coding is smaller; see [`super::AddCoding`].

use std::io::{self, Read};

use crate::varint::{self, ReadVarint};

/// Code `add` as triples: varint zero-run length, varint literal length, the literal (non-zero) bytes.
pub fn encode(add: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(add.len() / 8 + 16);
    let mut i = 0;
    while i < add.len() {
        let zeros = add[i..].iter().take_while(|&&b| b == 0).count();
        let start = i + zeros;
        let literal = add[start..].iter().take_while(|&&b| b != 0).count();
        varint::encode(zeros as u64, &mut out);
        varint::encode(literal as u64, &mut out);
        out.extend_from_slice(&add[start..start + literal]);
        i = start + literal;
    }
    out
}

/// Expands zero-run coded bytes back into the add stream, as a reader.
#[derive(Debug)]
pub struct ZeroRunReader<R> {
    inner: R,
    zeros: u64,
    literal: u64,
}

impl<R: Read> ZeroRunReader<R> {
    /// Decode the triples that `inner` yields.
    pub fn new(inner: R) -> Self {
        ZeroRunReader {
            inner,
            zeros: 0,
            literal: 0,
        }
    }

    /// The coded stream, to check that nothing follows the last triple.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for ZeroRunReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.zeros > 0 {
                let n = buf.len().min(usize::try_from(self.zeros).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                self.zeros -= n as u64;
                return Ok(n);
            }
            if self.literal > 0 {
                let n = buf.len().min(usize::try_from(self.literal).unwrap_or(usize::MAX));
                let got = self.inner.read(&mut buf[..n])?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zero-run literal is cut short",
                    ));
                }
                self.literal -= got as u64;
                return Ok(got);
            }
            let zeros = match varint::read(&mut self.inner)? {
                ReadVarint::Eof => return Ok(0),
                ReadVarint::Value(v) => v,
            };
            let literal = varint::read_required(&mut self.inner)?;
            if zeros == 0 && literal == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "empty zero-run triple",
                ));
            }
            (self.zeros, self.literal) = (zeros, literal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(coded: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ZeroRunReader::new(coded).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn known_coding() {
        assert_eq!(encode(&[0, 0, 0, 5, 6, 0, 7]), vec![3, 2, 5, 6, 1, 1, 7]);
        assert_eq!(encode(&[0; 4]), vec![4, 0]);
        assert_eq!(encode(&[]), Vec::<u8>::new());
    }

    #[test]
    fn malformed_codings_are_errors() {
        assert_eq!(decode(&[0, 0]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(decode(&[1, 3, 9]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(decode(&[1]).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(add in proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => any::<u8>()], 0..3000)) {
            prop_assert_eq!(decode(&encode(&add)).unwrap(), add);
        }
    }
}
