//! Light mode with `chain.peers_fallback`: the node's own sources first, verified proofs from peers when they
//! fail or fall behind. The node's IndexWatcher reports through its ProofFollower (status events, rollout
//! reports and installs pass through it). The follower asks peers only while the watcher is not current. Of
//! the heads both deliver it shows only one at least as new as the last shown, so neither source can take the
//! device back to an older head; the rollout rules get, for each release, the gate proven at the newer of the
//! two sources' latest headers. Both sources verify from the same checkpoint, so either authorises exactly
//! what the other would.

use std::collections::BTreeMap;

use actix::{Context, Handler};
use firmchain_update::Sequence;
use firmchain_update::rollout::ReleaseGate;

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
    /// Each source's latest rollout report.
    own_gates: Gates,
    peer_gates: Gates,
    /// Whether peers are followed now.
    active: bool,
}

/// A rollout report: the chain time it was proven at and each waiting release's gate.
pub type Gates = (u64, Vec<(Sequence, ReleaseGate)>);

impl Fallback {
    /// Own sources first; they count as behind when their head is older than `behind_after` seconds.
    pub fn new(behind_after: u64, now: u64) -> Fallback {
        Fallback {
            behind_after,
            own_head: now,
            own_failed: false,
            shown: 0,
            own_gates: (0, Vec::new()),
            peer_gates: (0, Vec::new()),
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

    /// `sequence` is installed: neither source's gates up to it matter any more.
    pub fn installed(&mut self, sequence: Sequence) {
        for (_, gates) in [&mut self.own_gates, &mut self.peer_gates] {
            gates.retain(|(s, _)| *s > sequence);
        }
    }

    /// Take a source's rollout report and return what the rollout rules get: the later chain time, and for
    /// each release either source waits on, the gate of the source whose report is newer (the own sources win
    /// a tie). A report older than the source's previous one is ignored.
    pub fn gates(&mut self, report: Gates, own: bool) -> Gates {
        let slot = if own {
            &mut self.own_gates
        } else {
            &mut self.peer_gates
        };
        if report.0 >= slot.0 {
            *slot = report;
        }
        let (older, newer) = if self.peer_gates.0 > self.own_gates.0 {
            (&self.own_gates, &self.peer_gates)
        } else {
            (&self.peer_gates, &self.own_gates)
        };
        let mut merged: BTreeMap<Sequence, ReleaseGate> = older.1.iter().copied().collect();
        merged.extend(newer.1.iter().copied());
        (newer.0, merged.into_iter().collect())
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

/// The IndexWatcher's rollout reports, merged with the peers' (see [`Fallback::gates`]).
impl Handler<RolloutProven> for ProofFollower {
    type Result = ();

    fn handle(&mut self, msg: RolloutProven, _: &mut Context<Self>) {
        let (now, gates) = match self.fallback_mut() {
            Some(f) => f.gates((msg.now, msg.gates), true),
            None => (msg.now, msg.gates),
        };
        if let Some(to) = &self.ports().rollout {
            to.do_send(RolloutProven { now, gates });
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

    fn paused(until: u64) -> ReleaseGate {
        ReleaseGate {
            live_at: 1,
            installable_at: 1,
            product_paused_until: until,
            release_paused_until: 0,
        }
    }

    #[test]
    fn each_release_gets_the_gate_of_the_newer_report() {
        let mut f = Fallback::new(60, 0);
        // Peers at chain time 100: release 2 paused until 500.
        let g = f.gates((100, vec![(Sequence(2), paused(500))]), false);
        assert_eq!(g, (100, vec![(Sequence(2), paused(500))]));
        // Own sources newer, at 110: the pause was lifted; they also hold release 3.
        let own = vec![(Sequence(2), paused(0)), (Sequence(3), paused(0))];
        let g = f.gates((110, own.clone()), true);
        assert_eq!(g, (110, own.clone()));
        // A lagging peers' report (the old pause) does not undo the resume, nor move chain time back.
        let g = f.gates((105, vec![(Sequence(2), paused(500))]), false);
        assert_eq!(g, (110, own.clone()));
        // Own sources that never saw release 4 (a lying RPC): the peers' gate for it is kept beside theirs,
        // and stays when the own sources report again without it.
        let g = f.gates((120, vec![(Sequence(4), paused(0))]), false);
        let all = vec![
            (Sequence(2), paused(0)),
            (Sequence(3), paused(0)),
            (Sequence(4), paused(0)),
        ];
        assert_eq!(g, (120, all.clone()));
        let g = f.gates((121, own.clone()), true);
        assert_eq!(g, (121, all));
        // An older report of the same source is ignored.
        let g = f.gates((90, Vec::new()), true);
        assert_eq!(g.0, 121);
        assert_eq!(g.1.len(), 3);
        // Installed releases drop out of both.
        f.installed(Sequence(3));
        let g = f.gates((122, Vec::new()), true);
        assert_eq!(g, (122, vec![(Sequence(4), paused(0))]));
    }
}
