//! meterkast: reads a smart electricity meter's customer port and makes the data useful.
//!
//! The binary is a thin shell over these modules: one per subcommand (`cmd`), the
//! store, the ingest pipeline, and the JSON shapes other tools rely on.

pub mod bridge;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod evn_env;
pub mod http;
pub mod json;
pub mod listen;
pub mod lograte;
pub mod mdns;
pub mod mqtt_url;
pub mod pipeline;
pub mod prices;
pub mod redact;
pub mod report;
pub mod sim;
pub mod sink;
pub mod source;
pub mod store;
pub mod timefmt;
