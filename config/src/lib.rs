//! Typed, layered node configuration.
//!
//! Layers, each over the one before: the defaults, a TOML file, `FIRMCHAIN_*` environment variables, then CLI
//! overrides (`section.field=value`). Unknown keys are refused at every layer (`deny_unknown_fields`), and
//! [`Config::validate`] checks what types cannot (addresses, URLs, modes that need other fields) with errors that
//! name the key.
//!
//! Environment variables: `FIRMCHAIN_DATA_DIR` and `FIRMCHAIN_<SECTION>__<FIELD>` (two underscores), e.g.
//! `FIRMCHAIN_CHAIN__MODE=rpc`, `FIRMCHAIN_P2P__BOOTSTRAP=/ip4/…/p2p/…,/ip4/…`. Lists are comma-separated.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod argv;
mod secret;
mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use argv::{Argv, InstallSettings};
pub use secret::{CREDENTIALS_DIRECTORY, SecretError, credential, read_secret_file, resolve};
pub use sources::{ConfigError, Flags, Sources};

/// The configuration file a node reads when no `--config` is given (and `FIRMCHAIN_CONFIG` is unset), if it
/// exists.
pub const DEFAULT_CONFIG: &str = "/etc/firmchain/firmchain.toml";

/// The environment variable that names the configuration file instead of [`DEFAULT_CONFIG`].
pub const CONFIG_ENV: &str = "FIRMCHAIN_CONFIG";

/// The configuration file to read: `flag` (`--config`), else `env` (`FIRMCHAIN_CONFIG`, which must then
/// exist), else [`DEFAULT_CONFIG`] when `default_exists`, else none (defaults and environment only).
pub fn config_path(flag: Option<PathBuf>, env: Option<String>, default_exists: bool) -> Option<PathBuf> {
    flag.or_else(|| env.filter(|e| !e.is_empty()).map(PathBuf::from))
        .or_else(|| default_exists.then(|| PathBuf::from(DEFAULT_CONFIG)))
}

/// The whole node configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the node keeps its state store, blockstore, identity and image slots.
    pub data_dir: PathBuf,
    /// Run as a repository (publisher) as well as a device.
    pub repository: bool,
    /// The release index on Ethereum and how to read it.
    pub chain: ChainConfig,
    /// The peer-to-peer network.
    pub p2p: P2pSection,
    /// How verified images are installed.
    pub install: InstallConfig,
    /// The node's HTTP API.
    pub api: ApiConfig,
    /// Who this device is, for staged rollouts and hardware classes.
    pub device: DeviceSection,
}

/// Who this device is, for rollouts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceSection {
    /// The device's name: its rollout id is keccak256 of it (what `contract rollout-status --device` takes).
    /// Empty: the node's peer id.
    pub name: String,
    /// Its hardware class: a name of up to 32 characters or 0x and 64 hex digits. Empty: none, and then the
    /// device installs only releases that list no class.
    pub hardware_class: String,
}

/// How the index is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainMode {
    /// Headers verified by the embedded light client; storage proven against them. For public chains.
    Light,
    /// Headers from a trusted execution RPC (checked against their hash); storage proven. For dev chains.
    Rpc,
    /// No RPC at all: committee updates, head proofs and release proofs come from peers and are verified from
    /// the configured checkpoint; the index is followed through them alone.
    Peers,
}

/// Whether a node with chain access builds and serves proofs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeProofs {
    /// On for repositories, off for devices.
    #[default]
    Auto,
    On,
    Off,
}

impl ServeProofs {
    /// Whether a node (`repository` or not) serves.
    pub fn serves(self, repository: bool) -> bool {
        match self {
            ServeProofs::Auto => repository,
            ServeProofs::On => true,
            ServeProofs::Off => false,
        }
    }
}

