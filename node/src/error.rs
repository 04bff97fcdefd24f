//! Errors of the CLI commands and their exit codes.

use std::io;
use std::path::PathBuf;

use firmchain_update::car::CarError;
use firmchain_update::dag::BlockError;
#[cfg(feature = "publisher")]
use firmchain_update::patch::CreateError;
use firmchain_update::patch::{ApplyError, ErrorClass};

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[cfg(feature = "publisher")]
    #[error(transparent)]
    Create(#[from] CreateError),
    #[cfg(not(feature = "publisher"))]
    #[error(
        "`firmchain {command}` is not in this build (a device build): it needs the cargo feature `{feature}`"
    )]
    NotInBuild {
        command: &'static str,
        feature: &'static str,
    },
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
    #[error("{0}")]
    Secret(#[from] firmchain_config::SecretError),
    #[error("{0}")]
    Unhealthy(String),
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

/// The process exit codes: the one list that `firmchain --help` prints and [`exit_code`] maps failures to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failure = 1,
    Usage = 2,
    WrongBase = 3,
    Corrupt = 4,
    HashMismatch = 5,
    Truncated = 6,
    Refused = 7,
    Unverified = 8,
    Unhealthy = 9,
}

impl Exit {
    /// Every code, in order.
    pub const ALL: [Exit; 10] = [
        Exit::Success,
        Exit::Failure,
        Exit::Usage,
        Exit::WrongBase,
        Exit::Corrupt,
        Exit::HashMismatch,
        Exit::Truncated,
        Exit::Refused,
        Exit::Unverified,
        Exit::Unhealthy,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What it means, for `--help` and the man page.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "I/O or other failure",
            Exit::Usage => "usage or configuration error",
            Exit::WrongBase => "the update is for another base image",
            Exit::Corrupt => "corrupt input",
            Exit::HashMismatch => "hash mismatch",
            Exit::Truncated => "truncated input",
            Exit::Refused => "refused by the contract",
            Exit::Unverified => "chain data failed verification",
            Exit::Unhealthy => "the node is not healthy (`node health`)",
        }
    }
}

/// The exit codes as `--help` shows them.
pub fn exit_codes_help() -> String {
    let mut s = String::from("Exit codes:");
    for e in Exit::ALL {
        s.push_str(&format!("\n  {:>2}  {}", e.code(), e.meaning()));
    }
    s
}

fn class_code(class: ErrorClass) -> Exit {
    match class {
        ErrorClass::Io => Exit::Failure,
        ErrorClass::WrongBase => Exit::WrongBase,
        ErrorClass::Corrupt => Exit::Corrupt,
        ErrorClass::HashMismatch => Exit::HashMismatch,
        ErrorClass::Truncated => Exit::Truncated,
    }
}

/// The process exit code for a failure (see `firmchain --help`).
pub fn exit_code(report: &anyhow::Error) -> u8 {
    use firmchain_lightclient::client::ClientError;
    let exit = match report.downcast_ref::<CliError>() {
        Some(CliError::Apply(e)) => class_code(e.class()),
        Some(CliError::Car { source, .. }) => class_code(car_class(source)),
        Some(CliError::Unpack { class, .. }) => class_code(*class),
        Some(CliError::Usage(_) | CliError::Secret(_)) => Exit::Usage,
        #[cfg(not(feature = "publisher"))]
        Some(CliError::NotInBuild { .. }) => Exit::Usage,
        Some(CliError::Contract(firmchain_contracts::ContractError::Revert(_))) => Exit::Refused,
        Some(CliError::Verify(_)) => Exit::Unverified,
        Some(CliError::Refused { .. }) => Exit::Unverified,
        Some(CliError::Light(ClientError::Consensus { .. })) => Exit::Unverified,
        Some(CliError::Light(ClientError::CheckpointTooOld { .. })) => Exit::Usage,
        Some(CliError::Unhealthy(_)) => Exit::Unhealthy,
        _ => Exit::Failure,
    };
    exit.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_code_is_listed_once_in_order() {
        for (i, e) in Exit::ALL.iter().enumerate() {
            assert_eq!(usize::from(e.code()), i);
        }
        let help = exit_codes_help();
        assert!(help.contains(" 9  the node is not healthy"), "{help}");
        assert!(help.contains(" 2  usage"), "{help}");
    }
}
