//! Meter layouts decoded from their public descriptions, on frames built here byte by
//! byte: the Sagemcom T210-D's M-Bus segment whose length byte wrapped around (Netz NÖ /
//! EVN; esphome-dlms-meter #12 and #17, amsreader-firmware #155), the positional lists
//! of Austrian IMx50 / AM550 meters (Wiener Netze, Kärnten Netz) and of Slovenian
//! AM550 meters (Elektro Ljubljana); and the rule that a frame from which no reading
//! comes is rejected as an unknown layout. Each with truncation, garbage and wrong keys.

use meterkast_codec::dlms::encode::{self, Encoder, Layout};
use meterkast_codec::{Decimal, Decoder, Keys, Obis, Reading, Rejection, Telegram, Timestamp};
use meterkast_codec::{Object, Value};
use std::borrow::Cow;

const KEY: [u8; 16] = *b"meterkast-test-k";
const WRONG: [u8; 16] = *b"meterkast-test-x";

fn keys(k: Option<[u8; 16]>) -> Keys {
    Keys {
        encryption: k,
        authentication: None,
    }
}

/// What a decoder made of `input` fed in reads of `chunk` bytes, then ended.
struct Out {
    telegrams: Vec<Telegram<'static>>,
    rejections: Vec<Rejection>,
}

fn decode(k: Option<[u8; 16]>, input: &[u8], chunk: usize) -> Out {
    let mut d = Decoder::with_keys(keys(k));
    let mut out = Out {
        telegrams: vec![],
        rejections: vec![],
    };
    let mut drain = |d: &mut Decoder| {
        while let Some(r) = d.next() {
            match r {
                Ok(x) => out.telegrams.push(x.telegram.into_owned()),
                Err(e) => out.rejections.push(e),
            }
        }
    };
    for c in input.chunks(chunk.max(1)) {
        d.push(c);
        drain(&mut d);
    }
    d.finish();
    drain(&mut d);
    out
}

fn hex_line(bytes: &[u8]) -> Vec<u8> {
    let mut s: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    s.push('\n');
    s.into_bytes()
}

/// A-XDR written as these meters write it (double-long-unsigned registers).
struct Axdr(Vec<u8>);

impl Axdr {
    fn structure(n: u8) -> Axdr {
        Axdr(vec![0x02, n])
    }
    fn dlu(mut self, v: u32) -> Axdr {
        self.0.push(0x06);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn octets(mut self, b: &[u8]) -> Axdr {
        self.0.extend_from_slice(&[0x09, b.len() as u8]);
        self.0.extend_from_slice(b);
        self
    }
    fn enumerated(mut self, v: u8) -> Axdr {
        self.0.extend_from_slice(&[0x16, v]);
        self
    }
}

/// 2024-05-07 21:11:17 CEST (deviation -120, summer time), as the meters send it.
const DATE_TIME: [u8; 12] = [0x07, 0xE8, 5, 7, 2, 21, 11, 17, 0x00, 0xFF, 0x88, 0x80];
const INSTANT: Timestamp = Timestamp(1_715_109_077);

/// A data-notification with the date-time above and `body`.
fn notification(body: Axdr) -> Vec<u8> {
    let mut apdu = vec![0x0F, 0x00, 0x03, 0xD7, 0x85, 0x0C];
    apdu.extend_from_slice(&DATE_TIME);
    apdu.extend_from_slice(&body.0);
    apdu
}

fn number<'t>(t: &'t Telegram<'_>, o: Obis) -> (Decimal, Option<&'t str>) {
    t.get(o)
        .and_then(Value::number)
        .unwrap_or_else(|| panic!("{o:?} missing in {:?}", t.objects))
}

fn el(c: u8, d: u8, e: u8) -> Obis {
    Obis::new(1, 0, c, d, e)
}

fn only_rejection(out: &Out) -> &Rejection {
    assert!(out.telegrams.is_empty(), "{:?}", out.telegrams);
    assert_eq!(out.rejections.len(), 1, "{:?}", out.rejections);
    &out.rejections[0]
}

// --- Sagemcom T210-D: the first M-Bus segment of 257 bytes says L = 01 -------------

