//! The device's update policy as a state machine: verified facts and outcomes go in, actions come out, time is
//! passed in. No IO: the node's actors carry the actions out and feed the outcomes back.
//!
//! Policy:
//! - Only releases of this device's product, newer than what it runs, not revoked, not rolled back here.
//! - A release whose `min_sequence` is above the installed sequence is not installed directly: the device first
//!   installs the newest release it may install (a stepping stone), then goes on.
//! - The target is the newest such release. It is reached by a chain of patches when every link is a patch
//!   release whose base is the previous target (at most `max_chain` links); otherwise by the target's full image
//!   (every release ships its full image next to its patch).
//! - A failed fetch is retried with exponential backoff; after `patch_attempts` failures of a patch the full
//!   image is fetched instead. A newer target replaces one that is still being fetched.
//! - An install that failed its health check (and was rolled back) is never tried again; a newer release is.
//! - With rollouts enforced ([`UpdateMachine::with_rollout`]), a release (and every patch link on the way to it)
//!   applies only when [`rollout::check`] passes: hardware class, expiry, pause, activation delay and the
//!   device's share, against the release's proven [`ReleaseGate`] and chain time (the verified header's
//!   timestamp, [`Input::ChainTime`]); a release without a proven gate is held.

use std::collections::{BTreeMap, BTreeSet};

use crate::rollout::{self, Device, Hold, ReleaseGate};
use crate::{Blake3Hash, ProductId, ReleaseKind, ReleaseRecord, Sequence};

/// Which payload of a release to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Payload {
    /// The patch from the release's base image.
    Patch,
    /// The release's full image.
    Full,
}

/// Tuning of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// First retry delay, in seconds; doubles per failure.
    pub retry_base_secs: u64,
    /// Longest retry delay, in seconds.
    pub retry_max_secs: u64,
    /// Failed patch fetches before falling back to the full image.
    pub patch_attempts: u32,
    /// Longest chain of patches to follow instead of the target's full image.
    pub max_chain: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retry_base_secs: 5,
            retry_max_secs: 600,
            patch_attempts: 3,
            max_chain: 4,
        }
    }
}

/// What the device runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The release sequence (0 for the factory image).
    pub sequence: Sequence,
    /// blake3 of the image.
    pub hash: Blake3Hash,
}

/// A fact or an outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A release the index holds, verified, and whether it is revoked.
    ReleaseSeen { record: ReleaseRecord, revoked: bool },
    /// A release was revoked.
    Revoked { sequence: Sequence },
    /// A payload was fetched and verified (hash and size as the record says).
    Fetched { sequence: Sequence, payload: Payload },
    /// Fetching or verifying a payload failed.
    FetchFailed {
        sequence: Sequence,
        payload: Payload,
        now: u64,
    },
    /// The image of a release is installed and healthy.
    Installed { sequence: Sequence, hash: Blake3Hash },
    /// Installing a release failed (health check, or the image did not verify) and the old image runs again.
    RolledBack { sequence: Sequence },
    /// Installing a release stopped on a transient fault (I/O, a full disk) before the slot switch; the old image
    /// runs. Retried with backoff (the payload is fetched again, from the local store, then installed); never
    /// counted as a rollback.
    InstallFailed { sequence: Sequence, now: u64 },
    /// Time passed.
    Tick { now: u64 },
    /// Storage proofs at a verified header say this about a release's rollout (timing and pauses).
    RolloutProven { sequence: Sequence, gate: ReleaseGate },
    /// A newer verified header: its timestamp is chain time. Chain time never goes back.
    ChainTime { now: u64 },
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fetch and verify a payload of a release.
    Fetch { record: ReleaseRecord, payload: Payload },
    /// Install a fetched, verified payload.
    Install { record: ReleaseRecord, payload: Payload },
    /// Stop working on a release (revoked, or superseded while being fetched).
    Cancel { sequence: Sequence },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Fetching,
    Waiting { until: u64 },
    Installing,
}

/// The release being worked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The release.
    pub sequence: Sequence,
    /// Which payload.
    pub payload: Payload,
    /// Failed attempts so far.
    pub failures: u32,
    stage: Stage,
}

