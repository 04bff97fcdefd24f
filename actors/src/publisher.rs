//! The Publisher (repository role): turns a new image into a release bundle `{full, patch}`, stores and
//! provides its blocks, and appends the record to the index.
//!
//! [`prepare`] is the pure-ish core shared with the standalone `firmchain publish`: it diffs, compresses, chunks
//! and stores the bundle and returns the record. The record's `patch_cid` is the bundle root; its
//! `patch_hash`/`patch_size` describe the entry its kind names (the patch when it is smaller, else the full
//! image), so the chain authenticates both; a device whose base differs fetches `full` and checks the result
//! against `target_hash`.

use std::path::PathBuf;
use std::sync::Arc;

use actix::{Actor, ActorFutureExt, AtomicResponse, Context, Handler, Message, Recipient, WrapFuture};
use cid::Cid;
use firmchain_contracts::IndexClient;
use firmchain_p2p::{Blockstore, P2p};
use firmchain_update::dag::{DagOptions, DagRoot};
use firmchain_update::patch::{self, PatchOptions, PayloadKind};
use firmchain_update::{Blake3Hash, ProductId, ReleaseKind, ReleaseRecord, Sequence};
use serde::Serialize;

use crate::error::{PrepareError, PublishError, file};
use crate::messages::{StatusEvent, Wake};

/// A release made and stored, not yet on chain.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The record to publish.
    pub record: ReleaseRecord,
    /// The bundle root (also `record.patch_cid`).
    pub bundle: Cid,
    /// The bundle's entries and their DAGs.
    pub entries: Vec<(String, DagRoot)>,
}

/// Make release `sequence` of `product` from `old` (the image of the previous release, if known) to `new`, and
/// store its bundle in `store` (pinned).
pub fn prepare(
    store: &Blockstore,
    product: ProductId,
    sequence: Sequence,
    old: Option<&[u8]>,
    new: &[u8],
    min_sequence: u64,
    level: i32,
) -> Result<Prepared, PrepareError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let opts = PatchOptions {
        level,
        window_log: 23,
        long_distance: true,
        workers,
    };
    let choice = patch::create_best(old, new, &opts)?;
    let kind = choice.smaller_kind();
    let mut entries: Vec<(&str, &[u8])> = vec![("full", &choice.full)];
    if let (PayloadKind::Patch, Some(p)) = (kind, &choice.patch) {
        entries.push(("patch", p));
    }
    let (payload, record_kind) = match kind {
        PayloadKind::Patch => (entries[entries.len() - 1].1, ReleaseKind::Patch),
        PayloadKind::Full => (entries[0].1, ReleaseKind::Full),
    };
    let (patch_hash, patch_size) = (Blake3Hash::of(payload), payload.len() as u64);
    let (bundle, roots) = firmchain_p2p::import_bundle(store, entries, DagOptions::default())?;
    let record = ReleaseRecord {
        product,
        sequence,
        base_hash: match record_kind {
            ReleaseKind::Patch => old.map_or(Blake3Hash::ZERO, Blake3Hash::of),
            ReleaseKind::Full => Blake3Hash::ZERO,
        },
        target_hash: Blake3Hash::of(new),
        target_size: new.len() as u64,
        patch_cid: bundle.to_bytes(),
        patch_hash,
        patch_size,
        kind: record_kind,
        min_sequence,
        terms: Default::default(),
    };
    Ok(Prepared {
        record,
        bundle,
        entries: roots,
    })
}

/// A published release, as the API and the CLI print it.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedRelease {
    pub product: String,
    pub sequence: u64,
    pub kind: String,
    pub bundle: String,
    pub entries: Vec<PublishedEntry>,
    pub target_hash: String,
    pub target_size: u64,
    pub digest: String,
    pub tx: String,
    pub block: Option<u64>,
    pub live: bool,
}

/// One entry of a published bundle.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedEntry {
    pub name: String,
    pub cid: String,
    pub size: u64,
}

