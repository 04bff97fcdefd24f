//! The ProofFollower: a `peers`-mode device's index watcher. It has no RPC at all; on a timer and on each
//! announcement it asks connected peers for what its [`ProofBook`] lacks (the bootstrap of its checkpoint,
//! committee updates, the newest head proof, release proofs), verifies every answer, and tells the Coordinator
//! exactly what the IndexWatcher tells it in the other modes (releases seen, revocations, chain time and
//! rollout gates). Verified proofs are persisted, put on the node's proof shelf and served on; a new head
//! proof is announced to the other connected peers. A peer whose proof is a forgery or garbage is banned and
//! named in `/status`; an old or early proof (benign) is only skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, WrapFuture};
use firmchain_lightclient::proof::ProvenGate;
use firmchain_p2p::PeerId;
use firmchain_p2p::proofs::{Announced, ProofRequest, ProofResponse, Proofs, ShelfItem};
use firmchain_update::Sequence;
use firmchain_update::rollout::ReleaseGate;

use super::book::{FollowError, ProofBook};
use super::fallback::Fallback;
use crate::messages::{ChainHead, ReleaseInstalled, ReleaseRevoked, ReleaseSeen, StatusEvent};
use crate::rollout::RolloutProven;
use crate::state::NodeState;
use crate::unix_now;

/// Peers asked for a head proof per round.
const HEAD_PEERS: usize = 4;
/// Release proofs fetched per round (the newest sequences first).
const RELEASES_PER_ROUND: usize = 8;
/// Announcements kept while a round runs.
const PENDING_ANNOUNCEMENTS: usize = 8;

/// A head proof pushed by a peer (forwarded from the p2p announcement queue).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ProofAnnounced(pub Announced);

/// Where the follower's reports go.
#[derive(Debug, Clone)]
pub struct FollowerPorts {
    pub seen: Option<Recipient<ReleaseSeen>>,
    pub revoked: Option<Recipient<ReleaseRevoked>>,
    pub rollout: Option<Recipient<RolloutProven>>,
    pub status: Recipient<StatusEvent>,
}

/// What the follower knows between rounds besides the book.
#[derive(Debug, Default)]
struct Known {
    installed: Sequence,
    /// Releases told to the Coordinator, with their gate.
    seen: BTreeMap<u64, ProvenGate>,
    revoked: BTreeSet<u64>,
}

/// What one round found, for the actor to send on.
#[derive(Debug, Default)]
struct Round {
    head: Option<(ChainHead, Source)>,
    seen: Vec<(ReleaseSeen, Source)>,
    revoked: Vec<Sequence>,
    rejected: Vec<String>,
    gates: Option<(u64, Vec<(Sequence, ReleaseGate)>)>,
}

fn gate(g: ProvenGate) -> ReleaseGate {
    ReleaseGate {
        live_at: g.live_at,
        installable_at: g.installable_at,
        product_paused_until: g.product_paused_until,
        release_paused_until: g.release_paused_until,
    }
}

/// The actor.
pub struct ProofFollower {
    work: Option<(ProofBook, Known)>,
    proofs: Proofs,
    state: Arc<NodeState>,
    ports: FollowerPorts,
    interval: Duration,
    pending: Vec<Announced>,
    installed: Option<Sequence>,
    local: Option<OfferProofs>,
    /// Light mode with `chain.peers_fallback`: the own watcher, which reports through this actor.
    own: Option<(Fallback, Recipient<ReleaseInstalled>)>,
}

impl std::fmt::Debug for ProofFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofFollower").finish_non_exhaustive()
    }
}

impl ProofFollower {
    /// Follow `book` (restored from the state by the caller) over `proofs`, every `interval`.
    pub fn new(
        book: ProofBook,
        installed: Sequence,
        proofs: Proofs,
        state: Arc<NodeState>,
        ports: FollowerPorts,
        interval: Duration,
    ) -> ProofFollower {
        let known = Known {
            installed,
            ..Known::default()
        };
        ProofFollower {
            work: Some((book, known)),
            proofs,
            state,
            ports,
            interval,
            pending: Vec::new(),
            installed: None,
            local: None,
            own: None,
        }
    }

    /// Follow peers only as the fallback of the node's own IndexWatcher, which then sends its status events and
    /// rollout reports here (see [`super::fallback`]); installs are passed on to it at `installs`. The own
    /// sources count as behind when their head is older than `behind_after` seconds.
    pub fn with_fallback(mut self, behind_after: u64, installs: Recipient<ReleaseInstalled>) -> Self {
        self.own = Some((Fallback::new(behind_after, unix_now()), installs));
        self
    }

