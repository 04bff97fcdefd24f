//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
pub use clap_complete::Shell;
use firmchain_p2p::Multiaddr;
use firmchain_update::record::{HardwareClass, RolloutSchedule};
use firmchain_update::{Blake3Hash, ProductId};

use crate::logging::LogFormat;

/// Secure, decentralised firmware distribution for IoT fleets. The exit codes follow the commands
/// (`crate::error::Exit`, added by `main`).
#[derive(Debug, Parser)]
#[command(name = "firmchain", version, about, long_about = None)]
pub struct Cli {
    /// Print results as JSON on stdout (one object per command), and no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Diagnostics on stderr: `text`, or `json` (one object a line with level, target and message).
    #[arg(long, global = true, env = "FIRMCHAIN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which diagnostics: error, warn, info, debug or trace, or a filter such as `info,firmchain_p2p=debug`.
    #[arg(
        long,
        global = true,
        env = "FIRMCHAIN_LOG",
        value_name = "LEVEL|FILTER",
        default_value = crate::logging::DEFAULT_LEVEL
    )]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make an update from OLD to NEW: a bidiff+zstd patch, or the compressed full image if that is smaller.
    Diff {
        /// The image devices run now.
        old: PathBuf,
        /// The new image.
        new: PathBuf,
        /// Where to write the update.
        #[arg(short, long)]
        output: PathBuf,
        /// Which payload to write: the smaller one, the patch, or the full image.
        #[arg(long, value_enum, default_value_t = Kind::Auto)]
        kind: Kind,
        /// zstd compression level (1-22).
        #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
        level: i32,
        /// log2 of the zstd window; devices must allow it (default 23 = 8 MiB).
        #[arg(long, default_value_t = 23, value_parser = clap::value_parser!(u32).range(10..=30))]
        window_log: u32,
    },
    /// Apply an update to BASE and write the verified result to OUT (OUT is untouched unless it verifies).
    Apply {
        /// The image the update applies to (ignored for a full-image update).
        base: PathBuf,
        /// The update made by `firmchain diff`.
        patch: PathBuf,
        /// Where to write the new image.
        #[arg(short, long)]
        output: PathBuf,
        /// Refuse unless the result has this blake3 hash (64 hex digits).
        #[arg(long)]
        expect: Option<Blake3Hash>,
        /// The largest zstd window (log2) to accept.
        #[arg(long, default_value_t = 23, value_parser = clap::value_parser!(u32).range(10..=30))]
        max_window_log: u32,
    },
    /// Print the blake3 hash and size of a file.
    Hash {
        /// The file to hash.
        file: PathBuf,
    },
    /// Chunk a file into IPFS blocks and write them as a CAR v1; prints the root CID.
    Pack {
        /// The file to pack.
        file: PathBuf,
        /// Where to write the CAR.
        #[arg(short, long)]
        output: PathBuf,
        /// Bytes per chunk (at most 1 MiB).
        #[arg(long, default_value_t = 262_144, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        chunk_size: u32,
    },
    /// Reassemble the file in a CAR, verifying every block against its CID.
    Unpack {
        /// The CAR file.
        car: PathBuf,
        /// Where to write the file.
        #[arg(short, long)]
        output: PathBuf,
        /// The root to extract (default: the CAR's only root).
        #[arg(long)]
        root: Option<String>,
    },
    /// Deploy and manage the FirmwareIndex contract. The signing key comes from FIRMCHAIN_PRIVATE_KEY,
    /// FIRMCHAIN_PRIVATE_KEY_FILE, the systemd credential private_key, or --keystore; never from a flag.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Read the release index through verified proofs.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Publish a release (repository role): make the patch from --from to --to and the full image, store both
    /// as one bundle of IPFS blocks, append the release to the index (waiting for inclusion), and with --serve
    /// keep serving the blocks. The signing key comes as for `contract` commands.
    Publish(PublishArgs),
    /// Exchange blocks with IPFS-compatible peers (Kademlia + Bitswap).
    #[command(subcommand)]
    P2p(P2pCommand),
    /// Run a node: follow the index through verified reads, fetch releases from peers, verify, install and seed
    /// them; with --repository also publish (POST /publish). Configuration: --config FILE, FIRMCHAIN_* variables,
    /// --set SECTION.FIELD=VALUE (later wins).
    Run(RunArgs),
    /// Pack one release for an offline install: its bundle's blocks, its release proof, a head proof and the
    /// committee chain from the configured checkpoint, fetched from peers and verified, in one CAR.
    Export {
        #[command(flatten)]
        node: RunArgs,
        /// The product (default: the configured chain.product).
        #[arg(long)]
        product: Option<String>,
        /// The release's sequence number.
        #[arg(long)]
        sequence: u64,
        /// Ask this peer (a multiaddr ending in /p2p/<peer id>; repeatable; default: p2p.bootstrap).
        #[arg(long)]
        peer: Vec<firmchain_p2p::Multiaddr>,
        /// Where to write the CAR.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Install a release from a CAR made by `firmchain export`, with no network: its proofs are verified from
    /// this device's own checkpoint and state as an online install verifies them, the image goes through the
    /// same slots and health check. Stop `firmchain run` first (it holds the data folder).
    Install {
        /// The CAR file.
        car: PathBuf,
        #[command(flatten)]
        node: RunArgs,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        install_timeout: u64,
    },
    /// Show or reset what a node persists (`<data>/state.redb`); stop the node first.
    #[command(subcommand)]
    State(StateCommand),
    /// Talk to a running node's HTTP API.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Show a node's status: from its API when it answers, else from its data folder (the slots and the state
    /// store; the node must be stopped or its API on).
    Status(StatusArgs),
    /// Print a shell completion script, e.g. `firmchain completions bash > /etc/bash_completion.d/firmchain`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), e.g. `firmchain man > /usr/share/man/man1/firmchain.1`.
    Man,
    /// Run a local fleet: anvil, the FirmwareIndex, one repository node and --devices device nodes as processes on
    /// loopback; publish two releases of a sample firmware image and show each device converge. With --pipeline,
    /// walk through diff, pack, unpack and apply in this process instead.
    Demo {
        /// Work in this folder (kept afterwards: node data and logs) instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Size of the sample firmware in MiB.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
        size_mib: u32,
        /// How many device nodes to start (each a process; 100 fit on 2 cores).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=200))]
        devices: u32,
        /// KiB of new, poorly compressible data in each release (the patch grows with it).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=65536))]
        change_kib: u32,
        /// The anvil binary (default: FIRMCHAIN_ANVIL, the one scripts/setup installs, or anvil on the PATH).
        #[arg(long)]
        anvil: Option<PathBuf>,
        /// Run the devices with this binary (e.g. the device build, target/device/firmchain) instead of this one.
        #[arg(long)]
        device_binary: Option<PathBuf>,
        /// Only the in-process walk-through of the update pipeline (no chain, no network).
        #[arg(long)]
        pipeline: bool,
        /// Show a staged rollout instead: one release under this schedule (START%[,+STEP%/INTERVAL]; a start
        /// alone grows by the same share every hour), anvil's clock moved forward step by step, with a pause
        /// and a resume on the way.
        #[arg(long, conflicts_with = "pipeline")]
        rollout: Option<RolloutSchedule>,
        /// The devices run the light client over a local beacon harness (sync-committee signed headers over
        /// anvil) instead of trusting anvil's headers; each install names the verified slot and the
        /// signatures behind it.
        #[arg(long, conflicts_with_all = ["pipeline", "rollout", "peers"])]
        light: bool,
        /// Devices with no RPC at all: the repository runs in light mode over a local beacon light-client
        /// server and serves chain proofs; every device runs in `peers` mode and says where its proofs came from.
        #[arg(long, conflicts_with_all = ["pipeline", "rollout"])]
        peers: bool,
    },
    /// Serve the test beacon light-client harness over anvil (the Docker swarm's peers scenario). Test builds
    /// only.
    #[cfg(feature = "fault-injection")]
    #[command(hide = true)]
    BeaconHarness {
        /// anvil's JSON-RPC URL (http://HOST:PORT).
        #[arg(long)]
        rpc: String,
        /// The address to listen on.
        #[arg(long, default_value = "0.0.0.0:5052")]
        listen: String,
    },
}

