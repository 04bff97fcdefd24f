//! `firmchain beacon-harness` (hidden; test builds only, feature `fault-injection`): the beacon light-client
//! server of `firmchain demo --peers` as a process of its own, for the Docker swarm's peers scenario, where it
//! runs in a container beside anvil. It signs sync-committee headers over anvil's blocks with 32 known keys
//! (`firmchain_harness::beacon`), prints one line with its URL, checkpoint and chain config, and serves until
//! it is killed.

use firmchain_harness::beacon::{BeaconHarness, Behaviour};
use serde_json::json;

use crate::error::CliError;
use crate::output::Output;

/// Serve light-client data over the anvil chain at `rpc` on `listen`; never returns unless it cannot start.
pub fn serve(rpc: &str, listen: &str, out: &Output) -> Result<(), CliError> {
    let harness = BeaconHarness::serve(rpc, Behaviour::Honest, 64, listen)
        .map_err(|e| CliError::Demo(format!("beacon harness over {rpc}: {e}")))?;
    out.line(
        &json!({ "url": harness.url, "checkpoint": harness.checkpoint, "chain_config": harness.config }),
        || {
            format!(
                "beacon light-client server at {} over {rpc}; checkpoint {}",
                harness.url, harness.checkpoint
            )
        },
    );
    // The server's thread answers until the process ends.
    loop {
        std::thread::park();
    }
}
