//! The Patcher and the Installer.
//!
//! The Patcher (CPU work on a `SyncArbiter`) applies a verified payload to the running image, streaming the
//! result into the inactive slot (or a staging file) with bounded memory and checking the result against the
//! record's `target_hash` and `target_size`. The Installer then switches slots atomically, runs the health
//! check and rolls back when it fails (slots mode), or hands the image to an external installer (command mode).
//! Every outcome is recorded in the node state and reported to the Coordinator.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, SyncContext, WrapFuture,
};
use cid::Cid;
use firmchain_p2p::P2p;
use firmchain_update::machine::Payload;
use firmchain_update::patch::{self, ApplyLimits};
use firmchain_update::{Blake3Hash, ProductId, ReleaseRecord, Sequence};

use crate::fetcher::download_path;
use crate::messages::{InstallRelease, ReleaseInstalled, StatusEvent};
use crate::slots::Slots;
use crate::state::{NodeState, ProductState};

/// The environment variable that pauses the node at a named point of an install (`patching`, `switched`), so
/// tests can kill it there. The node prints `paused at <point>` to stderr and waits forever.
pub const PAUSE_ENV: &str = "FIRMCHAIN_TEST_PAUSE_AT";

fn pause_if_asked(point: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|p| p == point) {
        eprintln!("firmchain: paused at {point}");
        loop {
            std::thread::park();
        }
    }
}

/// Patcher ← Installer: apply `payload` to `base`, writing the image to `out`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Blake3Hash, String>")]
pub struct ApplyPayload {
    /// The running image.
    pub base: PathBuf,
    /// The verified payload (a patch, or a compressed full image).
    pub payload: PathBuf,
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

/// Apply a payload (see [`ApplyPayload`]); the output is synced to disk before this returns.
pub fn apply_payload(msg: &ApplyPayload) -> Result<Blake3Hash, String> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| format!("{p}: {e}")
    };
    let base = File::open(&msg.base).map_err(io(&msg.base))?;
    let payload = File::open(&msg.payload).map_err(io(&msg.payload))?;
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&msg.out)
        .map_err(io(&msg.out))?;
    let mut w = BufWriter::new(out);
    let limits = ApplyLimits {
        expect_target: Some(msg.target_hash),
        expect_size: Some(msg.target_size),
        ..ApplyLimits::default()
    };
    let half = msg.target_size / 2;
    let mut paused = false;
    let applied = patch::apply(base, payload, &mut w, &limits, |written| {
        if !paused && written >= half {
            paused = true;
            pause_if_asked("patching");
        }
    })
    .map_err(|e| e.to_string())?;
    let out = w
        .into_inner()
        .map_err(|e| format!("{}: {}", msg.out.display(), e.error()))?;
    out.sync_all().map_err(io(&msg.out))?;
    Ok(applied.target_hash)
}

impl Handler<ApplyPayload> for Patcher {
    type Result = Result<Blake3Hash, String>;

    fn handle(&mut self, msg: ApplyPayload, _: &mut SyncContext<Self>) -> Result<Blake3Hash, String> {
        apply_payload(&msg)
    }
}

/// Where images go.
#[derive(Debug)]
pub enum InstallTarget {
    /// A/B slots with an atomic pointer and a health check.
    Slots(Slots),
    /// An external installer: `command` gets the image path as its last argument. `current` keeps a copy of the
    /// installed image as the base for the next patch.
    Command { command: String, current: PathBuf },
}

/// What the Installer needs.
#[derive(Debug)]
pub struct InstallerConfig {
    /// Where images go.
    pub target: InstallTarget,
    /// A shell command that must exit 0 after a slot switch.
    pub health_check: Option<String>,
    /// How long the health check may take.
    pub health_timeout: Duration,
    /// Where the BlockFetcher leaves verified payloads.
    pub downloads: PathBuf,
    /// A scratch file for command mode.
    pub staging: PathBuf,
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
}

impl Installer {
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
        }
    }
}

impl Actor for Installer {
    type Context = Context<Self>;
}

/// Run `sh -c script` with the image's details in its environment; `Err` says why it failed.
async fn run_script(
    what: &str,
    script: &str,
    args: &[&Path],
    (sequence, target): (Sequence, Blake3Hash),
    image: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(script).arg("sh").args(args);
    cmd.env("FIRMCHAIN_IMAGE", image)
        .env("FIRMCHAIN_SEQUENCE", sequence.0.to_string())
        .env("FIRMCHAIN_TARGET_HASH", target.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the {what} {script:?}: {e}"))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(format!("the {what} did not finish within {timeout:?}")),
        Ok(Err(e)) => Err(format!("the {what} failed to run: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
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
            Err(format!("the {what} exited with {status}{tail}"))
        }
    }
}

fn lock(c: &Mutex<InstallerConfig>) -> Result<std::sync::MutexGuard<'_, InstallerConfig>, String> {
    c.lock().map_err(|_| "installer state poisoned".to_owned())
}

