//! The DSMR push framer: bytes in any chunking, complete `/…!CRC` telegrams out.

use alloc::vec::Vec;

/// The longest telegram the framer buffers before it gives up on it. The longest real
/// telegrams (DSMR 5 with a 2048-character hex message and four M-Bus channels) stay
/// well under 8 KiB.
pub const MAX_TELEGRAM: usize = 16 * 1024;

/// A complete telegram as the framer found it, before its checksum is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTelegram<'a> {
    /// The bytes from `/` to `!` inclusive: what the CRC covers.
    pub body: &'a [u8],
    /// The checksum written after `!`, if any (`None` for DSMR 2.2/3 and others without one).
    pub crc: Option<u16>,
    /// The whole telegram as received, including the CRC digits and line end.
    pub raw: &'a [u8],
}

/// Something the framer had to throw away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDrop {
    /// A telegram grew past [`MAX_TELEGRAM`] without an end.
    TooLong,
    /// A telegram was cut off: a new `/` started before its `!`.
    Truncated,
    /// The input ended (see [`DsmrFramer::finish`]) before the telegram's `!`.
    EndOfInput,
    /// The checksum after `!` is not hex digits followed by a line end.
    BadChecksumField,
}

/// What [`DsmrFramer::next`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A complete telegram.
    Telegram(RawTelegram<'a>),
    /// A partial telegram was dropped.
    Dropped(FrameDrop),
}

/// A push parser for DSMR telegrams: [`push`](DsmrFramer::push) bytes as they arrive,
/// then call [`next`](DsmrFramer::next) until it returns `None`.
///
/// It needs no clock and no I/O. Noise between telegrams is skipped; a truncated
/// telegram costs only itself; nothing grows past [`MAX_TELEGRAM`].
#[derive(Debug, Default)]
pub struct DsmrFramer {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out or skipped.
    consumed: usize,
    /// Bytes after the current `/` known to hold neither `!` nor `/`.
    searched: usize,
    /// The input has ended: the end of the buffer ends a line.
    eof: bool,
    /// Noise bytes skipped while looking for `/`.
    pub skipped_bytes: u64,
}

fn hex_val(b: u8) -> Option<u16> {
    match b {
        b'0'..=b'9' => Some(u16::from(b - b'0')),
        b'A'..=b'F' => Some(u16::from(b - b'A' + 10)),
        b'a'..=b'f' => Some(u16::from(b - b'a' + 10)),
        _ => None,
    }
}

