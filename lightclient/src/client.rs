//! The light client: a verified store fed from an untrusted consensus RPC, with the weak-subjectivity
//! rule for checkpoints and the staleness of the verified head. Time is passed in (a slot or Unix seconds).

use crate::consensus::ssz::Root;
use crate::consensus::{
    ChainSpec, ConsensusError, LightClientHeader, Store, bootstrap, force_update, process_update,
};
use crate::rpc::{ConsensusRpc, Demotion, RpcError};

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
        "checkpoint {checkpoint} at slot {checkpoint_slot} is {age_seconds} s old, beyond the weak-subjectivity \
         window of {window_seconds} s: pick a recent checkpoint, or force it if you trust it"
    )]
    CheckpointTooOld {
        /// The checkpoint's beacon block root (0x-hex).
        checkpoint: String,
        checkpoint_slot: u64,
        age_seconds: u64,
        window_seconds: u64,
    },
    #[error("no checkpoint: configure chain.checkpoint (a recent finalized beacon block root)")]
    NoCheckpoint,
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
    /// The sync-committee period the participation maxima below belong to (absent in files written before
    /// they were kept).
    #[serde(default)]
    pub period: Option<u64>,
    /// Spec `previous_max_active_participants` at that period.
    #[serde(default)]
    pub previous_max_active_participants: Option<usize>,
    /// Spec `current_max_active_participants` at that period.
    #[serde(default)]
    pub current_max_active_participants: Option<usize>,
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
    /// The header that authorises installs: finalized, or attested by a supermajority of the committee.
    pub authorised_slot: u64,
    pub authorised_block: Option<u64>,
    /// Signatures behind the authorised header, of the committee's size (`None`: it is the finalized header).
    pub authorised_participation: Option<(usize, usize)>,
    /// Why a newer header does not authorise installs (a minority of the committee signed it).
    pub withheld: Option<Withheld>,
}

/// A newer header that only a minority of the sync committee signed: it moves nothing a device acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Withheld {
    pub slot: u64,
    pub participants: usize,
    pub committee_size: usize,
}

impl std::fmt::Display for Withheld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the header at slot {} has {} of {} sync-committee signatures, below the two thirds that authorise \
             an install",
            self.slot, self.participants, self.committee_size
        )
    }
}

/// A light client over one consensus RPC (which may hold several endpoints).
#[derive(Debug)]
pub struct LightClient<R> {
    pub spec: ChainSpec,
    pub store: Store,
    rpc: R,
    /// Apply the spec's force update after a period without finality: the best update seen, even one a
    /// minority signed, becomes finalized. Off unless the operator turns it on.
    pub force_update: bool,
}

fn block(h: &LightClientHeader) -> Option<u64> {
    h.execution.as_ref().map(|e| e.block_number)
}

/// Refuse the checkpoint `root` at `checkpoint_slot` if it is older than the window (unless `force`).
pub fn check_checkpoint_age(
    spec: &ChainSpec,
    root: &Root,
    checkpoint_slot: u64,
    now_unix: u64,
    window_seconds: u64,
    force: bool,
) -> Result<(), ClientError> {
    let age_seconds = now_unix.saturating_sub(spec.time_of(checkpoint_slot));
    if age_seconds > window_seconds && !force {
        return Err(ClientError::CheckpointTooOld {
            checkpoint: alloy::hex::encode_prefixed(root),
            checkpoint_slot,
            age_seconds,
            window_seconds,
        });
    }
    Ok(())
}

