//! `firmchain`: secure, decentralised firmware distribution for IoT fleets.

use std::process::ExitCode;

use clap::FromArgMatches;

mod api;
mod cli;
mod cmd;
mod error;
mod footprint;
mod logging;
mod notify;
mod output;
mod secrets;

fn main() -> ExitCode {
    bound_malloc_arenas();
    let cli = match cli::Cli::from_arg_matches(&cli::command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // rustls (ring) for every HTTP client of the process.
    firmchain_lightclient::http::install_crypto_provider();
    // Diagnostics go to stderr, one event a line (--log-format, --log-level or FIRMCHAIN_LOG).
    if let Err(e) = logging::init(cli.log_format, &cli.log_level) {
        eprintln!("error: {e}");
        return ExitCode::from(error::Exit::Usage.code());
    }
    let out = output::Output::new(cli.json, cli.quiet);
    // Parsing the command line and starting up touched most of the code: what the command runs comes back.
    footprint::release_startup_code();
    match cmd::run(cli.command, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let report = anyhow::Error::new(e);
            out.error(&report);
            ExitCode::from(error::exit_code(&report))
        }
    }
}

/// glibc gives threads that allocate at once arenas of their own (up to 8 per core) and keeps what is freed in
/// each of them: fetching a 64 MiB image, a device build peaked at 52 MiB that way, at 36 MiB with two arenas
/// and 28 MiB with one (bench/results/device.md). One arena bounds that; a device has few cores to contend for
/// it. Device builds only: a publisher's multi-threaded compression keeps glibc's default. `MALLOC_ARENA_MAX` in
/// the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "publisher")))]
#[allow(unsafe_code)]
fn bound_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tuning parameter of the allocator; it runs first in main, before any
        // other thread exists, and its result needs no handling (glibc keeps its default if it refuses).
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "publisher"))))]
fn bound_malloc_arenas() {}
