//! Arbitrary bytes into `dlms::hdlc::frame`, and every frame found into an
//! `HdlcAssembler` and a `Session`: no panic, lengths consistent, reassembly bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterkast_codec::dlms::hdlc::{self, HdlcAssembler};
use meterkast_codec::dlms::{Framing, Keys, Session, MAX_APDU};

fuzz_target!(|data: &[u8]| {
    let mut asm = HdlcAssembler::new();
    let mut session = Session::new(Keys {
        encryption: Some([0x11; 16]),
        authentication: Some([0x22; 16]),
    });
    let mut rest = data;
    while !rest.is_empty() {
        match hdlc::frame(rest) {
            Framing::Frame(f, n) => {
                assert!(n <= rest.len());
                assert!(f.info.len() < n);
                let _ = hdlc::strip_llc(f.info);
                if let Ok(Some(msg)) = asm.push(&f) {
                    assert!(msg.len() <= MAX_APDU);
                }
                assert!(asm.message().len() <= MAX_APDU);
                if let Ok(true) = session.push_hdlc(&f) {
                    let _ = session.decode();
                }
                // The closing flag may open the next frame.
                rest = &rest[n.max(2) - 1..];
            }
            Framing::Corrupt(_, n) => {
                assert!(n >= 1 && n <= rest.len());
                rest = &rest[n..];
            }
            Framing::Incomplete | Framing::NotAFrame => rest = &rest[1..],
        }
    }
});
