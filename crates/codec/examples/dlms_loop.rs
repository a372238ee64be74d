//! Decodes the bench's Smarty or EVN frame N times through a keyed `Decoder` (for
//! profilers: `valgrind --tool=callgrind target/release/examples/dlms_loop smarty 20000`).
//! Frames are re-encrypted up front with increasing frame counters, as in
//! `benches/dlms.rs`, so the decoder takes its normal path.
use meterkast_codec::dlms::cipher::{self, Cipher};
use meterkast_codec::dlms::encode::{mbus_frames, Encoder};
use meterkast_codec::dlms::{mbus, Framing, LUXEMBOURG_AUTHENTICATION_KEY};
use meterkast_codec::{Decoder, Keys};

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| String::from("smarty"));
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let (key, apdu, smarty) = match which.as_str() {
        "smarty" => (
            "D491470F47126332B07D1923B3504188",
            std::fs::read(format!("{corpus}/dsmr/smarty_nexxtlab_encrypted.bin")).unwrap(),
            true,
        ),
        "evn" => {
            let hex =
                std::fs::read_to_string(format!("{corpus}/dlms/at_evn_noe_doc_kaifa_mbus.hex"))
                    .unwrap();
            let frame = unhex(&hex);
            let mut apdu = Vec::new();
            let mut rest = &frame[..];
            while let Framing::Frame(f, used) = mbus::frame(rest) {
                apdu.extend_from_slice(&f.data[2..]);
                rest = &rest[used..];
            }
            ("36C66639E48A8CA4D6BC8B282A793BBB", apdu, false)
        }
        _ => panic!("usage: dlms_loop smarty|evn [N]"),
    };
    let key: [u8; 16] = unhex(key).try_into().unwrap();
    let (c, _) = cipher::parse(&apdu).unwrap();
    let mut plain = Vec::new();
    let engine = Cipher::new(&key);
    if smarty {
        assert!(engine.decrypt_verified(&c, &LUXEMBOURG_AUTHENTICATION_KEY, &mut plain));
    } else {
        engine.decrypt_unverified(&c, &mut plain);
    }
    let mut enc = Encoder::new(&key, None, c.system_title, c.frame_counter);
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            if smarty {
                enc.smarty(&plain)
            } else {
                mbus_frames(&enc.cipher(&plain, false))
            }
        })
        .collect();
    let mut d = Decoder::with_keys(Keys {
        encryption: Some(key),
        authentication: smarty.then_some(LUXEMBOURG_AUTHENTICATION_KEY),
    });
    let mut objects = 0;
    for f in &frames {
        d.push(f);
        while let Some(r) = d.next() {
            let r = r.unwrap();
            assert!(r.warning.is_none());
            objects += r.telegram.objects.len();
        }
    }
    println!("{objects}");
}