/// The multihash of leaf blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LeafHashArg {
    /// sha2-256.
    #[value(name = "sha2-256")]
    Sha2_256,
    /// blake3.
    Blake3,
}

/// Which payload `diff` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Whichever is smaller.
    Auto,
    /// The patch against OLD.
    Patch,
    /// The compressed full image.
    Full,
}

/// Where the index lives and how to sign.
#[derive(Debug, clap::Args)]
pub struct ChainArgs {
    /// Execution JSON-RPC URL (the node's `chain.execution_rpc`; FIRMCHAIN_RPC is still read).
    #[arg(
        long = "execution-rpc",
        visible_alias = "rpc",
        env = "FIRMCHAIN_CHAIN__EXECUTION_RPC"
    )]
    pub rpc: Option<String>,
    /// An encrypted JSON keystore to sign with (password from FIRMCHAIN_KEYSTORE_PASSWORD, _FILE, --password-file
    /// or the credential keystore_password).
    #[arg(long)]
    pub keystore: Option<PathBuf>,
    /// A file holding the keystore password (one trailing newline is trimmed).
    #[arg(long, requires = "keystore")]
    pub password_file: Option<PathBuf>,
    /// Seconds to wait for each RPC call, a transaction's receipt included (the node's `chain.timeout_secs`).
    #[arg(
        long,
        alias = "timeout",
        env = "FIRMCHAIN_CHAIN__TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub rpc_timeout: u64,
}

