//! Outputs that push readings elsewhere as they arrive (MQTT, SQL databases). Each one is fed through
//! its own bounded channel with `try_send`, so a slow or absent peer never delays
//! reading and storing.
#![warn(missing_docs)]

pub mod forward;
pub mod mqtt;
pub mod sql;
