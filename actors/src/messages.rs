//! The typed messages between the actors. Commands are imperatives, events past tense.

use actix::Message;
use firmchain_update::machine::Payload;
use firmchain_update::{Blake3Hash, ReleaseRecord, Sequence};

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
    /// `Err` says what failed (no provider, a hash mismatch, ...).
    pub outcome: Result<(), String>,
}

/// Coordinator → Installer: apply the verified payload and install the result.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct InstallRelease {
    /// The release.
    pub record: ReleaseRecord,
    /// The payload that was fetched.
    pub payload: Payload,
}

/// Installer → Coordinator: how an install ended.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub enum ReleaseInstalled {
    /// The new image runs and passed its health check.
    Installed { sequence: Sequence, hash: Blake3Hash },
    /// The install failed and the previous image runs again.
    RolledBack { sequence: Sequence, reason: String },
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
}
