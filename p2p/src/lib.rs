//! The libp2p side of firmchain: Kademlia provider discovery, Bitswap block exchange, the persistent blockstore.
//!
//! - [`P2p`]: the node. The `Swarm` runs in one event-loop task behind this cloneable handle (TCP and QUIC,
//!   noise, yamux, identify, ping, Kademlia on `/ipfs/kad/1.0.0`, optional mDNS, connection limits, bans).
//! - [`bitswap`]: Bitswap 1.2.0 (also 1.1.0 and 1.0.0 inbound), our own implementation over libp2p streams.
//! - [`fetch`]: fetching a DAG from several peers at once; every block is checked against its CID before it
//!   is stored, and only blocks linked from verified blocks of the requested DAG are ever asked for.
//! - [`proofs`]: chain proofs (committee updates, head and release proofs) served to and asked of peers, with
//!   head proofs announced to connected peers; bounded per peer and in total.
//! - [`blockstore`]: redb with a size budget, pins per root and eviction of unpinned blocks oldest first.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod accept;
pub mod bitswap;
pub mod blockstore;
mod command;
pub mod fetch;
mod node;
pub mod proofs;

use std::io::Read;

use bytes::Bytes;
use cid::Cid;
use firmchain_update::dag::{self, DagOptions, DagRoot};

pub use blockstore::{Blockstore, StoreError, StoreStats};
pub use command::P2pError;
pub use fetch::{
    FetchError, FetchLimits, FetchOptions, FetchProgress, FetchSummary, NoProviders, Rejection,
    ScheduleConfig,
};
pub use libp2p::{Multiaddr, PeerId, identity};
pub use node::{Fetching, P2p, P2pConfig, load_or_create_identity, peer_id_of, with_peer_id};

/// Why importing a file failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading the file: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const IMPORT_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Chunk `reader` into a UnixFS DAG (the layout of `ipfs add --cid-version 1 --raw-leaves`), store every block
/// and pin the DAG under its root. `progress` gets the bytes read so far.
pub fn import(
    store: &Blockstore,
    reader: impl Read,
    opts: DagOptions,
    mut progress: impl FnMut(u64),
) -> Result<DagRoot, ImportError> {
    // Blocks are pinned under a temporary key while the root is unknown, so eviction cannot take them.
    let staging = dag::cid_of(
        dag::RAW,
        format!("firmchain-import-{}", std::process::id()).as_bytes(),
    );
    let mut batch: Vec<(Cid, Bytes)> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut all = Vec::new();
    let mut failed: Option<StoreError> = None;
    let mut read = 0u64;
    let root = dag::build_from_reader(reader, opts, |cid, block| {
        if failed.is_some() {
            return;
        }
        all.push(*cid);
        batch_bytes += block.len();
        if cid.codec() == dag::RAW {
            read += block.len() as u64;
        }
        batch.push((*cid, Bytes::copy_from_slice(block)));
        if batch_bytes >= IMPORT_BATCH_BYTES {
            if let Err(e) = store.put_batch(Some(&staging), &batch) {
                failed = Some(e);
            }
            batch.clear();
            batch_bytes = 0;
            progress(read);
        }
    });
    let result = (|| {
        let root = root?;
        if let Some(e) = failed {
            return Err(ImportError::Store(e));
        }
        store.put_batch(Some(&staging), &batch)?;
        store.pin_existing(&root.cid, &all)?;
        progress(root.size);
        Ok(root)
    })();
    store.unpin(&staging)?;
    result
}

/// Import several files as one UnixFS directory (a release bundle such as `{full, patch}`): each file is chunked
/// and pinned under its own root, and the directory block is pinned under the directory's root. Returns the
/// directory's root and each entry's DAG.
pub fn import_bundle<R: Read>(
    store: &Blockstore,
    entries: Vec<(&str, R)>,
    opts: DagOptions,
) -> Result<(Cid, Vec<(String, DagRoot)>), ImportError> {
    let mut roots = Vec::new();
    for (name, reader) in entries {
        roots.push((name.to_owned(), import(store, reader, opts.clone(), |_| {})?));
    }
    let links: Vec<(&str, Cid, u64)> = roots
        .iter()
        .map(|(n, r)| (n.as_str(), r.cid, r.dag_size))
        .collect();
    let (dir, block) = dag::directory(&links);
    store.put_batch(Some(&dir), &[(dir, Bytes::from(block))])?;
    Ok((dir, roots))
}
