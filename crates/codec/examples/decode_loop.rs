//! Decodes the benchmark telegram N times (for profilers: `valgrind --tool=callgrind`).
use meterkast_codec::dsmr::{parse, DsmrFramer, FrameEvent};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let telegram = include_bytes!("../../../bench/telegram-913.txt");
    let mut framer = DsmrFramer::new();
    let mut objects = 0;
    for _ in 0..n {
        framer.push(telegram);
        while let Some(FrameEvent::Telegram(raw)) = framer.next() {
            objects += parse(&raw).map_or(0, |t| t.objects.len());
        }
    }
    println!("{objects}");
}
