//! A client of a deployed FirmwareIndex: every call has a timeout, every revert a name.

use std::collections::BTreeSet;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use firmchain_update::{ProductId, ReleaseRecord, Sequence};

use crate::FirmwareIndex::{self, FirmwareIndexErrors, FirmwareIndexInstance};

/// How long one RPC round trip (or waiting for a receipt) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A call the contract refused, by the rule that refused it.
#[derive(Debug, PartialEq, Eq)]
pub struct Revert(pub FirmwareIndexErrors);

pub(crate) fn product(p: &FixedBytes<32>) -> ProductId {
    ProductId(p.0)
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FirmwareIndexErrors as E;
        match &self.0 {
            E::NotOwner(e) => write!(f, "only the owner may do this ({} is not the owner)", e.caller),
            E::NotPendingOwner(e) => write!(f, "{} is not the pending owner", e.caller),
            E::NotPublisher(e) => write!(f, "{} is not a publisher of {}", e.caller, product(&e.product)),
            E::ZeroAddress(_) => write!(f, "the zero address is not allowed"),
            E::PublisherExists(e) => write!(f, "{} already publishes {}", e.publisher, scope(&e.product)),
            E::PublisherMissing(e) => {
                write!(f, "{} is not a publisher of {}", e.publisher, scope(&e.product))
            }
            E::InvalidThreshold(e) => {
                write!(
                    f,
                    "threshold {} is invalid with {} publishers (must be 1..=publishers)",
                    e.threshold, e.publishers
                )
            }
            E::SequenceNotNext(e) => write!(
                f,
                "sequence {} of {} is not next: the next sequence is {}",
                e.got,
                product(&e.product),
                e.expected
            ),
            E::UnknownBase(e) => write!(
                f,
                "base image {} is not the target of any release of {}",
                hex(&e.baseHash),
                product(&e.product)
            ),
            E::FullImageWithBase(e) => {
                write!(f, "a full image must not name a base (got {})", hex(&e.baseHash))
            }
            E::PatchWithoutBase(_) => write!(f, "a patch must name its base image"),
            E::EmptyField(e) => write!(f, "field {} must not be empty or zero", e.field),
            E::CidTooLong(e) => write!(f, "patch CID is {} bytes, the limit is 128", e.length),
            E::MinSequenceAboveSequence(e) => {
                write!(
                    f,
                    "min_sequence {} is above the release's sequence {}",
                    e.minSequence, e.sequence
                )
            }
            E::DuplicateApproval(e) => {
                write!(
                    f,
                    "{} already approved release digest {}",
                    e.publisher,
                    hex(&e.digest)
                )
            }
            E::UnknownRelease(e) => write!(f, "{} has no release {}", product(&e.product), e.sequence),
            E::AlreadyRevoked(e) => write!(
                f,
                "release {} of {} is already revoked",
                e.sequence,
                product(&e.product)
            ),
            other => crate::rollout_client::describe(other, f),
        }
    }
}

fn hex(b: &FixedBytes<32>) -> String {
    format!("{b}")
}

fn scope(p: &FixedBytes<32>) -> String {
    if p.0 == [0; 32] {
        "every product".into()
    } else {
        product(p).to_string()
    }
}

/// Why a call to the index failed.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("the contract refused: {0}")]
    Revert(Revert),
    #[error("{what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("{what}: {source}")]
    Rpc {
        what: &'static str,
        source: Box<alloy::contract::Error>,
    },
    #[error("{what}: {message}")]
    Transport { what: &'static str, message: String },
    #[error("no code at {0}: is the contract deployed on this chain?")]
    NoCode(Address),
    #[error("transaction {tx} reverted in block {block:?}")]
    Reverted { tx: B256, block: Option<u64> },
    #[error("invalid RPC URL {0:?}")]
    Url(String),
}

impl ContractError {
    pub(crate) fn from_call(what: &'static str, e: alloy::contract::Error) -> Self {
        match e.as_decoded_interface_error::<FirmwareIndexErrors>() {
            Some(decoded) => ContractError::Revert(Revert(decoded)),
            None => ContractError::Rpc {
                what,
                source: Box::new(e),
            },
        }
    }
}

/// The outcome of a publish or approve transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The transaction.
    pub tx: B256,
    /// The block it was included in.
    pub block: Option<u64>,
    /// Whether the release went live (false: it still awaits approvals).
    pub live: bool,
    /// The release's digest.
    pub digest: [u8; 32],
}

/// A publisher and what it may publish (`None`: every product).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublisherChange {
    pub publisher: Address,
    pub product: Option<ProductId>,
}

/// A client of one FirmwareIndex deployment.
#[derive(Clone, Debug)]
pub struct IndexClient {
    pub(crate) contract: FirmwareIndexInstance<DynProvider>,
    pub(crate) timeout: Duration,
}

