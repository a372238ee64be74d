//! Arbitrary bytes as a telegram body (`/` … `!`): the grammar never panics, and
//! whatever it accepts survives the normalised view and an owned copy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterkast_codec::dsmr::parse_body;
use meterkast_codec::Reading;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, body)) = data.split_first() else {
        return;
    };
    // `parse_body` is given what the framer would give it: bytes ending in `!`.
    let mut body = body.to_vec();
    if body.last() != Some(&b'!') {
        body.push(b'!');
    }
    if let Ok(t) = parse_body(&body, flag & 1 == 1) {
        let _ = Reading::from_telegram(&t);
        let _ = t.into_owned();
    }
});
