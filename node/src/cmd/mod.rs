//! The CLI's commands.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::cli::Command;
use crate::error::CliError;
use crate::output::Output;

#[cfg(feature = "fault-injection")]
mod beacon_harness;
mod chain;
mod checkpoint;
mod contract;
#[cfg(feature = "publisher")]
mod demo;
#[cfg(feature = "publisher")]
mod diff;
mod fault;
mod files;
mod node;
mod offline;
mod ops;
mod p2p;
mod patch;
#[cfg(feature = "publisher")]
mod peers_demo;
#[cfg(feature = "publisher")]
mod publish;
mod rollout;
#[cfg(feature = "publisher")]
mod rollout_demo;
mod run;
mod serve;
mod state;
mod status;
#[cfg(feature = "publisher")]
mod swarm_demo;

/// Run one command.
pub fn run(command: Command, out: &Output) -> Result<(), CliError> {
    match command {
        #[cfg(feature = "publisher")]
        Command::Diff {
            old,
            new,
            output,
            kind,
            level,
            window_log,
        } => diff::diff(&old, &new, &output, kind, level, window_log, out),
        Command::Apply {
            base,
            patch,
            output,
            expect,
            max_window_log,
        } => patch::apply(&base, &patch, &output, expect, max_window_log, out),
        Command::Hash { file } => patch::hash(&file, out),
        Command::Pack {
            file,
            output,
            chunk_size,
        } => files::pack(&file, &output, chunk_size as usize, out),
        Command::Unpack { car, output, root } => files::unpack(&car, &output, root.as_deref(), out),
        #[cfg(feature = "publisher")]
        Command::Demo {
            dir,
            size_mib,
            devices,
            change_kib,
            anvil,
            device_binary,
            pipeline,
            rollout,
            light,
            peers,
        } => {
            if let Some(schedule) = rollout {
                let args = swarm_demo::DemoArgs {
                    dir,
                    size_mib,
                    devices,
                    change_kib,
                    anvil,
                    device_binary,
                    light: false,
                    peers: false,
                };
                rollout_demo::run(args, schedule, out)
            } else if pipeline {
                demo::run(dir.as_deref(), size_mib, out)
            } else {
                let args = swarm_demo::DemoArgs {
                    dir,
                    size_mib,
                    devices,
                    change_kib,
                    anvil,
                    device_binary,
                    light,
                    peers,
                };
                swarm_demo::run(args, out)
            }
        }
        Command::Contract(c) => contract::run(c, out),
        Command::Chain(c) => chain::run(c, out),
        Command::P2p(c) => p2p::run(c, out),
        #[cfg(feature = "publisher")]
        Command::Publish(args) => publish::run(args, out),
        #[cfg(not(feature = "publisher"))]
        Command::Diff { .. } => Err(not_in_build("diff")),
        #[cfg(not(feature = "publisher"))]
        Command::Demo { .. } => Err(not_in_build("demo")),
        #[cfg(not(feature = "publisher"))]
        Command::Publish(_) => Err(not_in_build("publish")),
        Command::Run(args) => run::run(args, out),
        Command::Export {
            mut node,
            product,
            sequence,
            peer,
            output,
        } => {
            if let Some(p) = product {
                node.set.push(format!("chain.product={p}"));
            }
            offline::export(node, sequence, peer, &output, out)
        }
        Command::Install {
            car,
            node,
            install_timeout,
        } => offline::install(node, &car, std::time::Duration::from_secs(install_timeout), out),
        Command::Node(c) => node::run(c, out),
        Command::State(c) => state::run(c, out),
        Command::Status(args) => status::run(args, out),
        Command::Completions { shell } => ops::completions(shell),
        Command::Man => ops::man(),
        #[cfg(feature = "fault-injection")]
        Command::BeaconHarness { rpc, listen } => beacon_harness::serve(&rpc, &listen, out),
    }
}

/// The error of a publisher's command invoked on a device build.
#[cfg(not(feature = "publisher"))]
pub fn not_in_build(command: &'static str) -> CliError {
    CliError::NotInBuild {
        command,
        feature: "publisher",
    }
}

/// Write `path` atomically: `fill` writes into a temporary file beside it, which replaces `path` (after
/// fsync) only if `fill` succeeds. On failure nothing at `path` changes.
pub fn write_atomically<T>(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".firmchain-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(CliError::file(dir))?;
    let value = {
        let mut w = BufWriter::with_capacity(256 * 1024, tmp.as_file());
        let value = fill(&mut w)?;
        w.flush().map_err(CliError::file(path))?;
        value
    };
    tmp.as_file().sync_all().map_err(CliError::file(path))?;
    tmp.persist(path).map_err(|e| CliError::File {
        path: path.to_owned(),
        source: e.error,
    })?;
    if let Ok(d) = File::open(dir) {
        // Make the rename durable; not every platform lets a directory be synced.
        let _ = d.sync_all();
    }
    Ok(value)
}

/// Run async work (chain and contract commands) on a small single-threaded runtime.
pub fn block_on<T>(work: impl std::future::Future<Output = Result<T, CliError>>) -> Result<T, CliError> {
    runtime(&mut tokio::runtime::Builder::new_current_thread())?.block_on(work)
}

/// Run networking work (p2p, publish) on two worker threads: blocks are hashed and stored beside the network.
pub fn block_on_threads<T>(
    work: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2))?.block_on(work)
}

fn runtime(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, CliError> {
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::Demo(format!("cannot start the async runtime: {e}")))
}

/// Open a file for reading, naming it in the error.
pub fn open(path: &Path) -> Result<File, CliError> {
    File::open(path).map_err(CliError::file(path))
}
