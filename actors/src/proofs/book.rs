//! What a `peers`-mode device knows from proofs, as plain data: its light-client store (from its own
//! checkpoint and the committee updates peers relayed), the mark of the last head proof it accepted, and the
//! bytes of the proofs it keeps to serve on. Every proof is verified here; time is passed in.

use alloy::primitives::{Address, B256};
use firmchain_lightclient::consensus::ssz::Root;
use firmchain_lightclient::consensus::{ChainSpec, Store};
use firmchain_lightclient::proof::layout::FIRMWARE_INDEX;
use firmchain_lightclient::proof::{
    CommitteeChain, Expected, HeadMark, ProofError, TWO_THIRDS, VerifiedHead, VerifiedRelease, advance_store,
    decode_committee_chain, decode_head_proof, decode_release_proof, encode_committee_chain,
    store_from_checkpoint, verify_head_proof, verify_release_proof,
};
use firmchain_update::{ProductId, ReleaseRecord};

/// Why a proof from a peer was refused.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("no committee yet: the device has not verified a bootstrap for its checkpoint")]
    NoStore,
    #[error("the proven release record does not decode: {0}")]
    Record(String),
    #[error("release proof for sequence {actual}, {expected} was asked for")]
    WrongSequence { expected: u64, actual: u64 },
}

impl FollowError {
    /// Whether an honest peer could have sent it (see [`ProofError::is_benign`]).
    pub fn is_benign(&self) -> bool {
        match self {
            FollowError::Proof(e) => e.is_benign(),
            FollowError::NoStore => true,
            FollowError::Record(_) | FollowError::WrongSequence { .. } => false,
        }
    }
}

/// The device's proof state.
#[derive(Debug, Clone)]
pub struct ProofBook {
    pub spec: ChainSpec,
    pub checkpoint: Root,
    pub contract: Address,
    pub product: ProductId,
    /// None until a bootstrap for the checkpoint verified.
    pub store: Option<Store>,
    /// The committee chain that built `store` (bootstrap and the updates applied), kept to restart from.
    pub chain: CommitteeChain,
    /// The last head proof accepted, and its bytes.
    pub last: Option<(HeadMark, Vec<u8>)>,
    /// What the last accepted head proof proved.
    pub head: Option<VerifiedHead>,
}

impl ProofBook {
    pub fn new(spec: ChainSpec, checkpoint: Root, contract: Address, product: ProductId) -> ProofBook {
        ProofBook {
            spec,
            checkpoint,
            contract,
            product,
            store: None,
            chain: CommitteeChain {
                bootstrap: None,
                updates: Vec::new(),
            },
            last: None,
            head: None,
        }
    }

