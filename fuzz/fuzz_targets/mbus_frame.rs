//! Arbitrary bytes into `dlms::mbus::frame`, and every frame found into an
//! `MbusAssembler` and a `Session`: no panic, lengths consistent, reassembly bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterkast_codec::dlms::mbus::{self, MbusAssembler};
use meterkast_codec::dlms::{Framing, Keys, Session, MAX_APDU};

fuzz_target!(|data: &[u8]| {
    let mut asm = MbusAssembler::new();
    let mut session = Session::new(Keys {
        encryption: Some([0x11; 16]),
        authentication: None,
    });
    let mut rest = data;
    while !rest.is_empty() {
        match mbus::frame(rest) {
            Framing::Frame(f, n) => {
                assert!(n >= 9 && n <= rest.len());
                assert!(f.data.len() + 9 <= n);
                if let Ok(Some(msg)) = asm.push(&f) {
                    assert!(msg.len() <= MAX_APDU);
                }
                assert!(asm.message().len() <= MAX_APDU);
                if let Ok(true) = session.push_mbus(&f) {
                    let _ = session.decode();
                }
                rest = &rest[n..];
            }
            Framing::Corrupt(_, n) => {
                assert!(n >= 1 && n <= rest.len());
                rest = &rest[n..];
            }
            Framing::Incomplete | Framing::NotAFrame => rest = &rest[1..],
        }
    }
});