/// A deployed index.
#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    #[command(flatten)]
    pub chain: ChainArgs,
    /// The FirmwareIndex contract address (the node's `chain.contract`; FIRMCHAIN_CONTRACT is still read).
    #[arg(long, env = "FIRMCHAIN_CHAIN__CONTRACT")]
    pub contract: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Deploy a new FirmwareIndex; prints its address.
    Deploy {
        #[command(flatten)]
        chain: ChainArgs,
        /// The owner (default: the signing account).
        #[arg(long)]
        owner: Option<String>,
        /// Approvals a release needs (m of m-of-n); needs at least that many publishers.
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        /// Global publishers to add right away (the signer must be the owner).
        #[arg(long = "publisher")]
        publishers: Vec<String>,
    },
    /// Show the owner, the threshold and the current publishers.
    Publishers {
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Allow an account to publish one product (--product) or every product.
    AddPublisher {
        #[command(flatten)]
        index: IndexArgs,
        /// The publisher's address.
        publisher: String,
        /// Limit the right to this product.
        #[arg(long)]
        product: Option<ProductId>,
    },
    /// Withdraw a publisher's right (pending approvals are voided).
    RemovePublisher {
        #[command(flatten)]
        index: IndexArgs,
        /// The publisher's address.
        publisher: String,
        /// The product the right was for (omit for a global publisher).
        #[arg(long)]
        product: Option<ProductId>,
    },
    /// Set the number of approvals a release needs (pending approvals are voided).
    Threshold {
        #[command(flatten)]
        index: IndexArgs,
        /// m of m-of-n.
        threshold: u64,
    },
    /// Mark a release as not to be installed.
    Revoke {
        #[command(flatten)]
        index: IndexArgs,
        /// The product.
        #[arg(long)]
        product: ProductId,
        /// The release's sequence.
        #[arg(long)]
        sequence: u64,
        /// Why (recorded in the event).
        #[arg(long)]
        reason: String,
    },
    /// Show a product's newest release (sequence and digest).
    Latest {
        #[command(flatten)]
        index: IndexArgs,
        /// The product.
        #[arg(long)]
        product: ProductId,
    },
    /// Pause a product (no --sequence) or one release: devices install nothing it covers until it ends. A
    /// publisher's or guardian's pause lasts the pause bound; the owner's lasts until resumed.
    Pause {
        #[command(flatten)]
        index: IndexArgs,
        #[command(flatten)]
        target: PauseTarget,
    },
    /// Lift a pause: the owner at once, a publisher as one approval of the publish threshold.
    Resume {
        #[command(flatten)]
        index: IndexArgs,
        #[command(flatten)]
        target: PauseTarget,
    },
    /// Cancel a release for good while it is in its activation delay (a guardian or the owner).
    Cancel {
        #[command(flatten)]
        index: IndexArgs,
        /// The product.
        #[arg(long)]
        product: ProductId,
        /// The release's sequence.
        #[arg(long)]
        sequence: u64,
        /// Why (recorded in the event).
        #[arg(long)]
        reason: String,
    },
    /// Add or remove a guardian: an account that may pause and, inside the activation delay, cancel.
    #[command(subcommand)]
    Guardian(GuardianCommand),
    /// Set a product's activation delay: releases that go live afterwards become installable only once it has
    /// passed, and guardians may cancel them until then (0 turns it off).
    Delay {
        #[command(flatten)]
        index: IndexArgs,
        /// The product.
        #[arg(long)]
        product: ProductId,
        /// The delay: seconds, or a number with s, m, h or d (e.g. 1h).
        #[arg(value_parser = parse_secs)]
        delay: u64,
    },
    /// Set how long one publisher's or guardian's pause lasts.
    PauseBound {
        #[command(flatten)]
        index: IndexArgs,
        /// The bound: seconds, or a number with s, m, h or d (e.g. 1d).
        #[arg(value_parser = parse_secs)]
        bound: u64,
    },
    /// Show a release's rollout at the newest block (proven from storage): its terms, the current share, why
    /// devices are held, and which of the listed devices may install it now.
    RolloutStatus {
        #[command(flatten)]
        index: IndexArgs,
        /// The product.
        #[arg(long)]
        product: ProductId,
        /// The release (default: the newest).
        #[arg(long)]
        sequence: Option<u64>,
        /// A device name, as its `device.name` (repeatable, or comma-separated).
        #[arg(long = "device", value_delimiter = ',')]
        devices: Vec<String>,
        /// A file of devices, one a line: the name, then optionally its hardware class.
        #[arg(long)]
        devices_file: Option<PathBuf>,
        /// The hardware class of devices listed without one.
        #[arg(long)]
        hardware: Option<HardwareClass>,
    },
}

