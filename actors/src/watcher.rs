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
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use firmchain_contracts::proven::{self, AtBlock, ProvenError};
use firmchain_lightclient::client::{ClientError, LightClient};
use firmchain_lightclient::execution::verify_header;
use firmchain_lightclient::execution_rpc::{ExecutionRpc, HttpExecutionRpc};
use firmchain_lightclient::rpc::HttpRpc;
use firmchain_update::{ProductId, Sequence};

use crate::messages::{ChainHead, ReleaseRevoked, ReleaseSeen, StatusEvent, Wake};
use crate::state::NodeState;
use crate::unix_now;

/// Where verified headers come from.
#[derive(Debug)]
pub enum HeaderSource {
    /// A trusted execution RPC: the latest header, checked against its hash (dev chains).
    Rpc,
    /// The embedded light client, following the optimistic head; its progress (the newest finalized
    /// checkpoint) is saved in the node state after every sync.
    Light { client: Box<LightClient<HttpRpc>> },
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("execution RPC: {0}")]
    Rpc(String),
    #[error("header verification failed: {0}")]
    Header(String),
    #[error("light client: {0}")]
    Light(#[from] ClientError),
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
}

/// The watcher's state between polls.
#[derive(Debug)]
pub struct Watcher {
    rpc: HttpExecutionRpc,
    index: Address,
    product: ProductId,
    source: HeaderSource,
    state: Arc<NodeState>,
    /// Seen and not yet installed: sequence → block of its event.
    pending: BTreeMap<Sequence, u64>,
    seen: Sequence,
    revoked: BTreeSet<Sequence>,
}

impl Watcher {
    /// A watcher of `product` in the index at `index`.
    pub fn new(
        rpc: HttpExecutionRpc,
        index: Address,
        product: ProductId,
        source: HeaderSource,
        state: Arc<NodeState>,
    ) -> Watcher {
        Watcher {
            rpc,
            index,
            product,
            source,
            state,
            pending: BTreeMap::new(),
            seen: Sequence(0),
            revoked: BTreeSet::new(),
        }
    }

    async fn verified_block(&mut self) -> Result<ChainHead, WatchError> {
        match &mut self.source {
            HeaderSource::Rpc => {
                let (header, hash) = self
                    .rpc
                    .header(BlockNumberOrTag::Latest)
                    .await
                    .map_err(|e| WatchError::Rpc(e.to_string()))?;
                verify_header(&header, hash).map_err(|e| WatchError::Header(e.to_string()))?;
                Ok(ChainHead {
                    block: header.number,
                    hash,
                    state_root: header.state_root,
                    timestamp: header.timestamp,
                    mode: "rpc",
                })
            }
            HeaderSource::Light { client } => {
                client.sync(unix_now()).await?;
                self.state.set_light_client(&client.persisted())?;
                let header = &client.store.optimistic_header;
                let execution = header.execution.as_ref().ok_or_else(|| {
                    WatchError::Header(format!(
                        "the verified header at slot {} has no execution payload",
                        header.beacon.slot
                    ))
                })?;
                Ok(ChainHead {
                    block: execution.block_number,
                    hash: B256::from(execution.block_hash),
                    state_root: B256::from(execution.state_root),
                    timestamp: execution.timestamp,
                    mode: "light",
                })
            }
        }
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
        let installed = self
            .state
            .installed(&self.product)?
            .map_or(Sequence(0), |p| p.sequence);
        self.pending = self.pending.split_off(&Sequence(installed.0 + 1));
        let after = self.seen.max(installed);
        let cursor = self.state.event_cursor()?;
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
        // Events before the first release not yet installed are not needed again.
        let next = match (self.pending.values().min(), report.rejected.is_empty()) {
            (Some(first), _) => *first,
            (None, true) => at.number + 1,
            (None, false) => cursor,
        };
        self.state.set_event_cursor(next.max(cursor))?;
        Ok(report)
    }
}

/// The actor around a [`Watcher`]: polls on a timer and on [`Wake`], one poll at a time.
#[derive(Debug)]
pub struct IndexWatcher {
    watcher: Option<Watcher>,
    interval: Duration,
    seen: Option<Recipient<ReleaseSeen>>,
    revoked: Option<Recipient<ReleaseRevoked>>,
    status: Recipient<StatusEvent>,
    again: bool,
}

impl IndexWatcher {
    /// Poll `watcher` every `interval`, telling `seen`/`revoked` (the Coordinator, on devices) and `status`.
    pub fn new(
        watcher: Watcher,
        interval: Duration,
        seen: Option<Recipient<ReleaseSeen>>,
        revoked: Option<Recipient<ReleaseRevoked>>,
        status: Recipient<StatusEvent>,
    ) -> IndexWatcher {
        IndexWatcher {
            watcher: Some(watcher),
            interval,
            seen,
            revoked,
            status,
            again: false,
        }
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
        ctx.spawn(work.into_actor(self).map(|(watcher, report), act, ctx| {
            act.watcher = Some(watcher);
            match report {
                Ok(report) => {
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

impl Actor for IndexWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.poll(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.poll(ctx));
    }
}

impl Handler<Wake> for IndexWatcher {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.poll(ctx);
    }
}
