//! `firmchain chain ...`: verified reads of the release index.

use std::time::Duration;

use alloy::primitives::Address;
use firmchain_actors::chain::{BlockError, HeaderSource, LightHead, verified_block};
use firmchain_contracts::proven::{ProvenError, read_head as read_proven_head};
use firmchain_lightclient::client::{ClientError as LightError, LightClient, Persisted};
use firmchain_lightclient::consensus::ChainSpec;
use firmchain_lightclient::execution_rpc::HttpExecutionRpc;
use firmchain_lightclient::rpc::HttpRpc;
use serde_json::json;

use crate::cli::ChainCommand;
use crate::error::CliError;
use crate::output::Output;

/// Run one `chain` subcommand on a small single-threaded runtime.
pub fn run(command: ChainCommand, out: &Output) -> Result<(), CliError> {
    super::block_on(run_async(command, out))
}

async fn run_async(command: ChainCommand, out: &Output) -> Result<(), CliError> {
    match command {
        ChainCommand::Checkpoint(command) => super::checkpoint::run(command, out).await,
        ChainCommand::Status {
            consensus_rpc,
            checkpoint,
            state,
            weak_subjectivity_days,
            force_checkpoint,
            max_staleness,
            chain_config,
            network,
            rpc_timeout: timeout,
        } => {
            let spec = chain_spec(network.as_deref(), chain_config.as_deref())?;
            let window = weak_subjectivity_days * 24 * 3600;
            let saved = state.as_deref().and_then(Persisted::load);
            let checkpoint = match (saved.map(|p| p.checkpoint), checkpoint) {
                (Some(saved), _) => saved,
                (None, Some(given)) => given,
                (None, None) => {
                    return Err(CliError::Usage(
                        "--checkpoint is required until --state holds one".into(),
                    ));
                }
            };
            let light = Light {
                spec,
                endpoints: consensus_rpc,
                checkpoint,
                optimistic: false,
                force: force_checkpoint,
            };
            let persisted = status(light, window, max_staleness, timeout, out).await?;
            if let Some(path) = state {
                persisted.save(&path).map_err(CliError::file(&path))?;
            }
            Ok(())
        }
        ChainCommand::ReadHead {
            rpc,
            contract,
            product,
            block,
            consensus_rpc,
            checkpoint,
            chain_config,
            network,
            optimistic,
            force_checkpoint,
            rpc_timeout: timeout,
        } => {
            let light = match (consensus_rpc.is_empty(), checkpoint) {
                (true, None) => None,
                (false, Some(checkpoint)) => Some(Light {
                    spec: chain_spec(network.as_deref(), chain_config.as_deref())?,
                    endpoints: consensus_rpc,
                    checkpoint,
                    optimistic,
                    force: force_checkpoint,
                }),
                _ => {
                    return Err(CliError::Usage(
                        "light mode needs both --consensus-rpc and --checkpoint".into(),
                    ));
                }
            };
            read_head(rpc, contract, product, block, light, timeout, out).await
        }
    }
}

/// The consensus chain: a network preset, a config file, or Ethereum mainnet.
pub(super) fn chain_spec(
    network: Option<&str>,
    path: Option<&std::path::Path>,
) -> Result<ChainSpec, CliError> {
    if let Some(name) = network {
        return ChainSpec::network(name)
            .ok_or_else(|| CliError::Usage(format!("--network {name:?}: not mainnet, sepolia or hoodi")));
    }
    match path {
        None => Ok(ChainSpec::mainnet()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(CliError::file(p))?;
            ChainSpec::from_config(&text).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))
        }
    }
}

/// Light-client settings of `status` and of `read-head` in light mode.
struct Light {
    spec: ChainSpec,
    endpoints: Vec<String>,
    checkpoint: String,
    optimistic: bool,
    force: bool,
}

