//! `firmchain node ...`: a running node's HTTP API from the command line.

use std::time::Duration;

use alloy::transports::http::reqwest;
use serde_json::Value;

use crate::cli::NodeCommand;
use crate::error::CliError;
use crate::output::{Output, human_bytes};

fn client(timeout: u64) -> Result<reqwest::Client, CliError> {
    firmchain_lightclient::http::api_client(Duration::from_secs(timeout)).map_err(|e| CliError::Rpc {
        what: "HTTP client",
        message: e.to_string(),
    })
}

async fn answer(what: &'static str, r: Result<reqwest::Response, reqwest::Error>) -> Result<Value, CliError> {
    let fail = |message: String| CliError::Rpc { what, message };
    let r = r.map_err(|e| fail(e.to_string()))?;
    let code = r.status();
    let body: Value = r.json().await.map_err(|e| fail(e.to_string()))?;
    if !code.is_success() {
        let message = body["error"].as_str().unwrap_or("no reason given").to_owned();
        return Err(fail(format!("{code}: {message}")));
    }
    Ok(body)
}

pub fn run(command: NodeCommand, out: &Output) -> Result<(), CliError> {
    super::block_on(async {
        match command {
            NodeCommand::Status { api, watch } => {
                let url = format!("{}/status", api.api.trim_end_matches('/'));
                let client = client(api.api_timeout)?;
                let Some(every) = watch else {
                    let v = answer("GET /status", client.get(&url).send().await).await?;
                    out.result(&v, || summary(&v));
                    return Ok(());
                };
                let stop = super::p2p::StopSignal::catch().wait();
                tokio::pin!(stop);
                loop {
                    let v = answer("GET /status", client.get(&url).send().await).await?;
                    out.line(&v, || format!("{}\n", summary(&v)));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(every)) => {}
                        _ = &mut stop => return Ok(()),
                    }
                }
            }
            NodeCommand::Health {
                api,
                api_timeout,
                chain,
            } => super::status::health(&api, api_timeout, chain, out).await,
            NodeCommand::Publish {
                api,
                to,
                from,
                product,
                min_sequence,
                terms,
            } => {
                let release = Release {
                    to,
                    from,
                    product,
                    min_sequence,
                    terms: super::rollout::terms(&terms)?,
                };
                publish(&api.api, api.api_timeout, release, out).await
            }
        }
    })
}

/// What to publish through a node's API.
#[derive(Debug)]
pub struct Release {
    pub to: std::path::PathBuf,
    pub from: Option<std::path::PathBuf>,
    pub product: Option<firmchain_update::ProductId>,
    pub min_sequence: u64,
    /// The release's terms.
    pub terms: firmchain_update::record::ReleaseTerms,
}

/// `POST /publish`: the body is the new image, preceded by the base image when `from` is given (`base_len`).
pub async fn publish(api: &str, timeout: u64, release: Release, out: &Output) -> Result<(), CliError> {
    let image = std::fs::read(&release.to).map_err(CliError::file(&release.to))?;
    let mut url = format!(
        "{}/publish?min_sequence={}",
        api.trim_end_matches('/'),
        release.min_sequence
    );
    if let Some(p) = release.product {
        url.push_str(&format!("&product={p}"));
    }
    url.push_str(&terms_query(&release.terms));
    let body = match &release.from {
        Some(from) => {
            let mut base = std::fs::read(from).map_err(CliError::file(from))?;
            url.push_str(&format!("&base_len={}", base.len()));
            base.extend_from_slice(&image);
            base
        }
        None => image,
    };
    let mut req = client(timeout)?.post(&url).body(body);
    if let Some(token) = crate::secrets::secret(crate::secrets::API_TOKEN, None)? {
        req = req.bearer_auth(token.trim());
    }
    let spinner = out.spinner("publishing: patch, bundle, provide, transaction, inclusion");
    let v = answer("POST /publish", req.send().await).await;
    spinner.finish_and_clear();
    let v = v?;
    out.result(&v, || {
        let mut s = format!(
            "{} release {} ({}) published in block {}\n  bundle {}",
            v["product"].as_str().unwrap_or("?"),
            v["sequence"],
            v["kind"].as_str().unwrap_or("?"),
            v["block"],
            v["bundle"].as_str().unwrap_or("?")
        );
        for e in v["entries"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "\n  {:<5} {} ({})",
                e["name"].as_str().unwrap_or("?"),
                e["cid"].as_str().unwrap_or("?"),
                human_bytes(e["size"].as_u64().unwrap_or(0))
            ));
        }
        s
    });
    Ok(())
}

