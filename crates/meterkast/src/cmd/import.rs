//! `meterkast import`: load captures into the store, with the same roll-ups as live
//! ingestion.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use meterkast_codec::Decoder;

use crate::pipeline::{effective_time, frame_json, incoming, meter_key};
use crate::store::ingest::Ingestor;
use crate::store::sqlite::SqliteBackend;

/// Load raw meter captures (any dialect, any size) into the database.
///
/// Files are streamed, never read whole; every accepted telegram is stored with the
/// same roll-ups (quarter-hour, hour, day, month) live ingestion makes. Telegrams the
/// store already holds (same meter, same or older time) are skipped, so importing a
/// file twice changes nothing.
///
/// Examples:
///   meterkast import --db meterkast.db capture-2026-01.txt capture-2026-02.txt
///   meterkast simulate --dialect dsmr5 --count 86400 --start 2026-01-01T00:00:00Z > day.txt
///   meterkast import day.txt
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ImportArgs {
    /// Capture files with raw meter output.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The database file.
    #[arg(long, env = "MK_DB", default_value = "meterkast.db")]
    pub db: PathBuf,
    /// Telegrams per transaction.
    #[arg(long, default_value_t = 100_000, hide = true)]
    pub batch: usize,
}

/// Runs the import; returns the process exit code.
pub fn run(args: ImportArgs) -> Result<i32> {
    let mut total_bytes = 0u64;
    for f in &args.files {
        total_bytes += std::fs::metadata(f)
            .with_context(|| format!("cannot read {} (does it exist?)", f.display()))?
            .len();
    }
    let backend = SqliteBackend::open(&args.db)?;
    let mut ingestor = Ingestor::new(backend)?;
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("a valid template"),
    );
    let started = Instant::now();
    let (mut accepted, mut rejected) = (0u64, HashMap::<&'static str, u64>::new());
    let mut since_commit = 0usize;
    let mut last_raw: HashMap<String, (Vec<u8>, i64)> = HashMap::new();
    let mut buf = vec![0u8; 1 << 20];
    for path in &args.files {
        let name = path.display().to_string();
        let received = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?;
        let mut decoder = Decoder::new();
        let mut eof = false;
        while !eof {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("{name}: read failed"))?;
            if n == 0 {
                decoder.finish();
                eof = true;
            } else {
                decoder.push(&buf[..n]);
                bar.inc(n as u64);
            }
            while let Some(ev) = decoder.next() {
                match ev {
                    Ok(frame) => {
                        accepted += 1;
                        let inc = incoming(&name, &frame.telegram, &[], received, false);
                        let key = meter_key(&frame.telegram, &name);
                        match last_raw.get_mut(&key) {
                            Some(e) => {
                                e.0.clear();
                                e.0.extend_from_slice(frame.raw);
                                e.1 = received;
                            }
                            None => {
                                last_raw.insert(key, (frame.raw.to_vec(), received));
                            }
                        }
                        ingestor.add(inc)?;
                        since_commit += 1;
                    }
                    Err(r) => {
                        *rejected.entry(r.cause).or_default() += 1;
                        bar.suspend(|| eprintln!("{name}: rejected ({}): {}", r.cause, r.message));
                    }
                }
            }
            if since_commit >= args.batch || eof {
                commit(&mut ingestor, &mut last_raw)?;
                since_commit = 0;
            }
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let st = &ingestor.stats;
    let mut line = format!(
        "import: {} telegrams accepted, {} stored, {} already stored or out of order, {} rejected",
        accepted,
        st.stored,
        st.duplicates,
        rejected.values().sum::<u64>()
    );
    if !rejected.is_empty() {
        let mut causes: Vec<String> = rejected.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        causes.sort();
        line.push_str(&format!(" ({})", causes.join(", ")));
    }
    line.push_str(&format!(
        " in {secs:.1} s ({:.0} telegrams/s) into {}",
        accepted as f64 / secs.max(1e-9),
        args.db.display()
    ));
    eprintln!("{line}");
    Ok(0)
}

/// Commits, after setting each meter's latest frame from its last raw telegram.
fn commit(
    ingestor: &mut Ingestor<SqliteBackend>,
    last_raw: &mut HashMap<String, (Vec<u8>, i64)>,
) -> Result<()> {
    for (meter, (raw, received)) in last_raw.drain() {
        let mut d = Decoder::new();
        d.push(&raw);
        d.finish();
        if let Some(Ok(f)) = d.next() {
            let ts = effective_time(&f.telegram, received);
            ingestor.set_frame(&meter, frame_json(&f.telegram, &meter, ts), f.raw);
        }
    }
    ingestor.commit()
}
