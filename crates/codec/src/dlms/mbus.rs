//! M-Bus long frames (EN 13757-2) as Austrian meters push them, and the reassembly of
//! a DLMS APDU split over several frames (EN 13757-4 transport: CI 0x00–0x1F, the low
//! nibble the segment number, bit 4 set on the last segment; each segment starts with
//! the STSAP/DTSAP pair, e.g. `01 67`).

use alloc::vec::Vec;

use super::{DlmsError, Framing, MAX_APDU};

/// The start byte of a long frame.
pub const START: u8 = 0x68;
/// The stop byte.
pub const STOP: u8 = 0x16;

/// One checked long frame `68 L L 68 C A CI data CS 16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbusFrame<'a> {
    /// The C (control) field.
    pub control: u8,
    /// The A (address) field.
    pub address: u8,
    /// The CI (control information) field.
    pub ci: u8,
    /// The user data after CI.
    pub data: &'a [u8],
}

/// The user data length a long frame's L field stands for. A long frame carries at
/// least C, A and CI, so an L below 3 cannot be meant literally: Sagemcom T210-D meters
/// (Netz NÖ / EVN) send a first segment of 257 bytes whose length wrapped around a byte
/// (`68 01 01 68`); such an L means 256 + L, and the checksum and stop byte, checked
/// over all of them, decide.
pub fn user_data_len(l: u8) -> usize {
    if l < 3 {
        256 + usize::from(l)
    } else {
        usize::from(l)
    }
}

/// Frames one long frame at the start of `buf`, checking its length fields, checksum
/// and stop byte (see [`user_data_len`] for a length that overflowed).
pub fn frame(buf: &[u8]) -> Framing<MbusFrame<'_>> {
    if buf.first() != Some(&START) {
        return Framing::NotAFrame;
    }
    if buf.len() < 4 {
        return Framing::Incomplete;
    }
    let l = buf[1];
    if buf[2] != l || buf[3] != START {
        return Framing::NotAFrame;
    }
    let len = user_data_len(l);
    let total = len + 6;
    if buf.len() < total {
        return Framing::Incomplete;
    }
    if buf[total - 1] != STOP {
        return Framing::NotAFrame;
    }
    let body = &buf[4..4 + len];
    let sum = body.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    if sum != buf[total - 2] {
        return Framing::Corrupt(DlmsError::Checksum("M-Bus checksum"), total);
    }
    Framing::Frame(
        MbusFrame {
            control: body[0],
            address: body[1],
            ci: body[2],
            data: &body[3..],
        },
        total,
    )
}

/// Writes a long frame around `data` (the inverse of [`frame`]). User data of 256 to
/// 258 bytes (C, A, CI and `data`) gets the wrapped-around L a T210-D sends.
pub fn write_frame(out: &mut Vec<u8>, control: u8, address: u8, ci: u8, data: &[u8]) {
    debug_assert!(data.len() + 3 <= 258, "longer than a long frame can say");
    let l = (data.len() + 3) as u8;
    out.extend_from_slice(&[START, l, l, START, control, address, ci]);
    out.extend_from_slice(data);
    let sum = [control, address, ci]
        .iter()
        .chain(data)
        .fold(0u8, |s, b| s.wrapping_add(*b));
    out.extend_from_slice(&[sum, STOP]);
}

/// Largest user data in one long frame after CI and the STSAP/DTSAP pair.
pub const MAX_SEGMENT: usize = 255 - 3 - 2;

/// Reassembles the DLMS APDU carried by consecutive long frames.
#[derive(Debug, Default)]
pub struct MbusAssembler {
    buf: Vec<u8>,
    next: Option<u8>,
}

impl MbusAssembler {
    /// An assembler waiting for a first segment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last completed message (valid after `push` returned it).
    pub fn message(&self) -> &[u8] {
        &self.buf
    }

    /// Whether a message is half received.
    pub fn in_progress(&self) -> bool {
        self.next.is_some()
    }