/// The release terms as `POST /publish` query parameters (none for the default terms).
pub fn terms_query(t: &firmchain_update::record::ReleaseTerms) -> String {
    let mut q = String::new();
    if !t.hardware.is_empty() {
        let list: Vec<String> = t
            .hardware
            .iter()
            .map(|c| format!("0x{}", hex::encode(c.0)))
            .collect();
        q.push_str(&format!("&hardware={}", list.join(",")));
    }
    if t.not_after != 0 {
        q.push_str(&format!("&expires={}", t.not_after));
    }
    if t.rollout != firmchain_update::record::RolloutSchedule::FULL {
        q.push_str(&format!(
            "&rollout_start_bps={}&rollout_step_bps={}&rollout_interval_secs={}",
            t.rollout.start_bps, t.rollout.step_bps, t.rollout.interval_secs
        ));
    }
    if let Ok(Some(cid)) = t.notes() {
        q.push_str(&format!("&notes={cid}"));
    }
    q
}

/// A human summary of `/status`.
pub fn summary(v: &Value) -> String {
    let mut s = format!(
        "{} for {} (peer {})",
        v["role"].as_str().unwrap_or("?"),
        v["product"].as_str().unwrap_or("?"),
        v["peer_id"].as_str().unwrap_or("?")
    );
    if let Some(i) = v["installed"].as_object() {
        s.push_str(&format!(
            "\n  installed  release {} ({})",
            i["sequence"],
            i["hash"].as_str().unwrap_or("?")
        ));
    }
    match v["chain"].as_object() {
        Some(c) => s.push_str(&format!(
            "\n  chain      block {} verified ({} mode), {} s old{}",
            c["block"],
            c["mode"].as_str().unwrap_or("?"),
            c["age_seconds"],
            if c["stale"].as_bool() == Some(true) {
                " STALE"
            } else {
                ""
            }
        )),
        None => s.push_str("\n  chain      not read yet"),
    }
    if let Some(e) = v["chain_error"].as_str() {
        s.push_str(&format!("\n  chain error {e}"));
    }
    for w in v["waiting"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n  waiting    release {}: {}",
            w["sequence"],
            w["message"].as_str().unwrap_or("?")
        ));
    }
    s.push_str(&format!("\n  peers      {}", v["peers"]));
    if let Some(f) = v["fetch"].as_object() {
        s.push_str(&format!(
            "\n  fetching   release {} ({}): {} of {} blocks from {} peers",
            f["sequence"],
            f["payload"].as_str().unwrap_or("?"),
            f["blocks"],
            f["known_blocks"],
            f["peers"]
        ));
    }
    if let Some(f) = v["last_fetch"].as_object() {
        s.push_str(&format!(
            "\n  last fetch release {} ({}): {} blocks, {} from the store",
            f["sequence"],
            f["payload"].as_str().unwrap_or("?"),
            f["blocks"],
            f["from_store"]
        ));
        for p in f["peers"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "\n               {} blocks from {}",
                p["blocks"],
                p["peer"].as_str().unwrap_or("?")
            ));
        }
    }
    for r in v["rollbacks"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n  rolled back release {}: {}",
            r["sequence"],
            r["reason"].as_str().unwrap_or("?")
        ));
    }
    for r in v["rejected"].as_array().into_iter().flatten() {
        s.push_str(&format!("\n  rejected   {}", r.as_str().unwrap_or("?")));
    }
    s.push_str(&format!(
        "\n  uploaded   {}",
        human_bytes(v["uploaded_bytes"].as_u64().unwrap_or(0))
    ));
    s
}
