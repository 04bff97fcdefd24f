//! The composition root: [`Node::start`] opens the state, reconciles the slots once, seeds the `UpdateMachine`,
//! starts P2P and the actors, and [`NodeHandle::stop`] stops them. `firmchain run` is a thin shell around it
//! (it adds the HTTP API, which it builds from the handle).
//!
//! Call it inside an actix `System` on a multi-threaded tokio runtime: the actors run on actix's arbiter,
//! networking and blocking file work on the runtime's threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Recipient, SyncArbiter};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use firmchain_config::{ChainMode, Config, InstallMode, InstallSettings, Invalid};
use firmchain_lightclient::client::ClientError;
use firmchain_lightclient::consensus::ChainSpec;
use firmchain_lightclient::execution_rpc::HttpExecutionRpc;
use firmchain_lightclient::rpc::{HttpRpc, RpcError};
use firmchain_p2p::{Blockstore, P2p, P2pConfig, ScheduleConfig};
use firmchain_update::machine::{Input, Installed, Policy, UpdateMachine};
use firmchain_update::{ProductId, Sequence};

use crate::coordinator::{Coordinator, CoordinatorPorts};
use crate::error::{FileError, InstallError, file};
use crate::fetcher::{BlockFetcher, Verifier};
use crate::installer::ab::{AbTarget, Bootloader};
use crate::installer::{
    InstallTarget, Installer, InstallerConfig, Patcher, check_after_restart, prepare_command_mode,
};
use crate::messages::{ReleaseInstalled, RollbackCause, StatusEvent};
use crate::proofs::{FollowerPorts, ProofBook, ProofFollower, ProofServing};
#[cfg(feature = "repository")]
use crate::publisher::Publisher;
use crate::slots::{SlotError, Slots};
use crate::state::{NodeState, StateError};
use crate::status::Status;
use crate::watcher::{IndexWatcher, Watcher};

/// The IndexWatcher of a running node (HTTP RPCs).
pub type NodeWatcher = IndexWatcher<HttpExecutionRpc, HttpRpc>;

