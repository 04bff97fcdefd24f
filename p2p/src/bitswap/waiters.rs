//! Peers waiting for blocks we do not hold yet: a peer that wanted a block we lacked (and got a `DontHave`) is
//! told `Have` as soon as our own fetch stores it, so devices fetching the same release find each other's
//! blocks mid-fetch instead of all asking the repository. Pure bookkeeping, time passed in, bounded per peer
//! and in total; entries expire after [`WAIT_TTL`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cid::Cid;
use libp2p::PeerId;

/// How long a peer's interest in a block we lack is remembered.
pub const WAIT_TTL: Duration = Duration::from_secs(30);
/// Blocks one peer may wait for at once; further waits are not recorded (the peer just hears nothing).
pub const MAX_WAITS_PER_PEER: usize = 1024;
/// Waits of all peers together.
pub const MAX_WAITS: usize = 64 * 1024;

/// The waiting peers of each block.
#[derive(Debug, Default)]
pub struct Waiters {
    by_cid: HashMap<Cid, Vec<(PeerId, Instant)>>,
    per_peer: HashMap<PeerId, usize>,
    total: usize,
}

impl Waiters {
    /// `peer` wants `cid`, which we lack. Returns false when it was not recorded (a limit).
    pub fn wait(&mut self, peer: PeerId, cid: Cid, now: Instant) -> bool {
        if self.total >= MAX_WAITS {
            self.expire(now);
        }
        if let Some(w) = self.by_cid.get_mut(&cid)
            && let Some(entry) = w.iter_mut().find(|(p, _)| *p == peer)
        {
            entry.1 = now;
            return true;
        }
        let mine = self.per_peer.get(&peer).copied().unwrap_or(0);
        if self.total >= MAX_WAITS || mine >= MAX_WAITS_PER_PEER {
            return false;
        }
        self.by_cid.entry(cid).or_default().push((peer, now));
        *self.per_peer.entry(peer).or_default() += 1;
        self.total += 1;
        true
    }

    /// We now hold `cids`: the peers to tell, each with the blocks it waited for (and still does, within
    /// [`WAIT_TTL`]). Their waits for these blocks end.
    pub fn take(&mut self, cids: &[Cid], now: Instant) -> HashMap<PeerId, Vec<Cid>> {
        let mut out: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        for cid in cids {
            let Some(waiting) = self.by_cid.remove(cid) else {
                continue;
            };
            for (peer, since) in waiting {
                self.forget_one(&peer);
                if now.saturating_duration_since(since) < WAIT_TTL {
                    out.entry(peer).or_default().push(*cid);
                }
            }
        }
        out
    }

    /// `peer` got `cid` elsewhere, cancelled it, or left.
    pub fn cancel(&mut self, peer: &PeerId, cid: &Cid) {
        if let Some(w) = self.by_cid.get_mut(cid)
            && let Some(i) = w.iter().position(|(p, _)| p == peer)
        {
            w.swap_remove(i);
            if w.is_empty() {
                self.by_cid.remove(cid);
            }
            self.forget_one(peer);
        }
    }

    /// `peer` is gone: all its waits end.
    pub fn peer_gone(&mut self, peer: &PeerId) {
        if self.per_peer.remove(peer).is_none() {
            return;
        }
        let mut removed = 0;
        self.by_cid.retain(|_, w| {
            let before = w.len();
            w.retain(|(p, _)| p != peer);
            removed += before - w.len();
            !w.is_empty()
        });
        self.total -= removed;
    }

    /// Waits recorded now.
    pub fn len(&self) -> usize {
        self.total
    }

    /// No waits recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn forget_one(&mut self, peer: &PeerId) {
        self.total -= 1;
        if let Some(n) = self.per_peer.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(peer);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut gone: Vec<PeerId> = Vec::new();
        self.by_cid.retain(|_, w| {
            w.retain(|(p, since)| {
                let keep = now.saturating_duration_since(*since) < WAIT_TTL;
                if !keep {
                    gone.push(*p);
                }
                keep
            });
            !w.is_empty()
        });
        for p in gone {
            self.forget_one(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u32) -> Cid {
        firmchain_update::dag::cid_of(firmchain_update::dag::RAW, &i.to_le_bytes())
    }

    #[test]
    fn waiting_peers_are_told_once_within_the_ttl() {
        let mut w = Waiters::default();
        let (a, b, t0) = (PeerId::random(), PeerId::random(), Instant::now());
        assert!(w.wait(a, cid(1), t0));
        assert!(w.wait(a, cid(1), t0), "waiting again refreshes, not duplicates");
        assert!(w.wait(b, cid(1), t0));
        assert!(w.wait(b, cid(2), t0));
        assert_eq!(w.len(), 3);
        let told = w.take(&[cid(1)], t0 + Duration::from_secs(1));
        assert_eq!(told.len(), 2);
        assert_eq!(told[&a], vec![cid(1)]);
        assert_eq!(w.len(), 1);
        assert!(w.take(&[cid(1)], t0).is_empty(), "told once");
        let late = w.take(&[cid(2)], t0 + WAIT_TTL);
        assert!(late.is_empty(), "an expired wait is not told");
        assert!(w.is_empty());
    }

    #[test]
    fn waits_are_bounded_per_peer_and_cleared_when_the_peer_leaves() {
        let mut w = Waiters::default();
        let (a, b, t0) = (PeerId::random(), PeerId::random(), Instant::now());
        for i in 0..MAX_WAITS_PER_PEER as u32 {
            assert!(w.wait(a, cid(i), t0));
        }
        assert!(!w.wait(a, cid(u32::MAX), t0), "over the per-peer limit");
        assert!(w.wait(b, cid(0), t0), "another peer has its own room");
        w.cancel(&b, &cid(0));
        assert_eq!(w.len(), MAX_WAITS_PER_PEER);
        w.peer_gone(&a);
        assert!(w.is_empty());
        assert!(w.wait(a, cid(7), t0));
    }

    #[test]
    fn the_total_is_bounded_and_expired_waits_make_room() {
        let mut w = Waiters::default();
        let t0 = Instant::now();
        let peers: Vec<PeerId> = (0..MAX_WAITS / MAX_WAITS_PER_PEER)
            .map(|_| PeerId::random())
            .collect();
        let mut i = 0;
        for p in &peers {
            for _ in 0..MAX_WAITS_PER_PEER {
                assert!(w.wait(*p, cid(i), t0));
                i += 1;
            }
        }
        let late = PeerId::random();
        assert!(!w.wait(late, cid(i), t0 + Duration::from_secs(1)), "full");
        assert!(w.wait(late, cid(i), t0 + WAIT_TTL), "the expired ones made room");
        assert_eq!(w.len(), 1);
    }
}
