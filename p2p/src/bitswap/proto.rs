//! The Bitswap 1.2.0 message (`bitswap/message.proto`), encoded and decoded by hand: pure functions over bytes.
//!
//! ```text
//! Message { Wantlist wantlist = 1; repeated bytes blocks = 2; repeated Block payload = 3;
//!           repeated BlockPresence blockPresences = 4; int32 pendingBytes = 5; }
//! Wantlist { repeated Entry entries = 1; bool full = 2; }
//! Entry { bytes block = 1; int32 priority = 2; bool cancel = 3; WantType wantType = 4; bool sendDontHave = 5; }
//! Block { bytes prefix = 1; bytes data = 2; }          BlockPresence { bytes cid = 1; Type type = 2; }
//! ```
//!
//! A received block carries only a CID *prefix* (version, codec, hash function, digest length); the receiver
//! hashes the data to learn its CID, so a block can never be accepted under a CID it does not hash to.

pub use bytes::Bytes;
use cid::Cid;
use firmchain_update::dag::{self, MAX_BLOCK_SIZE};
use firmchain_update::varint;

/// The largest message we read or write (Helia's and kubo's limit).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Outgoing block messages are cut near this size, well under every implementation's limit.
pub const SPLIT_MESSAGE_SIZE: usize = 2 * 1024 * 1024;
/// The most wantlist entries we take from one message.
pub const MAX_ENTRIES: usize = 4096;

/// What a want asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WantType {
    /// Send the block.
    Block,
    /// Say whether you have it.
    Have,
}

/// One wantlist entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The wanted block.
    pub cid: Cid,
    /// Higher first.
    pub priority: i32,
    /// Withdraw an earlier want.
    pub cancel: bool,
    /// Block or Have.
    pub want: WantType,
    /// Answer `DontHave` instead of staying silent.
    pub send_dont_have: bool,
}

/// A `Have`/`DontHave` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// The peer has the block.
    Have,
    /// The peer does not have the block.
    DontHave,
}

/// The prefix of a CID: everything but the digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// 0 or 1.
    pub version: u64,
    /// The multicodec of the block.
    pub codec: u64,
    /// The multihash function.
    pub hash: u64,
    /// The digest length.
    pub len: u64,
}

impl Prefix {
    /// The prefix of `cid`.
    pub fn of(cid: &Cid) -> Prefix {
        Prefix {
            version: cid.version() as u64,
            codec: cid.codec(),
            hash: cid.hash().code(),
            len: u64::from(cid.hash().size()),
        }
    }

    /// Encode as four varints.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.version, self.codec, self.hash, self.len] {
            varint::encode(v, out);
        }
    }

    /// Decode four varints.
    pub fn decode(buf: &[u8]) -> Result<Prefix, ProtoError> {
        let mut at = 0;
        let mut vals = [0u64; 4];
        for v in &mut vals {
            let (x, n) = varint::decode(&buf[at..]).ok_or(ProtoError::Prefix)?;
            *v = x;
            at += n;
        }
        let [version, codec, hash, len] = vals;
        Ok(Prefix {
            version,
            codec,
            hash,
            len,
        })
    }

    /// The CID of `data` under this prefix: hashes the data. Fails for hashes we do not support.
    pub fn cid_of(&self, data: &[u8]) -> Result<Cid, ProtoError> {
        let mh = dag::multihash(self.hash, data).ok_or(ProtoError::UnsupportedHash(self.hash))?;
        if u64::from(mh.size()) != self.len {
            return Err(ProtoError::Prefix);
        }
        match self.version {
            0 if self.codec == dag::DAG_PB && self.hash == dag::SHA2_256 => {
                Cid::new_v0(mh).map_err(|_| ProtoError::Prefix)
            }
            1 => Ok(Cid::new_v1(self.codec, mh)),
            _ => Err(ProtoError::Prefix),
        }
    }
}

/// A block as it travels: the prefix of its CID and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireBlock {
    /// The CID prefix the sender claims.
    pub prefix: Prefix,
    /// The block's bytes.
    pub data: Bytes,
}

