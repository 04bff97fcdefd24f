//! Two-phase installs through RAUC or SWUpdate: the bootloader's A/B slots, not ours.
//!
//! Phase one (the Installer): the verified bundle (a release's payload is the `.raucb` or `.swu` itself) goes to
//! `rauc install BUNDLE` or `swupdate -i IMAGE`, the node records [`PendingCommit`] (the release, the slot that
//! ran, the boot id) and reboots. Nothing else is installed until that reboot.
//!
//! Phase two (the next start, [`reconcile`]): [`decide`] compares the pending record with this boot. The same
//! boot means no reboot happened yet (reboot again). The old slot booted again means the bootloader fell back:
//! a rollback with that reason, and the release is never tried again. A new slot runs the health check there,
//! then confirms it (`rauc status mark-good`, or SWUpdate's bootloader variables: `upgrade_available=0`,
//! `bootcount=0`, `ustate=0`) or rejects it (`rauc status mark-bad`, or the slot variable set back and
//! `ustate=3`), records the rollback and reboots into the old slot. Every external program runs as an argument
//! vector, without a shell.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::Recipient;
use firmchain_update::machine::Installed;
use firmchain_update::{Blake3Hash, ProductId, ReleaseRecord, Sequence};

use super::{Outcome, Release, health_check, run_command};
use crate::error::{InstallError, ScriptError, file};
use crate::messages::{ReleaseInstalled, StatusEvent};
use crate::state::{NodeState, PendingCommit};
use crate::status::CommitView;
use crate::unix_now;

/// How long `rauc status`, `fw_printenv`, `fw_setenv` and the reboot command may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The installer and the bootloader interface it uses.
#[derive(Clone, Debug)]
pub enum Bootloader {
    /// RAUC: `rauc` and its global options.
    Rauc { rauc: Vec<String> },
    /// SWUpdate with a U-Boot-style environment.
    Swupdate {
        /// `swupdate` and its options.
        swupdate: Vec<String>,
        /// Prints a variable: called with `-n NAME`.
        printenv: Vec<String>,
        /// Sets a variable: called with `NAME VALUE`.
        setenv: Vec<String>,
        /// The variable that names the booted slot.
        slot_variable: String,
        /// Set on a healthy new boot.
        confirm: Vec<(String, String)>,
        /// Set on an unhealthy new boot or after a fallback.
        reject: Vec<(String, String)>,
        /// The software selection (`-e`) by booted slot; empty: none.
        select: std::collections::BTreeMap<String, String>,
    },
}

/// Where two-phase installs go.
#[derive(Clone, Debug)]
pub struct AbTarget {
    /// RAUC or SWUpdate.
    pub bootloader: Bootloader,
    /// More arguments of the install call.
    pub install_args: Vec<String>,
    /// How long the install call may take.
    pub install_timeout: Duration,
    /// Reboots the device.
    pub reboot: Vec<String>,
    /// A file whose content changes with every boot.
    pub boot_id: PathBuf,
    /// A copy of the confirmed bundle: the base of the next patch.
    pub current: PathBuf,
    /// Where the Patcher writes the new bundle.
    pub staging: PathBuf,
    /// The bundle handed over, until its boot confirms it (then it becomes `current`).
    pub pending: PathBuf,
}

/// What to do with a pending commit at a start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The boot the install happened in: the device has not rebooted yet.
    AwaitReboot,
    /// A new slot booted: run the health check there.
    Check,
    /// The new slot booted and is healthy: confirm it.
    Confirm,
    /// The new slot booted and failed its health check: mark it bad, roll back, reboot into the old slot.
    Reject { reason: String },
    /// The slot that ran before the install booted again: the bootloader fell back.
    FellBack { reason: String },
}

