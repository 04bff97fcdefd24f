//! A cap on inbound connections per remote IP address: many peer ids from one host cannot take every slot.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Why an inbound connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {open} inbound connections, the limit per IP address")]
pub struct TooManyFromIp {
    pub ip: IpAddr,
    pub open: u32,
}

/// The behaviour.
#[derive(Debug)]
pub struct IpLimit {
    max_per_ip: u32,
    /// Whether loopback addresses count (off for local fleets and demos, on in tests of the limit).
    limit_loopback: bool,
    open: HashMap<IpAddr, u32>,
    by_connection: HashMap<ConnectionId, IpAddr>,
}

impl IpLimit {
    pub fn new(max_per_ip: u32, limit_loopback: bool) -> IpLimit {
        IpLimit {
            max_per_ip,
            limit_loopback,
            open: HashMap::new(),
            by_connection: HashMap::new(),
        }
    }

    fn limited_ip(&self, addr: &Multiaddr) -> Option<IpAddr> {
        let ip = addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        })?;
        (self.limit_loopback || !ip.is_loopback()).then_some(ip)
    }

    fn check(&self, ip: IpAddr) -> Result<(), ConnectionDenied> {
        let open = self.open.get(&ip).copied().unwrap_or(0);
        if open >= self.max_per_ip {
            return Err(ConnectionDenied::new(TooManyFromIp { ip, open }));
        }
        Ok(())
    }
}

impl NetworkBehaviour for IpLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match self.limited_ip(remote) {
            Some(ip) => self.check(ip),
            None => Ok(()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(ip) = self.limited_ip(remote) {
            self.check(ip)?;
            *self.open.entry(ip).or_default() += 1;
            self.by_connection.insert(id, ip);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) = event
            && let Some(ip) = self.by_connection.remove(&connection_id)
            && let Some(n) = self.open.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
