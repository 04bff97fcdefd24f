//! The persistent blockstore: redb, a size budget, pins per release root, eviction oldest first.
//!
//! Every write is one redb transaction with immediate durability, so a block that was acknowledged survives
//! `kill -9`. Blocks are only ever stored after they were checked against their CID (the fetcher computes the CID
//! from the bytes), so the store itself does not re-hash on read; [`read_file`](firmchain_update::dag::read_file)
//! still verifies every block it reads.

use std::path::Path;

use bytes::Bytes;
use cid::Cid;
use firmchain_update::dag::BlockSource;
use std::collections::HashSet;

use firmchain_update::varint;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition};

const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
const ADDED: TableDefinition<&[u8], u64> = TableDefinition::new("added");
const ORDER: TableDefinition<u64, &[u8]> = TableDefinition::new("order");
/// root → the CIDs it pins, each as a varint length and the CID's bytes.
const PINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pins");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The redb page cache: small on purpose (devices), enough for sequential writes at full speed.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Why the blockstore failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blockstore database: {0}")]
    Db(String),
    #[error(
        "blockstore is full: {needed} bytes needed, budget {budget} bytes, {pinned} bytes pinned by releases in use"
    )]
    Full { budget: u64, needed: u64, pinned: u64 },
    #[error("block {0} is not in the blockstore")]
    Missing(Cid),
}

fn dberr<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// What the store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Blocks held.
    pub blocks: u64,
    /// Bytes of block data held.
    pub bytes: u64,
    /// The size budget.
    pub budget: u64,
}

/// A blockstore on disk.
#[derive(Debug)]
pub struct Blockstore {
    db: Database,
    budget: u64,
}

