//! Accepting inbound streams of our own protocols without losing any (Bitswap, chain proofs).
//!
//! `libp2p-stream` hands inbound streams over through a channel of capacity one shared by all connections: a
//! connection that negotiates several streams in one poll (go-bitswap opens a stream per message from several
//! workers at once; two of our own peers may open streams at the same moment; a fleet asks a device for proofs
//! at once) has all but the first dropped, and what they carried is lost: wants or blocks until a progress
//! timeout asks again, a proof request for good. This behaviour accepts a set of protocols itself and queues
//! the streams, with the protocol each negotiated, in a channel of a fixed size; the service that takes them
//! applies its own per-peer limits, and refuses what it cannot take by name. Outbound streams are still opened
//! through `libp2p-stream`, which only negotiates the protocols this side asks for.

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

/// An inbound stream, the peer that opened it and the protocol it negotiated.
#[derive(Debug)]
pub struct Accepted {
    pub peer: PeerId,
    pub protocol: StreamProtocol,
    pub stream: Stream,
}

/// The receiving end of a [`Behaviour`]'s queue.
pub type Incoming = mpsc::Receiver<Accepted>;

/// The behaviour: every connection's handler accepts `protocols` and queues the streams. The service taking
/// them only counts and spawns, so the queue fills only when the node is starved of CPU; streams past it are
/// reset (and logged, naming the service).
#[derive(Debug)]
pub struct Behaviour {
    service: &'static str,
    protocols: &'static [StreamProtocol],
    tx: mpsc::Sender<Accepted>,
}

impl Behaviour {
    /// The behaviour of `service` (for logs) for `protocols`, and the receiving end of its queue of `queue`
    /// streams.
    pub fn new(
        service: &'static str,
        protocols: &'static [StreamProtocol],
        queue: usize,
    ) -> (Behaviour, Incoming) {
        let (tx, rx) = mpsc::channel(queue);
        (
            Behaviour {
                service,
                protocols,
                tx,
            },
            rx,
        )
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            service: self.service,
            protocols: self.protocols,
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

/// The upgrade that accepts any of a set of protocols and hands over the stream with the one negotiated.
#[derive(Debug)]
pub struct Accept(&'static [StreamProtocol]);

impl UpgradeInfo for Accept {
    type Info = StreamProtocol;
    type InfoIter = std::iter::Cloned<std::slice::Iter<'static, StreamProtocol>>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.iter().cloned()
    }
}

impl InboundUpgrade<Stream> for Accept {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<(Stream, StreamProtocol), Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

/// One connection's handler: inbound only; it never keeps a connection alive by itself.
#[derive(Debug)]
pub struct Handler {
    peer: PeerId,
    service: &'static str,
    protocols: &'static [StreamProtocol],
    tx: mpsc::Sender<Accepted>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Accept;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Accept> {
        SubstreamProtocol::new(Accept(self.protocols), ())
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
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            let accepted = Accepted {
                peer: self.peer,
                protocol,
                stream,
            };
            if self.tx.try_send(accepted).is_err() {
                warn!(target: "firmchain::p2p", service = self.service, peer = %self.peer,
                    queue = self.tx.max_capacity(), "inbound stream queue is full; resetting a stream");
            }
        }
    }
}