/// The two-phase decision: `pending` as recorded at the install, this boot's id and booted slot, and the health
/// check's result on this boot (`None` before it ran).
pub fn decide(
    pending: &PendingCommit,
    boot_id: &str,
    booted: &str,
    health: Option<&Result<(), String>>,
) -> Step {
    if boot_id == pending.boot_id {
        return Step::AwaitReboot;
    }
    if booted == pending.from_slot {
        return Step::FellBack {
            reason: format!(
                "the bootloader fell back to slot {booted}, which ran before the install: release {} did not boot \
                 (never tried again)",
                pending.sequence
            ),
        };
    }
    match health {
        None => Step::Check,
        Some(Ok(())) => Step::Confirm,
        Some(Err(e)) => Step::Reject {
            reason: format!(
                "{e} on the new boot (slot {booted}); marked bad, rebooting into slot {}",
                pending.from_slot
            ),
        },
    }
}

/// The booted slot in `rauc status --output-format=json`: the slot whose state is `booted` (its name, e.g.
/// `rootfs.1`).
pub fn rauc_booted_slot(json: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("rauc status is not JSON: {e}"))?;
    let slots = v["slots"].as_array().ok_or("rauc status lists no slots")?;
    slots
        .iter()
        .filter_map(|entry| entry.as_object())
        .flat_map(|entry| entry.iter())
        .find(|(_, slot)| slot["state"] == "booted")
        .map(|(name, _)| name.clone())
        .ok_or_else(|| "rauc status names no booted slot".to_owned())
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(|a| (*a).into()).collect()
}

async fn tool(what: &'static str, argv: &[String], args: &[&str]) -> Result<String, ScriptError> {
    let owned = os(args);
    let refs: Vec<&OsStr> = owned.iter().map(|a| a.as_os_str()).collect();
    run_command(what, argv, &refs, None, TOOL_TIMEOUT).await
}

