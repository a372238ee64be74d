//! The stream decoder's laws as code that tests, fuzz targets and benchmarks share:
//! what one run of a [`Decoder`] yields ([`outcomes`]), random read sizes ([`Reads`])
//! and generated streams of every dialect that say how many frames went in
//! ([`streams`]).
//!
//! The laws: for any input and any split into reads, the outcomes (accepted frames with
//! their bytes and values, rejections with their messages) are the same; and every frame
//! that goes in comes out, as a frame or as a rejection.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use crate::crc::crc16_arc;
use crate::dlms::encode::{self, Encoder, Layout};
use crate::dlms::mbus::MAX_SEGMENT;
use crate::dlms::{Keys, MAX_APDU};
use crate::dsmr::MAX_TELEGRAM;
use crate::model::{Object, Telegram, Value};
use crate::obis::Obis;
use crate::stream::Decoder;
use crate::time::Timestamp;
use crate::Decimal;

/// What the decoder made of one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An accepted frame: its decoded bytes, its bytes as they came, its values.
    Frame {
        /// [`crate::Decoded::raw`].
        raw: Vec<u8>,
        /// [`crate::Decoded::wire`].
        wire: Vec<u8>,
        /// The decoded telegram.
        telegram: Telegram<'static>,
    },
    /// A rejection: its cause and message.
    Rejected {
        /// The short cause.
        cause: &'static str,
        /// The sentence for people.
        message: String,
    },
}

/// Drains every outcome the decoder has ready.
pub fn drain(d: &mut Decoder, out: &mut Vec<Outcome>) {
    while let Some(ev) = d.next() {
        out.push(match ev {
            Ok(f) => Outcome::Frame {
                raw: f.raw.to_vec(),
                wire: f.wire.to_vec(),
                telegram: f.telegram.into_owned(),
            },
            Err(r) => Outcome::Rejected {
                cause: r.cause,
                message: r.message,
            },
        });
    }
}

/// Decodes `reads` one after the other, as a source would, then marks the end of the
/// input; returns every outcome in order.
pub fn outcomes<'a>(keys: Keys, reads: impl IntoIterator<Item = &'a [u8]>) -> Vec<Outcome> {
    let mut d = Decoder::with_keys(keys);
    let mut out = Vec::new();
    for r in reads {
        d.push(r);
        drain(&mut d, &mut out);
    }
    d.end_of_input();
    drain(&mut d, &mut out);
    assert_eq!(
        d.buffered(),
        0,
        "bytes held back after the end of the input"
    );
    out
}

/// Random read sizes from 1 byte to 1 MiB: each split first picks a largest read (1,
/// 7, 64, 1,000, 4,096, 65,536 or 1 MiB bytes) and then sizes up to it.
#[derive(Debug, Clone)]
pub struct Reads(u64);

impl Reads {
    /// Read sizes from a seed.
    pub fn new(seed: u64) -> Self {
        Reads(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Splits `data` into reads.
    pub fn split<'a>(&mut self, data: &'a [u8]) -> Vec<&'a [u8]> {
        const MAX: [u64; 7] = [1, 7, 64, 1000, 4096, 65_536, 1 << 20];
        let max = MAX[(self.next() % MAX.len() as u64) as usize];
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = (1 + self.next() % max).min(rest.len() as u64) as usize;
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}

/// One generated stream and how many frames went into it.
#[derive(Debug, Clone)]
pub struct Stream {
    /// What it holds.
    pub name: &'static str,
    /// The keys to decode it with.
    pub keys: Keys,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Frames in it: each must come out as a frame or a rejection.
    pub frames: usize,
    /// Where each frame ends in `bytes` (generated streams; empty for others), so that
    /// a run of whole frames can be cut out with [`Stream::frames_between`].
    pub ends: Vec<usize>,
    /// How many of them are longer than the documented limits ([`MAX_TELEGRAM`] up to
    /// the `!`, [`MAX_APDU`] for a message): each must come out as a `too_long`
    /// rejection, every other frame as an accepted one.
    pub too_long: usize,
}

impl Stream {
    fn new(name: &'static str, keys: Keys) -> Stream {
        Stream {
            name,
            keys,
            bytes: Vec::new(),
            frames: 0,
            ends: Vec::new(),
            too_long: 0,
        }
    }

    /// Appends one frame (`too_long`: beyond the documented limits).
    fn add(&mut self, frame: &[u8], too_long: bool) {
        self.bytes.extend_from_slice(frame);
        self.ends.push(self.bytes.len());
        self.frames += 1;
        self.too_long += usize::from(too_long);
    }

