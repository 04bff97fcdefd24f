//! Fetching a DAG: providers from Kademlia and connected peers, several blocks in flight from several peers,
//! every block verified against its CID (the reader hashed it) before it is stored, links followed only from
//! verified blocks (so nothing outside the requested DAG is ever asked for), sizes capped, resumable.

pub mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use firmchain_update::dag::{self, pb::PbNode};
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::bitswap::proto::{Entry, Message, WantType};
use crate::bitswap::{Inbound, Shared};
use crate::blockstore::StoreError;
use crate::command::Command;
pub use schedule::ScheduleConfig;
use schedule::{Judged, Received, Schedule};

/// Bounds on what a DAG may make us download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// Total bytes of all blocks.
    pub max_bytes: u64,
    /// Number of blocks.
    pub max_blocks: u64,
    /// Depth of the DAG (the root is depth 0).
    pub max_depth: usize,
}

impl FetchLimits {
    /// Limits for a file of `size` bytes: its bytes plus the dag-pb nodes of a balanced DAG (well under 1%).
    pub fn for_file_size(size: u64) -> FetchLimits {
        FetchLimits {
            max_bytes: size + size / 128 + 64 * 1024,
            max_blocks: size / 1024 + 64,
            max_depth: 8,
        }
    }
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            max_bytes: 1 << 30,
            max_blocks: 1 << 20,
            max_depth: 16,
        }
    }
}

/// How to fetch.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// What the DAG may cost.
    pub limits: FetchLimits,
    /// Peers to ask besides providers and connected peers.
    pub peers: Vec<PeerId>,
    /// Windows and timeouts.
    pub schedule: ScheduleConfig,
    /// Give up when no peer can be asked for a missing block for this long.
    pub stall_timeout: Duration,
    /// Fetch only this entry of a UnixFS directory root (and the root itself), e.g. `patch` of a release
    /// bundle `{full, patch}`.
    pub entry: Option<String>,
    /// Announce the root on the DHT as soon as the first block arrives, so that other peers fetching it at the
    /// same time find this one and take blocks from it (it answers `DontHave` for those it lacks).
    pub announce: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            limits: FetchLimits::default(),
            peers: Vec::new(),
            schedule: ScheduleConfig::default(),
            stall_timeout: Duration::from_secs(120),
            entry: None,
            announce: false,
        }
    }
}

/// Progress of a running fetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchProgress {
    /// Blocks held so far (fetched or already in the store).
    pub blocks: u64,
    /// Blocks known so far (grows as links are read).
    pub known_blocks: u64,
    /// Bytes held so far.
    pub bytes: u64,
    /// Peers in play.
    pub peers: usize,
}

/// A peer that was dropped from a fetch, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The peer.
    pub peer: PeerId,
    /// The blocks it had been asked for when it was dropped.
    pub asked: Vec<Cid>,
    /// What it did.
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dropped peer {}: {}", self.peer, self.reason)?;
        match self.asked.as_slice() {
            [] => Ok(()),
            [one] => write!(f, " (it was asked for {one})"),
            [first, rest @ ..] => write!(f, " (it was asked for {first} and {} more)", rest.len()),
        }
    }
}

/// What one peer delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    /// The peer.
    pub peer: PeerId,
    /// Blocks it delivered.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The outcome of a completed fetch.
