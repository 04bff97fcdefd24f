//! `firmchain state show|reset`: what a node persists, and the explicit way out of a damaged value.

use firmchain_actors::state::{NodeState, StateKey};
use serde_json::json;

use crate::cli::StateCommand;
use crate::error::CliError;
use crate::output::Output;

fn open(data: &std::path::Path) -> Result<NodeState, CliError> {
    let path = data.join("state.redb");
    if !path.exists() {
        return Err(CliError::Usage(format!(
            "{}: no node state here (is --data the node's data_dir?)",
            path.display()
        )));
    }
    NodeState::open(&path).map_err(|e| CliError::Demo(e.to_string()))
}

pub fn run(command: StateCommand, out: &Output) -> Result<(), CliError> {
    match command {
        StateCommand::Show { data } => {
            let state = open(&data.data)?;
            let entries = state.entries().map_err(|e| CliError::Demo(e.to_string()))?;
            let v = json!({ "path": state.path().display().to_string(), "entries": entries });
            out.result(&v, || {
                let mut s = format!("{}", state.path().display());
                if entries.is_empty() {
                    s.push_str("\n  (empty)");
                }
                for e in &entries {
                    let value = match (&e.value, &e.damaged) {
                        (_, Some(problem)) => format!("DAMAGED: {problem}"),
                        (Some(v), None) => v.to_string(),
                        (None, None) => String::new(),
                    };
                    s.push_str(&format!("\n  {:<28} {value}", e.key));
                }
                s
            });
            Ok(())
        }
        StateCommand::Reset { key, data } => {
            let key: StateKey = key
                .parse()
                .map_err(|e: firmchain_actors::state::StateError| CliError::Usage(e.to_string()))?;
            let state = open(&data.data)?;
            let removed = state.reset(&key).map_err(|e| CliError::Demo(e.to_string()))?;
            let v = json!({ "key": key.to_string(), "removed": removed });
            out.result(&v, || {
                if removed {
                    format!("removed {key}")
                } else {
                    format!("{key} was not set")
                }
            });
            Ok(())
        }
    }
}
