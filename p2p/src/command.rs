//! What the [`P2p`](crate::P2p) handle and the fetches ask of the event loop that owns the `Swarm`, and why
//! the node can fail. Both sides import this module; neither imports the other.

use cid::Cid;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

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
    Banned(oneshot::Sender<Vec<PeerId>>),
    Shutdown(oneshot::Sender<()>),
}

pub(crate) const COMMAND_QUEUE: usize = 256;
