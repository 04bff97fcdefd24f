//! The light client: a verified store fed from an untrusted consensus RPC, with the weak-subjectivity
//! rule for checkpoints and the staleness of the verified head. Time is passed in (a slot or Unix seconds).

use crate::consensus::ssz::Root;
use crate::consensus::{
    ChainSpec, ConsensusError, LightClientHeader, Store, bootstrap, force_update, process_update,
};
use crate::rpc::{ConsensusRpc, RpcError};

/// How long a checkpoint stays acceptable by default: two weeks, as Helios does on mainnet.
pub const DEFAULT_WEAK_SUBJECTIVITY_SECONDS: u64 = 14 * 24 * 3600;

/// Why the client could not start or sync.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("{what} rejected: {source}")]
    Consensus { what: String, source: ConsensusError },
    #[error(
        "checkpoint at slot {checkpoint_slot} is {age_seconds} s old, beyond the weak-subjectivity window of \
         {window_seconds} s: pick a recent checkpoint, or force it if you trust it"
    )]
    CheckpointTooOld {
        checkpoint_slot: u64,
        age_seconds: u64,
        window_seconds: u64,
    },
}

/// What survives a restart: the newest finalized checkpoint and the verified heads, in a small JSON file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Persisted {
    /// Beacon block root of the finalized header: the checkpoint to bootstrap from next time.
    pub checkpoint: String,
    pub finalized_slot: u64,
    pub finalized_block: Option<u64>,
    pub optimistic_slot: u64,
    pub optimistic_block: Option<u64>,
}

impl Persisted {
    /// The checkpoint as a root.
    pub fn checkpoint_root(&self) -> Option<Root> {
        let mut root = [0u8; 32];
        alloy::hex::decode_to_slice(self.checkpoint.trim_start_matches("0x"), &mut root).ok()?;
        Some(root)
    }

    /// Read a persisted state; `None` if there is none yet or it cannot be read.
    pub fn load(path: &std::path::Path) -> Option<Self> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    /// Write atomically: a temporary file beside `path`, fsync, rename.
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(
            serde_json::to_string_pretty(self)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// What a sync achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncReport {
    pub finalized_slot: u64,
    pub finalized_block: Option<u64>,
    pub optimistic_slot: u64,
    pub optimistic_block: Option<u64>,
    /// Updates that verified and were applied or kept.
    pub accepted: usize,
}

/// A light client over one consensus RPC.
#[derive(Debug)]
pub struct LightClient<R> {
    pub spec: ChainSpec,
    pub store: Store,
    rpc: R,
}

fn block(h: &LightClientHeader) -> Option<u64> {
    h.execution.as_ref().map(|e| e.block_number)
}

/// Refuse a checkpoint older than the window (unless `force`).
pub fn check_checkpoint_age(
    spec: &ChainSpec,
    checkpoint_slot: u64,
    now_unix: u64,
    window_seconds: u64,
    force: bool,
) -> Result<(), ClientError> {
    let age_seconds = now_unix.saturating_sub(spec.time_of(checkpoint_slot));
    if age_seconds > window_seconds && !force {
        return Err(ClientError::CheckpointTooOld {
            checkpoint_slot,
            age_seconds,
            window_seconds,
        });
    }
    Ok(())
}

impl<R: ConsensusRpc> LightClient<R> {
    /// Bootstrap from a trusted checkpoint (a beacon block root).
    pub async fn start(
        spec: ChainSpec,
        rpc: R,
        checkpoint: Root,
        now_unix: u64,
        window_seconds: u64,
        force: bool,
    ) -> Result<Self, ClientError> {
        let data = rpc.bootstrap(checkpoint).await?;
        let store = bootstrap(&spec, &checkpoint, &data).map_err(|source| ClientError::Consensus {
            what: "bootstrap".into(),
            source,
        })?;
        check_checkpoint_age(
            &spec,
            store.finalized_header.beacon.slot,
            now_unix,
            window_seconds,
            force,
        )?;
        Ok(LightClient { spec, store, rpc })
    }

    /// Catch up period by period, then take the latest finality and optimistic updates, then force an
    /// update if a whole period passed without finality. Updates that carry nothing new are skipped.
    pub async fn sync(&mut self, now_unix: u64) -> Result<SyncReport, ClientError> {
        let current_slot = self.spec.slot_at(now_unix);
        let current_period = self.spec.period(current_slot);
        let mut accepted = 0;
        let mut period = self.spec.period(self.store.finalized_header.beacon.slot);
        while period <= current_period {
            let updates = self
                .rpc
                .updates(period, (current_period - period + 1).min(128))
                .await?;
            for u in &updates {
                accepted += self.offer(u, current_slot, "period update")?;
            }
            let reached = self.spec.period(self.store.finalized_header.beacon.slot);
            if updates.is_empty() || reached == period {
                break;
            }
            period = reached;
        }
        let finality = self.rpc.finality_update().await?;
        accepted += self.offer(&finality, current_slot, "finality update")?;
        let optimistic = self.rpc.optimistic_update().await?;
        accepted += self.offer(&optimistic, current_slot, "optimistic update")?;
        force_update(&self.spec, &mut self.store, current_slot).map_err(|source| ClientError::Consensus {
            what: "forced update".into(),
            source,
        })?;
        Ok(SyncReport {
            finalized_slot: self.store.finalized_header.beacon.slot,
            finalized_block: block(&self.store.finalized_header),
            optimistic_slot: self.store.optimistic_header.beacon.slot,
            optimistic_block: block(&self.store.optimistic_header),
            accepted,
        })
    }

    /// Process one update: 1 if it verified, 0 if it is stale (nothing newer than the store knows, or from a
    /// past period), an error otherwise.
    fn offer(
        &mut self,
        u: &crate::consensus::Update,
        current_slot: u64,
        what: &str,
    ) -> Result<usize, ClientError> {
        match process_update(&self.spec, &mut self.store, u, current_slot) {
            Ok(()) => Ok(1),
            Err(ConsensusError::NotRelevant { .. }) => Ok(0),
            Err(ConsensusError::WrongPeriod {
                signature_period,
                store_period,
            }) if signature_period < store_period => Ok(0),
            Err(source) => Err(ClientError::Consensus {
                what: format!("{what} at slot {}", u.attested_header.beacon.slot),
                source,
            }),
        }
    }

    /// The state to persist after a sync.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            checkpoint: alloy::hex::encode_prefixed(self.store.finalized_header.beacon.hash_tree_root()),
            finalized_slot: self.store.finalized_header.beacon.slot,
            finalized_block: block(&self.store.finalized_header),
            optimistic_slot: self.store.optimistic_header.beacon.slot,
            optimistic_block: block(&self.store.optimistic_header),
        }
    }

    /// Seconds since the verified optimistic head's slot began.
    pub fn staleness(&self, now_unix: u64) -> u64 {
        now_unix.saturating_sub(self.spec.time_of(self.store.optimistic_header.beacon.slot))
    }
}
