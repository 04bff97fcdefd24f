//! The Patcher and the Installer.
//!
//! The Patcher (CPU work on a `SyncArbiter`) applies a verified payload to the running image, reading the
//! payload in place in the blockstore ([`DagFile`], every block checked against its CID again) and streaming the
//! result into the inactive slot (or a staging file) with bounded memory and checking the result against the
//! record's `target_hash` and `target_size`. The Installer then switches slots atomically, runs the health
//! check and rolls back when it fails (slots mode), or hands the image to an external installer (command mode).
//! Every outcome is recorded in the node state and reported to the Coordinator.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, SyncContext, WrapFuture,
};
use cid::Cid;
use firmchain_p2p::{Blockstore, P2p};
use firmchain_update::dag::{DagFile, ReadLimits};
use firmchain_update::machine::Payload;
use firmchain_update::patch::{self, ApplyError, ApplyLimits};
use firmchain_update::{Blake3Hash, ProductId, ReleaseRecord, Sequence};

use crate::error::{InstallError, ScriptError, file};
use crate::messages::{InstallRelease, ReleaseInstalled, StatusEvent};
use crate::slots::Slots;
use crate::state::NodeState;
use firmchain_update::machine::Installed;

/// The environment variable that pauses the node at a named point of an install (`patching`, `switched`), so
/// tests can kill it there. The node prints `paused at <point>` to stderr and waits forever. Only in builds with
/// the `test-hooks` feature (the tests' builds; release builds never enable it).
#[cfg(feature = "test-hooks")]
pub const PAUSE_ENV: &str = "FIRMCHAIN_TEST_PAUSE_AT";

