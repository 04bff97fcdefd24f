//! A light-mode chain for the node tests: the beacon harness over the fleet's anvil and its config file, and
//! anvil mining a block every 500 ms (the harness moves its head only with new blocks).

use std::path::PathBuf;
use std::time::Duration;

use alloy::providers::Provider;
use firmchain_tests::beacon::{BeaconHarness, Behaviour};
use firmchain_tests::fleet::NodeSpec;
use serde_json::Value;

use super::Fleet;

/// The harness and the chain settings its clients need.
pub struct Beacon {
    pub harness: BeaconHarness,
    pub config: PathBuf,
}

impl Beacon {
    pub fn start(f: &Fleet) -> Beacon {
        let harness = BeaconHarness::start(&f.chain.anvil.url, Behaviour::Honest).unwrap();
        let config = f.dir.path().join("chain.yaml");
        std::fs::write(&config, &harness.config).unwrap();
        Beacon { harness, config }
    }

    /// The settings of a light-mode node over the harness.
    pub fn light_sets(&self) -> Vec<String> {
        vec![
            "chain.mode=light".into(),
            format!("chain.consensus_rpc={}", self.harness.url),
            format!("chain.checkpoint={}", self.harness.checkpoint),
            format!("chain.chain_config={}", self.config.display()),
        ]
    }

    /// The settings of a device with no RPC URL: peers mode, its checkpoint and the chain's parameters only.
    pub fn peers_sets(&self) -> Vec<String> {
        vec![
            "chain.mode=peers".into(),
            "chain.execution_rpc=".into(),
            format!("chain.checkpoint={}", self.harness.checkpoint),
            format!("chain.chain_config={}", self.config.display()),
        ]
    }

    /// The repository, in light mode over the harness.
    pub fn repository_spec(&self, f: &Fleet) -> NodeSpec {
        NodeSpec {
            dir: f.dir.path().join("repo"),
            repository: true,
            key: Some(f.chain.key().to_owned()),
            set: self.light_sets(),
            ..NodeSpec::default()
        }
    }

    /// A peers-mode device, with `extra` settings.
    pub fn peers_spec(&self, extra: &[String]) -> NodeSpec {
        let mut set = self.peers_sets();
        set.extend_from_slice(extra);
        NodeSpec {
            set,
            ..NodeSpec::default()
        }
    }
}

/// Mine an anvil block every 500 ms, until dropped.
pub struct Miner(tokio::task::JoinHandle<()>);

impl Miner {
    pub fn start(url: &str) -> Miner {
        let p = firmchain_contracts::provider(url, None).unwrap();
        Miner(tokio::spawn(async move {
            loop {
                let _ = p.raw_request::<_, Value>("evm_mine".into(), ()).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }))
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.0.abort();
    }
}