impl Blockstore {
    /// Open (or create) the store at `path` with a budget of `budget` bytes of block data.
    pub fn open(path: &Path, budget: u64) -> Result<Blockstore, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(dberr)?;
        let tx = db.begin_write().map_err(dberr)?;
        {
            tx.open_table(BLOCKS).map_err(dberr)?;
            tx.open_table(ADDED).map_err(dberr)?;
            tx.open_table(ORDER).map_err(dberr)?;
            tx.open_table(PINS).map_err(dberr)?;
            tx.open_table(META).map_err(dberr)?;
        }
        tx.commit().map_err(dberr)?;
        Ok(Blockstore { db, budget })
    }

    /// The block with this CID, if held.
    pub fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(BLOCKS).map_err(dberr)?;
        Ok(t.get(cid.to_bytes().as_slice())
            .map_err(dberr)?
            .map(|v| v.value().to_vec()))
    }

    /// Several blocks in one read transaction (missing ones are `None`).
    pub fn get_many(&self, cids: &[Cid]) -> Result<Vec<Option<Bytes>>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(BLOCKS).map_err(dberr)?;
        cids.iter()
            .map(|c| {
                Ok(t.get(c.to_bytes().as_slice())
                    .map_err(dberr)?
                    .map(|v| Bytes::copy_from_slice(v.value())))
            })
            .collect()
    }

    /// Blocks in order, in one read transaction, until their bytes reach `budget`: the result covers a prefix
    /// of `cids` (at least one CID when `cids` is not empty), so a caller loads no more than about `budget`
    /// bytes whatever it is asked for. Missing ones are `None`.
    pub fn get_within(&self, cids: &[Cid], budget: usize) -> Result<Vec<Option<Bytes>>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(BLOCKS).map_err(dberr)?;
        let mut out = Vec::new();
        let mut loaded = 0usize;
        for c in cids {
            if loaded >= budget {
                break;
            }
            let block = t
                .get(c.to_bytes().as_slice())
                .map_err(dberr)?
                .map(|v| Bytes::copy_from_slice(v.value()));
            loaded += block.as_ref().map_or(0, Bytes::len);
            out.push(block);
        }
        Ok(out)
    }

    /// Whether each CID is held.
    pub fn has_many(&self, cids: &[Cid]) -> Result<Vec<bool>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(ADDED).map_err(dberr)?;
        cids.iter()
            .map(|c| Ok(t.get(c.to_bytes().as_slice()).map_err(dberr)?.is_some()))
            .collect()
    }

    /// Store verified blocks in one durable transaction, pinned under `pin` if given, then evict unpinned
    /// blocks, oldest first, until the store is within its budget. Fails, storing nothing, when pinned blocks
    /// alone would exceed the budget.
    pub fn put_batch(&self, pin: Option<&Cid>, blocks: &[(Cid, Bytes)]) -> Result<(), StoreError> {
        self.put_batch_with(pin, blocks, true)
    }

    /// [`put_batch`](Self::put_batch), but a non-`durable` batch reaches the disk only with the next durable
    /// write or [`sync`](Self::sync): a crash before that loses the batch (never the store's consistency),
    /// which a fetch simply fetches again.
    pub fn put_batch_with(
        &self,
        pin: Option<&Cid>,
        blocks: &[(Cid, Bytes)],
        durable: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(dberr)?;
        if !durable {
            tx.set_durability(redb::Durability::None).map_err(dberr)?;
        }
        {
            let mut data = tx.open_table(BLOCKS).map_err(dberr)?;
            let mut added = tx.open_table(ADDED).map_err(dberr)?;
            let mut order = tx.open_table(ORDER).map_err(dberr)?;
            let mut pins = tx.open_table(PINS).map_err(dberr)?;
            let mut meta = tx.open_table(META).map_err(dberr)?;
            let mut bytes = meta.get("bytes").map_err(dberr)?.map(|v| v.value()).unwrap_or(0);
            let mut seq = meta
                .get("next_seq")
                .map_err(dberr)?
                .map(|v| v.value())
                .unwrap_or(0);
            let pin_key = pin.map(|c| c.to_bytes());
            for (cid, block) in blocks {
                let key = cid.to_bytes();
                if added.get(key.as_slice()).map_err(dberr)?.is_none() {
                    data.insert(key.as_slice(), block.as_ref()).map_err(dberr)?;
                    added.insert(key.as_slice(), seq).map_err(dberr)?;
                    order.insert(seq, key.as_slice()).map_err(dberr)?;
                    seq += 1;
                    bytes += block.len() as u64;
                }
            }
            if let Some(root) = &pin_key {
                let keys: Vec<Vec<u8>> = blocks.iter().map(|(c, _)| c.to_bytes()).collect();
                add_pins(&mut pins, root, &keys)?;
            }
            if bytes > self.budget {
                // Evict unpinned blocks, oldest first.
                let pinned = all_pinned(&pins)?;
                let mut victims = Vec::new();
                let mut freed = 0u64;
                for row in order.iter().map_err(dberr)? {
                    if bytes - freed <= self.budget {
                        break;
                    }
                    let (s, k) = row.map_err(dberr)?;
                    let k = k.value().to_vec();
                    if pinned.contains(&k) {
                        continue;
                    }
                    let len = data
                        .get(k.as_slice())
                        .map_err(dberr)?
                        .map(|v| v.value().len())
                        .unwrap_or(0);
                    freed += len as u64;
                    victims.push((s.value(), k));
                }
                if bytes - freed > self.budget {
                    drop((data, added, order, pins, meta));
                    tx.abort().map_err(dberr)?;
                    return Err(StoreError::Full {
                        budget: self.budget,
                        needed: bytes,
                        pinned: bytes - freed,
                    });
                }
                for (s, k) in victims {
                    order.remove(s).map_err(dberr)?;
                    added.remove(k.as_slice()).map_err(dberr)?;
                    data.remove(k.as_slice()).map_err(dberr)?;
                }
                bytes -= freed;
            }
            meta.insert("bytes", bytes).map_err(dberr)?;
            meta.insert("next_seq", seq).map_err(dberr)?;
        }
        tx.commit().map_err(dberr)
    }

    /// Make every earlier write durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.begin_write().map_err(dberr)?.commit().map_err(dberr)
    }

    /// Pin blocks already held under `root` (those not held are skipped).
    pub fn pin_existing(&self, root: &Cid, cids: &[Cid]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let added = tx.open_table(ADDED).map_err(dberr)?;
            let mut pins = tx.open_table(PINS).map_err(dberr)?;
            let mut keys = Vec::with_capacity(cids.len());
            for cid in cids {
                let key = cid.to_bytes();
                if added.get(key.as_slice()).map_err(dberr)?.is_some() {
                    keys.push(key);
                }
            }
            add_pins(&mut pins, &root.to_bytes(), &keys)?;
        }
        tx.commit().map_err(dberr)
    }

    /// Release the pin of `root`: its blocks become evictable (unless another root pins them).
    pub fn unpin(&self, root: &Cid) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut pins = tx.open_table(PINS).map_err(dberr)?;
            pins.remove(root.to_bytes().as_slice()).map_err(dberr)?;
        }
        tx.commit().map_err(dberr)
    }

    /// The roots pinned in the store (the releases this node keeps and serves).
    pub fn pinned_roots(&self) -> Result<Vec<Cid>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let pins = tx.open_table(PINS).map_err(dberr)?;
        let mut roots = Vec::new();
        for row in pins.iter().map_err(dberr)? {
            let (k, _) = row.map_err(dberr)?;
            if let Ok(cid) = Cid::try_from(k.value()) {
                roots.push(cid);
            }
        }
        Ok(roots)
    }

    /// Blocks and bytes held.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let meta = tx.open_table(META).map_err(dberr)?;
        let added = tx.open_table(ADDED).map_err(dberr)?;
        Ok(StoreStats {
            blocks: added.len().map_err(dberr)?,
            bytes: meta.get("bytes").map_err(dberr)?.map(|v| v.value()).unwrap_or(0),
            budget: self.budget,
        })
    }
}

