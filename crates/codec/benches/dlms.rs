//! Decrypt + decode speed of the two encrypted DLMS frames real meters send us most:
//!
//! * EVN (Netz NÖ): `at_evn_noe_doc_kaifa_mbus.hex`, a data-notification in
//!   general-glo-ciphering with security control 0x20 (encryption only, no GCM tag), split
//!   over two M-Bus long frames (282 bytes on the wire);
//! * Luxembourg Smarty: `smarty_nexxtlab_encrypted.bin`, a DSMR telegram in
//!   general-glo-ciphering with security control 0x30 (GCM tag checked), 647 bytes.
//!
//! Both come from the conformance corpus in `crates/codec/tests/corpus` (the bench stops
//! with a clear message when it is missing).
//!
//! The stream decoder remembers every sender's frame counter and warns when one does
//! not increase, so pushing the same frame over and over would time the warning path.
//! Instead, each timed iteration gets a *fresh* frame: the corpus frame's plaintext
//! re-encrypted by [`encode::Encoder`] with the corpus key and system title and the
//! next frame counter (built in criterion's untimed setup, `iter_batched_ref`). Before
//! timing, the bench checks that the re-encoding reproduces the corpus frame byte for
//! byte at the corpus frame counter, so the timed frames differ from the real ones only
//! in the counter (and hence the ciphertext). Construction of a decoder is timed on its
//! own (`evn/decoder-new`).
//!
//! Run with `bench/dlms.sh` for the side-by-side table with Python, or directly:
//! `cargo bench -p meterkast-codec --bench dlms -- --measurement-time 3 --warm-up-time 1`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meterkast_codec::dlms::cipher::{self, Cipher};
use meterkast_codec::dlms::encode::{self, Encoder};
use meterkast_codec::dlms::{cosem, mbus, Framing, LUXEMBOURG_AUTHENTICATION_KEY};
use meterkast_codec::dsmr::{self, DsmrFramer, FrameEvent};
use meterkast_codec::{Decimal, Decoder, Dialect, Keys, Obis, Telegram, Value};

/// EVN's documentation key (dlms/MANIFEST.json).
const EVN_KEY: &str = "36C66639E48A8CA4D6BC8B282A793BBB";
/// NEXXTLAB's Smarty key (dsmr/MANIFEST.json); the authentication key is Luxembourg's.
const SMARTY_KEY: &str = "D491470F47126332B07D1923B3504188";

fn corpus() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus"))
}

fn read(rel: &str) -> Vec<u8> {
    let p = corpus().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "cannot read the test vector {} ({e}); these benches need the conformance \
             corpus in crates/codec/tests/corpus",
            p.display()
        )
    })
}

