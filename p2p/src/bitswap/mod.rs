//! Bitswap 1.2.0 over libp2p streams, written for firmchain.
//!
//! Each direction has its own streams, as in every Bitswap implementation: we read length-prefixed messages
//! from the streams peers open to us, and send ours on one stream per peer that we open (and close when idle).
//! A reader task per inbound stream (a few per peer) hands wants to the peer's bounded wantlist, which a serving
//! task answers from the blockstore ([`serve`]: blocks, `Have`, `DontHave`, one message of about 2 MiB at a
//! time), and turns received blocks into CIDs by hashing them, then routes them to the fetch that wants them.
//! Blocks are attributed to the peer whose stream carried them, so a peer that lies is named; a peer that abuses
//! the server is named, dropped and banned.

pub mod proto;
pub mod seed;
pub mod serve;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use futures::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use crate::blockstore::Blockstore;
use crate::command::Command;
use proto::{MAX_MESSAGE_SIZE, Message, Presence, WireBlock};
use serve::{MAX_CONCURRENT_SERVES, Wantlist};

/// The protocols we speak; we open streams with the first.
pub const PROTOCOLS: [StreamProtocol; 3] = [
    StreamProtocol::new("/ipfs/bitswap/1.2.0"),
    StreamProtocol::new("/ipfs/bitswap/1.1.0"),
    StreamProtocol::new("/ipfs/bitswap/1.0.0"),
];

const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
const READ_BODY_TIMEOUT: Duration = Duration::from_secs(60);
const WRITER_IDLE: Duration = Duration::from_secs(30);
const WRITER_QUEUE: usize = 32;
const INBOUND_QUEUE: usize = 1024;
/// Inbound Bitswap streams waiting for the acceptor, from all peers (see [`crate::accept`]).
pub const QUEUE: usize = 1024;
/// The most Bitswap messages of one peer that we read and handle at once; messages on further streams wait,
/// unread (their bytes stay in the peer's send window), until one of these is handled.
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 4;
/// The most Bitswap streams one peer may have open to us at once, read or waiting; more are reset unread.
/// go-bitswap (kubo) answers on a new stream per message from several workers at once: a stream reset here
/// loses the blocks it carried, so waiting streams must be many more than kubo's 8 workers.
pub const MAX_OPEN_STREAMS_PER_PEER: usize = 32;

/// Misbehaviour for tests of what a fetching node does with hostile peers.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Serve blocks with one byte flipped.
    CorruptBlocks,
    /// Serve blocks padded to 3 MiB (over the 2 MiB block limit).
    OversizeBlocks,
    /// Ignore every want: no blocks, no `DontHave`.
    Withhold,
    /// Wait this long before each block.
    Slow(Duration),
    /// Lose the first message of wants, as if it had been written into a stream that died with its connection.
    LoseFirstWants,
}

/// What the reader tasks tell a running fetch.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A block that hashes to a CID this fetch wants.
    Block { peer: PeerId, cid: Cid, data: Bytes },
    /// The peer does not have the block.
    DontHave { peer: PeerId, cid: Cid },
    /// A block nobody wants (wrong bytes for a want, or a late duplicate).
    Unwanted { peer: PeerId, cid: Option<Cid> },
    /// The peer broke the protocol.
    Violation { peer: PeerId, reason: String },
    /// One of several connections to the peer closed (wants written on it may be lost).
    ConnectionLost { peer: PeerId },
    /// The peer is gone (stream or connection failed).
    PeerGone { peer: PeerId },
}

#[derive(Debug, Default)]
struct Router {
    next: u64,
    fetches: HashMap<u64, mpsc::Sender<Inbound>>,
    wants: HashMap<Cid, u64>,
    /// CIDs that were wanted and no longer are (received, or their fetch ended or was cancelled), newest last:
    /// a late duplicate of one is an honest peer answering an old want, not a lie.
    recent: HashSet<Cid>,
    recent_order: VecDeque<Cid>,
}