/// Run `f` on the slots, off the async threads.
async fn on_slots<T: Send + 'static>(
    config: &Arc<Mutex<InstallerConfig>>,
    f: impl FnOnce(&mut Slots) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let config = config.clone();
    blocking(move || {
        let mut c = lock(&config)?;
        let InstallTarget::Slots(slots) = &mut c.target else {
            return Err("not in slots mode".into());
        };
        f(slots)
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("install task: {e}"))?
}

async fn install(
    config: Arc<Mutex<InstallerConfig>>,
    patcher: Addr<Patcher>,
    state: Arc<NodeState>,
    record: ReleaseRecord,
    payload: Payload,
) -> Result<ReleaseInstalled, String> {
    let (base, out, downloads, health, timeout, command) = {
        let c = lock(&config)?;
        let (base, out, command) = match &c.target {
            InstallTarget::Slots(slots) => {
                let (path, _file) = slots.begin().map_err(|e| e.to_string())?;
                (slots.active_path(), path, None)
            }
            InstallTarget::Command { command, current } => {
                (current.clone(), c.staging.clone(), Some(command.clone()))
            }
        };
        (
            base,
            out,
            c.downloads.clone(),
            c.health_check.clone(),
            c.health_timeout,
            command,
        )
    };
    let payload_file = download_path(&downloads, record.sequence, payload);
    let hash = patcher
        .send(ApplyPayload {
            base,
            payload: payload_file.clone(),
            out: out.clone(),
            target_hash: record.target_hash,
            target_size: record.target_size,
        })
        .await
        .map_err(|e| format!("patcher: {e}"))?
        .map_err(|e| {
            format!(
                "applying the {} of release {}: {e}",
                crate::fetcher::entry_name(payload),
                record.sequence
            )
        })?;

    let installed = ProductState {
        sequence: record.sequence,
        hash,
        floor: Sequence(record.min_sequence),
    };
    if let Some(command) = command {
        // Command mode: the external installer decides; our copy becomes the next base only if it succeeded.
        let script = format!("{command} \"$1\"");
        let what = (record.sequence, record.target_hash);
        run_script("installer", &script, &[&out], what, &out, timeout).await?;
        let c = lock(&config)?;
        if let InstallTarget::Command { current, .. } = &c.target {
            std::fs::rename(&out, current).map_err(|e| format!("{}: {e}", current.display()))?;
        }
        drop(c);
        state
            .set_product(&record.product, installed)
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&payload_file);
        return Ok(ReleaseInstalled::Installed {
            sequence: record.sequence,
            hash,
        });
    }

    // Slots mode: switch, check, and switch back if the new image is not healthy. A crash between the switch and
    // the end of the check leaves a marker, so the check runs at the next start.
    if health.is_some() {
        set_health_pending(&state, &record.product, Some(record.sequence)).map_err(|e| e.to_string())?;
    }
    let sequence = record.sequence;
    let image = on_slots(&config, move |slots| {
        slots.commit(sequence, hash).map_err(|e| e.to_string())?;
        Ok(slots.active_path())
    })
    .await?;
    pause_if_asked("switched");
    let health = match &health {
        Some(script) => {
            let what = (record.sequence, record.target_hash);
            run_script("health check", script, &[], what, &image, timeout).await
        }
        None => Ok(()),
    };
    let _ = set_health_pending(&state, &record.product, None);
    if let Err(reason) = health {
        let (state, product) = (state.clone(), record.product);
        let rolled = on_slots(&config, move |slots| roll_back(slots, &state, &product, sequence)).await;
        let reason = match rolled {
            Ok(prev) => format!(
                "{reason}; rolled back to release {} ({})",
                prev.sequence, prev.hash
            ),
            Err(e) => format!("{reason}; the rollback failed too: {e}"),
        };
        return Ok(ReleaseInstalled::RolledBack {
            sequence: record.sequence,
            reason,
        });
    }
    state
        .set_product(&record.product, installed)
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&payload_file);
    Ok(ReleaseInstalled::Installed {
        sequence: record.sequence,
        hash,
    })
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
            record,
            msg.payload,
        );
        // One install at a time: the actor handles nothing else until this one ends.
        ctx.wait(work.into_actor(self).map(move |result, act, ctx| {
            let outcome = result.unwrap_or_else(|reason| ReleaseInstalled::RolledBack {
                sequence,
                reason: format!("{reason}; the previous image still runs"),
            });
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
            }
            act.status.do_send(StatusEvent::Installed(outcome.clone()));
            act.done.do_send(outcome);
        }));
    }
}

