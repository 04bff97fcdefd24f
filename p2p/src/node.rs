//! The libp2p node: one event-loop task owns the `Swarm`; a cloneable [`P2p`] handle sends it commands over a
//! bounded channel and gets `oneshot` replies.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, connection_limits, identify, identity, mdns, noise, ping,
    tcp, yamux,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::bitswap::{self, Counters, Shared};
use crate::blockstore::Blockstore;
use crate::fetch::{self, FetchError, FetchOptions, FetchProgress, FetchSummary};

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
    /// Close connections idle this long.
    pub idle_timeout: Duration,
    /// Re-announce provided roots this often.
    pub reprovide_interval: Duration,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Defaults for fetches.
    pub fetch: FetchOptions,
    /// Origin seeding (publishers): a block sent to one peer is refused to others for this long while that
    /// peer is connected, so devices fetch it from each other and the publisher's upload stays flat as the
    /// fleet grows. `None` (the default) serves every want.
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

/// Why the node could not start or do what it was told.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("identity key {path}: {reason}")]
    Identity { path: String, reason: String },
    #[error("building the transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("bootstrap address {0} has no /p2p/<peer id>")]
    NoPeerId(Multiaddr),
    #[error("dialing {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("the p2p node stopped")]
    Stopped,
}

/// Load the node's ed25519 identity from `path`, or create it (mode 0600) when missing.
pub fn load_or_create_identity(path: &Path) -> Result<identity::Keypair, P2pError> {
    let err = |reason: String| P2pError::Identity {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => identity::Keypair::from_protobuf_encoding(&bytes).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = identity::Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| err(e.to_string()))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            let tmp = path.with_extension("tmp");
            {
                use std::io::Write;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&tmp).map_err(|e| err(e.to_string()))?;
                f.write_all(&bytes).map_err(|e| err(e.to_string()))?;
                f.sync_all().map_err(|e| err(e.to_string()))?;
            }
            std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// `addr` with `/p2p/<peer>` appended (unless it has one).
pub fn with_peer_id(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

/// The peer id at the end of `addr`.
pub fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    stream: libp2p_stream::Behaviour,
}

/// Commands for the event loop.
#[derive(Debug)]
pub(crate) enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<PeerId, P2pError>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    Provide(Cid, oneshot::Sender<()>),
    StopProviding(Cid),
    FindProviders(Cid, mpsc::Sender<PeerId>),
    Ban(PeerId, String),
    Shutdown(oneshot::Sender<()>),
}

const COMMAND_QUEUE: usize = 256;
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
const AGENT: &str = concat!("firmchain/", env!("CARGO_PKG_VERSION"));

/// A handle on the running node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct P2p {
    peer_id: PeerId,
    cmd: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    fetch_defaults: FetchOptions,
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
        key: identity::Keypair,
        store: Arc<Blockstore>,
    ) -> Result<(P2p, tokio::task::JoinHandle<()>), P2pError> {
        let peer_id = key.public().to_peer_id();
        let mut swarm = build_swarm(&config, key)?;
        let mut control = swarm.behaviour().stream.new_control();
        let shared = Shared::new(
            store.clone(),
            control.clone(),
            config.seed_window,
            #[cfg(feature = "fault-injection")]
            config.fault,
        );
        bitswap::spawn_acceptors(&shared, &mut control);

        let mut listeners = HashMap::new();
        for addr in &config.listen {
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
        for root in store.pinned_roots().unwrap_or_default() {
            let _ = provide(&mut swarm, root);
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let handle = P2p {
            peer_id,
            cmd: cmd_tx,
            shared: shared.clone(),
            fetch_defaults: config.fetch.clone(),
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

fn build_swarm(config: &P2pConfig, key: identity::Keypair) -> Result<Swarm<Behaviour>, P2pError> {
    let t = |e: &dyn std::fmt::Display| P2pError::Transport(e.to_string());
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_established_per_peer(Some(config.max_connections_per_peer))
        .with_max_pending_incoming(Some(64));
    let mdns_on = config.mdns;
    let reprovide = config.reprovide_interval;
    // `/dns4`, `/dns6` and `/dns` addresses, resolved by hickory from /etc/resolv.conf (a static binary has no
    // glibc resolver); without a usable file only host names fail to dial.
    let dns = hickory_resolver::system_conf::read_system_conf().unwrap_or_else(|e| {
        warn!(error = %e, "no DNS servers from /etc/resolv.conf: /dns addresses cannot be dialled");
        (
            libp2p::dns::ResolverConfig::new(),
            libp2p::dns::ResolverOpts::default(),
        )
    });
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, || {
            // The legacy yamux configuration: a fixed 256 KiB window, so Helia's window-sized frames are
            // accepted (the dynamic window rejects frames over 1 MiB and drops the connection).
            let mut cfg = yamux::Config::default();
            cfg.set_max_num_streams(512);
            cfg
        })
        .map_err(|e| t(&e))?
        .with_quic()
        .with_dns_config(dns.0, dns.1)
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut kad_cfg = kad::Config::new(kad::PROTOCOL_NAME);
            kad_cfg
                .set_query_timeout(QUERY_TIMEOUT)
                .set_provider_publication_interval(Some(reprovide))
                .set_provider_record_ttl(Some(reprovide * 2));
            let store_cfg = kad::store::MemoryStoreConfig {
                max_provided_keys: 100_000,
                max_providers_per_key: 64,
                ..Default::default()
            };
            let mut kad =
                kad::Behaviour::with_config(peer_id, MemoryStore::with_config(peer_id, store_cfg), kad_cfg);
            kad.set_mode(Some(kad::Mode::Server));
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)?)
            } else {
                None
            };
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                blocked: allow_block_list::Behaviour::default(),
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/id/1.0.0".into(), key.public())
                        .with_agent_version(AGENT.into()),
                ),
                ping: ping::Behaviour::default(),
                kad,
                mdns: Toggle::from(mdns),
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| t(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// Announce `root`: the local provider record is stored at once; the query that puts it on the closest
/// peers runs on (its id is returned).
fn provide(swarm: &mut Swarm<Behaviour>, root: Cid) -> Option<kad::QueryId> {
    let key = kad::RecordKey::new(&root.hash().to_bytes());
    match swarm.behaviour_mut().kad.start_providing(key) {
        Ok(id) => Some(id),
        Err(e) => {
            warn!(target: "firmchain::p2p", %root, error = %e, "cannot announce root");
            None
        }
    }
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    cmd: mpsc::Receiver<Command>,
    listen_addrs: Vec<Multiaddr>,
    dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, P2pError>>)>,
    providers: HashMap<kad::QueryId, mpsc::Sender<PeerId>>,
    provides: HashMap<kad::QueryId, oneshot::Sender<()>>,
    bans: Vec<(Instant, PeerId)>,
    ban_duration: Duration,
    bootstrapped: bool,
}

