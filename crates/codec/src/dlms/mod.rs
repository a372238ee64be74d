//! DLMS/COSEM push output: M-Bus long frames (Austria), HDLC frames (Nordic and
//! others), General Block Transfer, general-glo-ciphering (AES-128-GCM, including
//! Luxembourg Smarty's encrypted DSMR) and the A-XDR data-notification.
//!
//! Everything here is sans-IO and never panics on input: each public decode function
//! takes `&[u8]`, caps every length it reads from the wire and returns an error for
//! anything it cannot vouch for. [`Session`] ties the layers together for one meter
//! connection (segment reassembly, keys, frame counters); the stream
//! [`Decoder`](crate::Decoder) uses it.
//!
//! Decisions worth knowing:
//! - A frame counter that does not increase (per system title) is a warning, not a
//!   rejection: the frame is output with `Decoded::warning` (cause `frame_counter`),
//!   because meters reset their counters on firmware updates.
//! - Without an authentication key the Luxembourg default is tried; if the tag still
//!   fails, the plaintext is used only when it proves itself (a DSMR telegram whose
//!   upper-case CRC matches and ends the text, or a data-notification that parses to
//!   its last byte), with `Security::authenticated == false`. With an explicit key a
//!   bad tag is always a rejection.
//! - Decrypted DSMR keeps the dialect the DSMR parser detects when it is specific
//!   (Austrian P1, Fluvius...); a generic Dutch one becomes [`Dialect::Smarty`](crate::Dialect).
//!   An LLC-framed APDU without HDLC counts as [`Dialect::DlmsHdlc`](crate::Dialect).
//! - Lists that carry no scaler-unit get units from the OBIS quantity and scalers from
//!   the vendor named by the list identifier (Kaifa mA/dV, Kamstrup cA/V/10 Wh,
//!   Iskraemeco cA/dV; otherwise cA, V, W, Wh as Landis+Gyr sends).
//! - Lists without OBIS codes are mapped by their documented layouts (`layout`); a
//!   notification from which no reading comes is rejected as
//!   [`DlmsError::UnknownLayout`], asking for a capture, never accepted empty.
//! - An M-Bus long frame whose L is below 3 carries 256 + L bytes (the T210-D's
//!   first segment; see [`mbus::user_data_len`]).
//! - General-ded-ciphering is refused: it needs a dedicated key no push meter uses.

use alloc::string::String;
use core::fmt;

pub mod axdr;
pub mod cipher;
pub mod cosem;
pub mod encode;
pub mod gbt;
pub mod hdlc;
mod layout;
pub mod mbus;
mod session;

pub use cipher::{Keys, LUXEMBOURG_AUTHENTICATION_KEY};
pub use session::{Decrypted, Session, Transport};

/// The largest reassembled APDU accepted (segments, GBT blocks, ciphertext). Real
/// push messages stay under 2 KiB.
pub const MAX_APDU: usize = 16 * 1024;

