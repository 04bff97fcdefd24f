//! Beacon chain config files (`config.yaml`) as the networks publish them: flat `KEY: value` lines, `#`
//! comments (whole-line and inline), quoted values, and nested blocks such as `BLOB_SCHEDULE:` (skipped; the
//! light client does not need them). Only the top-level scalars are kept; a fork entry that does not parse,
//! or a fork this client does not know scheduled at a real epoch, is an error, never silently dropped.

use std::collections::BTreeMap;

use super::spec::Fork;

/// The epoch the configs use for "not scheduled" (`2**64 - 1`).
pub const FAR_FUTURE_EPOCH: u64 = u64::MAX;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("line {line}: {text:?} is not `KEY: value`")]
    Syntax { line: usize, text: String },
    #[error("line {line}: {key} is set twice")]
    Duplicate { line: usize, key: String },
    #[error("{key}: {value:?} is not {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{key} is missing")]
    Missing { key: String },
    #[error(
        "the config schedules fork {name} at epoch {epoch}, which this light client does not know: refusing to \
         verify its headers under another fork's rules (update firmchain)"
    )]
    UnknownFork { name: String, epoch: u64 },
    #[error("fork {fork}: {present} is set but {missing} is not")]
    IncompleteFork {
        fork: &'static str,
        present: String,
        missing: String,
    },
    #[error("fork {later} (epoch {later_epoch}) is scheduled before {earlier} (epoch {earlier_epoch})")]
    ForkOrder {
        earlier: &'static str,
        earlier_epoch: u64,
        later: &'static str,
        later_epoch: u64,
    },
    #[error("fork {fork} is scheduled but the earlier fork {missing} is not")]
    ForkGap {
        fork: &'static str,
        missing: &'static str,
    },
    #[error("PRESET_BASE: unknown preset {0:?} (mainnet or minimal)")]
    UnknownPreset(String),
    #[error(
        "the config schedules no Capella fork (CAPELLA_FORK_VERSION, CAPELLA_FORK_EPOCH): the light client needs \
         execution payload headers"
    )]
    NoCapella,
    #[error("SECONDS_PER_SLOT, SLOTS_PER_EPOCH and EPOCHS_PER_SYNC_COMMITTEE_PERIOD must be positive")]
    ZeroTiming,
}

/// The top-level scalar entries of a config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFile {
    entries: BTreeMap<String, String>,
}

/// Cut a `#` comment: one that starts the line or follows whitespace, outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

