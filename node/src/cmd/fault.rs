//! Fault injection for swarm tests: with the `fault-injection` feature, `FIRMCHAIN_TEST_FAULT` makes `run` a
//! hostile peer. Release builds never enable the feature (`scripts/check-release`); there [`inject`] is the
//! identity.

use firmchain_actors::node::NodeConfig;

use crate::error::CliError;

/// The node's configuration with the fault `FIRMCHAIN_TEST_FAULT` names, if any.
#[cfg(feature = "fault-injection")]
pub fn inject(config: NodeConfig) -> Result<NodeConfig, CliError> {
    let fault = match std::env::var("FIRMCHAIN_TEST_FAULT") {
        Ok(v) => Some(parse(&v)?),
        Err(_) => None,
    };
    if let Some(fault) = &fault {
        tracing::warn!(?fault, "this node misbehaves on purpose (FIRMCHAIN_TEST_FAULT)");
    }
    Ok(NodeConfig {
        p2p: firmchain_p2p::P2pConfig { fault, ..config.p2p },
        ..config
    })
}

/// Without the feature: the configuration unchanged.
#[cfg(not(feature = "fault-injection"))]
pub fn inject(config: NodeConfig) -> Result<NodeConfig, CliError> {
    Ok(config)
}

/// `corrupt`, `oversize`, `withhold` or `slow`.
#[cfg(feature = "fault-injection")]
fn parse(v: &str) -> Result<firmchain_p2p::bitswap::Fault, CliError> {
    use firmchain_p2p::bitswap::Fault;
    Ok(match v {
        "corrupt" => Fault::CorruptBlocks,
        "oversize" => Fault::OversizeBlocks,
        "withhold" => Fault::Withhold,
        "slow" => Fault::Slow(std::time::Duration::from_secs(2)),
        other => {
            return Err(CliError::Usage(format!(
                "FIRMCHAIN_TEST_FAULT={other:?}: corrupt, oversize, withhold or slow"
            )));
        }
    })
}