/// The release index on Ethereum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// `light` (public chains) or `rpc` (dev chains such as anvil).
    pub mode: ChainMode,
    /// Execution JSON-RPC URLs, tried in order.
    pub execution_rpc: Vec<String>,
    /// Beacon node URLs with the light-client API, tried in order (light mode).
    pub consensus_rpc: Vec<String>,
    /// The trusted checkpoint, a beacon block root (light mode).
    pub checkpoint: Option<String>,
    /// A public network's built-in consensus parameters (light mode): `mainnet`, `sepolia` or `hoodi`. Without
    /// it and without `chain_config`, Ethereum mainnet.
    pub network: Option<String>,
    /// The consensus chain's config file (light mode; `config.yaml` as published, plus `GENESIS_TIME` and
    /// `GENESIS_VALIDATORS_ROOT`), for chains without a preset.
    pub chain_config: Option<PathBuf>,
    /// Extra CA certificates (PEM) for HTTPS RPCs, beside the bundled web PKI roots and `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR`.
    pub ca_file: Option<PathBuf>,
    /// The block the index was deployed in (`contract deploy` prints it): where event scans start.
    pub from_block: u64,
    /// Blocks per `eth_getLogs` call (halved when a provider refuses a range).
    pub log_range: u64,
    /// The FirmwareIndex contract address.
    pub contract: String,
    /// The product this device runs.
    pub product: String,
    /// Seconds between polls of the index (events also wake the watcher).
    pub poll_interval_secs: u64,
    /// Call the verified head stale when older than this many seconds.
    pub max_staleness_secs: u64,
    /// Refuse checkpoints older than this many days unless the operator forces them.
    pub weak_subjectivity_days: u64,
    /// Seconds to wait for each RPC call.
    pub timeout_secs: u64,
    /// Light mode: after a sync-committee period without finality, take the best update seen as finalized
    /// even if only a minority of the committee signed it (the spec's force update). Off by default: it lets
    /// a minority of the committee move the device; the node warns at start and in `/status` while it is on.
    pub force_update: bool,
    /// Build proofs from this node's verified light client and serve them to peers (light mode): `auto` (on for
    /// repositories, off for devices), `on` (a gateway device) or `off`. Devices in `peers` mode serve on the
    /// proofs they verified whatever this says.
    pub serve_proofs: ServeProofs,
    /// Light mode: when this node's own RPCs fail or fall behind (the last read failed or was refused, or the
    /// newest head they gave is older than half of `max_staleness_secs`), follow the index through verified
    /// proofs from peers, as `peers` mode does, until they are current again. A proof from a peer authorises
    /// exactly what the node's own light client would; `/status` `chain.mode` says `peers` while the head
    /// came from peers.
    pub peers_fallback: bool,
}

/// The peer-to-peer network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pSection {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Peers to join the DHT through (multiaddrs ending in `/p2p/<peer id>`). No public peers by default.
    pub bootstrap: Vec<String>,
    /// Find peers on the local network by mDNS.
    pub mdns: bool,
    /// Most connections in all.
    pub max_connections: u32,
    /// Bytes of blocks the store may hold, in MiB (blocks of releases in use are kept regardless of age).
    pub store_budget_mib: u64,
    /// Seconds a fetch waits when no peer can serve a missing block.
    pub stall_timeout_secs: u64,
    /// Connections kept free for the node's own dials (providers, bootstrap peers): inbound connections may
    /// use `max_connections - reserved_outbound`, so a flood of them cannot lock the node out of its fleet.
    pub reserved_outbound: u32,
    /// Most connections from one IP address (loopback exempt).
    pub max_connections_per_ip: u32,
    /// Most blocks (up to 256 KiB each) a fetch has in flight, from all peers together: what a fetch holds
    /// in memory before the blocks reach the store. 0 (the default): the build's own, [`DEVICE_FETCH_WINDOW`]
    /// in a device build, 32 in the full build.
    pub fetch_window: u32,
}

/// The fetch window of a device build when `p2p.fetch_window` is 0 (not set): 8 blocks, 2 MiB in flight.
pub const DEVICE_FETCH_WINDOW: u32 = 8;

/// The largest `p2p.fetch_window` (256 MiB in flight).
pub const MAX_FETCH_WINDOW: u32 = 1024;

