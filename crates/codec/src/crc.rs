//! The two checksums of the customer port: CRC-16/ARC (DSMR telegrams) and
//! CRC-16/X.25 (HDLC frames), table-driven by the `crc` crate.

use crc::{Crc, Table, CRC_16_ARC, CRC_16_IBM_SDLC};

static ARC: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_ARC);
static X25: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_IBM_SDLC);

/// CRC-16/ARC (poly 0x8005 reflected, init 0), as DSMR 4+ writes after `!`.
pub fn crc16_arc(data: &[u8]) -> u16 {
    ARC.checksum(data)
}

/// CRC-16/X.25 (the HDLC frame check sequence, IEC 62056-46).
pub fn crc16_x25(data: &[u8]) -> u16 {
    X25.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        // The catalogue check values for "123456789".
        assert_eq!(crc16_arc(b"123456789"), 0xBB3D);
        assert_eq!(crc16_x25(b"123456789"), 0x906E);
    }
}
