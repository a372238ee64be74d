//! The stream decoder: any meter's bytes in, decoded telegrams and rejections out.
//!
//! It wraps the framers and decoders of every dialect behind one push interface, so a
//! source never needs to know what kind of meter it is connected to. Detection is
//! automatic and per frame:
//!
//! - `/` and three letters start DSMR text; from then on the stream is DSMR (P1 ports
//!   do not change their kind) and the DSMR framer takes every byte.
//! - `68 L L 68` starts an M-Bus long frame, `7E A…` an HDLC frame, `DB` a ciphered
//!   APDU (Luxembourg Smarty), `0F` a plain data-notification and `E6 E7 00` an HDLC
//!   information field: raw binary.
//! - A line of hex digits is one or more binary frames as text (what ESP bridges publish
//!   to MQTT); a line must end with a line feed ([`Decoder::finish`] adds one).
//!
//! Anything else is noise: skipped and counted, and the search resumes at the next
//! byte, so noise never costs the frame after it. One exception keeps damaged frames
//! from slipping through: right after noise, an APDU without framing is accepted only
//! if it carries a GCM tag (Smarty); a plain or tagless unframed APDU must follow a
//! frame directly (or start a hex line or the stream), because after noise it may be
//! the inside of an M-Bus or HDLC frame whose header was damaged.
//!
//! A frame counter that does not increase is not a rejection: the frame is output with
//! [`Decoded::warning`] set (cause `frame_counter`) and counted in [`Stats::warnings`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::dlms::{self, cipher, cosem, gbt, hdlc, mbus, DlmsError, Framing, Keys, Session};
use crate::dsmr::{self, DsmrFramer, FrameDrop, FrameEvent};
use crate::model::Telegram;

/// Why a frame was not output. The `cause` is a short stable name for counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// A short stable name: `checksum`, `syntax`, `too_long`, `truncated`,
    /// `authentication`, `no_key`, `key`, `cosem`, `unsupported` (and, as a warning,
    /// `frame_counter`).
    pub cause: &'static str,
    /// A sentence for people: what happened and what to check. Never contains a key.
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause, self.message)
    }
}

impl From<DlmsError> for Rejection {
    fn from(e: DlmsError) -> Self {
        Rejection {
            cause: e.cause(),
            message: alloc::format!("{e}"),
        }
    }
}

/// A decoded frame, borrowing from the decoder until the next call.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The decoded telegram.
    pub telegram: Telegram<'a>,
    /// The raw telegram text for DSMR (for encrypted DSMR the decrypted text); the
    /// frame bytes (all segments) for DLMS.
    pub raw: &'a [u8],
    /// The frame exactly as it came from the meter: the telegram text for DSMR, the
    /// frame bytes (all segments, still encrypted) for DLMS. What a forwarder sends on.
    pub wire: &'a [u8],
    /// The sender's system title, for ciphered DLMS frames.
    pub system_title: Option<[u8; 8]>,
    /// Something suspicious that did not stop the frame (a frame counter that did not
    /// increase).
    pub warning: Option<Rejection>,
}

/// A whole frame that was rejected after framing (no key, wrong key, undecodable
/// content): its bytes as they came from the meter and, if ciphered, the sender's
/// system title. See [`Decoder::rejected_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireFrame<'a> {
    /// The frame bytes (all segments).
    pub bytes: &'a [u8],
    /// The sender's system title, for ciphered frames.
    pub system_title: Option<[u8; 8]>,
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
    /// Frames output with a warning, by cause (`frame_counter`).
    pub warnings: Vec<(&'static str, u64)>,
}