/// The registers the EVN T210-D sends (Netz NÖ's customer interface document).
fn evn_objects() -> Vec<Object<'static>> {
    let n = |c, d, m: i64, s: u8, unit: &'static str| Object {
        obis: el(c, d, 0),
        value: Value::Number {
            value: Decimal::new(m, s),
            unit: (!unit.is_empty()).then_some(Cow::Borrowed(unit)),
        },
    };
    vec![
        Object {
            obis: Obis::new(0, 0, 1, 0, 0),
            value: Value::Time(Some(INSTANT)),
        },
        n(1, 8, 6_842_204, 0, "Wh"),
        n(2, 8, 6_430_217, 0, "Wh"),
        n(1, 7, 0, 0, "W"),
        n(2, 7, 2088, 0, "W"),
        n(32, 7, 2373, 1, "V"),
        n(52, 7, 2369, 1, "V"),
        n(72, 7, 2361, 1, "V"),
        n(31, 7, 292, 2, "A"),
        n(51, 7, 301, 2, "A"),
        n(71, 7, 292, 2, "A"),
        n(13, 7, 991, 3, ""),
        Object {
            obis: Obis::new(0, 0, 96, 1, 0),
            value: Value::Text(Cow::Borrowed("1SAG1100000292")),
        },
    ]
}

/// The T210-D's two segments: 257 bytes of user data first (`68 01 01 68`), the rest
/// after; and the objects they carry.
fn t210d_frames() -> (Vec<u8>, Vec<Object<'static>>) {
    let mut objects = evn_objects();
    // Pad the meter number until the ciphered APDU needs a second segment.
    let mut enc = Encoder::new(&KEY, None, *b"SAGY\x05\xE6\xDB\xE2", 0x0039_86B8);
    loop {
        let apdu = encode::notification(0x8000_0001, Some(INSTANT), &objects, Layout::Flat);
        if apdu.len() + 18 > encode::MAX_WRAPPED_SEGMENT {
            let ciphered = enc.cipher(&apdu, false);
            return (encode::mbus_frames_with(&ciphered, 252), objects);
        }
        let Value::Text(id) = &mut objects.last_mut().unwrap().value else {
            unreachable!()
        };
        id.to_mut().push('0');
    }
}

#[test]
fn t210d_segments_whose_length_wrapped_around_decode_exactly() {
    let (frames, objects) = t210d_frames();
    assert_eq!(frames[..4], [0x68, 0x01, 0x01, 0x68], "the T210-D's shape");
    assert_eq!(frames[4 + 257 + 1], 0x16, "stop byte after 257 bytes");
    assert_eq!(frames[263], 0x68, "the second segment follows");
    for chunk in [1, 7, 262, 263, 264, 4096] {
        let out = decode(Some(KEY), &frames, chunk);
        assert!(out.rejections.is_empty(), "{chunk}: {:?}", out.rejections);
        assert_eq!(out.telegrams.len(), 1, "{chunk}");
        let t = &out.telegrams[0];
        assert_eq!(t.objects, objects, "{chunk}");
        assert_eq!(t.timestamp, Some(INSTANT));
        assert_eq!(t.dialect.as_str(), "dlms-mbus");
        let s = t.security.as_ref().unwrap();
        assert_eq!(s.frame_counter, 0x0039_86B8);
        assert!(!s.authenticated, "encryption only");
        let r = Reading::from_telegram(t);
        assert_eq!(r.total_power_import_kwh, Some(6842.204));
        assert_eq!(r.active_power_w, Some(-2088.0));
    }
    // As hex text, one line per segment or both on one line.
    let mut text = hex_line(&frames[..263]);
    text.extend(hex_line(&frames[263..]));
    text.extend(hex_line(&frames));
    assert_eq!(decode(Some(KEY), &text, 64).telegrams.len(), 2);
}

#[test]
fn t210d_without_the_right_key_says_so_and_names_the_meter() {
    let (frames, _) = t210d_frames();
    let r = only_rejection(&decode(None, &frames, 100)).clone();
    assert_eq!(r.cause, "no_key");
    assert!(r.message.contains("SAG5905E6DBE2"), "{}", r.message);
    let r = only_rejection(&decode(Some(WRONG), &frames, 100)).clone();
    assert_eq!(r.cause, "key");
    assert!(r.message.contains("SAG5905E6DBE2"), "{}", r.message);
}

