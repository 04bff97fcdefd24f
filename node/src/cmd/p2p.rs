//! `p2p serve` and `p2p get`: one-off IPFS-compatible block exchange.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use firmchain_actors::error::{FetchError, VerifyError};
use firmchain_actors::fetcher::{VerifyPayload, fetch_blocks, verify_payload};
use firmchain_p2p::{Blockstore, FetchLimits, FetchOptions, P2p, P2pConfig, peer_id_of};
use firmchain_update::dag::{DagOptions, LeafHash};
use firmchain_update::patch::ErrorClass;
use serde::Serialize;

use super::open;
use crate::cli::{LeafHashArg, NetArgs, P2pCommand};
use crate::error::CliError;
use crate::output::{Output, human_bytes};

/// A blockstore this size holds the largest file `get` accepts by default, with room to spare.
const STORE_BUDGET: u64 = 4 << 30;

pub fn run(cmd: P2pCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        P2pCommand::Serve {
            file,
            net,
            chunk_size,
            leaf_hash,
        } => {
            let opts = DagOptions {
                chunk_size: chunk_size as usize,
                leaf_hash: match leaf_hash {
                    LeafHashArg::Sha2_256 => LeafHash::Sha2_256,
                    LeafHashArg::Blake3 => LeafHash::Blake3,
                },
                ..DagOptions::default()
            };
            super::block_on_threads(serve(&file, net, opts, out))
        }
        P2pCommand::Get {
            cid,
            peers,
            output,
            max_size,
            stall_timeout,
            entry,
            net,
        } => super::block_on_threads(get(
            &cid,
            peers,
            &output,
            GetLimits {
                max_size,
                stall_timeout,
            },
            entry,
            net,
            out,
        )),
    }
}

/// The data folder: the one given, or a temporary one that lives as long as the guard.
pub fn data_dir(net: &NetArgs) -> Result<(PathBuf, Option<tempfile::TempDir>), CliError> {
    match &net.data {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(CliError::file(d))?;
            Ok((d.clone(), None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("firmchain-p2p-")
                .tempdir()
                .map_err(CliError::file(Path::new("temporary folder")))?;
            Ok((t.path().to_owned(), Some(t)))
        }
    }
}

pub async fn start(net: &NetArgs, dir: &Path, default_listen: &str) -> Result<P2p, CliError> {
    let key = firmchain_p2p::load_or_create_identity(&dir.join("identity.key"))?;
    let store = Arc::new(Blockstore::open(&dir.join("blocks.redb"), STORE_BUDGET)?);
    let listen = if net.listen.is_empty() {
        vec![
            default_listen
                .parse()
                .map_err(|e| CliError::Usage(format!("listen address: {e}")))?,
        ]
    } else {
        net.listen.clone()
    };
    let cfg = P2pConfig {
        listen,
        bootstrap: net.bootstrap.clone(),
        mdns: net.mdns,
        ..P2pConfig::default()
    };
    let (p2p, _task) = P2p::start(cfg, key, store).await?;
    Ok(p2p)
}

#[derive(Serialize)]
struct Serving {
    root: String,
    size: u64,
    blocks: u64,
    peer_id: String,
    addrs: Vec<String>,
}

async fn serve(file: &Path, net: NetArgs, opts: DagOptions, out: &Output) -> Result<(), CliError> {
    let (dir, _tmp) = data_dir(&net)?;
    let stop = StopSignal::catch();
    let p2p = start(&net, &dir, "/ip4/0.0.0.0/tcp/4001").await?;
    let f = open(file)?;
    let len = f.metadata().map_err(CliError::file(file))?.len();
    let bar = out.bytes("importing", len);
    let store = p2p.store().clone();
    let progress = bar.clone();
    let root = tokio::task::spawn_blocking(move || {
        firmchain_p2p::import(&store, std::io::BufReader::new(f), opts, |n| {
            progress.set_position(n)
        })
    })
    .await
    .map_err(|e| CliError::Demo(e.to_string()))?
    .map_err(|e| match e {
        firmchain_p2p::ImportError::Read(source) => CliError::File {
            path: file.to_owned(),
            source,
        },
        firmchain_p2p::ImportError::Store(s) => CliError::Store(s),
    })?;
    bar.finish_and_clear();
    p2p.provide(root.cid).await?;
    let addrs: Vec<String> = p2p.listen_addrs().await?.iter().map(|a| a.to_string()).collect();
    let blocks = p2p.store().stats()?.blocks;
    let serving = Serving {
        root: root.cid.to_string(),
        size: root.size,
        blocks,
        peer_id: p2p.peer_id().to_string(),
        addrs,
    };
    out.line(&serving, || {
        let mut s = format!(
            "serving {} ({}, {} blocks)\nfetch it from:",
            serving.root,
            human_bytes(serving.size),
            serving.blocks
        );
        for a in &serving.addrs {
            s.push_str(&format!("\n  {a}"));
        }
        s.push_str("\npress Ctrl-C to stop");
        s
    });
    stop.wait().await;
    let uploaded = p2p
        .counters()
        .uploaded_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(uploaded, "stopping");
    p2p.shutdown().await?;
    Ok(())
}

/// Ctrl-C or SIGTERM, caught from the moment this is made.
///
/// Make it before the node says it is ready: a supervisor may send SIGTERM as soon as it reads
/// the ready line, and a signal that arrives before the handler exists kills the process outright.
pub struct StopSignal {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignal {
    /// Registers the handlers now. Needs a running Tokio runtime.
    pub fn catch() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let handlers = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(term), Ok(int)) => Some((term, int)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot catch SIGTERM; stop with Ctrl-C");
                    None
                }
            };
            Self { handlers }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Returns when either signal has arrived (also one that came before this call).
    pub async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.handlers {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Serialize)]
