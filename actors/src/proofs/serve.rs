//! Serving proofs from a node with chain access (`chain.serve_proofs`, on by default for repositories): after
//! each poll of a light-mode watcher, the node builds, from its own verified light client and `eth_getProof`,
//! the committee chain from the configured checkpoint, the newest head proof and the release proofs of the
//! releases it saw, and puts them on the p2p proof shelf. A new head proof is announced to connected peers.
//! Every proof is verified as a device would verify it before it is served (`proof::build`).

use alloy::primitives::{Address, B256};
use firmchain_lightclient::client::LightClient;
use firmchain_lightclient::consensus::Update;
use firmchain_lightclient::consensus::ssz::Root;
use firmchain_lightclient::execution_rpc::ExecutionRpc;
use firmchain_lightclient::proof::layout::FIRMWARE_INDEX;
use firmchain_lightclient::proof::{
    self, BuildError, CommitteeChain, Expected, MAX_REVOCATIONS, TWO_THIRDS, build_committee_chain,
    build_head_proof, build_release_proof, encode_committee_chain, encode_head_proof, encode_release_proof,
};
use firmchain_lightclient::rpc::ConsensusRpc;
use firmchain_p2p::proofs::{Proofs, ShelfItem};
use firmchain_update::{ProductId, ReleaseRecord};

/// What a serving node has built so far.
#[derive(Debug)]
pub struct ProofServing {
    proofs: Proofs,
    checkpoint: Root,
    /// The periods whose committee update is on the shelf (from the checkpoint's period).
    periods_done: Option<u64>,
    /// The period of the checkpoint's bootstrap, once it is on the shelf.
    checkpoint_period: Option<u64>,
    /// Records of releases seen, by sequence (the newest few, to rebuild their proofs at newer headers).
    records: std::collections::BTreeMap<u64, Vec<u8>>,
}

/// Most release records a serving node keeps to rebuild proofs from.
const RECORDS_KEPT: usize = 8;

fn anchor_slot(u: &Update) -> u64 {
    u.finalized_header
        .as_ref()
        .map_or(u.attested_header.beacon.slot, |f| f.beacon.slot)
}

impl ProofServing {
    /// Serve proofs from `checkpoint` (the configured trusted root the devices share) on `proofs`.
    pub fn new(proofs: Proofs, checkpoint: Root) -> ProofServing {
        ProofServing {
            proofs,
            checkpoint,
            periods_done: None,
            checkpoint_period: None,
            records: Default::default(),
        }
    }

    /// Remember a release record (from a poll's verified releases).
    pub fn saw(&mut self, record: &ReleaseRecord) {
        self.records.insert(record.sequence.0, record.abi_encode());
        while self.records.len() > RECORDS_KEPT {
            self.records.pop_first();
        }
    }

    /// Build and shelve what is new: the committee chain up to the current period, a head proof at the newest
    /// finality update, and the release proofs of the records kept. Returns the head proof's bytes when it is
    /// newer than the one on the shelf (the caller announces it).
    pub async fn refresh<E: ExecutionRpc, C: ConsensusRpc>(
        &mut self,
        rpc: &E,
        client: &LightClient<C>,
        index: Address,
        product: &ProductId,
        now: u64,
    ) -> Result<Option<Vec<u8>>, BuildError> {
        let spec = &client.spec;
        let slot = spec.slot_at(now);
        let beacon = client.rpc();
        if self.checkpoint_period.is_none() {
            let chain = build_committee_chain(spec, beacon, self.checkpoint, true, 0, 0, slot).await?;
            self.proofs.put(ShelfItem::Bootstrap {
                checkpoint: self.checkpoint,
                bytes: encode_committee_chain(&chain),
            });
            self.checkpoint_period = chain.bootstrap.map(|b| spec.period(b.header.beacon.slot));
        }
        let current = spec.period(client.store.finalized_header.beacon.slot);
        let first = match (self.periods_done, self.checkpoint_period) {
            (Some(done), _) if done >= current => None,
            (Some(done), _) => Some(done + 1),
            (None, Some(p)) => Some(p),
            (None, None) => None,
        };
        if let Some(from) = first {
            let count = (current + 1 - from).min(proof::MAX_CHAIN_UPDATES as u64);
            let chain =
                build_committee_chain(spec, beacon, self.checkpoint, false, from, count, slot).await?;
            for (i, u) in chain.updates.into_iter().enumerate() {
                let one = CommitteeChain {
                    bootstrap: None,
                    updates: vec![u],
                };
                self.proofs.put(ShelfItem::Update {
                    period: from + i as u64,
                    bytes: encode_committee_chain(&one),
                });
            }
            self.periods_done = Some(from + count - 1);
        }

        let header = beacon.finality_update().await?;
        let expected = Expected {
            spec,
            contract: index,
            layout: FIRMWARE_INDEX,
            product: B256::from(product.0),
            current_slot: slot,
            participation: TWO_THIRDS,
        };
        let slot_of_header = anchor_slot(&header);
        if self
            .proofs
            .with_shelf(|s| s.head_slot(&product.0))
            .is_some_and(|s| s >= slot_of_header)
        {
            return Ok(None);
        }
        let head = build_head_proof(rpc, &client.store, header.clone(), &expected, MAX_REVOCATIONS).await?;
        for (seq, record) in &self.records {
            let proof = build_release_proof(
                rpc,
                &client.store,
                header.clone(),
                &expected,
                *seq,
                record.clone(),
            )
            .await?;
            self.proofs.put(ShelfItem::Release {
                product: product.0,
                sequence: *seq,
                bytes: encode_release_proof(&proof),
            });
        }
        let bytes = encode_head_proof(&head);
        let fresh = self.proofs.put(ShelfItem::Head {
            product: product.0,
            slot: slot_of_header,
            bytes: bytes.clone(),
        });
        if fresh {
            let peers = self.proofs.announce(bytes.clone(), None).await;
            tracing::debug!(target: "firmchain::proofs", peers, slot = slot_of_header, "head proof announced");
        }
        Ok(fresh.then_some(bytes))
    }
}