/// How many no-longer-wanted CIDs the router remembers.
const RECENT_WANTS: usize = 1 << 16;

impl Router {
    fn forget(&mut self, cid: Cid) {
        if self.recent.insert(cid) {
            self.recent_order.push_back(cid);
            if self.recent_order.len() > RECENT_WANTS
                && let Some(old) = self.recent_order.pop_front()
            {
                self.recent.remove(&old);
            }
        }
    }
}

/// Counters of what crossed the wire.
#[derive(Debug, Default)]
pub struct Counters {
    /// Block bytes we served.
    pub uploaded_bytes: AtomicU64,
    /// Blocks we served.
    pub uploaded_blocks: AtomicU64,
    /// Block bytes we received that a fetch wanted.
    pub downloaded_bytes: AtomicU64,
    /// Blocks or messages rejected.
    pub rejected: AtomicU64,
}

/// State shared by the reader and writer tasks and the fetches.
pub(crate) struct Shared {
    pub store: Arc<Blockstore>,
    control: Mutex<libp2p_stream::Control>,
    writers: Mutex<HashMap<PeerId, mpsc::Sender<Outgoing>>>,
    router: Mutex<Router>,
    /// What each peer wants of us.
    wantlists: Mutex<HashMap<PeerId, Wantlist>>,
    /// Serving tasks that may load or write at once.
    serve_slots: Arc<Semaphore>,
    /// Inbound Bitswap streams open per peer, and the gate of those read at once.
    inbound: Mutex<HashMap<PeerId, PeerStreams>>,
    /// The event loop, for bans.
    cmd: mpsc::Sender<Command>,
    /// Origin seeding (see [`seed`]), for a publisher.
    seeding: Option<Mutex<seed::Seeding>>,
    pub counters: Arc<Counters>,
    #[cfg(feature = "fault-injection")]
    pub fault: Option<Fault>,
    #[cfg(feature = "fault-injection")]
    lost_wants: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a task panicked while holding it; the maps stay usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(
        store: Arc<Blockstore>,
        control: libp2p_stream::Control,
        cmd: mpsc::Sender<Command>,
        seed_window: Option<Duration>,
        #[cfg(feature = "fault-injection")] fault: Option<Fault>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            store,
            control: Mutex::new(control),
            writers: Mutex::new(HashMap::new()),
            router: Mutex::new(Router::default()),
            wantlists: Mutex::new(HashMap::new()),
            serve_slots: Arc::new(Semaphore::new(MAX_CONCURRENT_SERVES)),
            inbound: Mutex::new(HashMap::new()),
            cmd,
            seeding: seed_window.map(|w| Mutex::new(seed::Seeding::new(w))),
            counters: Arc::new(Counters::default()),
            #[cfg(feature = "fault-injection")]
            fault,
            #[cfg(feature = "fault-injection")]
            lost_wants: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Register a fetch; its events arrive on the returned receiver.
    pub fn register(&self) -> (u64, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let mut r = lock(&self.router);
        r.next += 1;
        let id = r.next;
        r.fetches.insert(id, tx);
        (id, rx)
    }

    /// Forget a fetch and its wants.
    pub fn unregister(&self, id: u64) {
        let mut r = lock(&self.router);
        r.fetches.remove(&id);
        let ended: Vec<Cid> = r
            .wants
            .iter()
            .filter(|(_, f)| **f == id)
            .map(|(c, _)| *c)
            .collect();
        for c in ended {
            r.wants.remove(&c);
            r.forget(c);
        }
    }

    /// Route blocks for these CIDs to fetch `id`.
    pub fn want(&self, id: u64, cids: &[Cid]) {
        let mut r = lock(&self.router);
        for c in cids {
            r.wants.insert(*c, id);
        }
    }

    /// Stop routing this CID.
    pub fn unwant(&self, cid: &Cid) {
        let mut r = lock(&self.router);
        if r.wants.remove(cid).is_some() {
            r.forget(*cid);
        }
    }

    /// Origin seeding, for a publisher whose upload should not grow with the fleet ([`seed`]): true to refuse
    /// (DontHave) `peer`'s want of a block that a connected peer already has from us.
    pub(crate) fn defer_to_other_peer(&self, cid: &Cid, peer: PeerId, now: Instant) -> bool {
        let Some(seeding) = &self.seeding else {
            return false;
        };
        let writers = lock(&self.writers);
        lock(seeding).refuse(cid, peer, now, |p| writers.contains_key(p))
    }

    /// Whether `cid` was wanted by a fetch that has it or has ended.
    fn was_wanted(&self, cid: &Cid) -> bool {
        lock(&self.router).recent.contains(cid)
    }

    /// The fetch that wants `cid`, if any.
    fn wanted_by(&self, cid: &Cid) -> Option<mpsc::Sender<Inbound>> {
        let r = lock(&self.router);
        r.wants.get(cid).and_then(|id| r.fetches.get(id)).cloned()
    }

    /// Tell every running fetch.
    async fn broadcast(&self, event: impl Fn() -> Inbound) {
        let fetches: Vec<_> = lock(&self.router).fetches.values().cloned().collect();
        for tx in fetches {
            let _ = tx.send(event()).await;
        }
    }

    /// Tell every fetch that `peer` is gone.
    pub async fn peer_gone(&self, peer: PeerId) {
        // Its writer's stream died with the connection; a reconnecting peer gets a new one. Its wants died too
        // (Bitswap peers send their whole wantlist again on a new connection).
        lock(&self.writers).remove(&peer);
        lock(&self.wantlists).remove(&peer);
        self.broadcast(|| Inbound::PeerGone { peer }).await;
    }

    /// Retire `peer`'s outbound stream: the next message opens a new one (on a live connection).
    pub fn reset_writer(&self, peer: &PeerId) {
        lock(&self.writers).remove(peer);
    }

    /// One of several connections to `peer` closed: its outbound stream may have been on it.
    pub async fn connection_lost(&self, peer: PeerId) {
        self.reset_writer(&peer);
        self.broadcast(|| Inbound::ConnectionLost { peer }).await;
    }

    /// Queue a message for `peer`, opening a stream if needed. Waits while the peer's queue is full.
    pub async fn send(self: &Arc<Self>, peer: PeerId, msg: &Message) {
        self.queue(peer, msg, None).await;
    }

    /// Send a message to `peer` and wait until it is written: true when it was.
    pub async fn send_written(self: &Arc<Self>, peer: PeerId, msg: &Message) -> bool {
        let (tx, rx) = oneshot::channel();
        if !self.queue(peer, msg, Some(tx)).await {
            return false;
        }
        matches!(tokio::time::timeout(2 * WRITE_TIMEOUT, rx).await, Ok(Ok(())))
    }

    async fn queue(
        self: &Arc<Self>,
        peer: PeerId,
        msg: &Message,
        mut done: Option<oneshot::Sender<()>>,
    ) -> bool {
        let parts = msg.encode_parts();
        for _ in 0..2 {
            let tx = {
                let mut writers = lock(&self.writers);
                writers
                    .entry(peer)
                    .or_insert_with(|| {
                        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
                        tokio::spawn(writer(self.clone(), peer, rx));
                        tx
                    })
                    .clone()
            };
            let out = Outgoing {
                parts: parts.clone(),
                done: done.take(),
            };
            match tokio::time::timeout(WRITE_TIMEOUT, tx.send(out)).await {
                Ok(Ok(())) => return true,
                // The writer closed between lookup and send: retry once with a new one.
                Ok(Err(mpsc::error::SendError(out))) => {
                    done = out.done;
                    continue;
                }
                Err(_) => {
                    debug!(target: "firmchain::bitswap", %peer, "send queue stuck, dropping message");
                    return false;
                }
            }
        }
        false
    }

    /// Name, drop and ban a peer that broke the protocol.
    async fn violation(self: &Arc<Self>, peer: PeerId, reason: String) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        warn!(target: "firmchain::bitswap", %peer, %reason, "peer broke the protocol");
        lock(&self.wantlists).remove(&peer);
        // Fetches hear of it first, so they record a rejection rather than a peer that merely left.
        self.broadcast(|| Inbound::Violation {
            peer,
            reason: reason.clone(),
        })
        .await;
        if self.cmd.try_send(Command::Ban(peer, reason)).is_err() {
            warn!(target: "firmchain::bitswap", %peer, "cannot ban peer: the node is busy or stopped");
        }
    }