/// The update policy of one device.
#[derive(Clone, Debug)]
pub struct UpdateMachine {
    product: ProductId,
    policy: Policy,
    installed: Installed,
    releases: BTreeMap<u64, ReleaseRecord>,
    /// Revoked sequences, remembered even before their release is seen.
    revoked: BTreeSet<u64>,
    rolled_back: BTreeSet<u64>,
    job: Option<Job>,
    /// Set when rollout rules are enforced.
    device: Option<Device>,
    /// Proven rollout state per release.
    gates: BTreeMap<u64, ReleaseGate>,
    /// The newest verified header's timestamp.
    chain_time: u64,
}

impl UpdateMachine {
    /// A device of `product` running `installed`.
    pub fn new(product: ProductId, installed: Installed, policy: Policy) -> UpdateMachine {
        UpdateMachine {
            product,
            policy,
            installed,
            releases: BTreeMap::new(),
            revoked: BTreeSet::new(),
            rolled_back: BTreeSet::new(),
            job: None,
            device: None,
            gates: BTreeMap::new(),
            chain_time: 0,
        }
    }

    /// Enforce rollout rules for `device`: from now on a release applies only when [`rollout::check`] passes
    /// against its proven gate at chain time.
    pub fn with_rollout(mut self, device: Device) -> UpdateMachine {
        self.device = Some(device);
        self
    }

    /// Chain time as the machine knows it (0 before the first [`Input::ChainTime`]).
    pub fn chain_time(&self) -> u64 {
        self.chain_time
    }

    /// Why a release the machine knows is held back by the rollout rules (None: it is not, or rules are off).
    pub fn hold(&self, sequence: Sequence) -> Option<Hold> {
        let device = self.device.as_ref()?;
        let record = self.releases.get(&sequence.0)?;
        match self.gates.get(&sequence.0) {
            None => Some(Hold::Unproven),
            Some(gate) => rollout::check(record, gate, device, self.chain_time).err(),
        }
    }

    fn rollout_allows(&self, seq: u64) -> bool {
        self.device.is_none() || (self.releases.contains_key(&seq) && self.hold(Sequence(seq)).is_none())
    }

    /// What the device runs.
    pub fn installed(&self) -> Installed {
        self.installed
    }

    /// The release being worked on, if any.
    pub fn job(&self) -> Option<&Job> {
        self.job.as_ref()
    }

