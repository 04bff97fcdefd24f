//! `firmchain contract ...`: deploy and manage the FirmwareIndex.

use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use firmchain_contracts::{IndexClient, provider};
#[cfg(feature = "publisher")]
use firmchain_update::Sequence;
use serde::Serialize;
use serde_json::json;

use crate::cli::{ChainArgs, ContractCommand, IndexArgs};
use crate::error::CliError;
use crate::output::Output;

/// The signing key: `--keystore` (decrypted with the keystore password: FIRMCHAIN_KEYSTORE_PASSWORD,
/// FIRMCHAIN_KEYSTORE_PASSWORD_FILE, `--password-file` or the credential `keystore_password`) or the private key
/// (FIRMCHAIN_PRIVATE_KEY, FIRMCHAIN_PRIVATE_KEY_FILE or the credential `private_key`). Errors never echo key
/// material.
#[cfg(feature = "publisher")]
pub(super) fn signer(chain: &ChainArgs) -> Result<PrivateKeySigner, CliError> {
    use crate::secrets::{KEYSTORE_PASSWORD, PRIVATE_KEY, secret};
    if let Some(path) = &chain.keystore {
        let password = secret(KEYSTORE_PASSWORD, chain.password_file.as_deref())?.ok_or_else(|| {
            CliError::Key(
                "--keystore needs its password: FIRMCHAIN_KEYSTORE_PASSWORD(_FILE), --password-file or the \
                 credential keystore_password"
                    .into(),
            )
        })?;
        return PrivateKeySigner::decrypt_keystore(path, password)
            .map_err(|e| CliError::Key(format!("cannot decrypt keystore {}: {e}", path.display())));
    }
    match secret(PRIVATE_KEY, None)? {
        Some(key) => parse_key(&key),
        None => Err(CliError::Key(
            "no signing key: set FIRMCHAIN_PRIVATE_KEY or FIRMCHAIN_PRIVATE_KEY_FILE, or pass --keystore FILE".into(),
        )),
    }
}

/// A hex private key, without echoing it.
pub(super) fn parse_key(key: &str) -> Result<PrivateKeySigner, CliError> {
    key.trim()
        .parse()
        .map_err(|_| CliError::Key("the private key is not a 32-byte hex private key".into()))
}

/// The value of a flag, else of the variable it had before it took the node's configuration name.
pub(super) fn flag_or_legacy(flag: Option<&str>, legacy: &str) -> Option<String> {
    flag.map(str::to_owned).or_else(|| std::env::var(legacy).ok())
}

/// The execution RPC URL, which every chain command needs.
pub(super) fn rpc(chain: &ChainArgs) -> Result<String, CliError> {
    flag_or_legacy(chain.rpc.as_deref(), "FIRMCHAIN_RPC").ok_or_else(|| {
        CliError::Usage("--execution-rpc (or FIRMCHAIN_CHAIN__EXECUTION_RPC) is required".into())
    })
}

fn address(text: &str, what: &str) -> Result<Address, CliError> {
    text.parse()
        .map_err(|_| CliError::Usage(format!("{what} {text:?} is not an address")))
}

pub async fn connect(index: &IndexArgs, sign: bool) -> Result<IndexClient, CliError> {
    #[cfg(feature = "publisher")]
    let key = if sign { Some(signer(&index.chain)?) } else { None };
    #[cfg(not(feature = "publisher"))]
    let key = match sign {
        true => return Err(super::not_in_build("contract (sending a transaction)")),
        false => None,
    };
    let p = provider(&rpc(&index.chain)?, key)?;
    let contract = flag_or_legacy(index.contract.as_deref(), "FIRMCHAIN_CONTRACT")
        .ok_or_else(|| CliError::Usage("--contract (or FIRMCHAIN_CHAIN__CONTRACT) is required".into()))?;
    let at = address(&contract, "--contract")?;
    Ok(IndexClient::connect(p, at, Duration::from_secs(index.chain.rpc_timeout)).await?)
}

#[derive(Serialize)]
struct Governance {
    contract: String,
    owner: String,
    threshold: u64,
    publishers: Vec<serde_json::Value>,
}

/// Run one `contract` subcommand on a small single-threaded runtime.
pub fn run(command: ContractCommand, out: &Output) -> Result<(), CliError> {
    super::block_on(run_async(command, out))
}