/// What a pause or a resume is about.
#[derive(Debug, clap::Args)]
pub struct PauseTarget {
    /// The product.
    #[arg(long)]
    pub product: ProductId,
    /// One release (default: the whole product).
    #[arg(long)]
    pub sequence: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum GuardianCommand {
    /// Allow an account to pause and cancel one product (--product) or every product (the owner signs).
    Add {
        #[command(flatten)]
        index: IndexArgs,
        /// The guardian's address.
        guardian: String,
        /// Limit the right to this product.
        #[arg(long)]
        product: Option<ProductId>,
    },
    /// Withdraw a guardian's right (the owner signs).
    Remove {
        #[command(flatten)]
        index: IndexArgs,
        /// The guardian's address.
        guardian: String,
        /// The product the right was for (omit for a guardian of every product).
        #[arg(long)]
        product: Option<ProductId>,
    },
}

/// Who may install a release, until when, and how fast it reaches the fleet (approved with the record).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TermsArgs {
    /// Hardware classes the release is for (repeatable or comma-separated; a name of up to 32 characters or
    /// 0x and 64 hex digits); default: every class.
    #[arg(long = "hardware", value_delimiter = ',')]
    pub hardware: Vec<HardwareClass>,
    /// Chain time from which devices must not install it: unix seconds, or +DURATION from now (e.g. +30d).
    #[arg(long, value_parser = parse_expiry)]
    pub expires: Option<u64>,
    /// The staged rollout: START%[,+STEP%/INTERVAL], e.g. 10% or 10%,+20%/1h; default 100% at once.
    #[arg(long)]
    pub rollout: Option<RolloutSchedule>,
    /// A CID of release notes or an SBOM, recorded with the release.
    #[arg(long)]
    pub notes: Option<String>,
}

/// Seconds, or a number with s, m, h or d.
pub fn parse_secs(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration: use seconds or a number with s, m, h or d, such as 1h");
    let (digits, unit) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(unit).ok_or_else(bad)
}

/// Unix seconds, or `+DURATION` from now.
pub fn parse_expiry(s: &str) -> Result<u64, String> {
    match s.strip_prefix('+') {
        Some(d) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            now.checked_add(parse_secs(d)?)
                .ok_or_else(|| format!("{s:?} is too far away"))
        }
        None => s
            .parse::<u64>()
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| format!("{s:?} is neither unix seconds nor +DURATION (e.g. +30d)")),
    }
}

