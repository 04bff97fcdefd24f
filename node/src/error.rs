//! Errors of the CLI commands and their exit codes.

use std::io;
use std::path::PathBuf;

use firmchain_update::car::CarError;
use firmchain_update::dag::BlockError;
use firmchain_update::patch::{ApplyError, CreateError, ErrorClass};

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error("{path}: {source}")]
    Car { path: PathBuf, source: Box<CarError> },
    #[error("{path}: {message}")]
    Unpack {
        path: PathBuf,
        message: String,
        class: ErrorClass,
    },
    #[error("{path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Demo(String),
    #[error(transparent)]
    Contract(#[from] firmchain_contracts::ContractError),
    #[error("{0}")]
    Key(String),
    #[error("verification failed: {0}")]
    Verify(#[from] firmchain_lightclient::execution::ExecutionError),
    #[error("{what}: {message}")]
    Rpc { what: &'static str, message: String },
    #[error(transparent)]
    Light(#[from] firmchain_lightclient::client::ClientError),
    #[error(transparent)]
    P2p(#[from] firmchain_p2p::P2pError),
    #[error(transparent)]
    Fetch(Box<firmchain_p2p::FetchError>),
    #[error(transparent)]
    Store(#[from] firmchain_p2p::StoreError),
    /// An offline install or export refused what it was given (the reason names the check).
    #[error("{path}: refused: {message}")]
    Refused { path: PathBuf, message: String },
}

impl From<firmchain_p2p::FetchError> for CliError {
    fn from(e: firmchain_p2p::FetchError) -> Self {
        CliError::Fetch(Box::new(e))
    }
}

impl CliError {
    pub fn car(path: &std::path::Path) -> impl FnOnce(CarError) -> CliError + '_ {
        move |source| CliError::Car {
            path: path.to_owned(),
            source: Box::new(source),
        }
    }

    pub fn file(path: &std::path::Path) -> impl FnOnce(io::Error) -> CliError + '_ {
        move |source| CliError::File {
            path: path.to_owned(),
            source,
        }
    }
}

/// The class of a CAR error.
pub fn car_class(e: &CarError) -> ErrorClass {
    match e {
        CarError::Truncated(_) => ErrorClass::Truncated,
        CarError::Block(BlockError::HashMismatch { .. }) => ErrorClass::HashMismatch,
        CarError::Io(_) => ErrorClass::Io,
        _ => ErrorClass::Corrupt,
    }
}

fn class_code(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Io => 1,
        ErrorClass::WrongBase => 3,
        ErrorClass::Corrupt => 4,
        ErrorClass::HashMismatch => 5,
        ErrorClass::Truncated => 6,
    }
}

/// The process exit code for a failure (see `firmchain --help`).
pub fn exit_code(report: &anyhow::Error) -> u8 {
    match report.downcast_ref::<CliError>() {
        Some(CliError::Apply(e)) => class_code(e.class()),
        Some(CliError::Car { source, .. }) => class_code(car_class(source)),
        Some(CliError::Unpack { class, .. }) => class_code(*class),
        Some(CliError::Usage(_)) => 2,
        Some(CliError::Contract(firmchain_contracts::ContractError::Revert(_))) => 7,
        Some(CliError::Verify(_)) => 8,
        Some(CliError::Refused { .. }) => 8,
        Some(CliError::Light(firmchain_lightclient::client::ClientError::Consensus { .. })) => 8,
        Some(CliError::Light(firmchain_lightclient::client::ClientError::CheckpointTooOld { .. })) => 2,
        _ => 1,
    }
}