impl DsmrFramer {
    /// A framer with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.consumed > 0 && (self.consumed == self.buf.len() || self.consumed > 4096) {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(data);
        self.eof = false;
    }

    /// Marks the end of the input (end of a file, a closed connection): a telegram whose
    /// `!` line is the last thing received is complete, and a telegram still open is
    /// reported as truncated by the following calls to [`next`](Self::next).
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Bytes buffered and not yet part of a yielded telegram.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// Whether the buffered bytes begin a telegram (a `/` was seen and no end yet).
    pub fn in_frame(&self) -> bool {
        self.buf[self.consumed..].first() == Some(&b'/')
    }

    /// The next complete telegram or drop notice, or `None` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<FrameEvent<'_>> {
        let rest = &self.buf[self.consumed..];
        // Find the start of a telegram.
        let Some(start) = memchr::memchr(b'/', rest) else {
            self.skipped_bytes += rest.len() as u64;
            self.consumed = self.buf.len();
            return None;
        };
        if start > 0 {
            self.skipped_bytes += start as u64;
            self.consumed += start;
            self.searched = 0;
        }
        let rest = &self.buf[self.consumed..];
        // Look for the end, or for a new start that cuts this one off.
        let from = 1 + self.searched.min(rest.len() - 1);
        let window = &rest[from..rest.len().min(MAX_TELEGRAM)];
        match memchr::memchr2(b'!', b'/', window).map(|i| i + from - 1) {
            Some(i) if rest[1 + i] == b'/' => {
                self.consumed += 1 + i;
                self.searched = 0;
                Some(FrameEvent::Dropped(FrameDrop::Truncated))
            }
            Some(i) => {
                let bang = 1 + i;
                // Up to four hex digits of CRC, then a line end.
                let mut crc: u16 = 0;
                let mut digits = 0;
                let mut end = None;
                let mut bad_crc = false;
                for (k, &b) in rest[bang + 1..].iter().enumerate() {
                    match hex_val(b) {
                        Some(v) if digits < 4 => {
                            crc = crc << 4 | v;
                            digits += 1;
                            if digits == 4 {
                                end = Some(bang + 1 + k + 1);
                                break;
                            }
                        }
                        _ => {
                            end = Some(bang + 1 + k);
                            // Only a line end may follow a short (or absent) checksum: a
                            // damaged checksum digit must not pass as "no checksum".
                            bad_crc = !matches!(b, b'\r' | b'\n');
                            break;
                        }
                    }
                }
                self.searched = i;
                let mut end = match end {
                    Some(e) => e,
                    None if self.eof => rest.len(),
                    None => return None,
                };
                // Include the line end in `raw`: `\r\n`, a lone `\n`, or a lone `\r`
                // when something else follows it. Wait for the byte after a `\r` (it is
                // the `\n` on every meter), so that where a read ends never decides
                // what the telegram holds; after a `\n` the telegram is complete.
                if !bad_crc {
                    match (rest.get(end), rest.get(end + 1)) {
                        (Some(b'\n'), _) => end += 1,
                        (Some(b'\r'), Some(b'\n')) => end += 2,
                        (Some(b'\r'), Some(_)) => end += 1,
                        (Some(b'\r'), None) if self.eof => end += 1,
                        (Some(b'\r'), None) => return None,
                        (None, _) if !self.eof => return None,
                        _ => {}
                    }
                }
                self.searched = 0;
                let from = self.consumed;
                self.consumed += end;
                if bad_crc {
                    return Some(FrameEvent::Dropped(FrameDrop::BadChecksumField));
                }
                let raw = &self.buf[from..from + end];
                Some(FrameEvent::Telegram(RawTelegram {
                    body: &raw[..bang + 1],
                    crc: (digits > 0).then_some(crc),
                    raw,
                }))
            }
            None if rest.len() >= MAX_TELEGRAM => {
                // Give up on this one; look for a start after its `/`.
                self.consumed += 1;
                self.searched = 0;
                Some(FrameEvent::Dropped(FrameDrop::TooLong))
            }
            None if self.eof => {
                self.consumed = self.buf.len();
                self.searched = 0;
                Some(FrameEvent::Dropped(FrameDrop::EndOfInput))
            }
            None => {
                self.searched = rest.len() - 1;
                // Need more bytes. Keep memory bounded by compacting.
                if self.consumed > 0 {
                    self.buf.drain(..self.consumed);
                    self.consumed = 0;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    type Out = Result<(Vec<u8>, Option<u16>), FrameDrop>;

    fn collect(chunks: &[&[u8]]) -> Vec<Out> {
        let mut f = DsmrFramer::new();
        let mut out = vec![];
        for c in chunks {
            f.push(c);
            while let Some(ev) = f.next() {
                out.push(match ev {
                    FrameEvent::Telegram(t) => Ok((t.body.to_vec(), t.crc)),
                    FrameEvent::Dropped(d) => Err(d),
                });
            }
        }
        out
    }

    #[test]
    fn frames_with_and_without_crc() {
        let out = collect(&[b"junk/A\r\n\r\n1-0:1.8.1(1)\r\n!1A2B\r\n/B\r\n!\r\nnoise"]);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            Ok((b"/A\r\n\r\n1-0:1.8.1(1)\r\n!".to_vec(), Some(0x1A2B)))
        );
        assert_eq!(out[1], Ok((b"/B\r\n!".to_vec(), None)));
    }

    #[test]
    fn unpadded_crc_and_byte_by_byte() {
        let data = b"/X\r\n!B9F\r\n";
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(
            collect(&chunks),
            vec![Ok((b"/X\r\n!".to_vec(), Some(0x0B9F)))]
        );
    }

    #[test]
    fn end_of_input_completes_or_truncates() {
        let mut f = DsmrFramer::new();
        f.push(b"/A\r\n!");
        assert_eq!(f.next(), None);
        f.finish();
        assert!(matches!(f.next(), Some(FrameEvent::Telegram(t)) if t.crc.is_none()));
        f.push(b"/B\r\n1-0:1.8.1(");
        assert_eq!(f.next(), None);
        f.finish();
        assert_eq!(f.next(), Some(FrameEvent::Dropped(FrameDrop::EndOfInput)));
        assert_eq!(f.next(), None);
    }

    #[test]
    fn the_line_end_after_the_checksum_belongs_to_the_telegram_in_any_chunking() {
        let data = b"/X\r\n!0B9F\r\n/Y\r\n!\r\n/Z\r\n!1234\n";
        let raws = |chunks: &[&[u8]]| {
            let mut f = DsmrFramer::new();
            let mut out = vec![];
            for c in chunks {
                f.push(c);
                while let Some(FrameEvent::Telegram(t)) = f.next() {
                    out.push(t.raw.to_vec());
                }
            }
            out
        };
        let expected = vec![
            b"/X\r\n!0B9F\r\n".to_vec(),
            b"/Y\r\n!\r\n".to_vec(),
            b"/Z\r\n!1234\n".to_vec(),
        ];
        assert_eq!(raws(&[data]), expected);
        for cut in 0..data.len() {
            assert_eq!(
                raws(&[&data[..cut], &data[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        assert_eq!(raws(&data.chunks(1).collect::<Vec<_>>()), expected);
    }

    #[test]
    fn a_damaged_checksum_field_is_not_a_missing_one() {
        let out = collect(&[b"/A\r\n!mD42\r\n/B\r\n!ED\x002\r\n/C\r\n!\r\n"]);
        assert_eq!(out[0], Err(FrameDrop::BadChecksumField));
        assert_eq!(out[1], Err(FrameDrop::BadChecksumField));
        assert_eq!(out[2], Ok((b"/C\r\n!".to_vec(), None)));
    }

    #[test]
    fn truncation_costs_one_frame() {
        let out = collect(&[b"/A\r\n1-0:1.8.1(0", b"/B\r\n!ABCD\r\n"]);
        assert_eq!(
            out,
            vec![
                Err(FrameDrop::Truncated),
                Ok((b"/B\r\n!".to_vec(), Some(0xABCD)))
            ]
        );
    }

    #[test]
    fn endless_frame_is_dropped_and_bounded() {
        let mut f = DsmrFramer::new();
        f.push(b"/");
        let filler = [b'x'; 1000];
        let mut drops = 0;
        for _ in 0..40 {
            f.push(&filler);
            while let Some(ev) = f.next() {
                assert_eq!(ev, FrameEvent::Dropped(FrameDrop::TooLong));
                drops += 1;
            }
            assert!(f.pending() <= MAX_TELEGRAM + 1000);
        }
        assert_eq!(drops, 1);
        f.push(b"/A\r\n!\r\n");
        assert!(matches!(f.next(), Some(FrameEvent::Telegram(_))));
    }
}