    fn expected(&self, now: u64) -> Expected<'_> {
        Expected {
            spec: &self.spec,
            contract: self.contract,
            layout: FIRMWARE_INDEX,
            product: B256::from(self.product.0),
            current_slot: self.spec.slot_at(now),
            participation: TWO_THIRDS,
        }
    }

    /// The sync-committee period the store is in.
    pub fn period(&self) -> Option<u64> {
        self.store
            .as_ref()
            .map(|s| self.spec.period(s.finalized_header.beacon.slot))
    }

    /// The current period by the device clock.
    pub fn current_period(&self, now: u64) -> u64 {
        self.spec.period(self.spec.slot_at(now))
    }

    /// Start the store from a relayed bootstrap (a committee chain) against the device's own checkpoint.
    pub fn bootstrap(&mut self, bytes: &[u8], now: u64) -> Result<(), FollowError> {
        let chain = decode_committee_chain(bytes)?;
        let store = store_from_checkpoint(&self.spec, &self.checkpoint, &chain, self.spec.slot_at(now))?;
        self.store = Some(store);
        self.chain = chain;
        Ok(())
    }

    /// Apply relayed committee updates (each a committee chain without bootstrap); returns how many applied.
    pub fn advance(&mut self, items: &[Vec<u8>], now: u64) -> Result<usize, FollowError> {
        let store = self.store.as_mut().ok_or(FollowError::NoStore)?;
        let mut updates = Vec::new();
        for item in items {
            let chain = decode_committee_chain(item)?;
            if chain.bootstrap.is_some() {
                return Err(ProofError::NonCanonical {
                    what: "a committee update with a bootstrap",
                }
                .into());
            }
            updates.extend(chain.updates);
        }
        let used = advance_store(&self.spec, store, &updates, self.spec.slot_at(now))?;
        if used > 0 {
            self.chain.updates.extend(updates);
            // Keep the chain bounded: the newest updates carry the committees that matter.
            let max = firmchain_lightclient::proof::MAX_CHAIN_UPDATES;
            let excess = self.chain.updates.len().saturating_sub(max);
            self.chain.updates.drain(..excess);
        }
        Ok(used)
    }

    /// Verify a head proof newer than the last accepted; on success it becomes the last.
    pub fn accept_head(&mut self, bytes: &[u8], now: u64) -> Result<VerifiedHead, FollowError> {
        let store = self.store.as_ref().ok_or(FollowError::NoStore)?;
        let proof = decode_head_proof(bytes)?;
        let last = self.last.as_ref().map(|(m, _)| *m);
        let v = verify_head_proof(store, &proof, &self.expected(now), last)?;
        self.last = Some((v.anchor.mark(), bytes.to_vec()));
        self.head = Some(v.clone());
        Ok(v)
    }

    /// Verify the release proof of `sequence` and decode its record.
    pub fn accept_release(
        &self,
        bytes: &[u8],
        sequence: u64,
        now: u64,
    ) -> Result<(VerifiedRelease, ReleaseRecord), FollowError> {
        let store = self.store.as_ref().ok_or(FollowError::NoStore)?;
        let proof = decode_release_proof(bytes)?;
        if proof.sequence != sequence {
            return Err(FollowError::WrongSequence {
                expected: sequence,
                actual: proof.sequence,
            });
        }
        let v = verify_release_proof(store, &proof, &self.expected(now))?;
        let record = ReleaseRecord::abi_decode(&v.record).map_err(|e| FollowError::Record(e.to_string()))?;
        if record.product != self.product || record.sequence.0 != sequence {
            return Err(FollowError::Record(format!(
                "the record is release {} of {}, the proof is for {sequence} of {}",
                record.sequence.0, record.product, self.product
            )));
        }
        Ok((v, record))
    }

    /// What to persist: the committee chain and the last head proof.
    pub fn saved(&self) -> SavedProofs {
        SavedProofs {
            chain: alloy::hex::encode(encode_committee_chain(&self.chain)),
            head: self.last.as_ref().map(|(_, b)| alloy::hex::encode(b)),
        }
    }

    /// Restore from what [`ProofBook::saved`] wrote: the store is rebuilt from the device's own checkpoint and
    /// verified again; the head proof must verify against it too (its mark then refuses replays of older
    /// ones).
    pub fn restore(&mut self, saved: &SavedProofs, now: u64) -> Result<(), FollowError> {
        let chain = alloy::hex::decode(&saved.chain).map_err(|e| FollowError::Record(e.to_string()))?;
        self.bootstrap(&chain, now)?;
        if let Some(head) = &saved.head {
            let bytes = alloy::hex::decode(head).map_err(|e| FollowError::Record(e.to_string()))?;
            // An old head proof of a past period no longer verifies; that only costs freshness.
            let proof = decode_head_proof(&bytes)?;
            if let Some(store) = &self.store
                && let Ok(v) = verify_head_proof(store, &proof, &self.expected(now), None)
            {
                self.last = Some((v.anchor.mark(), bytes));
                self.head = Some(v);
            }
        }
        Ok(())
    }
}