    pub(super) fn fallback_mut(&mut self) -> Option<&mut Fallback> {
        self.own.as_mut().map(|(f, _)| f)
    }

    pub(super) fn ports(&self) -> &FollowerPorts {
        &self.ports
    }

    fn run_round(&mut self, ctx: &mut Context<Self>) {
        if let Some(f) = self.fallback_mut() {
            let (using, changed) = f.use_peers(unix_now());
            if changed && using {
                tracing::warn!(
                    "the node's own chain sources failed or fell behind: following verified proofs from peers"
                );
            } else if changed {
                tracing::info!("the node's own chain sources are current again: peers are no longer asked");
            }
            if !using {
                self.pending.clear();
                return;
            }
        }
        let Some((mut book, mut known)) = self.work.take() else {
            return;
        };
        if let Some(s) = self.installed.take() {
            known.installed = known.installed.max(s);
        }
        let announced = std::mem::take(&mut self.pending);
        let local = self.local.take();
        let (proofs, state) = (self.proofs.clone(), self.state.clone());
        let work = async move {
            let round = round(&mut book, &mut known, &proofs, announced, local).await;
            if let Err(e) = state.set_proofs(&book.saved()) {
                tracing::warn!(error = %e, "cannot save the verified proofs");
            }
            (book, known, round)
        };
        ctx.spawn(work.into_actor(self).map(|(book, known, round), act, ctx| {
            act.work = Some((book, known));
            act.report(round);
            if !act.pending.is_empty() {
                act.run_round(ctx);
            }
        }));
    }

    fn report(&mut self, round: Round) {
        for why in round.rejected {
            tracing::warn!("{why}");
            self.ports.status.do_send(StatusEvent::Rejected(why));
        }
        if let Some((head, source)) = round.head {
            tracing::info!(block = head.block, from = %source, "head proof verified");
            if self.fallback_mut().is_none_or(|f| f.show(head.timestamp, false)) {
                self.ports.status.do_send(StatusEvent::Chain(Ok(head)));
            }
        }
        for (seen, source) in round.seen {
            tracing::info!(sequence = seen.record.sequence.0, revoked = seen.revoked, from = %source,
                "release seen (release proof verified)");
            if let Some(r) = &self.ports.seen {
                r.do_send(seen);
            }
        }
        for sequence in round.revoked {
            tracing::warn!(sequence = sequence.0, "release revoked (proven by a head proof)");
            if let Some(r) = &self.ports.revoked {
                r.do_send(ReleaseRevoked { sequence });
            }
        }
        if let Some(report) = round.gates {
            let (now, gates) = match self.fallback_mut() {
                Some(f) => f.gates(report, false),
                None => report,
            };
            crate::rollout::tell(self.ports.rollout.as_ref(), Some(now), Some(gates));
        }
    }
}

/// Where a proof came from: a peer (blamed and banned for a forgery) or a file the operator gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Peer(PeerId),
    File(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Peer(p) => write!(f, "peer {p}"),
            Source::File(name) => f.write_str(name),
        }
    }
}

/// Proofs from a file (`firmchain install release.car`): verified exactly as proofs from peers, first.
#[derive(Clone, Debug, Default, Message)]
#[rtype(result = "()")]
pub struct OfferProofs {
    /// What to call the file in reports.
    pub name: String,
    /// A committee chain with the bootstrap of the device's checkpoint.
    pub chain: Option<Vec<u8>>,
    pub head: Option<Vec<u8>>,
    /// Release proofs by sequence.
    pub releases: Vec<(u64, Vec<u8>)>,
}

/// Ask `peers` in turn for `request`; refusals and errors of the transport are skipped, malformed answers
/// blame the peer.
async fn ask(
    proofs: &Proofs,
    peers: &[PeerId],
    request: ProofRequest,
    round: &mut Round,
) -> Vec<(Source, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for peer in peers {
        match proofs.request(*peer, request).await {
            Ok(ProofResponse::Found(items)) if !items.is_empty() => out.push((Source::Peer(*peer), items)),
            Ok(_) => {}
            Err(e @ firmchain_p2p::proofs::ProofsError::Wire { .. }) => {
                blame(proofs, &Source::Peer(*peer), &e.to_string(), round);
            }
            Err(e) => tracing::debug!(%peer, error = %e, "proof request failed"),
        }
    }
    out
}

