//! Where consensus data comes from: the beacon light-client REST API (several endpoints, timeouts) or a
//! folder of recorded JSON. Nothing here is trusted; [`crate::client::LightClient`] verifies all of it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
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
    #[error(transparent)]
    Setup(#[from] crate::http::HttpError),
}

/// An endpoint moved to the back of the list because an answer of it failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demotion {
    pub endpoint: String,
    pub reason: String,
}

/// The order in which endpoints are asked, and who was demoted for what: shared by the clones of a client.
#[derive(Debug, Default)]
pub struct Failover {
    /// Indices into the endpoint list, best first.
    order: Vec<usize>,
    /// The endpoint that gave the last answer.
    last: Option<usize>,
    demotions: Vec<Demotion>,
}

/// The most demotions remembered (the newest are kept).
const MAX_DEMOTIONS: usize = 32;

impl Failover {
    /// `n` endpoints in their configured order.
    pub fn new(n: usize) -> Self {
        Failover {
            order: (0..n).collect(),
            last: None,
            demotions: Vec::new(),
        }
    }

    /// The endpoints to ask, in order.
    pub fn order(&self) -> Vec<usize> {
        self.order.clone()
    }

    /// Note that endpoint `i` answered.
    pub fn answered(&mut self, i: usize) {
        self.last = Some(i);
    }

    /// Move the endpoint that answered last to the back and remember why; returns its index. `None` if no
    /// answer was recorded or there is no other endpoint to ask.
    pub fn demote(&mut self, name: impl Fn(usize) -> String, reason: &str) -> Option<usize> {
        let i = self.last.take()?;
        if self.order.len() < 2 {
            return None;
        }
        self.order.retain(|&j| j != i);
        self.order.push(i);
        if self.demotions.len() == MAX_DEMOTIONS {
            self.demotions.remove(0);
        }
        self.demotions.push(Demotion {
            endpoint: name(i),
            reason: reason.to_owned(),
        });
        Some(i)
    }

    /// Who was demoted, oldest first.
    pub fn demotions(&self) -> Vec<Demotion> {
        self.demotions.clone()
    }
}

pub(crate) fn lock(f: &Mutex<Failover>) -> MutexGuard<'_, Failover> {
    f.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The beacon light-client API (`/eth/v1/beacon/light_client/...`).
pub trait ConsensusRpc {
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
    /// `bootstrap/{block_root}`.
    fn bootstrap(&self, block_root: Root) -> impl Future<Output = Result<Bootstrap, RpcError>>;
    /// `updates?start_period&count` (count at most 128).
    fn updates(&self, start_period: u64, count: u64) -> impl Future<Output = Result<Vec<Update>, RpcError>>;
    /// `finality_update`.
    fn finality_update(&self) -> impl Future<Output = Result<Update, RpcError>>;
    /// `optimistic_update`.
    fn optimistic_update(&self) -> impl Future<Output = Result<Update, RpcError>>;
}

/// Beacon nodes over HTTP, tried in order until one answers; one whose answer fails verification is demoted
/// (see [`ConsensusRpc::demote`]). Clones share the order.
#[derive(Clone, Debug)]
pub struct HttpRpc {
    endpoints: Vec<String>,
    client: reqwest::Client,
    failover: Arc<Mutex<Failover>>,
}

impl HttpRpc {
    /// Clients of `endpoints` (base URLs), each request bounded by `timeout`, trusting the default roots.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Self, RpcError> {
        let options = crate::http::HttpOptions {
            timeout: Some(timeout),
            ca_file: None,
        };
        HttpRpc::with_options(endpoints, &options)
    }

    /// Clients of `endpoints` (base URLs, `http://` or `https://`) with the given HTTP options.
    pub fn with_options(
        endpoints: Vec<String>,
        options: &crate::http::HttpOptions,
    ) -> Result<Self, RpcError> {
        if endpoints.is_empty() {
            return Err(RpcError::NoEndpoint);
        }
        HttpRpc::with_client(endpoints, crate::http::client(options)?)
    }

    /// Clients of `endpoints` over an HTTP client built by [`crate::http::client_with`].
    pub fn with_client(endpoints: Vec<String>, client: reqwest::Client) -> Result<Self, RpcError> {
        if endpoints.is_empty() {
            return Err(RpcError::NoEndpoint);
        }
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.trim_end_matches('/').to_owned())
            .collect();
        let failover = Arc::new(Mutex::new(Failover::new(endpoints.len())));
        Ok(HttpRpc {
            endpoints,
            client,
            failover,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RpcError> {
        let mut last = RpcError::NoEndpoint;
        let order = lock(&self.failover).order();
        for i in order {
            let endpoint = &self.endpoints[i];
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
                    .map_err(|e| fail(crate::http::error_chain(&e)))?;
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
                Ok(v) => {
                    lock(&self.failover).answered(i);
                    return Ok(v);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

const BASE: &str = "/eth/v1/beacon/light_client";

impl ConsensusRpc for HttpRpc {
    fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    fn demote(&self, reason: &str) -> Option<String> {
        let i = lock(&self.failover).demote(|i| self.endpoints[i].clone(), reason)?;
        Some(self.endpoints[i].clone())
    }

    fn demotions(&self) -> Vec<Demotion> {
        lock(&self.failover).demotions()
    }

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
