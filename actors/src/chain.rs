//! A verified block, from any execution and consensus RPC: the one path shared by the IndexWatcher and
//! `firmchain chain read-head`.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::B256;
use firmchain_lightclient::client::{ClientError, LightClient};
use firmchain_lightclient::execution::{ExecutionError, verify_header};
use firmchain_lightclient::execution_rpc::ExecutionRpc;
use firmchain_lightclient::rpc::{ConsensusRpc, RpcError};

use crate::messages::{ChainHead, LightAuth};

/// Which sync-committee verified header a light-mode read is proven against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LightHead {
    /// The newest header the committee signed above the safety threshold.
    Optimistic,
    /// The newest header that may authorise an install: the finalized header, or a header attested by at least
    /// two thirds of the sync committee (what the IndexWatcher follows).
    Authorised,
    /// The newest finalized header.
    Finalized,
}

/// Where verified headers come from.
#[derive(Debug)]
pub enum HeaderSource<C> {
    /// A trusted execution RPC: a header checked against its hash (dev chains).
    Rpc,
    /// The embedded light client; callers save its progress ([`LightClient::persisted`]) after a read.
    Light {
        client: Box<LightClient<C>>,
        head: LightHead,
    },
    /// Light mode without a usable checkpoint (e.g. past the weak-subjectivity window): nothing is verified
    /// and every read fails with `reason`, until an operator sets a fresh checkpoint and restarts the node.
    Blocked { reason: String },
}

/// Why no verified block could be had.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("execution RPC: {0}")]
    Rpc(#[from] RpcError),
    #[error("header verification failed: {0}")]
    Header(#[from] ExecutionError),
    #[error("light client: {0}")]
    Light(#[from] ClientError),
    #[error("header verification failed: the verified header at slot {slot} has no execution payload")]
    NoExecution { slot: u64 },
    #[error("{0}")]
    Blocked(String),
}

impl<C> HeaderSource<C> {
    /// `rpc` or `light`, as `/status` names it.
    pub fn mode(&self) -> &'static str {
        match self {
            HeaderSource::Rpc => "rpc",
            HeaderSource::Light { .. } | HeaderSource::Blocked { .. } => "light",
        }
    }

    /// The light client, in light mode.
    pub fn light_client(&self) -> Option<&LightClient<C>> {
        match self {
            HeaderSource::Rpc | HeaderSource::Blocked { .. } => None,
            HeaderSource::Light { client, .. } => Some(client),
        }
    }
}

/// A verified block: in `rpc` mode the header of `block` (default: the latest) from `rpc`, checked against its
/// hash; in light mode the light client synced at `now` and its optimistic or finalized execution header.
pub async fn verified_block<E: ExecutionRpc, C: ConsensusRpc>(
    rpc: &E,
    source: &mut HeaderSource<C>,
    block: Option<u64>,
    now: u64,
) -> Result<ChainHead, BlockError> {
    match source {
        HeaderSource::Blocked { reason } => Err(BlockError::Blocked(reason.clone())),
        HeaderSource::Rpc => {
            let tag = block.map_or(BlockNumberOrTag::Latest, BlockNumberOrTag::Number);
            let (header, hash) = rpc.header(tag).await?;
            verify_header(&header, hash)?;
            Ok(ChainHead {
                block: header.number,
                hash,
                state_root: header.state_root,
                timestamp: header.timestamp,
                mode: "rpc",
                light: None,
            })
        }
        HeaderSource::Light { client, head } => {
            let report = client.sync(now).await?;
            let header = match head {
                LightHead::Optimistic => &client.store.optimistic_header,
                LightHead::Authorised => client.authorised_header(),
                LightHead::Finalized => &client.store.finalized_header,
            };
            let execution = header.execution.as_ref().ok_or(BlockError::NoExecution {
                slot: header.beacon.slot,
            })?;
            let slot = header.beacon.slot;
            let finalized = slot == client.store.finalized_header.beacon.slot;
            let light = LightAuth {
                slot,
                finalized,
                participation: match head {
                    LightHead::Authorised if !finalized => report.authorised_participation,
                    _ => None,
                },
            };
            Ok(ChainHead {
                block: execution.block_number,
                hash: B256::from(execution.block_hash),
                state_root: B256::from(execution.state_root),
                timestamp: execution.timestamp,
                mode: "light",
                light: Some(light),
            })
        }
    }
}
