//! Offline install: `firmchain export` packs one release (its bundle's blocks, the release proof, a head proof
//! and the committee chain from the fleet's checkpoint) into one CAR; `firmchain install release.car` installs it
//! on a device with no network. The install runs the node's own pipeline in `peers` mode with the network off:
//! the file's proofs are verified from the device's own checkpoint and state exactly as proofs from peers are
//! (supermajority header, contract, product, record digest, revocation, rollout gate at chain time), the blocks
//! against their CIDs, the payload against the record, and the image goes through the same slots and health
//! check.
//!
//! CAR layout: roots `[committee chain, head proof, release proof, bundle root]`, the first three raw blocks of
//! the proof encoding (`lightclient/src/proof/FORMAT.md`), then the bundle's blocks.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use bytes::Bytes;
use cid::Cid;
use firmchain_actors::node::{Node, NodeConfig, peer_book};
use firmchain_actors::proofs::OfferProofs;
use firmchain_actors::state::NodeState;
use firmchain_actors::status::GetSnapshot;
use firmchain_config::{ChainMode, Config};
use firmchain_p2p::proofs::{ProofRequest, ProofResponse};
use firmchain_p2p::{Blockstore, FetchLimits, FetchOptions, Multiaddr, P2pConfig};
use firmchain_update::car::{CarReader, encode_header, write_section};
use firmchain_update::dag::{self, pb::PbNode};
use firmchain_update::{ReleaseRecord, Sequence};
use serde_json::json;

use crate::cli::RunArgs;
use crate::error::CliError;
use crate::output::Output;

fn refused(path: &Path, message: impl std::fmt::Display) -> CliError {
    CliError::Refused {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn unix_now() -> u64 {
    firmchain_actors::unix_now()
}

/// The device's book of proofs, from its configuration and state.
fn book_of(config: &Config) -> Result<firmchain_actors::proofs::ProofBook, CliError> {
    let settings = config
        .validate()
        .map_err(|e| CliError::Usage(format!("configuration: {e}")))?;
    let state =
        NodeState::open(&config.data_dir.join("state.redb")).map_err(|e| CliError::Demo(e.to_string()))?;
    peer_book(
        config,
        settings.checkpoint,
        Address::from(settings.contract),
        settings.product,
        &state,
    )
    .map_err(|e| CliError::Usage(e.to_string()))
}

/// `firmchain export --product P --sequence N -o release.car`: fetch the proofs and the bundle from `peers`
/// (or the configured bootstrap peers), verify them from the configured checkpoint, write the CAR.
pub fn export(
    args: RunArgs,
    sequence: u64,
    peers: Vec<Multiaddr>,
    output: &Path,
    out: &Output,
) -> Result<(), CliError> {
    let mut config = super::run::load_config(&args)?;
    config.chain.mode = ChainMode::Peers;
    config.repository = false;
    super::block_on_threads(export_async(config, sequence, peers, output, out))
}

async fn export_async(
    config: Config,
    sequence: u64,
    peers: Vec<Multiaddr>,
    output: &Path,
    out: &Output,
) -> Result<(), CliError> {
    // A fresh book: the exporting node's own state stays untouched (its node may be running).
    let settings = config
        .validate()
        .map_err(|e| CliError::Usage(format!("configuration: {e}")))?;
    let checkpoint = settings
        .checkpoint
        .ok_or_else(|| CliError::Usage("export verifies from chain.checkpoint: configure it".into()))?;
    let spec =
        firmchain_actors::node::configured_spec(&config).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut book = firmchain_actors::proofs::ProofBook::new(
        spec,
        checkpoint,
        Address::from(settings.contract),
        settings.product,
    );
    let product = book.product;
    let dir = tempfile::Builder::new()
        .prefix("firmchain-export-")
        .tempdir()
        .map_err(CliError::file(Path::new("temporary folder")))?;
    let store = Arc::new(Blockstore::open(&dir.path().join("blocks.redb"), 1 << 34)?);
    let key = firmchain_p2p::identity::Keypair::generate_ed25519();
    let (p2p, _task) = firmchain_p2p::P2p::start(P2pConfig::loopback(), key, store.clone()).await?;
    let addrs = if peers.is_empty() {
        config.validate().map(|s| s.bootstrap).unwrap_or_default()
    } else {
        peers
    };
    let mut ids = Vec::new();
    for addr in addrs {
        match p2p.dial(addr.clone()).await {
            Ok(id) => ids.push(id),
            Err(e) => tracing::warn!(%addr, error = %e, "cannot reach peer"),
        }
    }
    if ids.is_empty() {
        return Err(CliError::Usage(
            "no peer to export from: give --peer MULTIADDR (a repository or a device that holds the release)"
                .into(),
        ));
    }
    let now = unix_now();
    let ask = |request: ProofRequest| {
        let (p2p, ids) = (p2p.clone(), ids.clone());
        async move {
            for id in ids {
                if let Ok(ProofResponse::Found(mut items)) = p2p.proofs().request(id, request).await
                    && !items.is_empty()
                {
                    return Some(items.remove(0));
                }
            }
            None
        }
    };
    let name = Path::new("the peers' proofs");
    let chain = ask(ProofRequest::Bootstrap {
        checkpoint: book.checkpoint,
    })
    .await
    .ok_or_else(|| {
        refused(
            name,
            "no peer holds the committee chain of the configured checkpoint",
        )
    })?;
    book.bootstrap(&chain, now).map_err(|e| refused(name, e))?;
    let head = ask(ProofRequest::Head { product: product.0 })
        .await
        .ok_or_else(|| refused(name, format!("no peer holds a head proof of {product}")))?;
    book.accept_head(&head, now).map_err(|e| refused(name, e))?;
    let release = ask(ProofRequest::Release {
        product: product.0,
        sequence,
    })
    .await
    .ok_or_else(|| {
        refused(
            name,
            format!("no peer holds the release proof of {product} {sequence}"),
        )
    })?;
    let (_, record) = book
        .accept_release(&release, sequence, now)
        .map_err(|e| refused(name, e))?;
    let root = Cid::try_from(record.patch_cid.as_slice())
        .map_err(|e| refused(name, format!("the record's bundle CID: {e}")))?;

    let opts = FetchOptions {
        limits: FetchLimits::for_file_size(record.target_size.saturating_add(record.patch_size)),
        peers: ids.clone(),
        entry: None,
        ..p2p.fetch_defaults().clone()
    };
    let spinner = out.spinner("fetching the bundle");
    p2p.fetch(root, opts).finish().await?;
    spinner.finish_and_clear();

    let proofs = [chain, head, release];
    let cids: Vec<Cid> = proofs.iter().map(|b| dag::cid_of(dag::RAW, b)).collect();
    let mut roots = cids.clone();
    roots.push(root);
    let written = super::write_atomically(output, |w| {
        w.write_all(&encode_header(&roots))
            .map_err(CliError::file(output))?;
        for (cid, bytes) in cids.iter().zip(&proofs) {
            write_section(w, cid, bytes).map_err(CliError::file(output))?;
        }
        let mut blocks = 0u64;
        let mut seen = HashSet::new();
        let mut stack = vec![root];
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) {
                continue;
            }
            let data = store
                .get(&cid)?
                .ok_or_else(|| refused(output, format!("block {cid} of the bundle was not fetched")))?;
            if cid.codec() == dag::DAG_PB {
                let node = PbNode::decode(&data).map_err(|e| refused(output, format!("block {cid}: {e}")))?;
                stack.extend(node.links.iter().rev().map(|l| l.cid));
            }
            write_section(w, &cid, &data).map_err(CliError::file(output))?;
            blocks += 1;
        }
        Ok(blocks)
    })?;
    let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    let v = json!({ "exported": output.display().to_string(), "product": product.to_string(),
        "sequence": sequence, "bundle": root.to_string(), "blocks": written, "bytes": size });
    out.result(&v, || {
        format!(
            "wrote {} ({size} bytes): release {sequence} of {product}, {written} blocks and its proofs",
            output.display()
        )
    });
    let _ = p2p.shutdown().await;
    Ok(())
}

