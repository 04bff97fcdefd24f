//! The terms of a release: which hardware may install it, until when, and how fast it reaches the fleet.

use std::fmt;
use std::str::FromStr;

use cid::Cid;

use super::{MAX_CID_LEN, RecordError};

/// The most hardware classes one release may list.
pub const MAX_HARDWARE_CLASSES: usize = 16;

/// The whole fleet, in basis points.
pub const FULL_SHARE: u16 = 10_000;

/// A hardware class: 32 bytes, as SUIT's vendor and class ids; usually a short ASCII name padded with zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HardwareClass(pub [u8; 32]);

/// A hardware class that is neither a short name nor 32 bytes of hex.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("hardware class {0:?} must be 1 to 32 printable ASCII characters, or 0x followed by 64 hex digits")]
pub struct ParseHardwareError(pub String);

impl FromStr for HardwareClass {
    type Err = ParseHardwareError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseHardwareError(s.to_owned());
        let mut out = [0u8; 32];
        if let Some(digits) = s.strip_prefix("0x") {
            hex::decode_to_slice(digits, &mut out).map_err(|_| bad())?;
        } else if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_graphic()) {
            out[..s.len()].copy_from_slice(s.as_bytes());
        } else {
            return Err(bad());
        }
        if out == [0; 32] {
            return Err(bad());
        }
        Ok(HardwareClass(out))
    }
}

impl fmt::Display for HardwareClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(32);
        let (name, pad) = self.0.split_at(end);
        match std::str::from_utf8(name) {
            Ok(n)
                if !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_graphic())
                    && pad.iter().all(|&b| b == 0) =>
            {
                f.write_str(n)
            }
            _ => write!(f, "0x{}", hex::encode(self.0)),
        }
    }
}

impl fmt::Debug for HardwareClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HardwareClass({self})")
    }
}

/// A staged rollout: `start_bps` of the fleet once the release is installable, then `step_bps` more every
/// `interval_secs` seconds of chain time, up to the whole fleet. Shares are basis points (10000 = all).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RolloutSchedule {
    /// Share eligible from the moment the release is installable.
    pub start_bps: u16,
    /// Share added per interval; 0 exactly when `interval_secs` is 0.
    pub step_bps: u16,
    /// Seconds per step.
    pub interval_secs: u64,
}

impl RolloutSchedule {
    /// The whole fleet at once.
    pub const FULL: RolloutSchedule = RolloutSchedule {
        start_bps: FULL_SHARE,
        step_bps: 0,
        interval_secs: 0,
    };

    /// The same rules as the contract: shares at most 10000, a step exactly when there is an interval, and
    /// not a schedule that never lets anyone in.
    pub fn validate(&self) -> Result<(), ParseRolloutError> {
        let stepped = self.step_bps != 0;
        if self.start_bps > FULL_SHARE || self.step_bps > FULL_SHARE {
            return Err(ParseRolloutError::ShareAboveAll(
                self.start_bps.max(self.step_bps),
            ));
        }
        if stepped != (self.interval_secs != 0) {
            return Err(ParseRolloutError::StepWithoutInterval {
                step_bps: self.step_bps,
                interval_secs: self.interval_secs,
            });
        }
        if self.start_bps == 0 && !stepped {
            return Err(ParseRolloutError::Nobody);
        }
        Ok(())
    }

    /// The share (basis points) at chain time `now` of a release installable from `installable_at`: 0 before,
    /// then `start + step * floor(elapsed / interval)`, capped at 10000.
    pub fn share_at(&self, installable_at: u64, now: u64) -> u16 {
        let Some(elapsed) = now.checked_sub(installable_at) else {
            return 0;
        };
        let steps = elapsed.checked_div(self.interval_secs).unwrap_or(0);
        let share = u128::from(self.start_bps) + u128::from(self.step_bps) * u128::from(steps);
        share.min(u128::from(FULL_SHARE)) as u16
    }

    /// The first chain time at which the share exceeds what it is at `now` (None: it never grows again).
    pub fn next_step_at(&self, installable_at: u64, now: u64) -> Option<u64> {
        if now < installable_at {
            return Some(installable_at);
        }
        if self.step_bps == 0 || self.interval_secs == 0 || self.share_at(installable_at, now) >= FULL_SHARE {
            return None;
        }
        let steps = (now - installable_at) / self.interval_secs + 1;
        installable_at.checked_add(steps.checked_mul(self.interval_secs)?)
    }
}

impl Default for RolloutSchedule {
    fn default() -> Self {
        RolloutSchedule::FULL
    }
}