/// What `publish` makes and where it goes.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub index: IndexArgs,
    /// The product.
    #[arg(long)]
    pub product: ProductId,
    /// The image devices run now (omit for a full-image-only release).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// The new image.
    #[arg(long)]
    pub to: PathBuf,
    /// Devices below this sequence must not install the release.
    #[arg(long, default_value_t = 0)]
    pub min_sequence: u64,
    /// zstd compression level (1-22).
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,
    /// Keep serving the release's blocks until interrupted.
    #[arg(long, conflicts_with = "api")]
    pub serve: bool,
    #[command(flatten)]
    pub terms: TermsArgs,
    /// Publish through a running repository node's API (e.g. http://127.0.0.1:8420) instead of standalone: it
    /// stores, provides and seeds the bundle; no key or RPC is needed here (FIRMCHAIN_API_TOKEN or _FILE when the
    /// node has a token).
    #[arg(long)]
    pub api: Option<String>,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `firmchain run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A TOML configuration file (see config/examples/); default /etc/firmchain/firmchain.toml when it exists.
    #[arg(long, short, env = "FIRMCHAIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Publish releases as well (repository role); the signing key comes from FIRMCHAIN_PRIVATE_KEY,
    /// FIRMCHAIN_PRIVATE_KEY_FILE or the systemd credential private_key.
    #[arg(long)]
    pub repository: bool,
    /// The data folder (same as --set data_dir=DIR).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Set one configuration value, e.g. --set chain.poll_interval_secs=2 (repeatable; lists take commas).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    pub set: Vec<String>,
    /// Check and print the merged configuration, then exit.
    #[arg(long)]
    pub check: bool,
}

/// Where a node keeps its data.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// The node's data folder (its `data_dir`).
    #[arg(long, env = "FIRMCHAIN_DATA_DIR", default_value = "/var/lib/firmchain")]
    pub data: PathBuf,
}

/// The node's state store.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print every stored fact: installed/<product>, rolled_back/<product>, health_pending/<product>,
    /// commit_pending/<product>, light_client, event_cursor, proofs. A value that does not decode is named as
    /// damaged.
    Show {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove one key, the way out of a damaged value (the node refuses to start on one). What a reset means:
    /// installed/* is rebuilt from the slot pointer at the next start; rolled_back/* lets those releases be tried
    /// again; health_pending/* skips the check after a crash; light_client starts again from chain.checkpoint;
    /// event_cursor reads the index's events again from the first block (each is checked again).
    Reset {
        /// The key, as `state show` prints it.
        key: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// A running node's API.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// The node's API address.
    #[arg(long, env = "FIRMCHAIN_API", default_value = "http://127.0.0.1:8420")]
    pub api: String,
    /// Seconds to wait for the node's answer.
    #[arg(long, alias = "timeout", default_value_t = 600)]
    pub api_timeout: u64,
}

/// `firmchain status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The node's configuration, for its `api.listen` and `data_dir` (default /etc/firmchain/firmchain.toml when
    /// it exists).
    #[arg(long, short, env = "FIRMCHAIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// The node's API (default: from the configuration, else http://127.0.0.1:8420).
    #[arg(long, env = "FIRMCHAIN_API")]
    pub api: Option<String>,
    /// The node's data folder (default: from the configuration, else /var/lib/firmchain).
    #[arg(long, env = "FIRMCHAIN_DATA_DIR")]
    pub data: Option<PathBuf>,
    /// Read only the data folder, even when the API answers.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Print the node's status (GET /status).
    Status {
        #[command(flatten)]
        api: ApiArgs,
        /// Keep asking every this many seconds, one status a line (JSON Lines with --json), until interrupted.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        watch: Option<u64>,
    },
    /// Exit 0 when the node's API answers with its status (a container HEALTHCHECK), else exit 9.
    Health {
        /// The node's API address.
        #[arg(long, env = "FIRMCHAIN_API", default_value = "http://127.0.0.1:8420")]
        api: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        api_timeout: u64,
        /// Also require a verified chain head that is not stale.
        #[arg(long)]
        chain: bool,
    },
    /// Publish a new image through a running repository node (POST /publish): it diffs against the release it
    /// published last, stores and provides the bundle, and waits for inclusion. The token comes from
    /// FIRMCHAIN_API_TOKEN, FIRMCHAIN_API_TOKEN_FILE or the credential api_token when the node has one.
    Publish {
        #[command(flatten)]
        api: ApiArgs,
        /// The new image.
        #[arg(long)]
        to: PathBuf,
        /// The image of the previous release (default: the one the node published last).
        #[arg(long)]
        from: Option<PathBuf>,
        /// The product (default: the node's).
        #[arg(long)]
        product: Option<ProductId>,
        /// Devices below this sequence must not install the release.
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
        #[command(flatten)]
        terms: TermsArgs,
    },
}

