//! The node's crash-safe state in redb: per product the installed release and the rollback floor, the light
//! client's checkpoint, and the index event cursor. Every write is one durable transaction, so after `kill -9`
//! the node restarts from the last state it acknowledged.

use std::path::Path;

use firmchain_update::{Blake3Hash, ProductId, Sequence};
use redb::{Database, ReadableDatabase, TableDefinition};

/// product id → installed sequence (8 bytes LE), blake3 of the image (32), rollback floor (8 LE).
const PRODUCTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("products");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("node state {path}: {message}")]
    Db { path: String, message: String },
    #[error("node state: entry for {what} is damaged ({len} bytes)")]
    Damaged { what: String, len: usize },
}

/// What a device runs for one product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductState {
    /// The installed release (0 for the initial image).
    pub sequence: Sequence,
    /// blake3 of the installed image.
    pub hash: Blake3Hash,
    /// Never install a release below this sequence again (raised as releases are installed).
    pub floor: Sequence,
}

/// The state store.
#[derive(Debug)]
pub struct NodeState {
    db: Database,
    path: String,
}

impl NodeState {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<NodeState, StateError> {
        let name = path.display().to_string();
        let err = |e: &dyn std::fmt::Display| StateError::Db {
            path: name.clone(),
            message: e.to_string(),
        };
        let db = Database::builder()
            .set_cache_size(1 << 20)
            .create(path)
            .map_err(|e| err(&e))?;
        let tx = db.begin_write().map_err(|e| err(&e))?;
        tx.open_table(PRODUCTS).map_err(|e| err(&e))?;
        tx.open_table(META).map_err(|e| err(&e))?;
        tx.commit().map_err(|e| err(&e))?;
        Ok(NodeState { db, path: name })
    }

    fn err(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// What is installed for `product`, if anything was recorded.
    pub fn product(&self, product: &ProductId) -> Result<Option<ProductState>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(PRODUCTS).map_err(|e| self.err(e))?;
        let Some(v) = t.get(&product.0).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let b = v.value();
        if b.len() != 48 {
            return Err(StateError::Damaged {
                what: product.to_string(),
                len: b.len(),
            });
        }
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[8..40]);
        Ok(Some(ProductState {
            sequence: Sequence(u64_at(0)),
            hash: Blake3Hash(hash),
            floor: Sequence(u64_at(40)),
        }))
    }

    /// Record an installed release; the floor only ever rises.
    pub fn set_product(&self, product: &ProductId, state: ProductState) -> Result<(), StateError> {
        let floor = self
            .product(product)?
            .map_or(state.floor, |old| old.floor.max(state.floor));
        let mut b = Vec::with_capacity(48);
        b.extend_from_slice(&state.sequence.0.to_le_bytes());
        b.extend_from_slice(&state.hash.0);
        b.extend_from_slice(&floor.0.to_le_bytes());
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(PRODUCTS).map_err(|e| self.err(e))?;
            t.insert(&product.0, b.as_slice()).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// A small named value (the light client's checkpoint, the event cursor).
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(META).map_err(|e| self.err(e))?;
        Ok(t.get(key).map_err(|e| self.err(e))?.map(|v| v.value().to_vec()))
    }

    /// Store a named value durably.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StateError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(META).map_err(|e| self.err(e))?;
            t.insert(key, value).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The last index block whose events were processed.
    pub fn event_cursor(&self) -> Result<u64, StateError> {
        Ok(self
            .meta("event_cursor")?
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_le_bytes))
    }

    /// Move the event cursor (never backwards).
    pub fn set_event_cursor(&self, block: u64) -> Result<(), StateError> {
        if block > self.event_cursor()? {
            self.set_meta("event_cursor", &block.to_le_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen_and_the_floor_never_falls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let product: ProductId = "acme-sensor".parse().unwrap();
        {
            let s = NodeState::open(&path).unwrap();
            assert_eq!(s.product(&product).unwrap(), None);
            let first = ProductState {
                sequence: Sequence(3),
                hash: Blake3Hash([3; 32]),
                floor: Sequence(3),
            };
            s.set_product(&product, first).unwrap();
            // A rollback to 2 records what runs, but the floor stays at 3.
            s.set_product(
                &product,
                ProductState {
                    sequence: Sequence(2),
                    hash: Blake3Hash([2; 32]),
                    floor: Sequence(2),
                },
            )
            .unwrap();
            s.set_event_cursor(100).unwrap();
            s.set_event_cursor(50).unwrap();
            s.set_meta("checkpoint", b"0xabc").unwrap();
        }
        let s = NodeState::open(&path).unwrap();
        let p = s.product(&product).unwrap().unwrap();
        assert_eq!(
            (p.sequence, p.hash, p.floor),
            (Sequence(2), Blake3Hash([2; 32]), Sequence(3))
        );
        assert_eq!(s.event_cursor().unwrap(), 100, "the cursor never goes back");
        assert_eq!(s.meta("checkpoint").unwrap().unwrap(), b"0xabc");
        assert_eq!(s.meta("absent").unwrap(), None);
    }
}
