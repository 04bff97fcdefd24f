//! Which block to want from which peer: pure bookkeeping, time passed in.
//!
//! - Every peer gets at most `window` wants at a time, and all peers together `max_in_flight`; blocks go to the
//!   peer with the fewest wants in flight, so several providers share the load.
//! - A `DontHave` excludes the peer for that block; a peer that refused and never delivered is asked only when
//!   no better peer exists.
//! - A peer that delivers nothing for `progress_timeout` while it holds wants gets a strike and its wants go
//!   elsewhere; at `max_strikes` it is dropped.
//! - Endgame: when nothing is left to assign, an idle peer is also asked for blocks still in flight elsewhere,
//!   so one slow peer cannot hold up the end of a fetch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use cid::Cid;
use libp2p::PeerId;

/// Tuning of the schedule.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleConfig {
    /// Wants in flight per peer.
    pub window: usize,
    /// Wants in flight in all (bounds the memory of a fetch from many peers).
    pub max_in_flight: usize,
    /// How long a peer holding wants may deliver nothing.
    pub progress_timeout: Duration,
    /// Timeouts before a peer is dropped from the fetch.
    pub max_strikes: u32,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            window: 32,
            max_in_flight: 32,
            progress_timeout: Duration::from_secs(10),
            max_strikes: 2,
        }
    }
}

/// What one peer did for this fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerRecord {
    /// Blocks it delivered that we used.
    pub blocks: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// `DontHave` answers.
    pub dont_haves: u64,
    /// Progress timeouts.
    pub strikes: u32,
    in_flight: usize,
    last_progress: Option<Instant>,
    /// Its wants were sent again after a timeout, and nothing came since.
    asked_again: bool,
}

/// What a progress timeout did to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    /// First silence: its wants are sent again (the first copy may have died with a stream), nothing else.
    AskedAgain,
    /// Silent again: a strike, and its wants move on.
    Struck,
    /// Struck out: dropped from the fetch.
    Dropped,
}

/// Whether a received block was one we asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Wanted and now done.
    Wanted,
    /// Already had it (a duplicate from the endgame, or a late answer).
    Duplicate,
    /// Never asked for in this fetch.
    Unwanted,
}

/// The schedule of one fetch.
#[derive(Debug)]
pub struct Schedule {
    cfg: ScheduleConfig,
    pending: VecDeque<Cid>,
    in_flight: HashMap<Cid, Vec<PeerId>>,
    refused: HashMap<Cid, HashSet<PeerId>>,
    salt: std::collections::hash_map::RandomState,
    known: HashSet<Cid>,
    done: HashSet<Cid>,
    peers: Vec<PeerId>,
    records: HashMap<PeerId, PeerRecord>,
    dropped: HashMap<PeerId, String>,
    /// Peers dropped for being slow (not hostile), and how often they were let back in.
    slow: HashMap<PeerId, u32>,
    /// The sum of every peer's wants in flight.
    total_in_flight: usize,
}

impl Schedule {
    /// An empty schedule.
    pub fn new(cfg: ScheduleConfig) -> Schedule {
        Schedule {
            cfg: ScheduleConfig {
                window: cfg.window.max(1),
                max_in_flight: cfg.max_in_flight.max(1),
                ..cfg
            },
            pending: VecDeque::new(),
            in_flight: HashMap::new(),
            refused: HashMap::new(),
            salt: std::collections::hash_map::RandomState::new(),
            known: HashSet::new(),
            done: HashSet::new(),
            peers: Vec::new(),
            records: HashMap::new(),
            dropped: HashMap::new(),
            slow: HashMap::new(),
            total_in_flight: 0,
        }
    }

    /// A peer that may have blocks. Returns false for a dropped or already known peer.
    pub fn add_peer(&mut self, peer: PeerId) -> bool {
        if self.dropped.contains_key(&peer) || self.records.contains_key(&peer) {
            return false;
        }
        self.peers.push(peer);
        self.records.insert(peer, PeerRecord::default());
        true
    }

    /// The peers in play (not dropped).
    pub fn peers(&self) -> &[PeerId] {
        &self.peers
    }

    /// What each peer did.
    pub fn records(&self) -> &HashMap<PeerId, PeerRecord> {
        &self.records
    }

