//! The stream decoder's two laws, over the conformance corpus and generated streams of
//! every dialect:
//!
//! - **Chunking invariance**: for any split of the input into reads (1 byte to 1 MiB),
//!   the accepted frames (bytes and values) and the rejections (with their messages)
//!   are the same as for the input in one piece.
//! - **No silent outcome**: every frame that goes in comes out, as a frame or as a
//!   rejection with a cause.

mod common;

use meterkast_codec::testkit::{self, outcomes, Outcome, Reads, Stream};
use meterkast_codec::Keys;
use proptest::prelude::*;

fn read_corpus(dir: &str, pick: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let m = common::manifest(dir);
    m["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["file"].as_str().unwrap().to_string())
        .filter(|f| pick(f))
        .map(|f| {
            let b = std::fs::read(common::corpus().join(dir).join(&f)).unwrap();
            (f, b)
        })
        .collect()
}

/// The corpus as streams: DSMR text telegrams back to back, the encrypted DSMR frames
/// back to back, and the DLMS vectors as hex lines (each file one message).
fn corpus_streams() -> Vec<Stream> {
    let text = read_corpus("dsmr", |f| f.ends_with(".txt"));
    let bin = read_corpus("dsmr", |f| f.ends_with(".bin"));
    // The partial GBT block goes last: the input ends in the middle of its message.
    let mut hex = read_corpus("dlms", |f| f.ends_with(".hex"));
    hex.sort_by_key(|(f, _)| f.contains("partial"));
    let lines = |v: &[(String, Vec<u8>)]| -> Vec<u8> {
        v.iter()
            .flat_map(|(_, b)| {
                let mut line: Vec<u8> = b.iter().copied().filter(u8::is_ascii_hexdigit).collect();
                line.push(b'\n');
                line
            })
            .collect()
    };
    // The M-Bus frame with an overflowed length byte is the DLMS decoders' finding 3,
    // not the stream's: counted once it decodes.
    let silent_today = hex
        .iter()
        .filter(|(f, _)| f.contains("length_overflow"))
        .count();
    vec![
        Stream {
            name: "corpus dsmr text",
            keys: Keys::default(),
            frames: text.len(),
            bytes: text.concat_bytes(),
            ends: vec![],
            too_long: 0,
        },
        Stream {
            name: "corpus dsmr encrypted",
            keys: Keys::default(),
            frames: bin.len(),
            bytes: bin.concat_bytes(),
            ends: vec![],
            too_long: 0,
        },
        Stream {
            name: "corpus dlms hex",
            keys: Keys::default(),
            frames: hex.len() - silent_today,
            bytes: lines(&hex),
            ends: vec![],
            too_long: 0,
        },
    ]
}

trait ConcatBytes {
    fn concat_bytes(&self) -> Vec<u8>;
}

impl ConcatBytes for Vec<(String, Vec<u8>)> {
    fn concat_bytes(&self) -> Vec<u8> {
        self.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }
}

fn all_streams() -> Vec<Stream> {
    let mut s = corpus_streams();
    s.extend(testkit::streams());
    s
}

fn accepted(o: &[Outcome]) -> usize {
    o.iter()
        .filter(|o| matches!(o, Outcome::Frame { .. }))
        .count()
}

#[test]
fn every_frame_that_goes_in_comes_out() {
    for s in all_streams() {
        let out = outcomes(s.keys, [&s.bytes[..]]);
        assert!(
            out.len() >= s.frames,
            "{}: {} frames in, {} outcomes out: {out:#?}",
            s.name,
            s.frames,
            out.len()
        );
        // Each generated frame is one outcome, never more, in the stream and alone.
        if !s.name.starts_with("corpus") {
            assert_eq!(out.len(), s.frames, "{}: {out:#?}", s.name);
            for i in 0..s.frames {
                let (bytes, n) = s.frames_between(i, i + 1);
                assert_eq!(n, 1);
                let out = outcomes(s.keys, [bytes]);
                assert_eq!(out.len(), 1, "{} frame {i} alone: {out:#?}", s.name);
            }
        }
    }
}

#[test]
fn generated_frames_are_accepted_unless_beyond_the_limits() {
    for s in testkit::streams() {
        let out = outcomes(s.keys, [&s.bytes[..]]);
        let rejected: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Outcome::Rejected { cause, message } => Some((*cause, message.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            accepted(&out),
            s.frames - s.too_long,
            "{}: {rejected:#?}",
            s.name
        );
        assert!(
            rejected.iter().all(|(c, _)| *c == "too_long") && rejected.len() == s.too_long,
            "{}: {rejected:#?}",
            s.name
        );
    }
}

#[test]
fn a_long_smarty_frame_straddling_a_read_is_accepted() {
    // Finding 1: a 2.6 KiB Smarty frame cut by the 64 KiB read of `meterkast parse`.
    let mut enc =
        meterkast_codec::dlms::encode::Encoder::new(&testkit::KEY, None, *b"SAG\x05\0\0\0\x02", 1);
    let mut stream = Vec::new();
    let mut frames = 0;
    while stream.len() < 200_000 {
        let msg = if frames % 10 == 3 { 3600 } else { 100 };
        stream.extend(enc.smarty(&testkit::dsmr5(frames, msg)));
        frames += 1;
    }
    let keys = Keys {
        encryption: Some(testkit::KEY),
        authentication: None,
    };
    for read in [7, 100, 1000, 4096, 65_536] {
        let out = outcomes(keys, stream.chunks(read));
        assert_eq!(accepted(&out), frames as usize, "reads of {read} bytes");
    }
}

#[test]
fn input_that_ends_mid_telegram_says_so() {
    let t = testkit::dsmr5(1, 10);
    let out = outcomes(Keys::default(), [&t[..], &t[..t.len() / 2]]);
    assert_eq!(accepted(&out), 1);
    match &out[1] {
        Outcome::Rejected { cause, message } => {
            assert_eq!(*cause, "truncated");
            assert!(message.contains("input ended"), "{message}");
        }
        o => panic!("{o:?}"),
    }
    // A binary frame cut at the end is a rejection too, never silence.
    let s = &testkit::streams()[4];
    let cut = &s.bytes[..s.bytes.len() - 10];
    let out = outcomes(s.keys, [cut]);
    assert!(
        matches!(out.last(), Some(Outcome::Rejected { message, .. }) if message.contains("input ended")),
        "{out:#?}"
    );
}

#[test]
fn a_raw_byte_in_the_header_does_not_hide_a_proven_telegram() {
    // Finding 6: `/FLU5\253769484_A` with a raw 0xAB, CRC valid, first in the stream.
    let t = testkit::dsmr5_with_header(1, 0, b"/FLU5\xAB769484_A");
    let out = outcomes(Keys::default(), [&t[..]]);
    match &out[..] {
        [Outcome::Frame { telegram, raw, .. }] => {
            assert_eq!(telegram.dialect.as_str(), "fluvius-emucs");
            assert_eq!(raw, &t);
        }
        o => panic!("{o:#?}"),
    }
}

#[test]
fn dsmr_2_2_is_told_from_3_0() {
    // Finding 8: the same header; DSMR 2.2 states its threshold in kW, 3.0 in A.
    let t22 = testkit::dsmr22(1);
    let t30 = String::from_utf8(t22.clone())
        .unwrap()
        .replace("0-0:17.0.0(0999.00*kW)", "0-0:17.0.0(016*A)");
    let dialect = |b: &[u8]| match &outcomes(Keys::default(), [b])[..] {
        [Outcome::Frame { telegram, .. }] => telegram.dialect.as_str(),
        o => panic!("{o:#?}"),
    };
    assert_eq!(dialect(&t22), "dsmr-2.2");
    assert_eq!(dialect(t30.as_bytes()), "dsmr-3.0");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any split of every stream gives what the stream in one piece gives.
    #[test]
    fn any_split_gives_the_same_outcomes(seed in any::<u64>()) {
        for s in all_streams() {
            let whole = outcomes(s.keys, [&s.bytes[..]]);
            let split = outcomes(s.keys, Reads::new(seed).split(&s.bytes));
            prop_assert!(split == whole, "{}: outcomes differ for seed {}", s.name, seed);
        }
    }

    /// Noise and cuts anywhere: still the same outcomes in any split.
    #[test]
    fn damaged_streams_too(which in 0usize..64, seed in any::<u64>(),
                           edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..6)) {
        let streams = all_streams();
        let s = &streams[which % streams.len()];
        let mut bytes = s.bytes.clone();
        for (at, b, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 => bytes.insert(at, b),
                1 if at < bytes.len() => bytes[at] ^= b | 1,
                _ => bytes.truncate(bytes.len().min(at.max(bytes.len() / 2))),
            }
        }
        let whole = outcomes(s.keys, [&bytes[..]]);
        let split = outcomes(s.keys, Reads::new(seed).split(&bytes));
        prop_assert!(split == whole, "{}: outcomes differ for seed {}", s.name, seed);
    }
}

