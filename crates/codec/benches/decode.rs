//! Decode speed on one realistic telegram, side by side with the `dsmr5` crate.
//!
//! The telegram is `bench/telegram-913.txt` at the repository root: a 913-byte DSMR 5.0
//! three-phase telegram with a gas meter on M-Bus channel 1 and two power-failure log
//! entries, in the exact formats of the P1 companion standard 5.0.2 (so that `dsmr5`,
//! which checks field widths, accepts it too). The same file is what
//! `bench/decode.sh` feeds the Python `dsmr-parser`, so all rows measure the same bytes.
//!
//! Run with `bench/decode.sh` for the side-by-side table, or directly:
//! `cargo bench -p meterkast-codec --bench decode -- --measurement-time 3 --warm-up-time 1`.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterkast_codec::crc::crc16_arc;
use meterkast_codec::dsmr::{self, DsmrFramer, FrameEvent};
use meterkast_codec::{Decoder, Obis, Reading, Telegram};

/// The one source of truth for the benchmark telegram (also read by the Python bench).
static TELEGRAM: &[u8] = include_bytes!("../../../bench/telegram-913.txt");

/// Checks the fixture and that every decoder under test accepts it and reads the
/// same values, so that no row measures an early error exit.
fn check_fixture() {
    assert_eq!(
        TELEGRAM.len(),
        913,
        "bench/telegram-913.txt must be 913 bytes"
    );
    let bang = TELEGRAM.iter().position(|&b| b == b'!').unwrap();
    let stated = u16::from_str_radix(
        std::str::from_utf8(&TELEGRAM[bang + 1..bang + 5]).unwrap(),
        16,
    )
    .unwrap();
    assert_eq!(
        crc16_arc(&TELEGRAM[..=bang]),
        stated,
        "bench/telegram-913.txt has a wrong CRC"
    );

    // Ours: framer + parse.
    let mut f = DsmrFramer::new();
    f.push(TELEGRAM);
    let Some(FrameEvent::Telegram(raw)) = f.next() else {
        panic!("framer did not yield the telegram")
    };
    assert_eq!(raw.raw.len(), 913);
    let t = dsmr::parse(&raw).expect("our parser rejects the bench telegram");
    check_ours(&t);

    // Ours: the stream decoder.
    let mut d = Decoder::new();
    d.push(TELEGRAM);
    let frame = d
        .next()
        .unwrap()
        .expect("our decoder rejects the bench telegram");
    check_ours(&frame.telegram);

    // dsmr5.
    let state = dsmr5_decode(TELEGRAM);
    assert_eq!(state.meterreadings[0].to, Some(12345.678));
    assert_eq!(state.lines[2].voltage, Some(232.1));
    let (_, gas) = state.slaves[0].meter_reading.as_ref().unwrap();
    assert_eq!(*gas, 4567.891);
}

fn check_ours(t: &Telegram<'_>) {
    assert_eq!(t.objects.len(), 35);
    let r = Reading::from_telegram(t);
    assert_eq!(r.total_power_import_t1_kwh, Some(12345.678));
    assert_eq!(r.active_voltage_l3_v, Some(232.1));
    assert_eq!(r.total_gas_m3, Some(4567.891));
    assert!(t.get(Obis::new(1, 0, 99, 97, 0)).is_some());
}

/// `dsmr5`'s whole path: its `Reader` frames the byte stream into a `Readout`,
/// `to_telegram` checks the CRC, and `State` parses every object into typed values.
fn dsmr5_decode(bytes: &[u8]) -> dsmr5::state::State {
    let mut reader = dsmr5::Reader::new(bytes.iter().map(|&b| Ok::<u8, Infallible>(b)));
    let readout = reader.next().unwrap().unwrap();
    let telegram = readout
        .to_telegram()
        .expect("dsmr5 rejects the bench telegram");
    dsmr5::state::State::try_from(&telegram).expect("dsmr5 cannot parse the bench telegram")
}

fn bench(c: &mut Criterion) {
    check_fixture();

    let mut g = c.benchmark_group("ours");
    g.throughput(Throughput::Elements(1));
    g.bench_function("frame+crc+parse", |b| {
        let mut f = DsmrFramer::new();
        b.iter(|| {
            f.push(black_box(TELEGRAM));
            while let Some(ev) = f.next() {
                if let FrameEvent::Telegram(raw) = ev {
                    black_box(dsmr::parse(&raw).unwrap());
                }
            }
        })
    });
    g.bench_function("frame+crc+parse+reading", |b| {
        let mut f = DsmrFramer::new();
        b.iter(|| {
            f.push(black_box(TELEGRAM));
            while let Some(ev) = f.next() {
                if let FrameEvent::Telegram(raw) = ev {
                    let t = dsmr::parse(&raw).unwrap();
                    black_box(Reading::from_telegram(&t));
                }
            }
        })
    });
    g.bench_function("decoder", |b| {
        let mut d = Decoder::new();
        b.iter(|| {
            d.push(black_box(TELEGRAM));
            while let Some(r) = d.next() {
                black_box(r.unwrap());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("dsmr5");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| {
        b.iter(|| black_box(dsmr5_decode(black_box(TELEGRAM))))
    });
    g.finish();

    let body = &TELEGRAM[..=TELEGRAM.iter().position(|&b| b == b'!').unwrap()];
    let mut g = c.benchmark_group("crc16_arc");
    g.throughput(Throughput::Elements(1));
    g.bench_function("telegram", |b| b.iter(|| crc16_arc(black_box(body))));
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