    /// The peers dropped, and why.
    pub fn dropped(&self) -> &HashMap<PeerId, String> {
        &self.dropped
    }

    /// A block to fetch (ignored when already known).
    pub fn push(&mut self, cid: Cid) {
        if self.known.insert(cid) {
            self.pending.push_back(cid);
        }
    }

    /// A block we already hold (resumed from the store).
    pub fn mark_held(&mut self, cid: Cid) {
        self.known.insert(cid);
        self.done.insert(cid);
    }

    /// Whether the block was asked for in this fetch.
    pub fn is_known(&self, cid: &Cid) -> bool {
        self.known.contains(cid)
    }

    /// Blocks asked of `peer` and not yet delivered.
    pub fn outstanding(&self, peer: &PeerId) -> Vec<Cid> {
        self.in_flight
            .iter()
            .filter(|(_, ps)| ps.contains(peer))
            .map(|(c, _)| *c)
            .collect()
    }

    /// Nothing pending, nothing in flight.
    pub fn is_complete(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }

    /// Blocks delivered or held, and blocks known.
    pub fn counts(&self) -> (usize, usize) {
        (self.done.len(), self.known.len())
    }

    /// A block still missing (queued or in flight), if any.
    pub fn first_missing(&self) -> Option<Cid> {
        self.pending
            .front()
            .copied()
            .or_else(|| self.in_flight.keys().next().copied())
    }

    /// A fetch-specific order of peers for ties: fetches of the same DAG by many devices start at different
    /// peers instead of all at the one with the smallest id.
    fn rank(&self, peer: &PeerId) -> u64 {
        use std::hash::BuildHasher;
        self.salt.hash_one(peer)
    }

    /// Let peers that refused a stuck block be asked for it again: they may have fetched it since (devices
    /// fetching the same release serve each other as blocks arrive). Returns how many blocks were freed.
    pub fn forgive_refusals(&mut self) -> usize {
        if !self.in_flight.is_empty() {
            return 0;
        }
        let stuck: Vec<Cid> = self
            .pending
            .iter()
            .copied()
            .filter(|cid| self.refused_by_all(cid))
            .collect();
        for cid in &stuck {
            self.refused.remove(cid);
        }
        stuck.len()
    }

    /// A pending block that no peer in play can be asked for (all refused it), when nothing is in flight.
    pub fn stuck(&self) -> Option<Cid> {
        if !self.in_flight.is_empty() {
            return None;
        }
        self.pending.iter().copied().find(|cid| self.refused_by_all(cid))
    }

    /// Every peer in play refused `cid`.
    fn refused_by_all(&self, cid: &Cid) -> bool {
        let refused = self.refused.get(cid);
        self.peers.iter().all(|p| refused.is_some_and(|r| r.contains(p)))
    }

    fn tier(&self, peer: &PeerId) -> u8 {
        match self.records.get(peer) {
            Some(r) if r.dont_haves > 0 && r.blocks == 0 => 1,
            _ => 0,
        }
    }

    /// Hand out wants: `(peer, blocks)` to send now.
    pub fn assign(&mut self, now: Instant) -> Vec<(PeerId, Vec<Cid>)> {
        let mut out: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        let mut skipped = VecDeque::new();
        while let Some(cid) = self.pending.pop_front() {
            match self.pick(&cid, None) {
                Pick::Peer(peer) => {
                    self.send(peer, cid, now);
                    out.entry(peer).or_default().push(cid);
                }
                Pick::Wait => {
                    // Every suitable peer is full: keep the order and stop.
                    skipped.push_back(cid);
                    break;
                }
                Pick::Nobody => skipped.push_back(cid),
            }
        }
        skipped.extend(self.pending.drain(..));
        self.pending = skipped;

        // Endgame: a peer that delivered and now has nothing to do also takes blocks that are in flight at one
        // other peer only, up to its window.
        if self.pending.is_empty() && !self.in_flight.is_empty() {
            let mut candidates: Vec<Cid> = self
                .in_flight
                .iter()
                .filter(|(_, ps)| ps.len() == 1)
                .map(|(c, _)| *c)
                .collect();
            candidates.sort_by_key(|c| c.to_bytes());
            let idle: Vec<PeerId> = self
                .peers
                .iter()
                .copied()
                .filter(|p| {
                    self.records
                        .get(p)
                        .is_some_and(|r| r.in_flight == 0 && r.blocks > 0)
                })
                .collect();
            for peer in idle {
                for cid in &candidates {
                    let free = self
                        .in_flight
                        .get(cid)
                        .is_some_and(|h| h.len() == 1 && !h.contains(&peer));
                    if free
                        && self.room(&peer) > 0
                        && !self.refused.get(cid).is_some_and(|r| r.contains(&peer))
                    {
                        self.send(peer, *cid, now);
                        out.entry(peer).or_default().push(*cid);
                    }
                }
            }
        }
        let mut out: Vec<_> = out.into_iter().collect();
        out.sort_by_key(|(p, _)| p.to_bytes());
        out
    }