impl PublishedRelease {
    /// The summary of `prepared` once `published` on chain.
    pub fn new(prepared: &Prepared, published: &firmchain_contracts::Published) -> PublishedRelease {
        let r = &prepared.record;
        PublishedRelease {
            product: r.product.to_string(),
            sequence: r.sequence.0,
            kind: r.kind.to_string(),
            bundle: prepared.bundle.to_string(),
            entries: prepared
                .entries
                .iter()
                .map(|(name, root)| PublishedEntry {
                    name: name.clone(),
                    cid: root.cid.to_string(),
                    size: root.size,
                })
                .collect(),
            target_hash: r.target_hash.to_string(),
            target_size: r.target_size,
            digest: format!("0x{}", hex::encode(published.digest)),
            tx: published.tx.to_string(),
            block: published.block,
            live: published.live,
        }
    }
}

/// API → Publisher: publish `image` as the next release of `product`.
#[derive(Debug, Message)]
#[rtype(result = "Result<PublishedRelease, PublishError>")]
pub struct Publish {
    /// The product.
    pub product: ProductId,
    /// The new image.
    pub image: Vec<u8>,
    /// The previous release's image (default: the one this node published last).
    pub base: Option<Vec<u8>>,
    /// Devices below this sequence must install it first.
    pub min_sequence: u64,
    /// zstd level.
    pub level: i32,
    /// Hardware classes, expiry, rollout schedule and notes (default: every class, no expiry, at once).
    pub terms: firmchain_update::record::ReleaseTerms,
}

/// The Publisher actor: one publish at a time; it keeps each published image as the base of the next patch.
#[derive(Debug)]
pub struct Publisher {
    p2p: P2p,
    index: IndexClient,
    releases: PathBuf,
    wake: Option<Recipient<Wake>>,
    status: Recipient<StatusEvent>,
}

impl Publisher {
    /// A publisher signing with `index`'s key, keeping images under `releases`.
    pub fn new(
        p2p: P2p,
        index: IndexClient,
        releases: PathBuf,
        wake: Option<Recipient<Wake>>,
        status: Recipient<StatusEvent>,
    ) -> Publisher {
        Publisher {
            p2p,
            index,
            releases,
            wake,
            status,
        }
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;
}

async fn publish(
    p2p: P2p,
    index: IndexClient,
    releases: PathBuf,
    msg: Publish,
) -> Result<PublishedRelease, PublishError> {
    let (head, _) = index.latest(&msg.product).await?;
    // Named by the id's hex, never by the name: a product is not a path.
    let dir = releases.join(msg.product.hex());
    std::fs::create_dir_all(&dir).map_err(file(&dir))?;
    let old = match msg.base {
        Some(b) => Some(b),
        None => {
            // The image this node published last; none (a first release, or one published elsewhere) makes a
            // full-image release.
            let last = dir.join(format!("{}.bin", head.0));
            match std::fs::read(&last) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(file(&last)(e).into()),
            }
        }
    };
    let store: Arc<Blockstore> = p2p.store().clone();
    let product = msg.product;
    let image = Arc::new(msg.image);
    let new = image.clone();
    let terms = msg.terms;
    let mut prepared = tokio::task::spawn_blocking(move || {
        prepare(
            &store,
            product,
            Sequence(head.0 + 1),
            old.as_deref(),
            &new,
            msg.min_sequence,
            msg.level,
        )
    })
    .await
    .map_err(|e| PublishError::Task(e.to_string()))??;
    *prepared.record.terms = terms;
    if let Err(e) = p2p.provide(prepared.bundle).await {
        tracing::warn!(error = %e, "announcing the bundle on the DHT failed; peers that dial this node still get it");
    }
    let published = index.publish(&prepared.record).await?;
    let path = dir.join(format!("{}.bin", prepared.record.sequence.0));
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &*image)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(file(&path))?;
    Ok(PublishedRelease::new(&prepared, &published))
}

impl Handler<Publish> for Publisher {
    type Result = AtomicResponse<Self, Result<PublishedRelease, PublishError>>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        let work = publish(self.p2p.clone(), self.index.clone(), self.releases.clone(), msg);
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|result, act, _| {
            match &result {
                Ok(r) => {
                    tracing::info!(product = %r.product, sequence = r.sequence, kind = %r.kind, bundle = %r.bundle, "published");
                    act.status
                        .do_send(StatusEvent::Published(serde_json::to_value(r).unwrap_or_default()));
                    if let Some(w) = &act.wake {
                        w.do_send(Wake);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "publish failed"),
            }
            result
        })))
    }
}
