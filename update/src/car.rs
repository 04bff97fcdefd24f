//! CAR v1: the content-addressed archive format of IPFS tools.
//!
//! A CAR is a varint-prefixed dag-cbor header `{roots: [CID], version: 1}` followed by sections, each a
//! varint length, a binary CID and the block's bytes. [`CarReader`] streams sections and verifies every
//! block against its CID; [`write_car`] packs a file into a CAR in depth-first order (the order of
//! `ipfs dag export`), so a CAR can be unpacked in one pass.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

use cid::Cid;

use crate::dag::pb::PbNode;
use crate::dag::{
    BlockError, BlockSource, DAG_PB, DagOptions, DagRoot, MAX_BLOCK_SIZE, build_from_reader, read_full,
    verify_block,
};
use crate::varint;

/// The largest CAR header we read.
const MAX_HEADER: u64 = 64 * 1024;

/// Why a CAR could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    #[error("CAR is truncated: {0}")]
    Truncated(&'static str),
    #[error("CAR header is invalid: {0}")]
    Header(&'static str),
    #[error("CAR version {0} is not supported (only version 1)")]
    Version(u64),
    #[error("section {index} is {len} bytes, the limit is {limit}")]
    SectionTooLarge { index: u64, len: u64, limit: u64 },
    #[error("section {index} has an invalid CID: {reason}")]
    Cid { index: u64, reason: String },
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("block {0} is not in the CAR")]
    Missing(Cid),
    #[error("the file changed while it was being packed")]
    Changed,
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

fn eof(what: &'static str) -> impl Fn(io::Error) -> CarError {
    move |e| match e.kind() {
        io::ErrorKind::UnexpectedEof => CarError::Truncated(what),
        _ => CarError::Io(e),
    }
}

/// Encode a CAR v1 header for `roots` (canonical dag-cbor: keys "roots" then "version").
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let mut cbor = vec![0xa2, 0x65];
    cbor.extend_from_slice(b"roots");
    cbor_head(4, roots.len() as u64, &mut cbor);
    for root in roots {
        let bytes = root.to_bytes();
        cbor.extend_from_slice(&[0xd8, 0x2a]);
        cbor_head(2, bytes.len() as u64 + 1, &mut cbor);
        cbor.push(0);
        cbor.extend_from_slice(&bytes);
    }
    cbor.push(0x67);
    cbor.extend_from_slice(b"version");
    cbor.push(0x01);
    let mut out = Vec::with_capacity(cbor.len() + 2);
    varint::encode(cbor.len() as u64, &mut out);
    out.extend_from_slice(&cbor);
    out
}