impl EventLoop {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = self.cmd.recv() => match cmd {
                    Some(Command::Shutdown(reply)) => {
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                _ = tick.tick() => self.expire_bans(),
            }
        }
        info!(target: "firmchain::p2p", "p2p node stopped");
    }

    fn expire_bans(&mut self) {
        let now = Instant::now();
        let (done, keep): (Vec<_>, Vec<_>) = self.bans.drain(..).partition(|(until, _)| *until <= now);
        self.bans = keep;
        for (_, peer) in done {
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial(addr, reply) => {
                let opts = match peer_id_of(&addr) {
                    Some(peer) if self.swarm.is_connected(&peer) => {
                        let _ = reply.send(Ok(peer));
                        return;
                    }
                    Some(peer) => DialOpts::peer_id(peer)
                        .addresses(vec![addr.clone()])
                        .condition(PeerCondition::Always)
                        .build(),
                    None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(P2pError::Dial {
                            addr,
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Provide(root, reply) => match provide(&mut self.swarm, root) {
                Some(id) => {
                    self.provides.insert(id, reply);
                }
                None => {
                    let _ = reply.send(());
                }
            },
            Command::StopProviding(root) => {
                let key = kad::RecordKey::new(&root.hash().to_bytes());
                self.swarm.behaviour_mut().kad.stop_providing(&key);
            }
            Command::FindProviders(root, tx) => {
                let key = kad::RecordKey::new(&root.hash().to_bytes());
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.providers.insert(id, tx);
            }
            Command::Ban(peer, reason) => {
                warn!(target: "firmchain::p2p", %peer, %reason, "banning peer");
                self.swarm.behaviour_mut().blocked.block_peer(peer);
                self.bans.push((Instant::now() + self.ban_duration, peer));
            }
            Command::Shutdown(_) => {}
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } if !self.listen_addrs.contains(&address) => {
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => self.listen_addrs.retain(|a| *a != address),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                debug!(target: "firmchain::p2p", peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    // Peers we dialled are reachable there: keep them for the DHT.
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, address.clone());
                }
                if !self.bootstrapped {
                    self.bootstrapped = true;
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                let shared = self.shared.clone();
                tokio::spawn(async move { shared.peer_gone(peer_id).await });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id, error, ..
            } => {
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(P2pError::Dial {
                        addr,
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if info.protocols.contains(&kad::PROTOCOL_NAME) => {
                for addr in info.listen_addrs.into_iter().filter(is_dialable) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    let _ = self
                        .swarm
                        .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                ..
            })) => self.on_query(id, result, step.last),
            _ => {}
        }
    }

    fn on_query(&mut self, id: kad::QueryId, result: kad::QueryResult, last: bool) {
        match result {
            kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders { providers, .. })) => {
                let me = *self.swarm.local_peer_id();
                for peer in providers {
                    if peer == me {
                        continue;
                    }
                    if !self.swarm.is_connected(&peer) {
                        // Dial now, while the query still knows the provider's addresses.
                        let _ = self.swarm.dial(peer);
                    }
                    if let Some(tx) = self.providers.get(&id) {
                        let _ = tx.try_send(peer);
                    }
                }
            }
            kad::QueryResult::GetProviders(_) => {}
            kad::QueryResult::StartProviding(Err(e)) => {
                debug!(target: "firmchain::p2p", error = %e, "announcing a root reached no peer");
            }
            kad::QueryResult::Bootstrap(Err(e)) => {
                debug!(target: "firmchain::p2p", error = %e, "DHT bootstrap failed");
            }
            _ => {}
        }
        if last {
            self.providers.remove(&id);
            if let Some(reply) = self.provides.remove(&id) {
                let _ = reply.send(());
            }
        }
    }
}

fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/identity.key");
        let a = load_or_create_identity(&path).unwrap();
        let b = load_or_create_identity(&path).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"garbage").unwrap();
        let err = load_or_create_identity(&path).unwrap_err().to_string();
        assert!(err.contains("identity.key"), "{err}");
    }

    #[test]
    fn multiaddr_peer_ids() {
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let full = with_peer_id(&addr, peer);
        assert_eq!(peer_id_of(&full), Some(peer));
        assert_eq!(with_peer_id(&full, PeerId::random()), full);
        assert_eq!(peer_id_of(&addr), None);
        assert!(!is_dialable(&"/ip4/0.0.0.0/tcp/1".parse().unwrap()));
        assert!(is_dialable(&addr));
    }
}
