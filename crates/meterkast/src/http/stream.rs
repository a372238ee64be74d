//! Large answers (`/api/v1/series` and `/api/v1/export`) produced incrementally: the
//! range is read in short windows (15 minutes of readings, a month of buckets), each
//! read and formatted on the blocking pool into chunks of about [`CHUNK`] bytes that go
//! through a two-chunk channel to the client. Memory per request stays at a window's
//! text plus a few chunks whatever the range, and a client that stops reading holds no
//! blocking thread: it waits on the channel, and is cut off after the write timeout
//! (`--write-timeout`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::api::{buckets, ts, Bucket, BUCKET_COLUMNS};
use super::AppState;
use crate::store::calendar::Step;
use crate::store::sample::{Sample, FIELDS};

/// A chunk is sent once it holds this many bytes.
pub const CHUNK: usize = 64 * 1024;
/// Raw readings are read this many seconds at a time (a stored chunk's span).
const RAW_WINDOW: i64 = 900;
/// Buckets are read this many seconds at a time (a month of quarter-hours).
const BUCKET_WINDOW: i64 = 31 * 86_400;

/// What a streamed answer looks like.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    /// `/api/v1/series`: `{"meter", "step", "buckets": [...]}` or `"readings": [...]`.
    Series,
    /// CSV with a header line.
    Csv,
    /// JSON Lines.
    JsonLines,
}

/// One streamed answer's subject.
#[derive(Clone, Debug)]
pub struct Job {
    /// The meter's store id.
    pub meter_id: i64,
    /// Its equipment id.
    pub meter: String,
    /// The step; `None` for raw readings.
    pub step: Option<Step>,
    /// Range start.
    pub from: i64,
    /// Range end, exclusive.
    pub to: i64,
    /// The format.
    pub shape: Shape,
}

impl Job {
    /// A job for a meter.
    pub fn new(
        m: crate::store::MeterInfo,
        step: Option<Step>,
        range: (i64, i64),
        shape: Shape,
    ) -> Job {
        Job {
            meter_id: m.id,
            meter: m.equipment_id,
            step,
            from: range.0,
            to: range.1,
            shape,
        }
    }
}

/// Whose database budget a streamed answer's reads come from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Budget {
    /// The short reads shared with the dashboard.
    Reads,
    /// The export's own place (taken before it started).
    Export,
}

/// Starts producing `job` and returns the streaming body; `hold` (e.g. an export's
/// place) is kept until the answer is complete or abandoned.
pub fn body<H: Send + 'static>(s: AppState, job: Job, budget: Budget, hold: H) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    ACTIVE.fetch_add(1, Ordering::AcqRel);
    tokio::spawn(async move {
        let _hold = hold;
        let _trim = TrimWhenLast;
        let mut out = Out {
            buf: String::new(),
            tx,
            s: s.clone(),
        };
        if produce(&s, &job, budget, &mut out).await {
            finished.store(true, Ordering::Release);
        }
    });
    // The body ends cleanly only when everything was produced: a failure part-way
    // shows as a broken response, never as a short one that looks complete.
    let stream = futures_util::stream::unfold(Some((rx, done)), |state| async move {
        let (mut rx, done) = state?;
        match rx.recv().await {
            Some(chunk) => Some((Ok::<_, std::io::Error>(chunk), Some((rx, done)))),
            None if done.load(Ordering::Acquire) => None,
            None => Some((Err(std::io::Error::other("the answer was cut short")), None)),
        }
    });
    Body::from_stream(stream)
}

/// Streamed answers in progress.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Ends a streamed answer; the last one to end gives the allocator's free memory back
/// to the system (glibc keeps freed memory of its per-thread arenas otherwise).
struct TrimWhenLast;

impl Drop for TrimWhenLast {
    fn drop(&mut self) {
        if ACTIVE.fetch_sub(1, Ordering::AcqRel) == 1 {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            tokio::task::spawn_blocking(|| {
                // SAFETY: malloc_trim only releases free memory; it is thread-safe.
                unsafe { libc::malloc_trim(0) };
            });
        }
    }
}

/// The output side: a buffer flushed to the channel in chunks.
struct Out {
    buf: String,
    tx: mpsc::Sender<Bytes>,
    s: AppState,
}

impl Out {
    /// Sends the buffer once it is a chunk (or always, with `force`); false when the
    /// client is gone or has not taken anything for the write timeout.
    async fn flush(&mut self, force: bool) -> bool {
        if self.buf.is_empty() || (!force && self.buf.len() < CHUNK) {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.send(chunk).await
    }

    /// Sends one chunk; false when the client is gone or has not taken anything for
    /// the write timeout.
    async fn send(&mut self, chunk: Bytes) -> bool {
        match tokio::time::timeout(self.s.guard.write_timeout, self.tx.send(chunk)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                self.s
                    .metrics
                    .listeners
                    .http
                    .timeouts
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "HTTP: a client took nothing for {} s; its answer is abandoned",
                    self.s.guard.write_timeout.as_secs_f64()
                );
                false
            }
        }
    }
}