fn count(list: &mut Vec<(&'static str, u64)>, cause: &'static str) {
    match list.iter_mut().find(|(c, _)| *c == cause) {
        Some((_, n)) => *n += 1,
        None => list.push((cause, 1)),
    }
}

impl Stats {
    /// Counts one rejection.
    pub fn count_rejection(&mut self, cause: &'static str) {
        count(&mut self.rejected, cause);
    }

    /// All rejections together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

/// The longest unframed APDU without a length in its header (a plain notification)
/// waited for before its bytes count as noise.
const MAX_UNFRAMED: usize = 2 * 1024;

/// A binary unit found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Mbus,
    Hdlc,
    Apdu,
}

/// What the binary detector found.
enum Found {
    Unit(Unit, usize),
    Corrupt(DlmsError, usize),
    NeedMore,
    NotAFrame,
}

fn from_framing<T>(f: Framing<T>, unit: Unit) -> Found {
    match f {
        Framing::Frame(_, n) => Found::Unit(unit, n),
        Framing::Incomplete => Found::NeedMore,
        Framing::NotAFrame => Found::NotAFrame,
        Framing::Corrupt(e, n) => Found::Corrupt(e, n),
    }
}

/// The longest ciphered APDU looked for right after noise (Smarty frames are 0.7 to
/// 4 KiB: DSMR 5 with a long text message).
const MAX_UNCLEAN_APDU: usize = 8 * 1024;

/// The extent a general-glo-ciphering header at the start of `data` announces (tag,
/// system title, length, the length's value), when it is plausible: an 8-byte system
/// title, a length of at most [`dlms::MAX_APDU`] and a security control byte of
/// encryption with or without a tag (`tagged`: with one only). The length is not
/// checked. `None` if it cannot tell yet.
fn glo_extent(data: &[u8], tagged: bool) -> Option<Result<usize, ()>> {
    match data.first() {
        Some(&cipher::GLO_TAG) => {}
        Some(_) => return Some(Err(())),
        None => return None,
    }
    if *data.get(1)? != 8 {
        return Some(Err(()));
    }
    let first = *data.get(10)?;
    let n = if first < 0x80 {
        0
    } else {
        usize::from(first & 0x7F)
    };
    if n > 2 {
        return Some(Err(()));
    }
    let mut len = usize::from(first);
    if n > 0 {
        len = data
            .get(11..11 + n)?
            .iter()
            .fold(0, |l, b| l << 8 | usize::from(*b));
    }
    let sc = *data.get(11 + n)?;
    let sc_ok = match sc {
        0x30 | 0x31 => true,
        0x20 | 0x21 => !tagged,
        _ => false,
    };
    Some(if sc_ok { Ok(11 + n + len) } else { Err(()) })
}

/// Whether `data` starts a ciphered APDU with a GCM tag and a length worth waiting
/// for after noise; `None` if it cannot tell yet.
fn tagged_header(data: &[u8]) -> Option<bool> {
    glo_extent(data, true).map(|r| r.is_ok_and(|n| n <= MAX_UNCLEAN_APDU))
}

/// How many bytes of an unframed APDU (after `head` bytes of LLC) are waited for
/// before it counts as noise: what a plausible ciphering header announces, otherwise
/// [`MAX_UNFRAMED`]. It depends only on the bytes, never on how many have arrived, so
/// that the outcome is the same in any chunking.
fn wait_limit(apdu: &[u8], head: usize) -> usize {
    match glo_extent(apdu, false) {
        Some(Ok(n)) => MAX_UNFRAMED.max(head + n),
        _ => MAX_UNFRAMED,
    }
}

/// The extent of an APDU without framing (`eof`: no more bytes will come).
fn unframed(data: &[u8], eof: bool) -> Found {
    let (head, apdu) = match data {
        [0xE6, 0xE7 | 0xE6, 0x00, rest @ ..] => (3, rest),
        [0xE6] | [0xE6, 0xE7 | 0xE6] if !eof => return Found::NeedMore,
        _ => (0, data),
    };
    let res = match apdu.first() {
        Some(&cosem::TAG) => cosem::parse_notification(apdu).map(|(_, n)| n),
        Some(&cipher::GLO_TAG) => cipher::parse(apdu).map(|(_, n)| n),
        Some(&gbt::TAG) if head > 0 => gbt::parse_block(apdu).map(|(_, n)| n),
        None if head > 0 && !eof => return Found::NeedMore,
        _ => return Found::NotAFrame,
    };
    // A hex line holds all its bytes; in a raw stream, an APDU longer than the wait
    // limit is noise whether or not its end has arrived yet.
    let limit = if eof {
        usize::MAX
    } else {
        wait_limit(apdu, head)
    };
    match res {
        Ok(n) if head + n > limit => Found::NotAFrame,
        // Unframed in a raw stream, a stray 0x0F must not swallow the frame after it:
        // a bare notification counts only when it decodes.
        Ok(n) if !eof && head == 0 && apdu[0] == cosem::TAG => {
            match cosem::decode(&apdu[..n], crate::model::Dialect::DlmsApdu) {
                Ok(_) => Found::Unit(Unit::Apdu, n),
                Err(_) => Found::NotAFrame,
            }
        }
        Ok(n) => Found::Unit(Unit::Apdu, head + n),
        Err(DlmsError::Truncated) if eof => Found::Corrupt(DlmsError::Truncated, data.len()),
        Err(DlmsError::Truncated) if data.len() < limit => Found::NeedMore,
        // Whether such a header is plausible shows only with its security control
        // byte: until it has arrived, wait, as the whole input would have it.
        Err(DlmsError::TooLong) if !eof && glo_extent(apdu, false).is_none() => Found::NeedMore,
        // A ciphering header that announces more than a message may hold: a frame
        // too long to take, not noise. Only its first byte is consumed, so that a
        // header made of noise costs nothing after it.
        Err(DlmsError::TooLong) if matches!(glo_extent(apdu, false), Some(Ok(_))) => {
            Found::Corrupt(DlmsError::TooLong, head + 1)
        }
        Err(_) if eof => Found::Corrupt(DlmsError::Syntax("APDU does not parse"), data.len()),
        Err(_) => Found::NotAFrame,
    }
}

/// Looks for a binary frame at the start of `data`.
fn find(data: &[u8], eof: bool) -> Found {
    let found = match data.first() {
        Some(&mbus::START) => from_framing(mbus::frame(data), Unit::Mbus),
        Some(&hdlc::FLAG) => from_framing(hdlc::frame(data), Unit::Hdlc),
        Some(0x0F | 0xDB | 0xE6) => unframed(data, eof),
        _ => Found::NotAFrame,
    };
    match found {
        Found::NeedMore if eof => Found::Corrupt(DlmsError::Truncated, data.len()),
        f => f,
    }
}

/// How far a unit of `n` bytes moves the scanner: an HDLC frame's closing flag may
/// be the next frame's opening flag.
fn advance(u: Unit, n: usize) -> usize {
    if u == Unit::Hdlc {
        n - 1
    } else {
        n
    }
}

/// Whether `data` (starting with `/`) starts a DSMR telegram: `/`, three letters and
/// printable text up to the line end, with at most [`MAX_HEADER_RAW`] raw bytes above
/// 0x7F (Fluvius meters write `/FLU5\253…` with a raw 0xAB; the CRC proves such a
/// telegram). `None` if it cannot tell yet.
///
/// A [`Decoder`] switches to DSMR at the first such start; a DSMR stream cut right
/// before one (at a line start) decodes the same in pieces as in one go, given
/// [`Decoder::set_dsmr_crc_seen`].
pub fn dsmr_start(data: &[u8]) -> Option<bool> {
    if data.first() != Some(&b'/') {
        return Some(false);
    }
    const MAX_HEADER: usize = 96;
    let mut raw = 0;
    for (i, &b) in data.iter().enumerate().skip(1).take(MAX_HEADER) {
        match b {
            b'\r' | b'\n' => return Some(i > 4),
            _ if i < 4 && !b.is_ascii_alphabetic() => return Some(false),
            // DSMR 2.2 headers carry a raw 0x02 (`\2`).
            0x02 | 0x20..=0x7E => {}
            0x80..=0xFF if raw < MAX_HEADER_RAW => raw += 1,
            _ => return Some(false),
        }
    }
    (data.len() <= MAX_HEADER)
        .then_some(())
        .map_or(Some(false), |_| None)
}

/// The most bytes above 0x7F a DSMR identification line may carry.
pub const MAX_HEADER_RAW: usize = 2;

/// Whether `data` starts a line of hex text; its length up to and including the line
/// feed. `None` if the line is not complete yet.
fn hex_line(data: &[u8]) -> Option<Result<usize, ()>> {
    let mut digits = 0usize;
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'\n' => {
                return Some(if digits >= 8 && digits & 1 == 0 {
                    Ok(i + 1)
                } else {
                    Err(())
                })
            }
            b' ' | b'\t' | b'\r' => {}
            _ if dlms::hex_digit(b).is_some() => digits += 1,
            _ => return Some(Err(())),
        }
        if i > 2 * dlms::MAX_APDU {
            return Some(Err(()));
        }
    }
    None
}

