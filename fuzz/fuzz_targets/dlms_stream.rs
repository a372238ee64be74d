//! Arbitrary bytes, cut into arbitrary chunks, through a keyed stream `Decoder` (the EVN
//! documentation key, with and without an authentication key) and one with no keys:
//! no panic, every output drained, the buffered bytes bounded, and the same output
//! whether the bytes come in chunks or all at once (a DSMR telegram's line end
//! included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterkast_codec::dlms::MAX_APDU;
use meterkast_codec::dsmr::MAX_TELEGRAM;
use meterkast_codec::{Decoder, Keys, Reading};

/// The key of the corpus EVN frame, so that real seeds decrypt.
const KEY: [u8; 16] = [
    0x36, 0xC6, 0x66, 0x39, 0xE4, 0x8A, 0x8C, 0xA4, 0xD6, 0xBC, 0x8B, 0x28, 0x2A, 0x79, 0x3B, 0xBB,
];

/// What `Decoder::buffered` may hold beyond the last chunk (see its documentation).
const BOUND: usize = if 3 * MAX_APDU + 64 > MAX_TELEGRAM {
    3 * MAX_APDU + 64
} else {
    MAX_TELEGRAM
};

#[derive(Debug, PartialEq)]
enum Out {
    Frame(Vec<u8>, usize, Option<&'static str>),
    Rejected(&'static str),
}

/// Chunk sizes from the input's last byte and length (as in `dsmr_stream`).
fn chunk_sizes(data: &[u8]) -> impl Iterator<Item = usize> {
    let last = data.last().copied().unwrap_or(0);
    let max = [1usize, 16, 256, 4096][usize::from(last & 3)];
    let mut x = (u64::from(last) << 32 | data.len() as u64) | 1;
    core::iter::from_fn(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Some(1 + (x as usize) % max)
    })
}

fn drain(d: &mut Decoder, out: &mut Vec<Out>) {
    while let Some(res) = d.next() {
        out.push(match res {
            Ok(frame) => {
                let _ = Reading::from_telegram(&frame.telegram);
                let raw = frame.raw.to_vec();
                let warning = frame.warning.map(|w| w.cause);
                let t = frame.telegram.into_owned();
                Out::Frame(raw, t.objects.len(), warning)
            }
            Err(r) => Out::Rejected(r.cause),
        });
    }
}

fn run(keys: Option<Keys>, data: &[u8]) {
    let new = || match &keys {
        Some(k) => Decoder::with_keys(k.clone()),
        None => Decoder::new(),
    };
    let mut d = new();
    let mut chunked = Vec::new();
    let mut rest = data;
    let mut sizes = chunk_sizes(data);
    while !rest.is_empty() {
        let n = sizes.next().unwrap().min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        d.push(chunk);
        drain(&mut d, &mut chunked);
        assert!(
            d.buffered() <= BOUND + chunk.len(),
            "decoder holds {} bytes after a {}-byte chunk",
            d.buffered(),
            chunk.len()
        );
    }
    d.finish();
    drain(&mut d, &mut chunked);
    assert!(d.stats().skipped_bytes <= data.len() as u64 + 1);

    let mut whole = new();
    whole.push(data);
    let mut at_once = Vec::new();
    drain(&mut whole, &mut at_once);
    whole.finish();
    drain(&mut whole, &mut at_once);
    assert_eq!(chunked, at_once, "chunking changed the output");
}

fuzz_target!(|data: &[u8]| {
    run(
        Some(Keys {
            encryption: Some(KEY),
            authentication: None,
        }),
        data,
    );
    run(
        Some(Keys {
            encryption: Some(KEY),
            authentication: Some(KEY),
        }),
        data,
    );
    run(None, data);
});
