//! Arbitrary bytes as an APDU: `dlms::axdr::parse`, `dlms::cosem::parse_notification`,
//! `to_telegram` and `decode`, the general-glo-ciphering and block-transfer parsers,
//! and `Session::decode_apdu` (keyed): no panic, consistent lengths, and `decode`
//! agreeing with `parse_notification` + `checked_telegram`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterkast_codec::dlms::{axdr, cipher, cosem, gbt, Keys, Session};
use meterkast_codec::{Dialect, Reading};

fuzz_target!(|data: &[u8]| {
    if let Ok((nodes, n)) = axdr::parse(data) {
        assert!(n <= data.len());
        assert!(nodes.len() <= n.max(1));
        let mut out = Vec::new();
        axdr::write(&mut out, &nodes);
        let _ = cosem::objects(&nodes);
    }
    let _ = cipher::parse(data);
    let _ = gbt::parse_block(data);
    match cosem::parse_notification(data) {
        Ok((n, used)) => {
            assert!(used <= data.len());
            let t = cosem::to_telegram(&n, Dialect::DlmsApdu);
            let _ = Reading::from_telegram(&t);
            let whole = cosem::decode(data, Dialect::DlmsApdu);
            if used == data.len() {
                let checked = cosem::checked_telegram(&n, Dialect::DlmsApdu);
                assert_eq!(whole.is_ok(), checked.is_ok());
            } else {
                assert!(whole.is_err());
            }
        }
        Err(_) => assert!(cosem::decode(data, Dialect::DlmsApdu).is_err()),
    }
    let mut s = Session::new(Keys {
        encryption: Some([0x36; 16]),
        authentication: None,
    });
    if let Some(Ok(d)) = s.decode_apdu(data) {
        let _ = Reading::from_telegram(&d.telegram);
    }
});