/// One Bitswap message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Wantlist entries.
    pub wantlist: Vec<Entry>,
    /// Whether the wantlist replaces the previous one.
    pub full: bool,
    /// Blocks (Bitswap 1.0.0 `blocks` are turned into CIDv0 prefixes).
    pub blocks: Vec<WireBlock>,
    /// Have / DontHave answers.
    pub presences: Vec<(Cid, Presence)>,
    /// Bytes the sender still has queued for us.
    pub pending_bytes: i32,
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("message is {0} bytes, the limit is {MAX_MESSAGE_SIZE}")]
    TooLarge(usize),
    #[error("truncated protobuf")]
    Truncated,
    #[error("unsupported protobuf wire type {0}")]
    WireType(u64),
    #[error("field {field} has the wrong wire type")]
    FieldType { field: u64 },
    #[error("invalid CID in a wantlist entry or presence")]
    Cid,
    #[error("invalid CID prefix")]
    Prefix,
    #[error("unsupported multihash 0x{0:x}")]
    UnsupportedHash(u64),
    #[error("a block of {0} bytes is over the {MAX_BLOCK_SIZE}-byte limit")]
    BlockTooLarge(usize),
    #[error("more than {MAX_ENTRIES} wantlist entries")]
    TooManyEntries,
    #[error("unknown enum value {0}")]
    Enum(u64),
}

// ---- encoding ----

fn key(field: u64, wire: u64, out: &mut Vec<u8>) {
    varint::encode((field << 3) | wire, out);
}

fn put_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_varint(field: u64, v: u64, out: &mut Vec<u8>) {
    key(field, 0, out);
    varint::encode(v, out);
}

fn put_int32(field: u64, v: i32, out: &mut Vec<u8>) {
    // Protobuf int32: negative values are sign-extended to 64 bits.
    put_varint(field, i64::from(v) as u64, out);
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(1, &self.cid.to_bytes(), out);
        if self.priority != 0 {
            put_int32(2, self.priority, out);
        }
        if self.cancel {
            put_varint(3, 1, out);
        }
        if self.want == WantType::Have {
            put_varint(4, 1, out);
        }
        if self.send_dont_have {
            put_varint(5, 1, out);
        }
    }
}

impl Message {
    /// Whether the message carries nothing.
    pub fn is_empty(&self) -> bool {
        self.wantlist.is_empty() && self.blocks.is_empty() && self.presences.is_empty() && !self.full
    }