    fn room(&self, peer: &PeerId) -> usize {
        let left = self.cfg.max_in_flight.saturating_sub(self.total_in_flight);
        self.records
            .get(peer)
            .map(|r| self.cfg.window.saturating_sub(r.in_flight).min(left))
            .unwrap_or(0)
    }

    fn pick(&self, cid: &Cid, exclude: Option<&PeerId>) -> Pick {
        let refused = self.refused.get(cid);
        let eligible: Vec<&PeerId> = self
            .peers
            .iter()
            .filter(|p| Some(*p) != exclude && !refused.is_some_and(|r| r.contains(*p)))
            .collect();
        if eligible.is_empty() {
            return Pick::Nobody;
        }
        let best_tier = eligible.iter().map(|p| self.tier(p)).min().unwrap_or(0);
        let best = eligible
            .iter()
            .filter(|p| self.tier(p) == best_tier && self.room(p) > 0)
            .min_by_key(|p| (self.records.get(*p).map_or(0, |r| r.in_flight), self.rank(p)));
        match best {
            Some(p) => Pick::Peer(**p),
            None => Pick::Wait,
        }
    }

    fn send(&mut self, peer: PeerId, cid: Cid, now: Instant) {
        self.in_flight.entry(cid).or_default().push(peer);
        if let Some(r) = self.records.get_mut(&peer) {
            if r.in_flight == 0 {
                r.last_progress = Some(now);
            }
            r.in_flight += 1;
            self.total_in_flight += 1;
        }
    }

    /// One want of `peer` is over (delivered, refused, cancelled or given up).
    fn finished_want(&mut self, peer: &PeerId) {
        if let Some(r) = self.records.get_mut(peer)
            && r.in_flight > 0
        {
            r.in_flight -= 1;
            self.total_in_flight -= 1;
        }
    }

    /// A verified block arrived from `peer`. Returns how it relates to the fetch, and the other peers that were
    /// asked for it too (to cancel).
    pub fn received(&mut self, peer: PeerId, cid: Cid, len: usize, now: Instant) -> (Received, Vec<PeerId>) {
        if let Some(r) = self.records.get_mut(&peer) {
            r.last_progress = Some(now);
            r.asked_again = false;
        }
        let Some(holders) = self.in_flight.remove(&cid) else {
            let kind = if self.known.contains(&cid) {
                Received::Duplicate
            } else {
                Received::Unwanted
            };
            return (kind, Vec::new());
        };
        for h in &holders {
            self.finished_want(h);
        }
        if let Some(r) = self.records.get_mut(&peer) {
            r.blocks += 1;
            r.bytes += len as u64;
        }
        self.done.insert(cid);
        self.pending.retain(|c| *c != cid);
        let others = holders.into_iter().filter(|h| *h != peer).collect();
        (Received::Wanted, others)
    }

    /// `peer` does not have `cid`.
    pub fn dont_have(&mut self, peer: PeerId, cid: Cid, now: Instant) {
        if let Some(r) = self.records.get_mut(&peer) {
            r.last_progress = Some(now);
            r.dont_haves += 1;
            r.asked_again = false;
        }
        self.refused.entry(cid).or_default().insert(peer);
        self.release(&peer, &cid);
    }

    fn release(&mut self, peer: &PeerId, cid: &Cid) {
        let Some(holders) = self.in_flight.get_mut(cid) else {
            return;
        };
        let held = holders
            .iter()
            .position(|h| h == peer)
            .map(|i| holders.swap_remove(i));
        let empty = holders.is_empty();
        if held.is_some() {
            self.finished_want(peer);
        }
        if empty {
            self.in_flight.remove(cid);
            if !self.done.contains(cid) {
                self.pending.push_front(*cid);
            }
        }
    }

