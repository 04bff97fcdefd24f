//! Chain parameters: fork schedule, preset sizes, generalized indices per fork.

use super::ssz::Root;

/// Consensus forks the light client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fork {
    Phase0,
    Altair,
    Bellatrix,
    Capella,
    Deneb,
    Electra,
    Fulu,
}

/// One chain's consensus parameters.
#[derive(Clone, Debug)]
pub struct ChainSpec {
    pub name: String,
    pub genesis_validators_root: Root,
    /// Unix time of slot 0.
    pub genesis_time: u64,
    pub seconds_per_slot: u64,
    pub slots_per_epoch: u64,
    pub epochs_per_period: u64,
    pub sync_committee_size: usize,
    /// (fork, activation epoch, fork version), in order.
    pub forks: Vec<(Fork, u64, [u8; 4])>,
}

impl ChainSpec {
    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        ChainSpec {
            name: "mainnet".into(),
            genesis_validators_root: hex32(
                "4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
            ),
            genesis_time: 1_606_824_023,
            seconds_per_slot: 12,
            slots_per_epoch: 32,
            epochs_per_period: 256,
            sync_committee_size: 512,
            forks: vec![
                (Fork::Phase0, 0, [0, 0, 0, 0]),
                (Fork::Altair, 74240, [1, 0, 0, 0]),
                (Fork::Bellatrix, 144896, [2, 0, 0, 0]),
                (Fork::Capella, 194048, [3, 0, 0, 0]),
                (Fork::Deneb, 269568, [4, 0, 0, 0]),
                (Fork::Electra, 364032, [5, 0, 0, 0]),
                (Fork::Fulu, 411392, [6, 0, 0, 0]),
            ],
        }
    }

    /// The minimal preset with the fork schedule of a `config.yaml` (flat `KEY: value` lines, as in the
    /// consensus spec tests and `/eth/v1/config/spec`).
    pub fn minimal_from_config(config: &str, genesis_validators_root: Root) -> Self {
        let mut spec = ChainSpec {
            name: "minimal".into(),
            genesis_validators_root,
            genesis_time: 0,
            seconds_per_slot: 6,
            slots_per_epoch: 8,
            epochs_per_period: 8,
            sync_committee_size: 32,
            forks: Vec::new(),
        };
        spec.forks = fork_schedule(config);
        spec
    }

    /// A chain described by a config file in the beacon API's flat `KEY: value` form: `PRESET_BASE`
    /// (`mainnet` or `minimal`, for the sizes), the fork versions and epochs, `SECONDS_PER_SLOT`, and the
    /// chain's `GENESIS_TIME` and `GENESIS_VALIDATORS_ROOT` (both required; `CONFIG_NAME` names it).
    /// `SLOTS_PER_EPOCH`, `EPOCHS_PER_SYNC_COMMITTEE_PERIOD` and `SYNC_COMMITTEE_SIZE` override the preset.
    pub fn from_config(config: &str) -> Result<Self, String> {
        let get = |key: &str| config_value(config, key);
        let num = |key: &str| -> Result<Option<u64>, String> {
            get(key)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("{key}: {v:?} is not a number"))
                })
                .transpose()
        };
        let mut spec = match get("PRESET_BASE").as_deref() {
            Some("minimal") => ChainSpec::minimal_from_config(config, [0; 32]),
            Some("mainnet") | None => ChainSpec {
                forks: fork_schedule(config),
                ..ChainSpec::mainnet()
            },
            Some(other) => return Err(format!("PRESET_BASE: unknown preset {other:?}")),
        };
        let root = get("GENESIS_VALIDATORS_ROOT").ok_or("GENESIS_VALIDATORS_ROOT is missing")?;
        alloy::hex::decode_to_slice(root.trim_start_matches("0x"), &mut spec.genesis_validators_root)
            .map_err(|_| format!("GENESIS_VALIDATORS_ROOT: {root:?} is not 32 bytes of hex"))?;
        spec.genesis_time = num("GENESIS_TIME")?.ok_or("GENESIS_TIME is missing")?;
        if let Some(v) = num("SECONDS_PER_SLOT")? {
            spec.seconds_per_slot = v;
        }
        if let Some(v) = num("SLOTS_PER_EPOCH")? {
            spec.slots_per_epoch = v;
        }
        if let Some(v) = num("EPOCHS_PER_SYNC_COMMITTEE_PERIOD")? {
            spec.epochs_per_period = v;
        }
        if let Some(v) = num("SYNC_COMMITTEE_SIZE")? {
            spec.sync_committee_size = v as usize;
        }
        if let Some(name) = get("CONFIG_NAME") {
            spec.name = name;
        }
        if spec.forks.iter().all(|(f, _, _)| *f < Fork::Capella) {
            return Err(
                "the config schedules no Capella fork (CAPELLA_FORK_VERSION, CAPELLA_FORK_EPOCH)".into(),
            );
        }
        if spec.seconds_per_slot == 0 || spec.slots_per_epoch == 0 || spec.epochs_per_period == 0 {
            return Err(
                "SECONDS_PER_SLOT, SLOTS_PER_EPOCH and EPOCHS_PER_SYNC_COMMITTEE_PERIOD must be positive"
                    .into(),
            );
        }
        Ok(spec)
    }

    /// The slot at a Unix time (0 before genesis).
    pub fn slot_at(&self, unix_seconds: u64) -> u64 {
        unix_seconds.saturating_sub(self.genesis_time) / self.seconds_per_slot.max(1)
    }

    /// The Unix time a slot starts.
    pub fn time_of(&self, slot: u64) -> u64 {
        self.genesis_time + slot * self.seconds_per_slot
    }

    /// Slots per sync-committee period.
    pub fn slots_per_period(&self) -> u64 {
        self.slots_per_epoch * self.epochs_per_period
    }

    /// The sync-committee period of a slot.
    pub fn period(&self, slot: u64) -> u64 {
        slot / self.slots_per_period()
    }

    fn fork_entry(&self, slot: u64) -> (Fork, [u8; 4]) {
        let epoch = slot / self.slots_per_epoch;
        let mut found = (Fork::Phase0, [0; 4]);
        for &(fork, at, version) in &self.forks {
            if epoch >= at {
                found = (fork, version);
            }
        }
        found
    }

    /// The fork in force at a slot.
    pub fn fork_at(&self, slot: u64) -> Fork {
        self.fork_entry(slot).0
    }

    /// The fork version in force at a slot.
    pub fn version_at(&self, slot: u64) -> [u8; 4] {
        self.fork_entry(slot).1
    }

    /// Generalized index of `current_sync_committee` in the state at a slot.
    pub fn current_committee_gindex(&self, slot: u64) -> u64 {
        if self.fork_at(slot) >= Fork::Electra {
            86
        } else {
            54
        }
    }

    /// Generalized index of `next_sync_committee` in the state at a slot.
    pub fn next_committee_gindex(&self, slot: u64) -> u64 {
        if self.fork_at(slot) >= Fork::Electra {
            87
        } else {
            55
        }
    }

    /// Generalized index of the finalized checkpoint's root in the state at a slot.
    pub fn finalized_root_gindex(&self, slot: u64) -> u64 {
        if self.fork_at(slot) >= Fork::Electra {
            169
        } else {
            105
        }
    }
}

