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

    /// Seconds since the verified optimistic head's slot began.
    pub fn staleness(&self, now_unix: u64) -> u64 {
        now_unix.saturating_sub(self.spec.time_of(self.store.optimistic_header.beacon.slot))
    }
}