/// Why a DLMS frame or APDU was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlmsError {
    /// The input ends before the structure it announces.
    Truncated,
    /// A length or reassembled message exceeds [`MAX_APDU`].
    TooLong,
    /// A frame checksum (M-Bus CS, HDLC HCS/FCS) or the inner DSMR CRC does not match.
    Checksum(&'static str),
    /// The bytes do not follow the framing or APDU grammar.
    Syntax(&'static str),
    /// Something well-formed this decoder does not support.
    Unsupported(&'static str),
    /// The data-notification's content cannot be decoded.
    Cosem(&'static str),
    /// The data-notification decoded, but none of its values lands in a register this
    /// decoder knows: a list layout it has not seen (never accepted with nothing in it).
    UnknownLayout(&'static str),
    /// An encrypted frame arrived and no encryption key is configured.
    NoKey {
        /// The sender's system title, readable.
        system_title: String,
    },
    /// The GCM tag did not verify (or an unverified plaintext did not prove itself).
    Authentication {
        /// The sender's system title, readable.
        system_title: String,
    },
    /// A key given by the user is malformed.
    Key(&'static str),
    /// An encrypted frame without a tag decrypted to nothing valid: most likely the key
    /// is wrong.
    WrongKey {
        /// The sender's system title, readable.
        system_title: String,
    },
    /// The decrypted DSMR telegram is invalid.
    Dsmr(crate::dsmr::DsmrError),
}

impl DlmsError {
    /// A short, stable name of the cause (for counters and summaries).
    pub fn cause(&self) -> &'static str {
        match self {
            DlmsError::Truncated => "truncated",
            DlmsError::TooLong => "too_long",
            DlmsError::Checksum(_) => "checksum",
            DlmsError::Syntax(_) => "syntax",
            DlmsError::Unsupported(_) => "unsupported",
            DlmsError::Cosem(_) => "cosem",
            DlmsError::UnknownLayout(_) => "unknown_layout",
            DlmsError::NoKey { .. } => "no_key",
            DlmsError::Authentication { .. } => "authentication",
            DlmsError::Key(_) | DlmsError::WrongKey { .. } => "key",
            DlmsError::Dsmr(e) => e.cause(),
        }
    }
}

impl fmt::Display for DlmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DlmsError::Truncated => f.write_str("frame or APDU ends before its announced length"),
            DlmsError::TooLong => write!(f, "message longer than {MAX_APDU} bytes; dropped"),
            DlmsError::Checksum(what) => write!(f, "{what} mismatch (damaged on the line?)"),
            DlmsError::Syntax(what) => write!(f, "malformed frame: {what}"),
            DlmsError::Unsupported(what) => write!(f, "unsupported: {what}"),
            DlmsError::Cosem(what) => write!(f, "cannot decode the COSEM data: {what}"),
            DlmsError::UnknownLayout(what) => write!(
                f,
                "unknown layout: {what}. Please send a capture of such frames (the hex as read, \
                 with the meter's make and your grid operator) to the meterkast issue tracker \
                 so the layout can be added"
            ),
            DlmsError::NoKey { system_title } => write!(
                f,
                "encrypted frame from meter {system_title} but no key configured; \
                 give the meter's encryption key with --key HEX (32 hex digits, from your grid operator)"
            ),
            DlmsError::Authentication { system_title } => write!(
                f,
                "authentication failed for meter {system_title}: wrong key or corrupted frame \
                 (check --key, and --auth-key if your operator gave one)"
            ),
            DlmsError::Key(what) => write!(f, "bad key: {what}"),
            DlmsError::WrongKey { system_title } => write!(
                f,
                "frame from meter {system_title} decrypts to no valid data: wrong key? \
                 (check --key against the key your grid operator gave for this meter)"
            ),
            DlmsError::Dsmr(e) => write!(f, "decrypted telegram rejected: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DlmsError {}

/// What a framing function found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing<T> {
    /// A complete frame, and how many bytes it took.
    Frame(T, usize),
    /// The start looks like a frame; more bytes are needed to tell.
    Incomplete,
    /// The bytes do not start a frame (skip one byte and look again).
    NotAFrame,
    /// A frame with a trustworthy header that is damaged: reject it and skip its bytes.
    Corrupt(DlmsError, usize),
}

/// A system title as people read it: the three-letter manufacturer code followed by
/// the hex of the remaining bytes (`SAG677001BD54`), or all hex when it has no such code.
pub fn readable_system_title(st: &[u8; 8]) -> String {
    let mut s = String::with_capacity(16);
    let (head, tail) = if st[..3].iter().all(u8::is_ascii_uppercase) {
        for &b in &st[..3] {
            s.push(char::from(b));
        }
        st.split_at(3)
    } else {
        st.split_at(0)
    };
    debug_assert!(head.len() <= 3);
    s.push_str(&to_hex(tail));
    s
}

/// Upper-case hex of a byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

/// The value of one hex digit.
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
