//! [`NodeState`]: the one owner of everything the node persists, in one redb file (`<data>/state.redb`).
//!
//! | key | value |
//! |---|---|
//! | `installed/<product>` | the release the node last recorded as running, and its image hash |
//! | `rolled_back/<product>` | releases rolled back on this device, with the reason (never tried again) |
//! | `health_pending/<product>` | a release switched to whose health check has not ended (a crash cut it short) |
//! | `commit_pending/<product>` | a release handed to RAUC/SWUpdate that waits for the reboot and its confirmation |
//! | `light_client` | the light client's newest verified finalized checkpoint and heads |
//! | `event_cursor` | the first index block whose `ReleasePublished` events are still needed |
//! | `proofs` | a `peers`-mode device's verified committee chain and last head proof (served on, and the replay mark) |
//!
//! Every write is one durable transaction, so after `kill -9` the node restarts from the last state it
//! acknowledged. A value that does not decode is an error naming the file and the key ([`StateError::Damaged`]),
//! never a default: the node does not start on it, and `firmchain state show` / `firmchain state reset KEY` are
//! the way out. The slot pointer (`slots/state.json`) stays the truth for what boots; the node brings
//! `installed/<product>` in line with it once at start.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::proofs::SavedProofs;
use firmchain_lightclient::client::Persisted;
use firmchain_update::machine::Installed;
use firmchain_update::{Blake3Hash, ProductId, Sequence};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// product id → installed sequence (8 bytes LE) and blake3 of the image (32). Stores written before the rollback
/// floor was dropped hold 8 more bytes (the floor), which are ignored.
const PRODUCTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("products");
/// Every other key ([`StateKey`] as a string) → its value.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// One persisted fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKey {
    /// `installed/<product>`.
    Installed(ProductId),
    /// `rolled_back/<product>`.
    RolledBack(ProductId),
    /// `health_pending/<product>`.
    HealthPending(ProductId),
    /// `commit_pending/<product>`.
    CommitPending(ProductId),
    /// `light_client`.
    LightClient,
    /// `event_cursor`.
    EventCursor,
    /// `proofs`.
    Proofs,
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateKey::Installed(p) => write!(f, "installed/{p}"),
            StateKey::RolledBack(p) => write!(f, "rolled_back/{p}"),
            StateKey::HealthPending(p) => write!(f, "health_pending/{p}"),
            StateKey::CommitPending(p) => write!(f, "commit_pending/{p}"),
            StateKey::LightClient => f.write_str("light_client"),
            StateKey::EventCursor => f.write_str("event_cursor"),
            StateKey::Proofs => f.write_str("proofs"),
        }
    }
}

impl FromStr for StateKey {
    type Err = StateError;

    fn from_str(s: &str) -> Result<StateKey, StateError> {
        let unknown = || StateError::UnknownKey(s.to_owned());
        let product = |p: &str| p.parse::<ProductId>().map_err(|_| unknown());
        match s.split_once('/') {
            Some(("installed", p)) => Ok(StateKey::Installed(product(p)?)),
            Some(("rolled_back", p)) => Ok(StateKey::RolledBack(product(p)?)),
            Some(("health_pending", p)) => Ok(StateKey::HealthPending(product(p)?)),
            Some(("commit_pending", p)) => Ok(StateKey::CommitPending(product(p)?)),
            None if s == "light_client" => Ok(StateKey::LightClient),
            None if s == "event_cursor" => Ok(StateKey::EventCursor),
            None if s == "proofs" => Ok(StateKey::Proofs),
            _ => Err(unknown()),
        }
    }
}

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("node state {path}: {message}")]
    Db { path: PathBuf, message: String },
    #[error(
        "node state {path}: key {key} is damaged ({problem}); inspect it with `firmchain state show` and clear it \
         with `firmchain state reset {key}`"
    )]
    Damaged {
        path: PathBuf,
        key: StateKey,
        problem: String,
    },
    #[error("node state {path}: cannot encode {key}: {problem}")]
    Encode {
        path: PathBuf,
        key: StateKey,
        problem: String,
    },
    #[error(
        "{0:?} is not a node state key: installed/<product>, rolled_back/<product>, health_pending/<product>, \
         commit_pending/<product>, light_client, event_cursor or proofs"
    )]
    UnknownKey(String),
}

/// A release rolled back on this device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    /// The release.
    pub sequence: u64,
    /// Why (the failed health check, and what runs instead).
    pub reason: String,
}

