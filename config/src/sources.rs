//! The layers of a configuration and how they merge: defaults, a TOML file, environment, overrides.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::{Table, Value};

use crate::{Config, Invalid};

/// Where a configuration comes from, in order of precedence (later wins).
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// A TOML file.
    pub file: Option<PathBuf>,
    /// TOML text (instead of, or after, the file).
    pub toml: Option<String>,
    /// Environment variables (only `FIRMCHAIN_DATA_DIR`, `FIRMCHAIN_REPOSITORY` and `FIRMCHAIN_<SECTION>__<FIELD>`
    /// are configuration; other variables are ignored).
    pub env: Vec<(String, String)>,
    /// `section.field=value` settings (`--set`).
    pub overrides: Vec<String>,
    /// Typed CLI flags, the last layer.
    pub flags: Flags,
}

/// The settings `firmchain run` takes as flags of their own (each the same setting as its key).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// `--repository`: `repository = true`.
    pub repository: bool,
    /// `--data DIR`: `data_dir`.
    pub data_dir: Option<PathBuf>,
}

/// Which layer set each key (`chain.contract` → `FIRMCHAIN_CHAIN__CONTRACT`); unset keys are defaults.
pub(crate) type Origins = BTreeMap<String, String>;

/// Record `origin` for every leaf key of `table` under `prefix`.
fn note(origins: &mut Origins, prefix: &str, table: &Table, origin: &str) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) => note(origins, &key, t, origin),
            _ => {
                origins.insert(key, origin.to_owned());
            }
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{origin}: {message}")]
    Layer { origin: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(Invalid),
}

fn layer(origin: impl Into<String>, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Layer {
        origin: origin.into(),
        message: message.to_string().trim().to_owned(),
    }
}

/// Merge `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The value of `raw` for `path`, typed like what is there now (lists split on commas). A value written as a
/// TOML list (`["sh", "-c", "exit 0"]`) is that list, whatever is there now.
fn typed(current: Option<&Value>, raw: &str) -> Value {
    if raw.trim_start().starts_with('[')
        && let Ok(mut t) = format!("v = {raw}").parse::<Table>()
        && let Some(v @ Value::Array(_)) = t.remove("v")
    {
        return v;
    }
    match current {
        Some(Value::Array(_)) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Some(Value::Integer(_)) => raw
            .trim()
            .parse()
            .map_or_else(|_| Value::String(raw.to_owned()), Value::Integer),
        Some(Value::Boolean(_)) => raw
            .trim()
            .parse()
            .map_or_else(|_| Value::String(raw.to_owned()), Value::Boolean),
        _ => Value::String(raw.to_owned()),
    }
}

fn set(table: &mut Table, path: &[String], raw: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut t = table;
    for p in parents {
        let entry = t.entry(p.clone()).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        t = next;
    }
    let v = typed(t.get(last), raw);
    t.insert(last.clone(), v);
}

/// The configuration path an environment variable names, if it is one.
fn env_path(key: &str) -> Option<Vec<String>> {
    let rest = key.strip_prefix("FIRMCHAIN_")?;
    match rest {
        "DATA_DIR" => Some(vec!["data_dir".into()]),
        "REPOSITORY" => Some(vec!["repository".into()]),
        _ => {
            let (section, field) = rest.split_once("__")?;
            Some(vec![section.to_ascii_lowercase(), field.to_ascii_lowercase()])
        }
    }
}

fn check(table: &Table, origin: &str) -> Result<Config, ConfigError> {
    Value::Table(table.clone())
        .try_into::<Config>()
        .map_err(|e| layer(origin, e))
}

impl Sources {
    /// The file, overrides and flags given, with this process's `FIRMCHAIN_*` environment.
    pub fn with_process_env(file: Option<PathBuf>, overrides: Vec<String>, flags: Flags) -> Sources {
        Sources {
            file,
            toml: None,
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("FIRMCHAIN_"))
                .collect(),
            overrides,
            flags,
        }
    }

    /// Merge the layers, checking each against the schema so an error names the layer it came from; also says
    /// which layer set each key.
    pub(crate) fn merge(&self) -> Result<(Config, Origins), ConfigError> {
        let mut origins = Origins::new();
        let mut table = match Value::try_from(Config::default()) {
            Ok(Value::Table(t)) => t,
            Ok(_) | Err(_) => Table::new(),
        };
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let origin = path.display().to_string();
            let parsed = text.parse::<Table>().map_err(|e| layer(&origin, e))?;
            note(&mut origins, "", &parsed, &origin);
            merge(&mut table, parsed);
            check(&table, &origin)?;
        }
        if let Some(text) = &self.toml {
            let parsed = text.parse::<Table>().map_err(|e| layer("TOML", e))?;
            note(&mut origins, "", &parsed, "TOML");
            merge(&mut table, parsed);
            check(&table, "TOML")?;
        }
        let mut env: Vec<_> = self
            .env
            .iter()
            .filter_map(|(k, v)| Some((k, env_path(k)?, v)))
            .collect();
        env.sort();
        for (key, path, value) in env {
            set(&mut table, &path, value);
            origins.insert(path.join("."), key.clone());
            check(&table, key)?;
        }
        for o in &self.overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| layer(format!("--set {o}"), "expected section.field=value"))?;
            let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
            set(&mut table, &path, value);
            let origin = format!("--set {}", key.trim());
            origins.insert(path.join("."), origin.clone());
            check(&table, &origin)?;
        }
        let mut config = check(&table, "configuration")?;
        if self.flags.repository {
            config.repository = true;
            origins.insert("repository".into(), "--repository".into());
        }
        if let Some(dir) = &self.flags.data_dir {
            config.data_dir = dir.clone();
            origins.insert("data_dir".into(), "--data".into());
        }
        Ok((config, origins))
    }
}
