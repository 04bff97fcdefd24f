//! The libp2p node: one event-loop task owns the `Swarm`; a cloneable [`P2p`] handle sends it commands over a
//! bounded channel and gets `oneshot` replies.
//!
//! - `identity`: the key on disk, peer ids in addresses;
//! - `swarm`: transports, behaviours and their limits;
//! - `event_loop`: the task that owns the `Swarm`;
//! - here: the configuration and the handle.

mod event_loop;
mod identity;
mod ip_limit;
pub mod providers;
mod swarm;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::bitswap::{self, Counters, Shared};
use crate::blockstore::Blockstore;
use crate::command::{COMMAND_QUEUE, Command, P2pError};
use crate::fetch::{self, FetchError, FetchOptions, FetchProgress, FetchSummary};
use event_loop::EventLoop;
pub use identity::{load_or_create_identity, peer_id_of, with_peer_id};
use swarm::{QUERY_TIMEOUT, build_swarm, provide};

const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How the node networks.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// Addresses to listen on (TCP and QUIC).
    pub listen: Vec<Multiaddr>,
    /// Peers to join the DHT through, with `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network by mDNS.
    pub mdns: bool,
    /// Most connections in all.
    pub max_connections: u32,
    /// Most connections to one peer.
    pub max_connections_per_peer: u32,
    /// Connections kept for the node's own dials (providers, bootstrap peers): inbound ones may take at most
    /// `max_connections - reserved_outbound`, so a flood of inbound connections cannot lock the node out.
    pub reserved_outbound: u32,
    /// Most inbound connections from one IP address.
    pub max_connections_per_ip: u32,
    /// Apply `max_connections_per_ip` to loopback addresses too (off: fleets on one host connect over loopback).
    pub limit_loopback: bool,
    /// Close connections idle this long.
    pub idle_timeout: Duration,
    /// Re-announce provided roots this often.
    pub reprovide_interval: Duration,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Defaults for fetches.
    pub fetch: FetchOptions,
    /// Origin seeding (publishers, [`bitswap::seed`]): a block sent to one peer is refused to others while
    /// that peer is connected, each for up to this long from its first refused want, so devices fetch it from
    /// each other and the publisher's upload stays flat as the fleet grows. `None` (the default) serves every
    /// want.
    pub seed_window: Option<Duration>,
    /// Misbehave on purpose (tests of hostile peers).
    #[cfg(feature = "fault-injection")]
    pub fault: Option<bitswap::Fault>,
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
                "/ip4/0.0.0.0/udp/4001/quic-v1"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            bootstrap: Vec::new(),
            mdns: false,
            max_connections: 256,
            max_connections_per_peer: 4,
            reserved_outbound: 32,
            max_connections_per_ip: 16,
            limit_loopback: false,
            idle_timeout: Duration::from_secs(120),
            reprovide_interval: Duration::from_secs(12 * 3600),
            ban_duration: Duration::from_secs(600),
            fetch: FetchOptions::default(),
            seed_window: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }
}

impl P2pConfig {
    /// Listen on an ephemeral TCP port of 127.0.0.1 only (tests, one-shot CLI commands).
    pub fn loopback() -> P2pConfig {
        P2pConfig {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            ..P2pConfig::default()
        }
    }
}

/// A handle on the running node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct P2p {
    peer_id: PeerId,
    cmd: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    fetch_defaults: FetchOptions,
    proofs: crate::proofs::Proofs,
}

/// A fetch in progress.
#[derive(Debug)]
pub struct Fetching {
    /// Progress, updated as blocks arrive.
    pub progress: watch::Receiver<FetchProgress>,
    task: Option<tokio::task::JoinHandle<Result<FetchSummary, FetchError>>>,
}

impl Fetching {
    /// Wait for the fetch to end.
    pub async fn finish(mut self) -> Result<FetchSummary, FetchError> {
        match self.task.as_mut() {
            Some(task) => {
                let r = task.await.map_err(|_| FetchError::Stopped)?;
                self.task = None;
                r
            }
            None => Err(FetchError::Stopped),
        }
    }
}

/// Dropping a fetch stops it (its wants are withdrawn; what it stored stays for a later resume).
impl Drop for Fetching {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl P2p {
    /// Start a node with `key` over `store`: listen, join the DHT through the bootstrap peers, announce every
    /// pinned root, and serve blocks. Returns once every listener is up.
    pub async fn start(
        config: P2pConfig,
        key: libp2p::identity::Keypair,
        store: Arc<Blockstore>,
    ) -> Result<(P2p, tokio::task::JoinHandle<()>), P2pError> {
        Self::start_with_metrics(config, key, store, &mut libp2p::metrics::Registry::default()).await
    }

