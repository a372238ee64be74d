//! Turning accepted readings into what the store keeps, independent of the database:
//! meter identity, duplicate and late telegrams, sane register deltas, the chunks of
//! full-resolution samples, and the additive roll-ups per quarter-hour, hour, day and
//! month. A backend only has to apply the resulting [`WriteBatch`] in one transaction.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// When a live source received it (unix seconds); `None` for imports.
    pub received: Option<i64>,
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
    /// Readings kept as suspect (never counted; a shared store removes them from its
    /// readings).
    pub suspects: Vec<SuspectRow>,
}

/// A reading whose time cannot be right (a meter clock far ahead, or registers that
/// do not fit where its time puts it): stored as such, never counted.
#[derive(Clone, Debug)]
pub struct SuspectRow {
    /// Meter id.
    pub meter: i64,
    /// Its (suspect) time.
    pub ts: i64,
    /// Why it is suspect, for people.
    pub reason: String,
    /// The sample, as a one-sample chunk.
    pub data: Vec<u8>,
}

impl SuspectRow {
    fn new(meter: i64, s: &Sample, reason: &str) -> SuspectRow {
        let mut w = ChunkWriter::new();
        w.push(s);
        SuspectRow {
            meter,
            ts: s.ts,
            reason: reason.to_string(),
            data: w.bytes().to_vec(),
        }
    }
}

/// What a store holds around a time range of one meter, for readings that arrive late.
#[derive(Clone, Debug, Default)]
pub struct Around {
    /// The stored readings in the range, with the one just before and the one just
    /// after it where they exist, in time order.
    pub stored: Vec<Sample>,
    /// The time of the meter's earliest stored reading ever (retention may have
    /// removed it since), if any.
    pub first: Option<i64>,
}

impl WriteBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
            && self.rollups.is_empty()
            && self.meters.is_empty()
            && self.suspects.is_empty()
    }

    /// This batch (one that could not be written) followed by the `later` one, as one
    /// batch: chunks in order (a later copy of an open chunk replaces the earlier one),
    /// roll-up contributions added up, each meter's latest state.
    pub fn then(mut self, later: WriteBatch) -> WriteBatch {
        self.chunks.extend(later.chunks);
        self.suspects.extend(later.suspects);
        let mut sums: HashMap<(i64, Step, i64), (i64, Rollup)> = HashMap::new();
        for (k, end, r) in self.rollups.into_iter().chain(later.rollups) {
            sums.entry(k)
                .or_insert_with(|| (end, Rollup::default()))
                .1
                .merge(&r);
        }
        self.rollups = sums.into_iter().map(|(k, (end, r))| (k, end, r)).collect();
        self.rollups.sort_by_key(|(k, _, _)| *k);
        let mut at: HashMap<i64, usize> = self
            .meters
            .iter()
            .enumerate()
            .map(|(i, m)| (m.meter, i))
            .collect();
        for u in later.meters {
            match at.get(&u.meter) {
                Some(&i) => self.meters[i] = u,
                None => {
                    at.insert(u.meter, self.meters.len());
                    self.meters.push(u);
                }
            }
        }
        self
    }

    /// Keeps at most `samples` full-resolution samples, dropping the oldest chunks
    /// (with a log line): the roll-ups and meter states, which are small, stay whole,
    /// so that the sums still equal the register differences once writing works.
    pub fn bounded(mut self, samples: usize) -> WriteBatch {
        let held: i64 = self.chunks.iter().map(|c| c.count).sum();
        if held as usize > samples {
            self.chunks.sort_by_key(|c| c.end);
            let mut drop = held - samples as i64;
            let mut cut = 0;
            while drop > 0 && cut < self.chunks.len() {
                drop -= self.chunks[cut].count;
                cut += 1;
            }
            self.chunks.drain(..cut);
            tracing::error!(
                "the store has been failing for a while: the oldest {cut} chunks of full-resolution readings were dropped (their energy stays in the roll-ups)"
            );
        }
        self
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
    /// The stored readings of `meter` from `from` to `to` (inclusive) and the ones just
    /// around them, for late readings: a single-writer store is asked after its
    /// commit, a shared one answers in [`Locked::around`].
    fn around(&mut self, meter: i64, from: i64, to: i64) -> Result<Around> {
        let _ = (meter, from, to);
        anyhow::bail!("this store cannot look up stored readings")
    }
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
    /// For meters with readings in this commit older than their baseline: what was
    /// stored around them before this commit.
    pub around: HashMap<i64, Around>,
}

