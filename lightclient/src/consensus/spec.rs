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
    pub name: &'static str,
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
            name: "mainnet",
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
        let value = |key: &str| {
            config.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().trim_matches('\'').trim_matches('"').to_owned())
            })
        };
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
            let version = value(&format!("{name}_FORK_VERSION"));
            let epoch = if fork == Fork::Phase0 {
                Some("0".to_owned())
            } else {
                value(&format!("{name}_FORK_EPOCH"))
            };
            if let (Some(v), Some(Ok(e))) = (version, epoch.map(|e| e.parse::<u64>())) {
                let mut bytes = [0u8; 4];
                if alloy::hex::decode_to_slice(v.trim_start_matches("0x"), &mut bytes).is_ok() {
                    forks.push((fork, e, bytes));
                }
            }
        }
        ChainSpec {
            name: "minimal",
            genesis_validators_root,
            genesis_time: 0,
            seconds_per_slot: 6,
            slots_per_epoch: 8,
            epochs_per_period: 8,
            sync_committee_size: 32,
            forks,
        }
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
