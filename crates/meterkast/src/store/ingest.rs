//! Turning accepted readings into what the store keeps, independent of the database:
//! meter identity, duplicate and late telegrams, sane register deltas, the chunks of
//! full-resolution samples, and the additive roll-ups per quarter-hour, hour, day and
//! month. A backend only has to apply the resulting [`WriteBatch`] in one transaction.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Result;

use super::calendar::Step;
use super::sample::{ChunkWriter, Sample, F, N};

/// One accepted reading on its way into the store.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The source it came from (`tcp://…`), for meter-swap detection.
    pub source: String,
    /// The meter's equipment id (or a stand-in derived from the source).
    pub meter: String,
    /// The detected dialect.
    pub dialect: String,
    /// The telegram's time (unix seconds).
    pub ts: i64,
    /// The stored quantities.
    pub sample: Sample,
    /// The sub-meters, as JSON (`[{"channel", "type", "unique_id", "unit"}]`).
    pub submeters: serde_json::Value,
    /// The frame as JSON (`{"timestamp", "reading", "objects", ...}`), for `/api/v1/now`;
    /// bulk imports leave it out and set it once per commit with
    /// [`Ingestor::set_frame`].
    pub frame: Option<String>,
    /// The raw telegram text.
    pub raw: Vec<u8>,
}

/// [`Incoming`] without the per-reading allocations, for bulk imports: the source and
/// meter are borrowed, the dialect is usually static and the sub-meters JSON is shared
/// between the readings of one meter.
#[derive(Clone, Debug)]
pub struct IncomingRef<'a> {
    /// See [`Incoming::source`].
    pub source: &'a str,
    /// See [`Incoming::meter`].
    pub meter: &'a str,
    /// See [`Incoming::dialect`].
    pub dialect: Cow<'static, str>,
    /// See [`Incoming::ts`].
    pub ts: i64,
    /// See [`Incoming::sample`].
    pub sample: Sample,
    /// See [`Incoming::submeters`].
    pub submeters: Arc<serde_json::Value>,
    /// See [`Incoming::frame`].
    pub frame: Option<String>,
    /// See [`Incoming::raw`].
    pub raw: Vec<u8>,
}

/// A meter the store knows.
#[derive(Clone, Debug)]
pub struct MeterRow {
    /// Database id.
    pub id: i64,
    /// Equipment id.
    pub equipment_id: String,
    /// The last stored sample (the baseline for deltas), if any.
    pub last: Option<Sample>,
}

/// What a new meter row holds.
#[derive(Clone, Debug)]
pub struct NewMeter {
    /// Equipment id.
    pub equipment_id: String,
    /// Dialect when first seen.
    pub dialect: String,
    /// Source when first seen.
    pub source: String,
    /// First telegram time.
    pub first_seen: i64,
    /// The meter this one replaced on the same source, if any.
    pub replaces: Option<i64>,
}

/// Additive sums of a roll-up bucket, in stored units (Wh, dm³, MJ, W·samples).
pub const SUMS: &[&str] = &[
    "import_wh",
    "export_wh",
    "import_t1_wh",
    "import_t2_wh",
    "import_t3_wh",
    "import_t4_wh",
    "export_t1_wh",
    "export_t2_wh",
    "export_t3_wh",
    "export_t4_wh",
    "gas_dm3",
    "water_dm3",
    "heat_mj",
    "power_sum_w",
    "samples",
];

/// Stored fields whose deltas are the sums above, in the same order (the first 13).
const DELTA_FIELDS: [F; 13] = [
    F::Import,
    F::Export,
    F::ImportT1,
    F::ImportT2,
    F::ImportT3,
    F::ImportT4,
    F::ExportT1,
    F::ExportT2,
    F::ExportT3,
    F::ExportT4,
    F::Gas,
    F::Water,
    F::Heat,
];

/// Extremes of a roll-up bucket.
pub const EXTREMES: &[&str] = &["power_w", "voltage_l1_dv", "voltage_l2_dv", "voltage_l3_dv"];
const EXTREME_FIELDS: [F; 4] = [F::Power, F::VoltL1, F::VoltL2, F::VoltL3];

