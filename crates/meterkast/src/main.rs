//! `meterkast`: reads a smart electricity meter's customer port and makes the data useful.

use clap::{Parser, Subcommand};

use meterkast::cmd;

/// Read a smart meter's P1 / customer port and make the data useful.
///
/// Try it without a meter: `meterkast run --demo`, then open http://127.0.0.1:8080/.
/// Decode a capture: `meterkast parse FILE`. More: `meterkast help <command>`.
#[derive(Parser, Debug)]
#[command(name = "meterkast", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Parse(cmd::parse::ParseArgs),
    Run(Box<cmd::run::RunArgs>),
    Import(cmd::import::ImportArgs),
    /// Write a simulated meter's output (stdout or TCP), for demos, tests and benchmarks.
    #[command(long_about = cmd::simulate::LONG_HELP)]
    Simulate(cmd::simulate::SimulateArgs),
    Report(Box<cmd::report::ReportCmdArgs>),
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
        Command::Run(args) => cmd::run::run(*args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Report(args) => cmd::report::run(*args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("meterkast: {e:#}");
            std::process::exit(2);
        }
    }
}