#[test]
fn t210d_damage_and_truncation_are_rejected_and_the_next_frame_still_decodes() {
    let (frames, objects) = t210d_frames();
    // A byte damaged inside the long segment: its checksum (over all 257 bytes) fails.
    let mut damaged = frames.clone();
    damaged[200] ^= 0x01;
    let out = decode(Some(KEY), &damaged, 4096);
    assert!(out.telegrams.is_empty());
    assert_eq!(out.rejections[0].cause, "checksum", "{:?}", out.rejections);
    // Then a good frame: decoded.
    damaged.extend_from_slice(&frames);
    let out = decode(Some(KEY), &damaged, 4096);
    assert_eq!(out.telegrams.len(), 1, "{:?}", out.rejections);
    assert_eq!(out.telegrams[0].objects, objects);
    // Cut short, as a hex line: a truncation, never a frame.
    for cut in [4, 5, 100, 262, 263 + 10] {
        let out = decode(Some(KEY), &hex_line(&frames[..cut]), 4096);
        assert!(out.telegrams.is_empty(), "{cut}");
        assert!(
            out.rejections
                .iter()
                .any(|r| matches!(r.cause, "truncated" | "syntax")),
            "{cut}: {:?}",
            out.rejections
        );
    }
    // A megabyte of `68 01 01 68` starts, then the frame: the starts are noise (no
    // stop byte 257 bytes on), the frame decodes, and the buffer stays bounded.
    let mut noise: Vec<u8> = [0x68, 0x01, 0x01, 0x68].repeat(1 << 18);
    noise.extend_from_slice(&frames);
    let mut d = Decoder::with_keys(keys(Some(KEY)));
    let mut got = 0;
    for c in noise.chunks(4096) {
        d.push(c);
        assert!(d.buffered() < 64 * 1024, "{}", d.buffered());
        while let Some(r) = d.next() {
            got += usize::from(r.is_ok());
        }
    }
    assert_eq!(got, 1);
}

// --- Austria, IMx50 / AM550: Kärnten Netz's list after the push setup's name --------

/// Kärnten Netz's layout (its customer interface table, as in
/// Andre-Schuiki/esphome_im350 `docs/images/data_output_customer_interface.png`, and
/// the plaintexts logged in amsreader-firmware#787): the push setup `0-6:25.9.0`, the
/// meter number, time, date, +A, −A, +R, −R, +P, −P, and the customer message text
/// and code.
fn kaernten(registers: [u32; 6], with_message: bool) -> Vec<u8> {
    let mut b = Axdr::structure(if with_message { 12 } else { 10 })
        .octets(&[0, 6, 25, 9, 0, 255])
        .octets(b"1121378381199")
        .octets(&[21, 11, 17, 0])
        .octets(&[0x07, 0xE8, 5, 7, 2]);
    for r in registers {
        b = b.dlu(r);
    }
    if with_message {
        b = b.octets(b"").octets(b"");
    }
    notification(b)
}

fn ciphered_hdlc(apdu: &[u8]) -> Vec<u8> {
    let mut enc = Encoder::new(&KEY, None, *b"ISKit\x00\x8F\x01", 251_780);
    encode::hdlc_frames(&enc.cipher(apdu, false), 2000)
}

#[test]
fn kaernten_imx50_list_decodes_every_register() {
    let regs = [14_370_048, 420_837, 1_455_864, 2_293_936, 9, 0];
    for with_message in [true, false] {
        let frame = ciphered_hdlc(&kaernten(regs, with_message));
        for chunk in [1, 13, 4096] {
            let out = decode(Some(KEY), &frame, chunk);
            assert!(out.rejections.is_empty(), "{:?}", out.rejections);
            let t = &out.telegrams[0];
            let wh = |v| (Decimal::new(v, 0), Some("Wh"));
            let varh = |v| (Decimal::new(v, 0), Some("varh"));
            assert_eq!(number(t, el(1, 8, 0)), wh(14_370_048));
            assert_eq!(number(t, el(2, 8, 0)), wh(420_837));
            assert_eq!(number(t, el(3, 8, 0)), varh(1_455_864));
            assert_eq!(number(t, el(4, 8, 0)), varh(2_293_936));
            assert_eq!(number(t, el(1, 7, 0)), (Decimal::new(9, 0), Some("W")));
            assert_eq!(number(t, el(2, 7, 0)), (Decimal::new(0, 0), Some("W")));
            assert_eq!(
                t.get(Obis::new(0, 0, 96, 1, 0)).and_then(Value::as_text),
                Some("1121378381199")
            );
            assert!(
                t.get(Obis::new(0, 6, 25, 9, 0)).is_none(),
                "the push setup's name is not a value"
            );
            assert_eq!(
                t.get(Obis::new(0, 0, 96, 13, 0)).is_some(),
                with_message,
                "the customer message"
            );
            assert_eq!(t.timestamp, Some(INSTANT));
            let r = Reading::from_telegram(t);
            assert_eq!(r.total_power_import_kwh, Some(14_370.048));
            assert_eq!(r.total_power_export_kwh, Some(420.837));
            assert_eq!(r.active_power_w, Some(9.0));
        }
    }
}

