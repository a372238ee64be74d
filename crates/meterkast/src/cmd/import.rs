//! `meterkast import`: load captures into the store, with the same roll-ups as live
//! ingestion.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use meterkast_codec::reading::External;
use meterkast_codec::stream::dsmr_start;
use meterkast_codec::{Decoded, Decoder, Reading, Rejection};

use crate::pipeline::{effective_time, frame_json, submeters_json};
use crate::store::ingest::{IncomingRef, Ingestor};
use crate::store::Sample;
use crate::store::{AnyBackend, Location};

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
    /// The store: a SQLite file, or postgres://user:password@host/database[?schema=NAME].
    #[arg(
        long,
        env = "MK_DB",
        default_value = "meterkast.db",
        hide_env_values = true
    )]
    pub db: String,
    /// Telegrams per transaction.
    #[arg(long, default_value_t = 100_000, hide = true)]
    pub batch: usize,
    /// Decode threads for DSMR text files: 0 picks from the cores, 1 decodes on the
    /// importing thread (binary and hex captures always are).
    #[arg(long, default_value_t = 0, hide = true)]
    pub threads: usize,
    /// Bytes per piece of a DSMR text file handed to a decode thread.
    #[arg(long, default_value_t = 4 << 20, hide = true)]
    pub chunk: usize,
}

/// Runs the import; returns the process exit code.
pub fn run(args: ImportArgs) -> Result<i32> {
    let mut total_bytes = 0u64;
    for f in &args.files {
        total_bytes += std::fs::metadata(f)
            .with_context(|| format!("cannot read {} (does it exist?)", f.display()))?
            .len();
    }
    // Warnings such as a meter clock gone wrong go to stderr.
    crate::cmd::run::init_logging();
    let db = Location::parse(&args.db)?;
    let backend = db.open_backend()?;
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("a valid template"),
    );
    let started = Instant::now();
    let mut sink = Sink {
        ingestor: Ingestor::new(backend)?,
        accepted: 0,
        rejected: HashMap::new(),
        since_commit: 0,
        batch: args.batch,
        last_raw: HashMap::new(),
        bar: bar.clone(),
    };
    let threads = match args.threads {
        0 => thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        n => n,
    };
    for path in &args.files {
        let name = path.display().to_string();
        let received = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?;
        if threads > 1 && is_dsmr_text(path)? {
            import_parallel(
                &mut sink,
                file,
                &name,
                received,
                threads,
                args.chunk.max(1024),
            )?;
        } else {
            import_sequential(&mut sink, &mut file, &name, received)?;
        }
    }
    // Readings held to see what follows them: nothing does.
    sink.ingestor.release_held()?;
    sink.commit()?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let st = &sink.ingestor.stats;
    let mut line = format!(
        "import: {} telegrams accepted, {} stored, {} already stored or out of order, {} rejected",
        sink.accepted,
        st.stored,
        st.duplicates,
        sink.rejected.values().sum::<u64>()
    );
    if st.late > 0 {
        line.push_str(&format!(
            "; {} of the stored older than readings stored before (put in between, the roll-ups of their periods recomputed)",
            st.late
        ));
    }
    if st.suspect > 0 {
        line.push_str(&format!(
            "; {} suspect (a meter clock far off: kept as such, not counted)",
            st.suspect
        ));
    }
    if !sink.rejected.is_empty() {
        let mut causes: Vec<String> = sink
            .rejected
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        causes.sort();
        line.push_str(&format!(" ({})", causes.join(", ")));
    }
    line.push_str(&format!(
        " in {secs:.1} s ({:.0} telegrams/s) into {}",
        sink.accepted as f64 / secs.max(1e-9),
        db
    ));
    eprintln!("{line}");
    Ok(0)
}

/// Whether a file is DSMR text: after leading white space, it starts with a DSMR
/// header (`/` and three letters), which switches the stream decoder to DSMR for good.
fn is_dsmr_text(path: &Path) -> Result<bool> {
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .take(4096)
        .read_to_end(&mut head)
        .with_context(|| format!("{}: read failed", path.display()))?;
    let start = head
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(head.len());
    Ok(dsmr_start(&head[start..]) == Some(true))
}

