//! Chain parameters: fork schedule, preset sizes, generalized indices per fork.

use super::config::{ConfigError, ConfigFile};
use super::ssz::Root;

/// Consensus forks, in order. The light client verifies headers from Altair to Fulu; a later fork's headers
/// are refused by name (their light-client containers differ), never verified under another fork's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fork {
    Phase0,
    Altair,
    Bellatrix,
    Capella,
    Deneb,
    Electra,
    Fulu,
    Gloas,
    Heze,
}

impl Fork {
    /// Every fork, in order.
    pub const ALL: [Fork; 9] = [
        Fork::Phase0,
        Fork::Altair,
        Fork::Bellatrix,
        Fork::Capella,
        Fork::Deneb,
        Fork::Electra,
        Fork::Fulu,
        Fork::Gloas,
        Fork::Heze,
    ];

    /// The newest fork whose light-client headers this client can verify.
    pub const NEWEST_SUPPORTED: Fork = Fork::Fulu;

    /// The name in config files (`<NAME>_FORK_VERSION`).
    pub fn config_name(self) -> &'static str {
        match self {
            Fork::Phase0 => "GENESIS",
            Fork::Altair => "ALTAIR",
            Fork::Bellatrix => "BELLATRIX",
            Fork::Capella => "CAPELLA",
            Fork::Deneb => "DENEB",
            Fork::Electra => "ELECTRA",
            Fork::Fulu => "FULU",
            Fork::Gloas => "GLOAS",
            Fork::Heze => "HEZE",
        }
    }

    /// The fork a config name stands for (not `GENESIS`).
    pub fn from_config_name(name: &str) -> Option<Fork> {
        Fork::ALL.into_iter().skip(1).find(|f| f.config_name() == name)
    }
}

impl std::fmt::Display for Fork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Fork::Phase0 => "phase0",
            other => return f.write_str(&other.config_name().to_lowercase()),
        };
        f.write_str(name)
    }
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

/// The public networks with built-in presets (`--network`, `chain.network`).
pub const NETWORKS: [&str; 3] = ["mainnet", "sepolia", "hoodi"];

fn v(a: u8, b: u8, c: u8, d: u8) -> [u8; 4] {
    [a, b, c, d]
}

impl ChainSpec {
    /// A network preset by name: `mainnet`, `sepolia` or `hoodi`.
    pub fn network(name: &str) -> Option<Self> {
        match name {
            "mainnet" => Some(ChainSpec::mainnet()),
            "sepolia" => Some(ChainSpec::sepolia()),
            "hoodi" => Some(ChainSpec::hoodi()),
            _ => None,
        }
    }

    fn mainnet_preset(name: &str, root: &str, genesis_time: u64, forks: Vec<(Fork, u64, [u8; 4])>) -> Self {
        ChainSpec {
            name: name.into(),
            genesis_validators_root: hex32(root),
            genesis_time,
            seconds_per_slot: 12,
            slots_per_epoch: 32,
            epochs_per_period: 256,
            sync_committee_size: 512,
            forks,
        }
    }

    /// Ethereum mainnet. Fork schedule from consensus-specs `configs/mainnet.yaml` (commit a08d8a6e, Aug
    /// 2026; Gloas and Heze are not scheduled there), copied to `testdata/configs/mainnet.yaml` and checked
    /// against this table by a test. Genesis time and validators root from the genesis state.
    pub fn mainnet() -> Self {
        ChainSpec::mainnet_preset(
            "mainnet",
            "4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
            1_606_824_023,
            vec![
                (Fork::Phase0, 0, v(0, 0, 0, 0)),
                (Fork::Altair, 74240, v(1, 0, 0, 0)),
                (Fork::Bellatrix, 144896, v(2, 0, 0, 0)),
                (Fork::Capella, 194048, v(3, 0, 0, 0)),
                (Fork::Deneb, 269568, v(4, 0, 0, 0)),
                (Fork::Electra, 364032, v(5, 0, 0, 0)),
                (Fork::Fulu, 411392, v(6, 0, 0, 0)),
            ],
        )
    }

