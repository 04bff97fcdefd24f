//! Chain proofs over libp2p: a request-response protocol (`/firmchain/proofs/1.0.0`: a bootstrap, committee
//! updates for periods a..b, the newest head proof of a product, the release proof of one release) and an
//! announcement protocol (`/firmchain/proofs/announce/1.0.0`: a new head proof pushed to connected peers).
//! One stream per request or announcement.
//!
//! Bounded like Bitswap: requests and answers have size caps checked before anything is read into memory
//! ([`wire`]); every network step has a timeout; a peer gets [`REQUESTS_PER_WINDOW`] requests and
//! announcements per [`BUDGET_WINDOW`], [`MAX_OPEN_PER_PEER`] streams open at once of which
//! [`MAX_INBOUND_PER_PEER`] are served at a time, and all peers together [`MAX_OPEN`] open and [`MAX_INBOUND`]
//! served at a time; streams past a limit are refused by name (closed unanswered, and counted), never reset
//! unread. Streams are accepted through [`crate::accept`], as Bitswap's are, so a burst of them from several
//! peers is queued rather than dropped. Announcements wait in a queue of [`ANNOUNCE_QUEUE`] and are dropped
//! beyond it.
//!
//! This module moves bytes; it does not judge proofs. The node verifies what it receives, puts only verified
//! proofs on the [`Shelf`] it serves from, and calls [`Proofs::ban`] with the reason for a peer whose proof
//! was a forgery or garbage.

pub mod shelf;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use crate::command::Command;
pub use shelf::{Shelf, ShelfItem};
pub use wire::{MAX_ITEM_BYTES, MAX_RESPONSE_BYTES, ProofRequest, ProofResponse, WireError};

pub const REQUEST_PROTOCOL: StreamProtocol = StreamProtocol::new("/firmchain/proofs/1.0.0");
pub const ANNOUNCE_PROTOCOL: StreamProtocol = StreamProtocol::new("/firmchain/proofs/announce/1.0.0");

/// Both protocols, as the swarm accepts them (see [`crate::accept`]).
pub const PROTOCOLS: [StreamProtocol; 2] = [REQUEST_PROTOCOL, ANNOUNCE_PROTOCOL];

/// Requests and announcements one peer may make per [`BUDGET_WINDOW`].
pub const REQUESTS_PER_WINDOW: u32 = 64;
pub const BUDGET_WINDOW: Duration = Duration::from_secs(60);
/// Inbound streams of one peer served at a time; its further streams wait (see [`MAX_OPEN_PER_PEER`]).
pub const MAX_INBOUND_PER_PEER: usize = 2;
/// Inbound streams of all peers served at a time; further streams wait.
pub const MAX_INBOUND: usize = 32;
/// Inbound streams of one peer open at once, served or waiting: more are refused (closed unanswered, which
/// the asking node reads as [`ProofsError::Refused`]) and counted in [`ServeCounts::over_concurrency`].
pub const MAX_OPEN_PER_PEER: usize = 8;
/// Inbound streams of all peers open at once, served or waiting; more are refused the same way.
pub const MAX_OPEN: usize = 256;
/// Inbound proof streams the swarm queues for the service (see [`crate::accept`]).
pub const QUEUE: usize = 256;
/// Announcements received and not yet taken by the node.
pub const ANNOUNCE_QUEUE: usize = 32;
/// Most peers tracked by the budget (the oldest windows are forgotten first).
const MAX_TRACKED_PEERS: usize = 4096;
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(20);
const ANNOUNCE_FANOUT: usize = 16;

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum ProofsError {
    #[error("cannot open a proof stream to {peer}: {reason}")]
    Open { peer: PeerId, reason: String },
    #[error("{peer} did not answer within {secs} s")]
    Timeout { peer: PeerId, secs: u64 },
    #[error("stream to {peer}: {reason}")]
    Io { peer: PeerId, reason: String },
    /// The peer closed the stream without an answer (over its budget or busy).
    #[error("{peer} refused the request (busy or over budget)")]
    Refused { peer: PeerId },
    /// The peer broke the protocol (blame it).
    #[error("{peer} sent a malformed answer: {source}")]
    Wire { peer: PeerId, source: WireError },
}

/// A head proof a peer pushed to us, not yet verified.
#[derive(Clone, Debug)]
pub struct Announced {
    pub peer: PeerId,
    pub bytes: Vec<u8>,
}

/// How often peers were refused service (for tests and status).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServeCounts {
    pub served: u64,
    pub over_budget: u64,
    pub over_concurrency: u64,
    pub malformed: u64,
    pub announcements_dropped: u64,
}