/// What a release CAR holds.
struct ReleaseCar {
    chain: Vec<u8>,
    head: Vec<u8>,
    release: Vec<u8>,
    bundle: Cid,
    blocks: Vec<(Cid, Bytes)>,
}

/// Read a release CAR: every block verified against its CID, the proofs and the bundle named by the roots.
fn read_car(path: &Path) -> Result<ReleaseCar, CliError> {
    let file = super::open(path)?;
    let mut reader = CarReader::new(std::io::BufReader::new(file)).map_err(CliError::car(path))?;
    let roots = reader.roots().to_vec();
    let [chain, head, release, bundle] = roots[..] else {
        return Err(refused(
            path,
            format!(
                "not a release CAR: {} roots, expected 4 (committee chain, head proof, release proof, bundle)",
                roots.len()
            ),
        ));
    };
    let (mut chain_b, mut head_b, mut release_b) = (None, None, None);
    let mut blocks = Vec::new();
    while let Some((cid, _, data)) = reader.next_block().map_err(CliError::car(path))? {
        match cid {
            c if c == chain => chain_b = Some(data),
            c if c == head => head_b = Some(data),
            c if c == release => release_b = Some(data),
            _ => blocks.push((cid, Bytes::from(data))),
        }
    }
    let missing = |what: &str| refused(path, format!("the {what} is missing"));
    Ok(ReleaseCar {
        chain: chain_b.ok_or_else(|| missing("committee chain"))?,
        head: head_b.ok_or_else(|| missing("head proof"))?,
        release: release_b.ok_or_else(|| missing("release proof"))?,
        bundle,
        blocks,
    })
}

