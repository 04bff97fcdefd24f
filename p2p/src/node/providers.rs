//! Which provider records other peers may store with us (the DHT's store is filtered through this).
//!
//! Records for roots the node knows (what it provides or is fetching) are always taken. Any other key costs
//! the peer one of its [`MAX_KEYS_PER_PEER`], and all such keys together are held to [`MAX_UNKNOWN_KEYS`], so
//! the store keeps room for the fleet's own roots however many peers flood it. Pure: time is passed in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::RecordKey;

/// Distinct keys one peer may provide through us, besides the roots the node knows.
pub const MAX_KEYS_PER_PEER: usize = 32;
/// All keys held for others that the node does not know.
pub const MAX_UNKNOWN_KEYS: usize = 3072;
/// Keys in the store in all (the room above [`MAX_UNKNOWN_KEYS`] is kept for known roots).
pub const MAX_STORED_KEYS: usize = 4096;
/// Providers kept per key (the libp2p default, Kademlia's k).
pub const MAX_PROVIDERS_PER_KEY: usize = 20;
/// Addresses kept per provider record.
pub const MAX_ADDRS_PER_PROVIDER: usize = 4;

/// Whether to store a received provider record.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Store it; first remove these older records of unknown keys (to make room for a known root).
    Store { evict: Vec<(RecordKey, PeerId)> },
    /// The peer already holds its share of keys.
    PeerOverQuota { held: usize },
    /// Unknown keys have filled their share of the store.
    StoreFull,
}

/// The bookkeeping behind [`Admit`].
#[derive(Debug, Default)]
pub struct ProviderQuota {
    known: HashSet<RecordKey>,
    per_peer: HashMap<PeerId, HashMap<RecordKey, Instant>>,
    /// Unknown keys stored, oldest first (evicted first when a known root needs room).
    order: VecDeque<(RecordKey, PeerId)>,
    stored_known: usize,
    last_expiry: Option<Instant>,
}

/// Expired records are swept at most this often (a sweep walks every unknown key).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl ProviderQuota {
    /// Records for `key` are always taken.
    pub fn know(&mut self, key: RecordKey) {
        self.known.insert(key);
    }

    /// `key` is no longer special.
    pub fn forget(&mut self, key: &RecordKey) {
        self.known.remove(key);
    }

    /// Decide on a record for `key` from `peer` that lives until `expires`.
    pub fn admit(&mut self, peer: PeerId, key: &RecordKey, expires: Instant, now: Instant) -> Admit {
        let first = self.decide(peer, key, expires);
        let refused = !matches!(first, Admit::Store { .. });
        if refused
            && self
                .last_expiry
                .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
        {
            // Refused: expired records may have freed room.
            self.last_expiry = Some(now);
            self.expire(now);
            return self.decide(peer, key, expires);
        }
        first
    }

    fn decide(&mut self, peer: PeerId, key: &RecordKey, expires: Instant) -> Admit {
        if self.known.contains(key) {
            let mut evict = Vec::new();
            self.stored_known += 1;
            while self.order.len() + self.stored_known > MAX_STORED_KEYS {
                let Some((k, p)) = self.order.pop_front() else {
                    break;
                };
                if let Some(keys) = self.per_peer.get_mut(&p) {
                    keys.remove(&k);
                }
                evict.push((k, p));
            }
            return Admit::Store { evict };
        }
        let keys = self.per_peer.entry(peer).or_default();
        if let Some(until) = keys.get_mut(key) {
            *until = expires;
            return Admit::Store { evict: Vec::new() };
        }
        if keys.len() >= MAX_KEYS_PER_PEER {
            return Admit::PeerOverQuota { held: keys.len() };
        }
        if self.order.len() >= MAX_UNKNOWN_KEYS {
            return Admit::StoreFull;
        }
        keys.insert(key.clone(), expires);
        self.order.push_back((key.clone(), peer));
        Admit::Store { evict: Vec::new() }
    }

    /// Unknown keys held for `peer`.
    #[cfg(test)]
    pub fn held_by(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).map_or(0, HashMap::len)
    }

    fn expire(&mut self, now: Instant) {
        let per_peer = &mut self.per_peer;
        let before = self.order.len();
        self.order.retain(|(k, p)| {
            let live = per_peer
                .get(p)
                .and_then(|keys| keys.get(k))
                .is_some_and(|until| *until > now);
            if !live && let Some(keys) = per_peer.get_mut(p) {
                keys.remove(k);
            }
            live
        });
        if self.order.len() != before {
            per_peer.retain(|_, keys| !keys.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(i: u32) -> RecordKey {
        RecordKey::new(&i.to_le_bytes())
    }

    #[test]
    fn a_peer_gets_its_share_of_unknown_keys_and_no_more() {
        let mut q = ProviderQuota::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(3600);
        let flooder = PeerId::random();
        for i in 0..MAX_KEYS_PER_PEER as u32 {
            assert_eq!(
                q.admit(flooder, &key(i), later, now),
                Admit::Store { evict: vec![] }
            );
        }
        assert_eq!(
            q.admit(flooder, &key(100_000), later, now),
            Admit::PeerOverQuota {
                held: MAX_KEYS_PER_PEER
            }
        );
        // Refreshing a held key is fine; another peer has its own share; known roots are always taken.
        assert_eq!(
            q.admit(flooder, &key(0), later, now),
            Admit::Store { evict: vec![] }
        );
        assert_eq!(
            q.admit(PeerId::random(), &key(7), later, now),
            Admit::Store { evict: vec![] }
        );
        q.know(key(9_999));
        assert_eq!(
            q.admit(flooder, &key(9_999), later, now),
            Admit::Store { evict: vec![] }
        );
        assert_eq!(q.held_by(&flooder), MAX_KEYS_PER_PEER);
    }

    #[test]
    fn many_peers_fill_only_the_unknown_share_and_known_roots_evict_them() {
        let mut q = ProviderQuota::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(3600);
        let mut i = 0u32;
        let mut full = false;
        for _ in 0..(MAX_UNKNOWN_KEYS / MAX_KEYS_PER_PEER + 10) {
            let p = PeerId::random();
            for _ in 0..MAX_KEYS_PER_PEER {
                i += 1;
                full |= q.admit(p, &key(i), later, now) == Admit::StoreFull;
            }
        }
        assert!(full);
        assert_eq!(q.order.len(), MAX_UNKNOWN_KEYS);
        for k in 0..(MAX_STORED_KEYS - MAX_UNKNOWN_KEYS) as u32 {
            q.know(key(1_000_000 + k));
            match q.admit(PeerId::random(), &key(1_000_000 + k), later, now) {
                Admit::Store { evict } => assert!(evict.is_empty()),
                other => panic!("{other:?}"),
            }
        }
        q.know(key(2_000_000));
        let Admit::Store { evict } = q.admit(PeerId::random(), &key(2_000_000), later, now) else {
            panic!()
        };
        assert_eq!(evict.len(), 1, "the oldest unknown key makes room");
    }

    #[test]
    fn expired_records_free_the_share() {
        let mut q = ProviderQuota::default();
        let now = Instant::now();
        let p = PeerId::random();
        for i in 0..MAX_KEYS_PER_PEER as u32 {
            q.admit(p, &key(i), now + Duration::from_secs(1), now);
        }
        let after = now + Duration::from_secs(2);
        assert_eq!(
            q.admit(p, &key(500), after + Duration::from_secs(1), after),
            Admit::Store { evict: vec![] }
        );
        assert_eq!(q.held_by(&p), 1);
    }
}