fn cbor_head(major: u8, v: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match v {
        0..=23 => out.push(m | v as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, v as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// A minimal reader of the CBOR in a CAR header.
struct Cbor<'a>(&'a [u8]);

impl Cbor<'_> {
    fn head(&mut self) -> Result<(u8, u64), CarError> {
        let (&first, rest) = self.0.split_first().ok_or(CarError::Header("ends early"))?;
        self.0 = rest;
        let (major, info) = (first >> 5, first & 0x1f);
        let len = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err(CarError::Header("indefinite or reserved length")),
        };
        if self.0.len() < len {
            return Err(CarError::Header("ends early"));
        }
        let v = self.0[..len]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        self.0 = &self.0[len..];
        Ok((major, v))
    }

    fn bytes(&mut self, n: u64) -> Result<&[u8], CarError> {
        let n = usize::try_from(n).map_err(|_| CarError::Header("length overflows"))?;
        if self.0.len() < n {
            return Err(CarError::Header("ends early"));
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(b)
    }

    fn text(&mut self) -> Result<&[u8], CarError> {
        match self.head()? {
            (3, n) => self.bytes(n),
            _ => Err(CarError::Header("map key is not a string")),
        }
    }
}

/// Parse the CBOR of a CAR header: the roots.
pub fn decode_header(cbor: &[u8]) -> Result<Vec<Cid>, CarError> {
    let mut c = Cbor(cbor);
    let (major, entries) = c.head()?;
    if major != 5 {
        return Err(CarError::Header("not a map"));
    }
    let (mut roots, mut version) = (None, None);
    for _ in 0..entries {
        match c.text()? {
            b"version" => match c.head()? {
                (0, v) => version = Some(v),
                _ => return Err(CarError::Header("version is not an integer")),
            },
            b"roots" => {
                let (major, n) = c.head()?;
                if major != 4 || n > 1024 {
                    return Err(CarError::Header("roots is not a short array"));
                }
                let mut list = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    if c.head()? != (6, 42) {
                        return Err(CarError::Header("root is not a CID (tag 42)"));
                    }
                    let bytes = match c.head()? {
                        (2, len) => c.bytes(len)?,
                        _ => return Err(CarError::Header("root CID is not a byte string")),
                    };
                    match bytes.split_first() {
                        Some((0, cid)) => {
                            list.push(Cid::try_from(cid).map_err(|_| CarError::Header("bad root CID"))?)
                        }
                        _ => return Err(CarError::Header("root CID lacks the 0x00 prefix")),
                    }
                }
                roots = Some(list);
            }
            _ => return Err(CarError::Header("unknown key")),
        }
    }
    if !c.0.is_empty() {
        return Err(CarError::Header("trailing bytes"));
    }
    match version {
        Some(1) => {}
        Some(v) => return Err(CarError::Version(v)),
        None => return Err(CarError::Header("no version")),
    }
    roots.ok_or(CarError::Header("no roots"))
}

/// Streams the blocks of a CAR, verifying each against its CID.
#[derive(Debug)]
pub struct CarReader<R> {
    inner: R,
    roots: Vec<Cid>,
    index: u64,
    offset: u64,
}

impl<R: Read> CarReader<R> {
    /// Read and check the header.
    pub fn new(mut inner: R) -> Result<Self, CarError> {
        let len = match varint::read(&mut inner).map_err(eof("header length"))? {
            varint::ReadVarint::Value(v) => v,
            varint::ReadVarint::Eof => return Err(CarError::Truncated("empty file")),
        };
        if len == 0 || len > MAX_HEADER {
            return Err(CarError::Header("header length out of range"));
        }
        let mut cbor = vec![0u8; len as usize];
        inner.read_exact(&mut cbor).map_err(eof("header"))?;
        let roots = decode_header(&cbor)?;
        let mut prefix = Vec::new();
        varint::encode(len, &mut prefix);
        Ok(CarReader {
            inner,
            roots,
            index: 0,
            offset: prefix.len() as u64 + len,
        })
    }

    /// The roots the header names.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next section as (CID, data offset in the CAR, data). `None` at a clean end.
    pub fn next_block(&mut self) -> Result<Option<(Cid, u64, Vec<u8>)>, CarError> {
        let len = match varint::read(&mut self.inner).map_err(eof("section length"))? {
            varint::ReadVarint::Eof => return Ok(None),
            varint::ReadVarint::Value(v) => v,
        };
        let limit = MAX_BLOCK_SIZE as u64 + 128;
        if len > limit {
            return Err(CarError::SectionTooLarge {
                index: self.index,
                len,
                limit,
            });
        }
        let mut section = vec![0u8; len as usize];
        self.inner.read_exact(&mut section).map_err(eof("section"))?;
        let mut cursor = io::Cursor::new(&section[..]);
        let cid = Cid::read_bytes(&mut cursor).map_err(|e| CarError::Cid {
            index: self.index,
            reason: e.to_string(),
        })?;
        let at = cursor.position() as usize;
        let data = section.split_off(at);
        verify_block(&cid, &data)?;
        let mut prefix = Vec::new();
        varint::encode(len, &mut prefix);
        let data_offset = self.offset + prefix.len() as u64 + at as u64;
        self.offset += prefix.len() as u64 + len;
        self.index += 1;
        Ok(Some((cid, data_offset, data)))
    }
}