/// Everything the import accumulates across files: the ingestor, the counters and the
/// last raw telegram of each meter (for its latest frame).
struct Sink {
    ingestor: Ingestor<AnyBackend>,
    accepted: u64,
    rejected: HashMap<&'static str, u64>,
    since_commit: usize,
    batch: usize,
    last_raw: HashMap<String, (Vec<u8>, i64)>,
    bar: ProgressBar,
}

impl Sink {
    fn accept(&mut self, name: &str, meter: &str, item: Item) -> Result<()> {
        self.accepted += 1;
        self.ingestor.add_ref(IncomingRef {
            source: name,
            meter,
            dialect: Cow::Borrowed(item.dialect),
            ts: item.sample.ts,
            sample: item.sample,
            submeters: item.submeters,
            frame: None,
            raw: Vec::new(),
            received: None,
        })?;
        self.since_commit += 1;
        Ok(())
    }

    fn reject(&mut self, name: &str, r: &Rejection) {
        *self.rejected.entry(r.cause).or_default() += 1;
        self.bar
            .suspend(|| eprintln!("{name}: rejected ({}): {}", r.cause, r.message));
    }

    fn set_raw(&mut self, meter: &str, raw: &[u8], received: i64) {
        match self.last_raw.get_mut(meter) {
            Some(e) => {
                e.0.clear();
                e.0.extend_from_slice(raw);
                e.1 = received;
            }
            None => {
                self.last_raw
                    .insert(meter.to_string(), (raw.to_vec(), received));
            }
        }
    }

    /// Commits, after setting each meter's latest frame from its last raw telegram.
    fn commit(&mut self) -> Result<()> {
        for (meter, (raw, received)) in self.last_raw.drain() {
            let mut d = Decoder::new();
            d.push(&raw);
            d.finish();
            if let Some(Ok(f)) = d.next() {
                let ts = effective_time(&f.telegram, received);
                self.ingestor
                    .set_frame(&meter, frame_json(&f.telegram, &meter, ts), f.raw);
            }
        }
        self.since_commit = 0;
        self.ingestor.commit()
    }
}

/// One accepted telegram, reduced to what the store takes.
struct Item {
    /// Index into [`Reducer::meters`].
    meter: u32,
    dialect: &'static str,
    sample: Sample,
    submeters: Arc<serde_json::Value>,
}

/// Turns decoded telegrams into [`Item`]s without an allocation per telegram for the
/// meter key or the sub-meters JSON (interned per meter).
struct Reducer {
    received: i64,
    /// The key of meters that send no equipment id (see [`crate::pipeline::meter_key`]).
    unidentified: String,
    index: HashMap<String, u32>,
    meters: Vec<String>,
    /// Per meter: the sub-meters last seen and their JSON.
    submeters: Vec<Option<(Vec<External>, Arc<serde_json::Value>)>>,
}

impl Reducer {
    fn new(source: &str, received: i64) -> Self {
        Reducer {
            received,
            unidentified: format!("unidentified@{source}"),
            index: HashMap::new(),
            meters: Vec::new(),
            submeters: Vec::new(),
        }
    }

    fn item(&mut self, f: &Decoded<'_>) -> Item {
        let t = &f.telegram;
        let key = t.meter_id().unwrap_or(&self.unidentified);
        let meter = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let i = self.meters.len() as u32;
                self.index.insert(key.to_string(), i);
                self.meters.push(key.to_string());
                self.submeters.push(None);
                i
            }
        };
        let ts = effective_time(t, self.received);
        let reading = Reading::from_telegram(t);
        let sample = Sample::from_reading(ts, &reading);
        let slot = &mut self.submeters[meter as usize];
        let same = slot.as_ref().is_some_and(|(ext, _)| {
            ext.len() == reading.external.len()
                && ext.iter().zip(&reading.external).all(|(a, b)| {
                    a.channel == b.channel
                        && a.kind == b.kind
                        && a.unique_id == b.unique_id
                        && a.unit == b.unit
                })
        });
        if !same {
            let json = Arc::new(submeters_json(&reading));
            *slot = Some((reading.external, json));
        }
        let submeters = slot.as_ref().expect("just set").1.clone();
        Item {
            meter,
            dialect: t.dialect.as_str(),
            sample,
            submeters,
        }
    }
}