/// A release handed to an external A/B installer (RAUC, SWUpdate) that waits for the reboot into its slot and
/// the health check there: the first phase of the two-phase commit. The release is recorded as installed only
/// once the new boot confirmed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingCommit {
    /// The release.
    pub sequence: u64,
    /// blake3 of its bundle (hex).
    pub hash: String,
    /// `rauc` or `swupdate`.
    pub installer: String,
    /// The slot that ran when the install began: booting it again means the bootloader fell back.
    pub from_slot: String,
    /// The boot the install happened in (`install.boot_id`): the same one at a start means no reboot yet.
    pub boot_id: String,
    /// When the installer accepted the bundle (unix seconds).
    pub at: u64,
}

fn decode_commit(b: &[u8]) -> Result<PendingCommit, String> {
    let p: PendingCommit = serde_json::from_slice(b).map_err(|e| format!("not a pending commit: {e}"))?;
    if p.hash.parse::<Blake3Hash>().is_err() {
        return Err(format!("hash {:?} is not a blake3 hash", p.hash));
    }
    if p.from_slot.is_empty() || p.boot_id.is_empty() {
        return Err("no slot or boot id".into());
    }
    Ok(p)
}

/// The rolled-back list as stored: current entries, or bare sequences from stores written before reasons were
/// kept.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredRollback {
    Entry(Rollback),
    Legacy(u64),
}

/// One stored fact as `firmchain state show` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The decoded value, or `None` when it is damaged.
    pub value: Option<serde_json::Value>,
    /// Why the value does not decode.
    pub damaged: Option<String>,
}

/// The state store.
#[derive(Debug)]
pub struct NodeState {
    db: Database,
    path: PathBuf,
}

fn decode_installed(b: &[u8]) -> Result<Installed, String> {
    if b.len() != 40 && b.len() != 48 {
        return Err(format!("{} bytes, expected 40", b.len()));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&b[8..40]);
    Ok(Installed {
        sequence: Sequence(u64::from_le_bytes(seq)),
        hash: Blake3Hash(hash),
    })
}

fn decode_u64(b: &[u8]) -> Result<u64, String> {
    let b: [u8; 8] = b
        .try_into()
        .map_err(|_| format!("{} bytes, expected 8", b.len()))?;
    Ok(u64::from_le_bytes(b))
}

fn decode_rollbacks(b: &[u8]) -> Result<Vec<Rollback>, String> {
    let list: Vec<StoredRollback> =
        serde_json::from_slice(b).map_err(|e| format!("not a rollback list: {e}"))?;
    Ok(list
        .into_iter()
        .map(|r| match r {
            StoredRollback::Entry(r) => r,
            StoredRollback::Legacy(sequence) => Rollback {
                sequence,
                reason: "rolled back (recorded without a reason)".into(),
            },
        })
        .collect())
}

fn decode_light(b: &[u8]) -> Result<Persisted, String> {
    let p: Persisted =
        serde_json::from_slice(b).map_err(|e| format!("not a light-client checkpoint: {e}"))?;
    p.checkpoint_root()
        .ok_or_else(|| format!("checkpoint {:?} is not a 32-byte hex root", p.checkpoint))?;
    Ok(p)
}