fn parse_url(rpc: &str) -> Result<reqwest_url::Url, ContractError> {
    rpc.parse().map_err(|_| ContractError::Url(rpc.to_owned()))
}

mod reqwest_url {
    pub use alloy::transports::http::reqwest::Url;
}

/// A provider for `rpc`, signing with `signer` when given.
pub fn provider(rpc: &str, signer: Option<PrivateKeySigner>) -> Result<DynProvider, ContractError> {
    let url = parse_url(rpc)?;
    // HTTPS like the verifying clients: web PKI roots, SSL_CERT_FILE / SSL_CERT_DIR; host names via hickory.
    let http =
        firmchain_lightclient::http::client(&Default::default()).map_err(|e| ContractError::Transport {
            what: "HTTPS setup",
            message: e.to_string(),
        })?;
    let provider = match signer {
        // Nonces come from the node for every transaction: a locally cached nonce goes out of step when a
        // call is refused after the nonce was reserved, and every later transaction would then wait forever.
        Some(s) => ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(s))
            .connect_reqwest(http, url)
            .erased(),
        None => ProviderBuilder::new().connect_reqwest(http, url).erased(),
    };
    // alloy polls for receipts every 7 s unless the URL is on loopback: a publish would then return up to 7 s
    // after its inclusion. Four requests a second while a transaction waits is little for any RPC.
    provider.client().set_poll_interval(RECEIPT_POLL);
    Ok(provider)
}

/// How often a sent transaction's receipt is asked for.
pub const RECEIPT_POLL: Duration = Duration::from_millis(250);

impl IndexClient {
    /// A client of the index at `address`; fails if no contract code is there.
    pub async fn connect(
        provider: DynProvider,
        address: Address,
        timeout: Duration,
    ) -> Result<Self, ContractError> {
        let code = within(timeout, "reading contract code", provider.get_code_at(address))
            .await?
            .map_err(|e| ContractError::Transport {
                what: "reading contract code",
                message: e.to_string(),
            })?;
        if code.is_empty() {
            return Err(ContractError::NoCode(address));
        }
        Ok(IndexClient {
            contract: FirmwareIndex::new(address, provider),
            timeout,
        })
    }

    /// Deploy a new index owned by `owner` with approval threshold `threshold`; waits for inclusion.
    pub async fn deploy(
        provider: DynProvider,
        owner: Address,
        threshold: u64,
        timeout: Duration,
    ) -> Result<Self, ContractError> {
        let deploying = FirmwareIndex::deploy(provider.clone(), owner, U256::from(threshold));
        let contract = within(timeout, "deploying FirmwareIndex", deploying)
            .await?
            .map_err(|e| ContractError::from_call("deploying FirmwareIndex", e))?;
        Ok(IndexClient { contract, timeout })
    }

