//! The proofs a node serves: what its light client built (a node with chain access) or what it verified
//! (a device), kept as bytes and bounded in count. The node puts only proofs that verified; the shelf
//! itself does not judge them.

use std::collections::{BTreeMap, HashMap};

use super::wire::{MAX_ITEM_BYTES, ProofRequest, ProofResponse};

/// Most checkpoints whose bootstrap is kept.
pub const MAX_BOOTSTRAPS: usize = 4;
/// Most periods whose committee update is kept (the newest).
pub const MAX_PERIODS_KEPT: usize = 64;
/// Most products with a head proof.
pub const MAX_PRODUCTS: usize = 16;
/// Most release proofs kept per product (the highest sequences).
pub const MAX_RELEASES_PER_PRODUCT: usize = 8;

/// One item the shelf holds, with what it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShelfItem {
    Bootstrap {
        checkpoint: [u8; 32],
        bytes: Vec<u8>,
    },
    Update {
        period: u64,
        bytes: Vec<u8>,
    },
    /// A head proof; `slot` orders head proofs (a newer one replaces an older one, never the reverse).
    Head {
        product: [u8; 32],
        slot: u64,
        bytes: Vec<u8>,
    },
    Release {
        product: [u8; 32],
        sequence: u64,
        bytes: Vec<u8>,
    },
}

/// Verified proofs, bounded.
#[derive(Debug, Default)]
pub struct Shelf {
    bootstraps: Vec<([u8; 32], Vec<u8>)>,
    updates: BTreeMap<u64, Vec<u8>>,
    heads: HashMap<[u8; 32], (u64, Vec<u8>)>,
    releases: HashMap<[u8; 32], BTreeMap<u64, Vec<u8>>>,
}

impl Shelf {
    /// Keep `item` (an item over [`MAX_ITEM_BYTES`] is not kept: it could not be served). Returns whether it
    /// was kept (an older head proof than the one held is not).
    pub fn put(&mut self, item: ShelfItem) -> bool {
        let len = match &item {
            ShelfItem::Bootstrap { bytes, .. }
            | ShelfItem::Update { bytes, .. }
            | ShelfItem::Head { bytes, .. }
            | ShelfItem::Release { bytes, .. } => bytes.len(),
        };
        if len > MAX_ITEM_BYTES {
            return false;
        }
        match item {
            ShelfItem::Bootstrap { checkpoint, bytes } => {
                self.bootstraps.retain(|(c, _)| c != &checkpoint);
                self.bootstraps.push((checkpoint, bytes));
                if self.bootstraps.len() > MAX_BOOTSTRAPS {
                    self.bootstraps.remove(0);
                }
            }
            ShelfItem::Update { period, bytes } => {
                self.updates.insert(period, bytes);
                while self.updates.len() > MAX_PERIODS_KEPT {
                    self.updates.pop_first();
                }
            }
            ShelfItem::Head { product, slot, bytes } => {
                if self.heads.get(&product).is_some_and(|(s, _)| *s >= slot) {
                    return false;
                }
                if !self.heads.contains_key(&product) && self.heads.len() >= MAX_PRODUCTS {
                    return false;
                }
                self.heads.insert(product, (slot, bytes));
            }
            ShelfItem::Release {
                product,
                sequence,
                bytes,
            } => {
                if !self.releases.contains_key(&product) && self.releases.len() >= MAX_PRODUCTS {
                    return false;
                }
                let kept = self.releases.entry(product).or_default();
                kept.insert(sequence, bytes);
                while kept.len() > MAX_RELEASES_PER_PRODUCT {
                    kept.pop_first();
                }
            }
        }
        true
    }

    /// The slot of the head proof held for `product`.
    pub fn head_slot(&self, product: &[u8; 32]) -> Option<u64> {
        self.heads.get(product).map(|(s, _)| *s)
    }

    /// The head proof held for `product`.
    pub fn head(&self, product: &[u8; 32]) -> Option<&[u8]> {
        self.heads.get(product).map(|(_, b)| b.as_slice())
    }

    /// The answer to `request` from what is held. Updates are answered with the consecutive periods held from
    /// `from` on (none held: not held).
    pub fn answer(&self, request: &ProofRequest) -> ProofResponse {
        let found = |b: Option<&Vec<u8>>| match b {
            Some(b) => ProofResponse::Found(vec![b.clone()]),
            None => ProofResponse::NotHeld,
        };
        match request {
            ProofRequest::Bootstrap { checkpoint } => found(
                self.bootstraps
                    .iter()
                    .find(|(c, _)| c == checkpoint)
                    .map(|(_, b)| b),
            ),
            ProofRequest::Updates { from, count } => {
                let items: Vec<Vec<u8>> = (0..u64::from(*count))
                    .map_while(|i| self.updates.get(&from.saturating_add(i)).cloned())
                    .collect();
                if items.is_empty() {
                    ProofResponse::NotHeld
                } else {
                    ProofResponse::Found(items)
                }
            }
            ProofRequest::Head { product } => found(self.heads.get(product).map(|(_, b)| b)),
            ProofRequest::Release { product, sequence } => {
                found(self.releases.get(product).and_then(|r| r.get(sequence)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_head_replaces_an_older_one_never_the_reverse() {
        let mut s = Shelf::default();
        let p = [1; 32];
        assert!(s.put(ShelfItem::Head {
            product: p,
            slot: 10,
            bytes: vec![10]
        }));
        assert!(!s.put(ShelfItem::Head {
            product: p,
            slot: 9,
            bytes: vec![9]
        }));
        assert!(!s.put(ShelfItem::Head {
            product: p,
            slot: 10,
            bytes: vec![11]
        }));
        assert_eq!(s.head(&p), Some(&[10u8][..]));
        assert!(s.put(ShelfItem::Head {
            product: p,
            slot: 12,
            bytes: vec![12]
        }));
        assert_eq!(
            s.answer(&ProofRequest::Head { product: p }),
            ProofResponse::Found(vec![vec![12]])
        );
    }

    #[test]
    fn the_shelf_is_bounded() {
        let mut s = Shelf::default();
        for period in 0..(MAX_PERIODS_KEPT as u64 + 10) {
            s.put(ShelfItem::Update {
                period,
                bytes: vec![period as u8],
            });
        }
        assert_eq!(s.updates.len(), MAX_PERIODS_KEPT);
        assert_eq!(
            s.answer(&ProofRequest::Updates { from: 0, count: 4 }),
            ProofResponse::NotHeld,
            "the oldest periods went first"
        );
        for seq in 0..20 {
            s.put(ShelfItem::Release {
                product: [1; 32],
                sequence: seq,
                bytes: vec![1],
            });
        }
        assert_eq!(s.releases[&[1; 32]].len(), MAX_RELEASES_PER_PRODUCT);
        for i in 0..(MAX_PRODUCTS as u8 + 4) {
            s.put(ShelfItem::Head {
                product: [i; 32],
                slot: 1,
                bytes: vec![1],
            });
        }
        assert_eq!(s.heads.len(), MAX_PRODUCTS);
        assert!(!s.put(ShelfItem::Bootstrap {
            checkpoint: [0; 32],
            bytes: vec![0; MAX_ITEM_BYTES + 1]
        }));
    }

    #[test]
    fn updates_answer_the_consecutive_periods_held() {
        let mut s = Shelf::default();
        for period in [3, 4, 6] {
            s.put(ShelfItem::Update {
                period,
                bytes: vec![period as u8],
            });
        }
        assert_eq!(
            s.answer(&ProofRequest::Updates { from: 3, count: 4 }),
            ProofResponse::Found(vec![vec![3], vec![4]])
        );
    }
}