fn parse_pins(list: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((len, n)) = varint::decode(&list[at..]) {
        let start = at + n;
        let Some(end) = usize::try_from(len)
            .ok()
            .map(|l| start + l)
            .filter(|e| *e <= list.len())
        else {
            break;
        };
        out.push(list[start..end].to_vec());
        at = end;
    }
    out
}

/// Add `keys` to the pin list of `root` (once each).
fn add_pins(pins: &mut Table<&[u8], &[u8]>, root: &[u8], keys: &[Vec<u8>]) -> Result<(), StoreError> {
    let mut list = pins
        .get(root)
        .map_err(dberr)?
        .map(|v| v.value().to_vec())
        .unwrap_or_default();
    let have: HashSet<Vec<u8>> = parse_pins(&list).into_iter().collect();
    let mut added = HashSet::new();
    for k in keys {
        if !have.contains(k) && added.insert(k) {
            varint::encode(k.len() as u64, &mut list);
            list.extend_from_slice(k);
        }
    }
    pins.insert(root, list.as_slice()).map_err(dberr)?;
    Ok(())
}

/// Every CID some root pins.
fn all_pinned(pins: &Table<&[u8], &[u8]>) -> Result<HashSet<Vec<u8>>, StoreError> {
    let mut set = HashSet::new();
    for row in pins.iter().map_err(dberr)? {
        let (_, list) = row.map_err(dberr)?;
        set.extend(parse_pins(list.value()));
    }
    Ok(set)
}

impl BlockSource for &Blockstore {
    type Error = StoreError;

    fn get(&mut self, cid: &Cid) -> Result<Vec<u8>, StoreError> {
        Blockstore::get(self, cid)?.ok_or(StoreError::Missing(*cid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmchain_update::dag::{RAW, cid_of};

    fn block(i: u32, len: usize) -> (Cid, Bytes) {
        let mut data = vec![0u8; len];
        data[..4].copy_from_slice(&i.to_le_bytes());
        (cid_of(RAW, &data), Bytes::from(data))
    }

    #[test]
    fn blocks_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.redb");
        let (cid, data) = block(1, 100);
        {
            let store = Blockstore::open(&path, 1 << 20).unwrap();
            store.put_batch(Some(&cid), &[(cid, data.clone())]).unwrap();
        }
        let store = Blockstore::open(&path, 1 << 20).unwrap();
        assert_eq!(store.get(&cid).unwrap().unwrap(), data);
        assert_eq!(store.pinned_roots().unwrap(), vec![cid]);
        assert_eq!(store.stats().unwrap().bytes, 100);
    }

    #[test]
    fn unpinned_blocks_are_evicted_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(&dir.path().join("b.redb"), 1000).unwrap();
        let pinned = block(0, 400);
        store
            .put_batch(Some(&pinned.0), std::slice::from_ref(&pinned))
            .unwrap();
        let (a, b, c) = (block(1, 300), block(2, 300), block(3, 300));
        store.put_batch(None, &[a.clone(), b.clone()]).unwrap();
        store.put_batch(None, std::slice::from_ref(&c)).unwrap();
        // 400 + 3 × 300 = 1300 > 1000: the oldest unpinned block (a) went, the pinned one stayed.
        assert!(store.get(&a.0).unwrap().is_none());
        assert!(store.get(&b.0).unwrap().is_some());
        assert!(store.get(&c.0).unwrap().is_some());
        assert!(store.get(&pinned.0).unwrap().is_some());
        assert_eq!(store.stats().unwrap().bytes, 1000);
    }

    #[test]
    fn pinned_data_over_budget_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(&dir.path().join("b.redb"), 500).unwrap();
        let (x, y) = (block(1, 300), block(2, 300));
        let err = store.put_batch(Some(&x.0), &[x.clone(), y.clone()]).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Full {
                    budget: 500,
                    needed: 600,
                    ..
                }
            ),
            "{err}"
        );
        assert!(store.get(&x.0).unwrap().is_none());
        assert_eq!(
            store.stats().unwrap(),
            StoreStats {
                blocks: 0,
                bytes: 0,
                budget: 500
            }
        );
    }

    #[test]
    fn unpin_makes_blocks_evictable_unless_another_root_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(&dir.path().join("b.redb"), 700).unwrap();
        let (shared, only_a) = (block(1, 300), block(2, 300));
        let (ra, rb) = (block(10, 8).0, block(11, 8).0);
        store
            .put_batch(Some(&ra), &[shared.clone(), only_a.clone()])
            .unwrap();
        store.put_batch(Some(&rb), std::slice::from_ref(&shared)).unwrap();
        store.unpin(&ra).unwrap();
        assert_eq!(store.pinned_roots().unwrap(), vec![rb]);
        store.put_batch(None, &[block(3, 300)]).unwrap();
        assert!(
            store.get(&only_a.0).unwrap().is_none(),
            "unpinned block is evicted"
        );
        assert!(
            store.get(&shared.0).unwrap().is_some(),
            "block still pinned by rb stays"
        );
    }
}
