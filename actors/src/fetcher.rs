//! The BlockFetcher and the Verifier.
//!
//! The BlockFetcher fetches one entry (`patch` or `full`) of a release bundle over Bitswap: every block is
//! checked against its CID before it is stored, and the DAG is capped by the sizes the record gives. The
//! Verifier (CPU work on a `SyncArbiter`) then reads the entry in the blockstore, checking every block and size
//! again, and compares blake3 and size with the record. The payload stays in the blockstore (one copy on disk):
//! the Installer's Patcher reads it there ([`firmchain_update::dag::DagFile`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, SpawnHandle,
    SyncContext, WrapFuture,
};
use cid::Cid;
use firmchain_p2p::{Blockstore, FetchLimits, FetchOptions, FetchProgress, FetchSummary, P2p};
use firmchain_update::dag::{ReadLimits, read_file};
use firmchain_update::machine::Payload;
use firmchain_update::{Blake3Hash, ReleaseKind, ReleaseRecord, Sequence};

use crate::error::{FetchError, PayloadMismatch, VerifyError, file};
use crate::messages::{CancelFetch, FetchRelease, FetchReport, PeerShare, ReleaseFetched, StatusEvent};

/// The bundle entry a payload lives in.
pub fn entry_name(payload: Payload) -> &'static str {
    match payload {
        Payload::Patch => "patch",
        Payload::Full => "full",
    }
}

/// What the record says about a payload: its exact hash and size when the record names it, else a size cap.
pub fn expectation(record: &ReleaseRecord, payload: Payload) -> (Option<(Blake3Hash, u64)>, u64) {
    let named = matches!(
        (record.kind, payload),
        (ReleaseKind::Patch, Payload::Patch) | (ReleaseKind::Full, Payload::Full)
    );
    if named {
        (Some((record.patch_hash, record.patch_size)), record.patch_size)
    } else {
        // The full image of a patch release: compressed, so at most the image plus zstd's framing overhead;
        // its content is checked against `target_hash` once decompressed.
        (None, record.target_size + record.target_size / 64 + (1 << 20))
    }
}

/// Verifier ← BlockFetcher: read the file under `root`, checking it against the record, and write it to `out`
/// if given (`firmchain p2p get`; the node's fetcher only checks).
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, VerifyError>")]
pub struct VerifyPayload {
    /// The store holding the blocks.
    pub store: Arc<Blockstore>,
    /// The entry's root.
    pub root: Cid,
    /// Where to write the file, if anywhere.
    pub out: Option<PathBuf>,
    /// Exact blake3 and size, when the record names this payload.
    pub expect: Option<(Blake3Hash, u64)>,
    /// Most bytes the file may have.
    pub max_size: u64,
}

/// Checks payloads on a `SyncArbiter` thread.
#[derive(Debug, Default)]
pub struct Verifier;

impl Actor for Verifier {
    type Context = SyncContext<Self>;
}

/// A writer that hashes what passes through.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Read the file under `root` from `store` and check it; with `out`, also write it there. The file is written
/// beside `out` and renamed over it only once it checked out: on any failure `out` is as it was.
pub fn verify_payload(msg: &VerifyPayload) -> Result<u64, VerifyError> {
    let Some(out) = &msg.out else {
        let mut w = Hashing {
            inner: std::io::sink(),
            hasher: blake3::Hasher::new(),
        };
        let size = read_checked(msg, &mut w)?;
        return check(msg, size, Blake3Hash(*w.hasher.finalize().as_bytes())).map(|()| size);
    };
    let mut partial = out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let file_out = File::create(&partial).map_err(file(&partial))?;
        let mut w = Hashing {
            inner: BufWriter::new(file_out),
            hasher: blake3::Hasher::new(),
        };
        let size = read_checked(msg, &mut w)?;
        let hash = Blake3Hash(*w.hasher.finalize().as_bytes());
        let written = w.inner.into_inner().map_err(|e| {
            let (e, _) = e.into_parts();
            file(&partial)(e)
        })?;
        written.sync_all().map_err(file(&partial))?;
        check(msg, size, hash)?;
        std::fs::rename(&partial, out).map_err(file(out))?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Reassemble the file under `msg.root` into `w`, every block and size checked; returns its size.
fn read_checked(msg: &VerifyPayload, w: &mut impl Write) -> Result<u64, VerifyError> {
    let limits = ReadLimits {
        max_size: msg.max_size,
        ..ReadLimits::default()
    };
    read_file(&msg.root, &mut &*msg.store, w, limits, |_| {}).map_err(|e| VerifyError::Read {
        root: msg.root,
        source: Box::new(e),
    })
}

/// Compare blake3 and size with what the record names, if it names them.
fn check(msg: &VerifyPayload, size: u64, hash: Blake3Hash) -> Result<(), VerifyError> {
    match msg.expect {
        Some((expected, expected_size)) if hash != expected || size != expected_size => {
            Err(VerifyError::Mismatch(Box::new(PayloadMismatch {
                root: msg.root,
                size,
                hash,
                expected_size,
                expected,
            })))
        }
        _ => Ok(()),
    }
}

impl Handler<VerifyPayload> for Verifier {
    type Result = Result<u64, VerifyError>;

    fn handle(&mut self, msg: VerifyPayload, _: &mut SyncContext<Self>) -> Result<u64, VerifyError> {
        verify_payload(&msg)
    }
}

/// The BlockFetcher actor: one fetch per release at a time.
#[derive(Debug)]
pub struct BlockFetcher {
    p2p: P2p,
    verifier: Addr<Verifier>,
    stall_timeout: Duration,
    done: Recipient<ReleaseFetched>,
    status: Recipient<StatusEvent>,
    running: HashMap<Sequence, SpawnHandle>,
}

impl BlockFetcher {
    /// A fetcher over `p2p`; verified payloads stay in its blockstore.
    pub fn new(
        p2p: P2p,
        verifier: Addr<Verifier>,
        stall_timeout: Duration,
        done: Recipient<ReleaseFetched>,
        status: Recipient<StatusEvent>,
    ) -> BlockFetcher {
        BlockFetcher {
            p2p,
            verifier,
            stall_timeout,
            done,
            status,
            running: HashMap::new(),
        }
    }
}

impl Actor for BlockFetcher {
    type Context = Context<Self>;
}

/// Fetch the DAG under `root` into the node's store, every block checked against its CID, telling `progress` as
/// blocks arrive. Returns the summary and the root of the file to read: `opts.entry` of the bundle when one is
/// named, else `root`. The first half of the one fetch → verify path of the BlockFetcher and `firmchain p2p get`
/// (the second is [`verify_payload`]).
pub async fn fetch_blocks(
    p2p: &P2p,
    root: Cid,
    opts: FetchOptions,
    mut progress: impl FnMut(FetchProgress) + Send + 'static,
) -> Result<(FetchSummary, Cid), FetchError> {
    let entry = opts.entry.clone();
    let fetching = p2p.fetch(root, opts);
    let mut changes = fetching.progress.clone();
    let reporter = tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let p = *changes.borrow();
            progress(p);
        }
    });
    let summary = fetching.finish().await;
    reporter.abort();
    let summary = summary?;
    let file = match entry {
        None => root,
        Some(entry) => summary.entry.ok_or(FetchError::NoEntry { root, entry })?,
    };
    Ok((summary, file))
}