fn config_value(config: &str, key: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().trim_matches('\'').trim_matches('"').to_owned())
    })
}

/// The fork versions and epochs a config schedules (Phase 0 at epoch 0).
fn fork_schedule(config: &str) -> Vec<(Fork, u64, [u8; 4])> {
    let names = [
        (Fork::Phase0, "GENESIS"),
        (Fork::Altair, "ALTAIR"),
        (Fork::Bellatrix, "BELLATRIX"),
        (Fork::Capella, "CAPELLA"),
        (Fork::Deneb, "DENEB"),
        (Fork::Electra, "ELECTRA"),
        (Fork::Fulu, "FULU"),
    ];
    let mut forks = Vec::new();
    for (fork, name) in names {
        let version = config_value(config, &format!("{name}_FORK_VERSION"));
        let epoch = if fork == Fork::Phase0 {
            Some("0".to_owned())
        } else {
            config_value(config, &format!("{name}_FORK_EPOCH"))
        };
        if let (Some(v), Some(Ok(e))) = (version, epoch.map(|e| e.parse::<u64>())) {
            let mut bytes = [0u8; 4];
            if alloy::hex::decode_to_slice(v.trim_start_matches("0x"), &mut bytes).is_ok() {
                forks.push((fork, e, bytes));
            }
        }
    }
    forks
}