/// `firmchain install release.car`.
pub fn install(args: RunArgs, car: &Path, timeout: Duration, out: &Output) -> Result<(), CliError> {
    let mut config = super::run::load_config(&args)?;
    if config.repository {
        return Err(CliError::Usage(
            "install runs on a device, not a repository".into(),
        ));
    }
    // The network stays off: everything comes from the file and is verified from the device's own state.
    config.chain.mode = ChainMode::Peers;
    config.p2p.listen = Vec::new();
    config.p2p.bootstrap = Vec::new();
    config.p2p.mdns = false;
    config.api.listen = String::new();
    let file = read_car(car)?;

    // The same checks the pipeline makes, first, for a clear refusal.
    let name = car.display().to_string();
    std::fs::create_dir_all(&config.data_dir).map_err(CliError::file(&config.data_dir))?;
    let mut book = book_of(&config)?;
    let now = unix_now();
    if book.store.is_none() {
        book.bootstrap(&file.chain, now)
            .map_err(|e| refused(car, format!("committee chain: {e}")))?;
    }
    let release = firmchain_lightclient::proof::decode_release_proof(&file.release)
        .map_err(|e| refused(car, format!("release proof: {e}")))?;
    let sequence = release.sequence;
    let (verified, record) = book
        .accept_release(&file.release, sequence, now)
        .map_err(|e| refused(car, format!("release proof: {e}")))?;
    if verified.revoked {
        return Err(refused(
            car,
            format!("release {sequence} is revoked in the index"),
        ));
    }
    if record.patch_cid != file.bundle.to_bytes() {
        return Err(refused(car, "the bundle is not the one the proven record names"));
    }
    match book.accept_head(&file.head, now) {
        Ok(h) if h.revoked.iter().any(|(s, r)| *s == sequence && *r) => {
            return Err(refused(
                car,
                format!("release {sequence} is revoked in the index"),
            ));
        }
        Ok(_) => {}
        Err(e) if e.is_benign() => {}
        Err(e) => return Err(refused(car, format!("head proof: {e}"))),
    }
    {
        let state = NodeState::open(&config.data_dir.join("state.redb"))
            .map_err(|e| CliError::Demo(e.to_string()))?;
        if let Some(i) = state
            .installed(&record.product)
            .map_err(|e| CliError::Demo(e.to_string()))?
            && i.sequence >= Sequence(sequence)
        {
            return Err(refused(
                car,
                format!("the device already runs release {}", i.sequence.0),
            ));
        }
        let store = Blockstore::open(
            &config.data_dir.join("blocks.redb"),
            config.p2p.store_budget_mib.saturating_mul(1 << 20),
        )?;
        store.put_batch(Some(&file.bundle), &file.blocks)?;
        store.sync()?;
    }
    let runtime = super::runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2))?;
    let system = actix::System::with_tokio_rt(move || runtime);
    let offer = OfferProofs {
        name,
        chain: Some(file.chain),
        head: Some(file.head),
        releases: vec![(sequence, file.release)],
    };
    system.block_on(run_install(config, offer, record, timeout, car, out))
}

async fn run_install(
    config: Config,
    offer: OfferProofs,
    record: ReleaseRecord,
    timeout: Duration,
    car: &Path,
    out: &Output,
) -> Result<(), CliError> {
    let sequence = record.sequence.0;
    let node = Node::start(NodeConfig::new(config, None).map_err(|e| CliError::Usage(e.to_string()))?)
        .await
        .map_err(|e| CliError::Demo(e.to_string()))?;
    let (Some(follower), Some(coordinator)) = (node.follower.clone(), node.coordinator.clone()) else {
        node.stop().await;
        return Err(CliError::Demo(
            "the node started without its device pipeline".into(),
        ));
    };
    follower.do_send(offer);
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        let snapshot = node.status.send(GetSnapshot).await.unwrap_or_default();
        if let Some(i) = snapshot.last_install.as_ref().filter(|i| i.sequence == sequence) {
            break match i.outcome {
                "installed" => Ok(i.hash.clone().unwrap_or_default()),
                _ => Err(format!(
                    "release {sequence} was rolled back: {}",
                    i.reason.clone().unwrap_or_default()
                )),
            };
        }
        if let Some(r) = snapshot.rejected.iter().find(|r| r.contains("refused")) {
            break Err(r.clone());
        }
        if let Ok(s) = coordinator.send(firmchain_actors::messages::GetStatus).await
            && let Some(w) = s
                .waiting
                .iter()
                .find(|w| w.sequence == sequence && w.reason != "unproven")
        {
            break Err(format!(
                "release {sequence} may not be installed yet: {}",
                w.message
            ));
        }
        if Instant::now() > deadline {
            break Err(format!(
                "release {sequence} was not installed within {} s{}",
                timeout.as_secs(),
                snapshot
                    .last_fetch_error
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    node.stop().await;
    match outcome {
        Ok(hash) => {
            let v = json!({ "installed": sequence, "product": record.product.to_string(), "hash": hash,
                "from": car.display().to_string() });
            out.result(&v, || {
                format!(
                    "installed release {sequence} of {} from {}",
                    record.product,
                    car.display()
                )
            });
            Ok(())
        }
        Err(message) => Err(refused(car, message)),
    }
}
