//! `meterkast`: reads a smart electricity meter's customer port and makes the data useful.

use clap::{Parser, Subcommand};

use meterkast::cmd;

/// Read a smart meter's P1 / customer port and make the data useful.
///
/// Start with `meterkast parse FILE` to decode a capture, or see `meterkast help <command>`.
#[derive(Parser, Debug)]
#[command(name = "meterkast", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decode raw meter output (files or stdin) into JSON Lines.
    Parse(cmd::parse::ParseArgs),
    /// Run the daemon: read meters, store everything, serve the API and dashboard.
    Run(cmd::run::RunArgs),
    /// Load raw meter captures into the database, with roll-ups.
    Import(cmd::import::ImportArgs),
    /// Write a simulated meter's output (stdout or TCP), for demos, tests and benchmarks.
    #[command(long_about = cmd::simulate::LONG_HELP)]
    Simulate(cmd::simulate::SimulateArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let result = match cli.command {
        Command::Parse(args) => cmd::parse::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("meterkast: {e:#}");
            std::process::exit(2);
        }
    }
}