fn blame(proofs: &Proofs, source: &Source, why: &str, round: &mut Round) {
    match source {
        Source::Peer(peer) => {
            proofs.ban(*peer, why.to_owned());
            round.rejected.push(format!(
                "proof from peer {peer} refused: {why}; the peer is banned"
            ));
        }
        Source::File(name) => round.rejected.push(format!("proof from {name} refused: {why}")),
    }
}

/// Judge a failed verification: a forgery or garbage bans the peer, a benign failure is skipped (a file's
/// is reported: the operator asked for it).
fn judge(proofs: &Proofs, source: &Source, e: &FollowError, round: &mut Round) {
    if e.is_benign() && matches!(source, Source::Peer(_)) {
        tracing::debug!(%source, error = %e, "proof skipped");
    } else {
        blame(proofs, source, &e.to_string(), round);
    }
}

/// The local offer first, then each peer in turn, until `done`.
async fn each_source<F>(
    proofs: &Proofs,
    peers: &[PeerId],
    local: Option<(Source, Vec<Vec<u8>>)>,
    request: ProofRequest,
    round: &mut Round,
    mut try_items: F,
) where
    F: FnMut(&Source, Vec<Vec<u8>>, &mut Round) -> bool,
{
    if let Some((source, items)) = local
        && try_items(&source, items, round)
    {
        return;
    }
    for peer in peers {
        for (source, items) in ask(proofs, std::slice::from_ref(peer), request, round).await {
            if try_items(&source, items, round) {
                return;
            }
        }
    }
}

async fn round(
    book: &mut ProofBook,
    known: &mut Known,
    proofs: &Proofs,
    announced: Vec<Announced>,
    local: Option<OfferProofs>,
) -> Round {
    let mut round = Round::default();
    let now = unix_now();
    let peers = proofs.connected_peers().await;
    let local = local.unwrap_or_default();
    let file = Source::File(local.name.clone());
    if book.store.is_none() {
        let req = ProofRequest::Bootstrap {
            checkpoint: book.checkpoint,
        };
        let offer = local.chain.clone().map(|c| (file.clone(), vec![c]));
        each_source(
            proofs,
            &peers,
            offer,
            req,
            &mut round,
            |source, items, round| match book.bootstrap(&items[0], now) {
                Ok(()) => {
                    proofs.put(ShelfItem::Bootstrap {
                        checkpoint: book.checkpoint,
                        bytes: items[0].clone(),
                    });
                    true
                }
                Err(e) => {
                    judge(proofs, source, &e, round);
                    false
                }
            },
        )
        .await;
        if book.store.is_none() {
            return round;
        }
    }
    if let Some(period) = book.period() {
        let current = book.current_period(now);
        if period < current {
            let count = (current - period + 1).min(u64::from(firmchain_p2p::proofs::wire::MAX_PERIODS)) as u8;
            let req = ProofRequest::Updates { from: period, count };
            each_source(
                proofs,
                &peers,
                None,
                req,
                &mut round,
                |source, items, round| match book.advance(&items, now) {
                    Ok(_) => {
                        for (i, bytes) in items.into_iter().enumerate() {
                            proofs.put(ShelfItem::Update {
                                period: period + i as u64,
                                bytes,
                            });
                        }
                        book.period().is_some_and(|p| p >= current)
                    }
                    Err(e) => {
                        judge(proofs, source, &e, round);
                        false
                    }
                },
            )
            .await;
        }
    }

    // Head proofs: the file's, what peers pushed, then what the first few peers hold. The newest valid wins.
    let mut candidates: Vec<(Source, Vec<u8>)> =
        local.head.iter().map(|h| (file.clone(), h.clone())).collect();
    candidates.extend(announced.into_iter().map(|a| (Source::Peer(a.peer), a.bytes)));
    let product = book.product.0;
    let asked = &peers[..peers.len().min(HEAD_PEERS)];
    for (source, mut items) in ask(proofs, asked, ProofRequest::Head { product }, &mut round).await {
        if let Some(b) = items.pop() {
            candidates.push((source, b));
        }
    }
    let mut newest = None;
    for (source, bytes) in candidates {
        match book.accept_head(&bytes, now) {
            Ok(v) => newest = Some((v, source, bytes)),
            Err(e) => judge(proofs, &source, &e, &mut round),
        }
    }
    if let Some((head, source, bytes)) = &newest {
        if proofs.put(ShelfItem::Head {
            product,
            slot: head.anchor.slot,
            bytes: bytes.clone(),
        }) {
            let except = match source {
                Source::Peer(p) => Some(*p),
                Source::File(_) => None,
            };
            proofs.announce(bytes.clone(), except).await;
        }
        round.head = Some((
            ChainHead {
                block: head.anchor.block_number,
                hash: head.anchor.block_hash,
                state_root: head.anchor.state_root,
                timestamp: head.anchor.timestamp,
                mode: "peers",
                // A head proof's header always has a supermajority of the committee behind it.
                light: Some(crate::messages::LightAuth {
                    slot: head.anchor.slot,
                    finalized: false,
                    participation: Some((head.anchor.participants, book.spec.sync_committee_size)),
                }),
            },
            source.clone(),
        ));
    }
    // Without a newer head this round, the last one accepted still says which releases exist.
    let Some(head) = newest.map(|(v, _, _)| v).or_else(|| book.head.clone()) else {
        return round;
    };
    for (s, revoked) in &head.revoked {
        if *revoked && known.revoked.insert(*s) {
            round.revoked.push(Sequence(*s));
        }
    }

    // Release proofs of the releases the device has not seen yet, newest first: the file's, then peers'.
    let after = known
        .installed
        .0
        .max(known.seen.keys().next_back().copied().unwrap_or(0));
    let mut order: Vec<PeerId> = match &round.head {
        Some((_, Source::Peer(p))) => vec![*p],
        _ => Vec::new(),
    };
    let first = order.first().copied();
    order.extend(peers.iter().copied().filter(|p| Some(*p) != first));
    for seq in ((after + 1)..=head.head).rev().take(RELEASES_PER_ROUND) {
        let req = ProofRequest::Release {
            product,
            sequence: seq,
        };
        let offer = local
            .releases
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, b)| (file.clone(), vec![b.clone()]));
        each_source(
            proofs,
            &order,
            offer,
            req,
            &mut round,
            |source, items, round| match book.accept_release(&items[0], seq, now) {
                Ok((v, record)) => {
                    proofs.put(ShelfItem::Release {
                        product,
                        sequence: seq,
                        bytes: items[0].clone(),
                    });
                    let revoked = v.revoked || known.revoked.contains(&seq);
                    known.seen.insert(seq, v.gate);
                    round.seen.push((ReleaseSeen { record, revoked }, source.clone()));
                    true
                }
                Err(e) => {
                    judge(proofs, source, &e, round);
                    false
                }
            },
        )
        .await;
    }
    round.seen.sort_by_key(|(s, _)| s.record.sequence);
    if let Some(g) = known.seen.get_mut(&head.head) {
        *g = head.gate;
    }
    let installed = known.installed.0;
    let gates = known
        .seen
        .iter()
        .filter(|(s, _)| **s > installed && !known.revoked.contains(s))
        .map(|(s, g)| (Sequence(*s), gate(*g)))
        .collect();
    round.gates = Some((head.anchor.timestamp, gates));
    round
}

