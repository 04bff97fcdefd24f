//! The IndexWatcher: follows the release index through verified reads and tells the Coordinator what it finds.
//!
//! Each poll takes a verified block (a header checked against its hash in `rpc` mode; a sync-committee verified
//! execution header in `light` mode), proves `head[product]` against its state root, reads the new
//! `ReleasePublished` events and keeps only the records whose keccak equals the proven digest. Revocations of
//! releases seen but not yet installed are proven on every poll.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Recipient, WrapFuture};
use alloy::primitives::Address;
use firmchain_contracts::proven::{self, AtBlock, ProvenError};
use firmchain_lightclient::execution_rpc::ExecutionRpc;
use firmchain_lightclient::rpc::ConsensusRpc;
use firmchain_update::{ProductId, Sequence};

use crate::chain::verified_block;
pub use crate::chain::{BlockError, HeaderSource, LightHead};
use crate::messages::{ChainHead, ReleaseInstalled, ReleaseRevoked, ReleaseSeen, StatusEvent, Wake};
use crate::state::NodeState;
use crate::unix_now;

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("proof of the index failed: {0}")]
    Proof(#[from] ProvenError),
    #[error("node state: {0}")]
    State(#[from] crate::state::StateError),
}

/// What one poll found.
#[derive(Debug, Default)]
pub struct PollReport {
    /// The verified block the reads are proven against.
    pub head: Option<ChainHead>,
    /// New releases (their records match the proven digests).
    pub seen: Vec<ReleaseSeen>,
    /// Releases seen earlier that are now revoked.
    pub revoked: Vec<Sequence>,
    /// Events that did not match the proven digest, or were missing.
    pub rejected: Vec<String>,
    /// The proven rollout gates of the releases seen and not installed or revoked.
    pub gates: Vec<(Sequence, firmchain_update::rollout::ReleaseGate)>,
}

/// The watcher's state between polls, over any execution RPC `E` and consensus RPC `C` (HTTP in the node,
/// recorded answers in tests).
#[derive(Debug)]
pub struct Watcher<E, C> {
    rpc: E,
    index: Address,
    product: ProductId,
    source: HeaderSource<C>,
    state: Arc<NodeState>,
    /// What the device runs (from the start and then from [`ReleaseInstalled`] messages).
    installed: Sequence,
    /// The event cursor as last stored.
    cursor: u64,
    /// Seen and not yet installed: sequence → block of its event.
    pending: BTreeMap<Sequence, u64>,
    seen: Sequence,
    revoked: BTreeSet<Sequence>,
}

impl<E: ExecutionRpc, C: ConsensusRpc> Watcher<E, C> {
    /// A watcher of `product` in the index at `index`, on a device running release `installed`; the event
    /// cursor is read from `state` once, here.
    pub fn new(
        rpc: E,
        index: Address,
        product: ProductId,
        source: HeaderSource<C>,
        state: Arc<NodeState>,
        installed: Sequence,
    ) -> Result<Watcher<E, C>, WatchError> {
        let cursor = state.event_cursor()?;
        Ok(Watcher {
            rpc,
            index,
            product,
            source,
            state,
            installed,
            cursor,
            pending: BTreeMap::new(),
            seen: Sequence(0),
            revoked: BTreeSet::new(),
        })
    }

    /// The device now runs release `sequence`.
    pub fn installed(&mut self, sequence: Sequence) {
        self.installed = sequence;
    }

    async fn verified_block(&mut self) -> Result<ChainHead, WatchError> {
        let head = verified_block(&self.rpc, &mut self.source, None, unix_now()).await?;
        if let Some(client) = self.source.light_client() {
            self.state.set_light_client(&client.persisted())?;
        }
        Ok(head)
    }

    /// One round: verify a block, prove the head, read and check new releases and revocations.
    pub async fn poll(&mut self) -> Result<PollReport, WatchError> {
        let head = self.verified_block().await?;
        let at = AtBlock {
            number: head.block,
            state_root: head.state_root,
        };
        let mut report = PollReport {
            head: Some(head),
            ..PollReport::default()
        };
        let proven =
            proven::read_head(&self.rpc, self.index, &self.product, at.number, at.state_root).await?;
        let installed = self.installed;
        self.pending = self.pending.split_off(&Sequence(installed.0 + 1));
        let after = self.seen.max(installed);
        let cursor = self.cursor;
        if proven.sequence > after {
            let releases = proven::read_releases(
                &self.rpc,
                self.index,
                &self.product,
                after,
                proven.sequence,
                cursor,
                at,
            )
            .await?;
            for (seq, why) in &releases.forged {
                report
                    .rejected
                    .push(format!("release {seq}: {why}; the event is ignored"));
            }
            for seq in &releases.missing {
                report.rejected.push(format!(
                    "release {seq}: the index holds it but no ReleasePublished event for it was served"
                ));
            }
            for (block, record, revoked) in releases.found {
                self.seen = self.seen.max(record.sequence);
                self.pending.insert(record.sequence, block);
                if revoked {
                    self.revoked.insert(record.sequence);
                }
                report.seen.push(ReleaseSeen { record, revoked });
            }
        }
        // Revocations of releases seen but not installed.
        let watch: Vec<Sequence> = self
            .pending
            .keys()
            .copied()
            .filter(|s| !self.revoked.contains(s) && !report.seen.iter().any(|r| r.record.sequence == *s))
            .collect();
        let flags = proven::read_revoked(
            &self.rpc,
            self.index,
            &self.product,
            &watch,
            at.number,
            at.state_root,
        )
        .await?;
        for (seq, revoked) in watch.into_iter().zip(flags) {
            if revoked && self.revoked.insert(seq) {
                report.revoked.push(seq);
            }
        }
        report.gates = self.prove_gates(at).await?;
        // Events before the first release not yet installed are not needed again.
        let next = match (self.pending.values().min(), report.rejected.is_empty()) {
            (Some(first), _) => *first,
            (None, true) => at.number + 1,
            (None, false) => cursor,
        };
        if next > cursor {
            self.state.set_event_cursor(next)?;
            self.cursor = next;
        }
        Ok(report)
    }
}

impl<E: ExecutionRpc, C: ConsensusRpc> Watcher<E, C> {
    /// The rollout gates of the releases waiting on this device, at `at` ([`crate::rollout`]).
    async fn prove_gates(
        &self,
        at: AtBlock,
    ) -> Result<Vec<(Sequence, firmchain_update::rollout::ReleaseGate)>, WatchError> {
        let seqs: Vec<Sequence> = (self.pending.keys().copied())
            .filter(|s| !self.revoked.contains(s))
            .collect();
        Ok(crate::rollout::prove(&self.rpc, self.index, &self.product, &seqs, at).await?)
    }
}

/// The actor around a [`Watcher`]: polls on a timer and on [`Wake`], one poll at a time; learns of installs from
/// [`ReleaseInstalled`].
#[derive(Debug)]
pub struct IndexWatcher<E, C> {
    watcher: Option<Watcher<E, C>>,
    /// An install reported while a poll was running.
    installed: Option<Sequence>,
    interval: Duration,
    seen: Option<Recipient<ReleaseSeen>>,
    revoked: Option<Recipient<ReleaseRevoked>>,
    status: Recipient<StatusEvent>,
    again: bool,
    rollout: Option<Recipient<crate::rollout::RolloutProven>>,
}

impl<E: ExecutionRpc + Unpin + 'static, C: ConsensusRpc + Unpin + 'static> IndexWatcher<E, C> {
    /// Poll `watcher` every `interval`, telling `seen`/`revoked` (the Coordinator, on devices) and `status`.
    pub fn new(
        watcher: Watcher<E, C>,
        interval: Duration,
        seen: Option<Recipient<ReleaseSeen>>,
        revoked: Option<Recipient<ReleaseRevoked>>,
        status: Recipient<StatusEvent>,
    ) -> IndexWatcher<E, C> {
        IndexWatcher {
            watcher: Some(watcher),
            installed: None,
            interval,
            seen,
            revoked,
            status,
            again: false,
            rollout: None,
        }
    }

    /// Also send each poll's chain time and rollout gates to `to` (the Coordinator, on devices).
    pub fn with_rollout(mut self, to: Recipient<crate::rollout::RolloutProven>) -> Self {
        self.rollout = Some(to);
        self
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        let Some(mut watcher) = self.watcher.take() else {
            // A poll is running; run another when it ends.
            self.again = true;
            return;
        };
        let work = async move {
            let report = watcher.poll().await;
            (watcher, report)
        };
        ctx.spawn(work.into_actor(self).map(|(mut watcher, report), act, ctx| {
            if let Some(sequence) = act.installed.take() {
                watcher.installed(sequence);
            }
            act.watcher = Some(watcher);
            match report {
                Ok(report) => {
                    let now = report.head.as_ref().map(|h| h.timestamp);
                    if let Some(head) = report.head {
                        act.status.do_send(StatusEvent::Chain(Ok(head)));
                    }
                    for why in report.rejected {
                        tracing::warn!("{why}");
                        act.status.do_send(StatusEvent::Rejected(why));
                    }
                    for seen in report.seen {
                        tracing::info!(
                            sequence = seen.record.sequence.0,
                            revoked = seen.revoked,
                            target = %seen.record.target_hash,
                            "release seen (record matches the proven digest)"
                        );
                        if let Some(r) = &act.seen {
                            r.do_send(seen);
                        }
                    }
                    for sequence in report.revoked {
                        tracing::warn!(sequence = sequence.0, "release revoked");
                        if let Some(r) = &act.revoked {
                            r.do_send(ReleaseRevoked { sequence });
                        }
                    }
                    crate::rollout::tell(act.rollout.as_ref(), now, report.gates);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the index failed; retrying at the next poll");
                    act.status.do_send(StatusEvent::Chain(Err(e.to_string())));
                }
            }
            if std::mem::take(&mut act.again) {
                act.poll(ctx);
            }
        }));
    }
}

impl<E: ExecutionRpc + Unpin + 'static, C: ConsensusRpc + Unpin + 'static> Actor for IndexWatcher<E, C> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.poll(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.poll(ctx));
    }
}

impl<E: ExecutionRpc + Unpin + 'static, C: ConsensusRpc + Unpin + 'static> Handler<Wake>
    for IndexWatcher<E, C>
{
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.poll(ctx);
    }
}

impl<E: ExecutionRpc + Unpin + 'static, C: ConsensusRpc + Unpin + 'static> Handler<ReleaseInstalled>
    for IndexWatcher<E, C>
{
    type Result = ();

    fn handle(&mut self, msg: ReleaseInstalled, _: &mut Context<Self>) {
        if let ReleaseInstalled::Installed { sequence, .. } = msg {
            match &mut self.watcher {
                Some(w) => w.installed(sequence),
                // A poll is running: apply it when the poll hands the watcher back.
                None => self.installed = Some(sequence),
            }
        }
    }
}