async fn fetch(
    p2p: P2p,
    verifier: Addr<Verifier>,
    status: Recipient<StatusEvent>,
    stall_timeout: Duration,
    record: ReleaseRecord,
    payload: Payload,
) -> Result<(FetchReport, Cid), FetchError> {
    let root = Cid::try_from(record.patch_cid.as_slice()).map_err(|e| FetchError::BadCid(e.to_string()))?;
    let (expect, max_size) = expectation(&record, payload);
    let opts = FetchOptions {
        limits: FetchLimits::for_file_size(max_size),
        stall_timeout,
        entry: Some(entry_name(payload).to_owned()),
        ..p2p.fetch_defaults().clone()
    };
    let sequence = record.sequence;
    let forward = status.clone();
    let (summary, entry) = fetch_blocks(&p2p, root, opts, move |p| {
        forward.do_send(StatusEvent::Fetching {
            sequence,
            payload,
            blocks: p.blocks,
            known_blocks: p.known_blocks,
            bytes: p.bytes,
            peers: p.peers,
        })
    })
    .await?;
    for r in &summary.rejected {
        status.do_send(StatusEvent::PeerRejected(r.to_string()));
    }
    verifier
        .send(VerifyPayload {
            store: p2p.store().clone(),
            root: entry,
            out: None,
            expect,
            max_size,
        })
        .await
        .map_err(FetchError::Verifier)??;
    let report = FetchReport {
        sequence: record.sequence.0,
        payload: entry_name(payload).to_owned(),
        blocks: summary.blocks,
        from_store: summary.from_store,
        peers: summary
            .peers
            .iter()
            .map(|c| PeerShare {
                peer: c.peer.to_string(),
                blocks: c.blocks,
                bytes: c.bytes,
            })
            .collect(),
        rejected: summary.rejected.iter().map(|r| r.to_string()).collect(),
        timeouts: summary.timeouts,
        seconds: summary.elapsed.as_secs_f64(),
    };
    Ok((report, entry))
}

impl Handler<FetchRelease> for BlockFetcher {
    type Result = ();

    fn handle(&mut self, msg: FetchRelease, ctx: &mut Context<Self>) {
        let sequence = msg.record.sequence;
        let payload = msg.payload;
        if let Some(old) = self.running.remove(&sequence) {
            ctx.cancel_future(old);
        }
        tracing::info!(sequence = sequence.0, payload = entry_name(payload), "fetching");
        let started = std::time::Instant::now();
        let work = fetch(
            self.p2p.clone(),
            self.verifier.clone(),
            self.status.clone(),
            self.stall_timeout,
            msg.record,
            payload,
        );
        let handle = ctx.spawn(work.into_actor(self).map(move |result, act, _| {
            act.running.remove(&sequence);
            match &result {
                Ok((r, _)) => tracing::info!(
                    sequence = sequence.0,
                    payload = entry_name(payload),
                    blocks = r.blocks,
                    from_store = r.from_store,
                    peers = r.peers.len(),
                    seconds = r.seconds,
                    "fetched and verified"
                ),
                Err(e) => tracing::warn!(sequence = sequence.0, payload = entry_name(payload), error = %e, "fetch failed"),
            }
            let result = result.map_err(Arc::new);
            act.status.do_send(StatusEvent::Fetched {
                payload,
                seconds: started.elapsed().as_secs_f64(),
                outcome: result.clone().map(|(r, _)| r),
            });
            act.done.do_send(ReleaseFetched {
                sequence,
                payload,
                outcome: result.map(|(_, root)| root),
            });
        }));
        self.running.insert(sequence, handle);
    }
}

impl Handler<CancelFetch> for BlockFetcher {
    type Result = ();

    fn handle(&mut self, msg: CancelFetch, ctx: &mut Context<Self>) {
        if let Some(handle) = self.running.remove(&msg.sequence) {
            tracing::info!(sequence = msg.sequence.0, "fetch cancelled");
            ctx.cancel_future(handle);
        }
    }
}
