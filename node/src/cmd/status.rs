//! `firmchain status` (the API when it answers, else the data folder) and `firmchain node health` (a
//! container's HEALTHCHECK: a scratch image has no shell or curl).

use std::path::{Path, PathBuf};
use std::time::Duration;

use firmchain_actors::slots::{Image, read_pointer};
use firmchain_actors::state::NodeState;
use firmchain_config::{Flags, Sources};
use serde_json::{Value, json};

use crate::cli::StatusArgs;
use crate::error::CliError;
use crate::output::Output;

/// How long `status` waits for the API before it reads the data folder.
const API_WAIT: Duration = Duration::from_secs(3);

/// The API URL and the data folder of the node `args` point at: the flags, else its configuration, else the
/// defaults.
fn locations(args: &StatusArgs) -> Result<(String, PathBuf), CliError> {
    let default_exists = Path::new(firmchain_config::DEFAULT_CONFIG).is_file();
    let file = firmchain_config::config_path(args.config.clone(), None, default_exists);
    // Only `api.listen` and `data_dir` matter here: the rest may be incomplete (set for the service only).
    let flags = Flags {
        repository: false,
        data_dir: args.data.clone(),
    };
    let config = Sources::with_process_env(file, Vec::new(), flags)
        .merge_unvalidated()
        .map_err(|e| CliError::Usage(format!("configuration: {e}")))?;
    let api = args
        .api
        .clone()
        .unwrap_or_else(|| match config.api.listen.as_str() {
            "" => "http://127.0.0.1:8420".to_owned(),
            listen => format!("http://{}", listen.replace("0.0.0.0", "127.0.0.1")),
        });
    Ok((api, args.data.clone().unwrap_or(config.data_dir)))
}

/// An error with its causes (reqwest's own message leaves out why a connection failed).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(&format!(": {text}"));
        }
        cause = c.source();
    }
    s
}

/// `GET /status`, or why it did not answer.
async fn api_status(api: &str, wait: Duration) -> Result<Value, String> {
    let url = format!("{}/status", api.trim_end_matches('/'));
    let client = firmchain_lightclient::http::api_client(wait).map_err(|e| e.to_string())?;
    let r = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", with_causes(&e)))?;
    let code = r.status();
    let body: Value = r
        .json()
        .await
        .map_err(|e| format!("GET {url}: {}", with_causes(&e)))?;
    if !code.is_success() {
        return Err(format!("GET {url}: {code}"));
    }
    Ok(body)
}

fn image(i: &Image) -> Value {
    json!({ "slot": i.slot, "sequence": i.sequence.0, "hash": i.hash.to_string(), "size": i.size })
}

/// The status document of a stopped node, from its data folder.
pub fn offline_status(data: &Path) -> Result<Value, CliError> {
    if !data.is_dir() {
        return Err(CliError::Usage(format!(
            "{}: no data folder here (pass --data, or --config with the node's data_dir)",
            data.display()
        )));
    }
    let pointer = read_pointer(&data.join("slots")).map_err(|e| CliError::Demo(e.to_string()))?;
    let state_path = data.join("state.redb");
    let entries = if state_path.exists() {
        let state = NodeState::open(&state_path).map_err(|e| {
            CliError::Demo(format!(
                "{e} (a node that runs holds this file: ask its API, or stop it first)"
            ))
        })?;
        state.entries().map_err(|e| CliError::Demo(e.to_string()))?
    } else {
        Vec::new()
    };
    let rolled_back: Vec<&Value> = entries
        .iter()
        .filter(|e| e.key.starts_with("rolled_back/"))
        .filter_map(|e| e.value.as_ref()?.as_array())
        .flatten()
        .collect();
    Ok(json!({
        "source": "data_dir",
        "data_dir": data.display().to_string(),
        "installed": pointer.as_ref().map(|(active, _)| image(active)),
        "previous": pointer.as_ref().and_then(|(_, p)| p.as_ref().map(image)),
        "rollbacks": rolled_back,
        "damaged": entries.iter().filter(|e| e.damaged.is_some()).map(|e| &e.key).collect::<Vec<_>>(),
        "entries": entries,
    }))
}

