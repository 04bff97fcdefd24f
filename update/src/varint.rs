//! Unsigned LEB128 varints (multiformats, protobuf, CAR) and zigzag signed varints (the bidiff stream).

use std::io::{self, Read};

/// The longest varint a u64 needs.
pub const MAX_LEN: usize = 10;

/// Append `v` as an unsigned varint.
pub fn encode(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decode an unsigned varint from the front of `buf`: the value and the bytes it took.
/// `None` when `buf` ends first, the varint is longer than ten bytes, or overflows u64.
pub fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(MAX_LEN) {
        let bits = u64::from(b & 0x7f);
        if i == MAX_LEN - 1 && b > 1 {
            return None;
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Outcome of reading a varint from a stream.
#[derive(Debug)]
pub enum ReadVarint {
    /// A complete varint.
    Value(u64),
    /// The stream ended cleanly before the first byte.
    Eof,
}

/// Read an unsigned varint from a stream. A stream that ends inside a varint is `UnexpectedEof`;
/// an over-long varint is `InvalidData`.
pub fn read<R: Read + ?Sized>(r: &mut R) -> io::Result<ReadVarint> {
    let mut v = 0u64;
    for i in 0..MAX_LEN {
        let mut b = [0u8; 1];
        loop {
            match r.read(&mut b) {
                Ok(0) if i == 0 => return Ok(ReadVarint::Eof),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream ends inside a varint",
                    ));
                }
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let b = b[0];
        if i == MAX_LEN - 1 && b > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "varint overflows 64 bits",
            ));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(ReadVarint::Value(v));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "varint longer than ten bytes",
    ))
}

/// Read a varint that must be there.
pub fn read_required<R: Read + ?Sized>(r: &mut R) -> io::Result<u64> {
    match read(r)? {
        ReadVarint::Value(v) => Ok(v),
        ReadVarint::Eof => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "stream ends where a varint was due",
        )),
    }
}

/// Zigzag-decode a signed value.
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            encode(v, &mut buf);
            assert_eq!(decode(&buf), Some((v, buf.len())));
            assert!(matches!(read(&mut &buf[..]).unwrap(), ReadVarint::Value(x) if x == v));
        }
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        assert_eq!(decode(&[0x80]), None);
        assert_eq!(decode(&[0xff; 11]), None);
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
        assert_eq!(
            read(&mut &[0x80u8][..]).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert!(matches!(read(&mut &[][..]).unwrap(), ReadVarint::Eof));
    }

    #[test]
    fn zigzag() {
        assert_eq!(unzigzag(0), 0);
        assert_eq!(unzigzag(1), -1);
        assert_eq!(unzigzag(2), 1);
        assert_eq!(unzigzag(3), -2);
        assert_eq!(unzigzag(u64::MAX), i64::MIN);
    }
}
