//! Serving wants at a bounded cost per peer.
//!
//! Wants land in the peer's [`Wantlist`] (pure: merged by CID, capped, checked for abuse). One serving task per
//! peer that holds wants loads blocks lazily, about one message (2 MiB) at a time, and waits until that message
//! is written before it loads the next; at most [`MAX_CONCURRENT_SERVES`] such tasks load or write at once. So
//! a peer costs the node its held wants (a few dozen bytes each) and at most one message in memory, whatever it
//! asks, and all peers together at most [`MAX_CONCURRENT_SERVES`] messages. A want for a block the node does not
//! hold costs a `DontHave` and nothing else.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cid::Cid;
use libp2p::PeerId;
use tracing::{debug, warn};

use super::proto::{self, Entry, Presence, SPLIT_MESSAGE_SIZE, WantType, WireBlock};
use super::{Shared, lock};

/// The most wants one peer may hold with us at once (the most a single message may carry, too).
pub const MAX_HELD_WANTS: usize = proto::MAX_ENTRIES;
/// The most peers served at once (each with one message in memory).
pub const MAX_CONCURRENT_SERVES: usize = 8;
/// How often one peer may be sent the same block within [`REPEAT_WINDOW`] before wanting it again is abuse.
pub const MAX_REPEATS: u32 = 4;
/// See [`MAX_REPEATS`].
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);
/// Wants taken from a wantlist per round (one message's worth of 256 KiB blocks, and some).
const BATCH_WANTS: usize = 64;
/// How many sent blocks a wantlist remembers for [`MAX_REPEATS`].
const SENT_MEMORY: usize = 4096;

/// How a peer abused the Bitswap server; the peer is dropped and banned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServeViolation {
    #[error("wanted block {cid} {times} times in one message")]
    DuplicateWant { cid: Cid, times: usize },
    #[error("holds {held} wants, over the limit of {MAX_HELD_WANTS}")]
    TooManyWants { held: usize },
    #[error("wanted block {cid} again after it was sent {times} times within {window:?}")]
    RepeatedWant { cid: Cid, times: u32, window: Duration },
}

/// What a held want asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// Block or Have.
    pub want: WantType,
    /// Answer `DontHave` when the block is not held.
    pub send_dont_have: bool,
}

/// One peer's wants, oldest first, and the blocks recently sent to it.
#[derive(Debug, Default)]
pub struct Wantlist {
    order: VecDeque<Cid>,
    wants: HashMap<Cid, Want>,
    sent: HashMap<Cid, (u32, Instant)>,
    /// Taken by the serving task and not answered yet, with what was asked: a repeat of one of these merges
    /// into it (a want-block does not merge into a want-have being answered: it is held for the next round).
    answering: HashMap<Cid, WantType>,
    /// A serving task runs for this peer.
    serving: bool,
}

impl Wantlist {
    /// Apply a received wantlist (`full` replaces the held one). Repeated wants merge; a CID twice in one
    /// message, more than [`MAX_HELD_WANTS`] held, or a block wanted again after [`MAX_REPEATS`] sends within
    /// [`REPEAT_WINDOW`] is a violation.
    pub fn apply(&mut self, entries: &[Entry], full: bool, now: Instant) -> Result<(), ServeViolation> {
        let mut seen: HashMap<Cid, usize> = HashMap::with_capacity(entries.len());
        for e in entries {
            *seen.entry(e.cid).or_default() += 1;
        }
        if let Some((cid, times)) = seen.into_iter().filter(|(_, n)| *n > 1).max_by_key(|(_, n)| *n) {
            return Err(ServeViolation::DuplicateWant { cid, times });
        }
        if full {
            self.wants.clear();
            self.order.clear();
        }
        for e in entries {
            if e.cancel {
                self.wants.remove(&e.cid);
                continue;
            }
            if e.want == WantType::Block
                && let Some((times, since)) = self.sent.get(&e.cid)
                && now.duration_since(*since) < REPEAT_WINDOW
                && *times >= MAX_REPEATS
            {
                return Err(ServeViolation::RepeatedWant {
                    cid: e.cid,
                    times: *times,
                    window: REPEAT_WINDOW,
                });
            }
            if let Some(taken) = self.answering.get(&e.cid)
                && (*taken == WantType::Block || e.want == WantType::Have)
            {
                continue;
            }
            let mut want = Want {
                want: e.want,
                send_dont_have: e.send_dont_have,
            };
            match self.wants.get(&e.cid) {
                // A want-have never downgrades a held want-block (the block answers both).
                Some(held) if held.want == WantType::Block && want.want == WantType::Have => {
                    want = Want {
                        send_dont_have: held.send_dont_have || want.send_dont_have,
                        ..*held
                    };
                    self.wants.insert(e.cid, want);
                }
                Some(_) => {
                    self.wants.insert(e.cid, want);
                }
                None => {
                    self.wants.insert(e.cid, want);
                    self.order.push_back(e.cid);
                }
            }
        }
        if self.wants.len() > MAX_HELD_WANTS {
            return Err(ServeViolation::TooManyWants {
                held: self.wants.len(),
            });
        }
        // Cancelled wants leave stale CIDs in the order: drop them before they outnumber the live ones.
        if self.order.len() > 2 * self.wants.len() + BATCH_WANTS {
            let mut kept = HashSet::with_capacity(self.wants.len());
            let wants = &self.wants;
            self.order.retain(|c| wants.contains_key(c) && kept.insert(*c));
        }
        Ok(())
    }

