//! HDLC frames of IEC 62056-46 (frame format type 3) as meters push them: framed by
//! the length in the format field, never by flag search, because DLMS HDLC does not
//! byte-stuff and the information field may hold 0x7E and 0x7D. HCS and FCS are
//! CRC-16/X.25; the LLC header `E6 E7 00` is removed; segmented frames (S bit) are
//! joined.

use alloc::vec::Vec;

use super::{DlmsError, Framing, MAX_APDU};
use crate::crc::crc16_x25;

/// The opening and closing flag.
pub const FLAG: u8 = 0x7E;

/// The LLC header of a command (what push messages use), and of a response.
pub const LLC_COMMAND: [u8; 3] = [0xE6, 0xE7, 0x00];
/// The LLC header of a response.
pub const LLC_RESPONSE: [u8; 3] = [0xE6, 0xE6, 0x00];

/// One checked HDLC frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HdlcFrame<'a> {
    /// The segmentation bit: more segments of this information follow.
    pub segmented: bool,
    /// The destination address bytes.
    pub destination: &'a [u8],
    /// The source address bytes.
    pub source: &'a [u8],
    /// The control field.
    pub control: u8,
    /// The information field (empty when the frame has none).
    pub info: &'a [u8],
}

/// An address: 1, 2 or 4 bytes, the last one with its low bit set.
fn address(buf: &[u8]) -> Option<usize> {
    let n = buf.iter().take(4).position(|b| b & 1 == 1)? + 1;
    (n != 3).then_some(n)
}

/// Frames one HDLC frame at the start of `buf` (which must start with the flag).
///
/// A frame whose header checks out (HCS) but whose FCS fails is `Corrupt`; a header
/// that fails is `NotAFrame`, so that noise never swallows the frame after it.
pub fn frame(buf: &[u8]) -> Framing<HdlcFrame<'_>> {
    if buf.first() != Some(&FLAG) {
        return Framing::NotAFrame;
    }
    let Some(&f0) = buf.get(1) else {
        return Framing::Incomplete;
    };
    if f0 & 0xF0 != 0xA0 {
        return Framing::NotAFrame;
    }
    let Some(&f1) = buf.get(2) else {
        return Framing::Incomplete;
    };
    let len = usize::from(f0 & 0x07) << 8 | usize::from(f1);
    if len < 7 {
        return Framing::NotAFrame;
    }
    let total = len + 2;
    if buf.len() < total {
        return Framing::Incomplete;
    }
    if buf[total - 1] != FLAG {
        return Framing::NotAFrame;
    }
    let inner = &buf[1..total - 1]; // format .. FCS
    let Some(dn) = address(&inner[2..]) else {
        return Framing::NotAFrame;
    };
    let Some(sn) = inner.get(2 + dn..).and_then(address) else {
        return Framing::NotAFrame;
    };
    let ctrl_at = 2 + dn + sn;
    let header_end = ctrl_at + 1;
    let fcs_at = inner.len() - 2;
    if header_end > fcs_at {
        return Framing::NotAFrame;
    }
    let crc_at = |at: usize| u16::from_le_bytes([inner[at], inner[at + 1]]);
    let info = if header_end == fcs_at {
        &inner[header_end..header_end]
    } else {
        if header_end + 2 > fcs_at || crc16_x25(&inner[..header_end]) != crc_at(header_end) {
            return Framing::NotAFrame;
        }
        &inner[header_end + 2..fcs_at]
    };
    if crc16_x25(&inner[..fcs_at]) != crc_at(fcs_at) {
        return Framing::Corrupt(DlmsError::Checksum("HDLC frame check sequence"), total);
    }
    Framing::Frame(
        HdlcFrame {
            segmented: f0 & 0x08 != 0,
            destination: &inner[2..2 + dn],
            source: &inner[2 + dn..ctrl_at],
            control: inner[ctrl_at],
            info,
        },
        total,
    )
}

