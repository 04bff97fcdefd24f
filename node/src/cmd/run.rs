//! `firmchain run`: one node, device or repository role, wired from the configuration.
//!
//! The actors run on actix's local set; networking, the API and blocking file work run on a two-thread tokio
//! runtime beside it. SIGTERM or Ctrl-C stops the node gracefully.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, SyncArbiter};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use firmchain_actors::coordinator::{Coordinator, CoordinatorPorts};
use firmchain_actors::fetcher::{BlockFetcher, Verifier};
use firmchain_actors::installer::{InstallTarget, Installer, InstallerConfig, Patcher, prepare_command_mode};
use firmchain_actors::publisher::Publisher;
use firmchain_actors::slots::Slots;
use firmchain_actors::state::{NodeState, ProductState};
use firmchain_actors::status::Status;
use firmchain_actors::unix_now;
use firmchain_actors::watcher::{HeaderSource, IndexWatcher, LIGHT_CLIENT_KEY, Watcher};
use firmchain_config::{ChainMode, Config, InstallMode, Sources};
use firmchain_lightclient::client::{LightClient, Persisted};
use firmchain_lightclient::execution_rpc::HttpExecutionRpc;
use firmchain_lightclient::rpc::HttpRpc;
use firmchain_p2p::{Blockstore, P2p, P2pConfig};
use firmchain_update::machine::{Input, Installed, Policy, UpdateMachine};
use firmchain_update::{ProductId, Sequence};
use serde_json::json;

use crate::api::{self, ApiState};
use crate::cli::RunArgs;
use crate::error::CliError;
use crate::output::Output;

/// Load the configuration: defaults → `--config` → `FIRMCHAIN_*` environment → `--set` and flags.
pub fn load_config(args: &RunArgs) -> Result<Config, CliError> {
    let mut overrides = args.set.clone();
    if args.repository {
        overrides.push("repository=true".into());
    }
    if let Some(d) = &args.data {
        overrides.push(format!("data_dir={}", d.display()));
    }
    let sources = Sources::with_process_env(args.config.clone(), overrides);
    Config::load(&sources).map_err(|e| CliError::Usage(format!("configuration: {e}")))
}

pub fn run(args: RunArgs, out: &Output) -> Result<(), CliError> {
    let config = load_config(&args)?;
    if args.check {
        let v = serde_json::to_value(&config).unwrap_or_default();
        out.result(&v, || {
            format!(
                "the configuration is valid:\n{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            )
        });
        return Ok(());
    }
    let runtime = super::runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2))?;
    let system = actix::System::with_tokio_rt(move || runtime);
    system.block_on(node(config, out))
}

fn state_error(e: impl std::fmt::Display) -> CliError {
    CliError::Demo(format!("node state: {e}"))
}

/// The signer of a repository node: FIRMCHAIN_PRIVATE_KEY.
fn repository_signer() -> Result<PrivateKeySigner, CliError> {
    let key = std::env::var("FIRMCHAIN_PRIVATE_KEY")
        .map_err(|_| CliError::Key("a repository node signs releases: set FIRMCHAIN_PRIVATE_KEY".into()))?;
    key.trim()
        .parse()
        .map_err(|_| CliError::Key("FIRMCHAIN_PRIVATE_KEY is not a 32-byte hex private key".into()))
}

fn mkdir(p: &Path) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(p).map_err(CliError::file(p))?;
    Ok(p.to_owned())
}

