//! dag-pb nodes and UnixFS data: just enough protobuf to build and read file DAGs.

use cid::Cid;

use crate::varint;

/// Why a dag-pb node or its UnixFS data does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PbError {
    #[error("protobuf ends inside a field")]
    Truncated,
    #[error("bad varint")]
    Varint,
    #[error("unexpected field {field} with wire type {wire}")]
    Field { field: u64, wire: u64 },
    #[error("link has no hash")]
    LinkWithoutHash,
    #[error("bad CID in link: {0}")]
    Cid(String),
    #[error("link name is not UTF-8")]
    Name,
    #[error("UnixFS data has no type")]
    NoType,
}

/// A link of a dag-pb node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbLink {
    /// The child.
    pub cid: Cid,
    /// Its name (empty for file chunks, but written).
    pub name: Option<String>,
    /// Cumulative size of the child's DAG.
    pub tsize: Option<u64>,
}

/// A dag-pb node.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PbNode {
    /// Links, in order.
    pub links: Vec<PbLink>,
    /// The node's data (UnixFS protobuf for UnixFS DAGs).
    pub data: Option<Vec<u8>>,
}

fn put_bytes(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_uint(tag: u8, v: u64, out: &mut Vec<u8>) {
    out.push(tag);
    varint::encode(v, out);
}

impl PbNode {
    /// Canonical dag-pb encoding: links first, then data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for link in &self.links {
            let mut l = Vec::with_capacity(48);
            put_bytes(0x0a, &link.cid.to_bytes(), &mut l);
            if let Some(name) = &link.name {
                put_bytes(0x12, name.as_bytes(), &mut l);
            }
            if let Some(tsize) = link.tsize {
                put_uint(0x18, tsize, &mut l);
            }
            put_bytes(0x12, &l, &mut out);
        }
        if let Some(data) = &self.data {
            put_bytes(0x0a, data, &mut out);
        }
        out
    }

    /// Parse a dag-pb node.
    pub fn decode(buf: &[u8]) -> Result<Self, PbError> {
        let mut node = PbNode::default();
        for field in Fields(buf) {
            match field? {
                (1, Value::Bytes(d)) => node.data = Some(d.to_vec()),
                (2, Value::Bytes(l)) => node.links.push(decode_link(l)?),
                (field, v) => {
                    return Err(PbError::Field {
                        field,
                        wire: v.wire(),
                    });
                }
            }
        }
        Ok(node)
    }
}

fn decode_link(buf: &[u8]) -> Result<PbLink, PbError> {
    let (mut cid, mut name, mut tsize) = (None, None, None);
    for field in Fields(buf) {
        match field? {
            (1, Value::Bytes(h)) => cid = Some(Cid::try_from(h).map_err(|e| PbError::Cid(e.to_string()))?),
            (2, Value::Bytes(n)) => name = Some(String::from_utf8(n.to_vec()).map_err(|_| PbError::Name)?),
            (3, Value::Uint(t)) => tsize = Some(t),
            (field, v) => {
                return Err(PbError::Field {
                    field,
                    wire: v.wire(),
                });
            }
        }
    }
    Ok(PbLink {
        cid: cid.ok_or(PbError::LinkWithoutHash)?,
        name,
        tsize,
    })
}

/// UnixFS node types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnixFsType {
    Raw,
    Directory,
    File,
    Metadata,
    Symlink,
    HamtShard,
    Unknown(u64),
}

impl UnixFsType {
    fn code(self) -> u64 {
        match self {
            UnixFsType::Raw => 0,
            UnixFsType::Directory => 1,
            UnixFsType::File => 2,
            UnixFsType::Metadata => 3,
            UnixFsType::Symlink => 4,
            UnixFsType::HamtShard => 5,
            UnixFsType::Unknown(c) => c,
        }
    }

    fn from_code(c: u64) -> Self {
        match c {
            0 => UnixFsType::Raw,
            1 => UnixFsType::Directory,
            2 => UnixFsType::File,
            3 => UnixFsType::Metadata,
            4 => UnixFsType::Symlink,
            5 => UnixFsType::HamtShard,
            c => UnixFsType::Unknown(c),
        }
    }
}

/// The UnixFS `Data` message (the fields a file needs; others are skipped when reading).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixFs {
    pub kind: UnixFsType,
    pub data: Option<Vec<u8>>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
}

