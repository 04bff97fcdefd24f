//! `firmchain`: secure, decentralised firmware distribution for IoT fleets.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cmd;
mod error;
mod output;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
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