    /// Take up to `n` wants, oldest first.
    pub fn take(&mut self, n: usize) -> Vec<(Cid, Want)> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some(cid) = self.order.pop_front() else { break };
            if let Some(w) = self.wants.remove(&cid) {
                self.answering.insert(cid, w.want);
                out.push((cid, w));
            }
        }
        out
    }

    /// The answers to these taken wants are written (or given up).
    pub fn answered(&mut self, cids: impl IntoIterator<Item = Cid>) {
        for c in cids {
            self.answering.remove(&c);
        }
    }

    /// Put back taken wants that were not answered (unless the peer wanted them again meanwhile), first in line.
    pub fn put_back(&mut self, wants: Vec<(Cid, Want)>) {
        for (cid, w) in wants.into_iter().rev() {
            self.answering.remove(&cid);
            if let std::collections::hash_map::Entry::Vacant(v) = self.wants.entry(cid) {
                v.insert(w);
                self.order.push_front(cid);
            }
        }
    }

    /// Count a block sent, for [`MAX_REPEATS`].
    pub fn sent(&mut self, cid: Cid, now: Instant) {
        if self.sent.len() >= SENT_MEMORY {
            self.sent
                .retain(|_, (_, since)| now.duration_since(*since) < REPEAT_WINDOW);
            if self.sent.len() >= SENT_MEMORY {
                self.sent.clear();
            }
        }
        let e = self.sent.entry(cid).or_insert((0, now));
        if now.duration_since(e.1) >= REPEAT_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    /// Wants held.
    pub fn len(&self) -> usize {
        self.wants.len()
    }

    /// No wants held.
    pub fn is_empty(&self) -> bool {
        self.wants.is_empty()
    }
}

/// Take the wants of a received message. Starts the peer's serving task if it has none.
pub(crate) fn on_wants(
    shared: &Arc<Shared>,
    peer: PeerId,
    entries: &[Entry],
    full: bool,
) -> Result<(), ServeViolation> {
    let start = {
        let mut lists = lock(&shared.wantlists);
        let list = lists.entry(peer).or_default();
        if let Err(v) = list.apply(entries, full, Instant::now()) {
            lists.remove(&peer);
            return Err(v);
        }
        let start = !list.is_empty() && !list.serving;
        list.serving |= start;
        start
    };

    if start {
        tokio::spawn(serve_peer(shared.clone(), peer));
    }
    Ok(())
}

/// Answer `peer`'s wants until it holds none (or is gone), one message at a time.
async fn serve_peer(shared: Arc<Shared>, peer: PeerId) {
    loop {
        let Ok(_slot) = shared.serve_slots.clone().acquire_owned().await else {
            return;
        };
        let batch = {
            let mut lists = lock(&shared.wantlists);
            let Some(list) = lists.get_mut(&peer) else { return };
            let batch = list.take(BATCH_WANTS);
            if batch.is_empty() {
                list.serving = false;
                return;
            }
            batch
        };
        #[cfg(feature = "fault-injection")]
        if shared.fault == Some(super::Fault::Withhold) {
            continue;
        }
        let taken: Vec<Cid> = batch.iter().map(|(c, _)| *c).collect();
        let Some((blocks, presences, leftover)) = load(&shared, peer, batch).await else {
            lock(&shared.wantlists).remove(&peer);
            return;
        };
        {
            let mut lists = lock(&shared.wantlists);
            let Some(list) = lists.get_mut(&peer) else { return };
            list.put_back(leftover);
            let now = Instant::now();
            for b in &blocks {
                if let Ok(cid) = b.prefix.cid_of(&b.data) {
                    list.sent(cid, now);
                }
            }
        }
        send_answers(&shared, peer, blocks, presences).await;
        if let Some(list) = lock(&shared.wantlists).get_mut(&peer) {
            list.answered(taken);
        }
    }
}