#[cfg(feature = "test-hooks")]
fn pause_if_asked(point: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|p| p == point) {
        eprintln!("firmchain: paused at {point}");
        loop {
            std::thread::park();
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
fn pause_if_asked(_point: &str) {}

/// Patcher ← Installer: apply `payload` to `base`, writing the image to `out`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Blake3Hash, ApplyError>")]
pub struct ApplyPayload {
    /// The running image.
    pub base: PathBuf,
    /// The blockstore holding the payload.
    pub store: Arc<Blockstore>,
    /// The verified payload's root there (a patch, or a compressed full image).
    pub payload: Cid,
    /// Where the new image goes (truncated first).
    pub out: PathBuf,
    /// The record's target.
    pub target_hash: Blake3Hash,
    /// The record's size.
    pub target_size: u64,
}

/// Applies payloads on a `SyncArbiter` thread.
#[derive(Debug, Default)]
pub struct Patcher;

impl Actor for Patcher {
    type Context = SyncContext<Self>;
}

/// Apply a payload (see [`ApplyPayload`]); the output is synced to disk before this returns. Errors other than
/// [`InstallError::Apply`] name the file.
pub fn apply_payload(msg: &ApplyPayload) -> Result<Blake3Hash, ApplyError> {
    let io = |context: &'static str| move |source: std::io::Error| ApplyError::Io { context, source };
    let base = File::open(&msg.base).map_err(io("opening the running image"))?;
    let store_fault = |e: &dyn std::fmt::Display| ApplyError::Io {
        context: "reading the payload from the blockstore",
        source: std::io::Error::other(e.to_string()),
    };
    let mut payload =
        DagFile::open(msg.payload, &*msg.store, ReadLimits::default()).map_err(|e| store_fault(&e))?;
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&msg.out)
        .map_err(io("opening the new image"))?;
    let mut w = BufWriter::new(out);
    let limits = ApplyLimits {
        expect_target: Some(msg.target_hash),
        expect_size: Some(msg.target_size),
        ..ApplyLimits::default()
    };
    let half = msg.target_size / 2;
    let mut paused = false;
    let applied = patch::apply(base, &mut payload, &mut w, &limits, |written| {
        if !paused && written >= half {
            paused = true;
            pause_if_asked("patching");
        }
    });
    // The payload was verified whole before: a block that now fails to read is the store's fault (transient,
    // fetched again), never a verdict on the release.
    if let Some(fault) = payload.failure() {
        return Err(store_fault(&fault));
    }
    let applied = applied?;
    let out = w
        .into_inner()
        .map_err(|e| io("writing the new image")(e.into_parts().0))?;
    out.sync_all().map_err(io("syncing the new image"))?;
    Ok(applied.target_hash)
}

impl Handler<ApplyPayload> for Patcher {
    type Result = Result<Blake3Hash, ApplyError>;

    fn handle(&mut self, msg: ApplyPayload, _: &mut SyncContext<Self>) -> Result<Blake3Hash, ApplyError> {
        apply_payload(&msg)
    }
}

/// Where images go.
#[derive(Debug)]
pub enum InstallTarget {
    /// A/B slots with an atomic pointer and a health check.
    Slots(Slots),
    /// An external installer: `command` (an argument vector, no shell) gets the image path as its last
    /// argument. `current` keeps a copy of the installed image as the base for the next patch.
    Command { command: Vec<String>, current: PathBuf },
    /// RAUC or SWUpdate with a reboot into the new slot and a confirmation on the new boot.
    TwoPhase(ab::AbTarget),
}

/// What the Installer needs.
#[derive(Debug)]
pub struct InstallerConfig {
    /// Where images go.
    pub target: InstallTarget,
    /// A command (argument vector, no shell) that must exit 0 after a slot switch (slots, command modes) or on
    /// the new boot (two-phase modes).
    pub health_check: Option<Vec<String>>,
    /// How long the health check may take.
    pub health_timeout: Duration,
    /// A scratch file for command mode.
    pub staging: PathBuf,
    /// The blockstore the verified payloads are read from.
    pub store: Arc<Blockstore>,
}

/// The Installer actor.
#[derive(Debug)]
pub struct Installer {
    config: Arc<Mutex<InstallerConfig>>,
    patcher: Addr<Patcher>,
    state: Arc<NodeState>,
    p2p: Option<P2p>,
    done: Recipient<ReleaseInstalled>,
    status: Recipient<StatusEvent>,
    /// Others told of every outcome (the IndexWatcher).
    also: Vec<Recipient<ReleaseInstalled>>,
}

impl Installer {
    /// Tell `to` of every outcome too.
    pub fn notify(mut self, to: Recipient<ReleaseInstalled>) -> Installer {
        self.also.push(to);
        self
    }

    /// An installer; `p2p` (when given) provides the release's blocks after an install.
    pub fn new(
        config: InstallerConfig,
        patcher: Addr<Patcher>,
        state: Arc<NodeState>,
        p2p: Option<P2p>,
        done: Recipient<ReleaseInstalled>,
        status: Recipient<StatusEvent>,
    ) -> Installer {
        Installer {
            config: Arc::new(Mutex::new(config)),
            patcher,
            state,
            p2p,
            done,
            status,
            also: Vec::new(),
        }
    }
}

impl Actor for Installer {
    type Context = Context<Self>;
}

/// What an install's commands get in their environment: the release and its image.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Release<'a> {
    pub sequence: Sequence,
    pub target: Blake3Hash,
    pub image: &'a Path,
}

/// Run `argv` followed by `args` (no shell) with the release's details in its environment; `Ok` is its stdout,
/// `Err` says why it failed.
pub(crate) async fn run_command(
    what: &'static str,
    argv: &[String],
    args: &[&std::ffi::OsStr],
    release: Option<Release<'_>>,
    timeout: Duration,
) -> Result<String, ScriptError> {
    let (program, rest) = argv.split_first().ok_or_else(|| ScriptError::Spawn {
        what,
        script: String::new(),
        source: std::io::Error::other("no program given"),
    })?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest).args(args);
    if let Some(r) = release {
        cmd.env("FIRMCHAIN_IMAGE", r.image)
            .env("FIRMCHAIN_SEQUENCE", r.sequence.0.to_string())
            .env("FIRMCHAIN_TARGET_HASH", r.target.to_string());
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| ScriptError::Spawn {
        what,
        script: argv.join(" "),
        source,
    })?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(ScriptError::Timeout { what, timeout }),
        Ok(Err(source)) => Err(ScriptError::Wait { what, source }),
        Ok(Ok(out)) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail = stderr.trim().lines().last().unwrap_or("").to_owned();
            let status = out
                .status
                .code()
                .map_or_else(|| out.status.to_string(), |c| format!("code {c}"));
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            };
            Err(ScriptError::Failed { what, status, tail })
        }
    }
}

