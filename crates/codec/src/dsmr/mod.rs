//! DSMR P1 and its relatives (Fluvius e-MUCS, Smarty plaintext, Austrian P1, E.ON HU,
//! Iskra IE, EasyMeter Q3D): framing and the line grammar.

pub mod framer;
pub mod parser;

pub use framer::{DsmrFramer, FrameDrop, FrameEvent, RawTelegram, MAX_TELEGRAM};
pub use parser::{parse, parse_body, DsmrError};