impl UnixFs {
    /// Encode as Helia and kubo do for file nodes: type, data (if any), filesize, then each blocksize.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.blocksizes.len() * 4);
        put_uint(0x08, self.kind.code(), &mut out);
        if let Some(d) = self.data.as_deref().filter(|d| !d.is_empty()) {
            put_bytes(0x12, d, &mut out);
        }
        if let Some(size) = self.filesize {
            put_uint(0x18, size, &mut out);
        }
        for &b in &self.blocksizes {
            put_uint(0x20, b, &mut out);
        }
        out
    }

    /// Parse UnixFS data. Unknown and irrelevant fields (hash type, fanout, mode, mtime) are skipped.
    pub fn decode(buf: &[u8]) -> Result<Self, PbError> {
        let (mut kind, mut data, mut filesize, mut blocksizes) = (None, None, None, Vec::new());
        for field in Fields(buf) {
            match field? {
                (1, Value::Uint(t)) => kind = Some(UnixFsType::from_code(t)),
                (2, Value::Bytes(d)) => data = Some(d.to_vec()),
                (3, Value::Uint(s)) => filesize = Some(s),
                (4, Value::Uint(b)) => blocksizes.push(b),
                (4, Value::Bytes(packed)) => {
                    let mut rest = packed;
                    while !rest.is_empty() {
                        let (v, n) = varint::decode(rest).ok_or(PbError::Varint)?;
                        blocksizes.push(v);
                        rest = &rest[n..];
                    }
                }
                (1..=4, v) => {
                    return Err(PbError::Field {
                        field: 0,
                        wire: v.wire(),
                    });
                }
                _ => {}
            }
        }
        Ok(UnixFs {
            kind: kind.ok_or(PbError::NoType)?,
            data,
            filesize,
            blocksizes,
        })
    }
}

enum Value<'a> {
    Uint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl Value<'_> {
    fn wire(&self) -> u64 {
        match self {
            Value::Uint(_) => 0,
            Value::Bytes(_) => 2,
            Value::Fixed => 1,
        }
    }
}

/// Iterator over the (field number, value) pairs of a protobuf message.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), PbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let r = (|| {
            let (key, n) = varint::decode(self.0).ok_or(PbError::Varint)?;
            self.0 = &self.0[n..];
            let (field, wire) = (key >> 3, key & 7);
            let value = match wire {
                0 => {
                    let (v, n) = varint::decode(self.0).ok_or(PbError::Varint)?;
                    self.0 = &self.0[n..];
                    Value::Uint(v)
                }
                2 => {
                    let (len, n) = varint::decode(self.0).ok_or(PbError::Varint)?;
                    let rest = &self.0[n..];
                    let len = usize::try_from(len).map_err(|_| PbError::Truncated)?;
                    if len > rest.len() {
                        return Err(PbError::Truncated);
                    }
                    self.0 = &rest[len..];
                    Value::Bytes(&rest[..len])
                }
                1 | 5 => {
                    let len = if wire == 1 { 8 } else { 4 };
                    if self.0.len() < len {
                        return Err(PbError::Truncated);
                    }
                    self.0 = &self.0[len..];
                    Value::Fixed
                }
                w => return Err(PbError::Field { field, wire: w }),
            };
            Ok((field, value))
        })();
        if r.is_err() {
            self.0 = &[];
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::{RAW, cid_of};

    #[test]
    fn node_round_trip() {
        let node = PbNode {
            links: vec![
                PbLink {
                    cid: cid_of(RAW, b"a"),
                    name: Some(String::new()),
                    tsize: Some(1),
                },
                PbLink {
                    cid: cid_of(RAW, b"bc"),
                    name: None,
                    tsize: None,
                },
            ],
            data: Some(
                UnixFs {
                    kind: UnixFsType::File,
                    data: None,
                    filesize: Some(3),
                    blocksizes: vec![1, 2],
                }
                .encode(),
            ),
        };
        let bytes = node.encode();
        assert_eq!(PbNode::decode(&bytes).unwrap(), node);
        let fs = UnixFs::decode(node.data.as_deref().unwrap()).unwrap();
        assert_eq!(fs.blocksizes, vec![1, 2]);
        assert_eq!(fs.filesize, Some(3));
    }

    #[test]
    fn unixfs_file_bytes_are_canonical() {
        let fs = UnixFs {
            kind: UnixFsType::File,
            data: None,
            filesize: Some(300),
            blocksizes: vec![256, 44],
        };
        assert_eq!(
            fs.encode(),
            vec![0x08, 0x02, 0x18, 0xac, 0x02, 0x20, 0x80, 0x02, 0x20, 0x2c]
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(PbNode::decode(&[0x0a, 0x05, 1]), Err(PbError::Truncated));
        assert!(matches!(
            PbNode::decode(&[0x18, 0x01]),
            Err(PbError::Field { field: 3, .. })
        ));
        assert_eq!(
            PbNode::decode(&[0x12, 0x02, 0x18, 0x01]),
            Err(PbError::LinkWithoutHash)
        );
        assert_eq!(UnixFs::decode(&[0x18, 0x01]), Err(PbError::NoType));
        assert_eq!(PbNode::decode(&[0x0a, 0xff]), Err(PbError::Varint));
    }
}