/// Run the health check `argv` for `release`.
pub(crate) async fn health_check(
    argv: &[String],
    release: Release<'_>,
    timeout: Duration,
) -> Result<(), ScriptError> {
    run_command("health check", argv, &[], Some(release), timeout)
        .await
        .map(drop)
}

fn lock(c: &Mutex<InstallerConfig>) -> Result<std::sync::MutexGuard<'_, InstallerConfig>, InstallError> {
    c.lock().map_err(|_| InstallError::Poisoned)
}

/// Run `f` on the slots, off the async threads.
async fn on_slots<T: Send + 'static>(
    config: &Arc<Mutex<InstallerConfig>>,
    f: impl FnOnce(&mut Slots) -> Result<T, InstallError> + Send + 'static,
) -> Result<T, InstallError> {
    let config = config.clone();
    blocking(move || {
        let mut c = lock(&config)?;
        let InstallTarget::Slots(slots) = &mut c.target else {
            return Err(InstallError::NotSlots);
        };
        f(slots)
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, InstallError> + Send + 'static,
) -> Result<T, InstallError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| InstallError::Task(e.to_string()))?
}

async fn install(
    config: Arc<Mutex<InstallerConfig>>,
    patcher: Addr<Patcher>,
    state: Arc<NodeState>,
    status: Recipient<StatusEvent>,
    record: ReleaseRecord,
    payload: Payload,
    payload_root: Cid,
) -> Result<Outcome, InstallError> {
    let (base, out, health, timeout, command, store) = {
        let c = lock(&config)?;
        let (base, out, command) = match &c.target {
            InstallTarget::Slots(slots) => {
                let (path, _file) = slots.begin()?;
                (slots.active_path(), path, None)
            }
            InstallTarget::Command { command, current } => {
                (current.clone(), c.staging.clone(), Some(command.clone()))
            }
            InstallTarget::TwoPhase(ab) => {
                // One release at a time: the one handed over waits for its reboot.
                if let Some(p) = state.commit_pending(&record.product)? {
                    return Ok(Outcome::Waiting {
                        sequence: Sequence(p.sequence),
                    });
                }
                (ab.current.clone(), ab.staging.clone(), None)
            }
        };
        let store = c.store.clone();
        (
            base,
            out,
            c.health_check.clone(),
            c.health_timeout,
            command,
            store,
        )
    };
    let hash = patcher
        .send(ApplyPayload {
            base,
            store,
            payload: payload_root,
            out: out.clone(),
            target_hash: record.target_hash,
            target_size: record.target_size,
        })
        .await
        .map_err(InstallError::Patcher)?
        .map_err(|source| InstallError::Apply {
            entry: crate::fetcher::entry_name(payload),
            sequence: record.sequence,
            source,
        })?;

    let installed = Installed {
        sequence: record.sequence,
        hash,
    };
    let two_phase = {
        let c = lock(&config)?;
        match &c.target {
            InstallTarget::TwoPhase(ab) => Some(ab.clone()),
            _ => None,
        }
    };
    if let Some(ab) = two_phase {
        return ab::install(&ab, &state, &record, hash, &status).await;
    }
    if let Some(command) = command {
        // Command mode: the external installer decides; our copy becomes the next base only if it succeeded.
        let release = Release {
            sequence: record.sequence,
            target: record.target_hash,
            image: &out,
        };
        let image = [out.as_os_str()];
        if let Err(e) = run_command("installer", &command, &image, Some(release), timeout).await {
            // A verdict: remembered, so a restart does not try the release again.
            let reason = format!("{e}; the previous image still runs");
            if let Err(e) = state.record_rollback(&record.product, record.sequence, &reason) {
                tracing::warn!(error = %e, "cannot record the rollback");
            }
            return Ok(Outcome::Report(ReleaseInstalled::RolledBack {
                sequence: record.sequence,
                reason,
            }));
        }
        {
            let c = lock(&config)?;
            if let InstallTarget::Command { current, .. } = &c.target {
                std::fs::rename(&out, current).map_err(file(current))?;
            }
        }
        record_installed(&state, &record, installed);
        return Ok(Outcome::Report(ReleaseInstalled::Installed {
            sequence: record.sequence,
            hash,
        }));
    }

    // Slots mode: switch, check, and switch back if the new image is not healthy. A crash between the switch and
    // the end of the check leaves a marker, so the check runs at the next start.
    if health.is_some() {
        state.set_health_pending(&record.product, Some(record.sequence))?;
    }
    let sequence = record.sequence;
    let image = on_slots(&config, move |slots| {
        slots.commit(sequence, hash)?;
        Ok(slots.active_path())
    })
    .await;
    let image = match image {
        Ok(image) => image,
        Err(e) => {
            // The switch did not happen: nothing to check after a restart.
            let _ = state.set_health_pending(&record.product, None);
            return Err(e);
        }
    };
    // From here the slot pointer decides what runs; state writes that fail are caught up at the next start.
    pause_if_asked("switched");
    let health = match &health {
        Some(argv) => {
            let release = Release {
                sequence: record.sequence,
                target: record.target_hash,
                image: &image,
            };
            health_check(argv, release, timeout).await
        }
        None => Ok(()),
    };
    if let Err(e) = state.set_health_pending(&record.product, None) {
        tracing::warn!(error = %e, "cannot clear the health-check marker; the check runs again at the next start");
    }
    if let Err(failed) = health {
        let reason = failed.to_string();
        let (state, product, why) = (state.clone(), record.product, reason.clone());
        let rolled = on_slots(&config, move |slots| {
            roll_back(slots, &state, &product, sequence, &why)
        })
        .await;
        let reason = match rolled {
            Ok(prev) => format!(
                "{reason}; rolled back to release {} ({})",
                prev.sequence, prev.hash
            ),
            Err(e) => format!("{reason}; the rollback failed too: {e}"),
        };
        return Ok(Outcome::Report(ReleaseInstalled::RolledBack {
            sequence: record.sequence,
            reason,
        }));
    }
    record_installed(&state, &record, installed);
    Ok(Outcome::Report(ReleaseInstalled::Installed {
        sequence: record.sequence,
        hash,
    }))
}