/// How images are installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallMode {
    /// A/B image slots under the data folder with an atomic pointer.
    Slots,
    /// Hand the verified image to an external installer (a script) and read its exit status.
    Command,
    /// Hand the verified RAUC bundle to `rauc install`, reboot into the new slot, confirm it after the health
    /// check on the new boot (`rauc status mark-good`), or mark it bad and roll back.
    Rauc,
    /// Hand the verified `.swu` to `swupdate -i`, reboot into the new slot, confirm it after the health check on
    /// the new boot (bootloader variables through `fw_setenv`), or reject it and roll back.
    Swupdate,
}

/// How verified images are installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstallConfig {
    /// `slots`, `command`, `rauc` or `swupdate`.
    pub mode: InstallMode,
    /// The installer (command mode), a program and its arguments, run without a shell; the image path is its
    /// last argument. A string is split on spaces (it may hold no quotes or shell syntax).
    pub command: Option<Argv>,
    /// A command that must exit 0 after an install (slots, command) or on the new boot (rauc, swupdate), or the
    /// node rolls back. Run without a shell, like `command`.
    pub health_check: Option<Argv>,
    /// Seconds the health check may take.
    pub health_timeout_secs: u64,
    /// The image the device runs before the first update (slots mode; command, rauc and swupdate modes: the
    /// bundle the device was flashed with, the base of the first patch).
    pub initial_image: Option<PathBuf>,
    /// The `rauc` program and its global options (rauc mode), e.g. `["rauc", "--conf=/etc/rauc/system.conf"]`.
    pub rauc: Argv,
    /// The `swupdate` program and its options (swupdate mode), e.g. `["swupdate", "-k", "/etc/swupdate.pem"]`.
    pub swupdate: Argv,
    /// SWUpdate's software selection (`-e SET,MODE`) by booted slot (swupdate mode): the value of
    /// `slot_variable` → the selection that writes the other copy, e.g. `{ a = "stable,copy2", b =
    /// "stable,copy1" }`. Empty: no `-e`.
    pub swupdate_select: std::collections::BTreeMap<String, String>,
    /// More arguments of the install call, before the bundle (`rauc install ARGS BUNDLE`,
    /// `swupdate ARGS -i IMAGE`).
    pub install_args: Vec<String>,
    /// Seconds `rauc install` / `swupdate -i` may take.
    pub install_timeout_secs: u64,
    /// The program that prints a bootloader variable (swupdate mode), called with `-n NAME`.
    pub fw_printenv: Argv,
    /// The program that sets a bootloader variable (swupdate mode), called with `NAME VALUE`.
    pub fw_setenv: Argv,
    /// The bootloader variable that names the booted slot (swupdate mode); the rollback sets it back.
    pub slot_variable: String,
    /// Bootloader variables set when the new boot passed its health check (swupdate mode), `NAME=VALUE`.
    pub confirm_env: Vec<String>,
    /// Bootloader variables set when the new boot failed its health check (swupdate mode), `NAME=VALUE`.
    pub reject_env: Vec<String>,
    /// The command that reboots the device into the new slot (rauc, swupdate modes).
    pub reboot: Argv,
    /// The file whose content changes with every boot (rauc, swupdate modes): how the node tells a reboot from
    /// a restart of its own.
    pub boot_id: PathBuf,
}