/// A rollout that is not `START%[,+STEP%/INTERVAL]` or breaks a rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseRolloutError {
    #[error("{0:?} is not a share: use a percentage with at most two decimals, such as 10% or 2.5%")]
    Share(String),
    #[error("{0:?} is not a duration: use a number and s, m, h or d, such as 30m or 1h")]
    Duration(String),
    #[error("{0:?} is not START%[,+STEP%/INTERVAL], such as 10% or 10%,+20%/1h")]
    Syntax(String),
    #[error("a share of {0} basis points is more than the whole fleet (10000)")]
    ShareAboveAll(u16),
    #[error(
        "a step of {step_bps} basis points needs an interval and an interval a step (got {interval_secs} s)"
    )]
    StepWithoutInterval { step_bps: u16, interval_secs: u64 },
    #[error("a rollout that starts at 0% and never grows reaches nobody")]
    Nobody,
}

fn parse_share(s: &str) -> Result<u16, ParseRolloutError> {
    let bad = || ParseRolloutError::Share(s.to_owned());
    let digits = s.strip_suffix('%').ok_or_else(bad)?;
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let is_num = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 3 || frac.len() > 2 || !is_num(whole) || !is_num(frac) {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let bps = whole * 100 + frac;
    u16::try_from(bps)
        .ok()
        .filter(|b| *b <= FULL_SHARE)
        .ok_or(ParseRolloutError::ShareAboveAll(
            bps.min(u32::from(u16::MAX)) as u16
        ))
}

fn parse_duration(s: &str) -> Result<u64, ParseRolloutError> {
    let bad = || ParseRolloutError::Duration(s.to_owned());
    let unit = match s.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
    n.checked_mul(unit).filter(|d| *d > 0).ok_or_else(bad)
}

impl FromStr for RolloutSchedule {
    type Err = ParseRolloutError;

    /// `100%`, `10%` (a canary that stays), or `10%,+20%/1h` (10%, then 20% more every hour).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (start, step) = match s.split_once(',') {
            None => (s, None),
            Some((start, step)) => {
                let step = step
                    .strip_prefix('+')
                    .ok_or_else(|| ParseRolloutError::Syntax(s.to_owned()))?;
                let (share, every) = step
                    .split_once('/')
                    .ok_or_else(|| ParseRolloutError::Syntax(s.to_owned()))?;
                (start, Some((parse_share(share)?, parse_duration(every)?)))
            }
        };
        let (step_bps, interval_secs) = step.unwrap_or((0, 0));
        let schedule = RolloutSchedule {
            start_bps: parse_share(start)?,
            step_bps,
            interval_secs,
        };
        schedule.validate()?;
        Ok(schedule)
    }
}

fn pct(bps: u16) -> String {
    match bps % 100 {
        0 => format!("{}%", bps / 100),
        f if f % 10 == 0 => format!("{}.{}%", bps / 100, f / 10),
        f => format!("{}.{f:02}%", bps / 100),
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl fmt::Display for RolloutSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&pct(self.start_bps))?;
        if self.step_bps != 0 {
            write!(f, ",+{}/{}", pct(self.step_bps), duration(self.interval_secs))?;
        }
        Ok(())
    }
}

/// Who may install a release, until when, and how fast it reaches the fleet; approved with the record.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ReleaseTerms {
    /// Hardware classes the release is for, strictly ascending; empty: every class.
    pub hardware: Vec<HardwareClass>,
    /// Chain time (unix seconds) from which the release must not be installed; 0: never expires.
    pub not_after: u64,
    /// The staged rollout.
    pub rollout: RolloutSchedule,
    /// Binary CID of release notes or an SBOM; empty: none.
    pub notes_cid: Vec<u8>,
}

impl ReleaseTerms {
    /// Whether a device of `class` (None: a device that configured none) is one the release is for.
    pub fn admits(&self, class: Option<&HardwareClass>) -> bool {
        self.hardware.is_empty() || class.is_some_and(|c| self.hardware.binary_search(c).is_ok())
    }

    /// Whether the release has expired at chain time `now`.
    pub fn expired_at(&self, now: u64) -> bool {
        self.not_after != 0 && now >= self.not_after
    }

    /// The notes CID, if any.
    pub fn notes(&self) -> Result<Option<Cid>, RecordError> {
        if self.notes_cid.is_empty() {
            return Ok(None);
        }
        Cid::try_from(self.notes_cid.as_slice())
            .map(Some)
            .map_err(|e| RecordError::NotesCid(e.to_string()))
    }

    /// The rules the contract also enforces (but expiry, which needs chain time).
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.hardware.len() > MAX_HARDWARE_CLASSES {
            return Err(RecordError::TooManyHardwareClasses(self.hardware.len()));
        }
        for (index, class) in self.hardware.iter().enumerate() {
            if class.0 == [0; 32] || (index > 0 && *class <= self.hardware[index - 1]) {
                return Err(RecordError::HardwareNotAscending { index });
            }
        }
        self.rollout.validate()?;
        if self.notes_cid.len() > MAX_CID_LEN {
            return Err(RecordError::NotesCidTooLong(self.notes_cid.len()));
        }
        self.notes()?;
        Ok(())
    }
}
