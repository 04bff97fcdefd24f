//! Event scanning that an untrusted RPC cannot steer: `eth_getLogs` in bounded block ranges (halved when the
//! provider says a range is too large), every event's block checked against the verified block, and the
//! persisted event cursor moved only on verified numbers, at or below the finalized block minus a lookback.
//! Events are hints: the storage proofs decide what a release is.

use alloy::rpc::types::{Filter, Log};
use firmchain_lightclient::execution_rpc::ExecutionRpc;
use firmchain_lightclient::rpc::RpcError;

/// Blocks per `eth_getLogs` call unless configured (`chain.log_range`); public providers cap ranges at a few
/// thousand to 10,000 blocks, and the range is halved when one refuses it.
pub const DEFAULT_LOG_RANGE: u64 = 2_000;

/// Blocks below the finalized block the cursor stays, so a reorg near finality does not skip an event.
pub const DEFAULT_LOOKBACK: u64 = 64;

/// Whether an RPC error says the block range (or the result) of an `eth_getLogs` call is too large.
pub fn is_range_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "range",
        "too large",
        "too many",
        "limit exceeded",
        "exceeds",
        "-32005",
        "response size",
        "query returned more than",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// The inclusive block ranges `from..=to` in steps of at most `range` blocks.
pub fn ranges(from: u64, to: u64, range: u64) -> impl Iterator<Item = (u64, u64)> {
    let step = range.max(1);
    let mut next = Some(from).filter(|f| *f <= to);
    std::iter::from_fn(move || {
        let start = next?;
        let end = start.saturating_add(step - 1).min(to);
        next = end.checked_add(1).filter(|n| *n <= to);
        Some((start, end))
    })
}

/// Why a log cannot be used even as a hint.
pub fn check_log(log: &Log, from: u64, verified: u64) -> Result<u64, String> {
    if log.removed {
        return Err("the event was removed by a reorg".into());
    }
    let Some(block) = log.block_number else {
        return Err("the event carries no block number".into());
    };
    if block > verified {
        return Err(format!(
            "the event claims block {block}, beyond the verified block {verified}"
        ));
    }
    if block < from {
        return Err(format!(
            "the event claims block {block}, before the scanned range that starts at {from}"
        ));
    }
    Ok(block)
}