/// One bucket's contribution from a batch, merged additively into what is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollup {
    /// See [`SUMS`].
    pub sums: [i64; 15],
    /// Minimum of each of [`EXTREMES`].
    pub min: [Option<i64>; 4],
    /// Maximum of each of [`EXTREMES`].
    pub max: [Option<i64>; 4],
}

impl Rollup {
    /// Folds another contribution into this one.
    pub fn merge(&mut self, o: &Rollup) {
        for (a, b) in self.sums.iter_mut().zip(o.sums) {
            *a += b;
        }
        for i in 0..4 {
            self.min[i] = opt(self.min[i], o.min[i], i64::min);
            self.max[i] = opt(self.max[i], o.max[i], i64::max);
        }
    }
}

fn opt(a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A chunk of full-resolution samples to write (insert or replace).
#[derive(Clone, Debug)]
pub struct ChunkRow {
    /// Meter id.
    pub meter: i64,
    /// First sample's time.
    pub start: i64,
    /// Last sample's time.
    pub end: i64,
    /// Samples in it.
    pub count: i64,
    /// The encoded samples.
    pub data: Vec<u8>,
}

/// The latest state of a meter to write.
#[derive(Clone, Debug)]
pub struct MeterUpdate {
    /// Meter id.
    pub meter: i64,
    /// Last telegram time.
    pub last_seen: i64,
    /// Dialect.
    pub dialect: String,
    /// Sub-meters JSON.
    pub submeters: String,
    /// Latest frame JSON (unchanged when `None`).
    pub frame: Option<String>,
    /// Latest raw telegram (a shared store writes it only with a frame).
    pub raw: Vec<u8>,
    /// The baseline sample for deltas after a restart (a one-sample chunk).
    pub state: Vec<u8>,
}

/// Everything one commit writes.
#[derive(Default, Debug)]
pub struct WriteBatch {
    /// Chunks to insert or replace.
    pub chunks: Vec<ChunkRow>,
    /// Roll-up contributions keyed by (meter, step, bucket start), with the bucket end.
    pub rollups: Vec<((i64, Step, i64), i64, Rollup)>,
    /// Meter state.
    pub meters: Vec<MeterUpdate>,
}

impl WriteBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.rollups.is_empty() && self.meters.is_empty()
    }
}

/// A database the ingestor can write to.
pub trait Backend {
    /// Every known meter with its baseline sample (at start).
    fn load_meters(&mut self) -> Result<Vec<MeterRow>>;
    /// Creates a meter row; returns its id.
    fn create_meter(&mut self, m: &NewMeter) -> Result<i64>;
    /// Applies a batch in one transaction: all or nothing.
    fn apply(&mut self, batch: &WriteBatch) -> Result<()>;
    /// Drops full-resolution samples older than `t` (roll-ups stay); returns chunks removed.
    fn delete_samples_before(&mut self, t: i64) -> Result<u64>;
    /// Whether other processes write the same database at once. Then the ingestor
    /// keeps readings until commit and computes deltas inside
    /// [`commit_shared`](Self::commit_shared) against the baselines stored at that
    /// moment, never against its own (possibly stale) memory.
    fn shared(&self) -> bool {
        false
    }
    /// One commit of a shared store, in one transaction: locks the meter rows of
    /// `readings` (in id order), stores each reading unless already there, then calls
    /// `build` with the locked baselines and what was new, and applies its batch.
    fn commit_shared(
        &mut self,
        readings: &[(i64, Sample)],
        build: &mut dyn FnMut(&Locked) -> WriteBatch,
    ) -> Result<()> {
        let _ = (readings, build);
        anyhow::bail!("this store has a single writer")
    }
}