impl Actor for ProofFollower {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(mut rx) = self.proofs.take_announcements() {
            let me = ctx.address();
            tokio::spawn(async move {
                while let Some(a) = rx.recv().await {
                    if me.try_send(ProofAnnounced(a)).is_err() {
                        break;
                    }
                }
            });
        }
        self.run_round(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.run_round(ctx));
    }
}

impl Handler<ProofAnnounced> for ProofFollower {
    type Result = ();

    fn handle(&mut self, msg: ProofAnnounced, ctx: &mut Context<Self>) {
        if self.pending.len() < PENDING_ANNOUNCEMENTS {
            self.pending.push(msg.0);
        }
        self.run_round(ctx);
    }
}

impl Handler<OfferProofs> for ProofFollower {
    type Result = ();

    fn handle(&mut self, msg: OfferProofs, ctx: &mut Context<Self>) {
        self.local = Some(msg);
        self.run_round(ctx);
    }
}

impl Handler<ReleaseInstalled> for ProofFollower {
    type Result = ();

    fn handle(&mut self, msg: ReleaseInstalled, _: &mut Context<Self>) {
        if let Some((fallback, watcher)) = &mut self.own {
            if let ReleaseInstalled::Installed { sequence, .. } = &msg {
                fallback.installed(*sequence);
            }
            watcher.do_send(msg.clone());
        }
        if let ReleaseInstalled::Installed { sequence, .. } = msg {
            match &mut self.work {
                Some((_, known)) => known.installed = known.installed.max(sequence),
                None => self.installed = Some(sequence),
            }
        }
    }
}