/// Writes one frame (format type 3) with the given addresses, control and information.
pub fn write_frame(
    out: &mut Vec<u8>,
    segmented: bool,
    destination: &[u8],
    source: &[u8],
    control: u8,
    info: &[u8],
) {
    let len = 2 + destination.len() + source.len() + 1 + 2 + info.len() + 2;
    let start = out.len();
    out.push(FLAG);
    out.push(0xA0 | if segmented { 0x08 } else { 0 } | ((len >> 8) & 0x07) as u8);
    out.push(len as u8);
    out.extend_from_slice(destination);
    out.extend_from_slice(source);
    out.push(control);
    let hcs = crc16_x25(&out[start + 1..]);
    out.extend_from_slice(&hcs.to_le_bytes());
    out.extend_from_slice(info);
    let fcs = crc16_x25(&out[start + 1..]);
    out.extend_from_slice(&fcs.to_le_bytes());
    out.push(FLAG);
}

/// Removes an LLC header, when present.
pub fn strip_llc(info: &[u8]) -> &[u8] {
    match info {
        [0xE6, 0xE7 | 0xE6, 0x00, rest @ ..] => rest,
        _ => info,
    }
}

/// Joins the information fields of segmented frames into one APDU (LLC removed).
#[derive(Debug, Default)]
pub struct HdlcAssembler {
    buf: Vec<u8>,
    active: bool,
}

impl HdlcAssembler {
    /// An assembler waiting for a first segment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last completed message (valid after `push` returned it).
    pub fn message(&self) -> &[u8] {
        &self.buf
    }

    /// Whether a segmented message is half received.
    pub fn in_progress(&self) -> bool {
        self.active
    }

    /// Adds one frame; returns the APDU when this frame completes it.
    pub fn push(&mut self, f: &HdlcFrame<'_>) -> Result<Option<&[u8]>, DlmsError> {
        if !self.active {
            self.buf.clear();
            self.buf.extend_from_slice(strip_llc(f.info));
        } else {
            if self.buf.len() + f.info.len() > MAX_APDU {
                self.active = false;
                return Err(DlmsError::TooLong);
            }
            self.buf.extend_from_slice(f.info);
        }
        self.active = f.segmented;
        Ok((!f.segmented).then_some(&self.buf[..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn frames_by_length_with_flags_inside() {
        let mut a = vec![];
        write_frame(
            &mut a,
            false,
            &[0x41],
            &[0x03],
            0x13,
            &[0xE6, 0xE7, 0, 0x7E, 0x7D, 0x7E],
        );
        let Framing::Frame(f, n) = frame(&a) else {
            panic!()
        };
        assert_eq!(n, a.len());
        assert_eq!(strip_llc(f.info), &[0x7E, 0x7D, 0x7E]);
    }

    #[test]
    fn every_bit_flip_is_caught() {
        let mut a = vec![];
        write_frame(
            &mut a,
            false,
            &[0x41],
            &[0x03],
            0x13,
            &[0xE6, 0xE7, 0, 1, 2, 3],
        );
        for i in 0..a.len() {
            for bit in 0..8 {
                let mut b = a.clone();
                b[i] ^= 1 << bit;
                assert!(!matches!(frame(&b), Framing::Frame(..)), "{i} {bit}");
            }
        }
        for n in 0..a.len() {
            assert!(matches!(
                frame(&a[..n]),
                Framing::Incomplete | Framing::NotAFrame
            ));
        }
    }

    #[test]
    fn joins_segments() {
        let mut a = vec![];
        write_frame(&mut a, true, &[0x41], &[0x03], 0x13, &[0xE6, 0xE7, 0, 1, 2]);
        let n1 = a.len();
        write_frame(&mut a, false, &[0x41], &[0x03], 0x13, &[3, 4]);
        let mut asm = HdlcAssembler::new();
        let Framing::Frame(f1, _) = frame(&a) else {
            panic!()
        };
        assert_eq!(asm.push(&f1), Ok(None));
        let Framing::Frame(f2, _) = frame(&a[n1..]) else {
            panic!()
        };
        assert_eq!(asm.push(&f2).unwrap().unwrap(), &[1, 2, 3, 4]);
    }

    #[test]
    fn garbage_is_not_a_frame() {
        assert_eq!(frame(&[0x7E, 0xA0, 0x02, 0, 0]), Framing::NotAFrame);
        assert_eq!(frame(&[0x7E, 0xA7, 0xFF]), Framing::Incomplete);
        assert_eq!(frame(&[0x7E, 0x7E]), Framing::NotAFrame);
        let mut junk = vec![0x7E, 0xA0, 0x09];
        junk.extend_from_slice(&[0; 8]);
        junk.push(0x7E);
        assert_eq!(frame(&junk), Framing::NotAFrame);
    }
}
