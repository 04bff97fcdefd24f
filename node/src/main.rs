//! `firmchain`: secure, decentralised firmware distribution for IoT fleets.

use std::process::ExitCode;

use clap::FromArgMatches;

mod api;
mod cli;
mod cmd;
mod error;
mod logging;
mod notify;
mod output;
mod secrets;

fn main() -> ExitCode {
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
    match cmd::run(cli.command, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let report = anyhow::Error::new(e);
            out.error(&report);
            ExitCode::from(error::exit_code(&report))
        }
    }
}
