//! `firmchain chain ...`: verified reads of the release index.

use std::future::IntoFuture;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use firmchain_contracts::{provider, slots};
use firmchain_lightclient::client::{ClientError as LightError, LightClient, Persisted};
use firmchain_lightclient::consensus::ChainSpec;
use firmchain_lightclient::execution::{verify_header, verify_storage_values};
use firmchain_lightclient::rpc::HttpRpc;
use firmchain_update::Sequence;
use serde_json::json;

use crate::cli::ChainCommand;
use crate::error::CliError;
use crate::output::Output;

async fn within<T, E: std::fmt::Display>(
    after: Duration,
    what: &'static str,
    fut: impl IntoFuture<Output = Result<T, E>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(after, fut.into_future()).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CliError::Rpc {
            what,
            message: e.to_string(),
        }),
        Err(_) => Err(CliError::Rpc {
            what,
            message: format!("timed out after {after:?}"),
        }),
    }
}

/// Run one `chain` subcommand on a small single-threaded runtime.
pub fn run(command: ChainCommand, out: &Output) -> Result<(), CliError> {
    super::block_on(run_async(command, out))
}

async fn run_async(command: ChainCommand, out: &Output) -> Result<(), CliError> {
    match command {
        ChainCommand::Status {
            consensus_rpc,
            checkpoint,
            state,
            weak_subjectivity_days,
            force_checkpoint,
            max_staleness,
            timeout,
        } => {
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
            let persisted = status(
                consensus_rpc,
                &checkpoint,
                window,
                force_checkpoint,
                max_staleness,
                timeout,
                out,
            )
            .await?;
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
            timeout,
        } => read_head(rpc, contract, product, block, timeout, out).await,
    }
}

async fn status(
    endpoints: Vec<String>,
    checkpoint: &str,
    window_seconds: u64,
    force: bool,
    max_staleness: u64,
    timeout: u64,
    out: &Output,
) -> Result<Persisted, CliError> {
    let mut root = [0u8; 32];
    alloy::hex::decode_to_slice(checkpoint.trim_start_matches("0x"), &mut root).map_err(|_| {
        CliError::Usage(format!(
            "--checkpoint {checkpoint:?} is not a 32-byte hex block root"
        ))
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rpc = HttpRpc::new(endpoints, Duration::from_secs(timeout)).map_err(LightError::from)?;
    let mut client = LightClient::start(ChainSpec::mainnet(), rpc, root, now, window_seconds, force).await?;
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
    rpc: String,
    contract: String,
    product: firmchain_update::ProductId,
    block: Option<u64>,
    timeout: u64,
    out: &Output,
) -> Result<(), CliError> {
    let t = Duration::from_secs(timeout);
    let address: Address = contract
        .parse()
        .map_err(|_| CliError::Usage(format!("--contract {contract:?} is not an address")))?;
    let reader = provider(&rpc, None)?;
    let tag = block.map_or(BlockNumberOrTag::Latest, BlockNumberOrTag::Number);
    let block = within(t, "fetching the block header", reader.get_block_by_number(tag))
        .await?
        .ok_or_else(|| CliError::Rpc {
            what: "fetching the block header",
            message: "no such block".into(),
        })?;
    verify_header(&block.header.inner, block.header.hash)?;
    let number = block.header.inner.number;
    let state_root = block.header.inner.state_root;

    // head first, then the digest and revocation of that sequence, all at the same block.
    let head_slot = [slots::head(&product)];
    let proof = within(
        t,
        "eth_getProof",
        reader.get_proof(address, head_slot.to_vec()).number(number),
    )
    .await?;
    let head = verify_storage_values(state_root, address, &head_slot, &proof)?[0];
    let sequence = Sequence(head.saturating_to());
    let keys = [
        slots::digest(&product, sequence),
        slots::revoked(&product, sequence),
    ];
    let proof = within(
        t,
        "eth_getProof",
        reader.get_proof(address, keys.to_vec()).number(number),
    )
    .await?;
    let values = verify_storage_values(state_root, address, &keys, &proof)?;
    let digest = B256::from(values[0]);
    let revoked = !values[1].is_zero();

    let result = json!({
        "product": product.to_string(), "sequence": sequence.0, "digest": digest.to_string(), "revoked": revoked,
        "block": number, "block_hash": block.header.hash.to_string(), "state_root": state_root.to_string(),
        "mode": "rpc",
    });
    out.result(&result, || {
        let state = if sequence.0 == 0 {
            "no release yet".to_owned()
        } else if revoked {
            format!("sequence {} (REVOKED)", sequence.0)
        } else {
            format!("sequence {}", sequence.0)
        };
        format!(
            "{product}: {state}\n  digest      {digest}\n  proven at   block {number} ({})\n  state root  {state_root} (rpc mode: header trusted, storage proven)",
            block.header.hash
        )
    });
    Ok(())
}