/// How an install ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Reported to the Coordinator and the others.
    Report(ReleaseInstalled),
    /// Handed to RAUC/SWUpdate: the release waits for the reboot into its slot and is confirmed (or rolled back)
    /// at the next start. Nothing is reported, so nothing else is installed meanwhile.
    Waiting { sequence: Sequence },
}

/// Record what runs after the switch; a failed write is caught up from the slot pointer at the next start.
fn record_installed(state: &NodeState, record: &ReleaseRecord, installed: Installed) {
    if let Err(e) = state.set_installed(&record.product, installed) {
        tracing::warn!(error = %e, sequence = record.sequence.0, "cannot record the install; the next start catches up");
    }
}

/// The outcome of an install that returned `Err`: a transient fault is retried, a verdict is final.
fn failed(sequence: Sequence, error: InstallError) -> ReleaseInstalled {
    if error.is_transient() {
        ReleaseInstalled::Interrupted {
            sequence,
            error: Arc::new(error),
        }
    } else {
        ReleaseInstalled::RolledBack {
            sequence,
            reason: format!("{error}; the previous image still runs"),
        }
    }
}

impl Handler<InstallRelease> for Installer {
    type Result = ();

    fn handle(&mut self, msg: InstallRelease, ctx: &mut Context<Self>) {
        let record = msg.record;
        let sequence = record.sequence;
        let bundle = Cid::try_from(record.patch_cid.as_slice()).ok();
        tracing::info!(
            sequence = sequence.0,
            payload = crate::fetcher::entry_name(msg.payload),
            "installing"
        );
        let work = install(
            self.config.clone(),
            self.patcher.clone(),
            self.state.clone(),
            self.status.clone(),
            record,
            msg.payload,
            msg.root,
        );
        // One install at a time: the actor handles nothing else until this one ends.
        ctx.wait(work.into_actor(self).map(move |result, act, ctx| {
            let outcome = match result {
                Ok(Outcome::Report(o)) => o,
                Ok(Outcome::Waiting { sequence: waiting }) => {
                    tracing::info!(
                        sequence = sequence.0,
                        waiting = waiting.0,
                        "handed to the installer; waiting for the reboot into the new slot"
                    );
                    return;
                }
                Err(e) => failed(sequence, e),
            };
            match &outcome {
                ReleaseInstalled::Installed { hash, .. } => {
                    tracing::info!(sequence = sequence.0, %hash, "installed");
                    if let (Some(p2p), Some(root)) = (act.p2p.clone(), bundle) {
                        // Seed: announce the release's blocks so other devices can fetch them from here.
                        ctx.spawn(
                            async move {
                                if let Err(e) = p2p.provide(root).await {
                                    tracing::warn!(%root, error = %e, "cannot announce the release's blocks");
                                }
                            }
                            .into_actor(act),
                        );
                    }
                }
                ReleaseInstalled::RolledBack { reason, .. } => {
                    tracing::warn!(sequence = sequence.0, %reason, "install failed")
                }
                ReleaseInstalled::Interrupted { error, .. } => {
                    tracing::warn!(sequence = sequence.0, %error, "install interrupted; it is tried again later")
                }
            }
            act.status.do_send(StatusEvent::Installed(outcome.clone()));
            for to in &act.also {
                to.do_send(outcome.clone());
            }
            act.done.do_send(outcome);
        }));
    }
}

