//! `firmchain chain checkpoint show|set`: a node's trusted light-client checkpoint, the configured one
//! (`chain.checkpoint`) beside the one it persisted, and the way to replace the persisted one (a device that was
//! offline past the weak-subjectivity window is recovered without deleting its data).

use std::time::Duration;

use firmchain_actors::node::spec_of;
use firmchain_actors::state::NodeState;
use firmchain_config::{Config, Flags, Sources};
use firmchain_lightclient::client::{ClientError, LightClient, Persisted, check_checkpoint_age};
use firmchain_lightclient::consensus::ChainSpec;
use firmchain_lightclient::http::HttpOptions;
use firmchain_lightclient::rpc::HttpRpc;
use serde_json::{Value, json};

use super::chain::{parse_root, unix_now};
use crate::cli::{CheckpointCommand, NodeConfigArgs};
use crate::error::CliError;
use crate::output::Output;

pub async fn run(command: CheckpointCommand, out: &Output) -> Result<(), CliError> {
    match command {
        CheckpointCommand::Show { node } => show(&load(&node)?, out).await,
        CheckpointCommand::Set { root, force, node } => set(&load(&node)?, &root, force, out).await,
    }
}

/// The node's configuration, read as `firmchain run` reads it.
fn load(args: &NodeConfigArgs) -> Result<Config, CliError> {
    let mut set = args.set.clone();
    if let Some(n) = &args.network {
        set.push(format!("chain.network={n}"));
    }
    let flags = Flags {
        repository: false,
        data_dir: args.data.clone(),
    };
    let sources = Sources::with_process_env(args.config.clone(), set, flags);
    Config::load(&sources).map_err(|e| CliError::Usage(format!("configuration: {e}")))
}

fn spec(config: &Config) -> Result<ChainSpec, CliError> {
    spec_of(&config.chain).map_err(|e| CliError::Usage(e.to_string()))
}

fn consensus_rpc(config: &Config) -> Result<HttpRpc, CliError> {
    let c = &config.chain;
    if c.consensus_rpc.is_empty() {
        return Err(CliError::Usage(
            "chain.consensus_rpc is not configured: the checkpoint is checked against a beacon node".into(),
        ));
    }
    let options = HttpOptions {
        timeout: Some(Duration::from_secs(c.timeout_secs)),
        ca_file: c.ca_file.clone(),
    };
    Ok(HttpRpc::with_options(c.consensus_rpc.clone(), &options).map_err(ClientError::from)?)
}

/// The node's state store; `None` when the node never ran (nothing persisted yet).
fn open_state(config: &Config, create: bool) -> Result<Option<NodeState>, CliError> {
    let path = config.data_dir.join("state.redb");
    if !create && !path.exists() {
        return Ok(None);
    }
    if create {
        std::fs::create_dir_all(&config.data_dir).map_err(CliError::file(&config.data_dir))?;
    }
    NodeState::open(&path).map(Some).map_err(|e| {
        CliError::Usage(format!(
            "{e} (is the node running? stop it first: it holds its state store open)"
        ))
    })
}

/// One checkpoint as `show` prints it.
struct Entry {
    root: String,
    slot: Option<u64>,
    /// Why the slot is unknown.
    note: Option<String>,
}

impl Entry {
    fn age(&self, spec: &ChainSpec, now: u64) -> Option<u64> {
        self.slot.map(|s| now.saturating_sub(spec.time_of(s)))
    }

    fn json(&self, spec: &ChainSpec, now: u64, window: u64) -> Value {
        let age = self.age(spec, now);
        json!({ "root": self.root, "slot": self.slot, "age_seconds": age,
            "inside_window": age.map(|a| a <= window), "note": self.note })
    }

    fn line(&self, what: &str, spec: &ChainSpec, now: u64, window: u64) -> String {
        let when = match (self.slot, self.age(spec, now)) {
            (Some(slot), Some(age)) => {
                let inside = if age <= window {
                    "inside the window"
                } else {
                    "PAST THE WINDOW"
                };
                format!(
                    "slot {slot}, {age} s ({:.1} days) old, {inside}",
                    age as f64 / 86_400.0
                )
            }
            _ => format!("slot unknown: {}", self.note.as_deref().unwrap_or("-")),
        };
        format!("{what:<11}{}\n           {when}", self.root)
    }
}

