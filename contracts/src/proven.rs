//! Reads of the index proven against a state root: `head[product]`, then `digest` and `revoked` of that
//! sequence, all at one block, each checked with `eth_getProof` (account proof, then storage proofs). The
//! state root comes from a verified header (the light client, or a header checked against its hash).

use alloy::primitives::{Address, B256};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use firmchain_lightclient::execution::{ExecutionError, verify_storage_values};
use firmchain_lightclient::execution_rpc::ExecutionRpc;
use firmchain_lightclient::rpc::RpcError;
use firmchain_update::{ProductId, ReleaseRecord, Sequence};

use crate::FirmwareIndex;
use crate::events::{DEFAULT_LOG_RANGE, logs_in_ranges};

use crate::slots;

/// A product's newest release as the index holds it at one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvenHead {
    /// The newest sequence (0: no release yet).
    pub sequence: Sequence,
    /// keccak of the release record.
    pub digest: B256,
    /// Whether that release is revoked.
    pub revoked: bool,
}

/// Why a proven read failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvenError {
    #[error("eth_getProof: {0}")]
    Rpc(#[from] RpcError),
    #[error("verification failed: {0}")]
    Verify(#[from] ExecutionError),
}

/// Run `read` against `rpc`; when an answer fails verification, demote the endpoint that gave it (see
/// [`ExecutionRpc::demote`]) and run `read` again, until every endpoint had its turn. Transport errors are
/// already failed over inside the client.
pub async fn with_failover<'a, R, T, F, Fut>(rpc: &'a R, read: F) -> Result<T, ProvenError>
where
    R: ExecutionRpc,
    F: Fn(&'a R) -> Fut,
    Fut: std::future::Future<Output = Result<T, ProvenError>>,
{
    let mut attempts = rpc.endpoint_count().max(1);
    loop {
        match read(rpc).await {
            Err(ProvenError::Verify(e)) => {
                attempts -= 1;
                if attempts == 0 || rpc.demote(&e.to_string()).is_none() {
                    return Err(ProvenError::Verify(e));
                }
            }
            other => return other,
        }
    }
}

/// Read and prove `product`'s head at block `number`, whose state root is `state_root`.
pub async fn read_head(
    rpc: &impl ExecutionRpc,
    index: Address,
    product: &ProductId,
    number: u64,
    state_root: B256,
) -> Result<ProvenHead, ProvenError> {
    let head_slot = [slots::head(product)];
    let proof = rpc.proof(index, head_slot.to_vec(), number).await?;
    let head = verify_storage_values(state_root, index, &head_slot, &proof)?[0];
    let sequence = Sequence(head.saturating_to());
    let keys = [
        slots::digest(product, sequence),
        slots::revoked(product, sequence),
    ];
    let proof = rpc.proof(index, keys.to_vec(), number).await?;
    let values = verify_storage_values(state_root, index, &keys, &proof)?;
    Ok(ProvenHead {
        sequence,
        digest: B256::from(values[0]),
        revoked: !values[1].is_zero(),
    })
}

/// A verified block: its number and state root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtBlock {
    /// The block number.
    pub number: u64,
    /// Its state root (from a verified header).
    pub state_root: B256,
}

/// Releases read from `ReleasePublished` events and checked against proven digests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvenReleases {
    /// Records whose keccak equals the proven `digest[product][sequence]`, in sequence order, with the block of
    /// their event and whether the index marks them revoked.
    pub found: Vec<(u64, ReleaseRecord, bool)>,
    /// Sequences for which events were served but none matched the proven digest, with what was wrong.
    pub forged: Vec<(Sequence, String)>,
    /// Sequences for which no event was served.
    pub missing: Vec<Sequence>,
    /// Events whose record is proven but whose position is not believable (a block number outside the
    /// verified range): the endpoint that served them lies.
    pub lies: Vec<String>,
}

/// The most releases one read looks at; a device further behind takes the newest ones (the full image).
pub const MAX_RELEASES_PER_READ: u64 = 64;