    /// Send without waiting (wants from a fetch must not block its loop).
    pub fn send_detached(self: &Arc<Self>, peer: PeerId, msg: Message) {
        let this = self.clone();
        tokio::spawn(async move { this.send(peer, &msg).await });
    }
}

/// A message for a writer, with who to tell once it is written.
struct Outgoing {
    parts: Vec<Bytes>,
    done: Option<oneshot::Sender<()>>,
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, parts: &[Bytes]) -> std::io::Result<()> {
    let mut len = Vec::with_capacity(5);
    firmchain_update::varint::encode(parts.iter().map(|p| p.len() as u64).sum(), &mut len);
    w.write_all(&len).await?;
    for p in parts {
        w.write_all(p).await?;
    }
    w.flush().await
}

/// Read one length-prefixed frame: `None` at a clean end of stream.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = 0u64;
    for i in 0..10 {
        let mut b = [0u8; 1];
        if r.read(&mut b).await? == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            break;
        }
        if i == 9 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "varint too long",
            ));
        }
    }
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the {max}-byte limit"),
        ));
    }
    // Grown as bytes arrive, not allocated from the claimed length: a peer that announces 4 MiB and sends
    // nothing costs nothing.
    let mut buf = Vec::with_capacity(len.min(64 * 1024));
    let read = tokio::time::timeout(READ_BODY_TIMEOUT, r.take(len as u64).read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "message body stalled"))??;
    if read < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(buf))
}

