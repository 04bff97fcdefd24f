//! `firmchain publish`: make a release, store it as a bundle of IPFS blocks, and append it to the index.
//!
//! The bundle is one UnixFS directory: `full` (the compressed image, always) and `patch` (from `--from`, when it
//! is smaller). The record's `patch_cid` is the bundle root, its `patch_hash`/`patch_size` describe the entry the
//! record's kind names, so the chain authenticates both: a device whose base matches fetches the patch, any other
//! the full image, and checks the result against `target_hash`.

use std::path::Path;
use std::sync::atomic::Ordering;

use firmchain_actors::publisher::{PublishedRelease, prepare};
use firmchain_p2p::Blockstore;
use firmchain_update::Sequence;

use crate::cli::PublishArgs;
use crate::error::CliError;
use crate::output::{Output, human_bytes};

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(CliError::file(path))
}

pub fn run(args: PublishArgs, out: &Output) -> Result<(), CliError> {
    if let Some(api) = &args.api {
        let release = super::node::Release {
            to: args.to.clone(),
            from: args.from.clone(),
            product: Some(args.product),
            min_sequence: args.min_sequence,
            terms: super::rollout::terms(&args.terms)?,
        };
        return super::block_on(super::node::publish(api, 600, release, out));
    }
    let terms = super::rollout::terms(&args.terms)?;
    let old = args.from.as_deref().map(read).transpose()?;
    let new = read(&args.to)?;
    super::block_on_threads(async {
        let (dir, _tmp) = super::p2p::data_dir(&args.net)?;
        let index = super::contract::connect(&args.index, true).await?;
        let (head, _) = index.latest(&args.product).await?;
        let spinner = out.spinner("making the patch and the full image, storing the bundle");
        let store = Blockstore::open(&dir.join("blocks.redb"), 4 << 30)?;
        let prepared = prepare(
            &store,
            args.product,
            Sequence(head.0 + 1),
            old.as_deref(),
            &new,
            args.min_sequence,
            args.level,
        );
        spinner.finish_and_clear();
        let mut prepared = prepared.map_err(|e| CliError::Demo(e.to_string()))?;
        *prepared.record.terms = terms;
        drop(store);
        let (record, bundle) = (&prepared.record, prepared.bundle);
        let published = index.publish(record).await?;
        let result = PublishedRelease::new(&prepared, &published);
        let line = |r: &PublishedRelease| {
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
        let stop = super::p2p::StopSignal::catch();
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
        stop.wait().await;
        tracing::info!(
            uploaded = p2p.counters().uploaded_bytes.load(Ordering::Relaxed),
            "stopping"
        );
        p2p.shutdown().await?;
        Ok(())
    })
}