/// The current path: one decoder over the whole file, on this thread.
fn import_sequential(
    sink: &mut Sink,
    file: &mut std::fs::File,
    name: &str,
    received: i64,
) -> Result<()> {
    let mut reducer = Reducer::new(name, received);
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut eof = false;
    while !eof {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("{name}: read failed"))?;
        if n == 0 {
            decoder.end_of_input();
            eof = true;
        } else {
            decoder.push(&buf[..n]);
            sink.bar.inc(n as u64);
        }
        while let Some(ev) = decoder.next() {
            match ev {
                Ok(frame) => {
                    let item = reducer.item(&frame);
                    let meter = &reducer.meters[item.meter as usize];
                    sink.set_raw(meter, frame.raw, received);
                    sink.accept(name, meter, item)?;
                }
                Err(r) => sink.reject(name, &r),
            }
        }
        if sink.since_commit >= sink.batch || eof {
            sink.commit()?;
        }
    }
    Ok(())
}

/// What a decode worker makes of one piece.
struct Batch {
    data: Vec<u8>,
    /// The piece ends the input.
    last: bool,
    events: Vec<Result<Item, Rejection>>,
    meters: Vec<String>,
    /// The last raw telegram of each meter in the piece, by index into `meters`.
    last_raw: Vec<Option<Vec<u8>>>,
    /// What the decoder was started with and ended with.
    crc_seen_in: bool,
    crc_seen_out: bool,
    /// Something other than a telegram with a CRC came before the first telegram with
    /// one: with `crc_seen_in` false, the outcome may differ from a decoder that had
    /// seen a CRC.
    depends_on_crc: bool,
}

/// Decodes a piece with a new decoder, as if it followed its predecessors in one stream.
fn decode_piece(data: Vec<u8>, is_last: bool, crc_seen: bool, name: &str, received: i64) -> Batch {
    let mut reducer = Reducer::new(name, received);
    let mut decoder = Decoder::new();
    decoder.set_dsmr_crc_seen(crc_seen);
    let mut events = Vec::with_capacity(data.len() / 512);
    let mut last_raw: Vec<Option<Vec<u8>>> = Vec::new();
    let mut depends_on_crc = false;
    // Like the sequential path: push, drain, and only then mark the end (a decoder
    // switches to DSMR while draining; an end marked before that would be lost).
    let mut pieces = data.chunks(64 << 10);
    let mut last = false;
    while !last {
        match pieces.next() {
            Some(p) => decoder.push(p),
            None => {
                if is_last {
                    decoder.end_of_input();
                } else {
                    // Every other piece ends right before a telegram's '/': show it,
                    // so that a telegram still open is cut off by it as in one pass
                    // (the '/' itself stays with the next piece).
                    decoder.push(b"/");
                }
                last = true;
            }
        }
        loop {
            let seen_before = decoder.dsmr_crc_seen();
            let Some(ev) = decoder.next() else { break };
            if !seen_before {
                // Only a telegram with a CRC (which sets the flag) is the same either way.
                depends_on_crc |= ev.is_err() || !decoder_flag_after(&ev);
            }
            match ev {
                Ok(frame) => {
                    let item = reducer.item(&frame);
                    let i = item.meter as usize;
                    if last_raw.len() <= i {
                        last_raw.resize(i + 1, None);
                    }
                    let slot = last_raw[i].get_or_insert_with(Vec::new);
                    slot.clear();
                    slot.extend_from_slice(frame.raw);
                    events.push(Ok(item));
                }
                Err(r) => events.push(Err(r)),
            }
        }
    }
    Batch {
        data,
        last: is_last,
        events,
        meters: reducer.meters,
        last_raw,
        crc_seen_in: crc_seen,
        crc_seen_out: decoder.dsmr_crc_seen(),
        depends_on_crc,
    }
}

