//! Where consensus data comes from: the beacon light-client REST API (several endpoints, timeouts) or a
//! folder of recorded JSON. Nothing here is trusted; [`crate::client::LightClient`] verifies all of it.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use alloy::transports::http::reqwest;
use serde::de::DeserializeOwned;

use crate::consensus::ssz::Root;
use crate::consensus::{Bootstrap, Update, Versioned};

/// Why light-client data could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{endpoint}{path}: {message}")]
    Http {
        endpoint: String,
        path: String,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("no RPC endpoint is configured")]
    NoEndpoint,
}

/// The beacon light-client API (`/eth/v1/beacon/light_client/...`).
pub trait ConsensusRpc {
    /// `bootstrap/{block_root}`.
    fn bootstrap(&self, block_root: Root) -> impl Future<Output = Result<Bootstrap, RpcError>>;
    /// `updates?start_period&count` (count at most 128).
    fn updates(&self, start_period: u64, count: u64) -> impl Future<Output = Result<Vec<Update>, RpcError>>;
    /// `finality_update`.
    fn finality_update(&self) -> impl Future<Output = Result<Update, RpcError>>;
    /// `optimistic_update`.
    fn optimistic_update(&self) -> impl Future<Output = Result<Update, RpcError>>;
}

/// Beacon nodes over HTTP, tried in order until one answers.
#[derive(Clone, Debug)]
pub struct HttpRpc {
    endpoints: Vec<String>,
    client: reqwest::Client,
}

impl HttpRpc {
    /// Clients of `endpoints` (base URLs), each request bounded by `timeout`.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Self, RpcError> {
        if endpoints.is_empty() {
            return Err(RpcError::NoEndpoint);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| RpcError::Http {
                endpoint: String::new(),
                path: String::new(),
                message: e.to_string(),
            })?;
        let endpoints = endpoints
            .into_iter()
            .map(|e| e.trim_end_matches('/').to_owned())
            .collect();
        Ok(HttpRpc { endpoints, client })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RpcError> {
        let mut last = RpcError::NoEndpoint;
        for endpoint in &self.endpoints {
            let fail = |message: String| RpcError::Http {
                endpoint: endpoint.clone(),
                path: path.to_owned(),
                message,
            };
            let attempt = async {
                let response = self
                    .client
                    .get(format!("{endpoint}{path}"))
                    .send()
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let status = response.status();
                if !status.is_success() {
                    return Err(fail(format!("HTTP {status}")));
                }
                response
                    .json::<T>()
                    .await
                    .map_err(|e| fail(format!("bad response: {e}")))
            };
            match attempt.await {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

const BASE: &str = "/eth/v1/beacon/light_client";

impl ConsensusRpc for HttpRpc {
    async fn bootstrap(&self, block_root: Root) -> Result<Bootstrap, RpcError> {
        let path = format!("{BASE}/bootstrap/{}", alloy::hex::encode_prefixed(block_root));
        Ok(self.get::<Versioned<Bootstrap>>(&path).await?.data)
    }

    async fn updates(&self, start_period: u64, count: u64) -> Result<Vec<Update>, RpcError> {
        let path = format!(
            "{BASE}/updates?start_period={start_period}&count={}",
            count.min(128)
        );
        Ok(self
            .get::<Vec<Versioned<Update>>>(&path)
            .await?
            .into_iter()
            .map(|v| v.data)
            .collect())
    }

    async fn finality_update(&self) -> Result<Update, RpcError> {
        Ok(self
            .get::<Versioned<Update>>(&format!("{BASE}/finality_update"))
            .await?
            .data)
    }

    async fn optimistic_update(&self) -> Result<Update, RpcError> {
        Ok(self
            .get::<Versioned<Update>>(&format!("{BASE}/optimistic_update"))
            .await?
            .data)
    }
}

/// Recorded answers in a folder: `bootstrap.json`, `updates.json`, `finality.json`, `optimistic.json`
/// (the beacon API's JSON). For replays and offline tests.
#[derive(Clone, Debug)]
pub struct FileRpc {
    pub dir: PathBuf,
    /// To answer `updates` by period.
    pub slots_per_period: u64,
}

impl FileRpc {
    fn read<T: DeserializeOwned>(&self, name: &str) -> Result<T, RpcError> {
        let path = self.dir.join(name);
        let fail = |message: String| RpcError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
    }
}

impl ConsensusRpc for FileRpc {
    async fn bootstrap(&self, _block_root: Root) -> Result<Bootstrap, RpcError> {
        Ok(self.read::<Versioned<Bootstrap>>("bootstrap.json")?.data)
    }

    async fn updates(&self, start_period: u64, count: u64) -> Result<Vec<Update>, RpcError> {
        let all: Vec<Versioned<Update>> = self.read("updates.json")?;
        let periods = |u: &Update| u.attested_header.beacon.slot / self.slots_per_period.max(1);
        Ok(all
            .into_iter()
            .map(|v| v.data)
            .filter(|u| (start_period..start_period + count).contains(&periods(u)))
            .collect())
    }

    async fn finality_update(&self) -> Result<Update, RpcError> {
        Ok(self.read::<Versioned<Update>>("finality.json")?.data)
    }

    async fn optimistic_update(&self) -> Result<Update, RpcError> {
        Ok(self.read::<Versioned<Update>>("optimistic.json")?.data)
    }
}