#[derive(Clone, Debug)]
pub struct FetchSummary {
    /// The root.
    pub root: Cid,
    /// Blocks in the DAG.
    pub blocks: u64,
    /// Bytes of all blocks.
    pub bytes: u64,
    /// Blocks that were already in the store.
    pub from_store: u64,
    /// Who delivered what, most first.
    pub peers: Vec<Contribution>,
    /// Peers dropped for misbehaving.
    pub rejected: Vec<Rejection>,
    /// The CID of the entry fetched, with [`FetchOptions::entry`].
    pub entry: Option<Cid>,
    /// Progress timeouts: how often a peer holding wants went silent for a timeout (and was asked again,
    /// struck or dropped). An honest, connected peer causes none.
    pub timeouts: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    NoProviders(Box<NoProviders>),
    #[error("DAG {root} is larger than the limit of {limit} bytes")]
    TooLarge { root: Cid, limit: u64 },
    #[error("DAG {root} has more than {limit} blocks")]
    TooManyBlocks { root: Cid, limit: u64 },
    #[error("block {cid} is deeper than {limit} levels")]
    TooDeep { cid: Cid, limit: usize },
    #[error("block {cid} has codec 0x{codec:x}; only dag-pb and raw DAGs are fetched")]
    Codec { cid: Cid, codec: u64 },
    #[error("block {cid} matches its CID but is not valid dag-pb: {reason}")]
    NotDagPb { cid: Cid, reason: String },
    #[error("directory {root} has no entry named {name:?}")]
    NoEntry { root: Cid, name: String },
    #[error("root {cid} uses unsupported multihash 0x{code:x}")]
    UnsupportedHash { cid: Cid, code: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the p2p node stopped")]
    Stopped,
}

/// No peer in play can give a block the fetch needs.
#[derive(Debug, thiserror::Error)]
#[error("no peer can provide block {cid} of {root} (asked {asked} peers, waited {waited:?}){}", rejected_suffix(.rejected))]
pub struct NoProviders {
    /// The DAG.
    pub root: Cid,
    /// The block.
    pub cid: Cid,
    /// Peers asked.
    pub asked: usize,
    /// How long nobody could be asked.
    pub waited: Duration,
    /// Peers dropped on the way.
    pub rejected: Vec<Rejection>,
}

fn rejected_suffix(r: &[Rejection]) -> String {
    if r.is_empty() {
        return String::new();
    }
    let list: Vec<String> = r.iter().map(|r| r.to_string()).collect();
    format!("; {}", list.join("; "))
}

struct Unregister<'a>(&'a Shared, u64);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.unregister(self.1);
    }
}

const STORE_BATCH_BYTES: usize = 4 * 1024 * 1024;
const REQUERY_EVERY: Duration = Duration::from_secs(5);
/// How long a block that every peer refused waits before they are asked again.
const RETRY_REFUSED: Duration = Duration::from_millis(250);

struct Fetch<'a> {
    shared: &'a Arc<Shared>,
    cmd: &'a mpsc::Sender<Command>,
    id: u64,
    root: Cid,
    opts: FetchOptions,
    sched: Schedule,
    depth: HashMap<Cid, usize>,
    bytes: u64,
    from_store: u64,
    rejected: Vec<Rejection>,
    entry: Option<Cid>,
    timeouts: u64,
    /// Whether the root was announced (with [`FetchOptions::announce`]).
    announced: bool,
    store_tx: Option<mpsc::Sender<(Cid, Option<Bytes>)>>,
    progress: watch::Sender<FetchProgress>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    cmd: mpsc::Sender<Command>,
    root: Cid,
    opts: FetchOptions,
    progress: watch::Sender<FetchProgress>,
) -> Result<FetchSummary, FetchError> {
    let started = Instant::now();
    let code = root.hash().code();
    if dag::multihash(code, b"").is_none() || code == dag::IDENTITY {
        return Err(FetchError::UnsupportedHash { cid: root, code });
    }
    check_codec(&root)?;
    let (id, mut inbound) = shared.register();
    let _unregister = Unregister(&shared, id);
    let (store_tx, store_rx) = mpsc::channel(16);
    let writer = tokio::spawn(store_writer(shared.clone(), root, store_rx));
    let mut f = Fetch {
        shared: &shared,
        cmd: &cmd,
        id,
        root,
        sched: Schedule::new(opts.schedule),
        opts,
        depth: HashMap::from([(root, 0)]),
        bytes: 0,
        from_store: 0,
        rejected: Vec::new(),
        entry: None,
        timeouts: 0,
        announced: false,
        store_tx: Some(store_tx),
        progress,
    };
    let result = f.drive(&mut inbound).await;
    f.cancel_all();
    // Flush the writer: its result decides whether the blocks are really ours.
    f.store_tx = None;
    let stored = writer.await.map_err(|_| FetchError::Stopped)?;
    result?;
    stored?;
    if let (Some(name), None) = (&f.opts.entry, f.entry) {
        return Err(FetchError::NoEntry {
            root,
            name: name.clone(),
        });
    }
    let mut peers: Vec<Contribution> = f
        .sched
        .records()
        .iter()
        .filter(|(_, r)| r.blocks > 0)
        .map(|(p, r)| Contribution {
            peer: *p,
            blocks: r.blocks,
            bytes: r.bytes,
        })
        .collect();
    peers.sort_by_key(|c| std::cmp::Reverse(c.bytes));
    let (blocks, _) = f.sched.counts();
    Ok(FetchSummary {
        root,
        blocks: blocks as u64,
        bytes: f.bytes,
        from_store: f.from_store,
        peers,
        rejected: f.rejected,
        entry: f.entry,
        timeouts: f.timeouts,
        elapsed: started.elapsed(),
    })
}