async fn start_p2p(config: &Config, dir: &Path) -> Result<P2p, CliError> {
    let key = firmchain_p2p::load_or_create_identity(&dir.join("identity.key"))?;
    let budget = config.p2p.store_budget_mib.saturating_mul(1 << 20);
    let store = Arc::new(Blockstore::open(&dir.join("blocks.redb"), budget)?);
    let parse = |a: &String| {
        a.parse()
            .map_err(|e| CliError::Usage(format!("multiaddr {a:?}: {e}")))
    };
    let defaults = P2pConfig::default();
    let cfg = P2pConfig {
        listen: config.p2p.listen.iter().map(parse).collect::<Result<_, _>>()?,
        bootstrap: config.p2p.bootstrap.iter().map(parse).collect::<Result<_, _>>()?,
        mdns: config.p2p.mdns,
        max_connections: config.p2p.max_connections,
        // A repository seeds each block once per second and lets the devices share it.
        seed_window: config.repository.then_some(Duration::from_secs(1)),
        fetch: firmchain_p2p::FetchOptions {
            stall_timeout: Duration::from_secs(config.p2p.stall_timeout_secs),
            ..defaults.fetch.clone()
        },
        ..defaults
    };
    #[cfg(feature = "fault-injection")]
    let cfg = P2pConfig {
        fault: test_fault()?,
        ..cfg
    };
    let (p2p, _task) = P2p::start(cfg, key, store).await?;
    Ok(p2p)
}

/// A hostile peer for swarm tests (builds with the `fault-injection` feature only): FIRMCHAIN_TEST_FAULT.
#[cfg(feature = "fault-injection")]
fn test_fault() -> Result<Option<firmchain_p2p::bitswap::Fault>, CliError> {
    use firmchain_p2p::bitswap::Fault;
    let Ok(v) = std::env::var("FIRMCHAIN_TEST_FAULT") else {
        return Ok(None);
    };
    let fault = match v.as_str() {
        "corrupt" => Fault::CorruptBlocks,
        "oversize" => Fault::OversizeBlocks,
        "withhold" => Fault::Withhold,
        "slow" => Fault::Slow(Duration::from_secs(2)),
        other => {
            return Err(CliError::Usage(format!(
                "FIRMCHAIN_TEST_FAULT={other:?}: corrupt, oversize, withhold or slow"
            )));
        }
    };
    tracing::warn!(?fault, "this node misbehaves on purpose (FIRMCHAIN_TEST_FAULT)");
    Ok(Some(fault))
}

async fn header_source(config: &Config, state: &NodeState) -> Result<HeaderSource, CliError> {
    let c = &config.chain;
    if c.mode == ChainMode::Rpc {
        return Ok(HeaderSource::Rpc);
    }
    // Resume from the last verified finalized header, else start from the configured checkpoint.
    let saved = state.meta(LIGHT_CLIENT_KEY).map_err(state_error)?;
    let checkpoint = saved
        .and_then(|b| serde_json::from_slice::<Persisted>(&b).ok())
        .map(|p| p.checkpoint)
        .or_else(|| c.checkpoint.clone())
        .unwrap_or_default();
    let root = super::chain::parse_root("chain.checkpoint", &checkpoint)?;
    let spec = super::chain::chain_spec(c.chain_config.as_deref())?;
    let rpc = HttpRpc::new(c.consensus_rpc.clone(), Duration::from_secs(c.timeout_secs))
        .map_err(firmchain_lightclient::client::ClientError::from)?;
    let window = c.weak_subjectivity_days * 24 * 3600;
    let client = LightClient::start(spec, rpc, root, unix_now(), window, false).await?;
    Ok(HeaderSource::Light {
        client: Box::new(client),
    })
}

/// Where images go and what runs, at start-up.
struct Opened {
    target: InstallTarget,
    installed: Installed,
    /// A damaged slot that was found and left behind.
    recovered: Option<String>,
    /// A release rolled back by a health check that a crash had cut short.
    checked: Option<(Sequence, String)>,
}

