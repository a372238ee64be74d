//! `meterkast`: reads a smart electricity meter's customer port and makes the data useful.

use meterkast::cli::{self, Command};
use meterkast::{cmd, redact};

fn main() {
    if let Err(e) = cli::load_secret_files() {
        eprintln!("meterkast: {}", redact::text(&format!("{e:#}")));
        std::process::exit(2);
    }
    let cli = match cli::parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let Some(command) = cli.command else {
        eprintln!("{}", cli::NO_COMMAND);
        std::process::exit(2);
    };
    let result = match command {
        Command::Parse(args) => cmd::parse::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Run(args) => cmd::run::run(*args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Report(args) => cmd::report::run(*args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // Whatever an error repeats (a URL given on the command line), no password.
            eprintln!("meterkast: {}", redact::text(&format!("{e:#}")));
            std::process::exit(2);
        }
    }
}