/// A CAR opened for random access: every block verified once, then read by offset.
#[derive(Debug)]
pub struct IndexedCar<R> {
    inner: R,
    roots: Vec<Cid>,
    index: HashMap<Cid, (u64, usize)>,
}

impl<R: Read + Seek> IndexedCar<R> {
    /// Read the whole CAR once, verifying every block and remembering where it is.
    pub fn open(mut inner: R) -> Result<Self, CarError> {
        inner.seek(SeekFrom::Start(0))?;
        let mut reader = CarReader::new(io::BufReader::new(&mut inner))?;
        let mut index = HashMap::new();
        while let Some((cid, offset, data)) = reader.next_block()? {
            index.insert(cid, (offset, data.len()));
        }
        let roots = reader.roots;
        Ok(IndexedCar { inner, roots, index })
    }

    /// The roots the header names.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// Number of distinct blocks.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the CAR has no blocks.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

impl<R: Read + Seek> BlockSource for IndexedCar<R> {
    type Error = CarError;

    fn get(&mut self, cid: &Cid) -> Result<Vec<u8>, CarError> {
        let &(offset, len) = self.index.get(cid).ok_or(CarError::Missing(*cid))?;
        self.inner.seek(SeekFrom::Start(offset))?;
        let mut data = vec![0u8; len];
        self.inner.read_exact(&mut data).map_err(eof("block"))?;
        Ok(data)
    }
}

/// What [`write_car`] packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed {
    /// The DAG's root and size.
    pub root: DagRoot,
    /// Distinct blocks written.
    pub blocks: u64,
    /// Bytes of CAR written.
    pub car_bytes: u64,
}

/// Write one CAR section (varint length, binary CID, the block); returns the bytes written.
pub fn write_section<W: Write>(out: &mut W, cid: &Cid, data: &[u8]) -> io::Result<u64> {
    let cid = cid.to_bytes();
    let mut prefix = Vec::with_capacity(4);
    varint::encode((cid.len() + data.len()) as u64, &mut prefix);
    out.write_all(&prefix)?;
    out.write_all(&cid)?;
    out.write_all(data)?;
    Ok((prefix.len() + cid.len() + data.len()) as u64)
}

