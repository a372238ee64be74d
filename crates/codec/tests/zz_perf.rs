use meterkast_codec::{Decoder, Keys};
fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}
#[test]
fn perf() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus");
    let evn = unhex(
        &std::fs::read_to_string(format!("{root}/dlms/at_evn_sagemcom_t210d_mbus.hex")).unwrap(),
    );
    let smarty = std::fs::read(format!("{root}/dsmr/smarty_nexxtlab_encrypted.bin")).unwrap();
    let only = std::env::var("ONLY").unwrap_or_default();
    for (name, frame, key) in [
        ("evn", &evn, "A89AE6C225E45130298B3CC3F4D23463"),
        ("smarty", &smarty, "D491470F47126332B07D1923B3504188"),
    ] {
        if !only.is_empty() && only != name {
            continue;
        }
        let mut d = Decoder::with_keys(Keys::from_hex(Some(key), None).unwrap());
        let n = 200_000;
        let t = std::time::Instant::now();
        let mut ok = 0;
        for _ in 0..n {
            d.push(frame);
            while let Some(r) = d.next() {
                if r.is_ok() {
                    ok += 1;
                }
            }
        }
        let el = t.elapsed();
        println!(
            "{name}: {ok} ok, {:.0} frames/s",
            n as f64 / el.as_secs_f64()
        );
    }
}