/// What one step of the binary/hex scanner produced.
enum Step {
    NeedMore,
    Continue,
    Ready,
    Reject(Rejection),
}

/// Push decoder for a meter's byte stream.
#[derive(Debug)]
pub struct Decoder {
    dsmr_mode: bool,
    /// The DSMR stream has carried a CRC: from now on every telegram must.
    dsmr_crc_seen: bool,
    dsmr: DsmrFramer,
    buf: Vec<u8>,
    pos: usize,
    line_start: bool,
    /// No noise was skipped since the last unit: an unprotected unframed APDU may start here.
    clean: bool,
    line: Vec<u8>,
    line_pos: usize,
    skipped: u64,
    session: Session,
    raw: Vec<u8>,
    /// The last rejection was a whole frame (in `raw`), with this system title.
    rejected: Option<Option<[u8; 8]>>,
    /// [`Decoder::end_of_input`] was called and nothing was pushed since.
    ended: bool,
    stats: Stats,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            dsmr_mode: false,
            dsmr_crc_seen: false,
            dsmr: DsmrFramer::new(),
            buf: Vec::new(),
            pos: 0,
            line_start: true,
            clean: true,
            line: Vec::new(),
            line_pos: 0,
            skipped: 0,
            session: Session::default(),
            raw: Vec::new(),
            rejected: None,
            ended: false,
            stats: Stats::default(),
        }
    }
}