/// Why the node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration: {0}")]
    Config(#[from] Invalid),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Watch(#[from] crate::watcher::WatchError),
    #[error("image slots: {0}")]
    Slots(#[from] SlotError),
    #[error("health check after a restart: {0}")]
    Restart(Box<InstallError>),
    #[error("the pending rauc/swupdate commit at start-up (install.mode): {0}")]
    Commit(Box<InstallError>),
    #[error("installed image: {0}")]
    Install(Box<InstallError>),
    #[error(transparent)]
    P2p(#[from] firmchain_p2p::P2pError),
    #[error(transparent)]
    Store(#[from] firmchain_p2p::StoreError),
    #[error(transparent)]
    Contract(#[from] firmchain_contracts::ContractError),
    #[error("execution RPC: {0}")]
    Rpc(RpcError),
    #[error(transparent)]
    Light(#[from] ClientError),
    #[error("chain.chain_config {path}: {message}")]
    ChainSpec { path: PathBuf, message: String },
    #[error("a repository node signs releases: set FIRMCHAIN_PRIVATE_KEY")]
    NoSigner,
    #[error("this build has no repository role (a device build): build with the cargo feature `publisher`")]
    NoRepositoryRole,
}

/// What [`Node::start`] needs: a validated configuration, the libp2p settings made from it (callers may adjust
/// them, e.g. tests of hostile peers), and the repository's signer.
#[derive(Debug)]
pub struct NodeConfig {
    /// The configuration (already validated by `Config::load`).
    pub config: Config,
    /// The libp2p node's settings, from [`p2p_config`].
    pub p2p: P2pConfig,
    /// The repository role's signing key.
    pub signer: Option<PrivateKeySigner>,
}

impl NodeConfig {
    /// The settings of `config`, with the libp2p settings made from it.
    pub fn new(config: Config, signer: Option<PrivateKeySigner>) -> Result<NodeConfig, NodeError> {
        let p2p = p2p_config(&config)?;
        Ok(NodeConfig { config, p2p, signer })
    }
}

/// The libp2p settings of `config`.
pub fn p2p_config(config: &Config) -> Result<P2pConfig, NodeError> {
    let settings = config.validate()?;
    let defaults = P2pConfig::default();
    Ok(P2pConfig {
        listen: settings.listen,
        bootstrap: settings.bootstrap,
        mdns: config.p2p.mdns,
        max_connections: config.p2p.max_connections,
        reserved_outbound: config.p2p.reserved_outbound,
        max_connections_per_ip: config.p2p.max_connections_per_ip,
        // A repository sends each block once and lets the devices share it; a device that finds no other
        // holder within a second gets it from the repository.
        seed_window: config.repository.then_some(Duration::from_secs(1)),
        fetch: firmchain_p2p::FetchOptions {
            // Devices announce a release as soon as they hold its first block, so the others find them.
            announce: true,
            stall_timeout: Duration::from_secs(config.p2p.stall_timeout_secs),
            schedule: fetch_schedule(config.p2p.fetch_window, defaults.fetch.schedule),
            ..defaults.fetch.clone()
        },
        ..defaults
    })
}

/// The fetch window of `p2p.fetch_window`: the most blocks in flight per fetch (all peers together, so one peer
/// may have all of them). 0 (not set): a device build (no `repository` feature) keeps [`DEVICE_FETCH_WINDOW`] blocks
/// in flight, the full build the p2p defaults (`defaults`), so fleet fetches on the full build stay as fast.
///
/// [`DEVICE_FETCH_WINDOW`]: firmchain_config::DEVICE_FETCH_WINDOW
pub fn fetch_schedule(window: u32, defaults: ScheduleConfig) -> ScheduleConfig {
    let window = match window {
        0 if cfg!(feature = "repository") => return defaults,
        0 => firmchain_config::DEVICE_FETCH_WINDOW as usize,
        w => w as usize,
    };
    ScheduleConfig {
        window,
        max_in_flight: window,
        ..defaults
    }
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    /// The product it follows.
    pub product: ProductId,
    /// Whether it publishes too.
    pub repository: bool,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// The libp2p node.
    pub p2p: P2p,
    /// What the actors report.
    pub status: Addr<Status>,
    /// The device's update policy (none on a repository).
    pub coordinator: Option<Addr<Coordinator>>,
    /// The publisher (repository role).
    #[cfg(feature = "repository")]
    pub publisher: Option<Addr<Publisher>>,
    /// The index watcher (none in `peers` mode).
    pub watcher: Option<Addr<NodeWatcher>>,
    /// The proof follower (`peers` mode).
    pub follower: Option<Addr<ProofFollower>>,
    /// A damaged slot found and left behind at start.
    pub recovered: Option<String>,
    /// How the index is read (`rpc` or `light`).
    pub chain_mode: ChainMode,
    /// The event metrics (`firmchain_*`, kept by the Status actor) and libp2p's own (`libp2p_*`).
    pub metrics: Arc<prometheus_client::registry::Registry>,
}

/// The composition root.
#[derive(Debug)]
pub struct Node;

/// Where images go and what runs, at start-up.
struct Opened {
    target: InstallTarget,
    installed: Installed,
    /// A damaged slot that was found and left behind.
    recovered: Option<String>,
    /// A release rolled back at start: by a health check that a crash had cut short (slots), or on the new boot
    /// (a bootloader fallback or a failed health check, rauc and swupdate modes).
    checked: Option<(Sequence, String, RollbackCause)>,
    /// The two-phase commit's state (rauc and swupdate modes).
    commit: Option<crate::status::CommitView>,
    /// Where the Patcher writes images of command and two-phase modes.
    staging: PathBuf,
}

/// Payloads used to be copied out of the blockstore into `downloads/`; the Patcher now reads them in place.
fn remove_old_downloads(dir: &Path) {
    let old = dir.join("downloads");
    if old.is_dir() {
        match std::fs::remove_dir_all(&old) {
            Ok(()) => tracing::info!(path = %old.display(), "removed the old downloads folder"),
            Err(e) => {
                tracing::warn!(path = %old.display(), error = %e, "cannot remove the old downloads folder")
            }
        }
    }
}

fn mkdir(p: &Path) -> Result<PathBuf, FileError> {
    std::fs::create_dir_all(p).map_err(file(p))?;
    Ok(p.to_owned())
}

/// The installed image at start-up, reconciling the state store with the slots once (the slot pointer is the
/// truth: a crash between the switch and the state write leaves the store one step behind).
async fn open_install(
    config: &Config,
    settings: &InstallSettings,
    dir: &Path,
    state: &NodeState,
    product: &ProductId,
) -> Result<Opened, NodeError> {
    let install = &config.install;
    let timeout = Duration::from_secs(install.health_timeout_secs);
    let staging = dir.join("image").join("staging.bin");
    match install.mode {
        InstallMode::Slots => {
            let recorded = state.installed(product)?;
            let mut slots = Slots::open(&dir.join("slots"), install.initial_image.as_deref())?;
            let checked = check_after_restart(
                &mut slots,
                state,
                product,
                settings.health_check.as_deref(),
                timeout,
            )
            .await
            .map_err(|e| NodeError::Restart(Box::new(e)))?;
            let active = slots.active();
            let installed = Installed {
                sequence: active.sequence,
                hash: active.hash,
            };
            if recorded != Some(installed) {
                state.set_installed(product, installed)?;
            }
            let recovered = slots.recovered.clone();
            Ok(Opened {
                target: InstallTarget::Slots(slots),
                installed,
                recovered,
                checked: checked.map(|(seq, why)| (seq, why, RollbackCause::HealthCheck)),
                commit: None,
                staging,
            })
        }
        InstallMode::Command => {
            let current = dir.join("image").join("current.bin");
            let installed = command_base(&current, install.initial_image.as_deref(), state, product)?;
            let command = settings.command.clone().unwrap_or_default();
            Ok(Opened {
                target: InstallTarget::Command { command, current },
                installed,
                recovered: None,
                checked: None,
                commit: None,
                staging,
            })
        }
        InstallMode::Rauc | InstallMode::Swupdate => {
            let ab = ab_target(config, settings, dir);
            // The bootloader decides first (confirm, reject, fallback), then what runs is read back.
            let reconciled = crate::installer::ab::reconcile(
                &ab,
                state,
                product,
                settings.health_check.as_deref(),
                timeout,
            )
            .await
            .map_err(|e| NodeError::Commit(Box::new(e)))?;
            let installed = command_base(&ab.current, install.initial_image.as_deref(), state, product)?;
            let staging = ab.staging.clone();
            Ok(Opened {
                target: InstallTarget::TwoPhase(ab),
                installed,
                recovered: None,
                checked: reconciled.rolled_back.map(|(seq, why)| {
                    let cause = if reconciled.fell_back {
                        RollbackCause::BootFallback
                    } else {
                        RollbackCause::HealthCheck
                    };
                    (seq, why, cause)
                }),
                commit: reconciled.commit,
                staging,
            })
        }
    }
}

/// The base image of command and two-phase modes (`current`, from `initial` on first start) and the release it
/// is, from the state store (0 when the store names another image).
fn command_base(
    current: &Path,
    initial: Option<&Path>,
    state: &NodeState,
    product: &ProductId,
) -> Result<Installed, NodeError> {
    let hash = prepare_command_mode(current, initial).map_err(|e| NodeError::Install(Box::new(e)))?;
    let sequence = state
        .installed(product)?
        .filter(|r| r.hash == hash)
        .map_or(Sequence(0), |r| r.sequence);
    Ok(Installed { sequence, hash })
}

/// RAUC or SWUpdate as `[install]` configures them; bundles keep the suffix their installer expects.
fn ab_target(config: &Config, settings: &InstallSettings, dir: &Path) -> AbTarget {
    let install = &config.install;
    let (bootloader, suffix) = match install.mode {
        InstallMode::Swupdate => (
            Bootloader::Swupdate {
                swupdate: settings.swupdate.clone(),
                printenv: settings.fw_printenv.clone(),
                setenv: settings.fw_setenv.clone(),
                slot_variable: install.slot_variable.clone(),
                confirm: settings.confirm_env.clone(),
                reject: settings.reject_env.clone(),
                select: install.swupdate_select.clone(),
            },
            "swu",
        ),
        _ => (
            Bootloader::Rauc {
                rauc: settings.rauc.clone(),
            },
            "raucb",
        ),
    };
    let image = dir.join("image");
    AbTarget {
        bootloader,
        install_args: install.install_args.clone(),
        install_timeout: Duration::from_secs(install.install_timeout_secs),
        reboot: settings.reboot.clone(),
        boot_id: install.boot_id.clone(),
        current: image.join("current.bin"),
        staging: image.join(format!("staging.{suffix}")),
        pending: image.join(format!("pending.{suffix}")),
    }
}

/// The consensus chain: a config file, or Ethereum mainnet.
pub fn chain_spec(path: Option<&Path>) -> Result<ChainSpec, NodeError> {
    match path {
        None => Ok(ChainSpec::mainnet()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(file(p))?;
            ChainSpec::from_config(&text).map_err(|message| NodeError::ChainSpec {
                path: p.to_owned(),
                message: message.to_string(),
            })
        }
    }
}

/// HTTP settings of the RPC clients: the per-call timeout and the operator's CA file.
pub(crate) fn http_options(config: &Config) -> firmchain_lightclient::http::HttpOptions {
    firmchain_lightclient::http::HttpOptions {
        timeout: Some(Duration::from_secs(config.chain.timeout_secs)),
        ca_file: config.chain.ca_file.clone(),
    }
}

/// The consensus chain of `config`: a named network or a config file (else mainnet).
pub fn configured_spec(config: &Config) -> Result<ChainSpec, NodeError> {
    light::spec_of(&config.chain)
}

/// A `peers`-mode device's proof book: its checkpoint, contract and product, restored from the state (and
/// verified again) when it holds proofs.
pub fn peer_book(
    config: &Config,
    checkpoint: Option<[u8; 32]>,
    index: Address,
    product: ProductId,
    state: &NodeState,
) -> Result<ProofBook, NodeError> {
    let checkpoint = checkpoint.ok_or_else(|| {
        NodeError::Config(Invalid {
            key: "chain.checkpoint",
            problem: "peers mode needs a trusted checkpoint".into(),
            layer: None,
        })
    })?;
    let mut book = ProofBook::new(configured_spec(config)?, checkpoint, index, product);
    if let Some(saved) = state.proofs()?
        && let Err(e) = book.restore(&saved, crate::unix_now())
    {
        // Proofs that verified once and no longer do (another checkpoint configured): start over from peers.
        tracing::warn!(error = %e, "the saved proofs do not verify from the configured checkpoint; syncing from peers");
        book = ProofBook::new(configured_spec(config)?, checkpoint, index, product);
    }
    Ok(book)
}

impl Node {
    /// Start a node: open its state (refusing a damaged one), reconcile the slots, start P2P and the actors.
    pub async fn start(node: NodeConfig) -> Result<NodeHandle, NodeError> {
        let NodeConfig { config, p2p, signer } = node;
        let settings = config.validate()?;
        if config.repository && cfg!(not(feature = "repository")) {
            return Err(NodeError::NoRepositoryRole);
        }
        if config.repository && signer.is_none() {
            return Err(NodeError::NoSigner);
        }
        let product = settings.product;
        let index = Address::from(settings.contract);
        let dir = mkdir(&config.data_dir)?;
        #[cfg(feature = "repository")]
        let timeout = Duration::from_secs(config.chain.timeout_secs);
        let state = NodeState::open(&dir.join("state.redb"))?;
        state.check()?;
        let state = Arc::new(state);

        let key = firmchain_p2p::load_or_create_identity(&dir.join("identity.key"))?;
        let budget = config.p2p.store_budget_mib.saturating_mul(1 << 20);
        let store = Arc::new(Blockstore::open(&dir.join("blocks.redb"), budget)?);
        let mut registry = prometheus_client::registry::Registry::default();
        let (p2p, _task) = P2p::start_with_metrics(p2p, key, store, &mut registry).await?;
        let metrics = crate::metrics::Metrics::register(&mut registry);

        let opened = if config.repository {
            None
        } else {
            Some(open_install(&config, &settings.install, &dir, &state, &product).await?)
        };
        let recovered = opened.as_ref().and_then(|o| o.recovered.clone());
        if let Some(r) = &recovered {
            tracing::warn!("{r}");
        }
        let (source, blocked) = light::header_source(&config, settings.checkpoint, &state).await?;
        let warnings = if config.chain.force_update && config.chain.mode == ChainMode::Light {
            tracing::warn!("{FORCE_UPDATE_WARNING}");
            vec![FORCE_UPDATE_WARNING.to_owned()]
        } else {
            Vec::new()
        };
        let status = Status::new(recovered.clone())
            .chain_blocked(blocked)
            .warnings(warnings)
            .with_metrics(metrics)
            .start();
        if let Some(commit) = opened.as_ref().and_then(|o| o.commit.clone()) {
            status.do_send(StatusEvent::Commit(commit));
        }
        if let Some((sequence, reason, cause)) = opened.as_ref().and_then(|o| o.checked.clone()) {
            tracing::warn!(sequence = sequence.0, %reason, "rolled back at start-up");
            status.do_send(StatusEvent::Installed(ReleaseInstalled::RolledBack {
                sequence,
                reason,
                cause,
            }));
        }

        #[cfg(feature = "repository")]
        let publisher = if config.repository {
            let signer = signer.ok_or(NodeError::NoSigner)?;
            let provider = firmchain_contracts::provider(&config.chain.execution_rpc[0], Some(signer))?;
            let client = firmchain_contracts::IndexClient::connect(provider, index, timeout).await?;
            Some((client, mkdir(&dir.join("releases"))?))
        } else {
            None
        };

        // The watcher's (or follower's) address first: the Installer tells it of installs.
        let peers_mode = config.chain.mode == ChainMode::Peers;
        // Light mode with chain.peers_fallback: the watcher reports through a follower (proofs::fallback).
        let fallback = config.chain.peers_fallback && config.chain.mode == ChainMode::Light;
        let watcher_ctx: Context<NodeWatcher> = Context::new();
        let follower_ctx: Context<ProofFollower> = Context::new();
        let to_watcher: Recipient<ReleaseInstalled> = if peers_mode || fallback {
            follower_ctx.address().recipient()
        } else {
            watcher_ctx.address().recipient()
        };
        let installed = match &opened {
            Some(o) => o.installed.sequence,
            None => state.installed(&product)?.map_or(Sequence(0), |i| i.sequence),
        };
        let coordinator = match opened {
            None => None,
            Some(opened) => {
                let name = match config.device.name.as_str() {
                    "" => p2p.peer_id().to_string(),
                    n => n.to_owned(),
                };
                let device = Device {
                    state: &state,
                    p2p: &p2p,
                    status: &status,
                    to_watcher: to_watcher.clone(),
                    who: firmchain_update::rollout::Device {
                        id: firmchain_update::rollout::DeviceId::from_name(&name),
                        class: settings.hardware_class,
                    },
                };
                tracing::info!(device = %name, hardware = ?settings.hardware_class, "rollout identity");
                Some(start_device(
                    &config,
                    &settings.install,
                    &dir,
                    product,
                    opened,
                    device,
                )?)
            }
        };

        let (seen, revoked) = match &coordinator {
            Some(c) => (Some(c.clone().recipient()), Some(c.clone().recipient())),
            None => (None, None),
        };
        let interval = Duration::from_secs(config.chain.poll_interval_secs);
        let follower = if peers_mode || fallback {
            let book = peer_book(&config, settings.checkpoint, index, product, &state)?;
            let ports = FollowerPorts {
                seen: seen.clone(),
                revoked: revoked.clone(),
                rollout: coordinator.as_ref().map(|c| c.clone().recipient()),
                status: status.clone().recipient(),
            };
            let proofs = p2p.proofs().clone();
            let mut follower = ProofFollower::new(book, installed, proofs, state.clone(), ports, interval);
            if fallback {
                let behind = config.chain.max_staleness_secs / 2;
                follower = follower.with_fallback(behind, watcher_ctx.address().recipient());
            }
            Some(follower_ctx.run(follower))
        } else {
            None
        };
        let watcher = if peers_mode {
            None
        } else {
            let rpc =
                HttpExecutionRpc::with_options(config.chain.execution_rpc.clone(), &http_options(&config))
                    .map_err(NodeError::Rpc)?;
            let mut w = Watcher::new(rpc, index, product, source, state.clone(), installed)?
                .with_scan(config.chain.from_block, config.chain.log_range);
            let serve = config.chain.serve_proofs.serves(config.repository);
            if let (true, ChainMode::Light, Some(checkpoint)) =
                (serve, config.chain.mode, settings.checkpoint)
            {
                tracing::info!(target: "firmchain::proofs", "serving chain proofs to peers");
                w = w.with_proof_serving(ProofServing::new(p2p.proofs().clone(), checkpoint));
            }
            let (to_status, to_rollout) = match (&follower, &coordinator) {
                (Some(f), _) => (f.clone().recipient(), Some(f.clone().recipient())),
                (None, c) => (
                    status.clone().recipient(),
                    c.as_ref().map(|c| c.clone().recipient()),
                ),
            };
            let mut watcher = IndexWatcher::new(w, interval, seen, revoked, to_status);
            if let Some(to) = to_rollout {
                watcher = watcher.with_rollout(to);
            }
            Some(watcher_ctx.run(watcher))
        };
        #[cfg(feature = "repository")]
        let publisher = publisher.map(|(client, releases)| {
            Publisher::new(
                p2p.clone(),
                client,
                releases,
                watcher.as_ref().map(|w| w.clone().recipient()),
                status.clone().recipient(),
            )
            .start()
        });
        Ok(NodeHandle {
            product,
            repository: config.repository,
            data_dir: dir,
            p2p,
            status,
            coordinator,
            #[cfg(feature = "repository")]
            publisher,
            watcher,
            follower,
            recovered,
            chain_mode: config.chain.mode,
            metrics: Arc::new(registry),
        })
    }
}

/// The device's pipeline: Verifier, Patcher, BlockFetcher, Installer and the Coordinator, its machine seeded with
/// what runs and what was rolled back here.
/// What the device's pipeline shares with the rest of the node.
struct Device<'a> {
    state: &'a Arc<NodeState>,
    p2p: &'a P2p,
    status: &'a Addr<Status>,
    to_watcher: Recipient<ReleaseInstalled>,
    /// Who the device is for rollouts (its id and hardware class).
    who: firmchain_update::rollout::Device,
}

fn start_device(
    config: &Config,
    install: &InstallSettings,
    dir: &Path,
    product: ProductId,
    opened: Opened,
    device: Device<'_>,
) -> Result<Addr<Coordinator>, NodeError> {
    let Device {
        state,
        p2p,
        status,
        to_watcher,
        who,
    } = device;
    let verifier = SyncArbiter::start(1, || Verifier);
    let patcher = SyncArbiter::start(1, || Patcher);
    remove_old_downloads(dir);
    let rolled_back = state.rolled_back(&product)?;
    let installer_config = InstallerConfig {
        target: opened.target,
        health_check: install.health_check.clone(),
        health_timeout: Duration::from_secs(config.install.health_timeout_secs),
        staging: opened.staging,
        store: p2p.store().clone(),
    };
    let (p2p, state, status) = (p2p.clone(), state.clone(), status.clone());
    let stall = Duration::from_secs(config.p2p.stall_timeout_secs);
    let installed = opened.installed;
    Ok(Coordinator::create(move |ctx| {
        let me = ctx.address();
        let fetcher = BlockFetcher::new(
            p2p.clone(),
            verifier,
            stall,
            me.clone().recipient(),
            status.clone().recipient(),
        )
        .start();
        let installer = Installer::new(
            installer_config,
            patcher,
            state,
            Some(p2p),
            me.clone().recipient(),
            status.recipient(),
        )
        .notify(to_watcher)
        .start();
        let mut machine = UpdateMachine::new(product, installed, Policy::default()).with_rollout(who);
        for r in rolled_back {
            machine.handle(Input::RolledBack {
                sequence: Sequence(r.sequence),
            });
        }
        Coordinator::new(
            machine,
            CoordinatorPorts {
                fetch: fetcher.clone().recipient(),
                cancel: fetcher.recipient(),
                install: installer.recipient(),
            },
            Duration::from_secs(1),
        )
    }))
}

impl NodeHandle {
    /// Stop the node: the libp2p node shuts down, the actors stop with the actix system.
    pub async fn stop(self) {
        tracing::info!("stopping");
        if let Err(e) = self.p2p.shutdown().await {
            tracing::warn!(error = %e, "stopping the p2p node");
        }
        drop(self.watcher);
        drop(self.follower);
        actix::System::current().stop();
    }
}

mod light;
pub use light::{FORCE_UPDATE_WARNING, spec_of, too_old_message};

#[cfg(test)]
mod tests;