struct Got {
    root: String,
    output: String,
    size: u64,
    blocks: u64,
    from_store: u64,
    seconds: f64,
    /// Progress timeouts on the way (a silent peer asked again, struck or dropped).
    timeouts: u64,
    peers: Vec<PeerBytes>,
    rejected: Vec<String>,
}

#[derive(Serialize)]
struct PeerBytes {
    peer: String,
    blocks: u64,
    bytes: u64,
}

/// What a `get` may cost.
struct GetLimits {
    max_size: u64,
    stall_timeout: u64,
}

async fn get(
    cid: &str,
    peers: Vec<firmchain_p2p::Multiaddr>,
    output: &Path,
    limits: GetLimits,
    entry: Option<String>,
    net: NetArgs,
    out: &Output,
) -> Result<(), CliError> {
    let GetLimits {
        max_size,
        stall_timeout,
    } = limits;
    let root = Cid::try_from(cid).map_err(|e| CliError::Usage(format!("invalid CID {cid:?}: {e}")))?;
    for p in &peers {
        if peer_id_of(p).is_none() {
            return Err(CliError::Usage(format!("--peer {p} must end in /p2p/<peer id>")));
        }
    }
    let (dir, _tmp) = data_dir(&net)?;
    let p2p = start(&net, &dir, "/ip4/127.0.0.1/tcp/0").await?;
    let mut ids = Vec::new();
    for addr in peers {
        match p2p.dial(addr.clone()).await {
            Ok(id) => ids.push(id),
            Err(e) => tracing::warn!(%addr, error = %e, "cannot reach peer"),
        }
    }
    let spinner = out.spinner("fetching");
    let opts = FetchOptions {
        limits: FetchLimits::for_file_size(max_size),
        peers: ids,
        stall_timeout: Duration::from_secs(stall_timeout),
        entry,
        ..p2p.fetch_defaults().clone()
    };
    // The BlockFetcher's fetch → verify path: blocks checked against their CIDs into the store, then the file
    // read out of it (every block and size checked again) and renamed over `output` only when complete.
    let bar = spinner.clone();
    let fetched = fetch_blocks(&p2p, root, opts, move |p| {
        bar.set_message(format!(
            "fetching: {} blocks of {} known, {} from {} peers",
            p.blocks,
            p.known_blocks,
            human_bytes(p.bytes),
            p.peers
        ))
    })
    .await;
    spinner.finish_and_clear();
    let (summary, file_root) = fetched.map_err(|e| match e {
        FetchError::P2p(e) => CliError::Fetch(e),
        other => CliError::Demo(other.to_string()),
    })?;

    let verify = VerifyPayload {
        store: p2p.store().clone(),
        root: file_root,
        out: Some(output.to_owned()),
        expect: None,
        max_size,
    };
    let dest = output.to_owned();
    let written = tokio::task::spawn_blocking(move || verify_payload(&verify))
        .await
        .map_err(|e| CliError::Demo(e.to_string()))?
        .map_err(|e| match e {
            VerifyError::File(f) => CliError::File {
                path: f.path,
                source: f.source,
            },
            other => CliError::Unpack {
                path: dest,
                message: other.to_string(),
                class: ErrorClass::Corrupt,
            },
        })?;
    p2p.shutdown().await?;

    let got = Got {
        root: root.to_string(),
        output: output.display().to_string(),
        size: written,
        blocks: summary.blocks,
        from_store: summary.from_store,
        seconds: summary.elapsed.as_secs_f64(),
        timeouts: summary.timeouts,
        peers: summary
            .peers
            .iter()
            .map(|c| PeerBytes {
                peer: c.peer.to_string(),
                blocks: c.blocks,
                bytes: c.bytes,
            })
            .collect(),
        rejected: summary.rejected.iter().map(|r| r.to_string()).collect(),
    };
    out.result(&got, || {
        let mut s = format!(
            "{} → {}\n  {} in {} blocks, {:.2} s",
            got.root,
            got.output,
            human_bytes(got.size),
            got.blocks,
            got.seconds
        );
        for p in &got.peers {
            s.push_str(&format!(
                "\n  {} blocks ({}) from {}",
                p.blocks,
                human_bytes(p.bytes),
                p.peer
            ));
        }
        for r in &got.rejected {
            s.push_str(&format!("\n  {r}"));
        }
        s
    });
    Ok(())
}
