//! Files for operators, generated from the command line itself: shell completions and the man page.

use std::io::Write;

use clap_complete::Shell;

use crate::error::CliError;

fn stdout_error(e: std::io::Error) -> CliError {
    CliError::File {
        path: "standard output".into(),
        source: e,
    }
}

/// `firmchain completions SHELL`.
pub fn completions(shell: Shell) -> Result<(), CliError> {
    // Into memory first: the generator panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::command(), "firmchain", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// `firmchain man`: the man page, section 1, in roff.
pub fn man() -> Result<(), CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(crate::cli::command())
        .render(&mut page)
        .map_err(stdout_error)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}
