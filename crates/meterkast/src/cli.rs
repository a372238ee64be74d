//! The command line: subcommands, help that never shows a secret, and secrets read
//! from files (`MK_DB_FILE`, …) for systemd credentials and Docker secrets.

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::cmd;

/// Read a smart meter's P1 / customer port and make the data useful.
///
/// Try it without a meter: `meterkast run --demo`, then open http://127.0.0.1:8080/.
/// Decode a capture: `meterkast parse FILE`. More: `meterkast help <command>`.
#[derive(Parser, Debug)]
#[command(name = "meterkast", version, propagate_version = true)]
pub struct Cli {
    /// What to do; none given suggests `meterkast run --demo`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands (each documented by its arguments' struct).
#[derive(Subcommand, Debug)]
pub enum Command {
    Parse(cmd::parse::ParseArgs),
    Run(Box<cmd::run::RunArgs>),
    Import(cmd::import::ImportArgs),
    /// Write a simulated meter's output (stdout or TCP), for demos, tests and benchmarks.
    #[command(long_about = cmd::simulate::LONG_HELP)]
    Simulate(cmd::simulate::SimulateArgs),
    Report(Box<cmd::report::ReportCmdArgs>),
}

/// What bare `meterkast` says.
pub const NO_COMMAND: &str = "meterkast: no command given.
Try it without a meter:   meterkast run --demo   (then open http://127.0.0.1:8080/)
Read your meter:          meterkast run --source serial:///dev/ttyUSB0
Decode a capture:         meterkast parse FILE
All commands:             meterkast --help";

/// The command tree as the program parses it: the environment's values are never shown
/// in `--help`, whatever the flag (the secret-bearing ones are marked
/// `hide_env_values` in their definitions, which [`secret_env_vars`] reads).
pub fn command() -> clap::Command {
    hide_env_values(Cli::command())
}

fn hide_env_values(c: clap::Command) -> clap::Command {
    c.mut_args(|a| a.hide_env_values(true))
        .mut_subcommands(hide_env_values)
}

/// The `MK_…` variables of flags that can hold a secret (those defined with
/// `hide_env_values`): each may instead be read from a file named by `NAME_FILE`.
pub fn secret_env_vars() -> Vec<String> {
    env_names(clap::Arg::is_hide_env_values_set)
}

/// Every `MK_…` variable any flag reads.
pub fn env_vars() -> Vec<String> {
    env_names(|_| true)
}

/// The environment variables of every argument of every subcommand that `keep` keeps.
fn env_names(keep: fn(&clap::Arg) -> bool) -> Vec<String> {
    fn walk(c: &clap::Command, keep: fn(&clap::Arg) -> bool, out: &mut Vec<String>) {
        out.extend(
            c.get_arguments()
                .filter(|a| keep(a))
                .filter_map(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned()),
        );
        for s in c.get_subcommands() {
            walk(s, keep, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), keep, &mut out);
    out.sort();
    out.dedup();
    out
}

/// Reads `NAME_FILE` for every secret-bearing `NAME` (systemd's `LoadCredential=`,
/// Docker secrets): the file's content, without its trailing newline, becomes `NAME`.
/// Both set is an error, as is a file that cannot be read. Runs before any thread.
pub fn load_secret_files() -> Result<()> {
    for name in secret_env_vars() {
        let file_var = format!("{name}_FILE");
        let Some(path) = std::env::var_os(&file_var) else {
            continue;
        };
        if std::env::var_os(&name).is_some() {
            bail!("both {name} and {file_var} are set: keep one (the file is for secrets kept out of the environment)");
        }
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{file_var}={}: cannot read the file (give the path of a readable file holding the value)",
                std::path::Path::new(&path).display()
            )
        })?;
        let value = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        // Single-threaded still: nothing reads the environment concurrently.
        std::env::set_var(&name, value);
    }
    Ok(())
}

/// Parses the command line (after [`load_secret_files`]).
pub fn parse() -> Result<Cli, clap::Error> {
    let m = command().try_get_matches()?;
    Cli::from_arg_matches(&m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definitions_parse() {
        command().debug_assert();
    }

    #[test]
    fn every_flag_that_can_hold_a_secret_is_marked() {
        let secret = secret_env_vars();
        for v in [
            "MK_DB",
            "MK_SOURCE",
            "MK_AUTH_TOKEN",
            "MK_AUTH_BASIC",
            "MK_MQTT",
            "MK_FORWARD",
            "MK_INGEST",
            "MK_SQL_SINK",
            "MK_REPORT_SMTP",
            "MK_KEY",
            "MK_AUTH_KEY",
        ] {
            assert!(secret.contains(&v.to_string()), "{v} is not hidden");
        }
        // A variable is marked wherever it is read (MK_DB in report as in run).
        fn walk(c: &clap::Command, secret: &[String]) {
            for a in c.get_arguments() {
                if let Some(e) = a.get_env() {
                    let e = e.to_string_lossy().into_owned();
                    assert!(
                        !secret.contains(&e) || a.is_hide_env_values_set(),
                        "{e} in `{}` is not marked hide_env_values",
                        c.get_name()
                    );
                }
            }
            for s in c.get_subcommands() {
                walk(s, secret);
            }
        }
        walk(&Cli::command(), &secret);
    }
}