/// Command mode's base image: `current`, copied from `initial` on first start. Returns its blake3.
pub fn prepare_command_mode(current: &Path, initial: Option<&Path>) -> Result<Blake3Hash, String> {
    if !current.exists() {
        let initial =
            initial.ok_or("install.initial_image is needed on first start (no image installed yet)")?;
        if let Some(dir) = current.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let tmp = current.with_extension("tmp");
        std::fs::copy(initial, &tmp).map_err(|e| format!("{}: {e}", initial.display()))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, current).map_err(|e| format!("{}: {e}", current.display()))?;
    }
    let mut f = File::open(current).map_err(|e| format!("{}: {e}", current.display()))?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("{}: {e}", current.display()))?;
    let _ = h.flush();
    Ok(Blake3Hash(*h.finalize().as_bytes()))
}

fn pending_key(product: &ProductId) -> String {
    format!("health_pending/{product}")
}

fn set_health_pending(
    state: &NodeState,
    product: &ProductId,
    sequence: Option<Sequence>,
) -> Result<(), crate::state::StateError> {
    let value = sequence.map_or_else(Vec::new, |s| s.0.to_le_bytes().to_vec());
    state.set_meta(&pending_key(product), &value)
}

/// At start-up: if the node stopped after switching to a release and before its health check ended, run the
/// check now and roll back when it fails. Returns the release rolled back and why.
pub async fn check_after_restart(
    slots: &mut Slots,
    state: &NodeState,
    product: &ProductId,
    health: Option<&str>,
    timeout: Duration,
) -> Result<Option<(Sequence, String)>, String> {
    let raw = state.meta(&pending_key(product)).map_err(|e| e.to_string())?;
    let pending = raw
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(|b| Sequence(u64::from_le_bytes(b)));
    let active = slots.active();
    let (Some(sequence), Some(script)) = (pending, health) else {
        return Ok(None);
    };
    if active.sequence != sequence {
        // The switch never happened: nothing to check.
        set_health_pending(state, product, None).map_err(|e| e.to_string())?;
        return Ok(None);
    }
    let image = slots.active_path();
    let checked = run_script(
        "health check",
        script,
        &[],
        (sequence, active.hash),
        &image,
        timeout,
    )
    .await;
    let outcome = match checked {
        Ok(()) => None,
        Err(reason) => {
            let prev = roll_back(slots, state, product, sequence)
                .map_err(|e| format!("{reason}; the rollback failed too: {e}"))?;
            Some((
                sequence,
                format!(
                    "{reason} (checked after a restart); rolled back to release {} ({})",
                    prev.sequence, prev.hash
                ),
            ))
        }
    };
    set_health_pending(state, product, None).map_err(|e| e.to_string())?;
    Ok(outcome)
}

/// Switch back to the previous image after release `sequence` failed its health check, remember never to try that
/// release again, and record what runs now.
fn roll_back(
    slots: &mut Slots,
    state: &NodeState,
    product: &ProductId,
    sequence: Sequence,
) -> Result<crate::slots::Image, String> {
    if let Err(e) = record_rollback(state, product, sequence) {
        tracing::warn!(error = %e, "cannot record the rollback");
    }
    let prev = slots.rollback().map_err(|e| e.to_string())?;
    let running = ProductState {
        sequence: prev.sequence,
        hash: prev.hash,
        floor: Sequence(0),
    };
    state.set_product(product, running).map_err(|e| e.to_string())?;
    Ok(prev)
}

fn rollback_key(product: &ProductId) -> String {
    format!("rolled_back/{product}")
}

/// Releases of `product` rolled back on this device (never retried, also after a restart).
pub fn rolled_back(
    state: &NodeState,
    product: &ProductId,
) -> Result<Vec<Sequence>, crate::state::StateError> {
    let raw = state.meta(&rollback_key(product))?.unwrap_or_default();
    let seqs: Vec<u64> = serde_json::from_slice(&raw).unwrap_or_default();
    Ok(seqs.into_iter().map(Sequence).collect())
}

fn record_rollback(
    state: &NodeState,
    product: &ProductId,
    sequence: Sequence,
) -> Result<(), crate::state::StateError> {
    let mut seqs: Vec<u64> = rolled_back(state, product)?.into_iter().map(|s| s.0).collect();
    if !seqs.contains(&sequence.0) {
        seqs.push(sequence.0);
    }
    state.set_meta(
        &rollback_key(product),
        &serde_json::to_vec(&seqs).unwrap_or_default(),
    )
}
