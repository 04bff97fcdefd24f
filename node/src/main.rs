//! `firmchain`: secure, decentralised firmware distribution for IoT fleets.

use std::process::ExitCode;

use clap::Parser;

mod api;
mod cli;
mod cmd;
mod error;
mod output;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // rustls (ring) for every HTTP client of the process.
    firmchain_lightclient::http::install_crypto_provider();
    // Diagnostics go to stderr; FIRMCHAIN_LOG picks the level (error, warn, info, debug, trace or a filter).
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIRMCHAIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,libp2p_kad=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let out = output::Output::new(cli.json, cli.quiet);
    match cmd::run(cli.command, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let report = anyhow::Error::new(e);
            out.error(&report);
            ExitCode::from(error::exit_code(&report))
        }
    }
}
