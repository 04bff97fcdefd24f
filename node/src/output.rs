//! What the CLI prints: human text or JSON on stdout, progress bars and errors on stderr.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Output settings shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
    quiet: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Self {
        Output { json, quiet }
    }

    /// Whether results are printed as JSON.
    #[cfg_attr(not(feature = "publisher"), allow(dead_code))]
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Print a command's result: `human` for people, `value` with `--json`.
    pub fn result<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot encode the result as JSON: {e}"),
            }
        } else {
            println!("{}", human());
        }
    }

    /// Print one line now (compact JSON with `--json`), for results that come before the command ends.
    pub fn line<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot encode the result as JSON: {e}"),
            }
        } else {
            println!("{}", human());
        }
    }

    /// Report a failure on stderr (and as JSON on stdout with `--json`).
    /// stderr first: whoever reads the JSON line then finds the same words already in the log.
    pub fn error(&self, report: &anyhow::Error) {
        eprintln!("error: {report:#}");
        if self.json {
            let v = serde_json::json!({ "error": format!("{report:#}"), "exit_code": crate::error::exit_code(report) });
            println!("{v}");
        }
    }

    /// A progress bar over `total` bytes, drawn only on a terminal and without `--json`/`--quiet`.
    pub fn bytes(&self, message: &str, total: u64) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.target());
        let style = ProgressStyle::with_template(
            "{msg:>10} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_owned());
        bar
    }

    /// A spinner for work without a known size.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.json || self.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    }
}

/// Bytes as a short human string.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}