async fn run_async(command: ContractCommand, out: &Output) -> Result<(), CliError> {
    match command {
        #[cfg(feature = "publisher")]
        ContractCommand::Deploy {
            chain,
            owner,
            threshold,
            publishers,
        } => {
            let key = signer(&chain)?;
            let me = key.address();
            let owner = owner
                .as_deref()
                .map(|o| address(o, "--owner"))
                .transpose()?
                .unwrap_or(me);
            let publishers = publishers
                .iter()
                .map(|p| address(p, "--publisher"))
                .collect::<Result<Vec<_>, _>>()?;
            if !publishers.is_empty() && owner != me {
                return Err(CliError::Usage(
                    "--publisher needs the signing account to be the owner".into(),
                ));
            }
            if threshold as usize > publishers.len().max(1) {
                return Err(CliError::Usage(format!(
                    "--threshold {threshold} needs at least {threshold} --publisher accounts"
                )));
            }
            let timeout = Duration::from_secs(chain.rpc_timeout);
            let index = IndexClient::deploy(provider(&rpc(&chain)?, Some(key))?, owner, 1, timeout).await?;
            for p in &publishers {
                index.add_publisher(*p, None).await?;
            }
            if threshold > 1 {
                index.set_threshold(threshold).await?;
            }
            let result = json!({ "contract": index.address().to_string(), "owner": owner.to_string(),
                "threshold": threshold, "publishers": publishers.iter().map(|p| p.to_string()).collect::<Vec<_>>() });
            out.result(&result, || index.address().to_string());
        }
        ContractCommand::Publishers { index } => {
            let client = connect(&index, false).await?;
            let (owner, threshold, publishers) = client.governance().await?;
            let g = Governance {
                contract: client.address().to_string(),
                owner: owner.to_string(),
                threshold,
                publishers: publishers
                    .iter()
                    .map(|p| {
                        json!({ "publisher": p.publisher.to_string(),
                        "product": p.product.map(|x| x.to_string()) })
                    })
                    .collect(),
            };
            out.result(&g, || {
                let mut s = format!(
                    "owner      {}\nthreshold  {} of {}\n",
                    g.owner,
                    threshold,
                    publishers.len()
                );
                for p in &publishers {
                    let scope = p
                        .product
                        .map_or_else(|| "every product".to_owned(), |x| x.to_string());
                    s.push_str(&format!("publisher  {}  {}\n", p.publisher, scope));
                }
                s.trim_end().to_owned()
            });
        }
        #[cfg(feature = "publisher")]
        ContractCommand::AddPublisher {
            index,
            publisher,
            product,
        } => {
            let who = address(&publisher, "publisher")?;
            let tx = connect(&index, true)
                .await?
                .add_publisher(who, product.as_ref())
                .await?;
            out.result(&json!({ "tx": tx.to_string() }), || {
                format!("added {who} (tx {tx})")
            });
        }
        #[cfg(feature = "publisher")]
        ContractCommand::RemovePublisher {
            index,
            publisher,
            product,
        } => {
            let who = address(&publisher, "publisher")?;
            let tx = connect(&index, true)
                .await?
                .remove_publisher(who, product.as_ref())
                .await?;
            out.result(&json!({ "tx": tx.to_string() }), || {
                format!("removed {who} (tx {tx})")
            });
        }
        #[cfg(feature = "publisher")]
        ContractCommand::Threshold { index, threshold } => {
            let tx = connect(&index, true).await?.set_threshold(threshold).await?;
            out.result(&json!({ "tx": tx.to_string(), "threshold": threshold }), || {
                format!("threshold is now {threshold} (tx {tx})")
            });
        }
        #[cfg(feature = "publisher")]
        ContractCommand::Revoke {
            index,
            product,
            sequence,
            reason,
        } => {
            let a = connect(&index, true)
                .await?
                .revoke(&product, Sequence(sequence), &reason)
                .await?;
            let tx = a.tx;
            out.result(
                &json!({ "tx": tx.to_string(), "product": product.to_string(), "sequence": sequence, "revoked": a.done }),
                || match a.done {
                    true => format!("revoked {product} release {sequence} (tx {tx})"),
                    false => format!(
                        "approved revoking {product} release {sequence}; more publishers must approve (tx {tx})"
                    ),
                },
            );
        }
        #[cfg(feature = "publisher")]
        c @ (ContractCommand::Pause { .. }
        | ContractCommand::Resume { .. }
        | ContractCommand::Cancel { .. }
        | ContractCommand::Guardian(_)
        | ContractCommand::Delay { .. }
        | ContractCommand::PauseBound { .. }
        | ContractCommand::RolloutStatus { .. }) => super::rollout::run(c, out).await?,
        #[cfg(not(feature = "publisher"))]
        c @ ContractCommand::RolloutStatus { .. } => super::rollout::run(c, out).await?,
        ContractCommand::Latest { index, product } => {
            let (seq, digest) = connect(&index, false).await?.latest(&product).await?;
            let digest = format!("0x{}", hex_of(&digest));
            out.result(
                &json!({ "product": product.to_string(), "sequence": seq.0, "digest": digest }),
                || format!("{product} sequence {} digest {digest}", seq.0),
            );
        }
        #[cfg(not(feature = "publisher"))]
        c => return Err(super::not_in_build(sending(&c))),
    }
    Ok(())
}

/// The name of a `contract` subcommand that sends a transaction.
#[cfg(not(feature = "publisher"))]
fn sending(c: &ContractCommand) -> &'static str {
    match c {
        ContractCommand::Deploy { .. } => "contract deploy",
        ContractCommand::AddPublisher { .. } => "contract add-publisher",
        ContractCommand::RemovePublisher { .. } => "contract remove-publisher",
        ContractCommand::Threshold { .. } => "contract threshold",
        ContractCommand::Revoke { .. } => "contract revoke",
        ContractCommand::Pause { .. } => "contract pause",
        ContractCommand::Resume { .. } => "contract resume",
        ContractCommand::Cancel { .. } => "contract cancel",
        ContractCommand::Guardian(_) => "contract guardian",
        ContractCommand::Delay { .. } => "contract delay",
        ContractCommand::PauseBound { .. } => "contract pause-bound",
        _ => "contract",
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
