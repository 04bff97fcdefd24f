//! `firmchain publish`: make a release, store it as a bundle of IPFS blocks, and append it to the index.
//!
//! The bundle is one UnixFS directory: `full` (the compressed image, always) and `patch` (from `--from`, when it
//! is smaller). The record's `patch_cid` is the bundle root, its `patch_hash`/`patch_size` describe the entry the
//! record's kind names, so the chain authenticates both: a device whose base matches fetches the patch, any other
//! the full image, and checks the result against `target_hash`.

use std::path::Path;
use std::sync::atomic::Ordering;

use firmchain_p2p::Blockstore;
use firmchain_update::dag::DagOptions;
use firmchain_update::patch::{self, PatchOptions, PayloadKind};
use firmchain_update::{Blake3Hash, ReleaseKind, ReleaseRecord, Sequence};
use serde::Serialize;

use crate::cli::PublishArgs;
use crate::error::CliError;
use crate::output::{Output, human_bytes};

#[derive(Serialize)]
struct Published {
    product: String,
    sequence: u64,
    kind: String,
    bundle: String,
    entries: Vec<Entry>,
    target_hash: String,
    target_size: u64,
    digest: String,
    tx: String,
    block: Option<u64>,
    live: bool,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    cid: String,
    size: u64,
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(CliError::file(path))
}

pub fn run(args: PublishArgs, out: &Output) -> Result<(), CliError> {
    let old = args.from.as_deref().map(read).transpose()?;
    let new = read(&args.to)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let opts = PatchOptions {
        level: args.level,
        window_log: 23,
        long_distance: true,
        workers,
    };
    let spinner = out.spinner("making the patch and the full image");
    let choice = patch::create_best(old.as_deref(), &new, &opts);
    spinner.finish_and_clear();
    let choice = choice?;
    let kind = choice.smaller_kind();
    let mut entries: Vec<(&str, &[u8])> = vec![("full", &choice.full)];
    if let (PayloadKind::Patch, Some(p)) = (kind, &choice.patch) {
        entries.push(("patch", p));
    }

    super::block_on_threads(async {
        let (dir, _tmp) = super::p2p::data_dir(&args.net)?;
        let store = Blockstore::open(&dir.join("blocks.redb"), 4 << 30)?;
        let (bundle, roots) = firmchain_p2p::import_bundle(&store, entries.clone(), DagOptions::default())
            .map_err(|e| CliError::Demo(format!("storing the bundle: {e}")))?;
        drop(store);

        let index = super::contract::connect(&args.index, true).await?;
        let (head, _) = index.latest(&args.product).await?;
        let (payload, record_kind) = match kind {
            PayloadKind::Patch => (entries[1].1, ReleaseKind::Patch),
            PayloadKind::Full => (entries[0].1, ReleaseKind::Full),
        };
        let record = ReleaseRecord {
            product: args.product,
            sequence: Sequence(head.0 + 1),
            base_hash: match record_kind {
                ReleaseKind::Patch => old.as_deref().map_or(Blake3Hash::ZERO, Blake3Hash::of),
                ReleaseKind::Full => Blake3Hash::ZERO,
            },
            target_hash: Blake3Hash::of(&new),
            target_size: new.len() as u64,
            patch_cid: bundle.to_bytes(),
            patch_hash: Blake3Hash::of(payload),
            patch_size: payload.len() as u64,
            kind: record_kind,
            min_sequence: args.min_sequence,
        };
        let published = index.publish(&record).await?;
        let result = Published {
            product: args.product.to_string(),
            sequence: record.sequence.0,
            kind: record_kind.to_string(),
            bundle: bundle.to_string(),
            entries: roots
                .iter()
                .map(|(name, r)| Entry {
                    name: name.clone(),
                    cid: r.cid.to_string(),
                    size: r.size,
                })
                .collect(),
            target_hash: record.target_hash.to_string(),
            target_size: record.target_size,
            digest: format!("0x{}", hex::encode(published.digest)),
            tx: published.tx.to_string(),
            block: published.block,
            live: published.live,
        };
        let line = |r: &Published| {
            let mut s = format!(
                "{} release {} ({}) {}\n  bundle {}",
                r.product,
                r.sequence,
                r.kind,
                if r.live {
                    "published"
                } else {
                    "approved, waiting for more approvals"
                },
                r.bundle
            );
            for e in &r.entries {
                s.push_str(&format!("\n  {:<5} {} ({})", e.name, e.cid, human_bytes(e.size)));
            }
            s.push_str(&format!(
                "\n  image  {} ({})",
                r.target_hash,
                human_bytes(r.target_size)
            ));
            s.push_str(&format!(
                "\n  tx     {} in block {}",
                r.tx,
                r.block.map_or("?".into(), |b| b.to_string())
            ));
            s
        };
        if !args.serve {
            if args.net.data.is_none() {
                tracing::warn!(
                    "the bundle's blocks were stored in a temporary folder and are gone: pass --data DIR to keep \
                     them for a repository node, or --serve to serve them now"
                );
            }
            out.result(&result, || line(&result));
            return Ok(());
        }
        out.line(&result, || line(&result));
        let p2p = super::p2p::start(&args.net, &dir, "/ip4/0.0.0.0/tcp/4001").await?;
        p2p.provide(bundle).await?;
        let addrs: Vec<String> = p2p.listen_addrs().await?.iter().map(|a| a.to_string()).collect();
        out.line(
            &serde_json::json!({ "serving": bundle.to_string(), "addrs": addrs }),
            || {
                format!(
                    "serving the bundle at\n  {}\npress Ctrl-C to stop",
                    addrs.join("\n  ")
                )
            },
        );
        super::p2p::wait_for_signal().await;
        tracing::info!(
            uploaded = p2p.counters().uploaded_bytes.load(Ordering::Relaxed),
            "stopping"
        );
        p2p.shutdown().await?;
        Ok(())
    })
}
