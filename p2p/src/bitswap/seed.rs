//! Origin seeding: which wants a publisher refuses so that the fleet shares its blocks. Pure: time and
//! connectivity are passed in.
//!
//! A block sent to a peer makes that peer a holder for [`SEED_HOLD`] while it stays connected. Another peer
//! that wants the block then gets `DontHave` and looks for it among its other peers (the holder announces the
//! release as soon as its fetch starts, and is usually connected already). A peer that keeps asking is served
//! once `patience` has passed since it was first refused, so a holder that does not share costs the others
//! at most that long. The patience runs per asker, not from the holder's send: a device that learns of the
//! release later than the first one is refused just as long, and rarely needs the publisher at all.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cid::Cid;
use libp2p::PeerId;

/// How long after a send its recipient counts as a holder of the block.
pub const SEED_HOLD: Duration = Duration::from_secs(30);
/// Blocks, and (asker, block) pairs, remembered at most; past this, entries that no longer matter are dropped,
/// and if all still matter, all.
pub const MAX_TRACKED: usize = 1 << 16;

/// The publisher's memory of what it sent to whom and whom it refused.
#[derive(Debug)]
pub struct Seeding {
    patience: Duration,
    /// Per block: the last peer it was sent to, and when.
    sent: HashMap<Cid, (Instant, PeerId)>,
    /// Per asker and block: when it was first refused.
    refused: HashMap<(PeerId, Cid), Instant>,
}

impl Seeding {
    /// Refuse a held block for up to `patience` per asker.
    pub fn new(patience: Duration) -> Seeding {
        Seeding {
            patience,
            sent: HashMap::new(),
            refused: HashMap::new(),
        }
    }

    /// Whether to refuse `peer`'s want of `cid` (true) or send the block (false, and the send is recorded).
    /// `connected` says whether a peer is still connected.
    pub fn refuse(
        &mut self,
        cid: &Cid,
        peer: PeerId,
        now: Instant,
        connected: impl Fn(&PeerId) -> bool,
    ) -> bool {
        let held_elsewhere = self.sent.get(cid).is_some_and(|(at, holder)| {
            *holder != peer && now.saturating_duration_since(*at) < SEED_HOLD && connected(holder)
        });
        if held_elsewhere {
            if self.refused.len() >= MAX_TRACKED {
                let patience = self.patience;
                self.refused
                    .retain(|_, first| now.saturating_duration_since(*first) < patience);
                if self.refused.len() >= MAX_TRACKED {
                    // A flood of askers within one patience: start over (they are refused a little longer).
                    self.refused.clear();
                }
            }
            let first = *self.refused.entry((peer, *cid)).or_insert(now);
            if now.saturating_duration_since(first) < self.patience {
                return true;
            }
        }
        self.refused.remove(&(peer, *cid));
        if self.sent.len() >= MAX_TRACKED {
            self.sent
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < SEED_HOLD);
            if self.sent.len() >= MAX_TRACKED {
                // All recent (a release of more blocks than this): start over; some are sent again.
                self.sent.clear();
            }
        }
        // The asker becomes the block's holder only if there was none: the first holder stays the one to ask.
        if !held_elsewhere {
            self.sent.insert(*cid, (now, peer));
        }
        false
    }

    /// (blocks, refusals) remembered.
    pub fn tracked(&self) -> (usize, usize) {
        (self.sent.len(), self.refused.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u32) -> Cid {
        firmchain_update::dag::cid_of(firmchain_update::dag::RAW, &n.to_le_bytes())
    }

    const PATIENCE: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_asker_is_served_and_the_next_waits_its_patience() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut s = Seeding::new(PATIENCE);
        let t = Instant::now();
        assert!(!s.refuse(&cid(1), a, t, |_| true));
        assert!(s.refuse(&cid(1), b, t, |_| true));
        assert!(s.refuse(&cid(1), b, t + PATIENCE / 2, |_| true));
        assert!(!s.refuse(&cid(1), b, t + PATIENCE, |_| true));
        // The holder itself may ask again (a lost message) and is served.
        assert!(!s.refuse(&cid(1), a, t + PATIENCE / 2, |_| true));
    }

    #[test]
    fn a_late_asker_is_refused_from_its_own_first_ask() {
        // A device that learns of the release after the first device's send waits too.
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut s = Seeding::new(PATIENCE);
        let t = Instant::now();
        assert!(!s.refuse(&cid(1), a, t, |_| true));
        let late = t + PATIENCE * 5;
        assert!(s.refuse(&cid(1), b, late, |_| true));
        assert!(s.refuse(&cid(1), b, late + PATIENCE / 2, |_| true));
        assert!(!s.refuse(&cid(1), b, late + PATIENCE, |_| true));
    }

    #[test]
    fn a_gone_or_old_holder_does_not_hold_the_block() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut s = Seeding::new(PATIENCE);
        let t = Instant::now();
        assert!(!s.refuse(&cid(1), a, t, |_| true));
        assert!(
            !s.refuse(&cid(1), b, t, |p| *p != a),
            "a disconnected holder holds nothing"
        );
        assert!(!s.refuse(&cid(2), a, t, |_| true));
        assert!(
            !s.refuse(&cid(2), c, t + SEED_HOLD, |_| true),
            "the hold has passed"
        );
    }

    #[test]
    fn other_blocks_are_independent() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut s = Seeding::new(PATIENCE);
        let t = Instant::now();
        assert!(!s.refuse(&cid(1), a, t, |_| true));
        assert!(!s.refuse(&cid(2), b, t, |_| true));
        assert!(s.refuse(&cid(2), a, t, |_| true));
        assert!(s.refuse(&cid(1), b, t, |_| true));
    }

    #[test]
    fn memory_is_bounded_however_many_blocks_and_askers() {
        let holder = PeerId::random();
        let mut s = Seeding::new(PATIENCE);
        let t = Instant::now();
        for n in 0..(MAX_TRACKED as u32 + 1000) {
            s.refuse(&cid(n), holder, t, |_| true);
        }
        let (sent, _) = s.tracked();
        assert!(sent <= MAX_TRACKED, "{sent}");
        // A flood of askers for one held block, all within one patience.
        assert!(!s.refuse(&cid(u32::MAX), holder, t, |_| true));
        for i in 0..(MAX_TRACKED + 1000) {
            let at = t + Duration::from_micros(10 * i as u64);
            assert!(s.refuse(&cid(u32::MAX), PeerId::random(), at, |_| true));
        }
        let (_, refused) = s.tracked();
        assert!(refused <= MAX_TRACKED, "{refused}");
    }
}