fn offline_summary(v: &Value) -> String {
    let mut s = format!("stopped node, data in {}", v["data_dir"].as_str().unwrap_or("?"));
    match v["installed"].as_object() {
        Some(i) => s.push_str(&format!(
            "\n  installed  release {} in slot {} ({})",
            i["sequence"],
            i["slot"].as_str().unwrap_or("?"),
            i["hash"].as_str().unwrap_or("?")
        )),
        None => s.push_str("\n  installed  no image slots (never started, or another install mode)"),
    }
    if let Some(p) = v["previous"].as_object() {
        s.push_str(&format!(
            "\n  previous   release {} in slot {}",
            p["sequence"],
            p["slot"].as_str().unwrap_or("?")
        ));
    }
    for r in v["rollbacks"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n  rolled back release {}: {}",
            r["sequence"],
            r["reason"].as_str().unwrap_or("?")
        ));
    }
    for k in v["damaged"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n  DAMAGED    {} (see `firmchain state show`)",
            k.as_str().unwrap_or("?")
        ));
    }
    if let Some(e) = v["api_error"].as_str() {
        s.push_str(&format!("\n  api        not answering: {e}"));
    }
    s
}

pub fn run(args: StatusArgs, out: &Output) -> Result<(), CliError> {
    let (api, data) = locations(&args)?;
    let api_error = if args.offline {
        None
    } else {
        match super::block_on(async { Ok(api_status(&api, API_WAIT).await) })? {
            Ok(mut v) => {
                if let Some(o) = v.as_object_mut() {
                    o.insert("source".into(), "api".into());
                    o.insert("api".into(), api.clone().into());
                }
                out.result(&v, || format!("{}\n  (from {api})", super::node::summary(&v)));
                return Ok(());
            }
            Err(e) => Some(e),
        }
    };
    let mut v = offline_status(&data).map_err(|e| match (&e, &api_error) {
        (CliError::Usage(m), Some(api)) => CliError::Usage(format!("{api}; and {m}")),
        _ => e,
    })?;
    if let (Some(o), Some(e)) = (v.as_object_mut(), api_error) {
        o.insert("api_error".into(), e.into());
    }
    out.result(&v, || offline_summary(&v));
    Ok(())
}

/// Whether a `/status` document is healthy: a node answered; with `chain`, its head is verified and fresh.
pub fn healthy(v: &Value, chain: bool) -> Result<(), String> {
    if v["role"].as_str().is_none() {
        return Err("the answer is not a node status".into());
    }
    if chain && v["chain_state"].as_str() != Some("verified") {
        let state = v["chain_state"].as_str().unwrap_or("unknown");
        let why = v["chain_error"]
            .as_str()
            .map_or(String::new(), |e| format!(": {e}"));
        return Err(format!("chain head {state}{why}"));
    }
    Ok(())
}

/// `firmchain node health`.
pub async fn health(api: &str, timeout: u64, chain: bool, out: &Output) -> Result<(), CliError> {
    let v = api_status(api, Duration::from_secs(timeout))
        .await
        .map_err(CliError::Unhealthy)?;
    healthy(&v, chain).map_err(|e| CliError::Unhealthy(format!("{api}: {e}")))?;
    let report = json!({ "healthy": true, "api": api, "chain_state": v["chain_state"] });
    out.result(&report, || format!("healthy ({api})"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_a_status_and_with_chain_a_verified_head() {
        let ok = json!({ "role": "device", "chain_state": "verified" });
        let stale = json!({ "role": "device", "chain_state": "stale", "chain_error": "rpc down" });
        assert!(healthy(&ok, true).is_ok());
        assert!(healthy(&stale, false).is_ok());
        assert_eq!(healthy(&stale, true).unwrap_err(), "chain head stale: rpc down");
        assert!(healthy(&json!({ "error": "x" }), false).is_err());
    }
}
