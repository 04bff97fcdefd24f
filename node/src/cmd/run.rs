//! `firmchain run`: one node, device or repository role, from the configuration. A thin shell: load the
//! configuration, [`Node::start`] (the composition root in `firmchain-actors`), serve the API from the handle
//! (`serve.rs`), wait for a signal, stop. Test faults are switched on in `fault.rs`.
//!
//! The actors run on actix's local set; networking, the API and blocking file work run on a two-thread tokio
//! runtime beside it. SIGTERM or Ctrl-C stops the node gracefully.

use alloy::signers::local::PrivateKeySigner;
use firmchain_actors::node::{Node, NodeConfig, NodeError};
use firmchain_config::{ChainMode, Config, Flags, Sources};
use serde_json::json;

use crate::cli::RunArgs;
use crate::error::CliError;
use crate::output::Output;

/// Load the configuration: defaults → `--config` (or FIRMCHAIN_CONFIG, or /etc/firmchain/firmchain.toml when it
/// exists) → `FIRMCHAIN_*` environment → `--set` → flags.
pub fn load_config(args: &RunArgs) -> Result<Config, CliError> {
    let flags = Flags {
        repository: args.repository,
        data_dir: args.data.clone(),
    };
    let default_exists = std::path::Path::new(firmchain_config::DEFAULT_CONFIG).is_file();
    let file = firmchain_config::config_path(args.config.clone(), None, default_exists);
    let sources = Sources::with_process_env(file, args.set.clone(), flags);
    Config::load(&sources).map_err(|e| CliError::Usage(format!("configuration: {e}")))
}

pub fn run(args: RunArgs, out: &Output) -> Result<(), CliError> {
    let config = load_config(&args)?;
    if args.check {
        config.api_token()?;
        let v = serde_json::to_value(config.redacted()).unwrap_or_default();
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

fn node_error(e: NodeError) -> CliError {
    match e {
        NodeError::Config(_) => CliError::Usage(e.to_string()),
        NodeError::NoSigner => CliError::Key(e.to_string()),
        other => CliError::Demo(other.to_string()),
    }
}

/// The signer of a repository node: FIRMCHAIN_PRIVATE_KEY, FIRMCHAIN_PRIVATE_KEY_FILE or the credential
/// `private_key`.
fn repository_signer() -> Result<PrivateKeySigner, CliError> {
    let key = crate::secrets::secret(crate::secrets::PRIVATE_KEY, None)?.ok_or_else(|| {
        CliError::Key(
            "a repository node signs releases: set FIRMCHAIN_PRIVATE_KEY or FIRMCHAIN_PRIVATE_KEY_FILE, or load \
             the credential private_key"
                .into(),
        )
    })?;
    super::contract::parse_key(&key)
}

async fn node(mut config: Config, out: &Output) -> Result<(), CliError> {
    #[cfg(not(feature = "publisher"))]
    if config.repository {
        return Err(super::not_in_build("run --repository"));
    }
    // The token is read once, before any work: a missing or ambiguous secret stops the node here.
    config.api.token = config.api_token()?;
    config.api.token_file = None;
    let signer = if config.repository {
        Some(repository_signer()?)
    } else {
        None
    };
    let node_config = super::fault::inject(NodeConfig::new(config.clone(), signer).map_err(node_error)?)?;
    // Caught before anything says the node is up, so an early SIGTERM still stops it cleanly.
    let stop = super::p2p::StopSignal::catch();
    let node = Node::start(node_config).await.map_err(node_error)?;
    let api_addr = super::serve::start_api(&config, &node).await?;

    let p2p = &node.p2p;
    let addrs: Vec<String> = p2p
        .listen_addrs()
        .await?
        .iter()
        .map(|a| firmchain_p2p::with_peer_id(a, p2p.peer_id()).to_string())
        .collect();
    let role = if node.repository { "repository" } else { "device" };
    let (product, dir) = (node.product, node.data_dir.display());
    let started = json!({
        "running": role, "product": product.to_string(), "peer_id": p2p.peer_id().to_string(),
        "addrs": addrs, "api": api_addr.map(|a| a.to_string()), "data_dir": dir.to_string(),
        "chain": match node.chain_mode { ChainMode::Rpc => "rpc", ChainMode::Light => "light", ChainMode::Peers => "peers" },
    });
    out.line(&started, || {
        format!(
            "firmchain {role} for {product}\n  peer  {}\n  p2p   {}\n  api   {}\n  data  {dir}\nstop with Ctrl-C",
            p2p.peer_id(),
            addrs.join("\n        "),
            api_or_off(api_addr),
        )
    });

    // Starting the node (configuration, store, libp2p, actors) touched code it will not run again.
    crate::footprint::release_startup_code();
    crate::notify::notify(&format!(
        "READY=1\nSTATUS={role} for {product}, api {}",
        api_or_off(api_addr)
    ));
    let watchdog = crate::notify::process_watchdog_interval().map(|every| {
        let status = node.status.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // Only a node whose actors still answer tells systemd it is alive.
                let alive =
                    tokio::time::timeout(every, status.send(firmchain_actors::status::GetSnapshot)).await;
                if matches!(alive, Ok(Ok(_))) {
                    crate::notify::notify("WATCHDOG=1");
                }
            }
        })
    });

    stop.wait().await;
    crate::notify::notify("STOPPING=1");
    if let Some(w) = watchdog {
        w.abort();
    }
    node.stop().await;
    Ok(())
}

fn api_or_off(addr: Option<std::net::SocketAddr>) -> String {
    addr.map_or("off".into(), |a| format!("http://{a}"))
}
