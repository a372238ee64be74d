//! Sans-IO decoding of smart meter customer-port output.
//!
//! Bytes in, values out: no sockets, no clocks, no async runtime. Feed a
//! [`Decoder`] whatever a serial port, socket or file delivers, in any chunk size,
//! and pull decoded [`Telegram`]s out; turn each into the normalized [`Reading`].
//!
//! ```
//! use meterkast_codec::{Decoder, Reading};
//! let mut d = Decoder::new();
//! d.push(b"/ISk5\\2MT382-1000\r\n\r\n1-0:1.7.0(0001.23*kW)\r\n!\r\n");
//! let frame = d.next().unwrap().unwrap();
//! assert_eq!(Reading::from_telegram(&frame.telegram).active_power_w, Some(1230.0));
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod crc;
pub mod decimal;
pub mod dlms;
pub mod dsmr;
pub mod model;
pub mod obis;
pub mod reading;
pub mod stream;
pub mod testkit;
pub mod time;

pub use decimal::Decimal;
pub use dlms::Keys;
pub use model::{Dialect, Object, ObjectMap, Security, Telegram, Value};
pub use obis::Obis;
pub use reading::{External, Reading};
pub use stream::{Decoded, Decoder, Rejection, Stats, WireFrame};
pub use time::Timestamp;
