//! `firmchain chain ...`: verified reads of the release index.

use std::future::IntoFuture;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use firmchain_contracts::{provider, slots};
use firmchain_lightclient::execution::{verify_header, verify_storage_values};
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Demo(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(command, out))
}

async fn run_async(command: ChainCommand, out: &Output) -> Result<(), CliError> {
    let ChainCommand::ReadHead {
        rpc,
        contract,
        product,
        block,
        timeout,
    } = command;
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