/// [`read_releases_in`] with `eth_getLogs` ranges of [`DEFAULT_LOG_RANGE`] blocks.
pub async fn read_releases(
    rpc: &impl ExecutionRpc,
    index: Address,
    product: &ProductId,
    after: Sequence,
    head: Sequence,
    from_block: u64,
    at: AtBlock,
) -> Result<ProvenReleases, ProvenError> {
    let mut range = DEFAULT_LOG_RANGE;
    read_releases_in(rpc, index, product, after, head, from_block, at, &mut range).await
}

/// The releases of `product` after `after` up to `head`, from events in blocks `from_block..=at.number` (read
/// in ranges of at most `*log_range` blocks, halved when the provider refuses one), each checked against
/// `digest[product][sequence]` proven at `at`. Events are untrusted: a record counts only if its keccak is the
/// proven digest, and only with a block number inside the scanned, verified range (the block returned for a
/// found release is safe to move a cursor on).
#[allow(clippy::too_many_arguments)]
pub async fn read_releases_in(
    rpc: &impl ExecutionRpc,
    index: Address,
    product: &ProductId,
    after: Sequence,
    head: Sequence,
    from_block: u64,
    at: AtBlock,
    log_range: &mut u64,
) -> Result<ProvenReleases, ProvenError> {
    let AtBlock { number, state_root } = at;
    if head <= after {
        return Ok(ProvenReleases::default());
    }
    let first = after.0.max(head.0.saturating_sub(MAX_RELEASES_PER_READ)) + 1;
    let seqs: Vec<Sequence> = (first..=head.0).map(Sequence).collect();
    let filter = Filter::new()
        .address(index)
        .event_signature(FirmwareIndex::ReleasePublished::SIGNATURE_HASH)
        .topic1(B256::from(product.0));
    let logs = logs_in_ranges(rpc, &filter, from_block.min(number), number, log_range).await?;
    let keys: Vec<B256> = seqs
        .iter()
        .flat_map(|s| [slots::digest(product, *s), slots::revoked(product, *s)])
        .collect();
    let proof = rpc.proof(index, keys.clone(), number).await?;
    let values = verify_storage_values(state_root, index, &keys, &proof)?;

    let mut out = ProvenReleases::default();
    for (i, seq) in seqs.iter().enumerate() {
        let digest = B256::from(values[2 * i]);
        let revoked = !values[2 * i + 1].is_zero();
        let mut problems = Vec::new();
        let mut hit = None;
        for (log, verdict) in &logs {
            let Ok(event) = FirmwareIndex::ReleasePublished::decode_log_data(&log.inner.data) else {
                problems.push("an undecodable ReleasePublished event".to_owned());
                continue;
            };
            if event.sequence != seq.0 {
                continue;
            }
            let record = match ReleaseRecord::try_from(&event.record) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            let got = B256::from(record.digest());
            if got != digest || record.sequence != *seq || record.product != *product {
                problems.push(format!(
                    "the event's record hashes to {got}, the proven digest is {digest}"
                ));
                continue;
            }
            // The record is proven; where the event sits is not. A block number outside the verified range
            // is a lie: the release still counts, at the start of the range (so a cursor moved on it cannot
            // skip anything), and the lie is reported.
            let block = match verdict {
                Ok(block) => *block,
                Err(why) => {
                    out.lies.push(format!("release {seq}: {why}"));
                    from_block.min(number)
                }
            };
            hit = Some((block, record));
            break;
        }
        match hit {
            Some((block, record)) => out.found.push((block, record, revoked)),
            None if problems.is_empty() => out.missing.push(*seq),
            None => out.forged.push((*seq, problems.join("; "))),
        }
    }
    Ok(out)
}

/// Whether each of `seqs` is revoked, proven at block `number`.
pub async fn read_revoked(
    rpc: &impl ExecutionRpc,
    index: Address,
    product: &ProductId,
    seqs: &[Sequence],
    number: u64,
    state_root: B256,
) -> Result<Vec<bool>, ProvenError> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<B256> = seqs.iter().map(|s| slots::revoked(product, *s)).collect();
    let proof = rpc.proof(index, keys.clone(), number).await?;
    let values = verify_storage_values(state_root, index, &keys, &proof)?;
    Ok(values.iter().map(|v| !v.is_zero()).collect())
}
