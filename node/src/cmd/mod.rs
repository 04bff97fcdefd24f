//! The CLI's commands.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::cli::Command;
use crate::error::CliError;
use crate::output::Output;

mod chain;
mod checkpoint;
mod contract;
mod demo;
mod fault;
mod files;
mod node;
mod offline;
mod p2p;
mod patch;
mod peers_demo;
mod publish;
mod rollout;
mod rollout_demo;
mod run;
mod serve;
mod state;
mod swarm_demo;

/// Run one command.
pub fn run(command: Command, out: &Output) -> Result<(), CliError> {
    match command {
        Command::Diff {
            old,
            new,
            output,
            kind,
            level,
            window_log,
        } => patch::diff(&old, &new, &output, kind, level, window_log, out),
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
        Command::Demo {
            dir,
            size_mib,
            devices,
            change_kib,
            anvil,
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
                    light,
                    peers,
                };
                swarm_demo::run(args, out)
            }
        }
        Command::Contract(c) => contract::run(c, out),
        Command::Chain(c) => chain::run(c, out),
        Command::P2p(c) => p2p::run(c, out),
        Command::Publish(args) => publish::run(args, out),
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
