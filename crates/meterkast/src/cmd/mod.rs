//! One module per subcommand.

pub mod import;
pub mod parse;
pub mod report;
pub mod run;
pub mod simulate;