    /// Protobuf encoding (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let parts = self.encode_parts();
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            out.extend_from_slice(&p);
        }
        out
    }

    /// The encoding as consecutive parts: block data is shared, not copied, so a writer can send it as is.
    pub fn encode_parts(&self) -> Vec<Bytes> {
        let mut parts = Vec::with_capacity(2 * self.blocks.len() + 2);
        let mut out =
            Vec::with_capacity(64 * (self.wantlist.len() + self.presences.len() + self.blocks.len()) + 16);
        if !self.wantlist.is_empty() || self.full {
            let mut wl = Vec::new();
            let mut entry = Vec::new();
            for e in &self.wantlist {
                entry.clear();
                e.encode(&mut entry);
                put_bytes(1, &entry, &mut wl);
            }
            if self.full {
                put_varint(2, 1, &mut wl);
            }
            put_bytes(1, &wl, &mut out);
        }
        let mut prefix = Vec::with_capacity(8);
        for b in &self.blocks {
            prefix.clear();
            b.prefix.encode(&mut prefix);
            let inner = 2 + prefix.len() + varint_len(b.data.len() as u64) + 1 + b.data.len();
            key(3, 2, &mut out);
            varint::encode(inner as u64, &mut out);
            put_bytes(1, &prefix, &mut out);
            key(2, 2, &mut out);
            varint::encode(b.data.len() as u64, &mut out);
            parts.push(Bytes::from(std::mem::take(&mut out)));
            parts.push(b.data.clone());
        }
        let mut p = Vec::new();
        for (cid, presence) in &self.presences {
            p.clear();
            put_bytes(1, &cid.to_bytes(), &mut p);
            if *presence == Presence::DontHave {
                put_varint(2, 1, &mut p);
            }
            put_bytes(4, &p, &mut out);
        }
        if self.pending_bytes != 0 {
            put_int32(5, self.pending_bytes, &mut out);
        }
        if !out.is_empty() {
            parts.push(Bytes::from(out));
        }
        parts
    }

    /// Decode a message, enforcing the message, block and entry limits. Block data is sliced out of `buf`,
    /// not copied.
    pub fn decode(buf: &Bytes) -> Result<Message, ProtoError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ProtoError::TooLarge(buf.len()));
        }
        let mut msg = Message::default();
        let mut r = Reader::new(buf);
        while let Some((field, value)) = r.next()? {
            match (field, value) {
                (1, Value::Bytes(wl)) => decode_wantlist(wl, &mut msg)?,
                (2, Value::Bytes(data)) => {
                    check_block_size(data.len())?;
                    msg.blocks.push(WireBlock {
                        prefix: Prefix {
                            version: 0,
                            codec: dag::DAG_PB,
                            hash: dag::SHA2_256,
                            len: 32,
                        },
                        data: buf.slice_ref(data),
                    });
                }
                (3, Value::Bytes(block)) => msg.blocks.push(decode_block(block, buf)?),
                (4, Value::Bytes(p)) => msg.presences.push(decode_presence(p)?),
                (5, Value::Varint(v)) => msg.pending_bytes = v as i32,
                (1..=5, _) => return Err(ProtoError::FieldType { field }),
                _ => {}
            }
        }
        Ok(msg)
    }
}

fn varint_len(v: u64) -> usize {
    let mut n = 1;
    let mut v = v >> 7;
    while v != 0 {
        n += 1;
        v >>= 7;
    }
    n
}

fn check_block_size(len: usize) -> Result<(), ProtoError> {
    if len > MAX_BLOCK_SIZE {
        return Err(ProtoError::BlockTooLarge(len));
    }
    Ok(())
}

fn decode_wantlist(buf: &[u8], msg: &mut Message) -> Result<(), ProtoError> {
    let mut r = Reader::new(buf);
    while let Some((field, value)) = r.next()? {
        match (field, value) {
            (1, Value::Bytes(e)) => {
                if msg.wantlist.len() >= MAX_ENTRIES {
                    return Err(ProtoError::TooManyEntries);
                }
                msg.wantlist.push(decode_entry(e)?);
            }
            (2, Value::Varint(v)) => msg.full = v != 0,
            (1 | 2, _) => return Err(ProtoError::FieldType { field }),
            _ => {}
        }
    }
    Ok(())
}

fn decode_entry(buf: &[u8]) -> Result<Entry, ProtoError> {
    let mut r = Reader::new(buf);
    let mut cid = None;
    let mut entry = Entry {
        cid: Cid::default(),
        priority: 0,
        cancel: false,
        want: WantType::Block,
        send_dont_have: false,
    };
    while let Some((field, value)) = r.next()? {
        match (field, value) {
            (1, Value::Bytes(c)) => cid = Some(Cid::try_from(c).map_err(|_| ProtoError::Cid)?),
            (2, Value::Varint(v)) => entry.priority = v as i32,
            (3, Value::Varint(v)) => entry.cancel = v != 0,
            (4, Value::Varint(0)) => entry.want = WantType::Block,
            (4, Value::Varint(1)) => entry.want = WantType::Have,
            (4, Value::Varint(v)) => return Err(ProtoError::Enum(v)),
            (5, Value::Varint(v)) => entry.send_dont_have = v != 0,
            (1..=5, _) => return Err(ProtoError::FieldType { field }),
            _ => {}
        }
    }
    entry.cid = cid.ok_or(ProtoError::Cid)?;
    Ok(entry)
}