    /// [`P2p::start`], with libp2p's own metrics (`libp2p_*`: swarm, identify, Kademlia, ping, bandwidth)
    /// registered in `registry`.
    pub async fn start_with_metrics(
        config: P2pConfig,
        key: libp2p::identity::Keypair,
        store: Arc<Blockstore>,
        registry: &mut libp2p::metrics::Registry,
    ) -> Result<(P2p, tokio::task::JoinHandle<()>), P2pError> {
        let peer_id = key.public().to_peer_id();
        let (mut swarm, inbound) = build_swarm(&config, key, registry)?;
        let metrics = libp2p::metrics::Metrics::new(registry);
        let control = swarm.behaviour().stream.new_control();
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let shared = Shared::new(
            store.clone(),
            control.clone(),
            cmd_tx.clone(),
            config.seed_window,
            #[cfg(feature = "fault-injection")]
            config.fault,
        );
        bitswap::spawn_acceptor(&shared, inbound.bitswap);
        let proofs = crate::proofs::Proofs::start(&control, inbound.proofs, cmd_tx.clone());

        let mut listeners = HashMap::new();
        for addr in &config.listen {
            if cfg!(not(feature = "quic")) && is_quic(addr) {
                tracing::warn!(%addr, "this build has no QUIC (cargo feature `quic`): not listening there");
                continue;
            }
            let id = swarm.listen_on(addr.clone()).map_err(|e| P2pError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
            listeners.insert(id, addr.clone());
        }
        let mut listen_addrs = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !listeners.is_empty() {
            let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
                .await
                .map_err(|_| P2pError::Timeout("listening"))?;
            libp2p::metrics::Recorder::record(&metrics, &ev);
            match ev {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    listeners.remove(&listener_id);
                    listen_addrs.push(address);
                }
                SwarmEvent::ListenerError { listener_id, error }
                | SwarmEvent::ListenerClosed {
                    listener_id,
                    reason: Err(error),
                    ..
                } => {
                    if let Some(addr) = listeners.remove(&listener_id) {
                        return Err(P2pError::Listen {
                            addr,
                            reason: error.to_string(),
                        });
                    }
                }
                _ => {}
            }
        }
        for addr in &config.bootstrap {
            let peer = peer_id_of(addr).ok_or_else(|| P2pError::NoPeerId(addr.clone()))?;
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            if let Err(e) = swarm.dial(addr.clone()) {
                warn!(target: "firmchain::p2p", %addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        let mut quota = providers::ProviderQuota::default();
        for root in store.pinned_roots().unwrap_or_default() {
            quota.know(swarm::record_key(&root));
            let _ = provide(&mut swarm, root);
        }
        let handle = P2p {
            peer_id,
            cmd: cmd_tx,
            shared: shared.clone(),
            fetch_defaults: config.fetch.clone(),
            proofs,
        };
        let event_loop = EventLoop {
            swarm,
            shared,
            cmd: cmd_rx,
            listen_addrs,
            dials: HashMap::new(),
            providers: HashMap::new(),
            provides: HashMap::new(),
            bans: Vec::new(),
            ban_duration: config.ban_duration,
            bootstrapped: config.bootstrap.is_empty(),
            quota,
            metrics,
        };
        let task = tokio::spawn(event_loop.run());
        info!(target: "firmchain::p2p", %peer_id, "p2p node started");
        Ok((handle, task))
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The blockstore.
    pub fn store(&self) -> &Arc<Blockstore> {
        &self.shared.store
    }

    /// The chain-proof service (what this node serves, requests to peers, announcements).
    pub fn proofs(&self) -> &crate::proofs::Proofs {
        &self.proofs
    }

    /// Transfer counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.shared.counters
    }

    /// The fetch options from the config, to adjust per fetch.
    pub fn fetch_defaults(&self) -> &FetchOptions {
        &self.fetch_defaults
    }

    async fn ask<T>(
        &self,
        what: &'static str,
        cmd: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(cmd(tx)).await.map_err(|_| P2pError::Stopped)?;
        tokio::time::timeout(REPLY_TIMEOUT, rx)
            .await
            .map_err(|_| P2pError::Timeout(what))?
            .map_err(|_| P2pError::Stopped)
    }

    /// Full listen addresses, each ending in `/p2p/<peer id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        let addrs = self.ask("listen addresses", Command::ListenAddrs).await?;
        Ok(addrs.iter().map(|a| with_peer_id(a, self.peer_id)).collect())
    }

    /// Peers connected now.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, P2pError> {
        self.ask("connected peers", Command::ConnectedPeers).await
    }

    /// Peers banned now (for misbehaving), each until its ban expires.
    pub async fn banned_peers(&self) -> Result<Vec<PeerId>, P2pError> {
        self.ask("banned peers", Command::Banned).await
    }

    /// Connect to `addr` and wait until the connection is up.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, P2pError> {
        self.ask("dial", |tx| Command::Dial(addr, tx)).await?
    }

    /// Announce `root` on the DHT (and keep re-announcing it); its blocks are served from the store. Returns
    /// when the announcement reached the closest peers the node knows (or the DHT query timed out).
    pub async fn provide(&self, root: Cid) -> Result<(), P2pError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Provide(root, tx))
            .await
            .map_err(|_| P2pError::Stopped)?;
        tokio::time::timeout(QUERY_TIMEOUT + REPLY_TIMEOUT, rx)
            .await
            .map_err(|_| P2pError::Timeout("provide"))?
            .map_err(|_| P2pError::Stopped)
    }

    /// Stop announcing `root`.
    pub async fn stop_providing(&self, root: Cid) -> Result<(), P2pError> {
        self.cmd
            .send(Command::StopProviding(root))
            .await
            .map_err(|_| P2pError::Stopped)
    }

    /// Fetch the DAG under `root` into the store (pinned under `root`), with `opts`.
    pub fn fetch(&self, root: Cid, opts: FetchOptions) -> Fetching {
        let (tx, rx) = watch::channel(FetchProgress::default());
        let task = tokio::spawn(fetch::run(self.shared.clone(), self.cmd.clone(), root, opts, tx));
        Fetching {
            progress: rx,
            task: Some(task),
        }
    }

    /// Stop the node.
    pub async fn shutdown(&self) -> Result<(), P2pError> {
        self.ask("shutdown", Command::Shutdown).await
    }
}

/// Whether `addr` is a QUIC address (`/udp/../quic-v1`).
fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| {
        matches!(
            p,
            libp2p::multiaddr::Protocol::QuicV1 | libp2p::multiaddr::Protocol::Quic
        )
    })
}