type Loaded = (Vec<WireBlock>, Vec<(Cid, Presence)>, Vec<(Cid, Want)>);

/// Load the answers to `batch` from the store, blocks up to about one message: returns the blocks, the
/// presences and the wants left for the next round. `None` when the store failed.
async fn load(shared: &Arc<Shared>, peer: PeerId, batch: Vec<(Cid, Want)>) -> Option<Loaded> {
    let this = shared.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let (haves, blocks): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|(_, w)| w.want == WantType::Have);
        let have_cids: Vec<Cid> = haves.iter().map(|(c, _)| *c).collect();
        let held = this.store.has_many(&have_cids)?;
        let mut presences = Vec::new();
        for ((cid, w), held) in haves.iter().zip(held) {
            match held {
                true => presences.push((*cid, Presence::Have)),
                false if w.send_dont_have => presences.push((*cid, Presence::DontHave)),
                false => {}
            }
        }
        let block_cids: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
        let found = this.store.get_within(&block_cids, SPLIT_MESSAGE_SIZE)?;
        let leftover = blocks[found.len()..].to_vec();
        let now = Instant::now();
        let mut out = Vec::new();
        for ((cid, w), data) in blocks.iter().zip(found) {
            match data {
                Some(_) if w.send_dont_have && this.defer_to_other_peer(cid, peer, now) => {
                    presences.push((*cid, Presence::DontHave));
                }
                Some(data) => out.push(WireBlock {
                    prefix: proto::Prefix::of(cid),
                    data,
                }),
                None if w.send_dont_have => presences.push((*cid, Presence::DontHave)),
                None => {}
            }
        }
        Ok::<_, crate::StoreError>((out, presences, leftover))
    })
    .await;
    match loaded {
        Ok(Ok(l)) => Some(l),
        Ok(Err(e)) => {
            warn!(target: "firmchain::bitswap", error = %e, "blockstore read failed");
            None
        }
        Err(_) => None,
    }
}

/// Send one round of answers and wait until it is written.
async fn send_answers(
    shared: &Arc<Shared>,
    peer: PeerId,
    blocks: Vec<WireBlock>,
    presences: Vec<(Cid, Presence)>,
) {
    #[cfg(feature = "fault-injection")]
    let blocks = match shared.fault {
        Some(super::Fault::Slow(d)) => {
            // A slow link: each block alone, after a delay.
            for b in blocks {
                tokio::time::sleep(d).await;
                let len = b.data.len() as u64;
                let msg = proto::Message {
                    blocks: vec![b],
                    ..proto::Message::default()
                };
                shared.send_written(peer, &msg).await;
                count_upload(shared, len, 1);
            }
            Vec::new()
        }
        Some(f) => super::inject(f, blocks),
        None => blocks,
    };
    let served: u64 = blocks.iter().map(|b| b.data.len() as u64).sum();
    let count = blocks.len() as u64;
    for msg in proto::split_blocks(blocks, presences) {
        if !shared.send_written(peer, &msg).await {
            debug!(target: "firmchain::bitswap", %peer, "answer not written");
            return;
        }
    }
    count_upload(shared, served, count);
}

