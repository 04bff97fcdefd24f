//! Light mode with `chain.peers_fallback`: the node's own sources first, verified proofs from peers when they
//! fail or fall behind. The node's IndexWatcher reports through its ProofFollower (status events, rollout
//! reports and installs pass through it). The follower asks peers only while the watcher is not current, and
//! of the heads and chain times both deliver it forwards only what is at least as new as what it forwarded
//! before: the newest verified head wins, and neither source can take the device back to an older one. Both
//! sources verify from the same checkpoint, so either authorises exactly what the other would.

use actix::{Context, Handler};

use super::follow::ProofFollower;
use crate::messages::StatusEvent;
use crate::rollout::RolloutProven;

/// Which source the follower listens to, as plain data (time passed in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// Seconds after which the own sources' newest head counts as behind.
    behind_after: u64,
    /// Timestamp of the newest head the own sources verified (the start time until their first one).
    own_head: u64,
    /// The own sources' last read failed or was refused, and no newer head came since.
    own_failed: bool,
    /// The newest head timestamp shown in `/status`, from either source.
    shown: u64,
    /// The newest chain time given to the rollout rules, from either source.
    told: u64,
    /// Whether peers are followed now.
    active: bool,
}

impl Fallback {
    /// Own sources first; they count as behind when their head is older than `behind_after` seconds.
    pub fn new(behind_after: u64, now: u64) -> Fallback {
        Fallback {
            behind_after,
            own_head: now,
            own_failed: false,
            shown: 0,
            told: 0,
            active: false,
        }
    }

    /// The own sources verified a head at `timestamp`; a newer one than before clears a failure.
    pub fn own_head(&mut self, timestamp: u64) {
        if timestamp > self.own_head {
            self.own_head = timestamp;
            self.own_failed = false;
        }
    }

    /// The own sources' read failed, or what they gave was refused.
    pub fn own_failed(&mut self) {
        self.own_failed = true;
    }

    /// Whether to ask peers at `now`, and whether that changed since the last call.
    pub fn use_peers(&mut self, now: u64) -> (bool, bool) {
        let using = self.own_failed || now.saturating_sub(self.own_head) > self.behind_after;
        let changed = using != self.active;
        self.active = using;
        (using, changed)
    }

    /// Whether a head at `timestamp` from the own sources (`own`) or from peers is to be shown; it then is the
    /// newest shown. The own sources win a tie.
    pub fn show(&mut self, timestamp: u64, own: bool) -> bool {
        newest(&mut self.shown, timestamp, own)
    }

    /// Whether rollout gates proven at chain time `now` are to be given to the Coordinator (as [`Self::show`]).
    pub fn tell(&mut self, now: u64, own: bool) -> bool {
        newest(&mut self.told, now, own)
    }
}

fn newest(mark: &mut u64, t: u64, own: bool) -> bool {
    let take = if own { t >= *mark } else { t > *mark };
    if take {
        *mark = t;
    }
    take
}

/// The IndexWatcher's status events: a verified head is the own sources' mark (shown when it is the newest);
/// a failed read or a refusal turns to peers.
impl Handler<StatusEvent> for ProofFollower {
    type Result = ();

    fn handle(&mut self, msg: StatusEvent, _: &mut Context<Self>) {
        let forward = match (&msg, self.fallback_mut()) {
            (StatusEvent::Chain(Ok(head)), Some(f)) => {
                f.own_head(head.timestamp);
                f.show(head.timestamp, true)
            }
            (StatusEvent::Chain(Err(_)) | StatusEvent::Rejected(_), Some(f)) => {
                f.own_failed();
                true
            }
            _ => true,
        };
        if forward {
            self.ports().status.do_send(msg);
        }
    }
}

/// The IndexWatcher's rollout reports: given on only when not older than what peers proved.
impl Handler<RolloutProven> for ProofFollower {
    type Result = ();

    fn handle(&mut self, msg: RolloutProven, _: &mut Context<Self>) {
        let forward = self.fallback_mut().is_none_or(|f| f.tell(msg.now, true));
        if let (true, Some(to)) = (forward, &self.ports().rollout) {
            to.do_send(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_sources_first_until_they_fall_behind_or_fail() {
        let mut f = Fallback::new(60, 1000);
        // Just started: the own sources get their time.
        assert_eq!(f.use_peers(1030), (false, false));
        assert_eq!(f.use_peers(1061), (true, true));
        f.own_head(1050);
        assert_eq!(f.use_peers(1070), (false, true));
        // A failed read turns to peers at once; the same head again does not clear it, a newer one does.
        f.own_failed();
        assert_eq!(f.use_peers(1071), (true, true));
        f.own_head(1050);
        assert!(f.use_peers(1072).0);
        f.own_head(1072);
        assert_eq!(f.use_peers(1073), (false, true));
        // An older head never moves the mark back.
        f.own_head(900);
        assert!(f.use_peers(1072 + 61).0);
    }

    #[test]
    fn the_newest_head_wins_and_own_sources_win_a_tie() {
        let mut f = Fallback::new(60, 0);
        assert!(f.show(100, true));
        // Peers: the same head is not news, a newer one is.
        assert!(!f.show(100, false));
        assert!(f.show(110, false));
        // Own sources stuck behind (a frozen beacon): their older head is not shown over the peers' one.
        assert!(!f.show(100, true));
        assert!(f.show(110, true));
        assert!(f.show(120, true));
        assert!(!f.show(115, false));
    }

    #[test]
    fn rollout_time_never_goes_back() {
        let mut f = Fallback::new(60, 0);
        assert!(f.tell(100, false));
        assert!(
            !f.tell(99, true),
            "older gates of a lagging source would undo a resume"
        );
        assert!(f.tell(100, true));
        assert!(!f.tell(100, false));
        assert!(f.tell(101, false));
    }
}
