//! Properties of the stream decoder on DSMR: chunking never matters, damage inside a
//! CRC-protected telegram is always caught, and noise never costs the next telegram.

mod common;

use meterkast_codec::{Decoder, ObjectMap};
use proptest::prelude::*;

/// Every CRC-protected, valid telegram of the corpus.
fn telegrams() -> Vec<Vec<u8>> {
    let m = common::manifest("dsmr");
    m["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["crc"]["present"] == true && v["crc"]["valid"] == true)
        .map(|v| {
            std::fs::read(
                common::corpus()
                    .join("dsmr")
                    .join(v["file"].as_str().unwrap()),
            )
            .unwrap()
        })
        .collect()
}

/// Decodes chunk by chunk; returns the accepted telegrams as JSON and the rejection causes.
fn run(chunks: &[&[u8]]) -> (Vec<String>, Vec<&'static str>) {
    let mut d = Decoder::new();
    let (mut ok, mut bad) = (vec![], vec![]);
    for c in chunks {
        d.push(c);
        while let Some(ev) = d.next() {
            match ev {
                Ok(f) => ok.push(serde_json::to_string(&ObjectMap(&f.telegram.objects)).unwrap()),
                Err(r) => bad.push(r.cause),
            }
        }
    }
    (ok, bad)
}

fn stream() -> Vec<u8> {
    telegrams().concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_gives_the_same_telegrams(cuts in proptest::collection::vec(0usize..20_000, 0..40)) {
        let s = stream();
        let whole = run(&[&s]);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = vec![];
        let mut at = 0;
        for c in cuts {
            chunks.push(&s[at..c]);
            at = c;
        }
        chunks.push(&s[at..]);
        prop_assert_eq!(run(&chunks), whole);
    }

    #[test]
    fn a_changed_byte_in_a_protected_telegram_is_rejected(which in 0usize..100, pos in 0usize..10_000, xor in 1u8..=255) {
        let ts = telegrams();
        prop_assume!(!ts.is_empty());
        let mut t = ts[which % ts.len()].clone();
        // Anything from '/' to the last CRC digit is protected.
        let bang = t.iter().rposition(|&b| b == b'!').unwrap();
        let crc_end = bang + 1 + t[bang + 1..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let i = pos % crc_end;
        t[i] ^= xor;
        // As on a live line: the meter's previous telegram came through intact.
        let good = &ts[which % ts.len()];
        let (ok, _) = run(&[good, &t]);
        let ok = &ok[1.min(ok.len())..];
        prop_assert!(ok.is_empty(), "byte {} changed yet a telegram was accepted", i);
    }

    #[test]
    fn noise_between_telegrams_never_loses_the_next(noise in proptest::collection::vec(any::<u8>(), 0..300), which in 0usize..100) {
        let ts = telegrams();
        prop_assume!(!ts.is_empty());
        let t = &ts[which % ts.len()];
        let mut s = ts[0].clone();
        s.extend_from_slice(&noise);
        s.extend_from_slice(t);
        let (ok, _) = run(&[&s]);
        let expected = run(&[t]).0;
        prop_assert!(!ok.is_empty());
        prop_assert_eq!(ok.last(), expected.last());
    }
}

#[test]
fn garbage_and_huge_inputs_are_survived() {
    // A meter's stream: a telegram, then random bytes, a telegram that never ends, and
    // a stream of only '/'.
    let mut d = Decoder::new();
    d.push(b"/ISk5\\2MT382-1000\r\n\r\n1-0:1.8.1(000000.500*kWh)\r\n!\r\n");
    let mut x: u32 = 1;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d.push(&[x as u8]);
        while d.next().is_some() {}
    }
    d.push(b"/");
    d.push(&vec![b'1'; 100_000]);
    while d.next().is_some() {}
    d.push(&vec![b'/'; 10_000]);
    while d.next().is_some() {}
    let t = b"/ISk5\\2MT382-1000\r\n\r\n1-0:1.8.1(000001.000*kWh)\r\n!\r\n";
    d.push(t);
    let mut found = false;
    while let Some(ev) = d.next() {
        found |= ev.is_ok();
    }
    assert!(found, "a good telegram after garbage was lost");
    let s = d.stats();
    assert!(s.rejected.iter().any(|(c, _)| *c == "too_long"));
}