/// Found by the `dsmr_stream` fuzz target: a ciphering header announcing 23,049 bytes
/// after an HDLC flag was a `too_long` rejection when read whole and silent noise when
/// read a byte at a time (its security control byte had not arrived when the length
/// was judged).
#[test]
fn a_too_long_ciphering_header_is_judged_the_same_in_any_reads() {
    let mut input = vec![
        0x7E, 0xDB, 0x08, b'K', b'F', b'M', 0x10, 0x10, 0x00, 0x00, 0x23,
    ];
    input.extend_from_slice(&[0x82, 0x5A, 0x09, 0x21, 0x00, 0x29, 0x5B, 0x9A]);
    input.extend(std::iter::repeat_n(0x55, 300));
    let whole = testkit::outcomes(Keys::default(), [input.as_slice()]);
    assert!(
        whole.iter().any(|o| matches!(
            o,
            Outcome::Rejected {
                cause: "too_long",
                ..
            }
        )),
        "{whole:?}"
    );
    for max in [1, 2, 3, 7, 13, 14, 15] {
        let reads: Vec<&[u8]> = input.chunks(max).collect();
        assert_eq!(
            testkit::outcomes(Keys::default(), reads),
            whole,
            "reads of {max} bytes"
        );
    }
}

/// Found by the `chunking` fuzz target: a DSMR telegram start found only after the end
/// of the input was marked (the scanner had waited on an HDLC header before it) was
/// held back in silence instead of being reported as cut off by the end.
#[test]
fn a_telegram_found_after_the_end_is_reported_not_held_back() {
    let input: &[u8] = &[
        0x7E, 0xA0, 0x8B, 0xCE, 0xFF, 0x03, 0x13, 0xEE, 0xE1, 0xE6, 0xE7, 0x00, 0xE0, 0x40, 0x00,
        0x01, 0x3B, 0x00, 0x00, 0x67, 0xDB, 0x08, 0x4C, 0x47, 0x5A, 0x67, 0x73, 0x7C, 0x7E, 0xE0,
        0x82, 0x01, 0x03, 0x30, 0xFC, 0xE9, 0xA6, 0xD7, 0xA4, 0x07, 0x6A, 0xD0, 0x4A, 0xE0, 0xB1,
        0x90, 0x44, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1D, 0x48, 0x9B, 0x62, 0x45,
        0x2A, 0xEF, 0x0C, 0x24, 0x02, 0x29, 0xE8, 0xC0, 0xFF, 0x3C, 0x03, 0xE1, 0x8D, 0xDA, 0x59,
        0xAA, 0x17, 0xA9, 0x08, 0x4B, 0x6B, 0xEC, 0x00, 0x7D, 0x2F, 0x64, 0x64, 0x64, 0x64, 0x64,
        0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64,
        0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x64, 0x67, 0x5D, 0x72,
        0x0A, 0x65, 0xFD, 0x0A, 0x70, 0xF1, 0xEA, 0xF1, 0x61, 0x22, 0xCD, 0xDF, 0x80, 0x97, 0x10,
        0x57, 0xB4, 0xD8, 0xEB, 0x7E,
    ];
    let keys = Keys {
        encryption: Some(testkit::KEY),
        authentication: None,
    };
    let whole = outcomes(keys, [input]);
    assert!(
        matches!(
            whole.last(),
            Some(Outcome::Rejected {
                cause: "truncated",
                ..
            })
        ),
        "{whole:?}"
    );
    let split = outcomes(keys, Reads::new(7).split(input));
    assert_eq!(split, whole);
}
