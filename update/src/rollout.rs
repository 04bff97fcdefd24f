//! Rollout rules as a device enforces them: pure functions of the record, of what storage proofs say about
//! the release, and of chain time (the timestamp of the verified header, never the device clock).
//!
//! A release applies to a device only if:
//! - the device's hardware class is listed (or the release lists none);
//! - it has not expired (`not_after`);
//! - it is not paused (the product or the release) and not revoked or cancelled;
//! - its activation delay has passed (`installable_at`);
//! - the device falls inside the current share: `keccak256(device id ‖ record digest)`, its first 8 bytes read
//!   as a fraction of 2^64, is below the share of the schedule at chain time.

use std::fmt;

use crate::record::{FULL_SHARE, HardwareClass, ReleaseRecord, keccak256};

/// A device's identity for rollouts: `keccak256` of its configured name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 32]);

impl DeviceId {
    /// The id of the device named `name` (the same on every device and in `rollout-status`).
    pub fn from_name(name: &str) -> DeviceId {
        DeviceId(keccak256(name.as_bytes()))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId(0x{})", hex::encode(self.0))
    }
}

/// The device's place in the rollout of the release with `digest`: a uniform number in `0..2^64`, fresh for
/// every release so that the same devices are not always first.
pub fn place(device: &DeviceId, digest: &[u8; 32]) -> u64 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&device.0);
    buf[32..].copy_from_slice(digest);
    let h = keccak256(&buf);
    let mut be = [0u8; 8];
    be.copy_from_slice(&h[..8]);
    u64::from_be_bytes(be)
}

/// Whether a device at `place` is inside a share of `share_bps` basis points: `place / 2^64 < share / 10000`.
pub fn inside(place: u64, share_bps: u16) -> bool {
    u128::from(place) * u128::from(FULL_SHARE) < u128::from(share_bps) << 64
}

/// The smallest share (basis points) that includes a device at `place`; above 10000 never happens.
pub fn min_share(place: u64) -> u16 {
    (((u128::from(place) * u128::from(FULL_SHARE)) >> 64) + 1) as u16
}

/// What storage proofs say about one release at one verified header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReleaseGate {
    /// Chain time the release went live (`timing.liveAt`).
    pub live_at: u64,
    /// Chain time it becomes installable: live plus the product's activation delay (`timing.installableAt`).
    pub installable_at: u64,
    /// `pausedUntil[product][0]`.
    pub product_paused_until: u64,
    /// `pausedUntil[product][sequence]`.
    pub release_paused_until: u64,
}

impl ReleaseGate {
    /// Until when the release is held (the later of the two pauses).
    pub fn held_until(&self) -> u64 {
        self.product_paused_until.max(self.release_paused_until)
    }
}

/// Who the device is, for rollouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// Its hardware class (None: none configured; such a device takes only releases that list no class).
    pub class: Option<HardwareClass>,
}

/// Why a release does not apply (yet, or ever) to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Hold {
    #[error("no proven rollout state of this release yet")]
    Unproven,
    #[error("the release is for other hardware classes")]
    OtherHardware,
    #[error("the release expired at chain time {not_after}")]
    Expired { not_after: u64 },
    #[error("paused until chain time {until}")]
    Paused { until: u64 },
    #[error("in its activation delay until chain time {until}")]
    Delay { until: u64 },
    #[error("waiting for the rollout: the share is {share_bps} bps, this device needs {needs_bps} bps")]
    Rollout {
        share_bps: u16,
        needs_bps: u16,
        next_step_at: Option<u64>,
    },
}

impl Hold {
    /// Whether the hold lasts for good (no later chain time lifts it).
    pub fn is_final(&self) -> bool {
        matches!(self, Hold::OtherHardware | Hold::Expired { .. })
            || matches!(
                self,
                Hold::Rollout {
                    next_step_at: None,
                    ..
                }
            )
    }
}

/// Whether `record` applies to `device` at chain time `now`, given the proven `gate`; the first rule that
/// holds it back otherwise. Revocation and cancellation are checked by the caller (a proven flag).
pub fn check(record: &ReleaseRecord, gate: &ReleaseGate, device: &Device, now: u64) -> Result<(), Hold> {
    let terms = &record.terms;
    if !terms.admits(device.class.as_ref()) {
        return Err(Hold::OtherHardware);
    }
    if terms.expired_at(now) {
        return Err(Hold::Expired {
            not_after: terms.not_after,
        });
    }
    let held = gate.held_until();
    if now < held {
        return Err(Hold::Paused { until: held });
    }
    if now < gate.installable_at {
        return Err(Hold::Delay {
            until: gate.installable_at,
        });
    }
    let share_bps = terms.rollout.share_at(gate.installable_at, now);
    let p = place(&device.id, &record.digest());
    if !inside(p, share_bps) {
        return Err(Hold::Rollout {
            share_bps,
            needs_bps: min_share(p),
            next_step_at: terms.rollout.next_step_at(gate.installable_at, now),
        });
    }
    Ok(())
}

/// Where a release's rollout stands at chain time `now`, for operators (`rollout-status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutStatus {
    /// The share of the fleet the schedule allows now (0 before the release is installable).
    pub share_bps: u16,
    /// When the share grows next (None: it does not).
    pub next_step_at: Option<u64>,
    /// Why no device installs now, when that is so for every device (pause, delay, expiry).
    pub held: Option<Hold>,
    /// For each device: whether the rules admit it now.
    pub admitted: Vec<bool>,
}

/// The rollout of `record` with proven `gate` at `now` for `devices` (revocation is the caller's).
pub fn status(record: &ReleaseRecord, gate: &ReleaseGate, devices: &[Device], now: u64) -> RolloutStatus {
    let terms = &record.terms;
    let held = if terms.expired_at(now) {
        Some(Hold::Expired {
            not_after: terms.not_after,
        })
    } else if now < gate.held_until() {
        Some(Hold::Paused {
            until: gate.held_until(),
        })
    } else if now < gate.installable_at {
        Some(Hold::Delay {
            until: gate.installable_at,
        })
    } else {
        None
    };
    let share_bps = terms.rollout.share_at(gate.installable_at, now);
    let digest = record.digest();
    let admitted = devices
        .iter()
        .map(|d| held.is_none() && terms.admits(d.class.as_ref()) && inside(place(&d.id, &digest), share_bps))
        .collect();
    RolloutStatus {
        share_bps,
        next_step_at: terms.rollout.next_step_at(gate.installable_at, now),
        held,
        admitted,
    }
}

#[cfg(test)]
mod tests;