/// The proofs a device keeps in its state (`proofs` in NodeState): hex of the committee chain and of the last
/// head proof.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedProofs {
    pub chain: String,
    pub head: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmchain_lightclient::proof::{MAX_COMMITTEE_CHAIN_BYTES, MAX_PROOF_BYTES};

    fn book() -> ProofBook {
        ProofBook::new(
            ChainSpec::mainnet(),
            [7; 32],
            Address::ZERO,
            "acme-sensor".parse().unwrap(),
        )
    }

    const NOW: u64 = 1_750_000_000;

    #[test]
    fn nothing_is_accepted_before_the_checkpoints_bootstrap_verified() {
        let mut b = book();
        let e = b.accept_head(&[0; 64], NOW).unwrap_err();
        assert!(matches!(e, FollowError::NoStore) && e.is_benign(), "{e}");
        let e = b.accept_release(&[0; 64], 1, NOW).unwrap_err();
        assert!(matches!(e, FollowError::NoStore), "{e}");
        let e = b.advance(&[vec![0; 64]], NOW).unwrap_err();
        assert!(matches!(e, FollowError::NoStore), "{e}");
        assert!(b.last.is_none() && b.head.is_none() && b.period().is_none());
    }

    #[test]
    fn garbage_and_oversized_bootstraps_are_refused_before_parsing_and_blamed() {
        let mut b = book();
        let e = b.bootstrap(b"not a proof at all", NOW).unwrap_err();
        assert!(
            matches!(e, FollowError::Proof(ProofError::BadMagic { .. })),
            "{e}"
        );
        assert!(!e.is_benign(), "garbage must ban the peer");
        let big = vec![0; MAX_COMMITTEE_CHAIN_BYTES + 1];
        let e = b.bootstrap(&big, NOW).unwrap_err();
        assert!(
            matches!(e, FollowError::Proof(ProofError::TooLarge { len, .. }) if len == big.len()),
            "{e}"
        );
        assert!(!e.is_benign());
        assert!(b.store.is_none(), "a refused bootstrap left a store behind");
    }

    #[test]
    fn a_chain_without_the_checkpoints_bootstrap_starts_nothing() {
        let mut b = book();
        // What a book that never synced saves: an empty committee chain.
        let empty = encode_committee_chain(&b.chain);
        let e = b.bootstrap(&empty, NOW).unwrap_err();
        assert!(matches!(e, FollowError::Proof(ProofError::NoBootstrap)), "{e}");
        assert!(b.store.is_none());
    }

    /// Real proofs over anvil and the beacon harness (recorded by `node/tests/peers_fixtures.rs`): a committee
    /// chain from the checkpoint, two head proofs a few slots apart and the release proof of sequence 1.
    struct Fixture {
        book: ProofBook,
        now: u64,
        chain: &'static [u8],
        older: &'static [u8],
        newer: &'static [u8],
        release: &'static [u8],
    }

    fn fixture() -> Fixture {
        let meta: serde_json::Value = serde_json::from_str(include_str!("testdata/meta.json")).unwrap();
        let spec = ChainSpec::from_config(include_str!("testdata/chain.yaml")).unwrap();
        let field = |k: &str| meta[k].as_str().unwrap().to_owned();
        let checkpoint: [u8; 32] = alloy::hex::decode(field("checkpoint"))
            .unwrap()
            .try_into()
            .unwrap();
        let contract: Address = field("contract").parse().unwrap();
        let book = ProofBook::new(spec, checkpoint, contract, field("product").parse().unwrap());
        Fixture {
            book,
            now: meta["now"].as_u64().unwrap(),
            chain: include_bytes!("testdata/committee-chain.bin"),
            older: include_bytes!("testdata/head-older.bin"),
            newer: include_bytes!("testdata/head-newer.bin"),
            release: include_bytes!("testdata/release-1.bin"),
        }
    }

    fn synced() -> Fixture {
        let mut f = fixture();
        f.book.bootstrap(f.chain, f.now).unwrap();
        f
    }

    #[test]
    fn an_older_head_proof_replayed_is_refused_without_blame_and_changes_nothing() {
        let mut f = synced();
        let newer = f.book.accept_head(f.newer, f.now).unwrap();
        let mark = f.book.last.as_ref().unwrap().0;
        for replay in [f.older, f.newer] {
            let e = f.book.accept_head(replay, f.now).unwrap_err();
            assert!(
                matches!(e, FollowError::Proof(ProofError::NotNewer { .. })),
                "{e}"
            );
            assert!(e.is_benign(), "an honest peer may relay an old head proof: {e}");
        }
        assert_eq!(f.book.last.as_ref().unwrap().0, mark);
        assert_eq!(f.book.last.as_ref().unwrap().1, f.newer);
        assert_eq!(f.book.head.as_ref(), Some(&newer));
    }

    #[test]
    fn the_newest_head_proof_wins_in_either_order() {
        let mut f = synced();
        let older = f.book.accept_head(f.older, f.now).unwrap();
        let newer = f.book.accept_head(f.newer, f.now).unwrap();
        assert!(newer.anchor.slot > older.anchor.slot);
        assert_eq!(f.book.head.as_ref().unwrap().anchor.slot, newer.anchor.slot);
        // Either order ends on the newer one, and the release it proves is the same.
        let mut g = synced();
        g.book.accept_head(f.newer, f.now).unwrap();
        assert!(g.book.accept_head(f.older, f.now).is_err());
        assert_eq!(g.book.head, f.book.head);
        assert_eq!(newer.head, 1);
    }

    #[test]
    fn the_book_keeps_one_head_proof_and_a_restart_still_refuses_older_ones() {
        let mut f = synced();
        f.book.accept_head(f.older, f.now).unwrap();
        f.book.accept_head(f.newer, f.now).unwrap();
        let saved = f.book.saved();
        assert_eq!(saved.head.as_deref(), Some(alloy::hex::encode(f.newer).as_str()));
        assert_eq!(
            saved.chain,
            alloy::hex::encode(f.chain),
            "the chain grows only by committee updates"
        );
        let mut restarted = fixture();
        restarted.book.restore(&saved, f.now).unwrap();
        assert_eq!(restarted.book.head, f.book.head);
        let e = restarted.book.accept_head(f.older, f.now).unwrap_err();
        assert!(
            matches!(e, FollowError::Proof(ProofError::NotNewer { .. })),
            "{e}"
        );
    }

    #[test]
    fn a_release_proof_is_accepted_for_its_sequence_only() {
        let f = synced();
        let (v, record) = f.book.accept_release(f.release, 1, f.now).unwrap();
        assert_eq!(record.sequence.0, 1);
        assert!(!v.revoked);
        let e = f.book.accept_release(f.release, 2, f.now).unwrap_err();
        assert!(
            matches!(
                e,
                FollowError::WrongSequence {
                    expected: 2,
                    actual: 1
                }
            ),
            "{e}"
        );
        assert!(!e.is_benign());
    }

    #[test]
    fn proofs_for_another_contract_or_checkpoint_are_refused_and_blamed() {
        let f = fixture();
        let mut other = f.book.clone();
        other.contract = Address::repeat_byte(0xee);
        other.bootstrap(f.chain, f.now).unwrap();
        let e = other.accept_head(f.newer, f.now).unwrap_err();
        assert!(
            matches!(e, FollowError::Proof(ProofError::WrongContract { .. })),
            "{e}"
        );
        assert!(!e.is_benign());
        let mut wrong = f.book.clone();
        wrong.checkpoint = [9; 32];
        assert!(wrong.bootstrap(f.chain, f.now).is_err());
        assert!(wrong.store.is_none());
    }

    #[test]
    fn a_damaged_saved_state_is_refused_and_the_book_stays_empty() {
        let mut b = book();
        for saved in [
            SavedProofs {
                chain: "zz".into(),
                head: None,
            },
            SavedProofs {
                chain: alloy::hex::encode(b"garbage"),
                head: Some(alloy::hex::encode(vec![1; MAX_PROOF_BYTES + 1])),
            },
        ] {
            assert!(b.restore(&saved, NOW).is_err(), "{saved:?}");
            assert!(b.store.is_none() && b.last.is_none() && b.head.is_none());
        }
        assert_eq!(b.saved().head, None);
    }
}