async fn show(config: &Config, out: &Output) -> Result<(), CliError> {
    let spec = spec(config)?;
    let now = unix_now();
    let window = config.chain.weak_subjectivity_days * 24 * 3600;
    let persisted = match open_state(config, false)? {
        Some(state) => state
            .light_client()
            .map_err(|e| CliError::Usage(format!("{e} (`firmchain state reset light_client` removes it)")))?,
        None => None,
    };
    let persisted = persisted.map(|p| Entry {
        root: p.checkpoint.clone(),
        slot: Some(p.finalized_slot),
        note: None,
    });
    let configured = match &config.chain.checkpoint {
        None => None,
        Some(root) => Some(configured_entry(config, &spec, root, persisted.as_ref(), now).await?),
    };
    let inside = |e: &Option<Entry>| {
        e.as_ref()
            .filter(|e| e.age(&spec, now).is_some_and(|a| a <= window))
            .and_then(|e| e.slot)
    };
    let winner = match (inside(&configured), inside(&persisted)) {
        (Some(c), Some(p)) if c > p => "configured",
        (_, Some(_)) => "persisted",
        (Some(_), None) => "configured",
        (None, None) if configured.as_ref().is_some_and(|c| c.slot.is_none()) => "unknown",
        (None, None) => "none",
    };
    let verdict = match winner {
        "configured" => "the node starts from the configured checkpoint".to_owned(),
        "persisted" => "the node starts from the persisted checkpoint".to_owned(),
        "unknown" => "decided at start: the configured checkpoint's slot is not known yet".to_owned(),
        _ => {
            "no checkpoint inside the weak-subjectivity window: the node verifies and installs nothing; run \
              `firmchain chain checkpoint set <root>` with a recent finalized beacon block root"
                .to_owned()
        }
    };
    let v = json!({
        "network": spec.name, "window_seconds": window,
        "configured": configured.as_ref().map(|e| e.json(&spec, now, window)),
        "persisted": persisted.as_ref().map(|e| e.json(&spec, now, window)),
        "wins": winner, "verdict": verdict,
    });
    out.result(&v, || {
        let none = |what: &str| format!("{what:<11}(none)");
        let configured = configured.as_ref().map_or_else(
            || none("configured"),
            |e| e.line("configured", &spec, now, window),
        );
        let persisted = persisted
            .as_ref()
            .map_or_else(|| none("persisted"), |e| e.line("persisted", &spec, now, window));
        format!(
            "network    {} (weak-subjectivity window {window} s)\n{configured}\n{persisted}\n{verdict}",
            spec.name
        )
    });
    Ok(())
}

/// The configured checkpoint with its slot: the persisted one's if it is the same root, else from the
/// consensus RPC's bootstrap (verified against the root); unknown, with the reason, if that fails.
async fn configured_entry(
    config: &Config,
    spec: &ChainSpec,
    root: &str,
    persisted: Option<&Entry>,
    now: u64,
) -> Result<Entry, CliError> {
    let parsed = parse_root("chain.checkpoint", root)?;
    let root = alloy::hex::encode_prefixed(parsed);
    if let Some(p) = persisted.filter(|p| p.root.eq_ignore_ascii_case(&root)) {
        return Ok(Entry {
            root,
            slot: p.slot,
            note: None,
        });
    }
    let rpc = match consensus_rpc(config) {
        Ok(rpc) => rpc,
        Err(e) => {
            return Ok(Entry {
                root,
                slot: None,
                note: Some(e.to_string()),
            });
        }
    };
    // Forced: only the slot is wanted here; the age is judged above.
    let entry = match LightClient::start(spec.clone(), rpc, parsed, now, 0, true).await {
        Ok(client) => Entry {
            root,
            slot: Some(client.store.finalized_header.beacon.slot),
            note: None,
        },
        Err(e) => Entry {
            root,
            slot: None,
            note: Some(format!("the consensus RPC's bootstrap failed: {e}")),
        },
    };
    Ok(entry)
}

async fn set(config: &Config, root: &str, force: bool, out: &Output) -> Result<(), CliError> {
    let spec = spec(config)?;
    let parsed = parse_root("the checkpoint", root)?;
    let now = unix_now();
    let window = config.chain.weak_subjectivity_days * 24 * 3600;
    let rpc = consensus_rpc(config)?;
    // An existing store first (a running node holds it: say so before any network call); a new one only once
    // the checkpoint verified.
    let existing = open_state(config, false)?;
    // The bootstrap is verified against the root; its age is checked below, with the message of `set`.
    let client = LightClient::start(spec.clone(), rpc, parsed, now, window, true).await?;
    let slot = client.store.finalized_header.beacon.slot;
    check_checkpoint_age(&spec, &parsed, slot, now, window, force)?;
    let state = match existing {
        Some(state) => state,
        None => open_state(config, true)?.ok_or_else(|| CliError::Usage("no state store".into()))?,
    };
    let old: Option<Persisted> = state.light_client().unwrap_or(None);
    let mut client = client;
    if let Some(old) = &old {
        // Participation seen in the same sync-committee period stays a floor.
        client.restore_participation(old);
    }
    let persisted = client.persisted();
    state
        .set_light_client(&persisted)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let age = now.saturating_sub(spec.time_of(slot));
    let v = json!({
        "checkpoint": persisted.checkpoint, "slot": slot, "age_seconds": age, "window_seconds": window,
        "replaced": old.map(|o| o.checkpoint), "state": state.path().display().to_string(),
    });
    out.result(&v, || {
        format!(
            "light_client checkpoint set to {} (slot {slot}, {age} s old, window {window} s) in {}\nstart the \
             node: it follows the chain from there",
            persisted.checkpoint,
            state.path().display()
        )
    });
    Ok(())
}