async fn open_stream(shared: &Shared, peer: PeerId) -> Option<libp2p::Stream> {
    let mut control = lock(&shared.control).clone();
    match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, PROTOCOLS[0].clone())).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            debug!(target: "firmchain::bitswap", %peer, error = %e, "cannot open a bitswap stream");
            None
        }
        Err(_) => {
            debug!(target: "firmchain::bitswap", %peer, "opening a bitswap stream timed out");
            None
        }
    }
}

/// Write queued messages to `peer` on one stream.
async fn writer(shared: Arc<Shared>, peer: PeerId, mut rx: mpsc::Receiver<Outgoing>) {
    let Some(mut stream) = open_stream(&shared, peer).await else {
        return close_writer(&shared, peer, rx).await;
    };
    let mut reopened = false;
    loop {
        let msg = match tokio::time::timeout(WRITER_IDLE, rx.recv()).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(_) => {
                // Idle: retire this writer, but first write whatever raced in.
                lock(&shared.writers).remove(&peer);
                rx.close();
                while let Ok(m) = rx.try_recv() {
                    if write_frame(&mut stream, &m.parts).await.is_err() {
                        break;
                    }
                    if let Some(done) = m.done {
                        let _ = done.send(());
                    }
                }
                let _ = stream.close().await;
                return;
            }
        };
        let mut written = tokio::time::timeout(WRITE_TIMEOUT, write_frame(&mut stream, &msg.parts)).await;
        if !matches!(written, Ok(Ok(()))) && !reopened {
            // The stream may have died with its connection while another connection to the peer lives (two peers
            // that dial each other at once hold two): once, write on a new stream instead of giving the peer up.
            reopened = true;
            debug!(target: "firmchain::bitswap", %peer, "bitswap stream write failed; opening a new stream");
            if let Some(s) = open_stream(&shared, peer).await {
                stream = s;
                written = tokio::time::timeout(WRITE_TIMEOUT, write_frame(&mut stream, &msg.parts)).await;
            }
        }
        if !matches!(written, Ok(Ok(()))) {
            debug!(target: "firmchain::bitswap", %peer, "bitswap stream write failed");
            return close_writer(&shared, peer, rx).await;
        }
        if let Some(done) = msg.done {
            let _ = done.send(());
        }
    }
    let _ = stream.close().await;
}