/// Logs matching `filter` in `from..=to`, asked for in ranges of at most `*range` blocks; a range the provider
/// refuses as too large is halved (down to one block) and `*range` keeps the size that worked. Every log is
/// returned with [`check_log`]'s verdict.
pub async fn logs_in_ranges(
    rpc: &impl ExecutionRpc,
    filter: &Filter,
    from: u64,
    to: u64,
    range: &mut u64,
) -> Result<Vec<(Log, Result<u64, String>)>, RpcError> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = start.saturating_add((*range).max(1) - 1).min(to);
        let f = filter.clone().from_block(start).to_block(end);
        match rpc.logs(&f).await {
            Ok(logs) => {
                for log in logs {
                    let verdict = check_log(&log, from, to);
                    out.push((log, verdict));
                }
                match end.checked_add(1) {
                    Some(n) => start = n,
                    None => break,
                }
            }
            Err(e) if *range > 1 && is_range_error(&e.to_string()) => *range = (*range / 2).max(1),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The first block the next event scan reads.
///
/// - `cursor`: the persisted cursor (which an older version may have set from an RPC's lie: it is clamped);
/// - `from_block`: the index's deployment block (`chain.from_block`), where a full scan starts;
/// - `safe`: the verified finalized block (light mode) or the verified head (rpc mode);
/// - `pending_first`: the verified block of the earliest event of a release seen but not installed;
/// - `scanned_to`: the last block this poll scanned (the verified block), if every proven release was
///   delivered; `None` if a release the index holds had no (valid) event: rescan from `from_block`.
pub fn next_cursor(
    cursor: u64,
    from_block: u64,
    safe: u64,
    lookback: u64,
    pending_first: Option<u64>,
    scanned_to: Option<u64>,
) -> u64 {
    let ceiling = safe.saturating_sub(lookback).max(from_block);
    let Some(scanned_to) = scanned_to else {
        return from_block;
    };
    let proposed = match pending_first {
        Some(block) => block.min(scanned_to),
        None => scanned_to.saturating_add(1),
    };
    proposed.max(cursor.min(ceiling)).min(ceiling)
}

/// The first block to scan this poll: the cursor, clamped to the verified block, never before `from_block`.
pub fn scan_start(cursor: u64, from_block: u64, verified: u64) -> u64 {
    cursor.min(verified).max(from_block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;

    #[test]
    fn ranges_cover_every_block_once() {
        let r: Vec<_> = ranges(10, 25, 5).collect();
        assert_eq!(r, vec![(10, 14), (15, 19), (20, 24), (25, 25)]);
        assert_eq!(ranges(5, 4, 10).count(), 0);
        assert_eq!(ranges(0, 0, 0).collect::<Vec<_>>(), vec![(0, 0)]);
        assert_eq!(ranges(u64::MAX - 1, u64::MAX, 10).count(), 1);
    }

    #[test]
    fn the_cursor_never_moves_past_the_finalized_block_minus_the_lookback() {
        // An RPC's event said block 10^12: the verified pending block is what moves the cursor, clamped.
        assert_eq!(
            next_cursor(0, 0, 1000, 64, Some(1_000_000_000_000), Some(1100)),
            936
        );
        // Nothing pending: up to the ceiling, not to the verified head.
        assert_eq!(next_cursor(100, 0, 1000, 64, None, Some(1100)), 936);
        // A cursor persisted from a lie (or past a reorged head) comes back down.
        assert_eq!(next_cursor(1_000_000_000_000, 0, 1000, 64, None, Some(1100)), 936);
        // A pending release keeps the cursor at its event.
        assert_eq!(next_cursor(100, 0, 1000, 64, Some(500), Some(1100)), 500);
        // It never goes back on its own...
        assert_eq!(next_cursor(700, 0, 1000, 64, Some(500), Some(1100)), 700);
        // ...unless a proven release had no event: rescan from the deployment block.
        assert_eq!(next_cursor(700, 42, 1000, 64, Some(500), None), 42);
        // A young chain: the cursor stays at the deployment block.
        assert_eq!(next_cursor(0, 42, 50, 64, None, Some(60)), 42);
        assert_eq!(scan_start(1_000_000_000_000, 42, 1000), 1000);
        assert_eq!(scan_start(0, 42, 1000), 42);
    }

    #[test]
    fn range_errors_of_public_providers_are_recognised() {
        for m in [
            "query exceeds max block range 1000",
            "eth_getLogs is limited to a 10,000 range",
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
            "query returned more than 10000 results",
            "error code -32005: limit exceeded",
        ] {
            assert!(is_range_error(m), "{m}");
        }
        assert!(!is_range_error("connection refused"));
    }

    /// A provider that refuses ranges wider than 100 blocks and serves one log per block in range.
    struct Capped;
    impl ExecutionRpc for Capped {
        async fn header(
            &self,
            _: alloy::eips::BlockNumberOrTag,
        ) -> Result<(alloy::consensus::Header, alloy::primitives::B256), RpcError> {
            Err(RpcError::NoEndpoint)
        }
        async fn proof(
            &self,
            _: Address,
            _: Vec<alloy::primitives::B256>,
            _: u64,
        ) -> Result<alloy::rpc::types::EIP1186AccountProofResponse, RpcError> {
            Err(RpcError::NoEndpoint)
        }
        async fn block_receipts(
            &self,
            _: u64,
        ) -> Result<Vec<alloy::rpc::types::TransactionReceipt>, RpcError> {
            Err(RpcError::NoEndpoint)
        }
        async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, RpcError> {
            let from = filter.get_from_block().unwrap_or(0);
            let to = filter.get_to_block().unwrap_or(0);
            if to - from + 1 > 100 {
                return Err(RpcError::Http {
                    endpoint: "capped".into(),
                    path: " eth_getLogs".into(),
                    message: "query exceeds max block range 100".into(),
                });
            }
            Ok((from..=to)
                .filter(|b| b % 50 == 0)
                .map(|b| Log {
                    block_number: Some(b),
                    ..Log::default()
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn a_refused_range_is_halved_until_the_provider_takes_it() {
        let mut range = 1000;
        let logs = logs_in_ranges(&Capped, &Filter::new(), 0, 999, &mut range)
            .await
            .unwrap();
        assert_eq!(range, 62, "1000 → 500 → 250 → 125 → 62");
        let blocks: Vec<u64> = logs.iter().map(|(l, _)| l.block_number.unwrap()).collect();
        assert_eq!(blocks, (0..1000).step_by(50).collect::<Vec<_>>());
        assert!(logs.iter().all(|(_, v)| v.is_ok()));
    }

    #[test]
    fn events_beyond_the_verified_block_are_refused() {
        let log = |b| Log {
            block_number: Some(b),
            ..Log::default()
        };
        assert_eq!(check_log(&log(90), 10, 100), Ok(90));
        let e = check_log(&log(1_000_000_000_000), 10, 100).unwrap_err();
        assert!(
            e.contains("1000000000000") && e.contains("verified block 100"),
            "{e}"
        );
        assert!(check_log(&log(5), 10, 100).is_err());
        assert!(check_log(&Log::default(), 10, 100).is_err());
    }
}