    /// Releases installed here that failed and were rolled back.
    pub fn rolled_back(&self) -> impl Iterator<Item = Sequence> + '_ {
        self.rolled_back.iter().map(|s| Sequence(*s))
    }

    /// Take one input; return what to do now.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        let mut now = None;
        match input {
            Input::ReleaseSeen { record, revoked } => {
                if record.product != self.product || record.sequence <= self.installed.sequence {
                    return out;
                }
                if revoked {
                    self.revoked.insert(record.sequence.0);
                }
                self.releases.insert(record.sequence.0, record);
            }
            Input::Revoked { sequence } => {
                if sequence > self.installed.sequence {
                    self.revoked.insert(sequence.0);
                }
            }
            Input::Fetched { sequence, payload } => {
                if let Some(job) = self
                    .job
                    .as_mut()
                    .filter(|j| j.sequence == sequence && j.payload == payload)
                    && job.stage == Stage::Fetching
                    && !self.revoked.contains(&sequence.0)
                    && let Some(record) = self.releases.get(&sequence.0)
                {
                    job.stage = Stage::Installing;
                    out.push(Action::Install {
                        record: record.clone(),
                        payload,
                    });
                }
                return out;
            }
            Input::FetchFailed {
                sequence,
                payload,
                now: t,
            } => {
                now = Some(t);
                if let Some(job) = self
                    .job
                    .as_mut()
                    .filter(|j| j.sequence == sequence && j.payload == payload)
                {
                    job.failures += 1;
                    if job.payload == Payload::Patch && job.failures >= self.policy.patch_attempts {
                        job.payload = Payload::Full;
                        job.failures = 0;
                        job.stage = Stage::Waiting { until: t };
                    } else {
                        let shift = job.failures.saturating_sub(1).min(20);
                        let delay = (self.policy.retry_base_secs << shift).min(self.policy.retry_max_secs);
                        job.stage = Stage::Waiting { until: t + delay };
                    }
                }
            }
            Input::Installed { sequence, hash } => {
                self.installed = Installed { sequence, hash };
                self.job = None;
                self.releases = self.releases.split_off(&(sequence.0 + 1));
                self.revoked = self.revoked.split_off(&(sequence.0 + 1));
                self.gates = self.gates.split_off(&(sequence.0 + 1));
            }
            Input::RolledBack { sequence } => {
                self.rolled_back.insert(sequence.0);
                if self.job.as_ref().is_some_and(|j| j.sequence == sequence) {
                    self.job = None;
                }
            }
            Input::InstallFailed { sequence, now: t } => {
                now = Some(t);
                let delay = |failures: u32| self.retry_delay(failures);
                let delay = self
                    .job
                    .as_ref()
                    .filter(|j| j.sequence == sequence && j.stage == Stage::Installing)
                    .map(|j| delay(j.failures + 1));
                if let (Some(job), Some(delay)) = (self.job.as_mut(), delay) {
                    job.failures += 1;
                    job.stage = Stage::Waiting { until: t + delay };
                }
            }
            Input::Tick { now: t } => now = Some(t),
            Input::RolloutProven { sequence, gate } => {
                if sequence > self.installed.sequence {
                    self.gates.insert(sequence.0, gate);
                }
            }
            Input::ChainTime { now: t } => self.chain_time = self.chain_time.max(t),
        }
        self.plan(now, &mut out);
        out
    }

    /// The wait before retrying after `failures` failed attempts: doubling from `retry_base_secs`, capped.
    fn retry_delay(&self, failures: u32) -> u64 {
        let shift = failures.saturating_sub(1).min(20);
        (self.policy.retry_base_secs << shift).min(self.policy.retry_max_secs)
    }

    /// May this release be installed from what the device runs now?
    fn installable(&self, seq: u64) -> bool {
        self.releases.get(&seq).is_some_and(|r| {
            !self.revoked.contains(&seq)
                && !self.rolled_back.contains(&seq)
                && r.min_sequence <= self.installed.sequence.0
                && self.rollout_allows(seq)
        })
    }

    /// The next release to install and how: the first link of a patch chain to the target, or the target's
    /// full image.
    fn next_step(&self) -> Option<(u64, Payload)> {
        let target = self
            .releases
            .keys()
            .rev()
            .copied()
            .find(|s| self.installable(*s))?;
        // Follow patches from what runs now, through releases that may be installed in turn, up to the target.
        let (mut hash, mut at) = (self.installed.hash, self.installed.sequence.0);
        let mut first = None;
        let mut links = 0;
        for (&seq, r) in self.releases.range(..=target) {
            let usable = !self.revoked.contains(&seq)
                && !self.rolled_back.contains(&seq)
                && r.min_sequence <= at
                && self.rollout_allows(seq);
            if !usable || r.kind != ReleaseKind::Patch || r.base_hash != hash {
                continue;
            }
            links += 1;
            if links > self.policy.max_chain {
                break;
            }
            first.get_or_insert(seq);
            (hash, at) = (r.target_hash, seq);
            if seq == target {
                return first.map(|f| (f, Payload::Patch));
            }
        }
        Some((target, Payload::Full))
    }

    fn plan(&mut self, now: Option<u64>, out: &mut Vec<Action>) {
        let step = self.next_step();
        if let Some(job) = &self.job {
            let still_wanted = self.installable(job.sequence.0);
            if job.stage == Stage::Installing && still_wanted {
                return;
            }
            let superseded = step.is_some_and(|(s, _)| s != job.sequence.0 && job.stage != Stage::Installing);
            if !still_wanted || superseded {
                out.push(Action::Cancel {
                    sequence: job.sequence,
                });
                self.job = None;
            }
        }
        match (&mut self.job, step) {
            (None, Some((seq, payload))) => {
                self.job = Some(Job {
                    sequence: Sequence(seq),
                    payload,
                    failures: 0,
                    stage: Stage::Fetching,
                });
                if let Some(record) = self.releases.get(&seq) {
                    out.push(Action::Fetch {
                        record: record.clone(),
                        payload,
                    });
                }
            }
            (Some(job), _) => {
                if let (Stage::Waiting { until }, Some(now)) = (job.stage, now)
                    && now >= until
                {
                    job.stage = Stage::Fetching;
                    if let Some(record) = self.releases.get(&job.sequence.0) {
                        out.push(Action::Fetch {
                            record: record.clone(),
                            payload: job.payload,
                        });
                    }
                }
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rollout_tests;
