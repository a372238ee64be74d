//! General Block Transfer (IEC 62056-5-3, tag 0xE0): one long APDU sent as numbered
//! blocks, each in its own HDLC frame (Landis+Gyr push lists).

use alloc::vec::Vec;

use super::axdr::Reader;
use super::{DlmsError, MAX_APDU};

/// The APDU tag of a general-block-transfer block.
pub const TAG: u8 = 0xE0;

/// One block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// Whether this is the last block.
    pub last: bool,
    /// The block number (1 for the first).
    pub number: u16,
    /// The block's share of the APDU.
    pub data: &'a [u8],
}

/// Parses one block: `E0 control block-number block-number-ack length data`; returns
/// it and the bytes it spans.
pub fn parse_block(apdu: &[u8]) -> Result<(Block<'_>, usize), DlmsError> {
    let mut r = Reader::new(apdu);
    if r.u8()? != TAG {
        return Err(DlmsError::Syntax("not a general-block-transfer block"));
    }
    let control = r.u8()?;
    let number = u16::from_be_bytes(r.array()?);
    let _ack = r.array::<2>()?;
    let data = r.sized()?;
    Ok((
        Block {
            last: control & 0x80 != 0,
            number,
            data,
        },
        r.position(),
    ))
}

/// Writes blocks of at most `size` bytes of `apdu`, one `Vec` per block.
pub fn write_blocks(apdu: &[u8], size: usize) -> Vec<Vec<u8>> {
    let size = size.max(1);
    let n = apdu.len().div_ceil(size).max(1);
    (0..n)
        .map(|i| {
            let part = &apdu[(i * size).min(apdu.len())..((i + 1) * size).min(apdu.len())];
            let mut b = Vec::with_capacity(part.len() + 9);
            b.push(TAG);
            b.push(if i + 1 == n { 0xC0 } else { 0x40 });
            b.extend_from_slice(&((i + 1) as u16).to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            super::axdr::write_length(&mut b, part.len());
            b.extend_from_slice(part);
            b
        })
        .collect()
}

/// Reassembles blocks in order.
#[derive(Debug, Default)]
pub struct GbtAssembler {
    buf: Vec<u8>,
    next: Option<u16>,
}

impl GbtAssembler {
    /// An assembler waiting for block 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last completed message (valid after `push` returned it).
    pub fn message(&self) -> &[u8] {
        &self.buf
    }

    /// Whether a transfer is half received.
    pub fn in_progress(&self) -> bool {
        self.next.is_some()
    }

    /// Adds one block APDU; returns the whole APDU when this block completes it.
    pub fn push(&mut self, apdu: &[u8]) -> Result<Option<&[u8]>, DlmsError> {
        let (b, _) = parse_block(apdu).inspect_err(|_| self.next = None)?;
        if b.number == 1 {
            self.buf.clear();
        } else if self.next != Some(b.number) {
            self.next = None;
            return Err(DlmsError::Syntax(
                "general-block-transfer block out of order (an earlier block was lost)",
            ));
        }
        if self.buf.len() + b.data.len() > MAX_APDU {
            self.next = None;
            return Err(DlmsError::TooLong);
        }
        self.buf.extend_from_slice(b.data);
        if b.last {
            self.next = None;
            Ok(Some(&self.buf))
        } else {
            self.next = b.number.checked_add(1);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_joins() {
        let apdu: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let blocks = write_blocks(&apdu, 200);
        assert_eq!(blocks.len(), 4);
        let mut a = GbtAssembler::new();
        for b in &blocks[..3] {
            assert_eq!(a.push(b), Ok(None));
        }
        assert_eq!(a.push(&blocks[3]).unwrap().unwrap(), &apdu[..]);
        // A missing block aborts the transfer.
        assert_eq!(a.push(&blocks[0]), Ok(None));
        assert!(a.push(&blocks[2]).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_block(&[]).is_err());
        assert!(parse_block(&[0xE0, 0x80, 0, 1, 0, 0, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(parse_block(&[0xE0, 0x80, 0, 1, 0, 0, 5, 1]).is_err());
    }
}
