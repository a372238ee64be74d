//! The stream decoder: any meter's bytes in, decoded telegrams and rejections out.
//!
//! It wraps the framers and decoders of every dialect behind one push interface, so a
//! source never needs to know what kind of meter it is connected to.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::dsmr::{self, DsmrFramer, FrameDrop, FrameEvent};
use crate::model::Telegram;

/// Why a frame was not output. The `cause` is a short stable name for counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// A short stable name: `checksum`, `syntax`, `too_long`, `truncated`, ...
    pub cause: &'static str,
    /// A sentence for people: what happened and what to check.
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause, self.message)
    }
}

/// A decoded frame, borrowing from the decoder until the next call.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The decoded telegram.
    pub telegram: Telegram<'a>,
    /// The raw telegram text (for DSMR; for encrypted DSMR the decrypted text), if any.
    pub raw: &'a [u8],
}

/// Counters of what the decoder has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames decoded and output.
    pub accepted: u64,
    /// Frames rejected, by cause.
    pub rejected: Vec<(&'static str, u64)>,
    /// Bytes skipped as noise between frames.
    pub skipped_bytes: u64,
}

impl Stats {
    /// Counts one rejection.
    pub fn count_rejection(&mut self, cause: &'static str) {
        match self.rejected.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => self.rejected.push((cause, 1)),
        }
    }

    /// All rejections together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

/// Push decoder for a meter's byte stream.
#[derive(Debug, Default)]
pub struct Decoder {
    dsmr: DsmrFramer,
    stats: Stats,
}

impl Decoder {
    /// A decoder with no keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes, in any chunking.
    pub fn push(&mut self, data: &[u8]) {
        self.dsmr.push(data);
    }

    /// Marks the end of the input: frames completed by it are output, a frame still
    /// open is reported as truncated by the following calls to [`next`](Self::next).
    pub fn finish(&mut self) {
        self.dsmr.finish();
    }

    /// What has been seen so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.skipped_bytes = self.dsmr.skipped_bytes;
        s
    }

    /// The next decoded frame or rejection; `None` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Decoded<'_>, Rejection>> {
        let ev = self.dsmr.next()?;
        let res = match ev {
            FrameEvent::Telegram(raw) => match dsmr::parse(&raw) {
                Ok(telegram) => Ok(Decoded {
                    telegram,
                    raw: raw.raw,
                }),
                Err(e) => Err(Rejection {
                    cause: e.cause(),
                    message: alloc::format!("{e}"),
                }),
            },
            FrameEvent::Dropped(FrameDrop::TooLong) => Err(Rejection {
                cause: "too_long",
                message: alloc::format!(
                    "telegram longer than {} bytes without an end; dropped",
                    dsmr::MAX_TELEGRAM
                ),
            }),
            FrameEvent::Dropped(FrameDrop::BadChecksumField) => Err(Rejection {
                cause: "checksum",
                message: String::from(
                    "the checksum after '!' is damaged (not hex digits); dropped",
                ),
            }),
            FrameEvent::Dropped(FrameDrop::Truncated) => Err(Rejection {
                cause: "truncated",
                message: String::from("telegram cut off by the start of the next one; dropped"),
            }),
        };
        match &res {
            Ok(_) => self.stats.accepted += 1,
            Err(r) => self.stats.count_rejection(r.cause),
        }
        Some(res)
    }
}