    /// Sepolia. Fork schedule from eth-clients/sepolia `metadata/config.yaml` as carried by
    /// sigp/lighthouse `common/eth2_network_config/built_in_network_configs/sepolia/config.yaml` (commit
    /// 09f4e255; Fulu at epoch 272640, Gloas not scheduled), copied to `testdata/configs/sepolia.yaml` and
    /// checked against this table by a test. Genesis time and validators root from eth-clients/sepolia
    /// `metadata/README.md`.
    pub fn sepolia() -> Self {
        ChainSpec::mainnet_preset(
            "sepolia",
            "d8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078",
            1_655_733_600,
            vec![
                (Fork::Phase0, 0, v(0x90, 0, 0, 0x69)),
                (Fork::Altair, 50, v(0x90, 0, 0, 0x70)),
                (Fork::Bellatrix, 100, v(0x90, 0, 0, 0x71)),
                (Fork::Capella, 56832, v(0x90, 0, 0, 0x72)),
                (Fork::Deneb, 132608, v(0x90, 0, 0, 0x73)),
                (Fork::Electra, 222464, v(0x90, 0, 0, 0x74)),
                (Fork::Fulu, 272640, v(0x90, 0, 0, 0x75)),
            ],
        )
    }

    /// Hoodi. Fork schedule from eth-clients/hoodi `metadata/config.yaml` as carried by sigp/lighthouse
    /// `built_in_network_configs/hoodi/config.yaml` (commit 044b604f; Fulu at epoch 50688). Validators root
    /// from eth-clients/hoodi `metadata/genesis_validators_root.txt`; genesis time `MIN_GENESIS_TIME +
    /// GENESIS_DELAY` (1742212800 + 600).
    pub fn hoodi() -> Self {
        ChainSpec::mainnet_preset(
            "hoodi",
            "212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f",
            1_742_213_400,
            vec![
                (Fork::Phase0, 0, v(0x10, 0, 0x09, 0x10)),
                (Fork::Altair, 0, v(0x20, 0, 0x09, 0x10)),
                (Fork::Bellatrix, 0, v(0x30, 0, 0x09, 0x10)),
                (Fork::Capella, 0, v(0x40, 0, 0x09, 0x10)),
                (Fork::Deneb, 0, v(0x50, 0, 0x09, 0x10)),
                (Fork::Electra, 2048, v(0x60, 0, 0x09, 0x10)),
                (Fork::Fulu, 50688, v(0x70, 0, 0x09, 0x10)),
            ],
        )
    }

    /// The minimal preset with the fork schedule of a `config.yaml` (as in the consensus spec tests).
    pub fn minimal_from_config(config: &str, genesis_validators_root: Root) -> Result<Self, ConfigError> {
        Ok(ChainSpec {
            name: "minimal".into(),
            genesis_validators_root,
            genesis_time: 0,
            seconds_per_slot: 6,
            slots_per_epoch: 8,
            epochs_per_period: 8,
            sync_committee_size: 32,
            forks: ConfigFile::parse(config)?.fork_schedule()?,
        })
    }

