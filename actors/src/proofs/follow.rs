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
    head: Option<(ChainHead, PeerId)>,
    seen: Vec<(ReleaseSeen, PeerId)>,
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
        }
    }

    fn run_round(&mut self, ctx: &mut Context<Self>) {
        let Some((mut book, mut known)) = self.work.take() else {
            return;
        };
        if let Some(s) = self.installed.take() {
            known.installed = known.installed.max(s);
        }
        let announced = std::mem::take(&mut self.pending);
        let (proofs, state) = (self.proofs.clone(), self.state.clone());
        let work = async move {
            let round = round(&mut book, &mut known, &proofs, announced).await;
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

    fn report(&self, round: Round) {
        for why in round.rejected {
            tracing::warn!("{why}");
            self.ports.status.do_send(StatusEvent::Rejected(why));
        }
        if let Some((head, peer)) = round.head {
            tracing::info!(block = head.block, %peer, "head proof verified (from a peer)");
            self.ports.status.do_send(StatusEvent::Chain(Ok(head)));
        }
        for (seen, peer) in round.seen {
            tracing::info!(sequence = seen.record.sequence.0, revoked = seen.revoked, %peer,
                "release seen (release proof from a peer verified)");
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
        if let Some((now, gates)) = round.gates {
            crate::rollout::tell(self.ports.rollout.as_ref(), Some(now), Some(gates));
        }
    }
}

/// Ask `peers` in turn for `request` until one answers with items; refusals and errors of the transport are
/// skipped, malformed answers blame the peer.
async fn ask(
    proofs: &Proofs,
    peers: &[PeerId],
    request: ProofRequest,
    round: &mut Round,
) -> Vec<(PeerId, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for peer in peers {
        match proofs.request(*peer, request).await {
            Ok(ProofResponse::Found(items)) => out.push((*peer, items)),
            Ok(_) => {}
            Err(e @ firmchain_p2p::proofs::ProofsError::Wire { .. }) => {
                blame(proofs, *peer, &e.to_string(), round);
            }
            Err(e) => tracing::debug!(%peer, error = %e, "proof request failed"),
        }
    }
    out
}

fn blame(proofs: &Proofs, peer: PeerId, why: &str, round: &mut Round) {
    proofs.ban(peer, why.to_owned());
    round.rejected.push(format!(
        "proof from peer {peer} refused: {why}; the peer is banned"
    ));
}

/// Judge a failed verification: a forgery or garbage bans the peer, a benign failure is skipped.
fn judge(proofs: &Proofs, peer: PeerId, e: &FollowError, round: &mut Round) {
    if e.is_benign() {
        tracing::debug!(%peer, error = %e, "proof skipped");
    } else {
        blame(proofs, peer, &e.to_string(), round);
    }
}

async fn round(book: &mut ProofBook, known: &mut Known, proofs: &Proofs, announced: Vec<Announced>) -> Round {
    let mut round = Round::default();
    let now = unix_now();
    let peers = proofs.connected_peers().await;
    if book.store.is_none() {
        let req = ProofRequest::Bootstrap {
            checkpoint: book.checkpoint,
        };
        for peer in peers.iter() {
            for (peer, items) in ask(proofs, std::slice::from_ref(peer), req, &mut round).await {
                match book.bootstrap(&items[0], now) {
                    Ok(()) => {
                        proofs.put(ShelfItem::Bootstrap {
                            checkpoint: book.checkpoint,
                            bytes: items[0].clone(),
                        });
                    }
                    Err(e) => judge(proofs, peer, &e, &mut round),
                }
            }
            if book.store.is_some() {
                break;
            }
        }
        if book.store.is_none() {
            return round;
        }
    }
    if let Some(period) = book.period() {
        let current = book.current_period(now);
        if period < current {
            let count = (current - period + 1).min(u64::from(firmchain_p2p::proofs::wire::MAX_PERIODS)) as u8;
            let req = ProofRequest::Updates { from: period, count };
            for peer in peers.iter() {
                for (peer, items) in ask(proofs, std::slice::from_ref(peer), req, &mut round).await {
                    match book.advance(&items, now) {
                        Ok(_) => {
                            for (i, bytes) in items.into_iter().enumerate() {
                                proofs.put(ShelfItem::Update {
                                    period: period + i as u64,
                                    bytes,
                                });
                            }
                        }
                        Err(e) => judge(proofs, peer, &e, &mut round),
                    }
                }
                if book.period().is_some_and(|p| p >= current) {
                    break;
                }
            }
        }
    }

    // Head proofs: what peers pushed, then what the first few peers hold. The newest valid one wins.
    let mut candidates: Vec<(PeerId, Vec<u8>)> = announced.into_iter().map(|a| (a.peer, a.bytes)).collect();
    let product = book.product.0;
    for (peer, mut items) in ask(
        proofs,
        &peers[..peers.len().min(HEAD_PEERS)],
        ProofRequest::Head { product },
        &mut round,
    )
    .await
    {
        if let Some(b) = items.pop() {
            candidates.push((peer, b));
        }
    }
    let mut newest = None;
    for (peer, bytes) in candidates {
        match book.accept_head(&bytes, now) {
            Ok(v) => newest = Some((v, peer, bytes)),
            Err(e) => judge(proofs, peer, &e, &mut round),
        }
    }
    let Some((head, from, bytes)) = newest else {
        return round;
    };
    if proofs.put(ShelfItem::Head {
        product,
        slot: head.anchor.slot,
        bytes: bytes.clone(),
    }) {
        proofs.announce(bytes, Some(from)).await;
    }
    round.head = Some((
        ChainHead {
            block: head.anchor.block_number,
            hash: head.anchor.block_hash,
            state_root: head.anchor.state_root,
            timestamp: head.anchor.timestamp,
            mode: "peers",
        },
        from,
    ));
    for (s, revoked) in &head.revoked {
        if *revoked && known.revoked.insert(*s) {
            round.revoked.push(Sequence(*s));
        }
    }

    // Release proofs of the releases the device has not seen yet, newest first.
    let after = known
        .installed
        .0
        .max(known.seen.keys().next_back().copied().unwrap_or(0));
    let mut order = vec![from];
    order.extend(peers.iter().copied().filter(|p| *p != from));
    for seq in ((after + 1)..=head.head).rev().take(RELEASES_PER_ROUND) {
        let req = ProofRequest::Release {
            product,
            sequence: seq,
        };
        for peer in &order {
            let got = ask(proofs, std::slice::from_ref(peer), req, &mut round).await;
            let Some((peer, items)) = got.into_iter().next() else {
                continue;
            };
            match book.accept_release(&items[0], seq, now) {
                Ok((v, record)) => {
                    proofs.put(ShelfItem::Release {
                        product,
                        sequence: seq,
                        bytes: items[0].clone(),
                    });
                    let revoked = v.revoked || known.revoked.contains(&seq);
                    known.seen.insert(seq, v.gate);
                    round.seen.push((ReleaseSeen { record, revoked }, peer));
                    break;
                }
                Err(e) => judge(proofs, peer, &e, &mut round),
            }
        }
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

impl Handler<ReleaseInstalled> for ProofFollower {
    type Result = ();

    fn handle(&mut self, msg: ReleaseInstalled, _: &mut Context<Self>) {
        if let ReleaseInstalled::Installed { sequence, .. } = msg {
            match &mut self.work {
                Some((_, known)) => known.installed = known.installed.max(sequence),
                None => self.installed = Some(sequence),
            }
        }
    }
}