/// The node's HTTP API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to serve `/status`, `/metrics` and `/publish` on; empty to turn the API off.
    pub listen: String,
    /// Bearer token that `POST /publish` needs (repository role).
    pub token: Option<String>,
    /// A file holding the token (one trailing newline is trimmed); instead of `token`, never with it. Unset, and
    /// `token` unset: the systemd credential `api_token` if the unit loads one.
    pub token_file: Option<PathBuf>,
    /// The largest request body (`POST /publish`: the image, and the base image with `base_len`); larger
    /// requests get 413 before their body is read.
    pub max_body_bytes: u64,
    /// HTTP connections served at once; more are closed at once.
    pub max_connections: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/firmchain"),
            repository: false,
            chain: ChainConfig::default(),
            p2p: P2pSection::default(),
            install: InstallConfig::default(),
            api: ApiConfig::default(),
            device: DeviceSection::default(),
        }
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            mode: ChainMode::Light,
            execution_rpc: Vec::new(),
            consensus_rpc: Vec::new(),
            checkpoint: None,
            network: None,
            chain_config: None,
            ca_file: None,
            from_block: 0,
            log_range: 2000,
            contract: String::new(),
            product: String::new(),
            poll_interval_secs: 12,
            max_staleness_secs: 120,
            weak_subjectivity_days: 14,
            timeout_secs: 30,
            force_update: false,
            serve_proofs: ServeProofs::Auto,
            peers_fallback: false,
        }
    }
}

impl Default for P2pSection {
    fn default() -> Self {
        P2pSection {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            mdns: false,
            max_connections: 256,
            store_budget_mib: 1024,
            stall_timeout_secs: 120,
            reserved_outbound: 32,
            max_connections_per_ip: 16,
            fetch_window: 0,
        }
    }
}

impl Default for InstallConfig {
    fn default() -> Self {
        InstallConfig {
            mode: InstallMode::Slots,
            command: None,
            health_check: None,
            health_timeout_secs: 60,
            initial_image: None,
            rauc: Argv::of(&["rauc"]),
            swupdate: Argv::of(&["swupdate"]),
            swupdate_select: Default::default(),
            install_args: Vec::new(),
            install_timeout_secs: 1800,
            fw_printenv: Argv::of(&["fw_printenv"]),
            fw_setenv: Argv::of(&["fw_setenv"]),
            slot_variable: "boot_slot".into(),
            confirm_env: ["upgrade_available=0", "bootcount=0", "ustate=0"]
                .map(String::from)
                .to_vec(),
            reject_env: ["upgrade_available=0", "ustate=3"].map(String::from).to_vec(),
            reboot: Argv::of(&["systemctl", "reboot"]),
            boot_id: PathBuf::from("/proc/sys/kernel/random/boot_id"),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8420".into(),
            token: None,
            token_file: None,
            max_body_bytes: 2 << 30,
            max_connections: 32,
        }
    }
}

/// A setting that cannot work, naming its key (and, from [`Config::load`], the layer that set it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key}: {problem}{}", layer_suffix(.layer))]
pub struct Invalid {
    /// The key, e.g. `chain.contract`.
    pub key: &'static str,
    /// What is wrong with it.
    pub problem: String,
    /// Where the value came from: a file, `TOML`, an environment variable, `--set KEY`, a flag, or the defaults.
    pub layer: Option<String>,
}

fn layer_suffix(layer: &Option<String>) -> String {
    layer
        .as_ref()
        .map_or_else(String::new, |l| format!(" (set by {l})"))
}

fn invalid(key: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid {
        key,
        problem: problem.into(),
        layer: None,
    }
}

/// The typed values of a valid configuration: what [`Config::validate`] parsed, so nothing parses them again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `chain.product`.
    pub product: firmchain_update::ProductId,
    /// `chain.contract`, the FirmwareIndex's address.
    pub contract: [u8; 20],
    /// `chain.checkpoint` (light mode), a beacon block root.
    pub checkpoint: Option<[u8; 32]>,
    /// `p2p.listen`.
    pub listen: Vec<multiaddr::Multiaddr>,
    /// `p2p.bootstrap`, each ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<multiaddr::Multiaddr>,
    /// `api.listen`; `None` turns the API off.
    pub api: Option<SocketAddr>,
    /// `device.hardware_class`.
    pub hardware_class: Option<firmchain_update::record::HardwareClass>,
    /// The `[install]` commands as argument vectors.
    pub install: InstallSettings,
}

/// The longest `device.name`, in bytes.
pub const MAX_DEVICE_NAME: usize = 128;

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.strip_prefix("0x")?;
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn check_urls(key: &'static str, urls: &[String]) -> Result<(), Invalid> {
    for u in urls {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(invalid(key, format!("{u:?} is not an http(s) URL")));
        }
    }
    Ok(())
}