/// Per-peer request budgets: a fixed window per peer. Pure: time comes in.
#[derive(Debug, Default)]
pub struct Budgets {
    windows: HashMap<PeerId, (Instant, u32)>,
}

impl Budgets {
    /// Spend one request of `peer`'s budget at `now`; false when the window's budget is spent.
    pub fn spend(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.windows.len() >= MAX_TRACKED_PEERS && !self.windows.contains_key(&peer) {
            self.windows
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < BUDGET_WINDOW);
            if self.windows.len() >= MAX_TRACKED_PEERS {
                return false;
            }
        }
        let (start, used) = self.windows.entry(peer).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= BUDGET_WINDOW {
            *start = now;
            *used = 0;
        }
        if *used >= REQUESTS_PER_WINDOW {
            return false;
        }
        *used += 1;
        true
    }
}

struct Inner {
    control: Mutex<libp2p_stream::Control>,
    cmd: mpsc::Sender<Command>,
    shelf: Mutex<Shelf>,
    budgets: Mutex<Budgets>,
    open: Mutex<Open>,
    serving: Arc<Semaphore>,
    announced_tx: mpsc::Sender<Announced>,
    announced_rx: Mutex<Option<mpsc::Receiver<Announced>>>,
    counts: Mutex<ServeCounts>,
}

/// The proof service of a node: the shelf it serves, requests to peers, announcements both ways. Cheap to
/// clone.
#[derive(Clone)]
pub struct Proofs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Proofs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proofs").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inbound streams open now, served or waiting: in all, and per peer with the gate of those served at once.
#[derive(Default)]
struct Open {
    total: usize,
    peers: HashMap<PeerId, (usize, Arc<Semaphore>)>,
}

/// An inbound stream's place among the open ones, given back when dropped.
struct Slot {
    inner: Arc<Inner>,
    peer: PeerId,
    gate: Arc<Semaphore>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.inner.open);
        open.total = open.total.saturating_sub(1);
        if let Some((n, _)) = open.peers.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.peers.remove(&self.peer);
            }
        }
    }
}