/// Writes the whole answer; true when it is complete.
async fn produce(s: &AppState, job: &Job, budget: Budget, out: &mut Out) -> bool {
    let (from, to, id) = (job.from, job.to, job.meter_id);
    match job.shape {
        Shape::Series => {
            let key = if job.step.is_some() {
                "buckets"
            } else {
                "readings"
            };
            out.buf = format!(
                "{{\"meter\":{},\"step\":\"{}\",\"{key}\":[",
                serde_json::Value::from(job.meter.as_str()),
                job.step.map_or("raw", Step::name)
            );
        }
        Shape::Csv => {
            match job.step {
                Some(_) => out.buf.push_str(&BUCKET_COLUMNS.join(",")),
                None => {
                    out.buf.push_str("timestamp");
                    for f in FIELDS {
                        out.buf.push(',');
                        out.buf.push_str(f.name);
                    }
                }
            }
            out.buf.push('\n');
        }
        Shape::JsonLines => {}
    }
    if !out.flush(true).await {
        return false;
    }
    let mut first = true;
    let mut t = job.step.map_or(from, |st| st.bucket(from).0);
    while t < to {
        let end = match job.step {
            None => (t + RAW_WINDOW).min(to),
            Some(st) => st.bucket((t + BUCKET_WINDOW).min(to) - 1).1,
        };
        let (step, shape, was_first) = (job.step, job.shape, first);
        // Reading and formatting both run on the blocking pool: a large answer never
        // keeps the runtime's threads from the live stream, the bridge and the store.
        let read = move |r: &dyn crate::store::StoreRead| -> anyhow::Result<(Vec<Bytes>, bool)> {
            let mut first = was_first;
            let mut w = Window::default();
            match step {
                Some(st) => {
                    for b in buckets(r, id, st, t, end.min(to))? {
                        write_bucket(&mut w.buf, &b, shape, &mut first);
                        w.cut(false);
                    }
                }
                None => {
                    for x in r.samples(id, t, end)? {
                        write_sample(&mut w.buf, &x, shape, &mut first);
                        w.cut(false);
                    }
                }
            }
            w.cut(true);
            Ok((w.chunks, first))
        };
        let window = match budget {
            Budget::Reads => s.read(read).await,
            Budget::Export => s.read_unbudgeted(read).await,
        };
        let chunks = match window {
            Ok((chunks, f)) => {
                first = f;
                chunks
            }
            // Logged by ApiError; the client sees a broken answer.
            Err(_) => return false,
        };
        for c in chunks {
            if !out.send(c).await {
                return false;
            }
        }
        t = end;
    }
    if job.shape == Shape::Series {
        out.buf.push_str("]}");
    }
    out.flush(true).await
}

/// One window's text, cut into chunks of about [`CHUNK`] bytes.
#[derive(Default)]
struct Window {
    buf: String,
    chunks: Vec<Bytes>,
}

impl Window {
    /// Moves the text into a chunk once it is one (or whatever there is, with `all`).
    fn cut(&mut self, all: bool) {
        if self.buf.len() >= CHUNK || (all && !self.buf.is_empty()) {
            self.chunks.push(Bytes::from(std::mem::take(&mut self.buf)));
        }
    }
}

fn separator(buf: &mut String, first: &mut bool) {
    if !std::mem::take(first) {
        buf.push(',');
    }
}

fn write_bucket(buf: &mut String, b: &Bucket, shape: Shape, first: &mut bool) {
    match shape {
        Shape::Csv => b.csv_row(buf),
        Shape::JsonLines | Shape::Series => {
            if shape == Shape::Series {
                separator(buf, first);
            }
            buf.push_str(&serde_json::to_string(b).unwrap_or_default());
            if shape == Shape::JsonLines {
                buf.push('\n');
            }
        }
    }
}

fn write_sample(buf: &mut String, x: &Sample, shape: Shape, first: &mut bool) {
    use std::fmt::Write;
    match shape {
        Shape::Csv => {
            buf.push_str(&ts(x.ts));
            for (v, f) in x.v.iter().zip(FIELDS) {
                match v {
                    Some(v) if f.name == "gas_timestamp" => {
                        let _ = write!(buf, ",{}", ts(*v));
                    }
                    Some(v) => {
                        let _ = write!(buf, ",{}", *v as f64 / f.scale);
                    }
                    None => buf.push(','),
                }
            }
            buf.push('\n');
        }
        Shape::JsonLines | Shape::Series => {
            if shape == Shape::Series {
                separator(buf, first);
            }
            let _ = write!(
                buf,
                "{{\"timestamp\":\"{}\",\"reading\":{}}}",
                ts(x.ts),
                x.to_json()
            );
            if shape == Shape::JsonLines {
                buf.push('\n');
            }
        }
    }
}

/// The answer when every export place is taken: 429 with `Retry-After`.
pub fn too_many_exports(max: usize) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": format!(
            "{max} exports are running, the most at once (--max-exports); try again shortly"
        )})
        .to_string(),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    r
}