    /// The contract's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    pub(crate) async fn send<C>(
        &self,
        what: &'static str,
        call: C,
    ) -> Result<alloy::rpc::types::TransactionReceipt, ContractError>
    where
        C: Future<
            Output = Result<
                alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
                alloy::contract::Error,
            >,
        >,
    {
        let pending = within(self.timeout, what, call)
            .await?
            .map_err(|e| ContractError::from_call(what, e))?;
        let receipt = within(self.timeout, what, pending.get_receipt())
            .await?
            .map_err(|e| ContractError::Transport {
                what,
                message: e.to_string(),
            })?;
        if !receipt.status() {
            return Err(ContractError::Reverted {
                tx: receipt.transaction_hash,
                block: receipt.block_number,
            });
        }
        Ok(receipt)
    }

    /// Publish (or, with threshold > 1, approve) a release; waits for inclusion.
    pub async fn publish(&self, record: &ReleaseRecord) -> Result<Published, ContractError> {
        let call = self.contract.publish(record.into());
        let receipt = self.send("publishing", async { call.send().await }).await?;
        let live = receipt.decoded_log::<FirmwareIndex::ReleasePublished>().is_some();
        Ok(Published {
            tx: receipt.transaction_hash,
            block: receipt.block_number,
            live,
            digest: record.digest(),
        })
    }

    /// Approve a pending release (the same rules as [`IndexClient::publish`]).
    pub async fn approve(&self, record: &ReleaseRecord) -> Result<Published, ContractError> {
        let call = self.contract.approve(record.into());
        let receipt = self.send("approving", async { call.send().await }).await?;
        let live = receipt.decoded_log::<FirmwareIndex::ReleasePublished>().is_some();
        Ok(Published {
            tx: receipt.transaction_hash,
            block: receipt.block_number,
            live,
            digest: record.digest(),
        })
    }

    /// Revoke a live release: the owner at once, a publisher as one of the threshold's approvals.
    pub async fn revoke(
        &self,
        product: &ProductId,
        sequence: Sequence,
        reason: &str,
    ) -> Result<crate::Approval, ContractError> {
        let call = self
            .contract
            .revoke(FixedBytes(product.0), sequence.0, reason.to_owned());
        let receipt = self.send("revoking", async { call.send().await }).await?;
        Ok(crate::Approval {
            tx: receipt.transaction_hash,
            done: receipt.decoded_log::<FirmwareIndex::ReleaseRevoked>().is_some(),
        })
    }

    /// Allow `publisher` to publish `product` (`None`: every product).
    pub async fn add_publisher(
        &self,
        publisher: Address,
        product: Option<&ProductId>,
    ) -> Result<B256, ContractError> {
        let call = self
            .contract
            .addPublisher(publisher, FixedBytes(product.map_or([0; 32], |p| p.0)));
        Ok(self
            .send("adding a publisher", async { call.send().await })
            .await?
            .transaction_hash)
    }

    /// Withdraw a publisher's right (voids pending approvals).
    pub async fn remove_publisher(
        &self,
        publisher: Address,
        product: Option<&ProductId>,
    ) -> Result<B256, ContractError> {
        let call = self
            .contract
            .removePublisher(publisher, FixedBytes(product.map_or([0; 32], |p| p.0)));
        Ok(self
            .send("removing a publisher", async { call.send().await })
            .await?
            .transaction_hash)
    }

    /// Set the approval threshold (voids pending approvals).
    pub async fn set_threshold(&self, threshold: u64) -> Result<B256, ContractError> {
        let call = self.contract.setThreshold(U256::from(threshold));
        Ok(self
            .send("setting the threshold", async { call.send().await })
            .await?
            .transaction_hash)
    }

    /// The newest live release of `product`: its sequence (0: none) and digest.
    pub async fn latest(&self, product: &ProductId) -> Result<(Sequence, [u8; 32]), ContractError> {
        let call = self.contract.latest(FixedBytes(product.0));
        let r = within(self.timeout, "reading latest", call.call())
            .await?
            .map_err(|e| ContractError::from_call("reading latest", e))?;
        Ok((Sequence(r.sequence), r.releaseDigest.0))
    }

    /// Whether a release was revoked.
    pub async fn is_revoked(&self, product: &ProductId, sequence: Sequence) -> Result<bool, ContractError> {
        let call = self.contract.isRevoked(FixedBytes(product.0), sequence.0);
        within(self.timeout, "reading revocation", call.call())
            .await?
            .map_err(|e| ContractError::from_call("reading revocation", e))
    }

    /// The owner, the threshold and the current publishers (from the publisher events, checked against state).
    pub async fn governance(&self) -> Result<(Address, u64, Vec<PublisherChange>), ContractError> {
        let what = "reading publishers";
        let rpc = |e: alloy::contract::Error| ContractError::from_call(what, e);
        let owner = within(self.timeout, what, self.contract.owner().call())
            .await?
            .map_err(rpc)?;
        let threshold = within(self.timeout, what, self.contract.threshold().call())
            .await?
            .map_err(rpc)?;
        let added_filter = self.contract.PublisherAdded_filter().from_block(0);
        let added = within(self.timeout, what, added_filter.query())
            .await?
            .map_err(|e| ContractError::Transport {
                what,
                message: e.to_string(),
            })?;
        let candidates: BTreeSet<(Address, [u8; 32])> =
            added.iter().map(|(e, _)| (e.publisher, e.product.0)).collect();
        let mut current = Vec::new();
        for (publisher, product) in candidates {
            let still = if product == [0; 32] {
                self.contract.globalPublisher(publisher).call().await
            } else {
                self.contract
                    .productPublisher(FixedBytes(product), publisher)
                    .call()
                    .await
            }
            .map_err(rpc)?;
            if still {
                current.push(PublisherChange {
                    publisher,
                    product: (product != [0; 32]).then_some(ProductId(product)),
                });
            }
        }
        Ok((owner, threshold.saturating_to(), current))
    }
}

pub(crate) async fn within<T>(
    after: Duration,
    what: &'static str,
    fut: impl IntoFuture<Output = T>,
) -> Result<T, ContractError> {
    tokio::time::timeout(after, fut.into_future())
        .await
        .map_err(|_| ContractError::Timeout { what, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote RPC gets the same quick receipt polling as a local one (alloy's default there is 7 s).
    #[test]
    fn receipts_are_polled_quickly_on_any_rpc() {
        for url in [
            "http://10.77.0.2:8545",
            "https://rpc.example.org",
            "http://127.0.0.1:8545",
        ] {
            let p = provider(url, None).unwrap();
            assert_eq!(p.client().poll_interval(), RECEIPT_POLL, "{url}");
            let signer = PrivateKeySigner::random();
            let p = provider(url, Some(signer)).unwrap();
            assert_eq!(p.client().poll_interval(), RECEIPT_POLL, "{url}");
        }
    }
}