/// The error `resume` reports when no checkpoint works: the first, unless both are too old (then the newer
/// checkpoint's, which is the one an operator must replace).
fn worse(first: Option<ClientError>, next: ClientError) -> ClientError {
    match (first, next) {
        (None, next) => next,
        (
            Some(ClientError::CheckpointTooOld {
                checkpoint_slot: a, ..
            }),
            next @ ClientError::CheckpointTooOld {
                checkpoint_slot: b, ..
            },
        ) if b > a => next,
        (Some(first), _) => first,
    }
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
        let mut attempts = rpc.endpoint_count().max(1);
        let store = loop {
            let data = rpc.bootstrap(checkpoint).await?;
            match bootstrap(&spec, &checkpoint, &data) {
                Ok(store) => break store,
                Err(source) => {
                    let e = ClientError::Consensus {
                        what: "bootstrap".into(),
                        source,
                    };
                    attempts -= 1;
                    if attempts == 0 || rpc.demote(&e.to_string()).is_none() {
                        return Err(e);
                    }
                }
            }
        };
        // Until the store has seen its committee sign, assume two thirds of it did (a healthy chain signs with
        // well over 90 %), so a minority cannot move even the optimistic head of a freshly started store.
        let mut store = store;
        store.previous_max_active_participants = spec.sync_committee_size * 2 / 3;
        check_checkpoint_age(
            &spec,
            &checkpoint,
            store.finalized_header.beacon.slot,
            now_unix,
            window_seconds,
            force,
        )?;
        Ok(LightClient {
            spec,
            store,
            rpc,
            force_update: false,
        })
    }

    /// Start from the newer of the configured checkpoint and the persisted one (an operator recovers a device
    /// that was offline past the weak-subjectivity window by configuring a fresh checkpoint), then restore
    /// the persisted participation maxima when they belong to the store's period. A checkpoint that cannot be
    /// bootstrapped is skipped if the other one works.
    pub async fn resume(
        spec: ChainSpec,
        rpc: R,
        configured: Option<Root>,
        persisted: Option<&Persisted>,
        now_unix: u64,
        window_seconds: u64,
        force: bool,
    ) -> Result<Self, ClientError>
    where
        R: Clone,
    {
        let saved = persisted.and_then(Persisted::checkpoint_root);
        let candidates: Vec<Root> = [configured, saved].into_iter().flatten().collect();
        let mut best: Option<LightClient<R>> = None;
        let mut first_error = None;
        for root in candidates {
            if best
                .as_ref()
                .is_some_and(|b| b.store.finalized_header.beacon.hash_tree_root() == root)
            {
                continue;
            }
            match LightClient::start(spec.clone(), rpc.clone(), root, now_unix, window_seconds, force).await {
                Ok(c) => {
                    let newer = best.as_ref().is_none_or(|b| {
                        c.store.finalized_header.beacon.slot > b.store.finalized_header.beacon.slot
                    });
                    if newer {
                        best = Some(c);
                    }
                }
                Err(e) => first_error = Some(worse(first_error, e)),
            }
        }
        let mut client = match (best, first_error) {
            (Some(c), _) => c,
            (None, Some(e)) => return Err(e),
            (None, None) => return Err(ClientError::NoCheckpoint),
        };
        if let Some(p) = persisted {
            client.restore_participation(p);
        }
        Ok(client)
    }

    /// Take the persisted participation maxima if they belong to the store's period (or, for the previous
    /// maximum, the period before), so a restart does not lower the safety threshold to 0.
    pub fn restore_participation(&mut self, p: &Persisted) {
        let period = self.spec.period(self.store.finalized_header.beacon.slot);
        let (Some(saved), Some(prev), Some(cur)) = (
            p.period,
            p.previous_max_active_participants,
            p.current_max_active_participants,
        ) else {
            return;
        };
        let size = self.spec.sync_committee_size;
        let (prev, cur) = (prev.min(size), cur.min(size));
        if saved == period {
            self.store.previous_max_active_participants =
                self.store.previous_max_active_participants.max(prev);
            self.store.current_max_active_participants = self.store.current_max_active_participants.max(cur);
        } else if saved + 1 == period {
            self.store.previous_max_active_participants =
                self.store.previous_max_active_participants.max(cur);
        }
    }

    /// Endpoints demoted for answers that failed verification, oldest first.
    pub fn demotions(&self) -> Vec<Demotion> {
        self.rpc.demotions()
    }

    /// The consensus RPC it syncs from (a node that serves proofs fetches committee updates through it).
    pub fn rpc(&self) -> &R {
        &self.rpc
    }

    /// The header that authorises installs (see [`Store::authorised_header`]).
    pub fn authorised_header(&self) -> &LightClientHeader {
        self.store.authorised_header()
    }

    /// Like [`LightClient::sync_once`], but an endpoint whose answer fails verification is demoted and the
    /// next one is asked, until every endpoint had its turn.
    pub async fn sync(&mut self, now_unix: u64) -> Result<SyncReport, ClientError> {
        let mut attempts = self.rpc.endpoint_count().max(1);
        loop {
            match self.sync_once(now_unix).await {
                Err(e @ ClientError::Consensus { .. }) => {
                    attempts -= 1;
                    if attempts == 0 || self.rpc.demote(&e.to_string()).is_none() {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    /// Catch up period by period, then take the latest finality and optimistic updates, then force an
    /// update if a whole period passed without finality. Updates that carry nothing new are skipped.
    pub async fn sync_once(&mut self, now_unix: u64) -> Result<SyncReport, ClientError> {
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
        if self.force_update {
            force_update(&self.spec, &mut self.store, current_slot).map_err(|source| {
                ClientError::Consensus {
                    what: "forced update".into(),
                    source,
                }
            })?;
        }
        Ok(self.report(accepted))
    }

    /// What the store holds now.
    pub fn report(&self, accepted: usize) -> SyncReport {
        let s = &self.store;
        let authorised = s.authorised_header();
        let authorised_participation = s
            .supermajority_header
            .as_ref()
            .filter(|a| a.header.beacon.slot > s.finalized_header.beacon.slot)
            .map(|a| (a.participants, a.committee_size));
        SyncReport {
            finalized_slot: s.finalized_header.beacon.slot,
            finalized_block: block(&s.finalized_header),
            optimistic_slot: s.optimistic_header.beacon.slot,
            optimistic_block: block(&s.optimistic_header),
            accepted,
            authorised_slot: authorised.beacon.slot,
            authorised_block: block(authorised),
            authorised_participation,
            withheld: s
                .minority_seen
                .map(|(slot, participants, committee_size)| Withheld {
                    slot,
                    participants,
                    committee_size,
                }),
        }
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
            period: Some(self.spec.period(self.store.finalized_header.beacon.slot)),
            previous_max_active_participants: Some(self.store.previous_max_active_participants),
            current_max_active_participants: Some(self.store.current_max_active_participants),
        }
    }

    /// Seconds since the verified optimistic head's slot began.
    pub fn staleness(&self, now_unix: u64) -> u64 {
        now_unix.saturating_sub(self.spec.time_of(self.store.optimistic_header.beacon.slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_old(slot: u64) -> ClientError {
        ClientError::CheckpointTooOld {
            checkpoint: format!("0x{slot:064x}"),
            checkpoint_slot: slot,
            age_seconds: 100,
            window_seconds: 10,
        }
    }

    #[test]
    fn when_no_checkpoint_works_the_newer_too_old_one_is_named() {
        let slot = |e: ClientError| match e {
            ClientError::CheckpointTooOld { checkpoint_slot, .. } => checkpoint_slot,
            other => panic!("{other}"),
        };
        assert_eq!(slot(worse(Some(too_old(5)), too_old(9))), 9);
        assert_eq!(slot(worse(Some(too_old(9)), too_old(5))), 9);
        assert_eq!(slot(worse(None, too_old(5))), 5);
        // Another failure first stays first.
        let e = worse(Some(ClientError::NoCheckpoint), too_old(9));
        assert!(matches!(e, ClientError::NoCheckpoint), "{e}");
        assert!(too_old(9).to_string().contains(&format!("0x{:064x}", 9)));
    }
}
