//! Building the `Swarm`: transports, the behaviours and their limits.

use cid::Cid;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Swarm, allow_block_list, connection_limits, identify, identity, noise, ping, tcp, yamux};
use tracing::warn;

use super::{P2pConfig, providers};
use crate::command::P2pError;
use crate::{accept, bitswap, proofs};

pub(crate) const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Yamux streams per connection, both directions: Bitswap ([`crate::bitswap::MAX_OPEN_STREAMS_PER_PEER`]
/// inbound, a writer outbound), Kademlia, identify and ping need far fewer than the library's 512.
pub const MAX_STREAMS_PER_CONNECTION: usize = 64;
static BITSWAP: [libp2p::StreamProtocol; 3] = bitswap::PROTOCOLS;
static PROOFS: [libp2p::StreamProtocol; 2] = proofs::PROTOCOLS;
const AGENT: &str = concat!("firmchain/", env!("CARGO_PKG_VERSION"));

/// Local discovery by mDNS; a build without the `mdns` feature has a behaviour that does nothing in its place.
#[cfg(feature = "mdns")]
pub(crate) type Mdns = libp2p::mdns::tokio::Behaviour;
#[cfg(not(feature = "mdns"))]
pub(crate) type Mdns = libp2p::swarm::dummy::Behaviour;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) per_ip: super::ip_limit::IpLimit,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    pub(crate) mdns: Toggle<Mdns>,
    pub(crate) stream: libp2p_stream::Behaviour,
    pub(crate) bitswap: accept::Behaviour,
    pub(crate) proofs: accept::Behaviour,
}

/// The queues of inbound streams of our own protocols (see [`crate::accept`]).
pub(crate) struct InboundStreams {
    pub(crate) bitswap: accept::Incoming,
    pub(crate) proofs: accept::Incoming,
}

/// The swarm and its queues of inbound streams.
pub(crate) type Built = (Swarm<Behaviour>, InboundStreams);

/// The swarm of `config`; its transports count their bytes into `registry` (`libp2p_bandwidth_*`).
pub(crate) fn build_swarm(
    config: &P2pConfig,
    key: identity::Keypair,
    registry: &mut libp2p::metrics::Registry,
) -> Result<Built, P2pError> {
    let t = |e: &dyn std::fmt::Display| P2pError::Transport(e.to_string());
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_established_incoming(Some(
            config
                .max_connections
                .saturating_sub(config.reserved_outbound)
                .max(1),
        ))
        .with_max_established_per_peer(Some(config.max_connections_per_peer))
        .with_max_pending_incoming(Some(64));
    let mdns_on = config.mdns;
    if mdns_on && cfg!(not(feature = "mdns")) {
        return Err(P2pError::Transport(
            "p2p.mdns is on, but this build has no mDNS (cargo feature `mdns`)".into(),
        ));
    }
    let (per_ip, limit_loopback) = (config.max_connections_per_ip, config.limit_loopback);
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
    let (bitswap, bitswap_in) = accept::Behaviour::new("bitswap", &BITSWAP, bitswap::QUEUE);
    let (proofs, proofs_in) = accept::Behaviour::new("proofs", &PROOFS, proofs::QUEUE);
    let mut ours = Some((bitswap, proofs));
    let builder = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, || {
            // The legacy yamux configuration: a fixed 256 KiB window, so Helia's window-sized frames are
            // accepted (the dynamic window rejects frames over 1 MiB and drops the connection).
            let mut cfg = yamux::Config::default();
            cfg.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
            cfg
        })
        .map_err(|e| t(&e))?;
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    let swarm = builder
        .with_dns_config(dns.0, dns.1)
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut kad_cfg = kad::Config::new(kad::PROTOCOL_NAME);
            kad_cfg
                .set_query_timeout(QUERY_TIMEOUT)
                .set_provider_publication_interval(Some(reprovide))
                .set_provider_record_ttl(Some(reprovide * 2));
            // Received records are filtered (see `providers`) before they reach the store: values are never
            // stored, provider records only within the quotas.
            kad_cfg.set_record_filtering(kad::StoreInserts::FilterBoth);
            let store_cfg = kad::store::MemoryStoreConfig {
                max_records: 64,
                max_value_bytes: 1024,
                max_provided_keys: providers::MAX_STORED_KEYS,
                max_providers_per_key: providers::MAX_PROVIDERS_PER_KEY,
            };
            let mut kad =
                kad::Behaviour::with_config(peer_id, MemoryStore::with_config(peer_id, store_cfg), kad_cfg);
            kad.set_mode(Some(kad::Mode::Server));
            #[cfg(feature = "mdns")]
            let mdns = match mdns_on {
                true => Some(Mdns::new(libp2p::mdns::Config::default(), peer_id)?),
                false => None,
            };
            #[cfg(not(feature = "mdns"))]
            let mdns: Option<Mdns> = None;
            let (bitswap_behaviour, proofs_behaviour) = ours
                .take()
                .ok_or_else(|| std::io::Error::other("the behaviour is built once"))?;
            Ok(Behaviour {
                per_ip: super::ip_limit::IpLimit::new(per_ip, limit_loopback),
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
                bitswap: bitswap_behaviour,
                proofs: proofs_behaviour,
            })
        })
        .map_err(|e| t(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    let inbound = InboundStreams {
        bitswap: bitswap_in,
        proofs: proofs_in,
    };
    Ok((swarm, inbound))
}

/// The DHT key of `root` (its multihash, as IPFS has it).
pub(crate) fn record_key(root: &Cid) -> kad::RecordKey {
    kad::RecordKey::new(&root.hash().to_bytes())
}

/// Announce `root`: the local provider record is stored at once; the query that puts it on the closest
/// peers runs on (its id is returned).
pub(crate) fn provide(swarm: &mut Swarm<Behaviour>, root: Cid) -> Option<kad::QueryId> {
    let key = record_key(&root);
    match swarm.behaviour_mut().kad.start_providing(key) {
        Ok(id) => Some(id),
        Err(e) => {
            warn!(target: "firmchain::p2p", %root, error = %e, "cannot announce root");
            None
        }
    }
}
