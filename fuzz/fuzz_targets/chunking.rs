//! The stream decoder's laws on arbitrary input: the outcomes (accepted frames with
//! their bytes and values, rejections with their messages) do not depend on how the
//! input is split into reads, and nothing is held back after the end of the input.
//! The first bytes also pick a run of frames from the generated streams of every
//! dialect, which is split the same way and must give one outcome per frame that went
//! in.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meterkast_codec::testkit::{self, outcomes, Reads, Stream};
use meterkast_codec::Keys;

fn streams() -> &'static [Stream] {
    static S: OnceLock<Vec<Stream>> = OnceLock::new();
    S.get_or_init(testkit::streams)
}

/// A seed for the read sizes from the input's head and length.
fn seed(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .fold(data.len() as u64, |s, &b| s.rotate_left(8) ^ u64::from(b))
}

fuzz_target!(|data: &[u8]| {
    let keys = Keys {
        encryption: Some(testkit::KEY),
        authentication: None,
    };
    // `outcomes` also asserts that nothing is held back after the end.
    let whole = outcomes(keys, [data]);
    let split = outcomes(keys, Reads::new(seed(data)).split(data));
    assert_eq!(split, whole, "the split changed the outcomes");

    // No silent outcome: a run of up to four frames of a generated stream, split as
    // this input says.
    if let [pick, from, n, ..] = *data {
        let s = &streams()[usize::from(pick) % streams().len()];
        let from = usize::from(from) % s.frames;
        let (bytes, frames) = s.frames_between(from, from + 1 + usize::from(n % 4));
        let out = outcomes(s.keys, Reads::new(seed(data)).split(bytes));
        assert_eq!(out.len(), frames, "{}: frames in and outcomes out differ", s.name);
    }
});