/// Command mode's base image: `current`, copied from `initial` on first start. Returns its blake3.
pub fn prepare_command_mode(current: &Path, initial: Option<&Path>) -> Result<Blake3Hash, InstallError> {
    if !current.exists() {
        let initial = initial.ok_or(InstallError::NoInitialImage)?;
        if let Some(dir) = current.parent() {
            std::fs::create_dir_all(dir).map_err(file(dir))?;
        }
        let tmp = current.with_extension("tmp");
        std::fs::copy(initial, &tmp).map_err(file(initial))?;
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(file(&tmp))?;
        std::fs::rename(&tmp, current).map_err(file(current))?;
    }
    let mut f = File::open(current).map_err(file(current))?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).map_err(file(current))?;
    Ok(Blake3Hash(*h.finalize().as_bytes()))
}

/// At start-up: if the node stopped after switching to a release and before its health check ended, run the
/// check now and roll back when it fails. Returns the release rolled back and why.
pub async fn check_after_restart(
    slots: &mut Slots,
    state: &NodeState,
    product: &ProductId,
    health: Option<&[String]>,
    timeout: Duration,
) -> Result<Option<(Sequence, String)>, InstallError> {
    let pending = state.health_pending(product)?;
    let active = slots.active();
    let (Some(sequence), Some(argv)) = (pending, health) else {
        return Ok(None);
    };
    if active.sequence != sequence {
        // The switch never happened: nothing to check.
        state.set_health_pending(product, None)?;
        return Ok(None);
    }
    let image = slots.active_path();
    let release = Release {
        sequence,
        target: active.hash,
        image: &image,
    };
    let checked = health_check(argv, release, timeout).await;
    let outcome = match checked {
        Ok(()) => None,
        Err(failed) => {
            let reason = failed.to_string();
            let why = format!("{reason} (checked after a restart)");
            let prev = roll_back(slots, state, product, sequence, &why)?;
            Some((
                sequence,
                format!("{why}; rolled back to release {} ({})", prev.sequence, prev.hash),
            ))
        }
    };
    state.set_health_pending(product, None)?;
    Ok(outcome)
}

/// Switch back to the previous image after release `sequence` failed its health check, remember never to try that
/// release again (and why), and record what runs now.
fn roll_back(
    slots: &mut Slots,
    state: &NodeState,
    product: &ProductId,
    sequence: Sequence,
    reason: &str,
) -> Result<crate::slots::Image, InstallError> {
    if let Err(e) = state.record_rollback(product, sequence, reason) {
        tracing::warn!(error = %e, "cannot record the rollback");
    }
    let prev = slots.rollback()?;
    let running = Installed {
        sequence: prev.sequence,
        hash: prev.hash,
    };
    state.set_installed(product, running)?;
    Ok(prev)
}

pub mod ab;

#[cfg(test)]
mod tests;