impl AbTarget {
    /// `rauc` or `swupdate`.
    pub fn name(&self) -> &'static str {
        match self.bootloader {
            Bootloader::Rauc { .. } => "rauc",
            Bootloader::Swupdate { .. } => "swupdate",
        }
    }

    /// This boot's id.
    pub fn boot_id(&self) -> Result<String, InstallError> {
        let id = std::fs::read_to_string(&self.boot_id).map_err(file(&self.boot_id))?;
        match id.trim() {
            "" => Err(InstallError::BootedSlot(format!(
                "{} is empty",
                self.boot_id.display()
            ))),
            id => Ok(id.to_owned()),
        }
    }

    /// The slot this boot runs.
    pub async fn booted_slot(&self) -> Result<String, InstallError> {
        let slot = match &self.bootloader {
            Bootloader::Rauc { rauc } => {
                let json = tool("rauc status", rauc, &["status", "--output-format=json"])
                    .await
                    .map_err(|e| InstallError::BootedSlot(e.to_string()))?;
                rauc_booted_slot(&json).map_err(InstallError::BootedSlot)?
            }
            Bootloader::Swupdate {
                printenv,
                slot_variable,
                ..
            } => tool("fw_printenv", printenv, &["-n", slot_variable])
                .await
                .map_err(|e| InstallError::BootedSlot(e.to_string()))?
                .trim()
                .to_owned(),
        };
        if slot.is_empty() {
            return Err(InstallError::BootedSlot("the bootloader names no slot".into()));
        }
        Ok(slot)
    }

    /// SWUpdate's selection for the copy beside `booted` (`None`: no `-e`).
    fn selection(&self, booted: &str) -> Result<Option<&str>, InstallError> {
        match &self.bootloader {
            Bootloader::Swupdate { select, .. } if !select.is_empty() => select
                .get(booted)
                .map(|s| Some(s.as_str()))
                .ok_or_else(|| InstallError::NoSelection {
                    slot: booted.to_owned(),
                }),
            _ => Ok(None),
        }
    }

    async fn hand_over(
        &self,
        bundle: &Path,
        release: Release<'_>,
        selection: Option<&str>,
    ) -> Result<(), ScriptError> {
        let mut args: Vec<&OsStr> = Vec::new();
        let argv = match &self.bootloader {
            Bootloader::Rauc { rauc } => {
                args.push(OsStr::new("install"));
                args.extend(self.install_args.iter().map(OsStr::new));
                rauc
            }
            Bootloader::Swupdate { swupdate, .. } => {
                if let Some(s) = selection {
                    args.extend([OsStr::new("-e"), OsStr::new(s)]);
                }
                args.extend(self.install_args.iter().map(OsStr::new));
                args.push(OsStr::new("-i"));
                swupdate
            }
        };
        args.push(bundle.as_os_str());
        run_command(self.name(), argv, &args, Some(release), self.install_timeout)
            .await
            .map(drop)
    }

    async fn set_env(setenv: &[String], vars: &[(String, String)]) -> Result<(), ScriptError> {
        for (name, value) in vars {
            tool("fw_setenv", setenv, &[name, value]).await?;
        }
        Ok(())
    }

    /// Tell the bootloader the booted slot is good.
    pub async fn confirm(&self) -> Result<(), ScriptError> {
        match &self.bootloader {
            Bootloader::Rauc { rauc } => tool("rauc mark-good", rauc, &["status", "mark-good", "booted"])
                .await
                .map(drop),
            Bootloader::Swupdate { setenv, confirm, .. } => Self::set_env(setenv, confirm).await,
        }
    }

    /// Tell the bootloader the booted slot is bad, so the next boot runs `from_slot`.
    pub async fn reject(&self, from_slot: &str) -> Result<(), ScriptError> {
        match &self.bootloader {
            Bootloader::Rauc { rauc } => tool("rauc mark-bad", rauc, &["status", "mark-bad", "booted"])
                .await
                .map(drop),
            Bootloader::Swupdate {
                setenv,
                slot_variable,
                reject,
                ..
            } => {
                tool("fw_setenv", setenv, &[slot_variable, from_slot]).await?;
                Self::set_env(setenv, reject).await
            }
        }
    }

    /// After a fallback: SWUpdate's state variables say the update failed (RAUC's bootloader already knows).
    async fn fell_back(&self) -> Result<(), ScriptError> {
        match &self.bootloader {
            Bootloader::Rauc { .. } => Ok(()),
            Bootloader::Swupdate { setenv, reject, .. } => Self::set_env(setenv, reject).await,
        }
    }

    /// Reboot the device (a failure is logged: the release waits for the next reboot).
    pub async fn reboot(&self, why: &str) {
        tracing::warn!(target: "firmchain::install", %why, command = ?self.reboot, "rebooting");
        if let Err(e) = tool("reboot command", &self.reboot, &[]).await {
            tracing::error!(target: "firmchain::install", error = %e, "cannot reboot; waiting for the next reboot");
        }
    }
}

fn view(p: &PendingCommit, state: &'static str, booted: Option<&str>, reason: Option<String>) -> CommitView {
    CommitView {
        state,
        sequence: p.sequence,
        installer: p.installer.clone(),
        from_slot: p.from_slot.clone(),
        booted_slot: booted.map(str::to_owned),
        reason,
        at: unix_now(),
    }
}

/// Phase one: hand the verified bundle in `ab.staging` to the installer, record the pending commit, reboot.
pub(crate) async fn install(
    ab: &AbTarget,
    state: &NodeState,
    record: &ReleaseRecord,
    hash: Blake3Hash,
    status: &Recipient<StatusEvent>,
) -> Result<Outcome, InstallError> {
    let from_slot = ab.booted_slot().await?;
    let boot_id = ab.boot_id()?;
    let selection = ab.selection(&from_slot)?;
    let release = Release {
        sequence: record.sequence,
        target: hash,
        image: &ab.staging,
    };
    if let Err(e) = ab.hand_over(&ab.staging, release, selection).await {
        let reason = format!("{e}; the previous image still runs");
        state.record_rollback(&record.product, record.sequence, &reason)?;
        return Ok(Outcome::Report(ReleaseInstalled::RolledBack {
            sequence: record.sequence,
            reason,
        }));
    }
    std::fs::rename(&ab.staging, &ab.pending).map_err(file(&ab.pending))?;
    let pending = PendingCommit {
        sequence: record.sequence.0,
        hash: hash.to_string(),
        installer: ab.name().to_owned(),
        from_slot,
        boot_id,
        at: unix_now(),
    };
    state.set_commit_pending(&record.product, Some(&pending))?;
    let why = format!(
        "release {} is installed in the slot beside {}",
        record.sequence, pending.from_slot
    );
    ab.reboot(&why).await;
    status.do_send(StatusEvent::Commit(view(&pending, "pending", None, None)));
    Ok(Outcome::Waiting {
        sequence: record.sequence,
    })
}