/// The installed image at start-up, reconciling the state store with the slots (the slot pointer is the truth:
/// a crash between the switch and the state write leaves the store one step behind).
async fn open_install(
    config: &Config,
    dir: &Path,
    state: &NodeState,
    product: &ProductId,
) -> Result<Opened, CliError> {
    let recorded = state.product(product).map_err(state_error)?;
    match config.install.mode {
        InstallMode::Slots => {
            let mut slots = Slots::open(&dir.join("slots"), config.install.initial_image.as_deref())
                .map_err(|e| CliError::Demo(format!("image slots: {e}")))?;
            let checked = firmchain_actors::installer::check_after_restart(
                &mut slots,
                state,
                product,
                config.install.health_check.as_deref(),
                Duration::from_secs(config.install.health_timeout_secs),
            )
            .await
            .map_err(|e| CliError::Demo(format!("health check after a restart: {e}")))?;
            let active = slots.active();
            if recorded.is_none_or(|r| r.sequence != active.sequence || r.hash != active.hash) {
                state
                    .set_product(
                        product,
                        ProductState {
                            sequence: active.sequence,
                            hash: active.hash,
                            floor: Sequence(0),
                        },
                    )
                    .map_err(state_error)?;
            }
            let recovered = slots.recovered.clone();
            let installed = Installed {
                sequence: active.sequence,
                hash: active.hash,
            };
            Ok(Opened {
                target: InstallTarget::Slots(slots),
                installed,
                recovered,
                checked,
            })
        }
        InstallMode::Command => {
            let current = dir.join("image").join("current.bin");
            let hash = prepare_command_mode(&current, config.install.initial_image.as_deref())
                .map_err(CliError::Demo)?;
            let sequence = recorded
                .filter(|r| r.hash == hash)
                .map_or(Sequence(0), |r| r.sequence);
            let command = config.install.command.clone().unwrap_or_default();
            Ok(Opened {
                target: InstallTarget::Command { command, current },
                installed: Installed { sequence, hash },
                recovered: None,
                checked: None,
            })
        }
    }
}