fn check_codec(cid: &Cid) -> Result<(), FetchError> {
    match cid.codec() {
        dag::RAW | dag::DAG_PB => Ok(()),
        codec => Err(FetchError::Codec { cid: *cid, codec }),
    }
}

async fn store_writer(
    shared: Arc<Shared>,
    root: Cid,
    mut rx: mpsc::Receiver<(Cid, Option<Bytes>)>,
) -> Result<(), StoreError> {
    while let Some(first) = rx.recv().await {
        let (mut blocks, mut held) = (Vec::new(), Vec::new());
        let mut size = 0;
        let mut next = Some(first);
        while let Some((cid, data)) = next.take() {
            match data {
                Some(d) => {
                    size += d.len();
                    blocks.push((cid, d));
                }
                None => held.push(cid),
            }
            if size < STORE_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        let store = shared.store.clone();
        tokio::task::spawn_blocking(move || {
            if !blocks.is_empty() {
                store.put_batch_with(Some(&root), &blocks, false)?;
            }
            if !held.is_empty() {
                store.pin_existing(&root, &held)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| StoreError::Db(e.to_string()))??;
    }
    // One fsync for the whole fetch: until here a crash loses blocks (fetched again), never consistency.
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || store.sync())
        .await
        .map_err(|e| StoreError::Db(e.to_string()))?
}

impl Fetch<'_> {
    async fn drive(&mut self, inbound: &mut mpsc::Receiver<Inbound>) -> Result<(), FetchError> {
        self.resolve(vec![self.root]).await?;
        if self.sched.is_complete() {
            return Ok(());
        }
        let (prov_tx, mut providers) = mpsc::channel(64);
        let _ = self
            .cmd
            .send(Command::FindProviders(self.root, prov_tx.clone()))
            .await;
        self.add_connected().await;
        let mut stalled_since: Option<Instant> = None;
        let mut held_at_stall = 0;
        let mut last_query = Instant::now();
        let mut last_retry = Instant::now();
        loop {
            if self.sched.is_complete() {
                return Ok(());
            }
            let now = Instant::now();
            for (peer, cids) in self.sched.assign(now) {
                self.shared.want(self.id, &cids);
                debug!(target: "firmchain::fetch", %peer, wants = cids.len(), "asking");
                self.ask(peer, &cids);
            }
            self.publish_progress();
            // Stalled: a block nobody in play can give us (or nobody in play at all).
            let stuck = self.sched.stuck().or_else(|| {
                self.sched
                    .peers()
                    .is_empty()
                    .then(|| self.sched.first_missing())
                    .flatten()
            });
            match (stuck, stalled_since) {
                (Some(_), None) => {
                    // Nobody left to ask: give slow peers another chance, and look for providers again.
                    for peer in self.sched.readmit_slow() {
                        debug!(target: "firmchain::fetch", %peer, "asking a slow peer again");
                    }
                    stalled_since = Some(now);
                    held_at_stall = self.sched.counts().0;
                    last_query = now;
                    last_retry = now;
                    let _ = self
                        .cmd
                        .send(Command::FindProviders(self.root, prov_tx.clone()))
                        .await;
                    self.add_connected().await;
                    continue;
                }
                // Progress (not merely peers that may be asked again) ends a stall.
                (None, Some(_)) if self.sched.counts().0 > held_at_stall => stalled_since = None,
                _ => {}
            }
            // Every peer refused: ask again shortly, they may have fetched the block since.
            if stuck.is_some() && now.duration_since(last_retry) >= RETRY_REFUSED {
                last_retry = now;
                if self.sched.forgive_refusals() > 0 {
                    continue;
                }
            }
            if let (Some(cid), Some(since)) = (stuck, stalled_since) {
                if now.duration_since(since) >= self.opts.stall_timeout {
                    return Err(FetchError::NoProviders(Box::new(NoProviders {
                        root: self.root,
                        cid,
                        asked: self.sched.records().len() + self.sched.dropped().len(),
                        waited: now.duration_since(since),
                        rejected: self.rejected.clone(),
                    })));
                }
                if now.duration_since(last_query) >= REQUERY_EVERY {
                    last_query = now;
                    let _ = self
                        .cmd
                        .send(Command::FindProviders(self.root, prov_tx.clone()))
                        .await;
                    self.add_connected().await;
                }
            }
            let wake = [
                self.sched.next_deadline(),
                stalled_since.map(|s| (s + self.opts.stall_timeout).min(now + REQUERY_EVERY)),
                stuck.map(|_| last_retry + RETRY_REFUSED),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + REQUERY_EVERY);
            tokio::select! {
                ev = inbound.recv() => match ev {
                    Some(ev) => self.on_inbound(ev).await?,
                    None => return Err(FetchError::Stopped),
                },
                Some(peer) = providers.recv() => {
                    if self.sched.add_peer(peer) {
                        debug!(target: "firmchain::fetch", %peer, "provider found");
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    for (peer, held, judged) in self.sched.expire(Instant::now()) {
                        self.timeouts += 1;
                        if judged == Judged::AskedAgain {
                            // Ask again, on a new stream: the first copy may have been written into a stream
                            // that died with its connection.
                            debug!(target: "firmchain::fetch", %peer, wants = held.len(), "no answer: asking again");
                            self.shared.reset_writer(&peer);
                            self.ask(peer, &held);
                            continue;
                        }
                        self.cancel(peer, &held);
                        if judged == Judged::Dropped {
                            let reason = self.sched.dropped().get(&peer).cloned().unwrap_or_default();
                            // Slow is not hostile: dropped from this fetch, not banned.
                            self.reject(peer, held, reason, false).await;
                        }
                    }
                }
            }
        }
    }

    /// Peers to ask: the ones named in the options (again, if they dropped out without misbehaving) and every
    /// connected peer.
    async fn add_connected(&mut self) {
        for p in self.opts.peers.clone() {
            self.sched.add_peer(p);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.cmd.send(Command::ConnectedPeers(tx)).await.is_ok()
            && let Ok(peers) = rx.await
        {
            for p in peers {
                self.sched.add_peer(p);
            }
        }
    }

    fn publish_progress(&self) {
        let (done, known) = self.sched.counts();
        let p = FetchProgress {
            blocks: done as u64,
            known_blocks: known as u64,
            bytes: self.bytes,
            peers: self.sched.peers().len(),
        };
        self.progress.send_if_modified(|old| {
            let changed = *old != p;
            *old = p;
            changed
        });
    }

    async fn on_inbound(&mut self, ev: Inbound) -> Result<(), FetchError> {
        let now = Instant::now();
        match ev {
            Inbound::Block { peer, cid, data } => {
                let (kind, others) = self.sched.received(peer, cid, data.len(), now);
                if kind != Received::Wanted {
                    return Ok(());
                }
                self.shared.unwant(&cid);
                for other in others {
                    self.cancel(other, &[cid]);
                }
                self.shared
                    .counters
                    .downloaded_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                self.accept(cid, data).await?;
            }
            Inbound::DontHave { peer, cid } => self.sched.dont_have(peer, cid, now),
            Inbound::Unwanted { peer, cid } => {
                if cid.is_some_and(|c| self.sched.is_known(&c)) || !self.sched.peers().contains(&peer) {
                    return Ok(());
                }
                let asked = self.sched.outstanding(&peer);
                if asked.is_empty() {
                    return Ok(());
                }
                let reason = match cid {
                    Some(c) => format!(
                        "sent a block that hashes to {c}, which is none of the {} blocks asked of it",
                        asked.len()
                    ),
                    None => "sent a block with an unsupported CID prefix".to_string(),
                };
                self.sched.drop_peer(peer, Some(reason.clone()));
                self.reject(peer, asked, reason, true).await;
            }
            Inbound::Violation { peer, reason } => {
                if self.sched.peers().contains(&peer) {
                    let asked = self.sched.drop_peer(peer, Some(reason.clone()));
                    self.reject(peer, asked, reason, true).await;
                }
            }
            Inbound::ConnectionLost { peer } => {
                // One of several connections closed: wants written on it may be lost. Ask again.
                let held = self.sched.outstanding(&peer);
                if !held.is_empty() {
                    debug!(target: "firmchain::fetch", %peer, wants = held.len(), "a connection closed: asking again");
                    self.ask(peer, &held);
                }
            }
            Inbound::PeerGone { peer } => {
                if self.sched.peers().contains(&peer) {
                    debug!(target: "firmchain::fetch", %peer, "peer gone");
                    self.sched.drop_peer(peer, None);
                }
            }
        }
        Ok(())
    }

    /// Record a dropped peer; `hostile` ones (wrong bytes, broken protocol) are also banned from the node.
    async fn reject(&mut self, peer: PeerId, asked: Vec<Cid>, reason: String, hostile: bool) {
        self.cancel(peer, &asked);
        let r = Rejection { peer, asked, reason };
        warn!(target: "firmchain::fetch", root = %self.root, "{r}");
        self.shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
        if hostile {
            let _ = self.cmd.send(Command::Ban(peer, r.reason.clone())).await;
        }
        self.rejected.push(r);
    }

    /// Send want-blocks for `cids` to `peer` (asking again is harmless: the server merges repeated wants).
    fn ask(&self, peer: PeerId, cids: &[Cid]) {
        let msg = Message {
            wantlist: cids
                .iter()
                .map(|c| Entry {
                    cid: *c,
                    priority: 1,
                    cancel: false,
                    want: WantType::Block,
                    send_dont_have: true,
                })
                .collect(),
            ..Message::default()
        };
        self.shared.send_detached(peer, msg);
    }

    fn cancel(&self, peer: PeerId, cids: &[Cid]) {
        if cids.is_empty() {
            return;
        }
        let msg = Message {
            wantlist: cids
                .iter()
                .map(|c| Entry {
                    cid: *c,
                    priority: 0,
                    cancel: true,
                    want: WantType::Block,
                    send_dont_have: false,
                })
                .collect(),
            ..Message::default()
        };
        self.shared.send_detached(peer, msg);
    }

    fn cancel_all(&self) {
        for peer in self.sched.peers() {
            let held = self.sched.outstanding(peer);
            self.cancel(*peer, &held);
        }
    }

    /// A verified block: count it against the limits, follow its links, queue it for the store.
    async fn accept(&mut self, cid: Cid, data: Bytes) -> Result<(), FetchError> {
        self.bytes += data.len() as u64;
        if self.bytes > self.opts.limits.max_bytes {
            return Err(FetchError::TooLarge {
                root: self.root,
                limit: self.opts.limits.max_bytes,
            });
        }
        let links = self.links(&cid, &data)?;
        if self.opts.announce && !self.announced {
            self.announced = true;
            // The reply (the announcement done) is not waited for.
            let (tx, _) = tokio::sync::oneshot::channel();
            let _ = self.cmd.send(Command::Provide(self.root, tx)).await;
        }
        if let Some(tx) = &self.store_tx {
            tx.send((cid, Some(data)))
                .await
                .map_err(|_| FetchError::Stopped)?;
        }
        if !links.is_empty() {
            self.resolve(links).await?;
        }
        Ok(())
    }

    fn links(&mut self, cid: &Cid, data: &[u8]) -> Result<Vec<Cid>, FetchError> {
        if cid.codec() != dag::DAG_PB {
            return Ok(Vec::new());
        }
        let node = PbNode::decode(data).map_err(|e| FetchError::NotDagPb {
            cid: *cid,
            reason: e.to_string(),
        })?;
        let depth = self.depth.get(cid).copied().unwrap_or(0) + 1;
        let mut links = node.links;
        if *cid == self.root
            && let Some(name) = &self.opts.entry
        {
            links.retain(|l| l.name.as_deref() == Some(name.as_str()));
            let Some(entry) = links.first() else {
                return Err(FetchError::NoEntry {
                    root: self.root,
                    name: name.clone(),
                });
            };
            self.entry = Some(entry.cid);
            links.truncate(1);
        }
        let mut out = Vec::with_capacity(links.len());
        for link in links {
            check_codec(&link.cid)?;
            if depth > self.opts.limits.max_depth {
                return Err(FetchError::TooDeep {
                    cid: link.cid,
                    limit: self.opts.limits.max_depth,
                });
            }
            if !self.sched.is_known(&link.cid) && !self.depth.contains_key(&link.cid) {
                self.depth.insert(link.cid, depth);
                out.push(link.cid);
            }
        }
        Ok(out)
    }

    /// Newly discovered blocks: take what the store already holds (a resumed fetch), queue the rest.
    async fn resolve(&mut self, mut queue: Vec<Cid>) -> Result<(), FetchError> {
        while !queue.is_empty() {
            let total = self.sched.counts().1 as u64 + queue.len() as u64;
            if total > self.opts.limits.max_blocks {
                return Err(FetchError::TooManyBlocks {
                    root: self.root,
                    limit: self.opts.limits.max_blocks,
                });
            }
            let batch = std::mem::take(&mut queue);
            let store = self.shared.store.clone();
            let lookup = batch.clone();
            let held = tokio::task::spawn_blocking(move || store.get_many(&lookup))
                .await
                .map_err(|_| FetchError::Stopped)??;
            for (cid, data) in batch.into_iter().zip(held) {
                match data {
                    Some(data) => {
                        self.sched.mark_held(cid);
                        self.from_store += 1;
                        self.bytes += data.len() as u64;
                        if self.bytes > self.opts.limits.max_bytes {
                            return Err(FetchError::TooLarge {
                                root: self.root,
                                limit: self.opts.limits.max_bytes,
                            });
                        }
                        queue.extend(self.links(&cid, &data)?);
                        // Re-put pins the held block under this root; the store skips the data.
                        if let Some(tx) = &self.store_tx {
                            tx.send((cid, None)).await.map_err(|_| FetchError::Stopped)?;
                        }
                    }
                    None => self.sched.push(cid),
                }
            }
        }
        if self.from_store > 0 && self.sched.counts().0 as u64 == self.from_store {
            info!(target: "firmchain::fetch", root = %self.root, blocks = self.from_store, "resumed from the store");
        }
        Ok(())
    }
}