async fn close_writer(shared: &Arc<Shared>, peer: PeerId, mut rx: mpsc::Receiver<Outgoing>) {
    lock(&shared.writers).remove(&peer);
    rx.close();
    shared.peer_gone(peer).await;
}

/// Accept the inbound Bitswap streams that [`crate::accept::Behaviour`] queues, until the swarm stops: each is
/// read once the peer has a read slot, or reset past [`MAX_OPEN_STREAMS_PER_PEER`].
pub(crate) fn spawn_acceptor(shared: &Arc<Shared>, mut incoming: crate::accept::Incoming) {
    let shared = shared.clone();
    tokio::spawn(async move {
        while let Some(crate::accept::Accepted { peer, stream, .. }) = incoming.recv().await {
            let Some((slot, gate)) = InboundSlot::take(&shared, peer) else {
                debug!(target: "firmchain::bitswap", %peer, limit = MAX_OPEN_STREAMS_PER_PEER,
                    "too many bitswap streams from one peer; resetting one");
                drop(stream);
                continue;
            };
            tokio::spawn(read_stream(slot.shared.clone(), peer, stream, slot, gate));
        }
    });
}

/// The inbound Bitswap streams of one peer: how many are open, and the gate of those read at once.
struct PeerStreams {
    open: usize,
    gate: Arc<Semaphore>,
}

/// One of a peer's [`MAX_OPEN_STREAMS_PER_PEER`] inbound streams, given back when dropped.
struct InboundSlot {
    shared: Arc<Shared>,
    peer: PeerId,
}

impl InboundSlot {
    /// A slot for one more stream of `peer` and the gate it must pass to be read, or `None` past the limit.
    fn take(shared: &Arc<Shared>, peer: PeerId) -> Option<(InboundSlot, Arc<Semaphore>)> {
        let mut open = lock(&shared.inbound);
        let s = open.entry(peer).or_insert_with(|| PeerStreams {
            open: 0,
            gate: Arc::new(Semaphore::new(MAX_INBOUND_STREAMS_PER_PEER)),
        });
        if s.open >= MAX_OPEN_STREAMS_PER_PEER {
            return None;
        }
        s.open += 1;
        let slot = InboundSlot {
            shared: shared.clone(),
            peer,
        };
        Some((slot, s.gate.clone()))
    }
}

impl Drop for InboundSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.shared.inbound);
        if let Some(s) = open.get_mut(&self.peer) {
            s.open -= 1;
            if s.open == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// Read `stream`'s messages until it ends. A message is read and handled only under one of the peer's
/// [`MAX_INBOUND_STREAMS_PER_PEER`] read slots (`gate`), taken once its first byte arrived: an idle stream
/// (go-bitswap keeps its sender's stream open between messages) holds none, so it cannot starve the others, and
/// a stream is never reset for arriving while others are read.
async fn read_stream(
    shared: Arc<Shared>,
    peer: PeerId,
    stream: libp2p::Stream,
    _slot: InboundSlot,
    gate: Arc<Semaphore>,
) {
    let mut r = futures::io::BufReader::with_capacity(256 * 1024, stream);
    loop {
        match r.fill_buf().await {
            Ok([]) => return,
            Ok(_) => {}
            Err(e) => {
                debug!(target: "firmchain::bitswap", %peer, error = %e, "bitswap stream closed");
                return;
            }
        }
        let Ok(_reading) = gate.clone().acquire_owned().await else {
            return;
        };
        let frame = match read_frame(&mut r, MAX_MESSAGE_SIZE).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return shared.violation(peer, e.to_string()).await;
            }
            Err(e) => {
                debug!(target: "firmchain::bitswap", %peer, error = %e, "bitswap stream closed");
                return;
            }
        };
        let frame = Bytes::from(frame);
        let msg = match Message::decode(&frame) {
            Ok(m) => m,
            Err(e) => {
                return shared
                    .violation(peer, format!("malformed bitswap message: {e}"))
                    .await;
            }
        };
        drop(frame);
        if !msg.blocks.is_empty() || !msg.presences.is_empty() {
            receive(&shared, peer, msg.blocks, msg.presences).await;
        }
        #[cfg(feature = "fault-injection")]
        if shared.fault == Some(Fault::LoseFirstWants)
            && !msg.wantlist.is_empty()
            && !shared.lost_wants.swap(true, Ordering::Relaxed)
        {
            continue;
        }
        if (!msg.wantlist.is_empty() || msg.full)
            && let Err(v) = serve::on_wants(&shared, peer, &msg.wantlist, msg.full)
        {
            return shared.violation(peer, v.to_string()).await;
        }
    }
}