impl Proofs {
    /// Serve the proof streams the swarm accepts (`incoming`, see [`crate::accept`]); open outbound ones with
    /// `control`.
    pub(crate) fn start(
        control: &libp2p_stream::Control,
        mut incoming: crate::accept::Incoming,
        cmd: mpsc::Sender<Command>,
    ) -> Proofs {
        let (announced_tx, announced_rx) = mpsc::channel(ANNOUNCE_QUEUE);
        let proofs = Proofs {
            inner: Arc::new(Inner {
                control: Mutex::new(control.clone()),
                cmd,
                shelf: Mutex::new(Shelf::default()),
                budgets: Mutex::new(Budgets::default()),
                open: Mutex::new(Open::default()),
                serving: Arc::new(Semaphore::new(MAX_INBOUND)),
                announced_tx,
                announced_rx: Mutex::new(Some(announced_rx)),
                counts: Mutex::new(ServeCounts::default()),
            }),
        };
        let me = proofs.clone();
        tokio::spawn(async move {
            while let Some(crate::accept::Accepted {
                peer,
                protocol,
                stream,
            }) = incoming.recv().await
            {
                let Some(slot) = me.admit(peer) else {
                    tokio::spawn(refuse(stream));
                    continue;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    // Served in turn: a peer's few at a time, everyone's within the total.
                    let turn = async {
                        let mine = slot.gate.clone().acquire_owned().await.ok()?;
                        let all = me.inner.serving.clone().acquire_owned().await.ok()?;
                        Some((mine, all))
                    };
                    let Ok(Some(_turn)) = tokio::time::timeout(IO_TIMEOUT, turn).await else {
                        debug!(target: "firmchain::proofs", %peer, "no proof serving slot in time; refusing");
                        me.count(|c| c.over_concurrency += 1);
                        return refuse(stream).await;
                    };
                    if protocol == ANNOUNCE_PROTOCOL {
                        me.read_announcement(peer, stream, slot).await;
                    } else {
                        me.serve(peer, stream, slot).await;
                    }
                });
            }
        });
        proofs
    }

    fn count(&self, f: impl FnOnce(&mut ServeCounts)) {
        f(&mut lock(&self.inner.counts));
    }

    /// Counts of what was served and refused.
    pub fn counts(&self) -> ServeCounts {
        *lock(&self.inner.counts)
    }

    /// Admit one inbound stream of `peer`: its budget, its open streams, everyone's open streams.
    fn admit(&self, peer: PeerId) -> Option<Slot> {
        if !lock(&self.inner.budgets).spend(peer, Instant::now()) {
            debug!(target: "firmchain::proofs", %peer, "proof requests over budget; refusing");
            self.count(|c| c.over_budget += 1);
            return None;
        }
        let mut open = lock(&self.inner.open);
        let total = open.total;
        let (n, gate) = open
            .peers
            .entry(peer)
            .or_insert_with(|| (0, Arc::new(Semaphore::new(MAX_INBOUND_PER_PEER))));
        if *n >= MAX_OPEN_PER_PEER || total >= MAX_OPEN {
            let (n, total) = (*n, total);
            if n == 0 {
                open.peers.remove(&peer);
            }
            drop(open);
            debug!(target: "firmchain::proofs", %peer, open = n, total, "too many proof streams open; refusing");
            self.count(|c| c.over_concurrency += 1);
            return None;
        }
        *n += 1;
        let gate = gate.clone();
        open.total += 1;
        Some(Slot {
            inner: self.inner.clone(),
            peer,
            gate,
        })
    }

    async fn serve(&self, peer: PeerId, mut stream: libp2p::Stream, _slot: Slot) {
        let mut buf = Vec::with_capacity(wire::MAX_REQUEST_BYTES);
        let mut limited = (&mut stream).take(wire::MAX_REQUEST_BYTES as u64 + 1);
        match tokio::time::timeout(IO_TIMEOUT, limited.read_to_end(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let request = match ProofRequest::decode(&buf) {
            Ok(r) => r,
            Err(e) => {
                self.count(|c| c.malformed += 1);
                self.ban(peer, format!("malformed proof request: {e}"));
                return;
            }
        };
        let answer = lock(&self.inner.shelf).answer(&request);
        let bytes = answer.encode();
        let write = async {
            stream.write_all(&bytes).await?;
            stream.close().await
        };
        if tokio::time::timeout(IO_TIMEOUT, write).await.is_ok() {
            self.count(|c| c.served += 1);
        }
    }

    async fn read_announcement(&self, peer: PeerId, mut stream: libp2p::Stream, _slot: Slot) {
        let mut buf = Vec::with_capacity(64 << 10);
        let mut limited = (&mut stream).take(MAX_ITEM_BYTES as u64 + 5);
        match tokio::time::timeout(IO_TIMEOUT, limited.read_to_end(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let bytes = match decode_announcement(&buf) {
            Ok(b) => b,
            Err(e) => {
                self.count(|c| c.malformed += 1);
                self.ban(peer, format!("malformed proof announcement: {e}"));
                return;
            }
        };
        if self
            .inner
            .announced_tx
            .try_send(Announced { peer, bytes })
            .is_err()
        {
            self.count(|c| c.announcements_dropped += 1);
        }
    }

    /// The queue of head proofs peers pushed (taken once, by the node's proof follower).
    pub fn take_announcements(&self) -> Option<mpsc::Receiver<Announced>> {
        lock(&self.inner.announced_rx).take()
    }

    /// Keep a verified proof to serve.
    pub fn put(&self, item: ShelfItem) -> bool {
        lock(&self.inner.shelf).put(item)
    }

    /// Read the shelf.
    pub fn with_shelf<T>(&self, f: impl FnOnce(&Shelf) -> T) -> T {
        f(&lock(&self.inner.shelf))
    }

    /// Ban `peer` (a forged or malformed proof), naming the reason in the log.
    pub fn ban(&self, peer: PeerId, reason: String) {
        warn!(target: "firmchain::proofs", %peer, %reason, "refusing a peer's proof");
        if self.inner.cmd.try_send(Command::Ban(peer, reason)).is_err() {
            warn!(target: "firmchain::proofs", %peer, "command queue full; ban not applied");
        }
    }

    /// Peers connected now (the candidates to ask).
    pub async fn connected_peers(&self) -> Vec<PeerId> {
        let (tx, rx) = oneshot::channel();
        if self.inner.cmd.send(Command::ConnectedPeers(tx)).await.is_err() {
            return Vec::new();
        }
        tokio::time::timeout(OPEN_TIMEOUT, rx)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default()
    }

    async fn open(&self, peer: PeerId, protocol: StreamProtocol) -> Result<libp2p::Stream, ProofsError> {
        let mut control = lock(&self.inner.control).clone();
        match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, protocol)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(ProofsError::Open {
                peer,
                reason: e.to_string(),
            }),
            Err(_) => Err(ProofsError::Timeout {
                peer,
                secs: OPEN_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Ask `peer` for `request`. The answer is capped at [`MAX_RESPONSE_BYTES`] while it is read and its
    /// items at [`MAX_ITEM_BYTES`] before they are copied.
    pub async fn request(&self, peer: PeerId, request: ProofRequest) -> Result<ProofResponse, ProofsError> {
        let mut stream = self.open(peer, REQUEST_PROTOCOL).await?;
        let io = |e: std::io::Error| ProofsError::Io {
            peer,
            reason: e.to_string(),
        };
        let exchange = async {
            stream.write_all(&request.encode()).await.map_err(io)?;
            stream.close().await.map_err(io)?;
            let mut buf = Vec::with_capacity(64 << 10);
            (&mut stream)
                .take(MAX_RESPONSE_BYTES as u64 + 9)
                .read_to_end(&mut buf)
                .await
                .map_err(io)?;
            Ok::<_, ProofsError>(buf)
        };
        let buf = tokio::time::timeout(IO_TIMEOUT, exchange)
            .await
            .map_err(|_| ProofsError::Timeout {
                peer,
                secs: IO_TIMEOUT.as_secs(),
            })??;
        if buf.is_empty() {
            return Err(ProofsError::Refused { peer });
        }
        ProofResponse::decode(&buf, &request).map_err(|source| ProofsError::Wire { peer, source })
    }

    /// Push a head proof to every connected peer but `except` (its sender), a few at a time, in the
    /// background. Returns how many peers it goes to.
    pub async fn announce(&self, bytes: Vec<u8>, except: Option<PeerId>) -> usize {
        let peers: Vec<PeerId> = self
            .connected_peers()
            .await
            .into_iter()
            .filter(|p| Some(*p) != except)
            .collect();
        let n = peers.len();
        let frame = Arc::new(encode_announcement(&bytes));
        let fanout = Arc::new(Semaphore::new(ANNOUNCE_FANOUT));
        for peer in peers {
            let (me, frame, fanout) = (self.clone(), frame.clone(), fanout.clone());
            tokio::spawn(async move {
                let Ok(_permit) = fanout.acquire_owned().await else {
                    return;
                };
                let Ok(mut stream) = me.open(peer, ANNOUNCE_PROTOCOL).await else {
                    return;
                };
                let write = async {
                    stream.write_all(&frame).await?;
                    stream.close().await
                };
                if let Err(e) = tokio::time::timeout(IO_TIMEOUT, write).await {
                    debug!(target: "firmchain::proofs", %peer, error = %e, "announcement not delivered");
                }
            });
        }
        n
    }
}

/// Refuse a stream by name: close it unanswered (the asking node reads [`ProofsError::Refused`]) rather than
/// reset it.
async fn refuse(mut stream: libp2p::Stream) {
    let _ = tokio::time::timeout(IO_TIMEOUT, stream.close()).await;
}

/// `len u32` + the head proof.
pub fn encode_announcement(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + bytes.len());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// The head proof of an announcement, its length checked against [`MAX_ITEM_BYTES`] first.
pub fn decode_announcement(frame: &[u8]) -> Result<Vec<u8>, WireError> {
    let Some((len, rest)) = frame.split_first_chunk::<4>() else {
        return Err(WireError::Truncated("announcement length"));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_ITEM_BYTES {
        return Err(WireError::TooLarge {
            what: "announced head proof",
            len,
            max: MAX_ITEM_BYTES,
        });
    }
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(WireError::Truncated("announced head proof")),
        std::cmp::Ordering::Greater => Err(WireError::Trailing(rest.len() - len)),
        std::cmp::Ordering::Equal => Ok(rest.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_budget_refills_each_window() {
        let mut b = Budgets::default();
        let (peer, other, t0) = (PeerId::random(), PeerId::random(), Instant::now());
        for _ in 0..REQUESTS_PER_WINDOW {
            assert!(b.spend(peer, t0));
        }
        assert!(
            !b.spend(peer, t0 + Duration::from_secs(1)),
            "the window's budget is spent"
        );
        assert!(b.spend(other, t0), "another peer has its own budget");
        assert!(b.spend(peer, t0 + BUDGET_WINDOW), "a new window");
    }

    #[test]
    fn announcements_are_capped_before_reading() {
        let ok = encode_announcement(b"proof");
        assert_eq!(decode_announcement(&ok).unwrap(), b"proof");
        let mut huge = (u32::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(b"x");
        assert!(matches!(
            decode_announcement(&huge),
            Err(WireError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_announcement(&ok[..6]),
            Err(WireError::Truncated(_))
        ));
        assert!(matches!(
            decode_announcement(&[1, 2]),
            Err(WireError::Truncated(_))
        ));
    }
}
