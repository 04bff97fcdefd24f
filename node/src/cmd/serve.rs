//! The HTTP API of a running node: bind `api.listen` and serve it from the node's handle.

use std::net::SocketAddr;
use std::sync::Arc;

use firmchain_actors::node::NodeHandle;
use firmchain_actors::unix_now;
use firmchain_config::Config;

use crate::api::{self, ApiState};
use crate::error::CliError;

/// The API's state, taken from the node's handle and the configuration.
pub fn api_state(config: &Config, node: &NodeHandle) -> ApiState {
    ApiState {
        repository: node.repository,
        product: node.product,
        p2p: node.p2p.clone(),
        status: node.status.clone(),
        coordinator: node.coordinator.clone(),
        #[cfg(feature = "publisher")]
        publisher: node.publisher.clone(),
        token: config.api.token.clone(),
        max_staleness: config.chain.max_staleness_secs,
        recovered: node.recovered.clone(),
        started: unix_now(),
        // Bodies spool inside the data folder: a scratch image has no /tmp, and the spool then shares the disk
        // budget an operator gave the node.
        limits: api::ApiLimits {
            spool_dir: Some(node.data_dir.join("spool")),
            max_body_bytes: config.api.max_body_bytes,
            max_connections: config.api.max_connections as usize,
            ..api::ApiLimits::default()
        },
        publishing: api::PublishGate::default(),
        metrics: node.metrics.clone(),
    }
}

/// Serve the API in the background; returns its address, or `None` when `api.listen` is empty.
pub async fn start_api(config: &Config, node: &NodeHandle) -> Result<Option<SocketAddr>, CliError> {
    let Some(listen) = config.validate().map_err(|e| CliError::Usage(e.to_string()))?.api else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Usage(format!("api.listen {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(CliError::file(std::path::Path::new("api socket")))?;
    tokio::spawn(api::serve(listener, Arc::new(api_state(config, node))));
    Ok(Some(addr))
}