async fn receive(
    shared: &Arc<Shared>,
    peer: PeerId,
    blocks: Vec<WireBlock>,
    presences: Vec<(Cid, Presence)>,
) {
    for b in blocks {
        let data = b.data;
        let prefix = b.prefix;
        // Hash off the async threads: 2 MiB of sha2 is a few milliseconds.
        let computed = tokio::task::spawn_blocking(move || (prefix.cid_of(&data), data)).await;
        let Ok((cid, data)) = computed else { continue };
        let cid = cid.ok();
        match cid.and_then(|c| Some((c, shared.wanted_by(&c)?))) {
            Some((cid, tx)) => {
                let _ = tx.send(Inbound::Block { peer, cid, data }).await;
            }
            // A late answer to a want that ended: harmless (the bytes are what the CID says).
            None if cid.is_some_and(|c| shared.was_wanted(&c)) => {
                tracing::debug!(%peer, "late duplicate block ignored");
            }
            // Bytes nobody asked for: every fetch decides whether this peer lied to it.
            None => shared.broadcast(|| Inbound::Unwanted { peer, cid }).await,
        }
    }
    for (cid, presence) in presences {
        if presence == Presence::DontHave
            && let Some(tx) = shared.wanted_by(&cid)
        {
            let _ = tx.send(Inbound::DontHave { peer, cid }).await;
        }
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) fn inject(fault: Fault, blocks: Vec<WireBlock>) -> Vec<WireBlock> {
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        let mut data = b.data.to_vec();
        match fault {
            Fault::CorruptBlocks => {
                if let Some(x) = data.last_mut() {
                    *x ^= 0x01;
                } else {
                    data.push(0);
                }
            }
            Fault::OversizeBlocks => data.resize(3 * 1024 * 1024, 0xAA),
            Fault::Slow(_) | Fault::Withhold | Fault::LoseFirstWants => {}
        }
        out.push(WireBlock {
            prefix: b.prefix,
            data: data.into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u32) -> Cid {
        firmchain_update::dag::cid_of(firmchain_update::dag::RAW, &i.to_le_bytes())
    }

    #[test]
    fn the_router_remembers_ended_wants_up_to_a_bound() {
        let mut r = Router::default();
        r.wants.insert(cid(1), 7);
        r.forget(cid(1));
        assert!(r.recent.contains(&cid(1)));
        // Forgetting twice keeps one entry.
        r.forget(cid(1));
        assert_eq!(r.recent_order.len(), 1);
        for i in 2..(RECENT_WANTS as u32 + 2) {
            r.forget(cid(i));
        }
        assert_eq!(r.recent.len(), RECENT_WANTS);
        assert!(!r.recent.contains(&cid(1)), "the oldest is dropped first");
        assert!(r.recent.contains(&cid(RECENT_WANTS as u32 + 1)));
    }
}