    /// Remove `peer` (disconnected, or misbehaving with `reason`): its wants go back to the queue. Returns the
    /// blocks it still held.
    pub fn drop_peer(&mut self, peer: PeerId, reason: Option<String>) -> Vec<Cid> {
        let held = self.outstanding(&peer);
        for cid in &held {
            self.release(&peer, cid);
        }
        self.peers.retain(|p| *p != peer);
        if let Some(reason) = reason {
            self.dropped.insert(peer, reason);
        } else {
            // Gone, not banned: it may come back as a provider later.
            self.records.remove(&peer);
        }
        held
    }

    /// Let peers that were dropped only for being slow back in (each at most `MAX_READMISSIONS` times), for
    /// when nobody else can serve: slow is not hostile. Returns the peers let back in.
    pub fn readmit_slow(&mut self) -> Vec<PeerId> {
        const MAX_READMISSIONS: u32 = 3;
        let mut back = Vec::new();
        for (peer, times) in &mut self.slow {
            if *times < MAX_READMISSIONS && self.dropped.remove(peer).is_some() {
                *times += 1;
                if let Some(r) = self.records.get_mut(peer) {
                    r.strikes = 0;
                }
                self.peers.push(*peer);
                back.push(*peer);
            }
        }
        back
    }

    /// When the next progress timeout falls due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.records
            .values()
            .filter(|r| r.in_flight > 0)
            .filter_map(|r| Some(r.last_progress? + self.silence_allowed(r)))
            .min()
    }

    /// How long `r` may stay silent before the next step: half the progress timeout until its wants are asked
    /// again, the whole timeout (from the same start) until it is judged. So asking again costs no extra time.
    fn silence_allowed(&self, r: &PeerRecord) -> Duration {
        if r.asked_again {
            self.cfg.progress_timeout
        } else {
            self.cfg.progress_timeout / 2
        }
    }

    /// Apply progress timeouts: a peer that held wants and delivered nothing for half the progress timeout is
    /// asked again (its wants are re-sent), and only when still silent at the full timeout gets a strike and
    /// loses its wants; returns
    /// `(peer, its wants, what was done)`.
    pub fn expire(&mut self, now: Instant) -> Vec<(PeerId, Vec<Cid>, Judged)> {
        let late: Vec<PeerId> = self
            .peers
            .iter()
            .copied()
            .filter(|p| {
                self.records.get(p).is_some_and(|r| {
                    r.in_flight > 0
                        && r.last_progress
                            .is_some_and(|t| now >= t + self.silence_allowed(r))
                })
            })
            .collect();
        let mut out = Vec::new();
        for peer in late {
            if let Some(r) = self.records.get_mut(&peer)
                && !r.asked_again
            {
                r.asked_again = true;
                out.push((peer, self.outstanding(&peer), Judged::AskedAgain));
                continue;
            }
            let strikes = self.records.get_mut(&peer).map(|r| {
                r.asked_again = false;
                r.strikes += 1;
                r.last_progress = Some(now);
                r.strikes
            });
            let held = self.outstanding(&peer);
            let dropped = strikes.unwrap_or(0) >= self.cfg.max_strikes;
            if dropped {
                self.slow.entry(peer).or_insert(0);
                let secs = self.cfg.progress_timeout.as_secs_f64();
                self.drop_peer(
                    peer,
                    Some(format!(
                        "delivered nothing for {secs:.1} s while holding {} wants, {} times",
                        held.len(),
                        self.cfg.max_strikes
                    )),
                );
            } else {
                for cid in &held {
                    // Try another peer first: the slow one goes to the back of the line for these blocks.
                    self.refused.entry(*cid).or_default().insert(peer);
                    self.release(&peer, cid);
                    // Once every other peer refused too, the slow peer may be asked again.
                    if let Some(r) = self.refused.get_mut(cid)
                        && self.peers.iter().all(|p| r.contains(p))
                    {
                        r.remove(&peer);
                    }
                }
            }
            let judged = if dropped { Judged::Dropped } else { Judged::Struck };
            out.push((peer, held, judged));
        }
        out
    }
}

