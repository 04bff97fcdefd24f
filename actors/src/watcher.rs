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
use firmchain_contracts::events::{DEFAULT_LOG_RANGE, DEFAULT_LOOKBACK, next_cursor, scan_start};

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
    /// The proven rollout gates of the releases seen and not installed or revoked (None: they could not be
    /// proven this time; devices keep holding what they cannot prove).
    pub gates: Option<Vec<(Sequence, firmchain_update::rollout::ReleaseGate)>>,
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
    /// The index's deployment block: where a full event scan starts.
    from_block: u64,
    /// Blocks per `eth_getLogs` call (halved when a provider refuses a range; the size that worked is kept).
    log_range: u64,
    /// Blocks below the safe block the cursor stays (reorgs near the head do not skip events).
    lookback: u64,
    /// Endpoint demotions already reported (of the execution and the consensus RPC).
    demotions_reported: (usize, usize),
    /// The slot of the minority-signed header last reported.
    withheld_reported: Option<u64>,
    /// Distrust noted by a failed poll, until the actor reports it.
    distrust: Vec<String>,
    /// Proofs built from this node's light client and served to peers (`chain.serve_proofs`).
    serving: Option<crate::proofs::ProofServing>,
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
            from_block: 0,
            log_range: DEFAULT_LOG_RANGE,
            lookback: DEFAULT_LOOKBACK,
            demotions_reported: (0, 0),
            withheld_reported: None,
            distrust: Vec::new(),
            serving: None,
        })
    }

    /// Scan events from `from_block` (the index's deployment block) in `eth_getLogs` ranges of `log_range`.
    pub fn with_scan(mut self, from_block: u64, log_range: u64) -> Self {
        self.from_block = from_block;
        self.log_range = log_range.max(1);
        self
    }

    /// After each poll, build proofs from the light client and serve them (light mode only; see
    /// [`crate::proofs::serve`]).
    pub fn with_proof_serving(mut self, serving: crate::proofs::ProofServing) -> Self {
        self.serving = Some(serving);
        self
    }

    /// Keep the cursor `blocks` below the safe block ([`DEFAULT_LOOKBACK`] unless set).
    pub fn with_lookback(mut self, blocks: u64) -> Self {
        self.lookback = blocks;
        self
    }

    /// What the RPCs did wrong since the last poll: endpoints demoted for answers that failed verification,
    /// and a newer header that only a minority of the sync committee signed.
    fn report_distrust(&mut self, report: &mut PollReport) {
        let execution = self.rpc.demotions();
        let consensus = self
            .source
            .light_client()
            .map(|c| c.demotions())
            .unwrap_or_default();
        let (e, c) = self.demotions_reported;
        for d in execution.iter().skip(e) {
            report
                .rejected
                .push(format!("execution RPC {} demoted: {}", d.endpoint, d.reason));
        }
        for d in consensus.iter().skip(c) {
            report
                .rejected
                .push(format!("consensus RPC {} demoted: {}", d.endpoint, d.reason));
        }
        self.demotions_reported = (execution.len(), consensus.len());
        let withheld = self.source.light_client().and_then(|c| c.report(0).withheld);
        if let Some(w) = withheld.filter(|w| self.withheld_reported != Some(w.slot)) {
            report.rejected.push(format!("{w}: nothing is installed on it"));
            self.withheld_reported = Some(w.slot);
        }
    }

    /// The verified finalized block (light mode), or the verified head (rpc mode): the cursor stays below it.
    fn safe_block(&self, head: u64) -> u64 {
        self.source
            .light_client()
            .and_then(|c| c.store.finalized_header.execution.as_ref())
            .map_or(head, |e| e.block_number.min(head))
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
        let mut report = PollReport::default();
        let result = self.poll_verified(&mut report).await;
        if result.is_ok() {
            self.serve_proofs(&report).await;
        }
        self.report_distrust(&mut report);
        match result {
            Ok(()) => Ok(report),
            Err(e) => {
                // What the RPCs did wrong is news even when the poll failed.
                self.distrust.extend(report.rejected);
                Err(e)
            }
        }
    }

    async fn serve_proofs(&mut self, report: &PollReport) {
        let (Some(serving), Some(client)) = (self.serving.as_mut(), self.source.light_client()) else {
            return;
        };
        for seen in &report.seen {
            serving.saw(&seen.record);
        }
        if let Err(e) = serving
            .refresh(&self.rpc, client, self.index, &self.product, unix_now())
            .await
        {
            tracing::warn!(target: "firmchain::proofs", error = %e, "building proofs to serve failed; retrying at the next poll");
        }
    }

    /// Distrust noted by a poll that then failed (endpoints demoted, a minority-signed header), to report.
    pub fn take_distrust(&mut self) -> Vec<String> {
        std::mem::take(&mut self.distrust)
    }

    async fn poll_verified(&mut self, report: &mut PollReport) -> Result<(), WatchError> {
        let head = self.verified_block().await?;
        let at = AtBlock {
            number: head.block,
            state_root: head.state_root,
        };
        report.head = Some(head);
        let (index, product) = (self.index, self.product);
        let proven = proven::with_failover(&self.rpc, |r| {
            proven::read_head(r, index, &product, at.number, at.state_root)
        })
        .await?;
        let installed = self.installed;
        self.pending = self.pending.split_off(&Sequence(installed.0 + 1));
        let after = self.seen.max(installed);
        let cursor = self.cursor;
        let start = scan_start(cursor, self.from_block, at.number);
        let mut all_delivered = true;
        if proven.sequence > after {
            let range = std::cell::Cell::new(self.log_range);
            let releases = proven::with_failover(&self.rpc, |r| {
                let (product, range) = (&product, &range);
                async move {
                    let mut n = range.get();
                    let out = proven::read_releases_in(
                        r,
                        index,
                        product,
                        after,
                        proven.sequence,
                        start,
                        at,
                        &mut n,
                    )
                    .await;
                    range.set(n);
                    out
                }
            })
            .await?;
            self.log_range = range.get();
            for lie in &releases.lies {
                let who = self
                    .rpc
                    .demote(lie)
                    .map_or_else(String::new, |e| format!(" (execution RPC {e} demoted)"));
                report.rejected.push(format!("{lie}{who}"));
            }
            all_delivered = releases.missing.is_empty();
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
        report.gates = match self.prove_gates(at).await {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(error = %e, "proving the rollout state failed; releases stay held until it is proven");
                None
            }
        };
        // Events before the first release not yet installed are not needed again; the cursor moves only on
        // verified block numbers, stays a lookback below the finalized block, and goes back to the deployment
        // block when the index holds a release no event delivered. After a refused event it stays.
        let pending_first = self
            .pending
            .values()
            .min()
            .copied()
            .or((!report.rejected.is_empty()).then_some(cursor));
        let next = next_cursor(
            cursor,
            self.from_block,
            self.safe_block(at.number),
            self.lookback,
            pending_first,
            all_delivered.then_some(at.number),
        );
        if next != cursor {
            self.state.set_event_cursor(next)?;
            self.cursor = next;
        }
        Ok(())
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
            for why in watcher.take_distrust() {
                tracing::warn!("{why}");
                act.status.do_send(StatusEvent::Rejected(why));
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
                    act.status
                        .do_send(StatusEvent::Chain(Err(std::sync::Arc::new(e))));
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

#[cfg(test)]
mod tests;
