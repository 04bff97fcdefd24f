//! Accepting inbound Bitswap streams without losing any.
//!
//! `libp2p-stream` hands inbound streams over through a channel of capacity one shared by all connections: a
//! connection that negotiates several streams in one poll (go-bitswap opens a stream per message from several
//! workers at once; two of our own peers may open streams at the same moment) has all but the first dropped,
//! and the wants or blocks they carried are lost until a progress timeout asks again. This behaviour accepts the
//! Bitswap protocols itself and queues streams in a channel of [`QUEUE`] streams; the acceptor applies the
//! per-peer limits ([`super::MAX_OPEN_STREAMS_PER_PEER`]). Outbound streams are still opened through
//! `libp2p-stream`, which only negotiates the protocols this side asks for.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::{Endpoint, InboundUpgrade, Multiaddr, UpgradeInfo};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    Stream, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::mpsc;
use tracing::warn;

use super::PROTOCOLS;

/// Inbound Bitswap streams waiting for the acceptor, from all peers. The acceptor only counts and spawns, so
/// this fills only when the node is starved of CPU; streams past it are dropped (and logged).
pub const QUEUE: usize = 1024;

/// The behaviour: every connection's handler accepts the Bitswap protocols and queues the streams.
#[derive(Debug)]
pub struct Behaviour {
    tx: mpsc::Sender<(PeerId, Stream)>,
}

impl Behaviour {
    /// The behaviour and the receiving end of its stream queue.
    pub fn new() -> (Behaviour, mpsc::Receiver<(PeerId, Stream)>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Behaviour { tx }, rx)
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            tx: self.tx.clone(),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// The upgrade that accepts any of [`PROTOCOLS`] and hands over the stream.
#[derive(Debug)]
pub struct Accept;

impl UpgradeInfo for Accept {
    type Info = StreamProtocol;
    type InfoIter = std::array::IntoIter<StreamProtocol, 3>;

    fn protocol_info(&self) -> Self::InfoIter {
        PROTOCOLS.into_iter()
    }
}

impl InboundUpgrade<Stream> for Accept {
    type Output = Stream;
    type Error = Infallible;
    type Future = Ready<Result<Stream, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        ready(Ok(stream))
    }
}

/// One connection's handler: inbound only; it never keeps a connection alive by itself.
#[derive(Debug)]
pub struct Handler {
    peer: PeerId,
    tx: mpsc::Sender<(PeerId, Stream)>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Accept;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Accept> {
        SubstreamProtocol::new(Accept, ())
    }

    fn connection_keep_alive(&self) -> bool {
        false
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Accept, DeniedUpgrade, (), Infallible>) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol: stream, .. }) =
            event
            && self.tx.try_send((self.peer, stream)).is_err()
        {
            warn!(target: "firmchain::bitswap", peer = %self.peer, queue = QUEUE,
                "inbound bitswap stream queue is full; resetting a stream");
        }
    }
}
