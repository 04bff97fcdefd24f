//! Where execution data comes from: JSON-RPC endpoints, tried in order, every call bounded by a timeout.
//! Nothing here is trusted; [`crate::execution`] verifies headers, proofs and receipts against verified roots.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::consensus::Header;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{EIP1186AccountProofResponse, Filter, Log, TransactionReceipt};
use alloy::transports::http::reqwest;

use crate::rpc::{Demotion, Failover, RpcError, lock};

/// The execution JSON-RPC calls the verifier needs.
pub trait ExecutionRpc {
    /// A block's header and the hash the endpoint claims for it (`eth_getBlockByNumber`).
    fn header(&self, block: BlockNumberOrTag) -> impl Future<Output = Result<(Header, B256), RpcError>>;
    /// Account and storage proofs at a block (`eth_getProof`).
    fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        block: u64,
    ) -> impl Future<Output = Result<EIP1186AccountProofResponse, RpcError>>;
    /// All receipts of a block (`eth_getBlockReceipts`).
    fn block_receipts(&self, block: u64) -> impl Future<Output = Result<Vec<TransactionReceipt>, RpcError>>;
    /// Logs matching `filter` (`eth_getLogs`). Unverified: callers check what they read against proven state.
    fn logs(&self, filter: &Filter) -> impl Future<Output = Result<Vec<Log>, RpcError>>;
    /// How many endpoints stand behind this client.
    fn endpoint_count(&self) -> usize {
        1
    }
    /// Demote the endpoint that gave the last answer (it failed verification) so the next one is asked
    /// first; returns its name, or `None` if there is no other endpoint.
    fn demote(&self, _reason: &str) -> Option<String> {
        None
    }
    /// The endpoints demoted so far.
    fn demotions(&self) -> Vec<Demotion> {
        Vec::new()
    }
}

/// Execution nodes over HTTP, tried in order until one answers; one whose answer fails verification is
/// demoted (see [`ExecutionRpc::demote`]). Clones share the order.
#[derive(Clone, Debug)]
pub struct HttpExecutionRpc {
    endpoints: Vec<(String, DynProvider)>,
    timeout: Duration,
    failover: Arc<Mutex<Failover>>,
}

impl HttpExecutionRpc {
    /// Clients of `endpoints` (URLs), each call bounded by `timeout`, trusting the default roots.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Self, RpcError> {
        let options = crate::http::HttpOptions {
            timeout: Some(timeout),
            ca_file: None,
        };
        HttpExecutionRpc::with_options(endpoints, &options)
    }

    /// Clients of `endpoints` (`http://` or `https://` URLs) with the given HTTP options; each call is bounded
    /// by the options' timeout (30 s if none).
    pub fn with_options(
        endpoints: Vec<String>,
        options: &crate::http::HttpOptions,
    ) -> Result<Self, RpcError> {
        if endpoints.is_empty() {
            return Err(RpcError::NoEndpoint);
        }
        let timeout = options.timeout.unwrap_or(Duration::from_secs(30));
        HttpExecutionRpc::with_client(endpoints, crate::http::client(options)?, timeout)
    }

    /// Clients of `endpoints` over an HTTP client built by [`crate::http::client_with`].
    pub fn with_client(
        endpoints: Vec<String>,
        client: reqwest::Client,
        timeout: Duration,
    ) -> Result<Self, RpcError> {
        if endpoints.is_empty() {
            return Err(RpcError::NoEndpoint);
        }
        let endpoints = endpoints
            .into_iter()
            .map(|e| {
                let url = e.parse().map_err(|err| RpcError::Http {
                    endpoint: e.clone(),
                    path: String::new(),
                    message: format!("not a URL: {err}"),
                })?;
                let provider = ProviderBuilder::new()
                    .connect_reqwest(client.clone(), url)
                    .erased();
                Ok((e, provider))
            })
            .collect::<Result<Vec<_>, RpcError>>()?;
        let failover = Arc::new(Mutex::new(Failover::new(endpoints.len())));
        Ok(HttpExecutionRpc {
            endpoints,
            timeout,
            failover,
        })
    }

    async fn first<T, F, Fut, E>(&self, method: &str, call: F) -> Result<T, RpcError>
    where
        F: Fn(DynProvider) -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: std::error::Error,
    {
        let mut last = RpcError::NoEndpoint;
        let order = lock(&self.failover).order();
        for i in order {
            let (endpoint, provider) = &self.endpoints[i];
            let fail = |message: String| RpcError::Http {
                endpoint: endpoint.clone(),
                path: format!(" {method}"),
                message,
            };
            last = match tokio::time::timeout(self.timeout, call(provider.clone())).await {
                Ok(Ok(Some(v))) => {
                    lock(&self.failover).answered(i);
                    return Ok(v);
                }
                Ok(Ok(None)) => fail("no such block".into()),
                Ok(Err(e)) => fail(crate::http::error_chain(&e)),
                Err(_) => fail(format!("timed out after {:?}", self.timeout)),
            };
        }
        Err(last)
    }
}

impl ExecutionRpc for HttpExecutionRpc {
    fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    fn demote(&self, reason: &str) -> Option<String> {
        let i = lock(&self.failover).demote(|i| self.endpoints[i].0.clone(), reason)?;
        Some(self.endpoints[i].0.clone())
    }

    fn demotions(&self) -> Vec<Demotion> {
        lock(&self.failover).demotions()
    }

    async fn header(&self, block: BlockNumberOrTag) -> Result<(Header, B256), RpcError> {
        self.first("eth_getBlockByNumber", |p| async move {
            p.get_block_by_number(block)
                .await
                .map(|b| b.map(|b| (b.header.inner, b.header.hash)))
        })
        .await
    }

    async fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        block: u64,
    ) -> Result<EIP1186AccountProofResponse, RpcError> {
        self.first("eth_getProof", |p| {
            let slots = slots.clone();
            async move { p.get_proof(address, slots).number(block).await.map(Some) }
        })
        .await
    }

    async fn block_receipts(&self, block: u64) -> Result<Vec<TransactionReceipt>, RpcError> {
        self.first("eth_getBlockReceipts", |p| async move {
            p.get_block_receipts(block.into()).await
        })
        .await
    }

    async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, RpcError> {
        self.first(
            "eth_getLogs",
            |p| async move { p.get_logs(filter).await.map(Some) },
        )
        .await
    }
}