/// What a shared commit learned inside its transaction, with the meter rows locked.
#[derive(Debug, Default)]
pub struct Locked {
    /// Each locked meter's stored baseline (its latest reading, fields carried forward).
    pub baselines: HashMap<i64, Option<Sample>>,
    /// The (meter, time) of the readings this commit stored; the others were there already.
    pub inserted: HashSet<(i64, i64)>,
    /// For meters with readings in this commit older than every stored one: the
    /// earliest stored reading (when retention has not removed it). The energy between
    /// those readings and it was never counted.
    pub first: HashMap<i64, Sample>,
}

/// Why a reading was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored.
    Stored,
    /// Same or older time than the last stored reading of that meter.
    Duplicate,
}

/// A chunk closes after this many samples or this span, whichever comes first.
const CHUNK_SAMPLES: usize = 240;
const CHUNK_SPAN: i64 = 900;
/// Register deltas across a gap longer than this are not spread (baseline resets).
const MAX_GAP: i64 = 31 * 86400;

struct OpenChunk {
    start: i64,
    end: i64,
    writer: ChunkWriter,
}

/// The latest state of a meter since the last commit; turned into a [`MeterUpdate`]
/// (serialized) only at commit, not for every reading.
struct PendingUpdate {
    last_seen: i64,
    dialect: Cow<'static, str>,
    submeters: Arc<serde_json::Value>,
    frame: Option<String>,
    raw: Vec<u8>,
    /// Set by [`Ingestor::set_frame`]: written whatever [`FRAME_EVERY`] says.
    forced: bool,
}

struct Track {
    id: i64,
    last: Option<Sample>,
    open: Option<OpenChunk>,
    update: Option<PendingUpdate>,
    /// The meter time of the latest frame a shared commit wrote.
    frame_ts: i64,
}

/// A shared store (many meters, several writers) writes a meter's latest frame at most
/// once per this many seconds of meter time: the frame is kilobytes, the reading a few
/// dozen bytes, and the writers' own `/api/v1/now` holds every frame in memory anyway.
/// Daemons that only serve the store show frames at most this old.
pub const FRAME_EVERY: i64 = 10;

/// Counters of what was refused.
#[derive(Clone, Debug, Default)]
pub struct IngestStats {
    /// Readings stored.
    pub stored: u64,
    /// Duplicates and late readings dropped.
    pub duplicates: u64,
    /// Readings with a register delta refused (counter reset, absurd jump, long gap).
    pub refused_deltas: u64,
}

/// The store-independent ingestion state machine.
pub struct Ingestor<B: Backend> {
    backend: B,
    meters: HashMap<String, Track>,
    by_source: HashMap<String, String>,
    pending: Pending,
    closed: Vec<ChunkRow>,
    /// Shared store: readings kept until commit, as (meter id, sample).
    queued: Vec<(i64, Sample)>,
    shared: bool,
    /// What happened so far.
    pub stats: IngestStats,
}

/// The largest believable increase of a register over `dt` seconds.
fn plausible(f: F, d: i64, dt: i64) -> bool {
    let per_s = match f {
        // 1 MW of electricity, in Wh per second.
        F::Gas | F::Water => 28, // 100 m³/h in dm³ per second
        F::Heat => 1,            // 1 MW of heat in MJ per second
        _ => 278,
    };
    d >= 0 && d <= dt.max(1) * per_s + 1000
}

/// Splits `amount` over the quarter-hours of `(from, to]` in proportion to overlap,
/// keeping the total exact. Calls `add(quarter_start, share)`.
fn spread(from: i64, to: i64, amount: i64, mut add: impl FnMut(i64, i64)) {
    if amount == 0 {
        return;
    }
    let total = to - from;
    if total <= 0 {
        return add(Step::Quarter.bucket(to - 1).0, amount);
    }
    let mut q = Step::Quarter.bucket(from).0;
    let mut given = 0i64;
    while q < to {
        let overlap_end = (q + 900).min(to);
        let covered = overlap_end - from;
        let share = (i128::from(amount) * i128::from(covered) / i128::from(total)) as i64 - given;
        if share != 0 {
            add(q, share);
        }
        given += share;
        q += 900;
    }
}