/// Generalized index of the execution payload (header) in a beacon block body, Capella and later.
pub const EXECUTION_PAYLOAD_GINDEX: u64 = 25;

fn hex32(s: &str) -> Root {
    let mut out = [0u8; 32];
    // The constant above is valid hex of the right length.
    let _ = alloy::hex::decode_to_slice(s, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "CONFIG_NAME: devnet\nPRESET_BASE: 'minimal'\nGENESIS_TIME: 1700000000\n\
        GENESIS_VALIDATORS_ROOT: 0x4242424242424242424242424242424242424242424242424242424242424242\n\
        SECONDS_PER_SLOT: 2\nCAPELLA_FORK_VERSION: 0x03000001\nCAPELLA_FORK_EPOCH: 0\n\
        DENEB_FORK_VERSION: 0x04000001\nDENEB_FORK_EPOCH: 10\n";

    #[test]
    fn config_files_describe_a_chain() {
        let spec = ChainSpec::from_config(CONFIG).unwrap();
        assert_eq!(spec.name, "devnet");
        assert_eq!(
            (
                spec.slots_per_epoch,
                spec.epochs_per_period,
                spec.sync_committee_size
            ),
            (8, 8, 32)
        );
        assert_eq!(spec.seconds_per_slot, 2);
        assert_eq!(spec.time_of(3), 1_700_000_006);
        assert_eq!(spec.fork_at(79), Fork::Capella);
        assert_eq!(spec.fork_at(80), Fork::Deneb);
        assert_eq!(spec.version_at(80), [4, 0, 0, 1]);
        let mainnet = ChainSpec::from_config(&CONFIG.replace("'minimal'", "mainnet")).unwrap();
        assert_eq!(mainnet.sync_committee_size, 512);
        let period = format!("{CONFIG}EPOCHS_PER_SYNC_COMMITTEE_PERIOD: 64\n");
        assert_eq!(ChainSpec::from_config(&period).unwrap().slots_per_period(), 512);
    }

    #[test]
    fn incomplete_configs_are_refused_by_name() {
        let no_time = CONFIG.replace("GENESIS_TIME: 1700000000\n", "");
        assert!(
            ChainSpec::from_config(&no_time)
                .unwrap_err()
                .contains("GENESIS_TIME")
        );
        let bad_root = CONFIG.replace("0x4242", "0xzz42");
        assert!(
            ChainSpec::from_config(&bad_root)
                .unwrap_err()
                .contains("GENESIS_VALIDATORS_ROOT")
        );
        let no_capella = CONFIG
            .replace("CAPELLA_FORK_EPOCH: 0\n", "")
            .replace("DENEB_FORK_EPOCH: 10\n", "");
        assert!(
            ChainSpec::from_config(&no_capella)
                .unwrap_err()
                .contains("Capella")
        );
        let bad_preset = CONFIG.replace("'minimal'", "gnosis");
        assert!(
            ChainSpec::from_config(&bad_preset)
                .unwrap_err()
                .contains("PRESET_BASE")
        );
    }
}
