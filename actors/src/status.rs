//! The Status actor: collects what the other actors report, for `/status` and `/metrics`.

use std::collections::VecDeque;
use std::time::Instant;

use actix::{Actor, Context, Handler, Message, MessageResponse};
use serde::Serialize;

use crate::fetcher::entry_name;
use crate::messages::{FetchReport, ReleaseInstalled, StatusEvent};
use crate::metrics::Metrics;
use crate::{unix_now, unix_now_ms};

/// How many rejections and publications `/status` lists.
const KEEP: usize = 20;

/// The verified chain head as `/status` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ChainView {
    pub mode: &'static str,
    pub block: u64,
    pub hash: String,
    pub timestamp: u64,
    /// When this node verified it (unix seconds).
    pub verified_at: u64,
    /// Light mode: the beacon header it came with and what authorised it.
    pub light: Option<crate::messages::LightAuth>,
}

/// A fetch in flight.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FetchView {
    pub sequence: u64,
    pub payload: &'static str,
    pub blocks: u64,
    pub known_blocks: u64,
    pub bytes: u64,
    pub peers: usize,
}

/// The last install outcome.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InstallView {
    pub sequence: u64,
    /// `installed` or `rolled_back`.
    pub outcome: &'static str,
    pub hash: Option<String>,
    pub reason: Option<String>,
    pub at: u64,
    /// The same moment in milliseconds (for convergence measurements).
    pub at_ms: u64,
    /// The newest verified head when it happened (it proves the release: the index only grows, and every
    /// poll checks revocations).
    pub verified: Option<ChainView>,
}

/// The two-phase commit of a release handed to RAUC or SWUpdate, as `/status` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CommitView {
    /// `pending` (installed beside the running slot, waiting for the reboot and the check there), `confirmed`
    /// (the new boot passed its health check and the bootloader was told) or `rolled_back`.
    pub state: &'static str,
    /// The release.
    pub sequence: u64,
    /// `rauc` or `swupdate`.
    pub installer: String,
    /// The slot that ran when the install began.
    pub from_slot: String,
    /// The slot this boot runs (once the node checked after a start).
    pub booted_slot: Option<String>,
    /// Why it was rolled back.
    pub reason: Option<String>,
    /// When this state was reached (unix seconds).
    pub at: u64,
}

/// Everything the Status actor knows.
#[derive(Clone, Debug, Default, Serialize, MessageResponse)]
pub struct StatusSnapshot {
    pub chain: Option<ChainView>,
    /// The last error of the node's own chain sources (RPC, beacon API), until they verify a head again.
    pub chain_error: Option<String>,
    pub fetch: Option<FetchView>,
    pub last_fetch: Option<FetchReport>,
    pub last_fetch_error: Option<String>,
    pub last_install: Option<InstallView>,
    pub rollbacks: Vec<InstallView>,
    /// The two-phase commit (rauc and swupdate modes).
    pub commit: Option<CommitView>,
    pub rejected: VecDeque<String>,
    pub published: VecDeque<serde_json::Value>,
    pub counters: Counters,
    /// Why the light client could not start (its checkpoint is past the weak-subjectivity window): nothing is
    /// verified or installed until an operator sets a fresh checkpoint.
    pub chain_blocked: Option<String>,
    /// Settings that weaken the node's checks, named at start (e.g. `chain.force_update`).
    pub warnings: Vec<String>,
}

/// Monotonic counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counters {
    pub polls_ok: u64,
    pub polls_failed: u64,
    pub rejected: u64,
    pub fetches_ok: u64,
    pub fetches_failed: u64,
    pub installs: u64,
    pub rollbacks: u64,
    pub published: u64,
}

/// Anyone → Status: the snapshot.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "StatusSnapshot")]
pub struct GetSnapshot;

/// The Status actor.
#[derive(Debug, Default)]
pub struct Status {
    snapshot: StatusSnapshot,
    metrics: Metrics,
    /// The install in progress, and when it started.
    installing: Option<(u64, Instant)>,
}

impl Status {
    /// A status that starts with `note` as a rejection (e.g. a slot recovered at start-up).
    pub fn new(note: Option<String>) -> Status {
        let mut s = Status::default();
        if let Some(n) = note {
            s.snapshot.rejected.push_back(n);
        }
        s
    }

    /// Count events into `metrics` (registered in the node's registry) rather than into unregistered ones.
    pub fn with_metrics(mut self, metrics: Metrics) -> Status {
        self.metrics = metrics;
        self
    }

    /// Report that the light client could not start, and why.
    pub fn chain_blocked(mut self, why: Option<String>) -> Status {
        self.snapshot.chain_blocked = why;
        self
    }

    /// Name settings that weaken the node's checks.
    pub fn warnings(mut self, warnings: Vec<String>) -> Status {
        self.snapshot.warnings = warnings;
        self
    }
}

impl Actor for Status {
    type Context = Context<Self>;
}

fn push<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() == KEEP {
        q.pop_front();
    }
    q.push_back(v);
}

impl Handler<StatusEvent> for Status {
    type Result = ();

