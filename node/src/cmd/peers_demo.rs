//! `firmchain demo --peers`: the fleet demo with no RPC on any device. A local beacon light-client server over
//! the demo's anvil (its sync committee is 32 known keys, one-second slots) lets the repository run in light
//! mode and serve chain proofs; every device runs in `peers` mode with only the checkpoint, and each device line
//! says which node its release proof came from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::providers::Provider;
use firmchain_harness::beacon::{BeaconHarness, Behaviour};

use super::swarm_demo::fail;
use crate::error::CliError;

/// The beacon server, its chain config file and the block miner, stopped when dropped.
pub(super) struct PeersDemo {
    harness: BeaconHarness,
    config: PathBuf,
    miner: tokio::task::JoinHandle<()>,
}

impl PeersDemo {
    pub(super) fn start(rpc: &str, dir: &Path, step: &dyn Fn(String)) -> Result<PeersDemo, CliError> {
        let harness = BeaconHarness::start(rpc, Behaviour::Honest).map_err(fail)?;
        let config = dir.join("beacon-chain.yaml");
        std::fs::write(&config, &harness.config).map_err(CliError::file(&config))?;
        let provider = firmchain_contracts::provider(rpc, None)?;
        // The beacon server follows anvil's newest block: mine one every half second so headers keep coming.
        let miner = tokio::spawn(async move {
            loop {
                if let Err(e) = provider
                    .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
                    .await
                {
                    tracing::warn!(error = %e, "mining a block failed");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        step(format!(
            "beacon light-client server at {} (checkpoint {}); devices get no RPC URL",
            harness.url, harness.checkpoint
        ));
        Ok(PeersDemo {
            harness,
            config,
            miner,
        })
    }

    fn chain(&self) -> Vec<String> {
        vec![
            format!("chain.checkpoint={}", self.harness.checkpoint),
            format!("chain.chain_config={}", self.config.display()),
        ]
    }

    /// The repository: light mode over the beacon server (it serves proofs by default).
    pub(super) fn repository_sets(&self) -> Vec<String> {
        let mut s = vec![
            "chain.mode=light".to_owned(),
            format!("chain.consensus_rpc={}", self.harness.url),
        ];
        s.extend(self.chain());
        s
    }

    /// A device: peers mode, no execution or consensus RPC.
    pub(super) fn device_sets(&self) -> Vec<String> {
        let mut s = vec!["chain.mode=peers".to_owned(), "chain.execution_rpc=".to_owned()];
        s.extend(self.chain());
        s
    }
}

impl Drop for PeersDemo {
    fn drop(&mut self) {
        self.miner.abort();
    }
}

/// Which node the device's last verified release proof came from, from its log (`from=peer <id>`), by name.
pub(super) fn proof_source(log: &Path, names: &HashMap<String, String>) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(line) = text
        .lines()
        .rev()
        .find(|l| l.contains("release seen (release proof verified)"))
    else {
        return "?".into();
    };
    let id = line
        .split("from=peer ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|id| id.trim_matches('"'));
    match id {
        Some(id) => names.get(id).cloned().unwrap_or_else(|| id.to_owned()),
        None => "?".into(),
    }
}