/// Roll-up contributions not yet written, keyed by (meter, step, bucket start), with
/// the bucket end.
type Pending = HashMap<(i64, Step, i64), (i64, Rollup)>;

fn add_rollup(pending: &mut Pending, meter: i64, t: i64, f: impl Fn(&mut Rollup)) {
    for step in Step::ALL {
        let (start, end) = step.bucket(t);
        let e = pending
            .entry((meter, step, start))
            .or_insert_with(|| (end, Rollup::default()));
        f(&mut e.1);
    }
}

/// The register deltas of one reading against its meter's baseline.
struct Deltas {
    /// (index into [`SUMS`], from, to, amount), the first `n` used.
    d: [(usize, i64, i64, i64); DELTA_FIELDS.len()],
    n: usize,
    /// Whether a delta was refused (counter reset, absurd jump, long gap).
    refused: bool,
    /// The next baseline: this reading, with missing fields carried forward.
    base: Sample,
}

/// Register deltas of `s` against the baseline `prev`.
fn deltas(prev: Option<&Sample>, s: &Sample) -> Deltas {
    let mut out = Deltas {
        d: [(0, 0, 0, 0); DELTA_FIELDS.len()],
        n: 0,
        refused: false,
        base: s.clone(),
    };
    let Some(prev) = prev else { return out };
    for (i, f) in DELTA_FIELDS.iter().enumerate() {
        let (Some(a), Some(b)) = (prev.get(*f), s.get(*f)) else {
            continue;
        };
        let (from, to) = match (*f, prev.get(F::GasTime), s.get(F::GasTime)) {
            (F::Gas, Some(pt), Some(ct)) if ct >= pt => (pt, ct),
            _ => (prev.ts, s.ts),
        };
        let d = b - a;
        if d == 0 {
            continue;
        }
        if to - from > MAX_GAP || !plausible(*f, d, to - from) {
            out.refused = true;
            continue;
        }
        out.d[out.n] = (i, from, to, d);
        out.n += 1;
    }
    // Carry forward the last known value of each field as the next baseline; refused
    // deltas reset that register's baseline to the new value.
    for k in 0..N {
        if out.base.v[k].is_none() {
            out.base.v[k] = prev.v[k];
        }
    }
    out
}

/// Register deltas, spread over the quarter-hours they span.
fn add_energy(pending: &mut Pending, meter: i64, d: &[(usize, i64, i64, i64)]) {
    for &(i, from, to, amount) in d {
        spread(from, to, amount, |q, share| {
            add_rollup(pending, meter, q, |r| r.sums[i] += share)
        });
    }
}

/// Instantaneous values belong to the bucket they were measured in.
fn add_instant(pending: &mut Pending, meter: i64, s: &Sample) {
    let power = s.get(F::Power);
    let ext: [Option<i64>; 4] = EXTREME_FIELDS.map(|f| s.get(f));
    add_rollup(pending, meter, s.ts, |r| {
        r.sums[14] += 1;
        if let Some(p) = power {
            r.sums[13] += p;
        }
        for (k, x) in ext.iter().enumerate() {
            r.min[k] = opt(r.min[k], *x, i64::min);
            r.max[k] = opt(r.max[k], *x, i64::max);
        }
    });
}

impl<B: Backend> Ingestor<B> {
    /// Loads the known meters and their baselines from the backend.
    pub fn new(mut backend: B) -> Result<Self> {
        let meters = backend
            .load_meters()?
            .into_iter()
            .map(|m| {
                (
                    m.equipment_id,
                    Track {
                        id: m.id,
                        last: m.last,
                        open: None,
                        update: None,
                        frame_ts: i64::MIN,
                    },
                )
            })
            .collect();
        let shared = backend.shared();
        Ok(Ingestor {
            backend,
            meters,
            by_source: HashMap::new(),
            pending: HashMap::new(),
            closed: Vec::new(),
            queued: Vec::new(),
            shared,
            stats: IngestStats::default(),
        })
    }