    /// Adds one frame; returns the APDU when this frame completes it.
    pub fn push(&mut self, f: &MbusFrame<'_>) -> Result<Option<&[u8]>, DlmsError> {
        if f.ci > 0x1F {
            self.next = None;
            return Err(DlmsError::Unsupported(
                "M-Bus CI field is not a DLMS/COSEM transport segment",
            ));
        }
        let seq = f.ci & 0x0F;
        let last = f.ci & 0x10 != 0;
        if seq == 0 {
            self.buf.clear();
        } else if self.next != Some(seq) {
            self.next = None;
            return Err(DlmsError::Syntax(
                "M-Bus segment out of order (an earlier segment was lost)",
            ));
        }
        let Some(payload) = f.data.get(2..) else {
            self.next = None;
            return Err(DlmsError::Truncated);
        };
        if self.buf.len() + payload.len() > MAX_APDU {
            self.next = None;
            return Err(DlmsError::TooLong);
        }
        self.buf.extend_from_slice(payload);
        if last {
            self.next = None;
            Ok(Some(&self.buf))
        } else {
            self.next = Some((seq + 1) & 0x0F);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn frames_and_reassembles() {
        let mut a = vec![];
        write_frame(&mut a, 0x53, 0xFF, 0x00, &[1, 0x67, 0xAA, 0xBB]);
        let n1 = a.len();
        write_frame(&mut a, 0x53, 0xFF, 0x11, &[1, 0x67, 0xCC]);
        let Framing::Frame(f1, used) = frame(&a) else {
            panic!()
        };
        assert_eq!(used, n1);
        let Framing::Frame(f2, _) = frame(&a[n1..]) else {
            panic!()
        };
        let mut asm = MbusAssembler::new();
        assert_eq!(asm.push(&f1), Ok(None));
        assert_eq!(asm.push(&f2).unwrap().unwrap(), &[0xAA, 0xBB, 0xCC]);
        // The last segment alone is out of order.
        assert!(asm.push(&f2).is_err());
    }

    #[test]
    fn a_length_that_wrapped_around_a_byte_frames_all_its_bytes() {
        // C, A, CI and 253 to 255 bytes: 256 to 258, sent as L = 00 to 02 (the
        // T210-D's first segment is 257 bytes, L = 01).
        let data: Vec<u8> = (0..253u32).map(|i| (i * 7) as u8).collect();
        for extra in 0..3 {
            let data = &[&data[..], &[0x55; 2][..extra]].concat();
            let mut a = vec![];
            write_frame(&mut a, 0x53, 0xFF, 0x00, data);
            assert_eq!(a[1], extra as u8, "L wrapped around");
            let Framing::Frame(f, used) = frame(&a) else {
                panic!("{extra}")
            };
            assert_eq!(used, a.len());
            assert_eq!(f.data, &data[..]);
            // The checksum covers all of them.
            let mut b = a.clone();
            b[200] ^= 0x10;
            assert!(matches!(frame(&b), Framing::Corrupt(..)));
            // Cut short: more bytes are needed, never a frame.
            assert_eq!(frame(&a[..a.len() - 1]), Framing::Incomplete);
        }
    }

    #[test]
    fn rejects_damage_and_garbage() {
        let mut a = vec![];
        write_frame(&mut a, 0x53, 0xFF, 0x10, &[1, 0x67, 0x0F]);
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
        assert_eq!(frame(&[0x68, 0xFF, 0xFF, 0x68]), Framing::Incomplete);
        // An L below 3 announces 256 + L bytes: wait for them.
        assert_eq!(frame(&[0x68, 1, 1, 0x68]), Framing::Incomplete);
        let mut noise = vec![0x68, 1, 1, 0x68];
        noise.resize(263, 0xAA);
        assert_eq!(frame(&noise), Framing::NotAFrame, "no stop byte");
        assert_eq!(frame(b"hello"), Framing::NotAFrame);
    }
}