/// Whether an accepted DSMR telegram carried a CRC (hex digits after its last `!`),
/// the test the decoder uses to set [`Decoder::dsmr_crc_seen`].
fn decoder_flag_after(ev: &Result<Decoded<'_>, Rejection>) -> bool {
    let Ok(d) = ev else { return false };
    d.raw
        .iter()
        .rposition(|&b| b == b'!')
        .and_then(|i| d.raw.get(i + 1))
        .is_some_and(u8::is_ascii_hexdigit)
}

/// The last position in `buf` right before a DSMR telegram start at a line start, if
/// any (never 0).
fn last_cut(buf: &[u8]) -> Option<usize> {
    let mut end = buf.len();
    while let Some(i) = buf[..end].iter().rposition(|&b| b == b'/') {
        if i > 0 && buf[i - 1] == b'\n' && dsmr_start(&buf[i..]) == Some(true) {
            return Some(i);
        }
        end = i;
    }
    None
}

/// DSMR text: a reader cuts the file into pieces at telegram starts, `threads` workers
/// decode them, and this thread stores the results strictly in file order. Memory
/// stays bounded: each worker holds at most one piece waiting, one in work and one
/// done.
fn import_parallel(
    sink: &mut Sink,
    mut file: std::fs::File,
    name: &str,
    received: i64,
    threads: usize,
    chunk: usize,
) -> Result<()> {
    thread::scope(|scope| -> Result<()> {
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for _ in 0..threads {
            let (in_tx, in_rx) = mpsc::sync_channel::<(Vec<u8>, bool)>(1);
            let (out_tx, out_rx) = mpsc::sync_channel::<Batch>(1);
            inputs.push(in_tx);
            outputs.push(out_rx);
            scope.spawn(move || {
                // A CRC this worker saw in an earlier piece holds for its later ones.
                let mut crc_seen = false;
                for (data, last) in in_rx {
                    let b = decode_piece(data, last, crc_seen, name, received);
                    crc_seen |= b.crc_seen_out;
                    if out_tx.send(b).is_err() {
                        break;
                    }
                }
            });
        }
        let reader = scope.spawn(move || -> Result<()> {
            let mut carry: Vec<u8> = Vec::new();
            let mut k = 0usize;
            loop {
                let mut data = std::mem::take(&mut carry);
                data.reserve(chunk);
                let n = (&mut file)
                    .take(chunk as u64)
                    .read_to_end(&mut data)
                    .with_context(|| format!("{name}: read failed"))?;
                let last = n == 0;
                if !last {
                    match last_cut(&data) {
                        Some(cut) => carry = data.split_off(cut),
                        // No telegram start to cut at: read on.
                        None => {
                            carry = data;
                            continue;
                        }
                    }
                }
                if inputs[k % threads].send((data, last)).is_err() {
                    return Ok(());
                }
                k += 1;
                if last {
                    return Ok(());
                }
            }
        });
        let mut crc_seen = false;
        let mut k = 0usize;
        let res = (|| -> Result<()> {
            while let Ok(mut b) = outputs[k % threads].recv() {
                k += 1;
                if crc_seen && !b.crc_seen_in && b.depends_on_crc {
                    // The worker could not know the stream had carried a CRC: decode
                    // the piece again as the one decoder would have.
                    b = decode_piece(std::mem::take(&mut b.data), b.last, true, name, received);
                }
                crc_seen |= b.crc_seen_out;
                for ev in b.events {
                    match ev {
                        Ok(item) => {
                            let meter = &b.meters[item.meter as usize];
                            sink.accept(name, meter, item)?;
                        }
                        Err(r) => sink.reject(name, &r),
                    }
                }
                for (i, raw) in b.last_raw.into_iter().enumerate() {
                    if let Some(raw) = raw {
                        sink.set_raw(&b.meters[i], &raw, received);
                    }
                }
                sink.bar.inc(b.data.len() as u64);
                if sink.since_commit >= sink.batch {
                    sink.commit()?;
                }
            }
            Ok(())
        })();
        // Stop the workers and the reader (on an error, by closing their channels).
        drop(outputs);
        reader
            .join()
            .map_err(|_| anyhow!("{name}: the reader thread panicked"))??;
        res?;
        sink.commit()
    })
}