/// Pack a file into a CAR v1 with one root, blocks in depth-first order, each block once.
///
/// Reads `file` twice: once to build the DAG (keeping only the small internal nodes), once to write the
/// leaves in order. Fails with [`CarError::Changed`] if the file changes in between.
pub fn write_car<F: Read + Seek, W: Write>(
    mut file: F,
    opts: DagOptions,
    out: &mut W,
    mut progress: impl FnMut(u64),
) -> Result<Packed, CarError> {
    let chunk_size = opts.chunk_size;
    let mut nodes: HashMap<Cid, Vec<u8>> = HashMap::new();
    let mut leaves: Vec<Cid> = Vec::new();
    let root = build_from_reader(&mut file, opts, |cid, data| {
        if cid.codec() == DAG_PB {
            nodes.insert(*cid, data.to_vec());
        } else {
            leaves.push(*cid);
        }
    })?;
    file.seek(SeekFrom::Start(0))?;

    let header = encode_header(&[root.cid]);
    out.write_all(&header)?;
    let mut car_bytes = header.len() as u64;
    let mut written: HashSet<Cid> = HashSet::new();
    let mut next_leaf = 0usize;
    let mut buf = vec![0u8; chunk_size.clamp(1, 1 << 20)];
    let mut done = 0u64;
    let mut stack = vec![root.cid];
    while let Some(cid) = stack.pop() {
        if let Some(block) = nodes.get(&cid) {
            if written.insert(cid) {
                car_bytes += write_section(out, &cid, block)?;
            }
            let node = PbNode::decode(block).map_err(|_| CarError::Changed)?;
            stack.extend(node.links.iter().rev().map(|l| l.cid));
            continue;
        }
        // A leaf: the next chunk of the file, in order.
        if leaves.get(next_leaf) != Some(&cid) {
            return Err(CarError::Changed);
        }
        next_leaf += 1;
        let n = if root.size == 0 {
            0
        } else {
            read_full(&mut file, &mut buf)?
        };
        let chunk = &buf[..n];
        if n == 0 && root.size != 0 {
            return Err(CarError::Changed);
        }
        verify_block(&cid, chunk).map_err(|_| CarError::Changed)?;
        if written.insert(cid) {
            car_bytes += write_section(out, &cid, chunk)?;
        }
        done += n as u64;
        progress(done);
    }
    Ok(Packed {
        root,
        blocks: written.len() as u64,
        car_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::{ReadLimits, read_file};

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 2654435761) >> 13) as u8).collect()
    }

    #[test]
    fn pack_then_unpack_round_trips() {
        for len in [0usize, 5, 64, 1000] {
            let data = sample(len);
            let mut car = Vec::new();
            let opts = DagOptions {
                chunk_size: 16,
                max_links: 4,
                ..Default::default()
            };
            let packed = write_car(io::Cursor::new(&data), opts, &mut car, |_| {}).unwrap();
            assert_eq!(packed.car_bytes, car.len() as u64);
            let mut idx = IndexedCar::open(io::Cursor::new(&car)).unwrap();
            assert_eq!(idx.roots(), &[packed.root.cid]);
            assert_eq!(idx.len() as u64, packed.blocks);
            let mut out = Vec::new();
            read_file(
                &packed.root.cid,
                &mut idx,
                &mut out,
                ReadLimits::default(),
                |_| {},
            )
            .unwrap();
            assert_eq!(out, data, "len {len}");
        }
    }

    #[test]
    fn duplicate_chunks_are_written_once() {
        let data = vec![0u8; 16 * 10];
        let mut car = Vec::new();
        let opts = DagOptions {
            chunk_size: 16,
            max_links: 4,
            ..Default::default()
        };
        let packed = write_car(io::Cursor::new(&data), opts, &mut car, |_| {}).unwrap();
        // one distinct leaf, three level-1 nodes (two alike), one root
        assert_eq!(packed.blocks, 4);
    }

    #[test]
    fn header_round_trip_and_rejections() {
        let root = crate::dag::cid_of(crate::dag::RAW, b"x");
        let h = encode_header(&[root]);
        let (len, n) = varint::decode(&h).unwrap();
        assert_eq!(len as usize, h.len() - n);
        assert_eq!(decode_header(&h[n..]).unwrap(), vec![root]);
        let mut v2 = h[n..].to_vec();
        *v2.last_mut().unwrap() = 0x02;
        assert!(matches!(decode_header(&v2), Err(CarError::Version(2))));
        assert!(matches!(
            decode_header(&[0xa0]),
            Err(CarError::Header("no version"))
        ));
    }

    #[test]
    fn tampered_and_truncated_cars_are_rejected() {
        let data = sample(200);
        let mut car = Vec::new();
        let opts = DagOptions {
            chunk_size: 50,
            max_links: 174,
            ..Default::default()
        };
        write_car(io::Cursor::new(&data), opts, &mut car, |_| {}).unwrap();
        let mut bad = car.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            IndexedCar::open(io::Cursor::new(&bad)),
            Err(CarError::Block(BlockError::HashMismatch { .. }))
        ));
        let cut = &car[..car.len() - 3];
        assert!(matches!(
            IndexedCar::open(io::Cursor::new(cut)),
            Err(CarError::Truncated(_))
        ));
        assert!(matches!(CarReader::new(&[][..]), Err(CarError::Truncated(_))));
    }
}