/// Feeds one framed unit to the session.
fn feed(session: &mut Session, raw: &mut Vec<u8>, unit: Unit, frame: &[u8]) -> Step {
    if !session.in_progress() || raw.len() > 2 * dlms::MAX_APDU {
        raw.clear();
    }
    raw.extend_from_slice(frame);
    let res = match unit {
        Unit::Mbus => match mbus::frame(frame) {
            Framing::Frame(f, _) => session.push_mbus(&f),
            _ => Err(DlmsError::Syntax("M-Bus frame")),
        },
        Unit::Hdlc => match hdlc::frame(frame) {
            Framing::Frame(f, _) => session.push_hdlc(&f),
            _ => Err(DlmsError::Syntax("HDLC frame")),
        },
        Unit::Apdu => session.push_apdu(frame),
    };
    match res {
        Ok(true) => Step::Ready,
        Ok(false) => Step::Continue,
        Err(e) => Step::Reject(e.into()),
    }
}

impl Decoder {
    /// A decoder with no keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder with keys for encrypted meters (Smarty, Austrian M-Bus, ...).
    ///
    /// ```
    /// use meterkast_codec::{Decoder, Keys};
    /// let keys = Keys::from_hex(Some("36C66639E48A8CA4D6BC8B282A793BBB"), None).unwrap();
    /// let mut d = Decoder::with_keys(keys);
    /// # let _ = &mut d;
    /// ```
    pub fn with_keys(keys: Keys) -> Self {
        let mut d = Self::default();
        d.set_keys(keys);
        d
    }