fn decode_proofs(b: &[u8]) -> Result<SavedProofs, String> {
    serde_json::from_slice(b).map_err(|e| format!("not saved proofs: {e}"))
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

/// A stored value as JSON, for `show`.
fn render(key: &StateKey, b: &[u8]) -> Result<serde_json::Value, String> {
    match key {
        StateKey::Installed(_) => {
            let i = decode_installed(b)?;
            Ok(serde_json::json!({ "sequence": i.sequence.0, "hash": i.hash.to_string() }))
        }
        StateKey::RolledBack(_) => to_json(&decode_rollbacks(b)?),
        StateKey::HealthPending(_) if b.is_empty() => Ok(serde_json::Value::Null),
        StateKey::HealthPending(_) | StateKey::EventCursor => Ok(decode_u64(b)?.into()),
        StateKey::LightClient => to_json(&decode_light(b)?),
        StateKey::Proofs => {
            let p = decode_proofs(b)?;
            Ok(serde_json::json!({ "chain_bytes": p.chain.len() / 2,
                "head_bytes": p.head.as_ref().map(|h| h.len() / 2) }))
        }
        StateKey::CommitPending(_) => to_json(&decode_commit(b)?),
    }
}

impl NodeState {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<NodeState, StateError> {
        let err = |e: &dyn fmt::Display| StateError::Db {
            path: path.to_owned(),
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
        Ok(NodeState {
            db,
            path: path.to_owned(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl fmt::Display) -> StateError {
        StateError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn damaged(&self, key: StateKey, problem: String) -> StateError {
        StateError::Damaged {
            path: self.path.clone(),
            key,
            problem,
        }
    }

    fn encode<T: Serialize>(&self, key: StateKey, v: &T) -> Result<Vec<u8>, StateError> {
        serde_json::to_vec(v).map_err(|e| StateError::Encode {
            path: self.path.clone(),
            key,
            problem: e.to_string(),
        })
    }

    /// The raw bytes of `key`.
    fn raw(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let value = match key {
            StateKey::Installed(p) => {
                let t = tx.open_table(PRODUCTS).map_err(|e| self.err(e))?;
                t.get(&p.0).map_err(|e| self.err(e))?.map(|v| v.value().to_vec())
            }
            _ => {
                let t = tx.open_table(META).map_err(|e| self.err(e))?;
                let name = key.to_string();
                t.get(name.as_str())
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value().to_vec())
            }
        };
        Ok(value)
    }

    /// Store `value` under `key` (`None` removes it) in one durable transaction.
    fn put(&self, key: &StateKey, value: Option<&[u8]>) -> Result<bool, StateError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let existed = match key {
            StateKey::Installed(p) => {
                let mut t = tx.open_table(PRODUCTS).map_err(|e| self.err(e))?;
                match value {
                    Some(v) => t.insert(&p.0, v).map_err(|e| self.err(e))?.is_some(),
                    None => t.remove(&p.0).map_err(|e| self.err(e))?.is_some(),
                }
            }
            _ => {
                let mut t = tx.open_table(META).map_err(|e| self.err(e))?;
                let name = key.to_string();
                match value {
                    Some(v) => t.insert(name.as_str(), v).map_err(|e| self.err(e))?.is_some(),
                    None => t.remove(name.as_str()).map_err(|e| self.err(e))?.is_some(),
                }
            }
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(existed)
    }

    fn get<T>(
        &self,
        key: StateKey,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Option<T>, StateError> {
        match self.raw(&key)? {
            None => Ok(None),
            Some(b) => decode(&b).map(Some).map_err(|p| self.damaged(key, p)),
        }
    }

    /// What the node last recorded as running for `product`.
    pub fn installed(&self, product: &ProductId) -> Result<Option<Installed>, StateError> {
        self.get(StateKey::Installed(*product), decode_installed)
    }

    /// Record what runs for `product`.
    pub fn set_installed(&self, product: &ProductId, installed: Installed) -> Result<(), StateError> {
        let mut b = Vec::with_capacity(40);
        b.extend_from_slice(&installed.sequence.0.to_le_bytes());
        b.extend_from_slice(&installed.hash.0);
        self.put(&StateKey::Installed(*product), Some(&b)).map(drop)
    }

    /// Releases of `product` rolled back on this device, oldest first.
    pub fn rolled_back(&self, product: &ProductId) -> Result<Vec<Rollback>, StateError> {
        Ok(self
            .get(StateKey::RolledBack(*product), decode_rollbacks)?
            .unwrap_or_default())
    }

    /// Remember that release `sequence` of `product` was rolled back, and why.
    pub fn record_rollback(
        &self,
        product: &ProductId,
        sequence: Sequence,
        reason: &str,
    ) -> Result<(), StateError> {
        let mut list = self.rolled_back(product)?;
        if list.iter().any(|r| r.sequence == sequence.0) {
            return Ok(());
        }
        list.push(Rollback {
            sequence: sequence.0,
            reason: reason.to_owned(),
        });
        let key = StateKey::RolledBack(*product);
        let b = self.encode(key, &list)?;
        self.put(&key, Some(&b)).map(drop)
    }

    /// The release of `product` whose health check has not ended, if any.
    pub fn health_pending(&self, product: &ProductId) -> Result<Option<Sequence>, StateError> {
        // Stores written before the marker was removed on clearing hold an empty value for "none".
        let decode = |b: &[u8]| {
            if b.is_empty() {
                Ok(None)
            } else {
                decode_u64(b).map(|s| Some(Sequence(s)))
            }
        };
        Ok(self.get(StateKey::HealthPending(*product), decode)?.flatten())
    }

    /// Set (before the slot switch) or clear (once the check ended) the health-check marker of `product`.
    pub fn set_health_pending(
        &self,
        product: &ProductId,
        sequence: Option<Sequence>,
    ) -> Result<(), StateError> {
        let b = sequence.map(|s| s.0.to_le_bytes());
        self.put(&StateKey::HealthPending(*product), b.as_ref().map(|b| &b[..]))
            .map(drop)
    }

    /// The release of `product` handed to RAUC/SWUpdate that waits for its reboot and confirmation, if any.
    pub fn commit_pending(&self, product: &ProductId) -> Result<Option<PendingCommit>, StateError> {
        self.get(StateKey::CommitPending(*product), decode_commit)
    }

    /// Record (after the installer accepted the bundle, before the reboot) or clear (once the new boot
    /// confirmed or rejected it) the pending commit of `product`.
    pub fn set_commit_pending(
        &self,
        product: &ProductId,
        pending: Option<&PendingCommit>,
    ) -> Result<(), StateError> {
        let key = StateKey::CommitPending(*product);
        match pending {
            Some(p) => {
                let b = self.encode(key, p)?;
                self.put(&key, Some(&b)).map(drop)
            }
            None => self.put(&key, None).map(drop),
        }
    }

    /// The light client's saved progress.
    pub fn light_client(&self) -> Result<Option<Persisted>, StateError> {
        self.get(StateKey::LightClient, decode_light)
    }

    /// Save the light client's progress.
    pub fn set_light_client(&self, persisted: &Persisted) -> Result<(), StateError> {
        let b = self.encode(StateKey::LightClient, persisted)?;
        self.put(&StateKey::LightClient, Some(&b)).map(drop)
    }

    /// A `peers`-mode device's verified proofs.
    pub fn proofs(&self) -> Result<Option<SavedProofs>, StateError> {
        self.get(StateKey::Proofs, decode_proofs)
    }

    /// Save a `peers`-mode device's verified proofs.
    pub fn set_proofs(&self, saved: &SavedProofs) -> Result<(), StateError> {
        let b = self.encode(StateKey::Proofs, saved)?;
        self.put(&StateKey::Proofs, Some(&b)).map(drop)
    }

    /// The first index block whose events are still needed (0 when none was recorded).
    pub fn event_cursor(&self) -> Result<u64, StateError> {
        Ok(self.get(StateKey::EventCursor, decode_u64)?.unwrap_or(0))
    }

    /// Move the event cursor (never backwards).
    pub fn set_event_cursor(&self, block: u64) -> Result<(), StateError> {
        if block > self.event_cursor()? {
            self.put(&StateKey::EventCursor, Some(&block.to_le_bytes()))?;
        }
        Ok(())
    }

    /// Every stored fact, damaged ones included (named, not decoded).
    pub fn entries(&self) -> Result<Vec<Entry>, StateError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut raw: Vec<(Result<StateKey, String>, Vec<u8>)> = Vec::new();
        let products = tx.open_table(PRODUCTS).map_err(|e| self.err(e))?;
        for row in products.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            raw.push((Ok(StateKey::Installed(ProductId(*k.value()))), v.value().to_vec()));
        }
        let meta = tx.open_table(META).map_err(|e| self.err(e))?;
        for row in meta.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let name = k.value().to_owned();
            raw.push((name.parse().map_err(|_| name), v.value().to_vec()));
        }
        Ok(raw
            .into_iter()
            .map(|(key, b)| match key {
                Ok(key) => match render(&key, &b) {
                    Ok(value) => Entry {
                        key: key.to_string(),
                        value: Some(value),
                        damaged: None,
                    },
                    Err(problem) => Entry {
                        key: key.to_string(),
                        value: None,
                        damaged: Some(problem),
                    },
                },
                Err(name) => Entry {
                    key: name,
                    value: None,
                    damaged: Some(format!("not a key this node knows ({} bytes)", b.len())),
                },
            })
            .collect())
    }

    /// Check that every stored fact decodes (the node does not start otherwise).
    pub fn check(&self) -> Result<(), StateError> {
        for e in self.entries()? {
            if let (Some(problem), Ok(key)) = (e.damaged, e.key.parse::<StateKey>()) {
                return Err(self.damaged(key, problem));
            }
        }
        Ok(())
    }

    /// Remove `key` (the explicit way out of a damaged value). Returns whether it was there.
    pub fn reset(&self, key: &StateKey) -> Result<bool, StateError> {
        self.put(key, None)
    }

    /// Store raw bytes under `key`, bypassing the typed methods (tests of damaged stores).
    #[doc(hidden)]
    pub fn put_raw(&self, key: &StateKey, value: &[u8]) -> Result<(), StateError> {
        self.put(key, Some(value)).map(drop)
    }
}

#[cfg(test)]
mod tests;