/// Why a reading was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored.
    Stored,
    /// Same time as a reading of that meter stored already.
    Duplicate,
    /// Kept as suspect: its time cannot be right (see [`SuspectRow`]).
    Suspect,
}

/// A meter time more than this many seconds past the receive time of a live reading
/// (or past now, for imports) is a clock gone wrong.
pub const MAX_AHEAD: i64 = 300;
/// In an import, a reading more than this many seconds past its predecessor waits for
/// its successor: a lone reading far from both is an outlier.
const JUMP: i64 = 3600;

/// A span of seconds for people: `42 s`, `3 h`, `29 days`, `73 years`.
fn human_span(s: i64) -> String {
    match s {
        ..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        172_800..=63_071_999 => format!("{} days", s / 86400),
        _ => format!("{} years", s / 31_557_600),
    }
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
    /// The newest plausible reading time taken (committed or not).
    newest: Option<i64>,
    /// An import's reading far past its predecessor, waiting for its successor.
    held: Option<(Sample, PendingUpdate)>,
}

impl Track {
    fn new(id: i64, last: Option<Sample>) -> Track {
        Track {
            id,
            newest: last.as_ref().map(|l| l.ts),
            last,
            open: None,
            update: None,
            frame_ts: i64::MIN,
            held: None,
        }
    }
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
    /// Readings kept as suspect (a meter clock gone wrong).
    pub suspect: u64,
    /// Late readings stored between or before stored ones (counted in `stored` too).
    pub late: u64,
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
    /// A single-writer commit that failed, written with the next one.
    unwritten: Option<WriteBatch>,
    /// Single writer: readings older than their meter's baseline, merged with the
    /// stored ones around them at commit.
    late: Vec<(i64, Sample)>,
    /// Suspect readings to write at the next commit.
    suspects: Vec<SuspectRow>,
    /// Shared store: the queued readings that arrived after a newer one of their
    /// meter, whose registers must fit where their time puts them.
    arrived_late: HashSet<(i64, i64)>,
    /// Meters whose clock is suspect now, with why.
    clock: BTreeMap<String, String>,
    clock_changes: u64,
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
        let shared = backend.shared();
        let now = crate::source::now();
        let mut meters = HashMap::new();
        for mut m in backend.load_meters()? {
            // A baseline dated in the future (stored before clocks were checked) would
            // make every later reading late: deltas go on from the latest plausible one.
            if let (false, Some(l)) = (shared, &m.last) {
                if l.ts > now + MAX_AHEAD {
                    let before = backend.around(m.id, now, now)?.stored;
                    let plausible = before.into_iter().rfind(|s| s.ts <= now + MAX_AHEAD);
                    tracing::warn!(
                        "meter {}: its stored baseline is dated {} (a clock gone wrong); deltas go on from {}",
                        m.equipment_id,
                        meterkast_codec::Timestamp(l.ts),
                        plausible.as_ref().map_or("its next reading".to_string(), |p| {
                            meterkast_codec::Timestamp(p.ts).to_string()
                        })
                    );
                    m.last = plausible;
                }
            }
            meters.insert(m.equipment_id, Track::new(m.id, m.last));
        }
        Ok(Ingestor {
            backend,
            meters,
            by_source: HashMap::new(),
            pending: HashMap::new(),
            closed: Vec::new(),
            queued: Vec::new(),
            shared,
            unwritten: None,
            late: Vec::new(),
            suspects: Vec::new(),
            arrived_late: HashSet::new(),
            clock: BTreeMap::new(),
            clock_changes: 0,
            stats: IngestStats::default(),
        })
    }

    /// The backend, for maintenance such as retention.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Takes one reading. Nothing is written until [`commit`](Self::commit).
    pub fn add(&mut self, inc: Incoming) -> Result<Outcome> {
        self.add_owned(inc, None)
    }

    /// [`add`](Self::add) for a reading received live at `received` (unix seconds):
    /// a meter time more than [`MAX_AHEAD`] past it is a clock gone wrong.
    pub fn add_at(&mut self, inc: Incoming, received: i64) -> Result<Outcome> {
        self.add_owned(inc, Some(received))
    }

    fn add_owned(&mut self, inc: Incoming, received: Option<i64>) -> Result<Outcome> {
        self.add_ref(IncomingRef {
            source: &inc.source,
            meter: &inc.meter,
            dialect: Cow::Owned(inc.dialect),
            ts: inc.ts,
            sample: inc.sample,
            submeters: Arc::new(inc.submeters),
            frame: inc.frame,
            raw: inc.raw,
            received,
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
            self.meters
                .insert(inc.meter.to_string(), Track::new(id, None));
        }
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
        let key = inc.meter;
        // A meter time past the receive time (live) or past now (imports of what was
        // captured before) is a clock gone wrong, never a baseline.
        let now = crate::source::now();
        // (A forwarded reading's receive time is the house box's clock: the later of
        // it and this machine's decides, so a box clock behind suspects no meter.)
        let ahead = match inc.received {
            Some(r) if s.ts > r.max(now) + MAX_AHEAD => Some(r.max(now)),
            None if s.ts > now + MAX_AHEAD => Some(now),
            _ => None,
        };
        if let Some(r) = ahead {
            let why = format!(
                "its clock reads {}, {} ahead of the {}",
                meterkast_codec::Timestamp(s.ts),
                human_span(s.ts - r),
                if inc.received.is_some() {
                    "receive time"
                } else {
                    "current time"
                }
            );
            return Ok(self.suspect(key, s, why));
        }
        if inc.received.is_none() {
            // An import: a reading far past its predecessor waits for its successor.
            // Going on from it, time jumped (a gap in the captures); going back to
            // before it, that one reading was an outlier.
            let track = self.meters.get_mut(key).expect("known meter");
            if let Some((h, hu)) = track.held.take() {
                if s.ts < h.ts {
                    let why = format!(
                        "a lone reading dated {}, far from the readings before and after it",
                        meterkast_codec::Timestamp(h.ts)
                    );
                    self.suspect(key, h, why);
                } else {
                    self.accept(key, h, hu)?;
                }
            }
            let track = self.meters.get_mut(key).expect("known meter");
            if track.newest.is_some_and(|n| s.ts > n + JUMP) {
                track.held = Some((s, update));
                return Ok(Outcome::Stored);
            }
        }
        self.accept(key, s, update)
    }

    /// Takes the readings an import held back to see their successor: at the end of
    /// its input, nothing follows to tell, and they count as they are.
    pub fn release_held(&mut self) -> Result<()> {
        let held: Vec<(String, Sample, PendingUpdate)> = self
            .meters
            .iter_mut()
            .filter_map(|(k, t)| t.held.take().map(|(s, u)| (k.clone(), s, u)))
            .collect();
        for (k, s, u) in held {
            self.accept(&k, s, u)?;
        }
        Ok(())
    }

    /// Keeps a reading whose time cannot be right as suspect: stored as such, never
    /// counted, and said once per meter until its clock is right again.
    fn suspect(&mut self, key: &str, s: Sample, why: String) -> Outcome {
        let track = self.meters.get_mut(key).expect("known meter");
        self.suspects.push(SuspectRow::new(track.id, &s, &why));
        self.note_suspect(key, why);
        Outcome::Suspect
    }

    /// Counts a suspect reading of `key` and says so in the log at the start of each
    /// episode.
    fn note_suspect(&mut self, key: &str, why: String) {
        self.stats.suspect += 1;
        if !self.clock.contains_key(key) {
            tracing::warn!(
                "meter {key}: {why}; its readings are kept as suspect and not counted until its clock is right again"
            );
            self.clock.insert(key.to_string(), why);
            self.clock_changes += 1;
        }
    }

    /// Takes a reading whose time is plausible.
    fn accept(&mut self, key: &str, s: Sample, update: PendingUpdate) -> Result<Outcome> {
        if self.clock.remove(key).is_some() {
            tracing::info!("meter {key}: its clock is plausible again; its readings count again");
            self.clock_changes += 1;
        }
        let track = self.meters.get_mut(key).expect("known meter");
        let id = track.id;
        let arrived_late = track.newest.is_some_and(|n| s.ts < n);
        track.newest = Some(track.newest.map_or(s.ts, |n| n.max(s.ts)));
        if self.shared {
            if arrived_late {
                self.arrived_late.insert((id, s.ts));
            }
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
            if s.ts == last.ts {
                self.stats.duplicates += 1;
                return Ok(Outcome::Duplicate);
            }
            if s.ts < last.ts {
                // Late: merged with the stored readings around it at commit.
                self.late.push((id, s));
                return Ok(Outcome::Stored);
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

    /// Meters whose clock is suspect now, with why; and a number that changes
    /// whenever this does.
    pub fn clock_trouble(&self) -> (&BTreeMap<String, String>, u64) {
        (&self.clock, self.clock_changes)
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
        batch.suspects = std::mem::take(&mut self.suspects);
        if let Some(kept) = self.unwritten.take() {
            batch = kept.then(batch);
        }
        if !batch.is_empty() {
            if let Err(e) = self.backend.apply(&batch) {
                // Nothing of it is lost: the next commit writes it with what came since.
                self.unwritten = Some(batch.bounded(MAX_RETRY));
                return Err(e);
            }
        }
        self.commit_late()
    }

    /// Stores the late readings of a single-writer store, after the rest is written:
    /// each between the stored readings around it, with the roll-ups of the periods
    /// they fall in recomputed.
    fn commit_late(&mut self) -> Result<()> {
        if self.late.is_empty() {
            return Ok(());
        }
        let mut late = std::mem::take(&mut self.late);
        late.sort_by_key(|(m, s)| (*m, s.ts));
        let delivered = late.len();
        late.dedup_by_key(|(m, s)| (*m, s.ts));
        let mut stats = IngestStats {
            duplicates: (delivered - late.len()) as u64,
            ..Default::default()
        };
        let mut pending = Pending::new();
        let mut batch = WriteBatch::default();
        let mut suspects = vec![];
        for group in late.chunk_by(|a, b| a.0 == b.0) {
            let id = group[0].0;
            let around = match self
                .backend
                .around(id, group[0].1.ts, group[group.len() - 1].1.ts)
            {
                Ok(a) => a,
                Err(e) => {
                    self.late = late;
                    return Err(e);
                }
            };
            let samples: Vec<Sample> = group.iter().map(|r| r.1.clone()).collect();
            let fill = fill_in(&mut pending, id, &around, &samples, &mut stats);
            let mut chunk: Option<OpenChunk> = None;
            for s in &fill.kept {
                if chunk.as_ref().is_some_and(|c| {
                    c.writer.len() >= CHUNK_SAMPLES || s.ts - c.start >= CHUNK_SPAN
                }) {
                    batch.chunks.push(chunk.take().expect("open").row(id));
                }
                let c = chunk.get_or_insert_with(|| OpenChunk {
                    start: s.ts,
                    end: s.ts,
                    writer: ChunkWriter::new(),
                });
                c.writer.push(s);
                c.end = s.ts;
            }
            batch.chunks.extend(chunk.map(|c| c.row(id)));
            suspects.extend(fill.suspect.into_iter().map(|s| (id, s)));
        }
        batch.rollups = pending.drain().map(|(k, (end, r))| (k, end, r)).collect();
        batch.rollups.sort_by_key(|(k, _, _)| *k);
        batch.suspects = suspects
            .iter()
            .map(|(id, s)| SuspectRow::new(*id, s, MISFIT))
            .collect();
        if let Err(e) = self.backend.apply(&batch) {
            late.truncate(MAX_RETRY);
            self.late = late;
            return Err(e);
        }
        self.note_misfits(&suspects);
        self.stats.stored += stats.stored;
        self.stats.late += stats.late;
        self.stats.duplicates += stats.duplicates;
        self.stats.refused_deltas += stats.refused_deltas;
        Ok(())
    }

    /// Counts the late readings whose registers did not fit and says so, once per
    /// meter and commit.
    fn note_misfits(&mut self, suspects: &[(i64, Sample)]) {
        self.stats.suspect += suspects.len() as u64;
        for group in suspects.chunk_by(|a, b| a.0 == b.0) {
            let id = group[0].0;
            let key = self
                .meters
                .iter()
                .find(|(_, t)| t.id == id)
                .map_or("?", |(k, _)| k.as_str());
            tracing::warn!(
                "meter {key}: {} readings kept as suspect, not counted: {MISFIT}",
                group.len()
            );
        }
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
            if self.suspects.is_empty() {
                return Ok(());
            }
            let batch = WriteBatch {
                suspects: std::mem::take(&mut self.suspects),
                ..Default::default()
            };
            if let Err(e) = self.backend.apply(&batch) {
                self.suspects = batch.suspects;
                return Err(e);
            }
            return Ok(());
        }
        readings.sort_by_key(|(m, s)| (*m, s.ts));
        let delivered = readings.len();
        readings.dedup_by_key(|(m, s)| (*m, s.ts));
        let repeated = (delivered - readings.len()) as u64;
        let mut stats = IngestStats::default();
        let mut baselines: HashMap<i64, Sample> = HashMap::new();
        let mut framed: HashSet<i64> = HashSet::new();
        let mut misfits: Vec<(i64, Sample)> = vec![];
        let mut suspects = std::mem::take(&mut self.suspects);
        let arrived_late = std::mem::take(&mut self.arrived_late);
        let result = self.backend.commit_shared(&readings, &mut |locked| {
            stats = IngestStats::default();
            baselines.clear();
            framed.clear();
            misfits.clear();
            let mut pending = Pending::new();
            let mut batch = WriteBatch {
                suspects: suspects.clone(),
                ..Default::default()
            };
            for group in readings.chunk_by(|a, b| a.0 == b.0) {
                let id = group[0].0;
                let mut last = locked.baselines.get(&id).cloned().flatten();
                let new = |s: &Sample| locked.inserted.contains(&(id, s.ts));
                let mut advanced = false;
                // Older than the baseline (late, or another process stored a later one
                // first): merged with the stored readings around them.
                let older: Vec<Sample> = group
                    .iter()
                    .filter(|(_, s)| new(s) && last.as_ref().is_some_and(|l| s.ts < l.ts))
                    .map(|(_, s)| s.clone())
                    .collect();
                if !older.is_empty() {
                    let around = locked.around.get(&id).cloned().unwrap_or_default();
                    let fill = fill_in(&mut pending, id, &around, &older, &mut stats);
                    for s in fill.suspect {
                        batch.suspects.push(SuspectRow::new(id, &s, MISFIT));
                        misfits.push((id, s));
                    }
                }
                for (k, (_, s)) in group.iter().enumerate() {
                    if !new(s) {
                        stats.duplicates += 1;
                        continue;
                    }
                    // Newer than the baseline: its delta counts and it becomes the
                    // baseline, unless it came after newer readings and its registers
                    // do not fit before theirs.
                    if last.as_ref().is_none_or(|l| s.ts > l.ts) {
                        if arrived_late.contains(&(id, s.ts)) {
                            let next = group[k + 1..].iter().map(|r| &r.1).find(|r| new(r));
                            if !fits(last.as_ref(), s, next) {
                                batch.suspects.push(SuspectRow::new(id, s, MISFIT));
                                misfits.push((id, s.clone()));
                                continue;
                            }
                        }
                        stats.stored += 1;
                        let d = deltas(last.as_ref(), s);
                        stats.refused_deltas += u64::from(d.refused);
                        add_energy(&mut pending, id, &d.d[..d.n]);
                        add_instant(&mut pending, id, s);
                        last = Some(d.base);
                        advanced = true;
                    }
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
            self.suspects.append(&mut suspects);
            self.arrived_late = arrived_late;
            self.keep_for_retry(readings, updates);
            return Err(e);
        }
        self.note_misfits(&misfits);
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
        self.stats.late += stats.late;
        Ok(())
    }
}

/// Why a late reading is suspect.
const MISFIT: &str =
    "its registers do not fit between the readings before and after its time (a clock gone back?)";

impl OpenChunk {
    fn row(self, meter: i64) -> ChunkRow {
        ChunkRow {
            meter,
            start: self.start,
            end: self.end,
            count: self.writer.len() as i64,
            data: self.writer.bytes().to_vec(),
        }
    }
}

/// What [`fill_in`] made of late readings.
struct Filled {
    /// Stored: their registers fit.
    kept: Vec<Sample>,
    /// Suspect: their registers do not fit between the readings around them.
    suspect: Vec<Sample>,
}

/// Whether `s`'s registers lie between those of `before` and `after` (each where both
/// have them).
fn fits(before: Option<&Sample>, s: &Sample, after: Option<&Sample>) -> bool {
    DELTA_FIELDS.iter().all(|f| {
        let Some(v) = s.get(*f) else { return true };
        before.and_then(|b| b.get(*f)).is_none_or(|b| b <= v)
            && after.and_then(|a| a.get(*f)).is_none_or(|a| v <= a)
    })
}

/// Merges late readings of meter `id` (sorted, not yet stored) into the stored
/// readings around them: each run of new readings between two stored ones (`p`, `q`)
/// takes back the delta `p → q` that was counted and counts `p → … → q` through the
/// run instead; a run before every stored reading counts up to the first; a run whose
/// predecessor retention removed only adds its instantaneous values (its energy was
/// counted, spread evenly). Readings already stored are duplicates; readings whose
/// registers do not fit where their time puts them are suspect.
fn fill_in(
    pending: &mut Pending,
    id: i64,
    around: &Around,
    new: &[Sample],
    stats: &mut IngestStats,
) -> Filled {
    let stored = &around.stored;
    let mut out = Filled {
        kept: vec![],
        suspect: vec![],
    };
    let mut i = 0;
    let mut j = 0;
    while j < new.len() {
        while i < stored.len() && stored[i].ts < new[j].ts {
            i += 1;
        }
        if stored.get(i).is_some_and(|q| q.ts == new[j].ts) {
            stats.duplicates += 1;
            j += 1;
            continue;
        }
        let p = i.checked_sub(1).map(|k| &stored[k]);
        let q = stored.get(i);
        let mut run: Vec<&Sample> = vec![];
        while j < new.len() && q.is_none_or(|q| new[j].ts < q.ts) {
            let s = &new[j];
            j += 1;
            if run.last().is_some_and(|r| r.ts == s.ts) {
                stats.duplicates += 1;
            } else if fits(run.last().copied().or(p), s, q) {
                run.push(s);
            } else {
                out.suspect.push(s.clone());
            }
        }
        if run.is_empty() {
            continue;
        }
        let lost = p.is_none() && around.first.is_some_and(|f| run[0].ts > f);
        if !lost {
            if let (Some(p), Some(q)) = (p, q) {
                let d = deltas(Some(p), q);
                let undo: Vec<_> = d.d[..d.n]
                    .iter()
                    .map(|&(k, a, b, x)| (k, a, b, -x))
                    .collect();
                add_energy(pending, id, &undo);
            }
            let mut prev = p.cloned();
            for s in run.iter().copied().chain(q) {
                if let Some(pr) = &prev {
                    let d = deltas(Some(pr), s);
                    stats.refused_deltas += u64::from(d.refused);
                    add_energy(pending, id, &d.d[..d.n]);
                    prev = Some(d.base);
                } else {
                    prev = Some(s.clone());
                }
            }
        }
        for s in run {
            add_instant(pending, id, s);
            stats.stored += 1;
            stats.late += 1;
            out.kept.push(s.clone());
        }
    }
    out
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

/// Readings a store keeps in memory while commits fail (~440 bytes each in a shared
/// store, a few dozen in chunks).
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