fn decode_block(buf: &[u8], owner: &Bytes) -> Result<WireBlock, ProtoError> {
    let mut r = Reader::new(buf);
    let (mut prefix, mut data) = (None, None);
    while let Some((field, value)) = r.next()? {
        match (field, value) {
            (1, Value::Bytes(p)) => prefix = Some(Prefix::decode(p)?),
            (2, Value::Bytes(d)) => {
                check_block_size(d.len())?;
                data = Some(owner.slice_ref(d));
            }
            (1 | 2, _) => return Err(ProtoError::FieldType { field }),
            _ => {}
        }
    }
    Ok(WireBlock {
        prefix: prefix.ok_or(ProtoError::Prefix)?,
        data: data.unwrap_or_default(),
    })
}

fn decode_presence(buf: &[u8]) -> Result<(Cid, Presence), ProtoError> {
    let mut r = Reader::new(buf);
    let (mut cid, mut presence) = (None, Presence::Have);
    while let Some((field, value)) = r.next()? {
        match (field, value) {
            (1, Value::Bytes(c)) => cid = Some(Cid::try_from(c).map_err(|_| ProtoError::Cid)?),
            (2, Value::Varint(0)) => presence = Presence::Have,
            (2, Value::Varint(1)) => presence = Presence::DontHave,
            (2, Value::Varint(v)) => return Err(ProtoError::Enum(v)),
            (1 | 2, _) => return Err(ProtoError::FieldType { field }),
            _ => {}
        }
    }
    Ok((cid.ok_or(ProtoError::Cid)?, presence))
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let (v, n) = varint::decode(self.buf).ok_or(ProtoError::Truncated)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.buf.len() < n {
            return Err(ProtoError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, ProtoError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        let value = match k & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtoError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            w => return Err(ProtoError::WireType(w)),
        };
        Ok(Some((k >> 3, value)))
    }
}