    /// The bytes of frames `from..to` (clamped to the frames there are) and how many
    /// frames that is.
    pub fn frames_between(&self, from: usize, to: usize) -> (&[u8], usize) {
        let to = to.min(self.ends.len());
        let from = from.min(to);
        let start = if from == 0 { 0 } else { self.ends[from - 1] };
        let end = if to == 0 { 0 } else { self.ends[to - 1] };
        (&self.bytes[start..end], to - from)
    }
}

/// The encryption key of every generated encrypted frame.
pub const KEY: [u8; 16] = *b"meterkast-laws!!";

fn keys() -> Keys {
    Keys {
        encryption: Some(KEY),
        authentication: None,
    }
}

fn push_line(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A DSMR 5 telegram with a CRC whose text message (`0-0:96.13.0`, hex-encoded) has
/// `message` hex digits, so that its length can be steered.
pub fn dsmr5(seq: u32, message: usize) -> Vec<u8> {
    dsmr5_with_header(seq, message, b"/ISk5\\2MT382-1000")
}

/// Like [`dsmr5`] with another identification line (bytes as the meter writes them).
pub fn dsmr5_with_header(seq: u32, message: usize, header: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(700 + message);
    t.extend_from_slice(header);
    t.extend_from_slice(b"\r\n\r\n");
    push_line(&mut t, "1-3:0.2.8(50)");
    push_line(
        &mut t,
        &alloc::format!("0-0:1.0.0(2611{:02}120000W)", 1 + seq % 28),
    );
    push_line(&mut t, "0-0:96.1.1(4530303334303031363930363430353136)");
    push_line(
        &mut t,
        &alloc::format!("1-0:1.8.1({:06}.{:03}*kWh)", 1000 + seq, seq % 1000),
    );
    push_line(&mut t, "1-0:1.8.2(000500.250*kWh)");
    push_line(&mut t, "1-0:2.8.1(000010.000*kWh)");
    push_line(&mut t, "1-0:2.8.2(000020.000*kWh)");
    push_line(&mut t, "0-0:96.14.0(0002)");
    push_line(
        &mut t,
        &alloc::format!("1-0:1.7.0({:02}.{:03}*kW)", seq % 10, seq % 1000),
    );
    push_line(&mut t, "1-0:2.7.0(00.000*kW)");
    t.extend_from_slice(b"0-0:96.13.0(");
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for i in 0..message / 2 * 2 {
        // The hex of printable text: the high nibble 3..6.
        t.push(if i % 2 == 0 {
            HEX[3 + (i / 2 + seq as usize) % 4]
        } else {
            HEX[(i * 7 + seq as usize) % 16]
        });
    }
    t.extend_from_slice(b")\r\n");
    push_line(&mut t, "0-1:24.1.0(003)");
    push_line(
        &mut t,
        &alloc::format!(
            "0-1:24.2.1(2611{:02}120000W)({:05}.{:03}*m3)",
            1 + seq % 28,
            100 + seq,
            seq % 1000
        ),
    );
    t.push(b'!');
    let crc = crc16_arc(&t);
    t.extend_from_slice(alloc::format!("{crc:04X}\r\n").as_bytes());
    t
}

/// A DSMR 2.2 telegram (no CRC, gas on a continuation line).
pub fn dsmr22(seq: u32) -> Vec<u8> {
    let mut t = Vec::new();
    push_line(&mut t, "/ISk5\\2MT382-1000");
    push_line(&mut t, "");
    push_line(&mut t, "0-0:96.1.1(4B384547303034303436333935353037)");
    push_line(
        &mut t,
        &alloc::format!("1-0:1.8.1({:05}.{:03}*kWh)", 100 + seq, seq % 1000),
    );
    push_line(&mut t, "1-0:1.7.0(0001.19*kW)");
    push_line(&mut t, "0-0:17.0.0(0999.00*kW)");
    push_line(
        &mut t,
        "0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)",
    );
    push_line(
        &mut t,
        &alloc::format!("({:05}.{:03})", 10 + seq, seq % 1000),
    );
    push_line(&mut t, "!");
    t
}

/// A data-notification of exactly `size` bytes (a few registers and a text padding
/// it), or as close as the length encoding allows.
pub fn notification_of(seq: u32, size: usize) -> Vec<u8> {
    let build = |pad: usize| {
        let text: String = (0..pad)
            .map(|i| char::from(b'A' + ((i + seq as usize) % 26) as u8))
            .collect();
        let objects = [
            Object {
                obis: Obis::new(1, 0, 1, 8, 0),
                value: Value::Number {
                    value: Decimal::new(i64::from(seq) * 1000 + 7, 0),
                    unit: Some(Cow::Borrowed("Wh")),
                },
            },
            Object {
                obis: Obis::new(1, 0, 1, 7, 0),
                value: Value::Number {
                    value: Decimal::new(i64::from(seq % 5000), 0),
                    unit: Some(Cow::Borrowed("W")),
                },
            },
            Object {
                obis: Obis::new(0, 0, 96, 13, 0),
                value: Value::Text(Cow::Owned(text)),
            },
        ];
        encode::notification(
            seq,
            Some(Timestamp(1_700_000_000 + i64::from(seq))),
            &objects,
            Layout::Nested,
        )
    };
    let base = build(0).len();
    let mut pad = size.saturating_sub(base);
    let mut apdu = build(pad);
    while apdu.len() > size && pad > 0 {
        pad -= 1;
        apdu = build(pad);
    }
    apdu
}

/// The sizes around every buffer and limit of the stream decoder: the unframed-APDU
/// wait (2 KiB), the buffer compaction (4 KiB), the longest tagged APDU looked for
/// after noise (8 KiB), the longest message and telegram (16 KiB).
pub const EDGES: [usize; 4] = [2048, 4096, 8192, 16 * 1024];

fn near_edges(step: usize) -> impl Iterator<Item = usize> {
    EDGES
        .into_iter()
        .flat_map(move |e| [e - 2 * step, e - step, e, e + step, e + 2 * step])
}

/// Generated streams of every dialect, each with frames near every size in [`EDGES`].
pub fn streams() -> Vec<Stream> {
    let mut out = Vec::new();
    let st = *b"SAG\x05\x00\x00\x00\x01";

    // DSMR 5 telegrams of 0.6 to 17 KiB (the longest beyond MAX_TELEGRAM: one rejection).
    let mut s = Stream::new("dsmr5", Keys::default());
    let base = dsmr5(0, 0).len();
    for (i, size) in [600usize, 2000, 3000]
        .into_iter()
        .chain(near_edges(1))
        .chain([MAX_TELEGRAM + 100])
        .enumerate()
    {
        let t = dsmr5(i as u32, size.saturating_sub(base));
        s.add(&t, t.iter().position(|&c| c == b'!') >= Some(MAX_TELEGRAM));
    }
    out.push(s);

    // DSMR 2.2 without CRC; a Fluvius header with a raw 0xAB starting the stream.
    let mut s = Stream::new("dsmr22", Keys::default());
    (0..8).for_each(|i| s.add(&dsmr22(i), false));
    out.push(s);
    let mut s = Stream::new("fluvius-raw-header", Keys::default());
    (0..6).for_each(|i| s.add(&dsmr5_with_header(i, 40, b"/FLU5\xAB769484_A"), false));
    out.push(s);

    // Smarty: DSMR 5 in general-glo-ciphering, 2 to 4 KiB and near every edge.
    let mut enc = Encoder::new(&KEY, None, st, 1);
    let mut s = Stream::new("smarty", keys());
    for (i, size) in (2048..=4096).step_by(512).chain(near_edges(3)).enumerate() {
        let frame = enc.smarty(&dsmr5(i as u32, size.saturating_sub(base + 30)));
        s.add(&frame, frame.len() > MAX_APDU);
    }
    out.push(s);

    // EVN-style M-Bus and HDLC (plain and ciphered) with messages near every edge.
    let mut mbus = Stream::new("mbus", keys());
    let mut hdlc = Stream::new("hdlc", keys());
    for (i, size) in [300usize].into_iter().chain(near_edges(5)).enumerate() {
        let apdu = notification_of(i as u32, size.min(MAX_APDU - 64));
        // M-Bus numbers its segments in four bits: at most 16 of 250 bytes.
        let short = notification_of(i as u32, size.min(15 * MAX_SEGMENT));
        mbus.add(&enc.mbus(&short), false);
        hdlc.add(
            &enc.hdlc(&apdu, i % 2 == 0, [128, 1000, 2000][i % 3]),
            false,
        );
    }
    out.push(mbus);
    out.push(hdlc);

    // Unframed plain notifications up to the 2 KiB wait, back to back.
    let mut s = Stream::new("apdu", keys());
    for (i, size) in [200usize, 1000, 2040, 2047, 2048].into_iter().enumerate() {
        s.add(&notification_of(i as u32, size), false);
    }
    out.push(s);

    // Hex lines, as MQTT bridges publish them: one frame per line.
    let mut s = Stream::new("hex", keys());
    for (i, size) in [300usize, 2000, 4100].into_iter().enumerate() {
        let frame = enc.hdlc(&notification_of(i as u32, size), true, 2000);
        let mut line: Vec<u8> = frame
            .iter()
            .flat_map(|b| alloc::format!("{b:02X}").into_bytes())
            .collect();
        line.push(b'\n');
        s.add(&line, false);
    }
    out.push(s);
    out
}