    /// The backend, for maintenance such as retention.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Takes one reading. Nothing is written until [`commit`](Self::commit).
    pub fn add(&mut self, inc: Incoming) -> Result<Outcome> {
        self.add_ref(IncomingRef {
            source: &inc.source,
            meter: &inc.meter,
            dialect: Cow::Owned(inc.dialect),
            ts: inc.ts,
            sample: inc.sample,
            submeters: Arc::new(inc.submeters),
            frame: inc.frame,
            raw: inc.raw,
        })
    }

    /// [`add`](Self::add) without owning the source and meter names.
    pub fn add_ref(&mut self, inc: IncomingRef<'_>) -> Result<Outcome> {
        // A different meter on the same source: the meter was replaced. (Compared in
        // place: the names are only copied when they change.)
        let replaces = match self.by_source.get_mut(inc.source) {
            Some(prev) if prev.as_str() == inc.meter => None,
            Some(prev) => {
                let prev = std::mem::replace(prev, inc.meter.to_string());
                self.meters.get(&prev).map(|t| t.id)
            }
            None => {
                self.by_source
                    .insert(inc.source.to_string(), inc.meter.to_string());
                None
            }
        };
        if !self.meters.contains_key(inc.meter) {
            let id = self.backend.create_meter(&NewMeter {
                equipment_id: inc.meter.to_string(),
                dialect: inc.dialect.to_string(),
                source: inc.source.to_string(),
                first_seen: inc.ts,
                replaces,
            })?;
            self.meters.insert(
                inc.meter.to_string(),
                Track {
                    id,
                    last: None,
                    open: None,
                    update: None,
                    frame_ts: i64::MIN,
                },
            );
        }
        let track = self.meters.get_mut(inc.meter).expect("just inserted");
        let id = track.id;
        let s = inc.sample;
        // The meter state is serialized at commit (from `track.last`, the baseline).
        let update = PendingUpdate {
            last_seen: s.ts,
            dialect: inc.dialect,
            submeters: inc.submeters,
            frame: inc.frame,
            raw: inc.raw,
            forced: false,
        };
        if self.shared {
            // Only a reading equal to the committed baseline is surely stored already;
            // the rest is sorted out at commit, against the baselines stored by then.
            if track.last.as_ref().is_some_and(|l| l.ts == s.ts) {
                self.stats.duplicates += 1;
                return Ok(Outcome::Duplicate);
            }
            if track.update.as_ref().is_none_or(|u| s.ts >= u.last_seen) {
                track.update = Some(update);
            }
            self.queued.push((id, s));
            return Ok(Outcome::Stored);
        }
        if let Some(last) = &track.last {
            if s.ts <= last.ts {
                self.stats.duplicates += 1;
                return Ok(Outcome::Duplicate);
            }
        }
        let step = deltas(track.last.as_ref(), &s);
        // Refused deltas reset that register's baseline to the new value (done by `base`).
        track.last = Some(step.base);
        // The chunk of full-resolution samples.
        let open = track.open.get_or_insert_with(|| OpenChunk {
            start: s.ts,
            end: s.ts,
            writer: ChunkWriter::new(),
        });
        open.writer.push(&s);
        open.end = s.ts;
        if open.writer.len() >= CHUNK_SAMPLES || s.ts - open.start >= CHUNK_SPAN {
            let o = track.open.take().expect("open");
            self.closed.push(ChunkRow {
                meter: id,
                start: o.start,
                end: o.end,
                count: o.writer.len() as i64,
                data: o.writer.bytes().to_vec(),
            });
        }
        track.update = Some(update);
        self.stats.refused_deltas += u64::from(step.refused);
        add_energy(&mut self.pending, id, &step.d[..step.n]);
        add_instant(&mut self.pending, id, &s);
        self.stats.stored += 1;
        Ok(Outcome::Stored)
    }

    /// Sets the latest frame JSON and raw telegram of a meter (written at the next commit).
    pub fn set_frame(&mut self, meter: &str, frame: String, raw: &[u8]) {
        if let Some(u) = self.meters.get_mut(meter).and_then(|t| t.update.as_mut()) {
            u.frame = Some(frame);
            u.raw = raw.to_vec();
            u.forced = true;
        }
    }