/// Cut blocks into messages of at most about [`SPLIT_MESSAGE_SIZE`] bytes each (a single larger block travels
/// alone), presences riding along with the first.
pub fn split_blocks(blocks: Vec<WireBlock>, presences: Vec<(Cid, Presence)>) -> Vec<Message> {
    let mut out = Vec::new();
    let mut cur = Message {
        presences,
        ..Message::default()
    };
    let mut size = 0;
    for b in blocks {
        if !cur.blocks.is_empty() && size + b.data.len() > SPLIT_MESSAGE_SIZE {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += b.data.len();
        cur.blocks.push(b);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmchain_update::dag::{RAW, cid_of};
    use proptest::prelude::*;

    fn entry(cid: Cid) -> Entry {
        Entry {
            cid,
            priority: -3,
            cancel: false,
            want: WantType::Have,
            send_dont_have: true,
        }
    }

    #[test]
    fn roundtrip_every_field() {
        let a = cid_of(RAW, b"a");
        let b = cid_of(dag::DAG_PB, b"b");
        let msg = Message {
            wantlist: vec![
                entry(a),
                Entry {
                    cancel: true,
                    want: WantType::Block,
                    ..entry(b)
                },
            ],
            full: true,
            blocks: vec![WireBlock {
                prefix: Prefix::of(&a),
                data: Bytes::from_static(b"a"),
            }],
            presences: vec![(a, Presence::Have), (b, Presence::DontHave)],
            pending_bytes: 7,
        };
        assert_eq!(Message::decode(&Bytes::from(msg.encode())).unwrap(), msg);
    }

    #[test]
    fn known_encoding_of_a_want() {
        // Entry{block=<cid>, wantType=Have, sendDontHave=true} inside Wantlist inside Message, as protobufjs
        // (Helia) writes it: tags 0x0a 0x0a 0x0a, then 0x20 0x01 and 0x28 0x01.
        let cid = cid_of(RAW, b"");
        let msg = Message {
            wantlist: vec![Entry {
                priority: 0,
                ..entry(cid)
            }],
            ..Message::default()
        };
        let bytes = msg.encode();
        let c = cid.to_bytes();
        let mut expected = vec![
            0x0a,
            (c.len() + 8) as u8,
            0x0a,
            (c.len() + 6) as u8,
            0x0a,
            c.len() as u8,
        ];
        expected.extend_from_slice(&c);
        expected.extend_from_slice(&[0x20, 0x01, 0x28, 0x01]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn block_cid_is_computed_from_the_data() {
        let data = b"hello";
        let cid = cid_of(RAW, data);
        let prefix = Prefix::of(&cid);
        assert_eq!(prefix.cid_of(data).unwrap(), cid);
        // The same prefix over other bytes gives another CID: a block cannot pose as one it does not hash to.
        assert_ne!(prefix.cid_of(b"hellO").unwrap(), cid);
        let mut enc = Vec::new();
        prefix.encode(&mut enc);
        assert_eq!(Prefix::decode(&enc).unwrap(), prefix);
    }

    #[test]
    fn cidv0_prefix_and_bitswap_1_0_blocks() {
        let data = b"\x0a\x02\x08\x01"; // a tiny dag-pb node
        let v1 = cid_of(dag::DAG_PB, data);
        let v0 = Cid::new_v0(*v1.hash()).unwrap();
        // Field 2 (Bitswap 1.0.0): bare bytes, CIDv0.
        let mut buf = Vec::new();
        put_bytes(2, data, &mut buf);
        let msg = Message::decode(&Bytes::from(buf)).unwrap();
        assert_eq!(msg.blocks[0].prefix.cid_of(&msg.blocks[0].data).unwrap(), v0);
    }

    #[test]
    fn limits_are_enforced() {
        assert_eq!(
            Message::decode(&Bytes::from(vec![0; MAX_MESSAGE_SIZE + 1])),
            Err(ProtoError::TooLarge(MAX_MESSAGE_SIZE + 1))
        );
        let big = WireBlock {
            prefix: Prefix::of(&cid_of(RAW, b"")),
            data: Bytes::from(vec![1u8; MAX_BLOCK_SIZE + 1]),
        };
        let msg = Message {
            blocks: vec![big],
            ..Message::default()
        };
        assert_eq!(
            Message::decode(&Bytes::from(msg.encode())),
            Err(ProtoError::BlockTooLarge(MAX_BLOCK_SIZE + 1))
        );
        let unsupported = Prefix {
            version: 1,
            codec: RAW,
            hash: 0x13, // sha2-512
            len: 64,
        };
        assert_eq!(unsupported.cid_of(b"x"), Err(ProtoError::UnsupportedHash(0x13)));
    }

    #[test]
    fn split_keeps_messages_near_two_mib() {
        let blocks: Vec<WireBlock> = (0..20u8)
            .map(|i| {
                let data = vec![i; 256 * 1024];
                WireBlock {
                    prefix: Prefix::of(&cid_of(RAW, &data)),
                    data: data.into(),
                }
            })
            .collect();
        let msgs = split_blocks(blocks, vec![(cid_of(RAW, b"x"), Presence::DontHave)]);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs.iter().map(|m| m.blocks.len()).sum::<usize>(), 20);
        assert_eq!(msgs[0].presences.len(), 1);
        for m in &msgs {
            assert!(m.encode().len() <= SPLIT_MESSAGE_SIZE + 1024);
            assert_eq!(m.encode_parts().concat(), m.encode());
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::decode(&Bytes::from(bytes));
        }

        #[test]
        fn wantlists_roundtrip(seeds in proptest::collection::vec(any::<u32>(), 0..20), full: bool) {
            let msg = Message {
                wantlist: seeds.iter().map(|s| Entry {
                    cid: cid_of(RAW, &s.to_le_bytes()),
                    priority: *s as i32,
                    cancel: s % 3 == 0,
                    want: if s % 2 == 0 { WantType::Block } else { WantType::Have },
                    send_dont_have: s % 5 == 0,
                }).collect(),
                full,
                ..Message::default()
            };
            prop_assert_eq!(Message::decode(&Bytes::from(msg.encode())).unwrap(), msg);
        }
    }
}
