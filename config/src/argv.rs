//! Commands as argument vectors: the node runs every external program (installer, health check, bootloader
//! tools, reboot) directly, never through a shell, so a device image without `/bin/sh` works.

use serde::{Deserialize, Serialize};

use crate::{InstallConfig, InstallMode, Invalid, invalid};

/// A program and its arguments: a TOML list (`["rauc", "--conf=/etc/rauc/system.conf"]`), or a string split on
/// spaces (`"/usr/bin/rauc --conf=/etc/rauc/system.conf"`). A string that only a shell could split (quotes,
/// `$`, `;`, `|`, `&`, redirections, globs, a leading `NAME=value`) is refused naming its key; give a list, and
/// where a shell is wanted, say so: `["sh", "-c", "…"]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Argv {
    /// The argument vector as given.
    List(Vec<String>),
    /// A command line split on spaces.
    Line(String),
}

/// Characters that mean something to a shell: a string holding one is not split.
const SHELL_SYNTAX: &[char] = &[
    '\'', '"', '\\', '$', '`', ';', '|', '&', '<', '>', '(', ')', '{', '}', '*', '?', '[', ']', '~', '#',
    '!', '\n',
];

impl Argv {
    /// An argument vector of `words`.
    pub fn of(words: &[&str]) -> Argv {
        Argv::List(words.iter().map(|w| (*w).to_owned()).collect())
    }

    /// The argument vector, or why this value is not one.
    pub fn split(&self) -> Result<Vec<String>, String> {
        let argv = match self {
            Argv::List(v) => v.clone(),
            Argv::Line(s) => {
                if let Some(c) = s.chars().find(|c| SHELL_SYNTAX.contains(c)) {
                    return Err(format!(
                        "{s:?} needs a shell to split ({c:?}); no shell runs it: give a list of arguments, \
                         e.g. [\"sh\", \"-c\", \"…\"] where a shell is wanted"
                    ));
                }
                let words: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
                if words.first().is_some_and(|w| w.contains('=')) {
                    return Err(format!(
                        "{s:?} starts with a variable assignment, which needs a shell: give a list of arguments"
                    ));
                }
                words
            }
        };
        match argv.first() {
            None => Err("is empty: name a program".into()),
            Some(p) if p.is_empty() => Err("names an empty program".into()),
            Some(_) => Ok(argv),
        }
    }
}

/// The `[install]` commands, checked and split: what [`crate::Config::validate`] returns in
/// [`crate::Settings::install`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSettings {
    /// `install.command` (command mode).
    pub command: Option<Vec<String>>,
    /// `install.health_check`.
    pub health_check: Option<Vec<String>>,
    /// `install.rauc`.
    pub rauc: Vec<String>,
    /// `install.swupdate`.
    pub swupdate: Vec<String>,
    /// `install.fw_printenv`.
    pub fw_printenv: Vec<String>,
    /// `install.fw_setenv`.
    pub fw_setenv: Vec<String>,
    /// `install.reboot`.
    pub reboot: Vec<String>,
    /// `install.confirm_env` as (name, value).
    pub confirm_env: Vec<(String, String)>,
    /// `install.reject_env` as (name, value).
    pub reject_env: Vec<(String, String)>,
}

fn argv(key: &'static str, a: &Argv) -> Result<Vec<String>, Invalid> {
    a.split().map_err(|p| invalid(key, p))
}

fn assignments(key: &'static str, list: &[String]) -> Result<Vec<(String, String)>, Invalid> {
    list.iter()
        .map(|a| match a.split_once('=') {
            Some((n, v)) if !n.is_empty() && !n.contains(char::is_whitespace) => {
                Ok((n.to_owned(), v.to_owned()))
            }
            _ => Err(invalid(key, format!("{a:?} is not NAME=VALUE"))),
        })
        .collect()
}

impl InstallConfig {
    /// Check the `[install]` section and split its commands.
    pub(crate) fn validate(&self) -> Result<InstallSettings, Invalid> {
        let command = self
            .command
            .as_ref()
            .map(|c| argv("install.command", c))
            .transpose()?;
        if self.mode == InstallMode::Command && command.is_none() {
            return Err(invalid(
                "install.command",
                "command mode needs the installer command",
            ));
        }
        let health_check = self
            .health_check
            .as_ref()
            .map(|c| argv("install.health_check", c))
            .transpose()?;
        if self.install_timeout_secs == 0 {
            return Err(invalid("install.install_timeout_secs", "must be positive"));
        }
        let two_phase = matches!(self.mode, InstallMode::Rauc | InstallMode::Swupdate);
        if two_phase && self.boot_id.as_os_str().is_empty() {
            return Err(invalid(
                "install.boot_id",
                "rauc and swupdate modes need a file that changes with every boot",
            ));
        }
        let var = &self.slot_variable;
        if self.mode == InstallMode::Swupdate && (var.is_empty() || var.contains(char::is_whitespace)) {
            return Err(invalid(
                "install.slot_variable",
                format!("{var:?} is not a bootloader variable name"),
            ));
        }
        Ok(InstallSettings {
            command,
            health_check,
            rauc: argv("install.rauc", &self.rauc)?,
            swupdate: argv("install.swupdate", &self.swupdate)?,
            fw_printenv: argv("install.fw_printenv", &self.fw_printenv)?,
            fw_setenv: argv("install.fw_setenv", &self.fw_setenv)?,
            reboot: argv("install.reboot", &self.reboot)?,
            confirm_env: assignments("install.confirm_env", &self.confirm_env)?,
            reject_env: assignments("install.reject_env", &self.reject_env)?,
        })
    }
}