async fn node(config: Config, out: &Output) -> Result<(), CliError> {
    let dir = mkdir(&config.data_dir)?;
    let product: ProductId = config
        .chain
        .product
        .parse()
        .map_err(|e| CliError::Usage(format!("chain.product: {e}")))?;
    let index: Address = config.chain.contract.parse().map_err(|_| {
        CliError::Usage(format!(
            "chain.contract {:?} is not an address",
            config.chain.contract
        ))
    })?;
    let timeout = Duration::from_secs(config.chain.timeout_secs);
    let state = Arc::new(NodeState::open(&dir.join("state.redb")).map_err(state_error)?);
    let p2p = start_p2p(&config, &dir).await?;

    let (install, recovered, checked) = if config.repository {
        (None, None, None)
    } else {
        let opened = open_install(&config, &dir, &state, &product).await?;
        if let Some(r) = &opened.recovered {
            tracing::warn!("{r}");
        }
        (
            Some((opened.target, opened.installed)),
            opened.recovered,
            opened.checked,
        )
    };
    let status = Status::new(recovered.clone()).start();
    if let Some((sequence, reason)) = checked {
        tracing::warn!(sequence = sequence.0, %reason, "rolled back at start-up");
        status.do_send(firmchain_actors::messages::StatusEvent::Installed(
            firmchain_actors::messages::ReleaseInstalled::RolledBack { sequence, reason },
        ));
    }

    let publisher = if config.repository {
        let provider =
            firmchain_contracts::provider(&config.chain.execution_rpc[0], Some(repository_signer()?))?;
        let client = firmchain_contracts::IndexClient::connect(provider, index, timeout).await?;
        Some((client, mkdir(&dir.join("releases"))?))
    } else {
        None
    };

    let coordinator = match install {
        None => None,
        Some((target, installed)) => {
            let verifier = SyncArbiter::start(1, || Verifier);
            let patcher = SyncArbiter::start(1, || Patcher);
            let downloads = mkdir(&dir.join("downloads"))?;
            let rolled_back =
                firmchain_actors::installer::rolled_back(&state, &product).map_err(state_error)?;
            let installer_config = InstallerConfig {
                target,
                health_check: config.install.health_check.clone(),
                health_timeout: Duration::from_secs(config.install.health_timeout_secs),
                downloads: downloads.clone(),
                staging: dir.join("image").join("staging.bin"),
            };
            let (p2p2, state2, status2) = (p2p.clone(), state.clone(), status.clone());
            let stall = Duration::from_secs(config.p2p.stall_timeout_secs);
            let coordinator = Coordinator::create(move |ctx| {
                let me = ctx.address();
                let fetcher = BlockFetcher::new(
                    p2p2.clone(),
                    verifier,
                    downloads,
                    stall,
                    me.clone().recipient(),
                    status2.clone().recipient(),
                )
                .start();
                let installer = Installer::new(
                    installer_config,
                    patcher,
                    state2,
                    Some(p2p2),
                    me.clone().recipient(),
                    status2.recipient(),
                )
                .start();
                let mut machine = UpdateMachine::new(product, installed, Policy::default());
                for sequence in rolled_back {
                    machine.handle(Input::RolledBack { sequence });
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
            });
            Some(coordinator)
        }
    };

    let rpc =
        HttpExecutionRpc::new(config.chain.execution_rpc.clone(), timeout).map_err(|e| CliError::Rpc {
            what: "execution RPC",
            message: e.to_string(),
        })?;
    let source = header_source(&config, &state).await?;
    let watcher = Watcher::new(rpc, index, product, source, state.clone());
    let (seen, revoked) = match &coordinator {
        Some(c) => (Some(c.clone().recipient()), Some(c.clone().recipient())),
        None => (None, None),
    };
    let watcher = IndexWatcher::new(
        watcher,
        Duration::from_secs(config.chain.poll_interval_secs),
        seen,
        revoked,
        status.clone().recipient(),
    )
    .start();
    let publisher = publisher.map(|(client, releases)| {
        Publisher::new(
            p2p.clone(),
            client,
            releases,
            Some(watcher.clone().recipient()),
            status.clone().recipient(),
        )
        .start()
    });

    let api_addr = if config.api.listen.is_empty() {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(&config.api.listen)
            .await
            .map_err(|e| CliError::Usage(format!("api.listen {}: {e}", config.api.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(CliError::file(Path::new("api socket")))?;
        let api_state = Arc::new(ApiState {
            repository: config.repository,
            product,
            p2p: p2p.clone(),
            status: status.clone(),
            coordinator: coordinator.clone(),
            publisher,
            token: config.api.token.clone(),
            max_staleness: config.chain.max_staleness_secs,
            recovered,
            started: unix_now(),
            limits: api::ApiLimits::default(),
            publishing: api::PublishGate::default(),
        });
        tokio::spawn(api::serve(listener, api_state));
        Some(addr)
    };

    let addrs: Vec<String> = p2p
        .listen_addrs()
        .await?
        .iter()
        .map(|a| firmchain_p2p::with_peer_id(a, p2p.peer_id()).to_string())
        .collect();
    let role = if config.repository { "repository" } else { "device" };
    let started = json!({
        "running": role, "product": product.to_string(), "peer_id": p2p.peer_id().to_string(),
        "addrs": addrs, "api": api_addr.map(|a| a.to_string()), "data_dir": dir.display().to_string(),
        "chain": if config.chain.mode == ChainMode::Rpc { "rpc" } else { "light" },
    });
    out.line(&started, || {
        format!(
            "firmchain {role} for {product}\n  peer  {}\n  p2p   {}\n  api   {}\n  data  {}\nstop with Ctrl-C",
            p2p.peer_id(),
            addrs.join("\n        "),
            api_addr.map_or("off".into(), |a| format!("http://{a}")),
            dir.display()
        )
    });

    super::p2p::wait_for_signal().await;
    tracing::info!("stopping");
    let _ = p2p.shutdown().await;
    drop(watcher);
    actix::System::current().stop();
    Ok(())
}