    /// Replaces the keys.
    pub fn set_keys(&mut self, keys: Keys) {
        self.session.set_keys(keys);
    }

    /// Appends received bytes, in any chunking.
    pub fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.ended = false;
        if self.dsmr_mode {
            self.dsmr.push(data);
            return;
        }
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos > 4096) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks the end of the input (end of a file, a closed connection, the end of one
    /// MQTT message): a DSMR telegram or hex line completed by it is output, a DSMR
    /// telegram still open is reported as truncated by the following calls to
    /// [`next`](Self::next).
    pub fn finish(&mut self) {
        if self.dsmr_mode {
            self.dsmr.finish();
        } else if self.buf.last().is_some_and(|b| *b != b'\n') {
            self.buf.push(b'\n');
        }
    }

    /// Marks the true end of the input: the end of a file or of standard input (not one
    /// MQTT message, nor a connection that will be made again). Like
    /// [`finish`](Self::finish), and every frame still open is reported by the
    /// following calls to [`next`](Self::next) as a rejection saying that the input
    /// ended: a DSMR telegram without its `!`, a binary frame shorter than its header
    /// announces, a multi-frame message missing its last frames. Pushing more bytes
    /// afterwards starts a new input.
    pub fn end_of_input(&mut self) {
        self.finish();
        self.ended = true;
    }

    /// Whether the DSMR stream has carried a CRC, so that every later telegram must.
    pub fn dsmr_crc_seen(&self) -> bool {
        self.dsmr_crc_seen
    }

    /// Sets what [`dsmr_crc_seen`](Self::dsmr_crc_seen) reports: for decoding the rest
    /// of a DSMR stream, cut at a telegram start, with a new decoder.
    pub fn set_dsmr_crc_seen(&mut self, seen: bool) {
        self.dsmr_crc_seen = seen;
    }

    /// What has been seen so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.skipped_bytes = self.skipped + self.dsmr.skipped_bytes;
        s
    }

    /// Received bytes held and not yet consumed (the unscanned rest of the input, a
    /// decoded hex line not yet framed, a DSMR telegram still open). Bounded: whatever
    /// the input, it stays below about 3 × [`dlms::MAX_APDU`] (a hex line of an APDU
    /// waiting for its line end, plus one decoded before it) or, in DSMR mode,
    /// [`dsmr::MAX_TELEGRAM`], plus the last chunk pushed. Meant for tests, fuzzing and
    /// monitoring; reassembled multi-frame messages (at most `MAX_APDU` each) are not
    /// counted.
    pub fn buffered(&self) -> usize {
        (self.buf.len() - self.pos) + (self.line.len() - self.line_pos) + self.dsmr.pending()
    }

    /// Skips `n` bytes; a rejection when they were noise inside a multi-frame message
    /// (HDLC segments carry no sequence numbers: noise there means a lost frame).
    fn skip(&mut self, n: usize) -> Step {
        let before = self.skipped;
        self.skip_bytes(n);
        if self.skipped > before && self.session.abort() {
            return Step::Reject(Rejection {
                cause: "truncated",
                message: String::from(
                    "multi-frame message interrupted by noise (a frame was lost or damaged); dropped",
                ),
            });
        }
        Step::Continue
    }

    fn skip_bytes(&mut self, n: usize) {
        let n = n.min(self.buf.len() - self.pos);
        if n > 0 {
            let last = self.buf[self.pos + n - 1];
            // Flags between HDLC frames and line ends are not noise.
            let noise = self.buf[self.pos..self.pos + n]
                .iter()
                .filter(|b| !matches!(b, 0x7E | b'\r' | b'\n'))
                .count();
            self.skipped += noise as u64;
            if noise > 0 {
                self.clean = false;
            }
            self.pos += n;
            self.line_start = last == b'\n' || last == b'\r';
        }
    }

    /// One step of the binary and hex-line scanner.
    fn step(&mut self) -> Step {
        if self.line_pos < self.line.len() {
            let data = &self.line[self.line_pos..];
            if data[0] == hdlc::FLAG && matches!(data.get(1), None | Some(&hdlc::FLAG)) {
                // The closing flag of the last frame, or a flag between frames.
                self.line_pos += 1;
                return Step::Continue;
            }
            return match find(data, true) {
                Found::Unit(u, n) => {
                    self.line_pos += advance(u, n);
                    feed(&mut self.session, &mut self.raw, u, &data[..n])
                }
                Found::Corrupt(e, n) => {
                    self.line_pos += n;
                    self.session.abort();
                    Step::Reject(e.into())
                }
                Found::NeedMore | Found::NotAFrame => {
                    self.skipped += data.len() as u64;
                    self.line_pos = self.line.len();
                    Step::Continue
                }
            };
        }
        let data = &self.buf[self.pos..];
        let Some(&b) = data.first() else {
            self.buf.clear();
            self.pos = 0;
            return Step::NeedMore;
        };
        if b == b'/' {
            match dsmr_start(data) {
                // At the end of the input, `/` and three letters without a line end
                // are a telegram cut off in its identification line.
                None if self.ended && data.len() > 4 => {
                    self.dsmr_mode = true;
                    self.dsmr.push(data);
                    self.dsmr.finish();
                    self.buf = Vec::new();
                    self.pos = 0;
                    return Step::Continue;
                }
                None if !self.ended => return Step::NeedMore,
                None => {}
                Some(true) => {
                    self.dsmr_mode = true;
                    self.dsmr.push(data);
                    // A telegram found only after the end of the input was marked (the
                    // scanner waited on an earlier frame) is cut off by that end too.
                    if self.ended {
                        self.dsmr.finish();
                    }
                    self.buf = Vec::new();
                    self.pos = 0;
                    return Step::Continue;
                }
                Some(false) => {}
            }
        }
        if self.line_start && dlms::hex_digit(b).is_some() {
            match hex_line(data) {
                None => return Step::NeedMore,
                Some(Ok(n)) => {
                    self.line.clear();
                    let mut hi = None;
                    for d in data[..n].iter().filter_map(|b| dlms::hex_digit(*b)) {
                        match hi.take() {
                            None => hi = Some(d),
                            Some(h) => self.line.push(h << 4 | d),
                        }
                    }
                    self.line_pos = 0;
                    self.pos += n;
                    self.line_start = true;
                    self.clean = true;
                    return Step::Continue;
                }
                Some(Err(())) => {}
            }
        }
        if !self.clean && matches!(b, 0x0F | 0xDB | 0xE6) {
            // After noise only a tagged ciphered APDU may start here (see the module
            // documentation).
            return match tagged_header(data) {
                None if !self.ended => Step::NeedMore,
                None => self.skip(1),
                Some(false) => self.skip(1),
                Some(true) => match find(data, self.ended) {
                    Found::Unit(u, n) => {
                        self.pos += n;
                        self.clean = true;
                        feed(
                            &mut self.session,
                            &mut self.raw,
                            u,
                            &self.buf[self.pos - n..self.pos],
                        )
                    }
                    Found::NeedMore => Step::NeedMore,
                    _ => self.skip(1),
                },
            };
        }
        match find(data, self.ended) {
            Found::Unit(u, n) => {
                let start = self.pos;
                self.pos += advance(u, n);
                self.line_start = false;
                self.clean = true;
                feed(
                    &mut self.session,
                    &mut self.raw,
                    u,
                    &self.buf[start..start + n],
                )
            }
            Found::Corrupt(e, n) => {
                self.pos += n;
                self.clean = true;
                // A damaged frame inside a multi-frame message loses the whole message.
                self.session.abort();
                if self.ended && e == DlmsError::Truncated {
                    return Step::Reject(Rejection {
                        cause: "truncated",
                        message: String::from(
                            "the input ended in the middle of a frame (shorter than its header announces); dropped",
                        ),
                    });
                }
                Step::Reject(e.into())
            }
            Found::NeedMore => Step::NeedMore,
            Found::NotAFrame => self.skip(1),
        }
    }

    /// After [`next`](Self::next) returned a rejection: the rejected frame, when it
    /// was whole and only its content failed (`no_key`, `key`, `authentication`,
    /// `cosem`, ...). A forwarder without keys sends such frames on as they came.
    pub fn rejected_frame(&self) -> Option<WireFrame<'_>> {
        self.rejected.map(|system_title| WireFrame {
            bytes: &self.raw,
            system_title,
        })
    }

    /// The next decoded frame or rejection; `None` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Decoded<'_>, Rejection>> {
        self.rejected = None;
        loop {
            if self.dsmr_mode {
                return self.next_dsmr();
            }
            match self.step() {
                Step::NeedMore if self.ended && self.session.abort() => {
                    let r = Rejection {
                        cause: "truncated",
                        message: String::from(
                            "the input ended in the middle of a multi-frame message (its last frames never came); dropped",
                        ),
                    };
                    self.stats.count_rejection(r.cause);
                    return Some(Err(r));
                }
                Step::NeedMore => return None,
                Step::Continue => {}
                Step::Reject(r) => {
                    self.stats.count_rejection(r.cause);
                    return Some(Err(r));
                }
                Step::Ready => break,
            }
        }
        let system_title = self.session.ready_system_title();
        match self.session.decode() {
            Ok(d) => {
                self.stats.accepted += 1;
                if let Some(w) = &d.warning {
                    count(&mut self.stats.warnings, w.cause);
                }
                Some(Ok(Decoded {
                    telegram: d.telegram,
                    raw: d.plaintext.unwrap_or(&self.raw),
                    wire: &self.raw,
                    system_title,
                    warning: d.warning,
                }))
            }
            Err(e) => {
                let r = Rejection::from(e);
                self.stats.count_rejection(r.cause);
                self.rejected = Some(system_title);
                Some(Err(r))
            }
        }
    }

    fn next_dsmr(&mut self) -> Option<Result<Decoded<'_>, Rejection>> {
        let ev = self.dsmr.next()?;
        let res = match ev {
            // A meter that has sent a CRC always does: a telegram without one in the
            // same stream is a damaged byte that became a '!'.
            FrameEvent::Telegram(raw) if raw.crc.is_none() && self.dsmr_crc_seen => Err(Rejection {
                cause: "checksum",
                message: String::from(
                    "telegram without the checksum this meter sends (a byte damaged on the line?); dropped",
                ),
            }),
            FrameEvent::Telegram(raw) => match dsmr::parse(&raw) {
                Ok(telegram) => Ok(Decoded {
                    telegram,
                    raw: raw.raw,
                    wire: raw.raw,
                    system_title: None,
                    warning: None,
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
            FrameEvent::Dropped(FrameDrop::EndOfInput) => Err(Rejection {
                cause: "truncated",
                message: String::from(
                    "the input ended in the middle of a telegram (its '!' and checksum never came); dropped",
                ),
            }),
        };
        match &res {
            Ok(d) => {
                self.stats.accepted += 1;
                self.dsmr_crc_seen |= d.raw.contains(&b'!') && crc_follows_bang(d.raw);
            }
            Err(r) => self.stats.count_rejection(r.cause),
        }
        Some(res)
    }
}

/// Whether hex digits follow the last `!` of a raw telegram (it carried a CRC).
fn crc_follows_bang(raw: &[u8]) -> bool {
    raw.iter()
        .rposition(|&b| b == b'!')
        .and_then(|i| raw.get(i + 1))
        .is_some_and(u8::is_ascii_hexdigit)
}
