//! The light client of a node at start: the consensus chain, the newer of the configured and the persisted
//! checkpoint, and what a node past the weak-subjectivity window does instead of stopping.

use firmchain_config::{ChainMode, Config};
use firmchain_lightclient::client::{ClientError, LightClient};
use firmchain_lightclient::consensus::ChainSpec;
use firmchain_lightclient::rpc::HttpRpc;

use super::{NodeError, chain_spec, http_options};
use crate::state::NodeState;
use crate::unix_now;
use crate::watcher::{HeaderSource, LightHead};

/// The consensus chain of `chain`: a network preset, a config file, or Ethereum mainnet.
pub fn spec_of(chain: &firmchain_config::ChainConfig) -> Result<ChainSpec, NodeError> {
    match chain.network.as_deref().and_then(ChainSpec::network) {
        Some(spec) => Ok(spec),
        None => chain_spec(chain.chain_config.as_deref()),
    }
}

/// What `/status` and the log say of a device whose checkpoint is past the weak-subjectivity window.
pub fn too_old_message(checkpoint: &str, slot: u64, age_seconds: u64, window_seconds: u64) -> String {
    let days = |s: u64| s as f64 / 86_400.0;
    format!(
        "the light client's checkpoint {checkpoint} (slot {slot}) is {age_seconds} s ({:.1} days) old, beyond the \
         weak-subjectivity window of {window_seconds} s ({:.1} days): nothing is verified or installed, the \
         installed image keeps running. Stop the node, run `firmchain chain checkpoint set <root>` with a recent \
         finalized beacon block root from a source you trust (or configure a newer chain.checkpoint), and \
         start it again",
        days(age_seconds),
        days(window_seconds),
    )
}

/// The warning a node with `chain.force_update` on gives at start and in `/status`.
pub const FORCE_UPDATE_WARNING: &str = "chain.force_update is on: after a sync-committee period without \
    finality the light client takes the best update seen as finalized, even one only a minority of the \
    committee signed; turn it off unless you must follow a chain through a long loss of finality";

/// The header source of the configured chain mode. A light client whose checkpoints are all past the
/// weak-subjectivity window does not stop the node: it becomes [`HeaderSource::Blocked`], and the reason is
/// returned to be shown in `/status`.
pub(super) async fn header_source(
    config: &Config,
    checkpoint: Option<[u8; 32]>,
    state: &NodeState,
) -> Result<(HeaderSource<HttpRpc>, Option<String>), NodeError> {
    let c = &config.chain;
    // rpc mode; and peers mode, whose proof follower verifies headers itself (no watcher uses the source).
    if c.mode != ChainMode::Light {
        return Ok((HeaderSource::Rpc, None));
    }
    // Resume from the newer of the persisted finalized header and the configured checkpoint (a fresh checkpoint
    // recovers a device that was offline past the weak-subjectivity window), with the participation maxima.
    let saved = state.light_client()?;
    let spec = spec_of(c)?;
    let rpc =
        HttpRpc::with_options(c.consensus_rpc.clone(), &http_options(config)).map_err(ClientError::from)?;
    let window = c.weak_subjectivity_days * 24 * 3600;
    match LightClient::resume(spec, rpc, checkpoint, saved.as_ref(), unix_now(), window, false).await {
        Ok(mut client) => {
            client.force_update = c.force_update;
            let source = HeaderSource::Light {
                client: Box::new(client),
                head: LightHead::Authorised,
            };
            Ok((source, None))
        }
        Err(ClientError::CheckpointTooOld {
            checkpoint,
            checkpoint_slot,
            age_seconds,
            window_seconds,
        }) => {
            let reason = too_old_message(&checkpoint, checkpoint_slot, age_seconds, window_seconds);
            tracing::error!(
                %checkpoint,
                slot = checkpoint_slot,
                age_seconds,
                window_seconds,
                "checkpoint past the weak-subjectivity window: {reason}"
            );
            Ok((
                HeaderSource::Blocked {
                    reason: reason.clone(),
                },
                Some(reason),
            ))
        }
        Err(e) => Err(e.into()),
    }
}