    /// Writes everything taken since the last commit, in one transaction.
    pub fn commit(&mut self) -> Result<()> {
        if self.shared {
            return self.commit_shared();
        }
        let mut batch = WriteBatch {
            chunks: std::mem::take(&mut self.closed),
            ..Default::default()
        };
        for t in self.meters.values_mut() {
            if let Some(u) = t.update.take() {
                let u = meter_update(t.id, u.last_seen, &u, t.last.as_ref(), true);
                if let Some(o) = &t.open {
                    batch.chunks.push(ChunkRow {
                        meter: t.id,
                        start: o.start,
                        end: o.end,
                        count: o.writer.len() as i64,
                        data: o.writer.bytes().to_vec(),
                    });
                }
                batch.meters.push(u);
            }
        }
        batch.rollups = self
            .pending
            .drain()
            .map(|(k, (end, r))| (k, end, r))
            .collect();
        batch.rollups.sort_by_key(|(k, _, _)| *k);
        if batch.is_empty() {
            return Ok(());
        }
        self.backend.apply(&batch)
    }

    /// [`commit`](Self::commit) for a store other processes write too: deltas against
    /// the baselines locked in the transaction, so that each reading counts once
    /// whichever process stores it, and however often it is delivered.
    fn commit_shared(&mut self) -> Result<()> {
        let mut readings = std::mem::take(&mut self.queued);
        // Each updated meter's last written frame time, gathered in the same pass.
        let mut frame_ts: HashMap<i64, i64> = HashMap::new();
        let updates: HashMap<i64, PendingUpdate> = self
            .meters
            .values_mut()
            .filter_map(|t| {
                let u = t.update.take()?;
                frame_ts.insert(t.id, t.frame_ts);
                Some((t.id, u))
            })
            .collect();
        if readings.is_empty() {
            return Ok(());
        }
        readings.sort_by_key(|(m, s)| (*m, s.ts));
        let delivered = readings.len();
        readings.dedup_by_key(|(m, s)| (*m, s.ts));
        let repeated = (delivered - readings.len()) as u64;
        let mut stats = IngestStats::default();
        let mut baselines: HashMap<i64, Sample> = HashMap::new();
        let mut framed: HashSet<i64> = HashSet::new();
        let result = self.backend.commit_shared(&readings, &mut |locked| {
            stats = IngestStats::default();
            baselines.clear();
            framed.clear();
            let mut pending = Pending::new();
            let mut batch = WriteBatch::default();
            for group in readings.chunk_by(|a, b| a.0 == b.0) {
                let id = group[0].0;
                let mut last = locked.baselines.get(&id).cloned().flatten();
                let first = locked.first.get(&id);
                let new = |s: &Sample| locked.inserted.contains(&(id, s.ts));
                let mut advanced = false;
                for (k, (_, s)) in group.iter().enumerate() {
                    if !new(s) {
                        stats.duplicates += 1;
                        continue;
                    }
                    stats.stored += 1;
                    // Newer than the baseline: its delta counts and it becomes the
                    // baseline. Older (another process stored a later one first): the
                    // delta across it already counted its energy, unless it is older
                    // than every stored reading: then the delta up to the next one counts.
                    if last.as_ref().is_none_or(|l| s.ts > l.ts) {
                        let d = deltas(last.as_ref(), s);
                        stats.refused_deltas += u64::from(d.refused);
                        add_energy(&mut pending, id, &d.d[..d.n]);
                        last = Some(d.base);
                        advanced = true;
                    } else if let Some(f) = first.filter(|f| s.ts < f.ts) {
                        let next = group[k + 1..]
                            .iter()
                            .map(|r| &r.1)
                            .find(|r| r.ts < f.ts && new(r))
                            .unwrap_or(f);
                        let d = deltas(Some(s), next);
                        stats.refused_deltas += u64::from(d.refused);
                        add_energy(&mut pending, id, &d.d[..d.n]);
                    }
                    add_instant(&mut pending, id, s);
                }
                let Some(base) = last else { continue };
                if let (true, Some(u)) = (advanced, updates.get(&id)) {
                    let due = frame_ts
                        .get(&id)
                        .is_none_or(|t| base.ts.saturating_sub(*t) >= FRAME_EVERY);
                    let with_frame = u.frame.is_some() && (due || u.forced);
                    if with_frame {
                        framed.insert(id);
                    }
                    batch
                        .meters
                        .push(meter_update(id, base.ts, u, Some(&base), with_frame));
                }
                baselines.insert(id, base);
            }
            batch.rollups = pending.drain().map(|(k, (end, r))| (k, end, r)).collect();
            batch.rollups.sort_by_key(|(k, _, _)| *k);
            batch
        });
        if let Err(e) = result {
            self.keep_for_retry(readings, updates);
            return Err(e);
        }
        for t in self.meters.values_mut() {
            if let Some(b) = baselines.remove(&t.id) {
                if framed.contains(&t.id) {
                    t.frame_ts = b.ts;
                }
                t.last = Some(b);
            }
        }
        self.stats.stored += stats.stored;
        self.stats.duplicates += stats.duplicates + repeated;
        self.stats.refused_deltas += stats.refused_deltas;
        Ok(())
    }
}