fn check_multiaddrs(
    key: &'static str,
    addrs: &[String],
    need_peer_id: bool,
) -> Result<Vec<multiaddr::Multiaddr>, Invalid> {
    let mut out = Vec::with_capacity(addrs.len());
    for a in addrs {
        let parsed: multiaddr::Multiaddr = a
            .parse()
            .map_err(|e| invalid(key, format!("{a:?} is not a multiaddr: {e}")))?;
        if need_peer_id && !matches!(parsed.iter().last(), Some(multiaddr::Protocol::P2p(_))) {
            return Err(invalid(key, format!("{a:?} must end in /p2p/<peer id>")));
        }
        out.push(parsed);
    }
    Ok(out)
}

impl Config {
    /// Load from `sources` (defaults, TOML, environment, overrides) and validate.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let (config, origins) = sources.merge()?;
        config.validate().map_err(|mut i| {
            i.layer = Some(
                origins
                    .get(i.key)
                    .cloned()
                    .unwrap_or_else(|| "the defaults".into()),
            );
            ConfigError::Invalid(i)
        })?;
        Ok(config)
    }

    /// The API token: `api.token`, or the contents of `api.token_file`.
    pub fn api_token(&self) -> Result<Option<String>, SecretError> {
        resolve(
            "api.token",
            self.api.token.as_deref(),
            "api.token_file",
            self.api.token_file.as_deref(),
        )
    }

    /// The configuration with its secrets replaced by `<redacted>`, for printing.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if c.api.token.as_deref().is_some_and(|t| !t.is_empty()) {
            c.api.token = Some("<redacted>".into());
        }
        c
    }

    /// Check what the types cannot (that the settings can work together) and return the parsed values.
    pub fn validate(&self) -> Result<Settings, Invalid> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let c = &self.chain;
        let contract = hex_bytes::<20>(&c.contract).ok_or_else(|| {
            invalid(
                "chain.contract",
                format!("{:?} is not a 0x-prefixed 20-byte address", c.contract),
            )
        })?;
        let product = c
            .product
            .parse::<firmchain_update::ProductId>()
            .map_err(|e| invalid("chain.product", e.to_string()))?;
        if c.execution_rpc.is_empty() && c.mode != ChainMode::Peers {
            return Err(invalid(
                "chain.execution_rpc",
                "at least one execution JSON-RPC URL is needed",
            ));
        }
        if c.mode == ChainMode::Peers {
            if self.repository {
                return Err(invalid(
                    "chain.mode",
                    "a repository publishes through an execution RPC: use light or rpc mode",
                ));
            }
            if c.checkpoint.as_deref().and_then(hex_bytes::<32>).is_none() {
                return Err(invalid(
                    "chain.checkpoint",
                    "peers mode verifies every proof from a trusted checkpoint (a 0x-prefixed block root)",
                ));
            }
        }
        if c.peers_fallback && c.mode != ChainMode::Light {
            return Err(invalid(
                "chain.peers_fallback",
                "only light mode falls back to proofs from peers (rpc mode has no checkpoint to verify them \
                 from; peers mode follows peers already)",
            ));
        }
        check_urls("chain.execution_rpc", &c.execution_rpc)?;
        check_urls("chain.consensus_rpc", &c.consensus_rpc)?;
        if c.log_range == 0 {
            return Err(invalid("chain.log_range", "must be at least 1 block"));
        }
        if let Some(n) = &c.network {
            if !["mainnet", "sepolia", "hoodi"].contains(&n.as_str()) {
                return Err(invalid(
                    "chain.network",
                    format!("{n:?} is not a known network (mainnet, sepolia or hoodi)"),
                ));
            }
            if c.chain_config.is_some() {
                return Err(invalid(
                    "chain.network",
                    "set chain.network or chain.chain_config, not both",
                ));
            }
        }
        if c.mode == ChainMode::Light {
            if c.consensus_rpc.is_empty() {
                return Err(invalid(
                    "chain.consensus_rpc",
                    "light mode needs at least one beacon node URL",
                ));
            }
            match &c.checkpoint {
                Some(cp) if hex_bytes::<32>(cp).is_some() => {}
                Some(cp) => {
                    return Err(invalid(
                        "chain.checkpoint",
                        format!("{cp:?} is not a 0x-prefixed block root"),
                    ));
                }
                None => {
                    return Err(invalid(
                        "chain.checkpoint",
                        "light mode needs a trusted checkpoint",
                    ));
                }
            }
        }
        if c.poll_interval_secs == 0 || c.timeout_secs == 0 {
            return Err(invalid(
                "chain.poll_interval_secs",
                "intervals and timeouts must be positive",
            ));
        }
        let checkpoint = c.checkpoint.as_deref().and_then(hex_bytes::<32>);
        let listen = check_multiaddrs("p2p.listen", &self.p2p.listen, false)?;
        let bootstrap = check_multiaddrs("p2p.bootstrap", &self.p2p.bootstrap, true)?;
        if self.p2p.store_budget_mib == 0 {
            return Err(invalid("p2p.store_budget_mib", "must be positive"));
        }
        check_limits(self)?;
        let install = self.install.validate()?;
        let mut api = None;
        if !self.api.listen.is_empty() {
            let addr: SocketAddr = self.api.listen.parse().map_err(|_| {
                invalid(
                    "api.listen",
                    format!("{:?} is not an address:port", self.api.listen),
                )
            })?;
            if self.repository
                && !addr.ip().is_loopback()
                && self.api.token.as_deref().is_none_or(str::is_empty)
                && self.api.token_file.is_none()
            {
                return Err(invalid(
                    "api.token",
                    "a repository whose API listens beyond loopback needs a token for POST /publish",
                ));
            }
            api = Some(addr);
        }
        if self.api.token.as_deref().is_some_and(|t| !t.is_empty()) && self.api.token_file.is_some() {
            return Err(invalid(
                "api.token_file",
                "set api.token or api.token_file, not both",
            ));
        }
        let name = &self.device.name;
        if name.len() > MAX_DEVICE_NAME || name.chars().any(char::is_control) {
            return Err(invalid(
                "device.name",
                format!("{name:?} must be at most {MAX_DEVICE_NAME} bytes without control characters"),
            ));
        }
        let hardware_class = match self.device.hardware_class.as_str() {
            "" => None,
            c => Some(
                c.parse()
                    .map_err(|e: firmchain_update::record::ParseHardwareError| {
                        invalid("device.hardware_class", e.to_string())
                    })?,
            ),
        };
        Ok(Settings {
            install,
            hardware_class,
            product,
            contract,
            checkpoint,
            listen,
            bootstrap,
            api,
        })
    }
}

/// The resource limits: positive, and room left for inbound connections.
fn check_limits(c: &Config) -> Result<(), Invalid> {
    let p = &c.p2p;
    if p.max_connections == 0 {
        return Err(invalid("p2p.max_connections", "must be positive"));
    }
    if p.reserved_outbound >= p.max_connections {
        return Err(invalid(
            "p2p.reserved_outbound",
            format!(
                "{} leaves no inbound connection of p2p.max_connections = {}",
                p.reserved_outbound, p.max_connections
            ),
        ));
    }
    if p.max_connections_per_ip == 0 {
        return Err(invalid("p2p.max_connections_per_ip", "must be positive"));
    }
    if p.fetch_window > MAX_FETCH_WINDOW {
        return Err(invalid(
            "p2p.fetch_window",
            format!("{} is over {MAX_FETCH_WINDOW}", p.fetch_window),
        ));
    }
    if c.api.max_body_bytes < 1 << 20 {
        return Err(invalid(
            "api.max_body_bytes",
            format!("{} is under 1 MiB", c.api.max_body_bytes),
        ));
    }
    if c.api.max_connections == 0 {
        return Err(invalid("api.max_connections", "must be positive"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
