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

/// Load the configuration: defaults → `--config` → `FIRMCHAIN_*` environment → `--set` → flags.
pub fn load_config(args: &RunArgs) -> Result<Config, CliError> {
    let flags = Flags {
        repository: args.repository,
        data_dir: args.data.clone(),
    };
    let sources = Sources::with_process_env(args.config.clone(), args.set.clone(), flags);
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

fn node_error(e: NodeError) -> CliError {
    match e {
        NodeError::Config(_) => CliError::Usage(e.to_string()),
        NodeError::NoSigner => CliError::Key(e.to_string()),
        other => CliError::Demo(other.to_string()),
    }
}

/// The signer of a repository node: FIRMCHAIN_PRIVATE_KEY.
fn repository_signer() -> Result<PrivateKeySigner, CliError> {
    let key = std::env::var("FIRMCHAIN_PRIVATE_KEY")
        .map_err(|_| CliError::Key("a repository node signs releases: set FIRMCHAIN_PRIVATE_KEY".into()))?;
    key.trim()
        .parse()
        .map_err(|_| CliError::Key("FIRMCHAIN_PRIVATE_KEY is not a 32-byte hex private key".into()))
}

async fn node(config: Config, out: &Output) -> Result<(), CliError> {
    let signer = if config.repository {
        Some(repository_signer()?)
    } else {
        None
    };
    let node_config = super::fault::inject(NodeConfig::new(config.clone(), signer).map_err(node_error)?)?;
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
            api_addr.map_or("off".into(), |a| format!("http://{a}")),
        )
    });

    super::p2p::wait_for_signal().await;
    node.stop().await;
    Ok(())
}