    /// A chain described by a config file (`config.yaml` as published, or `/eth/v1/config/spec` as flat
    /// `KEY: value` lines): `PRESET_BASE` (`mainnet` or `minimal`, for the sizes), the fork versions and epochs,
    /// `SECONDS_PER_SLOT`, and the chain's `GENESIS_TIME` and `GENESIS_VALIDATORS_ROOT` (both required: the
    /// published files lack them, so public networks use [`ChainSpec::network`]; `CONFIG_NAME` names it).
    /// `SLOTS_PER_EPOCH`, `EPOCHS_PER_SYNC_COMMITTEE_PERIOD` and `SYNC_COMMITTEE_SIZE` override the preset.
    pub fn from_config(config: &str) -> Result<Self, ConfigError> {
        let cfg = ConfigFile::parse(config)?;
        let forks = cfg.fork_schedule()?;
        let mut spec = match cfg.get("PRESET_BASE") {
            Some("minimal") => ChainSpec::minimal_from_config(config, [0; 32])?,
            Some("mainnet") | None => ChainSpec {
                forks,
                ..ChainSpec::mainnet()
            },
            Some(other) => return Err(ConfigError::UnknownPreset(other.to_owned())),
        };
        spec.genesis_validators_root =
            cfg.bytes::<32>("GENESIS_VALIDATORS_ROOT")?
                .ok_or_else(|| ConfigError::Missing {
                    key: "GENESIS_VALIDATORS_ROOT".into(),
                })?;
        spec.genesis_time = cfg.number("GENESIS_TIME")?.ok_or_else(|| ConfigError::Missing {
            key: "GENESIS_TIME".into(),
        })?;
        if let Some(v) = cfg.number("SECONDS_PER_SLOT")? {
            spec.seconds_per_slot = v;
        }
        if let Some(v) = cfg.number("SLOTS_PER_EPOCH")? {
            spec.slots_per_epoch = v;
        }
        if let Some(v) = cfg.number("EPOCHS_PER_SYNC_COMMITTEE_PERIOD")? {
            spec.epochs_per_period = v;
        }
        if let Some(v) = cfg.number("SYNC_COMMITTEE_SIZE")? {
            spec.sync_committee_size = v as usize;
        }
        if let Some(name) = cfg.get("CONFIG_NAME") {
            spec.name = name.to_owned();
        }
        if spec.forks.iter().all(|(f, _, _)| *f < Fork::Capella) {
            return Err(ConfigError::NoCapella);
        }
        if spec.seconds_per_slot == 0 || spec.slots_per_epoch == 0 || spec.epochs_per_period == 0 {
            return Err(ConfigError::ZeroTiming);
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
        SECONDS_PER_SLOT: 2\nGENESIS_FORK_VERSION: 0x00000001\nALTAIR_FORK_VERSION: 0x01000001\n\
        ALTAIR_FORK_EPOCH: 0\nBELLATRIX_FORK_VERSION: 0x02000001\nBELLATRIX_FORK_EPOCH: 0\n\
        CAPELLA_FORK_VERSION: 0x03000001\nCAPELLA_FORK_EPOCH: 0\n\
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
        let err = |c: &str| ChainSpec::from_config(c).unwrap_err().to_string();
        assert!(err(&CONFIG.replace("GENESIS_TIME: 1700000000\n", "")).contains("GENESIS_TIME"));
        assert!(err(&CONFIG.replace("0x4242", "0xzz42")).contains("GENESIS_VALIDATORS_ROOT"));
        let no_capella = CONFIG
            .replace(
                "CAPELLA_FORK_EPOCH: 0\n",
                "CAPELLA_FORK_EPOCH: 18446744073709551615\n",
            )
            .replace(
                "DENEB_FORK_EPOCH: 10\n",
                "DENEB_FORK_EPOCH: 18446744073709551615\n",
            );
        assert!(err(&no_capella).contains("Capella"));
        assert!(err(&CONFIG.replace("'minimal'", "gnosis")).contains("PRESET_BASE"));
    }

    fn official(name: &str) -> Vec<(Fork, u64, [u8; 4])> {
        let path = format!("{}/testdata/configs/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        ConfigFile::parse(&text).unwrap().fork_schedule().unwrap()
    }

    #[test]
    fn the_official_mainnet_config_parses_to_the_mainnet_schedule() {
        let forks = official("mainnet");
        assert_eq!(forks, ChainSpec::mainnet().forks);
        assert_eq!(forks.last(), Some(&(Fork::Fulu, 411392, [6, 0, 0, 0])));
        // The file's fork lines carry inline comments ("364032  # May 7, 2025, ...").
        let spec = ChainSpec::mainnet();
        assert_eq!(spec.fork_at(364032 * 32), Fork::Electra);
        assert_eq!(spec.fork_at(411392 * 32), Fork::Fulu);
    }

    #[test]
    fn the_official_sepolia_config_parses_to_the_sepolia_schedule() {
        let forks = official("sepolia");
        assert_eq!(forks, ChainSpec::sepolia().forks);
        assert_eq!(forks.last(), Some(&(Fork::Fulu, 272640, [0x90, 0, 0, 0x75])));
    }

    #[test]
    fn presets_by_name() {
        for name in NETWORKS {
            let spec = ChainSpec::network(name).unwrap();
            assert_eq!(spec.name, name);
            assert_eq!(spec.forks.last().map(|f| f.0), Some(Fork::NEWEST_SUPPORTED));
        }
        assert!(ChainSpec::network("goerli").is_none());
        assert_eq!(ChainSpec::hoodi().fork_at(50688 * 32), Fork::Fulu);
    }
}