/// How a one-off p2p command networks.
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// Keep the blockstore and the node identity here (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Listen on this multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/4001 or /ip4/0.0.0.0/udp/4001/quic-v1.
    #[arg(long = "listen")]
    pub listen: Vec<Multiaddr>,
    /// Join the DHT through this peer (a multiaddr ending in /p2p/<peer id>; repeatable).
    #[arg(long = "bootstrap")]
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network by mDNS (off by default).
    #[arg(long)]
    pub mdns: bool,
}

#[derive(Debug, Subcommand)]
pub enum P2pCommand {
    /// Pack FILE into blocks (UnixFS, CIDv1, raw leaves), announce it on the DHT and serve it over Bitswap
    /// until interrupted. Prints the root CID and full multiaddrs (with /p2p/<peer id>) to fetch it from.
    Serve {
        /// The file to serve.
        file: PathBuf,
        #[command(flatten)]
        net: NetArgs,
        /// Bytes per chunk (at most 1 MiB).
        #[arg(long, default_value_t = 262_144, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        chunk_size: u32,
        /// The hash of leaf blocks (IPFS tools use sha2-256).
        #[arg(long, value_enum, default_value_t = LeafHashArg::Sha2_256)]
        leaf_hash: LeafHashArg,
    },
    /// Fetch the file under CID from peers (any UnixFS file DAG: CIDv0 or CIDv1, dag-pb or raw leaves,
    /// sha2-256 or blake3), verify every block, and write it to OUTPUT.
    Get {
        /// The root CID.
        cid: String,
        /// Ask this peer (a multiaddr ending in /p2p/<peer id>; repeatable). Providers found on the DHT are
        /// asked too.
        #[arg(long = "peer")]
        peers: Vec<Multiaddr>,
        /// Where to write the file (replaced only when the whole file verified).
        #[arg(short, long)]
        output: PathBuf,
        /// Refuse a file larger than this many bytes.
        #[arg(long, default_value_t = 1 << 30)]
        max_size: u64,
        /// Give up after this many seconds without any peer that can serve a missing block (what the node's
        /// `p2p.stall_timeout_secs` is to a running node).
        #[arg(long, alias = "timeout", default_value_t = 60)]
        stall_timeout: u64,
        /// CID names a UnixFS directory (a release bundle): fetch only this entry, e.g. `patch` or `full`.
        #[arg(long)]
        entry: Option<String>,
        #[command(flatten)]
        net: NetArgs,
    },
}

/// The public networks with built-in consensus parameters (`--network`, `chain.network`).
pub const NETWORKS: [&str; 3] = ["mainnet", "sepolia", "hoodi"];

/// A node's configuration as `firmchain run` reads it, for commands that act on a node's data.
#[derive(Debug, clap::Args)]
pub struct NodeConfigArgs {
    /// The node's TOML configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The node's data folder (same as --set data_dir=DIR).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Set one configuration value, as for `firmchain run` (repeatable).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    pub set: Vec<String>,
    /// A public network's built-in parameters: mainnet, sepolia or hoodi (same as --set chain.network=NAME).
    #[arg(long, value_parser = NETWORKS)]
    pub network: Option<String>,
}

