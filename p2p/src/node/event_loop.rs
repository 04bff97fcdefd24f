//! The event loop: the one task that owns the `Swarm`, runs the handle's commands and reacts to swarm events.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::kad;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::identity::{is_dialable, peer_id_of};
use super::providers::{Admit, MAX_ADDRS_PER_PROVIDER, ProviderQuota};
use super::swarm::{Behaviour, BehaviourEvent, provide, record_key};
use crate::bitswap::Shared;
use crate::command::{Command, P2pError};
use libp2p::kad::store::RecordStore;
use libp2p::metrics::{Metrics, Recorder};

/// How long a received provider record lives when it does not say.
const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(48 * 3600);

pub(crate) struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) shared: Arc<Shared>,
    pub(super) cmd: mpsc::Receiver<Command>,
    pub(super) listen_addrs: Vec<Multiaddr>,
    pub(super) dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, P2pError>>)>,
    pub(super) providers: HashMap<kad::QueryId, mpsc::Sender<PeerId>>,
    pub(super) provides: HashMap<kad::QueryId, oneshot::Sender<()>>,
    pub(super) bans: Vec<(Instant, PeerId)>,
    pub(super) ban_duration: Duration,
    pub(super) bootstrapped: bool,
    pub(super) quota: ProviderQuota,
    /// libp2p's own metrics, fed with every swarm event.
    pub(super) metrics: Metrics,
}

impl EventLoop {
    pub(crate) async fn run(mut self) {
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
            Command::Provide(root, reply) => {
                self.quota.know(record_key(&root));
                match provide(&mut self.swarm, root) {
                    Some(id) => {
                        self.provides.insert(id, reply);
                    }
                    None => {
                        let _ = reply.send(());
                    }
                }
            }
            Command::StopProviding(root) => {
                let key = record_key(&root);
                self.swarm.behaviour_mut().kad.stop_providing(&key);
                self.quota.forget(&key);
            }
            Command::FindProviders(root, tx) => {
                let key = record_key(&root);
                // Devices fetching this root will announce it: their records are welcome.
                self.quota.know(key.clone());
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.providers.insert(id, tx);
            }
            Command::Ban(peer, reason) => {
                warn!(target: "firmchain::p2p", %peer, %reason, "banning peer");
                self.swarm.behaviour_mut().blocked.block_peer(peer);
                self.bans.push((Instant::now() + self.ban_duration, peer));
            }
            Command::Banned(reply) => {
                let _ = reply.send(self.bans.iter().map(|(_, p)| *p).collect());
            }
            Command::Shutdown(_) => {}
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        self.record(&ev);
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
                num_established,
                ..
            } => {
                let shared = self.shared.clone();
                if num_established == 0 {
                    tokio::spawn(async move { shared.peer_gone(peer_id).await });
                } else {
                    tokio::spawn(async move { shared.connection_lost(peer_id).await });
                }
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
            #[cfg(feature = "mdns")]
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(found))) => {
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
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::InboundRequest {
                request: kad::InboundRequest::AddProvider { record: Some(record) },
            })) => self.on_provider_record(record),
            _ => {}
        }
    }

    fn record(&self, ev: &SwarmEvent<BehaviourEvent>) {
        self.metrics.record(ev);
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.metrics.record(e),
            _ => {}
        }
    }

    /// A peer asks us to store a provider record: within its quota, with a few addresses.
    fn on_provider_record(&mut self, mut record: kad::ProviderRecord) {
        record.addresses.truncate(MAX_ADDRS_PER_PROVIDER);
        let now = Instant::now();
        let expires = record.expires.unwrap_or(now + PROVIDER_RECORD_TTL);
        let peer = record.provider;
        match self.quota.admit(peer, &record.key, expires, now) {
            Admit::Store { evict } => {
                let store = self.swarm.behaviour_mut().kad.store_mut();
                for (key, provider) in evict {
                    store.remove_provider(&key, &provider);
                }
                if let Err(e) = store.add_provider(record) {
                    debug!(target: "firmchain::p2p", %peer, error = %e, "provider record not stored");
                }
            }
            Admit::PeerOverQuota { held } => {
                self.shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                debug!(target: "firmchain::p2p", %peer, held, "provider record refused: the peer is over its quota");
            }
            Admit::StoreFull => {
                self.shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                debug!(target: "firmchain::p2p", %peer, "provider record refused: no room for unknown keys");
            }
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