/// What [`reconcile`] did at a start.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// A release rolled back now (bootloader fallback or a failed health check on the new boot), and why.
    pub rolled_back: Option<(Sequence, String)>,
    /// Whether that rollback was the bootloader's fallback (not a failed health check).
    pub fell_back: bool,
    /// The commit's state for `/status`.
    pub commit: Option<CommitView>,
}

/// Phase two, once at start-up (before the pipeline runs): confirm, reject or wait for the pending commit of
/// `product`. Returns what happened; the installed release is recorded in `state`.
pub async fn reconcile(
    ab: &AbTarget,
    state: &NodeState,
    product: &ProductId,
    health: Option<&[String]>,
    health_timeout: Duration,
) -> Result<Reconciled, InstallError> {
    let Some(p) = state.commit_pending(product)? else {
        return Ok(Reconciled::default());
    };
    let boot_id = ab.boot_id()?;
    let booted = ab.booted_slot().await?;
    let sequence = Sequence(p.sequence);
    let mut step = decide(&p, &boot_id, &booted, None);
    if step == Step::Check {
        let result = match health {
            None => Ok(()),
            Some(argv) => {
                let hash = p
                    .hash
                    .parse::<Blake3Hash>()
                    .map_err(|_| InstallError::BootedSlot(format!("bad hash {:?}", p.hash)))?;
                let release = Release {
                    sequence,
                    target: hash,
                    image: &ab.pending,
                };
                health_check(argv, release, health_timeout)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        step = decide(&p, &boot_id, &booted, Some(&result));
    }
    let done = match step {
        // (The health check ran: `decide` does not answer `Check` again.)
        Step::Check => {
            return Ok(Reconciled {
                rolled_back: None,
                fell_back: false,
                commit: Some(view(&p, "pending", Some(&booted), None)),
            });
        }
        Step::AwaitReboot => {
            ab.reboot(&format!("release {sequence} waits for the reboot into its slot"))
                .await;
            return Ok(Reconciled {
                rolled_back: None,
                fell_back: false,
                commit: Some(view(&p, "pending", Some(&booted), None)),
            });
        }
        Step::Confirm => {
            ab.confirm().await?;
            if ab.pending.exists() {
                std::fs::rename(&ab.pending, &ab.current).map_err(file(&ab.current))?;
            }
            let hash = p
                .hash
                .parse::<Blake3Hash>()
                .map_err(|_| InstallError::BootedSlot(format!("bad hash {:?}", p.hash)))?;
            state.set_installed(product, Installed { sequence, hash })?;
            tracing::info!(target: "firmchain::install", sequence = sequence.0, slot = %booted, "confirmed on the new boot");
            Reconciled {
                rolled_back: None,
                fell_back: false,
                commit: Some(view(&p, "confirmed", Some(&booted), None)),
            }
        }
        Step::Reject { reason } => {
            if let Err(e) = ab.reject(&p.from_slot).await {
                tracing::error!(target: "firmchain::install", error = %e, "cannot mark the new slot bad");
            }
            roll_back(ab, state, product, &p, &reason)?;
            // Settled before the reboot (which may end this process at once).
            state.set_commit_pending(product, None)?;
            ab.reboot(&reason).await;
            Reconciled {
                rolled_back: Some((sequence, reason.clone())),
                fell_back: false,
                commit: Some(view(&p, "rolled_back", Some(&booted), Some(reason))),
            }
        }
        Step::FellBack { reason } => {
            if let Err(e) = ab.fell_back().await {
                tracing::warn!(target: "firmchain::install", error = %e, "cannot record the fallback in the bootloader");
            }
            roll_back(ab, state, product, &p, &reason)?;
            Reconciled {
                rolled_back: Some((sequence, reason.clone())),
                fell_back: true,
                commit: Some(view(&p, "rolled_back", Some(&booted), Some(reason))),
            }
        }
    };
    state.set_commit_pending(product, None)?;
    Ok(done)
}

/// Remember never to try the release again; its bundle is dropped (the confirmed one stays the next base).
fn roll_back(
    ab: &AbTarget,
    state: &NodeState,
    product: &ProductId,
    p: &PendingCommit,
    reason: &str,
) -> Result<(), InstallError> {
    state.record_rollback(product, Sequence(p.sequence), reason)?;
    if let Err(e) = std::fs::remove_file(&ab.pending)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(target: "firmchain::install", path = %ab.pending.display(), error = %e, "cannot remove the rejected bundle");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingCommit {
        PendingCommit {
            sequence: 4,
            hash: Blake3Hash([4; 32]).to_string(),
            installer: "rauc".into(),
            from_slot: "rootfs.0".into(),
            boot_id: "boot-1".into(),
            at: 0,
        }
    }

    #[test]
    fn the_same_boot_waits_for_the_reboot_whatever_the_slot_says() {
        let p = pending();
        for booted in ["rootfs.0", "rootfs.1"] {
            assert_eq!(decide(&p, "boot-1", booted, None), Step::AwaitReboot);
            assert_eq!(decide(&p, "boot-1", booted, Some(&Ok(()))), Step::AwaitReboot);
        }
    }

    #[test]
    fn a_new_slot_is_checked_then_confirmed_or_rejected() {
        let p = pending();
        assert_eq!(decide(&p, "boot-2", "rootfs.1", None), Step::Check);
        assert_eq!(decide(&p, "boot-2", "rootfs.1", Some(&Ok(()))), Step::Confirm);
        let failed = Err("the health check exited with code 3: radio dead".to_owned());
        match decide(&p, "boot-2", "rootfs.1", Some(&failed)) {
            Step::Reject { reason } => assert!(
                reason.contains("radio dead")
                    && reason.contains("slot rootfs.1")
                    && reason.contains("rebooting into slot rootfs.0"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// The old slot again after a reboot is a fallback, and a health check that passes there (the old image is
    /// healthy) never confirms the release.
    #[test]
    fn the_old_slot_after_a_reboot_is_a_fallback_even_when_healthy() {
        let p = pending();
        for health in [None, Some(&Ok(())), Some(&Err("x".to_owned()))] {
            match decide(&p, "boot-2", "rootfs.0", health) {
                Step::FellBack { reason } => assert!(
                    reason.contains("fell back to slot rootfs.0") && reason.contains("release 4"),
                    "{reason}"
                ),
                other => panic!("{health:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_booted_slot_is_read_from_rauc_status_json() {
        let json = r#"{"compatible":"acme","variant":"","booted":"B","boot_primary":"rootfs.1","slots":[
            {"rootfs.0":{"class":"rootfs","device":"/dev/mmcblk0p2","bootname":"A","state":"inactive","boot_status":"good"}},
            {"rootfs.1":{"class":"rootfs","device":"/dev/mmcblk0p3","bootname":"B","state":"booted","boot_status":"good"}}]}"#;
        assert_eq!(rauc_booted_slot(json).unwrap(), "rootfs.1");
        let none = r#"{"slots":[{"rootfs.0":{"state":"inactive"}}]}"#;
        assert!(rauc_booted_slot(none).unwrap_err().contains("no booted slot"));
        assert!(rauc_booted_slot("not json").unwrap_err().contains("not JSON"));
        assert!(rauc_booted_slot("{}").unwrap_err().contains("no slots"));
    }
}