#[test]
fn kaernten_list_of_another_shape_is_an_unknown_layout_not_an_empty_reading() {
    // +P sent as a string: not the documented layout.
    let mut b = Axdr::structure(12)
        .octets(&[0, 6, 25, 9, 0, 255])
        .octets(b"1121378381199")
        .octets(&[21, 11, 17, 0])
        .octets(&[0x07, 0xE8, 5, 7, 2]);
    for r in [1, 2, 3, 4] {
        b = b.dlu(r);
    }
    let b = b.octets(b"9").dlu(0).octets(b"").octets(b"");
    let out = decode(Some(KEY), &ciphered_hdlc(&notification(b)), 4096);
    let r = only_rejection(&out);
    assert_eq!(r.cause, "unknown_layout");
    assert!(r.message.contains("capture"), "{}", r.message);
}

#[test]
fn kaernten_frame_with_a_wrong_key_or_damage_is_rejected() {
    let frame = ciphered_hdlc(&kaernten([1, 2, 3, 4, 5, 6], true));
    assert_eq!(
        only_rejection(&decode(Some(WRONG), &frame, 64)).cause,
        "key"
    );
    assert_eq!(only_rejection(&decode(None, &frame, 64)).cause, "no_key");
    let mut bad = frame.clone();
    bad[40] ^= 0x80;
    assert_eq!(
        only_rejection(&decode(Some(KEY), &hex_line(&bad), 64)).cause,
        "checksum"
    );
    let out = decode(Some(KEY), &hex_line(&frame[..frame.len() - 3]), 64);
    assert!(out.telegrams.is_empty());
    assert_eq!(out.rejections.len(), 1, "{:?}", out.rejections);
}

// --- Austria, IMx50 / AM550: Wiener Netze's list after a date-time ------------------

/// Wiener Netze's layout (decoders published for its customer interface): a
/// date-time, then +A, −A, +R, −R, +P, −P and, on later firmware, +Q, −Q.
fn wiener_netze(registers: &[u32]) -> Vec<u8> {
    let mut b = Axdr::structure(1 + registers.len() as u8).octets(&DATE_TIME);
    for r in registers {
        b = b.dlu(*r);
    }
    notification(b)
}

#[test]
fn wiener_netze_list_decodes_with_and_without_reactive_power() {
    let all = [4_490_428, 1342, 65_611, 1_843_441, 374, 0, 0, 244];
    let codes = [
        el(1, 8, 0),
        el(2, 8, 0),
        el(3, 8, 0),
        el(4, 8, 0),
        el(1, 7, 0),
        el(2, 7, 0),
        el(3, 7, 0),
        el(4, 7, 0),
    ];
    let units = ["Wh", "Wh", "varh", "varh", "W", "W", "var", "var"];
    for n in [6, 8] {
        let out = decode(Some(KEY), &ciphered_hdlc(&wiener_netze(&all[..n])), 4096);
        assert!(out.rejections.is_empty(), "{:?}", out.rejections);
        let t = &out.telegrams[0];
        assert_eq!(t.objects.len(), 1 + n, "{:?}", t.objects);
        assert_eq!(
            t.get(Obis::new(0, 0, 1, 0, 0)),
            Some(&Value::Time(Some(INSTANT)))
        );
        for i in 0..n {
            assert_eq!(
                number(t, codes[i]),
                (Decimal::new(i64::from(all[i]), 0), Some(units[i]))
            );
        }
        assert_eq!(t.get(el(3, 7, 0)).is_some(), n == 8);
        assert_eq!(
            Reading::from_telegram(t).total_power_import_kwh,
            Some(4490.428)
        );
    }
    // Seven registers is neither firmware's list.
    let out = decode(Some(KEY), &ciphered_hdlc(&wiener_netze(&all[..7])), 4096);
    assert_eq!(only_rejection(&out).cause, "unknown_layout");
}

// --- Slovenia, Iskraemeco AM550: the 15-minute energy list ---------------------------

/// Elektro Ljubljana's 15-minute list (as amsreader-firmware decodes it; captures in
/// its `test/payloads/iskraemeco/gh956-2.hex`, `gh615-2.hex`): the list identifier, the
/// meter number, the disconnect control, the tariff, 1.8.0, 1.8.1, 1.8.2, 2.8.0, 2.8.1,
/// 2.8.2, 3.8.0, 4.8.0.
fn slovenian_energy(tariff: &[u8], registers: [u32; 8]) -> Vec<u8> {
    let mut b = Axdr::structure(12)
        .octets(b"ISK1030792283067")
        .octets(b"16820006")
        .enumerated(1)
        .octets(tariff);
    for r in registers {
        b = b.dlu(r);
    }
    encode::hdlc_frames(&notification(b), 2000)
}

