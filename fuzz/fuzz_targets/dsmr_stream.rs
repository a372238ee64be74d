//! Arbitrary bytes, cut into arbitrary chunks, through the stream `Decoder` and the
//! bare `DsmrFramer`: no panic, every event drained, the framer's buffer bounded, and
//! the same frames out whether the bytes come in chunks or all at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterkast_codec::dsmr::{DsmrFramer, FrameEvent, MAX_TELEGRAM};
use meterkast_codec::{Decoder, Reading};

/// What a decoder run yields, comparable across chunkings.
#[derive(Debug, PartialEq)]
enum Out {
    Frame(Vec<u8>),
    Rejected(&'static str),
}

/// Chunk sizes for this input. The whole input stays the stream (so that real
/// telegrams work as seeds); its last byte and length seed a small PRNG, and the
/// last byte's low bits pick the largest chunk: 1, 16, 256 or 4096 bytes.
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
                let body = frame.raw.to_vec();
                let _ = frame.telegram.into_owned();
                Out::Frame(body)
            }
            Err(r) => Out::Rejected(r.cause),
        });
    }
}

fuzz_target!(|data: &[u8]| {
    // Chunked, through the stream decoder and, alongside, the bare framer.
    let mut decoder = Decoder::new();
    let mut framer = DsmrFramer::new();
    let mut chunked = Vec::new();
    let mut rest = data;
    let mut sizes = chunk_sizes(data);
    while !rest.is_empty() {
        let n = sizes.next().unwrap().min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;

        decoder.push(chunk);
        drain(&mut decoder, &mut chunked);

        framer.push(chunk);
        while let Some(ev) = framer.next() {
            if let FrameEvent::Telegram(raw) = ev {
                assert!(raw.body.len() <= MAX_TELEGRAM);
                assert_eq!(raw.body.first(), Some(&b'/'));
                assert_eq!(raw.body.last(), Some(&b'!'));
            }
        }
        assert!(
            framer.pending() <= MAX_TELEGRAM + chunk.len(),
            "framer holds {} bytes after a {}-byte chunk",
            framer.pending(),
            chunk.len()
        );
    }
    assert!(decoder.stats().skipped_bytes <= data.len() as u64);

    // All at once: the same telegrams and rejections, byte for byte (the line end
    // after the checksum included).
    let mut whole = Decoder::new();
    whole.push(data);
    let mut at_once = Vec::new();
    drain(&mut whole, &mut at_once);
    assert_eq!(chunked, at_once, "chunking changed the output");
});
