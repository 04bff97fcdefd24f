//! The actors' errors, one enum per job (fetch, verify, install, publish).
//!
//! Each says whether it is a transient fault (I/O, a full disk, no peer, a stopped actor: the same work may
//! succeed later, so it is retried with backoff and never marks a release rolled back) or a verdict on the
//! release (a hash mismatch, a patch for another base, a failed health check or installer: retrying cannot help).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cid::Cid;
use firmchain_p2p::StoreError;
use firmchain_update::dag::ReadError;
use firmchain_update::patch::{ApplyError, CreateError, ErrorClass};
use firmchain_update::{Blake3Hash, Sequence};

use crate::slots::SlotError;
use crate::state::StateError;

/// An I/O error on a named file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FileError {
    /// The file or folder.
    pub path: PathBuf,
    /// What the OS said.
    pub source: io::Error,
}

/// `map_err` helper: an I/O error on `path`.
pub(crate) fn file(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_owned(),
        source,
    }
}

/// Why a payload did not check out against its record (Verifier).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("reading {root} from the store: {source}")]
    Read {
        root: Cid,
        source: Box<ReadError<StoreError>>,
    },
    #[error(transparent)]
    Mismatch(Box<PayloadMismatch>),
}

/// A payload whose blake3 or size is not what its record says.
#[derive(Debug, thiserror::Error)]
#[error(
    "payload {root} is {size} bytes with blake3 {hash}; the release record says {expected_size} bytes with blake3 \
     {expected}"
)]
pub struct PayloadMismatch {
    pub root: Cid,
    pub size: u64,
    pub hash: Blake3Hash,
    pub expected_size: u64,
    pub expected: Blake3Hash,
}

impl VerifyError {
    /// A fault of this device (disk, store), not of the payload.
    pub fn is_transient(&self) -> bool {
        match self {
            VerifyError::File(_) => true,
            VerifyError::Read { source, .. } => {
                matches!(**source, ReadError::Source { .. } | ReadError::Write(_))
            }
            VerifyError::Mismatch(_) => false,
        }
    }
}

/// Why a fetch failed (BlockFetcher).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the record's patch_cid is not a CID: {0}")]
    BadCid(String),
    #[error(transparent)]
    P2p(Box<firmchain_p2p::FetchError>),
    #[error("bundle {root} has no entry {entry:?}")]
    NoEntry { root: Cid, entry: String },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("the verifier stopped: {0}")]
    Verifier(actix::MailboxError),
}

impl FetchError {
    /// No peer, a stall, the node stopping, the disk: worth another try. A bad record or payload is not.
    pub fn is_transient(&self) -> bool {
        use firmchain_p2p::FetchError as P;
        match self {
            FetchError::BadCid(_) | FetchError::NoEntry { .. } => false,
            FetchError::P2p(e) => matches!(**e, P::NoProviders(_) | P::Store(_) | P::Stopped),
            FetchError::Verify(e) => e.is_transient(),
            FetchError::Verifier(_) => true,
        }
    }
}

impl From<firmchain_p2p::FetchError> for FetchError {
    fn from(e: firmchain_p2p::FetchError) -> Self {
        FetchError::P2p(Box::new(e))
    }
}

/// Why an external command (the health check, the installer of command mode) did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot start the {what} {script:?}: {source}")]
    Spawn {
        what: &'static str,
        script: String,
        source: io::Error,
    },
    #[error("the {what} did not finish within {timeout:?}")]
    Timeout { what: &'static str, timeout: Duration },
    #[error("the {what} failed to run: {source}")]
    Wait { what: &'static str, source: io::Error },
    #[error("the {what} exited with {status}{tail}")]
    Failed {
        what: &'static str,
        /// `code N` or the signal.
        status: String,
        /// `: ` and the last line of its stderr, or nothing.
        tail: String,
    },
}

/// Why an install did not happen (Patcher, Installer).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("image slots: {0}")]
    Slots(#[from] SlotError),
    #[error("applying the {entry} of release {sequence}: {source}")]
    Apply {
        entry: &'static str,
        sequence: Sequence,
        source: ApplyError,
    },
    #[error("the patcher stopped: {0}")]
    Patcher(actix::MailboxError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("install task: {0}")]
    Task(String),
    #[error("the installer's lock is poisoned")]
    Poisoned,
    #[error("the installer is not in slots mode")]
    NotSlots,
    #[error("install.initial_image is needed on first start (no image installed yet)")]
    NoInitialImage,
    #[error("cannot tell which slot booted: {0}")]
    BootedSlot(String),
    #[error("install.swupdate_select names no selection for the booted slot {slot:?}")]
    NoSelection { slot: String },
}

impl InstallError {
    /// A fault of this device (I/O, a full disk, a stopped actor): the old image runs and the install is retried
    /// later. Everything else is a verdict on the release.
    pub fn is_transient(&self) -> bool {
        match self {
            InstallError::File(_)
            | InstallError::Patcher(_)
            | InstallError::State(_)
            | InstallError::Task(_)
            | InstallError::Poisoned
            | InstallError::BootedSlot(_)
            | InstallError::NoSelection { .. } => true,
            InstallError::Slots(e) => matches!(e, SlotError::Io { .. }),
            InstallError::Apply { source, .. } => source.class() == ErrorClass::Io,
            InstallError::Script(_) | InstallError::NotSlots | InstallError::NoInitialImage => false,
        }
    }
}

/// Why a release could not be prepared (diffed, compressed, stored).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("making the patch: {0}")]
    Patch(#[from] CreateError),
    #[error("storing the bundle: {0}")]
    Store(#[from] firmchain_p2p::ImportError),
}

/// Why a publish failed (Publisher).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Index(#[from] firmchain_contracts::ContractError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("publish task: {0}")]
    Task(String),
}