#[test]
fn slovenian_energy_list_decodes_tariffs_and_counters() {
    let regs = [
        471_547, 210_163, 261_384, 44_620, 28_535, 16_085, 20_507, 313_837,
    ];
    let frame = slovenian_energy(b"0002", regs);
    for input in [frame.clone(), hex_line(&frame)] {
        let out = decode(None, &input, 5);
        assert!(out.rejections.is_empty(), "{:?}", out.rejections);
        let t = &out.telegrams[0];
        let codes = [
            el(1, 8, 0),
            el(1, 8, 1),
            el(1, 8, 2),
            el(2, 8, 0),
            el(2, 8, 1),
            el(2, 8, 2),
            el(3, 8, 0),
            el(4, 8, 0),
        ];
        for (code, v) in codes.iter().zip(regs) {
            let unit = if code.c <= 2 { "Wh" } else { "varh" };
            assert_eq!(
                number(t, *code),
                (Decimal::new(i64::from(v), 0), Some(unit))
            );
        }
        let r = Reading::from_telegram(t);
        assert_eq!(r.active_tariff, Some(2));
        assert_eq!(r.total_power_import_kwh, Some(471.547));
        assert_eq!(r.total_power_import_t2_kwh, Some(261.384));
        assert_eq!(r.total_power_export_t1_kwh, Some(28.535));
        assert_eq!(t.timestamp, Some(INSTANT));
    }
}

#[test]
fn slovenian_lists_of_unknown_shape_or_damaged_are_rejected() {
    // The tariff as a number: no Slovenian layout has that.
    let mut b = Axdr::structure(12)
        .octets(b"ISK1030792283067")
        .octets(b"16820006")
        .enumerated(1)
        .dlu(2);
    for r in 0..8 {
        b = b.dlu(r);
    }
    let out = decode(None, &encode::hdlc_frames(&notification(b), 2000), 4096);
    assert_eq!(only_rejection(&out).cause, "unknown_layout");
    // An unknown list identifier.
    let mut b = Axdr::structure(3).octets(b"XYZ_001");
    b = b.dlu(1).dlu(2);
    let out = decode(None, &encode::hdlc_frames(&notification(b), 2000), 4096);
    let r = only_rejection(&out);
    assert_eq!(r.cause, "unknown_layout");
    assert!(r.message.contains("capture"), "{}", r.message);
    // Damaged and cut frames.
    let frame = slovenian_energy(b"0001", [1; 8]);
    let mut bad = frame.clone();
    bad[30] ^= 0x04;
    assert_eq!(
        only_rejection(&decode(None, &hex_line(&bad), 64)).cause,
        "checksum"
    );
    // (Two bytes are too short to be told from noise.)
    for cut in [5, 20, frame.len() - 2] {
        let out = decode(None, &hex_line(&frame[..cut]), 64);
        assert!(out.telegrams.is_empty(), "{cut}");
        assert_eq!(out.rejections.len(), 1, "{cut}: {:?}", out.rejections);
    }
}

// --- The general rule ----------------------------------------------------------------

#[test]
fn a_frame_without_any_reading_is_an_unknown_layout_asking_for_a_capture() {
    // OBIS-coded, but only identifiers: nothing a reading is made of.
    let ids = [
        Object {
            obis: Obis::new(0, 0, 96, 1, 0),
            value: Value::Text(Cow::Borrowed("1KFM0200234804")),
        },
        Object {
            obis: Obis::new(0, 0, 42, 0, 0),
            value: Value::Text(Cow::Borrowed("KFM1200200234804")),
        },
    ];
    for layout in [Layout::Flat, Layout::Nested] {
        let apdu = encode::notification(1, Some(INSTANT), &ids, layout);
        let out = decode(None, &encode::hdlc_frames(&apdu, 2000), 4096);
        let r = only_rejection(&out);
        assert_eq!(r.cause, "unknown_layout");
        assert!(r.message.starts_with("unknown layout"), "{}", r.message);
        assert!(r.message.contains("capture"), "{}", r.message);
    }
    // One register is enough to be a reading.
    let mut one = ids.to_vec();
    one.push(Object {
        obis: el(1, 7, 0),
        value: Value::Number {
            value: Decimal::new(714, 0),
            unit: Some(Cow::Borrowed("W")),
        },
    });
    let apdu = encode::notification(1, Some(INSTANT), &one, Layout::Flat);
    let out = decode(None, &encode::hdlc_frames(&apdu, 2000), 4096);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    assert_eq!(out.telegrams[0].objects, one);
}
