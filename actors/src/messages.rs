//! The typed messages between the actors. Commands are imperatives, events past tense.

use std::sync::Arc;

use actix::Message;
use cid::Cid;
use firmchain_update::machine::Payload;
use firmchain_update::{Blake3Hash, ReleaseRecord, Sequence};

use crate::error::{FetchError, InstallError};

/// IndexWatcher → Coordinator: a release the index holds, read through verified proofs.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseSeen {
    /// The record (its digest matched the proven `digest[product][sequence]`).
    pub record: ReleaseRecord,
    /// Whether the index marks it revoked.
    pub revoked: bool,
}

/// IndexWatcher → Coordinator: a release was revoked.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseRevoked {
    /// The revoked sequence.
    pub sequence: Sequence,
}

/// Coordinator → BlockFetcher: fetch and verify a payload of a release.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct FetchRelease {
    /// The release.
    pub record: ReleaseRecord,
    /// Its patch or its full image.
    pub payload: Payload,
}

/// BlockFetcher/Verifier → Coordinator: how a fetch ended.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseFetched {
    /// The release.
    pub sequence: Sequence,
    /// Which payload.
    pub payload: Payload,
    /// The verified payload's root in the node's blockstore, or what failed (no provider, a hash mismatch, ...).
    pub outcome: Result<Cid, Arc<FetchError>>,
}

/// Coordinator → Installer: apply the verified payload and install the result.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct InstallRelease {
    /// The release.
    pub record: ReleaseRecord,
    /// The payload that was fetched.
    pub payload: Payload,
    /// Its root in the node's blockstore, where the BlockFetcher verified it.
    pub root: Cid,
}

/// Installer → Coordinator: how an install ended.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub enum ReleaseInstalled {
    /// The new image runs and passed its health check.
    Installed { sequence: Sequence, hash: Blake3Hash },
    /// The install failed on a verdict (a failed health check or installer, an image that does not verify) and
    /// the previous image runs again; the release is not tried again.
    RolledBack {
        sequence: Sequence,
        reason: String,
        cause: RollbackCause,
    },
    /// The install stopped on a transient fault (I/O, a full disk) before the slot switch: the previous image
    /// runs and the install is tried again later.
    Interrupted {
        sequence: Sequence,
        error: Arc<InstallError>,
    },
}

/// The class of a rollback's reason (the `cause` label of `firmchain_rollbacks_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RollbackCause {
    /// The health check failed (right after the switch, or after a restart).
    HealthCheck,
    /// The external installer (command mode) failed.
    Installer,
    /// The payload did not give the release's image (a patch that does not apply, a wrong hash).
    Image,
    /// The bootloader fell back to the previous slot.
    BootFallback,
    /// Anything else that is a verdict on the release.
    Other,
}

impl RollbackCause {
    /// Every cause, in label order.
    pub const ALL: [RollbackCause; 5] = [
        RollbackCause::HealthCheck,
        RollbackCause::Installer,
        RollbackCause::Image,
        RollbackCause::BootFallback,
        RollbackCause::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackCause::HealthCheck => "health_check",
            RollbackCause::Installer => "installer",
            RollbackCause::Image => "image",
            RollbackCause::BootFallback => "boot_fallback",
            RollbackCause::Other => "other",
        }
    }
}

/// Coordinator → BlockFetcher: stop working on a release.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct CancelFetch {
    /// The release.
    pub sequence: Sequence,
}

/// Anyone → Coordinator: what the device runs and is doing (for `/status`).
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "CoordinatorStatus")]
pub struct GetStatus;

/// What the Coordinator reports.
#[derive(Clone, Debug, PartialEq, Eq, actix::MessageResponse)]
pub struct CoordinatorStatus {
    /// The installed release.
    pub installed: Sequence,
    /// blake3 of the installed image.
    pub hash: Blake3Hash,
    /// The release being worked on, and which payload.
    pub working_on: Option<(Sequence, Payload, u32)>,
    /// Releases rolled back on this device.
    pub rolled_back: Vec<Sequence>,
    /// Releases not installed yet because of the rollout rules, and why.
    pub waiting: Vec<crate::rollout::Waiting>,
}

/// Anyone → IndexWatcher: poll now (e.g. after this node published).
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct Wake;

/// A verified block the index was read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainHead {
    /// Block number.
    pub block: u64,
    /// Block hash.
    pub hash: alloy::primitives::B256,
    /// State root the reads were proven against.
    pub state_root: alloy::primitives::B256,
    /// Block timestamp (unix seconds).
    pub timestamp: u64,
    /// How the header was verified: `rpc` or `light`.
    pub mode: &'static str,
    /// Light mode: the beacon header that carried it and what authorised it.
    pub light: Option<LightAuth>,
}

/// The sync-committee verified beacon header a light-mode read is proven against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LightAuth {
    /// Its beacon slot.
    pub slot: u64,
    /// Whether it is the finalized header.
    pub finalized: bool,
    /// Signatures behind it and the committee's size, for an attested header (a supermajority: what lets it
    /// authorise an install).
    pub participation: Option<(usize, usize)>,
}

/// Who delivered how much of a fetch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeerShare {
    /// The peer.
    pub peer: String,
    /// Blocks it delivered.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A finished fetch, for `/status`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FetchReport {
    /// The release.
    pub sequence: u64,
    /// `patch` or `full`.
    pub payload: String,
    /// Blocks of the payload.
    pub blocks: u64,
    /// Blocks that were already stored.
    pub from_store: u64,
    /// Who delivered them.
    pub peers: Vec<PeerShare>,
    /// Peers dropped for misbehaving, and why.
    pub rejected: Vec<String>,
    /// Progress timeouts on the way: how often a peer holding wants stayed silent until it was asked again
    /// (none when every peer answers).
    pub timeouts: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Actors → Status: what happened, for `/status` and `/metrics`.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub enum StatusEvent {
    /// A poll of the index verified this block, or failed.
    Chain(Result<ChainHead, Arc<crate::watcher::WatchError>>),
    /// Data from the chain was refused.
    Rejected(String),
    /// A peer was dropped from a fetch for misbehaving (counted by the libp2p node; listed in `/status`).
    PeerRejected(String),
    /// A fetch started or moved on.
    Fetching {
        sequence: Sequence,
        payload: Payload,
        blocks: u64,
        known_blocks: u64,
        bytes: u64,
        peers: usize,
    },
    /// A fetch of `payload` ended after `seconds` (fetch and verify).
    Fetched {
        payload: Payload,
        seconds: f64,
        outcome: Result<FetchReport, Arc<FetchError>>,
    },
    /// The Installer started on a release.
    Installing { sequence: Sequence },
    /// An install ended.
    Installed(ReleaseInstalled),
    /// The two-phase commit of a release handed to RAUC/SWUpdate moved (pending, confirmed, rolled back).
    Commit(crate::status::CommitView),
    /// This node published a release.
    Published(serde_json::Value),
}