fn count_upload(shared: &Shared, bytes: u64, blocks: u64) {
    shared.counters.uploaded_bytes.fetch_add(bytes, Ordering::Relaxed);
    shared
        .counters
        .uploaded_blocks
        .fetch_add(blocks, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u32) -> Cid {
        firmchain_update::dag::cid_of(firmchain_update::dag::RAW, &i.to_le_bytes())
    }

    fn want(c: Cid) -> Entry {
        Entry {
            cid: c,
            priority: 1,
            cancel: false,
            want: WantType::Block,
            send_dont_have: true,
        }
    }

    fn cancel(c: Cid) -> Entry {
        Entry {
            cancel: true,
            ..want(c)
        }
    }

    #[test]
    fn a_cid_twice_in_one_message_is_a_violation() {
        let mut l = Wantlist::default();
        let e = want(cid(1));
        let err = l.apply(&vec![e; 4096], false, Instant::now()).unwrap_err();
        assert_eq!(
            err,
            ServeViolation::DuplicateWant {
                cid: cid(1),
                times: 4096
            }
        );
        assert!(err.to_string().contains("4096 times"), "{err}");
    }

    #[test]
    fn wants_repeated_across_messages_merge() {
        let mut l = Wantlist::default();
        let now = Instant::now();
        for _ in 0..100 {
            l.apply(&[want(cid(1)), want(cid(2))], false, now).unwrap();
        }
        assert_eq!(l.len(), 2);
        let taken = l.take(10);
        assert_eq!(
            taken.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            [cid(1), cid(2)]
        );
        assert!(l.is_empty());
    }

    #[test]
    fn held_wants_are_capped() {
        let mut l = Wantlist::default();
        let now = Instant::now();
        let first: Vec<Entry> = (0..MAX_HELD_WANTS as u32).map(|i| want(cid(i))).collect();
        l.apply(&first, false, now).unwrap();
        let err = l.apply(&[want(cid(u32::MAX))], false, now).unwrap_err();
        assert_eq!(
            err,
            ServeViolation::TooManyWants {
                held: MAX_HELD_WANTS + 1
            }
        );
        // A full wantlist replaces what was held.
        let mut l = Wantlist::default();
        l.apply(&first, false, now).unwrap();
        l.apply(&[want(cid(u32::MAX))], true, now).unwrap();
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn a_block_wanted_again_and_again_is_a_violation_until_the_window_passes() {
        let mut l = Wantlist::default();
        let t0 = Instant::now();
        for _ in 0..MAX_REPEATS {
            l.apply(&[want(cid(7))], false, t0).unwrap();
            assert_eq!(l.take(1).len(), 1);
            l.sent(cid(7), t0);
            l.answered([cid(7)]);
        }
        let err = l.apply(&[want(cid(7))], false, t0).unwrap_err();
        assert!(
            matches!(
                err,
                ServeViolation::RepeatedWant {
                    times: MAX_REPEATS,
                    ..
                }
            ),
            "{err}"
        );
        let mut l2 = Wantlist::default();
        for _ in 0..MAX_REPEATS {
            l2.sent(cid(7), t0);
        }
        l2.apply(&[want(cid(7))], false, t0 + REPEAT_WINDOW).unwrap();
    }

    #[test]
    fn cancels_remove_wants_and_the_order_stays_bounded() {
        let mut l = Wantlist::default();
        let now = Instant::now();
        for _ in 0..10_000 {
            l.apply(&[want(cid(1))], false, now).unwrap();
            l.apply(&[cancel(cid(1))], false, now).unwrap();
        }
        assert!(l.is_empty());
        assert!(l.order.len() <= BATCH_WANTS + 1, "{}", l.order.len());
        assert!(l.take(10).is_empty());
    }

    #[test]
    fn a_want_repeated_while_it_is_being_answered_merges_into_the_answer() {
        let mut l = Wantlist::default();
        let now = Instant::now();
        l.apply(&[want(cid(1))], false, now).unwrap();
        assert_eq!(l.take(10).len(), 1);
        l.apply(&[want(cid(1))], false, now).unwrap();
        assert!(l.is_empty(), "asked again while the answer is on its way");
        l.answered([cid(1)]);
        l.apply(&[want(cid(1))], false, now).unwrap();
        assert_eq!(l.len(), 1, "asked again after the answer: a new want");
    }

    #[test]
    fn unanswered_wants_go_back_first_in_line() {
        let mut l = Wantlist::default();
        let now = Instant::now();
        l.apply(&[want(cid(1)), want(cid(2)), want(cid(3))], false, now)
            .unwrap();
        let taken = l.take(2);
        l.put_back(taken[1..].to_vec());
        let next: Vec<Cid> = l.take(10).into_iter().map(|(c, _)| c).collect();
        assert_eq!(next, [cid(2), cid(3)]);
    }

    #[test]
    fn a_want_have_never_downgrades_a_held_want_block() {
        let mut l = Wantlist::default();
        let now = Instant::now();
        let c = cid(1);
        let have = Entry {
            want: WantType::Have,
            send_dont_have: false,
            ..want(c)
        };
        l.apply(&[want(c)], false, now).unwrap();
        l.apply(&[have], false, now).unwrap();
        let taken = l.take(8);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.want, WantType::Block);
        assert!(taken[0].1.send_dont_have);
    }

    #[test]
    fn a_want_block_arriving_while_a_want_have_is_answered_is_kept() {
        let mut l = Wantlist::default();
        let now = Instant::now();
        let c = cid(2);
        let have = Entry {
            want: WantType::Have,
            ..want(c)
        };
        l.apply(&[have], false, now).unwrap();
        assert_eq!(l.take(8)[0].1.want, WantType::Have);
        // Asked for the block while the Have answer is on its way: held for the next round.
        l.apply(&[want(c)], false, now).unwrap();
        l.answered([c]);
        let next = l.take(8);
        assert_eq!(next.len(), 1, "the want-block was lost");
        assert_eq!(next[0].1.want, WantType::Block);
        // A repeat of a want-block being answered still merges into it.
        l.apply(&[want(c)], false, now).unwrap();
        assert!(l.is_empty());
    }
}