enum Pick {
    Peer(PeerId),
    Wait,
    Nobody,
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmchain_update::dag::{RAW, cid_of};

    fn cids(n: u32) -> Vec<Cid> {
        (0..n).map(|i| cid_of(RAW, &i.to_le_bytes())).collect()
    }

    fn cfg(window: usize) -> ScheduleConfig {
        ScheduleConfig {
            window,
            max_in_flight: 64,
            progress_timeout: Duration::from_secs(5),
            max_strikes: 2,
        }
    }

    #[test]
    fn load_is_spread_over_peers_within_the_window() {
        let now = Instant::now();
        let mut s = Schedule::new(cfg(4));
        let (a, b) = (PeerId::random(), PeerId::random());
        s.add_peer(a);
        s.add_peer(b);
        for c in cids(10) {
            s.push(c);
        }
        let out = s.assign(now);
        let sizes: Vec<usize> = out.iter().map(|(_, c)| c.len()).collect();
        assert_eq!(sizes, vec![4, 4], "{out:?}");
        assert_eq!(s.counts(), (0, 10));
        // Nothing more until a block arrives.
        assert!(s.assign(now).is_empty());
        let (peer, first) = (out[0].0, out[0].1[0]);
        assert_eq!(s.received(peer, first, 10, now).0, Received::Wanted);
        let next = s.assign(now);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].0, peer);
    }

    #[test]
    fn the_total_in_flight_is_capped_across_peers() {
        let now = Instant::now();
        let mut s = Schedule::new(ScheduleConfig {
            window: 4,
            max_in_flight: 6,
            ..cfg(4)
        });
        for _ in 0..3 {
            s.add_peer(PeerId::random());
        }
        for c in cids(20) {
            s.push(c);
        }
        let out = s.assign(now);
        assert_eq!(out.iter().map(|(_, c)| c.len()).sum::<usize>(), 6, "{out:?}");
        assert!(out.iter().all(|(_, c)| c.len() == 2), "spread evenly: {out:?}");
    }

    #[test]
    fn dont_have_moves_the_block_to_another_peer_and_stuck_when_all_refuse() {
        let now = Instant::now();
        let mut s = Schedule::new(cfg(4));
        let (a, b) = (PeerId::random(), PeerId::random());
        s.add_peer(a);
        let root = cids(1)[0];
        s.push(root);
        assert_eq!(s.assign(now), vec![(a, vec![root])]);
        s.dont_have(a, root, now);
        assert_eq!(s.stuck(), Some(root));
        assert!(s.assign(now).is_empty());
        s.add_peer(b);
        assert_eq!(s.stuck(), None);
        assert_eq!(s.assign(now), vec![(b, vec![root])]);
    }

    #[test]
    fn silent_peers_get_strikes_then_are_dropped() {
        let t0 = Instant::now();
        let mut s = Schedule::new(cfg(4));
        let (slow, good) = (PeerId::random(), PeerId::random());
        s.add_peer(slow);
        let c = cids(2);
        s.push(c[0]);
        s.push(c[1]);
        assert_eq!(s.assign(t0).len(), 1);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_millis(2500)));
        assert!(s.expire(t0 + Duration::from_secs(2)).is_empty());
        // Silent for half the timeout: the wants are sent again, nothing else.
        let t05 = t0 + Duration::from_millis(2500);
        let expired = s.expire(t05);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            (expired[0].0, expired[0].1.len(), expired[0].2),
            (slow, 2, Judged::AskedAgain)
        );
        assert!(s.assign(t05).is_empty(), "the wants stay where they are");
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(s.expire(t0 + Duration::from_secs(4)).is_empty());
        let t1 = t0 + Duration::from_secs(5);
        let expired = s.expire(t1);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].2, Judged::Struck, "first strike does not drop");
        // Only the slow peer exists, so it is asked again; silent twice more, it is dropped.
        assert_eq!(s.assign(t1)[0].0, slow);
        assert_eq!(
            s.expire(t1 + Duration::from_millis(2500))[0].2,
            Judged::AskedAgain
        );
        let expired = s.expire(t1 + Duration::from_secs(5));
        assert_eq!(expired[0].2, Judged::Dropped);
        assert!(s.dropped().contains_key(&slow));
        assert!(!s.add_peer(slow), "a dropped peer does not come back");
        s.add_peer(good);
        let out = s.assign(t1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, good);
        assert_eq!(out[0].1.len(), 2, "both blocks go to the good peer");
    }

    #[test]
    fn endgame_asks_an_idle_peer_for_blocks_stuck_at_a_slow_one() {
        let now = Instant::now();
        let mut s = Schedule::new(cfg(2));
        let (slow, fast) = (PeerId::random(), PeerId::random());
        s.add_peer(slow);
        s.add_peer(fast);
        let c = cids(3);
        for x in &c {
            s.push(*x);
        }
        let out = s.assign(now);
        let at_fast: Vec<Cid> = out
            .iter()
            .find(|(p, _)| *p == fast)
            .map(|(_, c)| c.clone())
            .unwrap();
        let at_slow: Vec<Cid> = out
            .iter()
            .find(|(p, _)| *p == slow)
            .map(|(_, c)| c.clone())
            .unwrap();
        for x in &at_fast {
            s.received(fast, *x, 1, now);
        }
        // The rest went to the now-idle fast peer, and whatever the slow peer holds is duplicated to it.
        let out = s.assign(now);
        let dup: Vec<Cid> = out
            .iter()
            .filter(|(p, _)| *p == fast)
            .flat_map(|(_, c)| c.clone())
            .collect();
        let mut expected: Vec<Cid> = at_slow.iter().filter(|c| !at_fast.contains(c)).copied().collect();
        expected.sort_by_key(|c| c.to_bytes());
        assert_eq!(dup, expected, "{out:?}");
        let x = dup[0];
        let (kind, others) = s.received(fast, x, 1, now);
        assert_eq!(kind, Received::Wanted);
        if at_slow.contains(&x) {
            assert_eq!(others, vec![slow], "the slow peer's copy is cancelled");
            assert_eq!(s.received(slow, x, 1, now).0, Received::Duplicate);
        }
    }

    #[test]
    fn slow_peers_come_back_when_nobody_else_can_serve_but_not_for_ever() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ScheduleConfig {
            max_strikes: 1,
            ..cfg(4)
        });
        let slow = PeerId::random();
        s.add_peer(slow);
        s.push(cids(1)[0]);
        let mut t = t0;
        for round in 0..3 {
            assert_eq!(s.assign(t).len(), 1, "round {round}");
            assert_eq!(s.expire(t + Duration::from_millis(2500))[0].2, Judged::AskedAgain);
            t += Duration::from_secs(5);
            assert_eq!(s.expire(t)[0].2, Judged::Dropped);
            assert!(s.stuck().is_some());
            assert_eq!(s.readmit_slow(), vec![slow]);
        }
        assert_eq!(s.assign(t).len(), 1);
        s.expire(t + Duration::from_millis(2500));
        t += Duration::from_secs(5);
        s.expire(t);
        assert!(s.readmit_slow().is_empty(), "three chances at most");
        assert!(s.stuck().is_some());
    }

    #[test]
    fn unknown_blocks_are_unwanted() {
        let now = Instant::now();
        let mut s = Schedule::new(cfg(2));
        let p = PeerId::random();
        s.add_peer(p);
        assert_eq!(s.received(p, cids(1)[0], 1, now).0, Received::Unwanted);
        assert!(s.is_complete());
    }

    #[test]
    fn refusals_of_a_stuck_block_are_forgiven_once_nothing_is_in_flight() {
        let now = Instant::now();
        let mut s = Schedule::new(cfg(4));
        s.add_peer(PeerId::random());
        s.add_peer(PeerId::random());
        let block = cids(1)[0];
        s.push(block);
        // Each peer in turn is asked and refuses.
        for _ in 0..2 {
            let asked = s.assign(now);
            assert_eq!(asked.len(), 1, "{asked:?}");
            s.dont_have(asked[0].0, block, now);
        }
        assert!(s.assign(now).is_empty());
        assert_eq!(s.stuck(), Some(block));
        assert_eq!(s.forgive_refusals(), 1);
        assert_eq!(s.stuck(), None);
        let again: Vec<Cid> = s.assign(now).into_iter().flat_map(|(_, c)| c).collect();
        assert_eq!(again, vec![block], "asked again after the refusals were forgiven");
        // With a want in flight nothing is forgiven.
        assert_eq!(s.forgive_refusals(), 0);
    }
}