/// `firmchain chain checkpoint`: the light client's trusted checkpoint of a node.
#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Show the configured checkpoint (chain.checkpoint) and the one the node persisted: block root, slot (the
    /// configured one's is asked of the consensus RPC, and verified), age, whether it is inside the
    /// weak-subjectivity window, and which one the node starts from (the newer of those inside the window).
    Show {
        #[command(flatten)]
        node: NodeConfigArgs,
    },
    /// Write a new trusted checkpoint into the node's state, replacing the persisted one: the way back for a
    /// device that was offline past the weak-subjectivity window, without deleting its data. Take the root of a
    /// recent finalized beacon block from a source you trust (your own beacon node, a block explorer you
    /// trust); the consensus RPC's bootstrap for it is verified against it and its age checked. Stop the node
    /// first; it starts from the new checkpoint (unless chain.checkpoint is newer).
    Set {
        /// The beacon block root (0x + 64 hex digits).
        root: String,
        /// Accept a checkpoint older than the weak-subjectivity window.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        node: NodeConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Show or set a node's trusted light-client checkpoint (see `chain checkpoint set --help`).
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Follow the beacon chain from a trusted checkpoint with the light client and show the verified
    /// finalized and optimistic heads and how stale they are.
    Status {
        /// Beacon node base URLs with the light-client API, tried in order (comma-separated or repeated).
        #[arg(
            long = "consensus-rpc",
            env = "FIRMCHAIN_CHAIN__CONSENSUS_RPC",
            value_delimiter = ',',
            required = true
        )]
        consensus_rpc: Vec<String>,
        /// The trusted checkpoint: a beacon block root (0x + 64 hex digits). Optional once --state holds one.
        #[arg(long, env = "FIRMCHAIN_CHAIN__CHECKPOINT")]
        checkpoint: Option<String>,
        /// Keep the newest finalized checkpoint and the verified heads in this file, and start from it.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Refuse checkpoints older than this many days (the weak-subjectivity window).
        #[arg(long, default_value_t = 14)]
        weak_subjectivity_days: u64,
        /// Accept a checkpoint older than the window.
        #[arg(long)]
        force_checkpoint: bool,
        /// Call the verified head stale when it is older than this many seconds.
        #[arg(long, default_value_t = 60)]
        max_staleness: u64,
        /// The consensus chain: a config file in the beacon API's `KEY: value` form (see the README); default
        /// Ethereum mainnet.
        #[arg(long, env = "FIRMCHAIN_CHAIN__CHAIN_CONFIG")]
        chain_config: Option<PathBuf>,
        /// A public network's built-in parameters: mainnet, sepolia or hoodi (instead of --chain-config).
        #[arg(long, env = "FIRMCHAIN_CHAIN__NETWORK", value_parser = NETWORKS, conflicts_with = "chain_config")]
        network: Option<String>,
        /// Seconds to wait for each RPC call (the node's `chain.timeout_secs`).
        #[arg(
            long,
            alias = "timeout",
            env = "FIRMCHAIN_CHAIN__TIMEOUT_SECS",
            default_value_t = 30
        )]
        rpc_timeout: u64,
    },
    /// Read a product's newest release from the index, proven against a block's state root. In light mode
    /// (--consensus-rpc and --checkpoint) the light client verifies the block through the sync committee and
    /// the storage is proven against its state root: neither RPC is trusted. In rpc mode (dev chains) the
    /// block header comes from the RPC and is checked against its hash; the storage is proven.
    ReadHead {
        /// Execution JSON-RPC URLs, tried in order (comma-separated or repeated).
        #[arg(
            long = "execution-rpc",
            visible_alias = "rpc",
            env = "FIRMCHAIN_CHAIN__EXECUTION_RPC",
            value_delimiter = ',',
            required = true
        )]
        rpc: Vec<String>,
        /// The FirmwareIndex contract address.
        #[arg(long, env = "FIRMCHAIN_CHAIN__CONTRACT")]
        contract: String,
        /// The product.
        product: ProductId,
        /// Read at this block (rpc mode; default: the latest).
        #[arg(long, conflicts_with = "consensus_rpc")]
        block: Option<u64>,
        /// Light mode: beacon node base URLs with the light-client API (comma-separated or repeated).
        #[arg(
            long = "consensus-rpc",
            env = "FIRMCHAIN_CHAIN__CONSENSUS_RPC",
            value_delimiter = ','
        )]
        consensus_rpc: Vec<String>,
        /// Light mode: the trusted checkpoint (a beacon block root).
        #[arg(long, env = "FIRMCHAIN_CHAIN__CHECKPOINT")]
        checkpoint: Option<String>,
        /// Light mode: the consensus chain's config file (default Ethereum mainnet).
        #[arg(long, env = "FIRMCHAIN_CHAIN__CHAIN_CONFIG")]
        chain_config: Option<PathBuf>,
        /// Light mode: a public network's built-in parameters: mainnet, sepolia or hoodi (instead of
        /// --chain-config).
        #[arg(long, env = "FIRMCHAIN_CHAIN__NETWORK", value_parser = NETWORKS, conflicts_with = "chain_config")]
        network: Option<String>,
        /// Light mode: read at the newest optimistic (attested) header instead of the finalized one.
        #[arg(long)]
        optimistic: bool,
        /// Light mode: accept a checkpoint older than the weak-subjectivity window.
        #[arg(long)]
        force_checkpoint: bool,
        /// Seconds to wait for each RPC call (the node's `chain.timeout_secs`).
        #[arg(
            long,
            alias = "timeout",
            env = "FIRMCHAIN_CHAIN__TIMEOUT_SECS",
            default_value_t = 30
        )]
        rpc_timeout: u64,
    },
}

/// The command line with everything derived from elsewhere: the exit codes after the help.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command().after_help(crate::error::exit_codes_help())
}