impl<B: Backend> Ingestor<B> {
    /// After a failed shared commit (the database server away, say), keeps its readings
    /// for the next commit, up to [`MAX_RETRY`] readings.
    fn keep_for_retry(
        &mut self,
        mut readings: Vec<(i64, Sample)>,
        mut updates: HashMap<i64, PendingUpdate>,
    ) {
        readings.append(&mut self.queued);
        if readings.len() > MAX_RETRY {
            let dropped = readings.len() - MAX_RETRY;
            tracing::error!(
                "the store has been failing for a while: {dropped} readings dropped, the newest {MAX_RETRY} wait for it"
            );
            readings.sort_by_key(|(_, s)| std::cmp::Reverse(s.ts));
            readings.truncate(MAX_RETRY);
        }
        self.queued = readings;
        for t in self.meters.values_mut() {
            if let (None, Some(u)) = (&t.update, updates.remove(&t.id)) {
                t.update = Some(u);
            }
        }
    }
}

/// Readings a shared store keeps in memory while commits fail (~440 bytes each).
const MAX_RETRY: usize = 200_000;

/// The meter row's new state: the delta baseline and, `with_frame`, the latest
/// reading's frame and raw telegram.
fn meter_update(
    meter: i64,
    last_seen: i64,
    u: &PendingUpdate,
    base: Option<&Sample>,
    with_frame: bool,
) -> MeterUpdate {
    let mut state = ChunkWriter::new();
    if let Some(base) = base {
        state.push(base);
    }
    MeterUpdate {
        meter,
        last_seen,
        dialect: u.dialect.to_string(),
        submeters: u.submeters.to_string(),
        frame: if with_frame { u.frame.clone() } else { None },
        raw: if with_frame {
            u.raw.clone()
        } else {
            Vec::new()
        },
        state: state.bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_the_total_and_follows_overlap() {
        let mut got = vec![];
        spread(890, 910, 20, |q, s| got.push((q, s)));
        assert_eq!(got, vec![(0, 10), (900, 10)]);
        let mut got = vec![];
        spread(0, 2700, 7, |q, s| got.push((q, s)));
        assert_eq!(got.iter().map(|x| x.1).sum::<i64>(), 7);
        assert_eq!(got.len(), 3);
        let mut got = vec![];
        spread(899, 900, 5, |q, s| got.push((q, s)));
        assert_eq!(got, vec![(0, 5)]);
    }

    #[test]
    fn plausibility() {
        assert!(plausible(F::Import, 1, 1));
        assert!(!plausible(F::Import, -1, 1));
        assert!(!plausible(F::Import, 1_000_000, 10));
        assert!(plausible(F::Import, 1_000_000, 86400));
    }
}