    fn handle(&mut self, msg: StatusEvent, _: &mut Context<Self>) {
        let s = &mut self.snapshot;
        let m = &self.metrics;
        match msg {
            StatusEvent::Chain(Ok(h)) => {
                s.counters.polls_ok += 1;
                m.poll(true);
                // `chain_error` is the node's own sources' last error: a head that peers proved (light mode with
                // `chain.peers_fallback`) shows the chain is current but says nothing about those sources.
                if h.mode != "peers" {
                    s.chain_error = None;
                }
                s.chain = Some(ChainView {
                    mode: h.mode,
                    block: h.block,
                    hash: h.hash.to_string(),
                    timestamp: h.timestamp,
                    verified_at: unix_now(),
                    light: h.light,
                });
            }
            StatusEvent::Chain(Err(e)) => {
                s.counters.polls_failed += 1;
                m.poll(false);
                s.chain_error = Some(e.to_string());
            }
            StatusEvent::Rejected(why) => {
                s.counters.rejected += 1;
                push(&mut s.rejected, why);
            }
            StatusEvent::PeerRejected(why) => push(&mut s.rejected, why),
            StatusEvent::Fetching {
                sequence,
                payload,
                blocks,
                known_blocks,
                bytes,
                peers,
            } => {
                s.fetch = Some(FetchView {
                    sequence: sequence.0,
                    payload: entry_name(payload),
                    blocks,
                    known_blocks,
                    bytes,
                    peers,
                });
            }
            StatusEvent::Fetched {
                payload,
                seconds,
                outcome,
            } => {
                s.fetch = None;
                m.fetch(entry_name(payload), outcome.is_ok(), seconds);
                match outcome {
                    Ok(r) => {
                        s.counters.fetches_ok += 1;
                        s.last_fetch = Some(r);
                        s.last_fetch_error = None;
                    }
                    Err(e) => {
                        s.counters.fetches_failed += 1;
                        s.last_fetch_error = Some(e.to_string());
                    }
                }
            }
            StatusEvent::Installing { sequence } => {
                self.installing = Some((sequence.0, Instant::now()));
            }
            StatusEvent::Installed(outcome) => {
                let sequence = match &outcome {
                    ReleaseInstalled::Installed { sequence, .. }
                    | ReleaseInstalled::RolledBack { sequence, .. }
                    | ReleaseInstalled::Interrupted { sequence, .. } => sequence.0,
                };
                // Timed only when the install started in this process (not a verdict found at start-up).
                let seconds = match self.installing.take() {
                    Some((seq, started)) if seq == sequence => Some(started.elapsed().as_secs_f64()),
                    other => {
                        self.installing = other;
                        None
                    }
                };
                m.install(&outcome, seconds);
                let view = match outcome {
                    ReleaseInstalled::Installed { sequence, hash } => {
                        s.counters.installs += 1;
                        InstallView {
                            sequence: sequence.0,
                            outcome: "installed",
                            hash: Some(hash.to_string()),
                            reason: None,
                            at: unix_now(),
                            at_ms: unix_now_ms(),
                            verified: None,
                        }
                    }
                    ReleaseInstalled::RolledBack { sequence, reason, .. } => {
                        s.counters.rollbacks += 1;
                        let v = InstallView {
                            sequence: sequence.0,
                            outcome: "rolled_back",
                            hash: None,
                            reason: Some(reason),
                            at: unix_now(),
                            at_ms: unix_now_ms(),
                            verified: None,
                        };
                        s.rollbacks.push(v.clone());
                        v
                    }
                    // A transient fault: the install is tried again; not a rollback.
                    ReleaseInstalled::Interrupted { sequence, error } => InstallView {
                        sequence: sequence.0,
                        outcome: "interrupted",
                        hash: None,
                        reason: Some(error.to_string()),
                        at: unix_now(),
                        at_ms: unix_now_ms(),
                        verified: None,
                    },
                };
                s.last_install = Some(InstallView {
                    verified: s.chain.clone(),
                    ..view
                });
            }
            StatusEvent::Commit(view) => s.commit = Some(view),
            StatusEvent::Published(v) => {
                s.counters.published += 1;
                m.published.inc();
                push(&mut s.published, v);
            }
        }
    }
}

impl Handler<GetSnapshot> for Status {
    type Result = StatusSnapshot;

    fn handle(&mut self, _: GetSnapshot, _: &mut Context<Self>) -> StatusSnapshot {
        self.snapshot.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ChainHead;

    fn head(block: u64, mode: &'static str) -> StatusEvent {
        StatusEvent::Chain(Ok(ChainHead {
            block,
            hash: Default::default(),
            state_root: Default::default(),
            timestamp: 1_750_000_000 + block,
            mode,
            light: None,
        }))
    }

    fn failed() -> StatusEvent {
        let e =
            crate::watcher::WatchError::Block(crate::chain::BlockError::Blocked("connection refused".into()));
        StatusEvent::Chain(Err(std::sync::Arc::new(e)))
    }

    #[actix::test]
    async fn a_head_from_peers_keeps_the_own_sources_error_until_they_recover() {
        let status = Status::new(None).start();
        status.send(failed()).await.unwrap();
        status.send(head(10, "peers")).await.unwrap();
        let s = status.send(GetSnapshot).await.unwrap();
        assert_eq!(s.chain.as_ref().map(|c| (c.block, c.mode)), Some((10, "peers")));
        assert!(
            s.chain_error
                .as_deref()
                .is_some_and(|e| e.contains("connection refused")),
            "{:?}",
            s.chain_error
        );
        status.send(head(11, "light")).await.unwrap();
        let s = status.send(GetSnapshot).await.unwrap();
        assert_eq!(s.chain_error, None);
        assert_eq!(s.chain.map(|c| c.mode), Some("light"));
    }
}