fn unquote(v: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

impl ConfigFile {
    /// Parse a config file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut entries = BTreeMap::new();
        let mut in_block = false;
        for (i, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim_end();
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t', '-']) {
                if in_block {
                    continue;
                }
                return Err(ConfigError::Syntax {
                    line: i + 1,
                    text: raw.to_owned(),
                });
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(ConfigError::Syntax {
                    line: i + 1,
                    text: raw.to_owned(),
                });
            };
            let key = key.trim();
            let value = unquote(value.trim());
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::Syntax {
                    line: i + 1,
                    text: raw.to_owned(),
                });
            }
            // `KEY:` with nothing after it opens a nested block (a list or a map) that runs until the next
            // top-level key.
            in_block = value.is_empty();
            if in_block {
                continue;
            }
            if entries.insert(key.to_owned(), value.to_owned()).is_some() {
                return Err(ConfigError::Duplicate {
                    line: i + 1,
                    key: key.to_owned(),
                });
            }
        }
        Ok(ConfigFile { entries })
    }

    /// A value as written (comments and quotes removed).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// A decimal number, if set.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| ConfigError::BadValue {
                    key: key.to_owned(),
                    value: v.to_owned(),
                    expected: "a decimal number",
                })
            })
            .transpose()
    }

    /// `N` bytes of 0x-hex, if set.
    pub fn bytes<const N: usize>(&self, key: &str) -> Result<Option<[u8; N]>, ConfigError> {
        let expected = match N {
            4 => "4 bytes of 0x-hex",
            32 => "32 bytes of 0x-hex",
            _ => "hex of the right length",
        };
        self.get(key)
            .map(|v| {
                let mut out = [0u8; N];
                let hex = v.strip_prefix("0x").ok_or(())?;
                alloy::hex::decode_to_slice(hex, &mut out).map_err(|_| ())?;
                Ok(out)
            })
            .transpose()
            .map_err(|()| ConfigError::BadValue {
                key: key.to_owned(),
                value: self.get(key).unwrap_or_default().to_owned(),
                expected,
            })
    }

    /// The fork schedule: Phase 0 at epoch 0 (`GENESIS_FORK_VERSION`), then every fork with a
    /// `<NAME>_FORK_VERSION` and `<NAME>_FORK_EPOCH`, in order, up to the last one scheduled. Forks set to the
    /// far-future epoch are not scheduled and are left out; a fork this client does not know is an error
    /// unless it is unscheduled.
    pub fn fork_schedule(&self) -> Result<Vec<(Fork, u64, [u8; 4])>, ConfigError> {
        let genesis = self
            .bytes::<4>("GENESIS_FORK_VERSION")?
            .ok_or_else(|| ConfigError::Missing {
                key: "GENESIS_FORK_VERSION".into(),
            })?;
        let mut forks = vec![(Fork::Phase0, 0, genesis)];
        // Unknown fork names, scheduled or not.
        for key in self.entries.keys() {
            let Some(name) = key
                .strip_suffix("_FORK_VERSION")
                .or_else(|| key.strip_suffix("_FORK_EPOCH"))
            else {
                continue;
            };
            if name == "GENESIS" || Fork::from_config_name(name).is_some() {
                continue;
            }
            let epoch_key = format!("{name}_FORK_EPOCH");
            let epoch = self.number(&epoch_key)?.ok_or_else(|| ConfigError::Missing {
                key: epoch_key.clone(),
            })?;
            if epoch != FAR_FUTURE_EPOCH {
                return Err(ConfigError::UnknownFork {
                    name: name.to_owned(),
                    epoch,
                });
            }
        }
        let mut unscheduled: Option<Fork> = None;
        for fork in Fork::ALL.into_iter().skip(1) {
            let name = fork.config_name();
            let (vkey, ekey) = (format!("{name}_FORK_VERSION"), format!("{name}_FORK_EPOCH"));
            let version = self.bytes::<4>(&vkey)?;
            let epoch = self.number(&ekey)?;
            let (version, epoch) = match (version, epoch) {
                (None, None) => None,
                (Some(v), Some(e)) => Some((v, e)),
                (Some(_), None) => {
                    return Err(ConfigError::IncompleteFork {
                        fork: name,
                        present: vkey,
                        missing: ekey,
                    });
                }
                (None, Some(_)) => {
                    return Err(ConfigError::IncompleteFork {
                        fork: name,
                        present: ekey,
                        missing: vkey,
                    });
                }
            }
            .filter(|(_, e)| *e != FAR_FUTURE_EPOCH)
            .map_or((None, None), |(v, e)| (Some(v), Some(e)));
            let (Some(version), Some(epoch)) = (version, epoch) else {
                unscheduled.get_or_insert(fork);
                continue;
            };
            if let Some(missing) = unscheduled {
                return Err(ConfigError::ForkGap {
                    fork: name,
                    missing: missing.config_name(),
                });
            }
            let &(previous, previous_epoch, _) = forks.last().unwrap_or(&(Fork::Phase0, 0, genesis));
            if epoch < previous_epoch {
                return Err(ConfigError::ForkOrder {
                    earlier: previous.config_name(),
                    earlier_epoch: previous_epoch,
                    later: name,
                    later_epoch: epoch,
                });
            }
            forks.push((fork, epoch, version));
        }
        Ok(forks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "GENESIS_FORK_VERSION: 0x00000000\nALTAIR_FORK_VERSION: 0x01000000\n\
        ALTAIR_FORK_EPOCH: 10\nBELLATRIX_FORK_VERSION: 0x02000000\nBELLATRIX_FORK_EPOCH: 20\n\
        CAPELLA_FORK_VERSION: 0x03000000\nCAPELLA_FORK_EPOCH: 30\n";

    #[test]
    fn inline_comments_and_quotes_are_stripped() {
        let cfg = ConfigFile::parse(
            "PRESET_BASE: 'mainnet'  # the preset\nCONFIG_NAME: \"a # b\"\n# whole line\nX: 7 # seven\nURL: a#b\n",
        )
        .unwrap();
        assert_eq!(cfg.get("PRESET_BASE"), Some("mainnet"));
        assert_eq!(cfg.get("CONFIG_NAME"), Some("a # b"));
        assert_eq!(cfg.number("X").unwrap(), Some(7));
        assert_eq!(cfg.get("URL"), Some("a#b"), "a # inside a word is not a comment");
    }

    #[test]
    fn nested_blocks_are_skipped_and_stray_indentation_is_refused() {
        let cfg = ConfigFile::parse("BLOB_SCHEDULE:\n  - EPOCH: 5  # x\n    MAX: 9\nEPOCH: 1\n").unwrap();
        assert_eq!(cfg.number("EPOCH").unwrap(), Some(1));
        assert!(matches!(
            ConfigFile::parse("A: 1\n  B: 2\n"),
            Err(ConfigError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            ConfigFile::parse("A: 1\nA: 2\n"),
            Err(ConfigError::Duplicate { line: 2, .. })
        ));
        assert!(matches!(
            ConfigFile::parse("just words\n"),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn fork_entries_that_do_not_parse_are_errors() {
        let bad_epoch = ConfigFile::parse(&BASE.replace("CAPELLA_FORK_EPOCH: 30", "CAPELLA_FORK_EPOCH: 3O"))
            .unwrap()
            .fork_schedule()
            .unwrap_err();
        assert!(
            matches!(&bad_epoch, ConfigError::BadValue { key, .. } if key == "CAPELLA_FORK_EPOCH"),
            "{bad_epoch}"
        );
        let bad_version = ConfigFile::parse(&BASE.replace("0x03000000", "0x030000"))
            .unwrap()
            .fork_schedule()
            .unwrap_err();
        assert!(matches!(&bad_version, ConfigError::BadValue { key, .. } if key == "CAPELLA_FORK_VERSION"));
        let half = ConfigFile::parse(&format!("{BASE}DENEB_FORK_VERSION: 0x04000000\n"))
            .unwrap()
            .fork_schedule()
            .unwrap_err();
        assert!(matches!(half, ConfigError::IncompleteFork { fork: "DENEB", .. }));
        let order = ConfigFile::parse(&format!(
            "{BASE}DENEB_FORK_VERSION: 0x04000000\nDENEB_FORK_EPOCH: 5\n"
        ))
        .unwrap()
        .fork_schedule()
        .unwrap_err();
        assert!(matches!(order, ConfigError::ForkOrder { later: "DENEB", .. }));
        let gap = ConfigFile::parse(&format!(
            "{BASE}ELECTRA_FORK_VERSION: 0x05000000\nELECTRA_FORK_EPOCH: 50\n"
        ))
        .unwrap()
        .fork_schedule()
        .unwrap_err();
        assert!(matches!(
            gap,
            ConfigError::ForkGap {
                fork: "ELECTRA",
                missing: "DENEB"
            }
        ));
    }

    #[test]
    fn unknown_forks_are_errors_once_scheduled() {
        let far = format!("{BASE}FOO_FORK_VERSION: 0x09000000\nFOO_FORK_EPOCH: 18446744073709551615\n");
        let forks = ConfigFile::parse(&far).unwrap().fork_schedule().unwrap();
        assert_eq!(forks.last().map(|f| f.0), Some(Fork::Capella));
        let scheduled = format!("{BASE}FOO_FORK_VERSION: 0x09000000\nFOO_FORK_EPOCH: 90\n");
        let err = ConfigFile::parse(&scheduled)
            .unwrap()
            .fork_schedule()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownFork {
                name: "FOO".into(),
                epoch: 90
            }
        );
        assert!(err.to_string().contains("FOO"));
    }

    proptest::proptest! {
        /// Arbitrary text never panics the parser, and a value written with an inline comment and quotes
        /// reads back as written.
        #[test]
        fn any_text_parses_or_is_refused_and_values_round_trip(
            text in "\\PC{0,200}",
            key in "[A-Z][A-Z0-9_]{0,20}",
            value in "[a-zA-Z0-9_.x]{1,20}",
            comment in "[ -~]{0,20}",
            quote in proptest::sample::select(vec!["", "'", "\""]),
        ) {
            let _ = ConfigFile::parse(&text).map(|c| c.fork_schedule());
            let line = format!("{key}: {quote}{value}{quote}  # {comment}\n");
            let cfg = ConfigFile::parse(&line).unwrap();
            proptest::prop_assert_eq!(cfg.get(&key), Some(value.as_str()));
        }
    }
}