fn unhex(s: &[u8]) -> Vec<u8> {
    let s: Vec<u8> = s.iter().copied().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

fn key(hex: &str) -> [u8; 16] {
    unhex(hex.as_bytes()).try_into().unwrap()
}

fn number(t: &Telegram<'_>, obis: Obis) -> (Decimal, Option<String>) {
    match t.get(obis).unwrap_or_else(|| panic!("no {obis:?}")) {
        Value::Number { value, unit } => (*value, unit.as_deref().map(String::from)),
        v => panic!("{obis:?} is {v:?}, not a number"),
    }
}

fn check_evn(t: &Telegram<'_>) {
    let (wh, unit) = number(t, Obis::new(1, 0, 1, 8, 0));
    assert_eq!((wh, unit.as_deref()), (Decimal::new(12937, 0), Some("Wh")));
    let (v, unit) = number(t, Obis::new(1, 0, 32, 7, 0));
    assert_eq!((v, unit.as_deref()), (Decimal::new(2337, 1), Some("V")));
}

fn check_smarty(t: &Telegram<'_>) {
    let (kwh, unit) = number(t, Obis::new(1, 0, 1, 8, 0));
    assert_eq!((kwh, unit.as_deref()), (Decimal::new(6695, 3), Some("kWh")));
}

/// One frame through a fresh keyed decoder; the decoded telegram (and no warning).
fn decode_once(keys: Keys, frame: &[u8], check: fn(&Telegram<'_>)) {
    let mut d = Decoder::with_keys(keys);
    d.push(frame);
    let out = d.next().expect("no output").expect("frame rejected");
    assert!(out.warning.is_none(), "{:?}", out.warning);
    check(&out.telegram);
    assert!(d.next().is_none());
}

/// A corpus frame, its parsed ciphered APDU and the plaintext.
struct Fixture {
    frame: Vec<u8>,
    apdu: Vec<u8>,
    plain: Vec<u8>,
    cipher: Cipher,
    encoder: Encoder,
}

impl Fixture {
    fn new(frame: Vec<u8>, apdu: Vec<u8>, enc: &[u8; 16], authenticated: bool) -> Self {
        let (c, used) = cipher::parse(&apdu).unwrap();
        assert_eq!(used, apdu.len());
        assert_eq!(c.tag.is_some(), authenticated);
        let engine = Cipher::new(enc);
        let mut plain = Vec::new();
        if authenticated {
            assert!(engine.decrypt_verified(&c, &LUXEMBOURG_AUTHENTICATION_KEY, &mut plain));
        } else {
            engine.decrypt_unverified(&c, &mut plain);
        }
        let encoder = Encoder::new(enc, None, c.system_title, c.frame_counter);
        Fixture {
            frame,
            apdu,
            plain,
            cipher: engine,
            encoder,
        }
    }
}

fn evn() -> Fixture {
    let frame = unhex(&read("dlms/at_evn_noe_doc_kaifa_mbus.hex"));
    assert_eq!(frame.len(), 282, "at_evn_noe_doc_kaifa_mbus.hex changed");
    // The ciphered APDU: both segments' data after CI and STSAP/DTSAP.
    let mut apdu = Vec::new();
    let mut rest = &frame[..];
    while !rest.is_empty() {
        let Framing::Frame(f, n) = mbus::frame(rest) else {
            panic!("EVN frame does not frame")
        };
        assert_eq!(&f.data[..2], &[0x01, 0x67]);
        apdu.extend_from_slice(&f.data[2..]);
        rest = &rest[n..];
    }
    let mut fx = Fixture::new(frame, apdu, &key(EVN_KEY), false);
    // The encoder reproduces the real frame exactly at its own counter.
    let mut enc = fx.encoder.clone();
    assert_eq!(
        evn_frame(&mut enc, &fx.plain),
        fx.frame,
        "re-encoding differs"
    );
    fx.encoder.frame_counter += 1;
    fx
}

/// The Kaifa meter's segmentation: 245 APDU bytes per long frame (L = 0xFA), where
/// `Encoder::mbus` fills frames to the M-Bus maximum (L = 0xFF).
const EVN_SEGMENT: usize = 245;

/// An EVN frame as the meter sends it: encryption only, two long frames CI 0x00, 0x11.
fn evn_frame(enc: &mut Encoder, plain: &[u8]) -> Vec<u8> {
    encode::mbus_frames_with(&enc.cipher(plain, false), EVN_SEGMENT)
}

fn smarty() -> Fixture {
    let frame = read("dsmr/smarty_nexxtlab_encrypted.bin");
    assert_eq!(frame.len(), 647, "smarty_nexxtlab_encrypted.bin changed");
    let mut fx = Fixture::new(frame.clone(), frame, &key(SMARTY_KEY), true);
    let mut enc = fx.encoder.clone();
    assert_eq!(enc.smarty(&fx.plain), fx.frame, "Encoder::smarty differs");
    fx.encoder.frame_counter += 1;
    fx
}

fn bench(c: &mut Criterion) {
    let mut evn = evn();
    let mut smarty = smarty();
    let evn_keys = || Keys {
        encryption: Some(key(EVN_KEY)),
        authentication: None,
    };
    let smarty_keys = || Keys {
        encryption: Some(key(SMARTY_KEY)),
        authentication: Some(LUXEMBOURG_AUTHENTICATION_KEY),
    };

    // Every row decodes what the sources assert, before any timing.
    decode_once(evn_keys(), &evn.frame, check_evn);
    decode_once(
        evn_keys(),
        &evn_frame(&mut evn.encoder.clone(), &evn.plain),
        check_evn,
    );
    decode_once(smarty_keys(), &smarty.frame, check_smarty);
    decode_once(
        smarty_keys(),
        &smarty.encoder.clone().smarty(&smarty.plain),
        check_smarty,
    );
    check_evn(&cosem::decode(&evn.plain, Dialect::DlmsMbus).unwrap());

    // The whole path: M-Bus framing, reassembly, frame-counter check, AES-CTR, A-XDR and
    // COSEM decoding into a `Telegram`, through the public stream decoder.
    let mut g = c.benchmark_group("evn");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decoder", |b| {
        let mut d = Decoder::with_keys(evn_keys());
        b.iter_batched_ref(
            || evn_frame(&mut evn.encoder, &evn.plain),
            |frame| {
                d.push(frame);
                while let Some(r) = d.next() {
                    let r = r.unwrap();
                    debug_assert!(r.warning.is_none());
                    black_box(r);
                }
            },
            BatchSize::SmallInput,
        )
    });
    // Components.
    let (ct, _) = cipher::parse(&evn.apdu).unwrap();
    let mut out = Vec::with_capacity(evn.plain.len());
    g.bench_function("aes-ctr", |b| {
        b.iter(|| evn.cipher.decrypt_unverified(black_box(&ct), &mut out))
    });
    g.bench_function("cosem-parse", |b| {
        b.iter(|| black_box(cosem::parse_notification(black_box(&evn.plain)).unwrap()))
    });
    g.bench_function("cosem-decode", |b| {
        b.iter(|| black_box(cosem::decode(black_box(&evn.plain), Dialect::DlmsMbus).unwrap()))
    });
    g.bench_function("mbus-frame", |b| {
        b.iter(|| {
            let mut rest = black_box(&evn.frame[..]);
            while let Framing::Frame(f, n) = mbus::frame(rest) {
                black_box(f);
                rest = &rest[n..];
            }
        })
    });
    g.bench_function("decoder-new", |b| {
        b.iter(|| black_box(Decoder::with_keys(evn_keys())))
    });
    g.finish();

    let mut g = c.benchmark_group("smarty");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decoder", |b| {
        let mut d = Decoder::with_keys(smarty_keys());
        b.iter_batched_ref(
            || smarty.encoder.smarty(&smarty.plain),
            |frame| {
                d.push(frame);
                while let Some(r) = d.next() {
                    let r = r.unwrap();
                    debug_assert!(r.warning.is_none());
                    black_box(r);
                }
            },
            BatchSize::SmallInput,
        )
    });
    let (ct, _) = cipher::parse(&smarty.apdu).unwrap();
    let mut out = Vec::with_capacity(smarty.plain.len());
    g.bench_function("aes-gcm", |b| {
        b.iter(|| {
            assert!(smarty.cipher.decrypt_verified(
                black_box(&ct),
                &LUXEMBOURG_AUTHENTICATION_KEY,
                &mut out
            ))
        })
    });
    // The decrypted DSMR text: framing, CRC and parse (what the decoder does after AES).
    g.bench_function("dsmr-parse", |b| {
        let mut f = DsmrFramer::new();
        b.iter(|| {
            f.push(black_box(&smarty.plain));
            while let Some(ev) = f.next() {
                if let FrameEvent::Telegram(raw) = ev {
                    black_box(dsmr::parse(&raw).unwrap());
                }
            }
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Short defaults for a 2-core machine; command-line flags override them.
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