/// A checkpoint (beacon block root) given as `what` (`--checkpoint`, `chain.checkpoint`).
pub(super) fn parse_root(what: &str, checkpoint: &str) -> Result<[u8; 32], CliError> {
    let mut root = [0u8; 32];
    alloy::hex::decode_to_slice(checkpoint.trim_start_matches("0x"), &mut root)
        .map_err(|_| CliError::Usage(format!("{what} {checkpoint:?} is not a 32-byte hex block root")))?;
    Ok(root)
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn status(
    light: Light,
    window_seconds: u64,
    max_staleness: u64,
    timeout: u64,
    out: &Output,
) -> Result<Persisted, CliError> {
    let root = parse_root("--checkpoint", &light.checkpoint)?;
    let now = unix_now();
    let rpc = HttpRpc::new(light.endpoints, Duration::from_secs(timeout)).map_err(LightError::from)?;
    let mut client = LightClient::start(light.spec, rpc, root, now, window_seconds, light.force).await?;
    let report = client.sync(now).await?;
    let staleness = client.staleness(now);
    let stale = staleness > max_staleness;
    let head = |h: &firmchain_lightclient::consensus::LightClientHeader| {
        json!({ "slot": h.beacon.slot, "beacon_root": alloy::hex::encode_prefixed(h.beacon.hash_tree_root()),
            "block": h.execution.as_ref().map(|e| e.block_number),
            "block_hash": h.execution.as_ref().map(|e| alloy::hex::encode_prefixed(e.block_hash)) })
    };
    let result = json!({
        "network": client.spec.name, "mode": "light",
        "finalized": head(&client.store.finalized_header), "optimistic": head(&client.store.optimistic_header),
        "staleness_seconds": staleness, "stale": stale, "updates_accepted": report.accepted,
    });
    out.result(&result, || {
        let block = |b: Option<u64>| b.map_or_else(|| "-".into(), |b| b.to_string());
        let mut s = format!(
            "network    {} (light client, sync committee verified)\nfinalized  slot {} block {}\noptimistic slot {} block {}\nhead age   {staleness} s",
            client.spec.name,
            report.finalized_slot,
            block(report.finalized_block),
            report.optimistic_slot,
            block(report.optimistic_block),
        );
        if stale {
            s.push_str(&format!("\nSTALE: the verified head is older than {max_staleness} s; check the consensus RPC"));
        }
        s
    });
    Ok(client.persisted())
}

async fn read_head(
    rpc: Vec<String>,
    contract: String,
    product: firmchain_update::ProductId,
    block: Option<u64>,
    light: Option<Light>,
    timeout: u64,
    out: &Output,
) -> Result<(), CliError> {
    let t = Duration::from_secs(timeout);
    let address: Address = contract
        .parse()
        .map_err(|_| CliError::Usage(format!("--contract {contract:?} is not an address")))?;
    let reader = HttpExecutionRpc::new(rpc, t).map_err(|e| CliError::Rpc {
        what: "execution RPC",
        message: e.to_string(),
    })?;
    let now = unix_now();
    let (mut source, mode) = match light {
        Some(light) => {
            let consensus = HttpRpc::new(light.endpoints, t).map_err(LightError::from)?;
            let root = parse_root("--checkpoint", &light.checkpoint)?;
            let client = LightClient::start(
                light.spec,
                consensus,
                root,
                now,
                firmchain_lightclient::client::DEFAULT_WEAK_SUBJECTIVITY_SECONDS,
                light.force,
            )
            .await?;
            let (head, mode) = if light.optimistic {
                (LightHead::Optimistic, "light (optimistic)")
            } else {
                (LightHead::Finalized, "light (finalized)")
            };
            let client = Box::new(client);
            (HeaderSource::Light { client, head }, mode)
        }
        None => (HeaderSource::Rpc, "rpc"),
    };
    // The same verified block as the node's IndexWatcher.
    let verified = verified_block(&reader, &mut source, block, now)
        .await
        .map_err(|e| match e {
            BlockError::Rpc(r) => CliError::Rpc {
                what: "fetching the block header",
                message: r.to_string(),
            },
            BlockError::Header(v) => CliError::Verify(v),
            BlockError::Light(l) => CliError::Light(l),
            e @ (BlockError::NoExecution { .. } | BlockError::Blocked(_)) => CliError::Rpc {
                what: "light client",
                message: e.to_string(),
            },
        })?;
    let (number, block_hash, state_root) = (verified.block, verified.hash, verified.state_root);
    let head = read_proven_head(&reader, address, &product, number, state_root)
        .await
        .map_err(|e| match e {
            ProvenError::Verify(v) => CliError::Verify(v),
            ProvenError::Rpc(r) => CliError::Rpc {
                what: "eth_getProof",
                message: r.to_string(),
            },
        })?;
    let (sequence, digest, revoked) = (head.sequence, head.digest, head.revoked);

    let result = json!({
        "product": product.to_string(), "sequence": sequence.0, "digest": digest.to_string(), "revoked": revoked,
        "block": number, "block_hash": block_hash.to_string(), "state_root": state_root.to_string(),
        "mode": mode,
    });
    out.result(&result, || {
        let state = if sequence.0 == 0 {
            "no release yet".to_owned()
        } else if revoked {
            format!("sequence {} (REVOKED)", sequence.0)
        } else {
            format!("sequence {}", sequence.0)
        };
        let trust = if mode == "rpc" {
            "rpc mode: header trusted, storage proven"
        } else {
            "light mode: header verified by the sync committee, storage proven"
        };
        format!(
            "{product}: {state}\n  digest      {digest}\n  proven at   block {number} ({block_hash})\n  state root  {state_root} ({trust})"
        )
    });
    Ok(())
}
