//! The REST API under `/api/v1/`. These shapes are a contract other tools rely on: add
//! fields freely, never rename them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as J};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::stream::{self, Budget, Job, Shape};
use super::{ApiError, AppState};
use crate::store::calendar::{local_date, local_midnight, Step};
use crate::store::{MeterInfo, RollupRow, StoreRead};
use meterkast_codec::Timestamp;

/// The OpenAPI document, generated from the handlers and types below.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "meterkast API",
        description = "Smart meter readings: latest, history, capacity-tariff peaks, export."
    ),
    paths(
        healthz,
        now,
        meters,
        series,
        peaks,
        export,
        telegram,
        super::dash::cost,
        super::dash::baseload,
        super::dash::get_prices,
        super::dash::put_prices,
        super::dash::patch_prices,
        super::dash::status,
        super::dash::power,
        super::live_doc,
        super::metrics_doc
    ),
    components(schemas(
        ErrorBody,
        MeterJson,
        Bucket,
        RawReading,
        SeriesResponse,
        PeaksResponse,
        Peak,
        DayPeak,
        MonthPeak,
        crate::prices::Prices,
        crate::prices::Cost,
        super::dash::CostResponse,
        super::dash::Night,
        super::dash::BaseloadResponse,
        super::dash::SourceJson,
        super::dash::MeterStatus,
        super::dash::StatusResponse,
        super::dash::PowerResponse
    ))
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`.
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_json().unwrap_or_default(),
    )
}

/// An error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong and how to fix it.
    pub error: String,
}

/// An instant as RFC 3339 UTC.
pub(crate) fn ts(t: i64) -> String {
    Timestamp(t).to_string()
}

/// The first instant a parameter may name: 0000-01-01T00:00:00Z.
const FIRST_INSTANT: i64 = -62_167_219_200;
/// The last: 9999-12-31T23:59:59Z.
const LAST_INSTANT: i64 = 253_402_300_799;

/// Reads an instant: RFC 3339, or a date `YYYY-MM-DD` for its local midnight; only
/// the years 0000 to 9999 (in UTC), which print as RFC 3339.
pub(crate) fn parse_time(name: &str, s: &str) -> Result<i64, ApiError> {
    let t = parse_instant(name, s)?;
    if !(FIRST_INSTANT..=LAST_INSTANT).contains(&t) {
        return Err(ApiError::bad(format!(
            "{name}={s} is outside the years 0000 to 9999 (UTC): ask for a time from 0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
        )));
    }
    Ok(t)
}

fn parse_instant(name: &str, s: &str) -> Result<i64, ApiError> {
    let b = s.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
        if let (Some(y), Some(m), Some(d)) = (n(0..4), n(5..7), n(8..10)) {
            if (1..=12).contains(&m)
                && d >= 1
                && d <= meterkast_codec::time::days_in_month(i64::from(y), m)
            {
                return Ok(local_midnight(i64::from(y), m, d));
            }
        }
    }
    crate::timefmt::parse_rfc3339(s).map(|t| t.0).map_err(|_| {
        ApiError::bad(format!(
            "{name}={s} is not a time: use RFC 3339 (2026-03-29T00:00:00Z) or a date (2026-03-29)"
        ))
    })
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad(format!("malformed query: {}", e.body_text())))
}

/// Finds the meter a request means: the one named, or the only one.
pub(crate) async fn resolve(s: &AppState, meter: Option<String>) -> Result<MeterInfo, ApiError> {
    let all = s.read(|r| r.meter_list()).await?;
    match meter.filter(|m| !m.is_empty()) {
        Some(m) => all
            .into_iter()
            .find(|x| x.equipment_id == m)
            .ok_or_else(|| {
                ApiError::not_found(format!("no meter {m}; /api/v1/meters lists the meters"))
            }),
        None => match all.len() {
            0 => Err(ApiError::not_found("no meter has sent a reading yet")),
            1 => Ok(all.into_iter().next().expect("one")),
            n => Err(ApiError::bad(format!(
                "{n} meters: add meter=ID (see /api/v1/meters)"
            ))),
        },
    }
}

/// `GET /healthz`: alive, with the sources' state; `"status"` is `"ok"`, or
/// `"degraded"` with `"reasons"` (still HTTP 200: the daemon serves).
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive: `{\"status\": \"ok\"|\"degraded\", \"reasons\": [...], \"sources\": [...], ...}`")))]
pub async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let sources: Vec<_> = s
        .sources
        .iter()
        .map(|st| {
            let st = st.lock().expect("status lock");
            json!({"name": st.name, "connected": st.connected, "accepted": st.accepted, "note": st.note,
                   "rejected": st.rejected, "last_frame": st.last_frame.map(ts)})
        })
        .collect();
    let meters = s.latest.read().expect("latest lock").len();
    let reasons = super::health::reasons(&s);
    let status = if reasons.is_empty() { "ok" } else { "degraded" };
    Json(
        json!({"status": status, "reasons": reasons, "version": env!("CARGO_PKG_VERSION"), "meters": meters, "sources": sources}),
    )
}

/// `GET /api/v1/now`: the latest reading of every meter.
#[utoipa::path(get, path = "/api/v1/now", responses((status = 200, description = "`[{\"meter\", \"timestamp\", \"reading\", \"objects\", ...}]`, latest per meter")))]
pub async fn now(State(s): State<AppState>) -> impl IntoResponse {
    let latest = s.latest.read().expect("latest lock");
    let mut body =
        String::with_capacity(latest.values().map(|v| v.frame.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, v) in latest.values().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&v.frame);
    }
    body.push(']');
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// A meter.
#[derive(Serialize, ToSchema)]
pub struct MeterJson {
    /// Equipment id as the meter sends it.
    pub id: String,
    /// Detected dialect.
    pub dialect: String,
    /// First reading (RFC 3339, UTC).
    pub first_seen: String,
    /// Latest reading (RFC 3339, UTC).
    pub last_seen: String,
    /// M-Bus sub-meters: `[{"channel", "type", "unique_id", "unit"}]`.
    #[schema(value_type = Vec<Object>)]
    pub submeters: J,
    /// Where it was first seen.
    pub source: String,
    /// The meter this one replaced, if any.
    pub replaces: Option<String>,
}

/// `GET /api/v1/meters`.
#[utoipa::path(get, path = "/api/v1/meters", responses((status = 200, body = Vec<MeterJson>)))]
pub async fn meters(State(s): State<AppState>) -> Result<Json<Vec<MeterJson>>, ApiError> {
    let all = s.read(|r| r.meter_list()).await?;
    let out = all
        .iter()
        .map(|m| MeterJson {
            id: m.equipment_id.clone(),
            dialect: m.dialect.clone(),
            first_seen: ts(m.first_seen),
            last_seen: ts(m.last_seen),
            submeters: serde_json::from_str(&m.submeters).unwrap_or(J::Array(vec![])),
            source: m.source.clone(),
            replaces: m
                .replaces
                .and_then(|id| all.iter().find(|x| x.id == id))
                .map(|x| x.equipment_id.clone()),
        })
        .collect();
    Ok(Json(out))
}

/// The query of `/api/v1/series` and `/api/v1/export`.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Equipment id; may be left out when there is one meter.
    pub meter: Option<String>,
    /// Start (RFC 3339 or YYYY-MM-DD); default the start of today (local).
    pub from: Option<String>,
    /// End, exclusive (RFC 3339 or YYYY-MM-DD); default a day after `from`.
    pub to: Option<String>,
    /// `raw`, `15m`, `1h`, `1d` or `1mo`; default `1h`.
    pub step: Option<String>,
    /// For export: `csv` (default) or `json`.
    pub format: Option<String>,
}

/// One bucket of the series (energy in kWh, gas and water in m³, heat in GJ).
#[derive(Serialize, ToSchema, Default, Clone)]
pub struct Bucket {
    /// Bucket start (RFC 3339, UTC).
    pub start: String,
    /// Bucket end, exclusive.
    pub end: String,
    pub import_kwh: Option<f64>,
    pub export_kwh: Option<f64>,
    pub import_t1_kwh: Option<f64>,
    pub import_t2_kwh: Option<f64>,
    pub import_t3_kwh: Option<f64>,
    pub import_t4_kwh: Option<f64>,
    pub export_t1_kwh: Option<f64>,
    pub export_t2_kwh: Option<f64>,
    pub export_t3_kwh: Option<f64>,
    pub export_t4_kwh: Option<f64>,
    pub gas_m3: Option<f64>,
    pub water_m3: Option<f64>,
    pub heat_gj: Option<f64>,
    /// Mean of the power readings in the bucket, W (import positive).
    pub avg_power_w: Option<f64>,
    pub max_power_w: Option<f64>,
    pub min_power_w: Option<f64>,
    pub min_voltage_l1_v: Option<f64>,
    pub max_voltage_l1_v: Option<f64>,
    pub min_voltage_l2_v: Option<f64>,
    pub max_voltage_l2_v: Option<f64>,
    pub min_voltage_l3_v: Option<f64>,
    pub max_voltage_l3_v: Option<f64>,
    /// Readings that fell in the bucket.
    pub samples: i64,
}

/// The CSV columns of a bucket, in order.
pub const BUCKET_COLUMNS: &[&str] = &[
    "start",
    "end",
    "import_kwh",
    "export_kwh",
    "import_t1_kwh",
    "import_t2_kwh",
    "import_t3_kwh",
    "import_t4_kwh",
    "export_t1_kwh",
    "export_t2_kwh",
    "export_t3_kwh",
    "export_t4_kwh",
    "gas_m3",
    "water_m3",
    "heat_gj",
    "avg_power_w",
    "max_power_w",
    "min_power_w",
    "min_voltage_l1_v",
    "max_voltage_l1_v",
    "min_voltage_l2_v",
    "max_voltage_l2_v",
    "min_voltage_l3_v",
    "max_voltage_l3_v",
    "samples",
];

impl Bucket {
    pub(crate) fn new(start: i64, end: i64, r: Option<&RollupRow>) -> Bucket {
        let mut b = Bucket {
            start: ts(start),
            end: ts(end),
            ..Default::default()
        };
        let Some(r) = r else { return b };
        let s = &r.rollup.sums;
        let kwh = |x: i64| Some(x as f64 / 1000.0);
        (b.import_kwh, b.export_kwh) = (kwh(s[0]), kwh(s[1]));
        (
            b.import_t1_kwh,
            b.import_t2_kwh,
            b.import_t3_kwh,
            b.import_t4_kwh,
        ) = (kwh(s[2]), kwh(s[3]), kwh(s[4]), kwh(s[5]));
        (
            b.export_t1_kwh,
            b.export_t2_kwh,
            b.export_t3_kwh,
            b.export_t4_kwh,
        ) = (kwh(s[6]), kwh(s[7]), kwh(s[8]), kwh(s[9]));
        (b.gas_m3, b.water_m3, b.heat_gj) = (kwh(s[10]), kwh(s[11]), kwh(s[12]));
        b.samples = s[14];
        b.avg_power_w = (s[14] > 0 && r.rollup.max[0].is_some())
            .then(|| (s[13] as f64 / s[14] as f64 * 10.0).round() / 10.0);
        let f = |x: Option<i64>, div: f64| x.map(|v| v as f64 / div);
        (b.min_power_w, b.max_power_w) = (f(r.rollup.min[0], 1.0), f(r.rollup.max[0], 1.0));
        (b.min_voltage_l1_v, b.max_voltage_l1_v) =
            (f(r.rollup.min[1], 10.0), f(r.rollup.max[1], 10.0));
        (b.min_voltage_l2_v, b.max_voltage_l2_v) =
            (f(r.rollup.min[2], 10.0), f(r.rollup.max[2], 10.0));
        (b.min_voltage_l3_v, b.max_voltage_l3_v) =
            (f(r.rollup.min[3], 10.0), f(r.rollup.max[3], 10.0));
        b
    }

    pub(crate) fn csv_row(&self, out: &mut String) {
        use std::fmt::Write;
        let o = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
        let vals = [
            self.import_kwh,
            self.export_kwh,
            self.import_t1_kwh,
            self.import_t2_kwh,
            self.import_t3_kwh,
            self.import_t4_kwh,
            self.export_t1_kwh,
            self.export_t2_kwh,
            self.export_t3_kwh,
            self.export_t4_kwh,
            self.gas_m3,
            self.water_m3,
            self.heat_gj,
            self.avg_power_w,
            self.max_power_w,
            self.min_power_w,
            self.min_voltage_l1_v,
            self.max_voltage_l1_v,
            self.min_voltage_l2_v,
            self.max_voltage_l2_v,
            self.min_voltage_l3_v,
            self.max_voltage_l3_v,
        ];
        let _ = write!(out, "{},{}", self.start, self.end);
        for v in vals {
            let _ = write!(out, ",{}", o(v));
        }
        let _ = writeln!(out, ",{}", self.samples);
    }
}

/// A stored full-resolution reading.
#[derive(Serialize, ToSchema)]
pub struct RawReading {
    /// Its time (RFC 3339, UTC).
    pub timestamp: String,
    /// The stored quantities, with the reading's names and units.
    #[schema(value_type = Object)]
    pub reading: J,
}

/// `/api/v1/series`: buckets, or for `step=raw` the stored readings.
#[derive(Serialize, ToSchema)]
pub struct SeriesResponse {
    /// Equipment id.
    pub meter: String,
    /// The step asked for.
    pub step: String,
    /// The buckets (not for `raw`), every bucket of the range, empty ones included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<Bucket>>,
    /// The readings (only for `raw`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readings: Option<Vec<RawReading>>,
}

/// The step of a query, or `None` for raw.
fn parse_step(s: Option<&str>) -> Result<Option<Step>, ApiError> {
    match s.unwrap_or("1h") {
        "raw" => Ok(None),
        other => Step::parse(other)
            .map(Some)
            .ok_or_else(|| ApiError::bad(format!("step={other}: use raw, 15m, 1h, 1d or 1mo"))),
    }
}

/// Most buckets one request may ask for.
const MAX_BUCKETS: i64 = 50_000;
/// Longest range of raw readings in one `series` request (export streams more).
const MAX_RAW_SECONDS: i64 = 2 * 86_400;

/// Checks and resolves the range of a query; `limited` applies the size limits of a
/// single JSON answer (export streams, so it has none).
pub(crate) fn range(
    q: &SeriesQuery,
    step: Option<Step>,
    limited: bool,
) -> Result<(i64, i64), ApiError> {
    let from = match &q.from {
        Some(f) => parse_time("from", f)?,
        None => Step::Day.bucket(crate::source::now()).0,
    };
    let to = match &q.to {
        Some(t) => parse_time("to", t)?,
        None => Step::Day.bucket(from).1,
    };
    if from >= to {
        return Err(ApiError::bad("from must be before to"));
    }
    let approx = match step {
        Some(Step::Quarter) => (to - from) / 900,
        Some(Step::Hour) => (to - from) / 3600,
        Some(Step::Day) => (to - from) / 86_400,
        Some(Step::Month) => (to - from) / (28 * 86_400),
        None => 0,
    };
    if limited && approx > MAX_BUCKETS {
        return Err(ApiError::bad(format!(
            "that is {approx} buckets; ask for at most {MAX_BUCKETS} (use a larger step)"
        )));
    }
    if limited && step.is_none() && to - from > MAX_RAW_SECONDS {
        return Err(ApiError::bad(format!(
            "step=raw covers at most {} hours per request; use /api/v1/export for more",
            MAX_RAW_SECONDS / 3600
        )));
    }
    if to - from > 200 * 366 * 86_400 {
        return Err(ApiError::bad(
            "that range spans more than 200 years; ask for less",
        ));
    }
    Ok((from, to))
}

/// Every bucket of `[from, to)`, filled from the stored roll-ups.
pub(crate) fn buckets(
    r: &dyn StoreRead,
    meter: i64,
    step: Step,
    from: i64,
    to: i64,
) -> anyhow::Result<Vec<Bucket>> {
    let first = step.bucket(from).0;
    let rows = r.rollups(meter, step, first, to)?;
    let mut out = Vec::new();
    let mut t = first;
    let mut i = 0;
    while t < to {
        let (start, end) = step.bucket(t);
        while i < rows.len() && rows[i].start < start {
            i += 1;
        }
        let row = rows.get(i).filter(|r| r.start == start);
        out.push(Bucket::new(start, end, row));
        t = end;
    }
    Ok(out)
}

/// `GET /api/v1/series`: streamed, so memory stays small whatever the range.
#[utoipa::path(get, path = "/api/v1/series", params(SeriesQuery), responses(
    (status = 200, body = SeriesResponse),
    (status = 400, body = ErrorBody, description = "Bad parameters"),
    (status = 404, body = ErrorBody, description = "Unknown meter")))]
pub async fn series(
    State(s): State<AppState>,
    q: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let step = parse_step(q.step.as_deref())?;
    let (from, to) = range(&q, step, true)?;
    let m = resolve(&s, q.meter.clone()).await?;
    let job = Job::new(m, step, (from, to), Shape::Series);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        stream::body(s, job, Budget::Reads, ()),
    )
        .into_response())
}

/// The query of `/api/v1/peaks`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeaksQuery {
    /// Equipment id; may be left out when there is one meter.
    pub meter: Option<String>,
    /// The month, `YYYY-MM`; default this month.
    pub month: Option<String>,
}

/// A peak quarter-hour.
#[derive(Serialize, ToSchema)]
pub struct Peak {
    /// Quarter start (RFC 3339, UTC).
    pub start: String,
    /// Quarter end.
    pub end: String,
    /// Average import power over the quarter, W.
    pub average_power_w: f64,
}

/// A day's highest quarter-hour.
#[derive(Serialize, ToSchema)]
pub struct DayPeak {
    /// Local date.
    pub date: String,
    /// Quarter start (RFC 3339, UTC).
    pub start: String,
    /// Average import power over the quarter, W.
    pub average_power_w: f64,
}

/// A month's peak.
#[derive(Serialize, ToSchema)]
pub struct MonthPeak {
    /// `YYYY-MM`.
    pub month: String,
    /// Its highest quarter-hour average import, W (null: no data).
    pub peak_w: Option<f64>,
    /// When that quarter started.
    pub start: Option<String>,
}

/// `/api/v1/peaks`: the capacity-tariff view.
#[derive(Serialize, ToSchema)]
pub struct PeaksResponse {
    /// Equipment id.
    pub meter: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The month's highest quarter-hour (null: no data).
    pub peak: Option<Peak>,
    /// Each day's highest quarter-hour.
    pub days: Vec<DayPeak>,
    /// The last 13 months' peaks, oldest first, ending with `month`.
    pub months: Vec<MonthPeak>,
    /// Mean of the last 12 months' peaks (months with data), W.
    pub rolling_12_month_average_w: Option<f64>,
    /// The same with each month counted at least 2.5 kW, as the Belgian tariff bills it.
    pub rolling_12_month_average_billed_w: Option<f64>,
    /// The meter's own `1-0:1.6.0` and `0-0:98.1.0`, when it sends them.
    #[schema(value_type = Object)]
    pub meter_reported: J,
}

fn month_bounds(y: i64, m: u32) -> (i64, i64) {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (local_midnight(y, m, 1), local_midnight(ny, nm, 1))
}

/// `GET /api/v1/peaks`: quarter-hour averages computed from energy deltas, alongside
/// the meter's own values.
#[utoipa::path(get, path = "/api/v1/peaks", params(PeaksQuery), responses(
    (status = 200, body = PeaksResponse),
    (status = 400, body = ErrorBody, description = "Bad parameters"),
    (status = 404, body = ErrorBody, description = "Unknown meter")))]
pub async fn peaks(
    State(s): State<AppState>,
    q: Result<Query<PeaksQuery>, QueryRejection>,
) -> Result<Json<PeaksResponse>, ApiError> {
    let q = query(q)?;
    let (y, m) = match &q.month {
        Some(mo) => {
            let bad = || ApiError::bad(format!("month={mo}: use YYYY-MM, e.g. 2026-01"));
            let (ys, ms) = mo.split_once('-').ok_or_else(bad)?;
            let y: i64 = ys.parse().map_err(|_| bad())?;
            let m: u32 = ms.parse().map_err(|_| bad())?;
            if ys.len() != 4 || !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
                return Err(bad());
            }
            (y, m)
        }
        None => {
            let (c, _) = Timestamp(crate::source::now()).to_cet();
            (c.year, c.month)
        }
    };
    let meter = resolve(&s, q.meter.clone()).await?;
    let id = meter.id;
    let (from, to) = month_bounds(y, m);
    let (quarters, months) = s
        .read(move |r| {
            let quarters = r.rollups(id, Step::Quarter, from, to)?;
            let mut months = Vec::new();
            for k in (0..13).rev() {
                let idx = y * 12 + i64::from(m) - 1 - k;
                let (my, mm) = (idx.div_euclid(12), (idx.rem_euclid(12) + 1) as u32);
                let (a, b) = month_bounds(my, mm);
                months.push((format!("{my:04}-{mm:02}"), r.max_quarter_import(id, a, b)?));
            }
            Ok((quarters, months))
        })
        .await?;
    let w = |wh: i64| (wh * 4) as f64;
    let peak = quarters
        .iter()
        .max_by_key(|q| (q.rollup.sums[0], -q.start))
        .filter(|q| q.rollup.sums[0] > 0)
        .map(|q| Peak {
            start: ts(q.start),
            end: ts(q.end),
            average_power_w: w(q.rollup.sums[0]),
        });
    let mut days: Vec<DayPeak> = Vec::new();
    for q in &quarters {
        let date = local_date(q.start);
        match days.last_mut() {
            Some(d) if d.date == date => {
                if w(q.rollup.sums[0]) > d.average_power_w {
                    d.average_power_w = w(q.rollup.sums[0]);
                    d.start = ts(q.start);
                }
            }
            _ => days.push(DayPeak {
                date,
                start: ts(q.start),
                average_power_w: w(q.rollup.sums[0]),
            }),
        }
    }
    let months: Vec<MonthPeak> = months
        .into_iter()
        .map(|(month, p)| MonthPeak {
            month,
            peak_w: p.map(|(_, wh)| w(wh)),
            start: p.map(|(t, _)| ts(t)),
        })
        .collect();
    let last12: Vec<f64> = months.iter().skip(1).filter_map(|m| m.peak_w).collect();
    let avg = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let billed: Vec<f64> = last12.iter().map(|x| x.max(2500.0)).collect();
    let meter_reported = reported_peaks(&s, &meter.equipment_id);
    Ok(Json(PeaksResponse {
        meter: meter.equipment_id,
        month: format!("{y:04}-{m:02}"),
        peak,
        days,
        rolling_12_month_average_w: avg(&last12),
        rolling_12_month_average_billed_w: avg(&billed),
        months,
        meter_reported,
    }))
}

/// The meter's own capacity registers from its latest frame.
fn reported_peaks(s: &AppState, meter: &str) -> J {
    let latest = s.latest.read().expect("latest lock");
    let Some(l) = latest.get(meter) else {
        return json!({});
    };
    let Ok(frame) = serde_json::from_str::<J>(&l.frame) else {
        return json!({});
    };
    let mut out = serde_json::Map::new();
    for key in ["1-0:1.6.0", "0-0:98.1.0", "1-0:1.4.0"] {
        if let Some(v) = frame["objects"].get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    J::Object(out)
}

/// The query of `/api/v1/telegram`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TelegramQuery {
    /// Equipment id; may be left out when there is one meter.
    pub meter: Option<String>,
}

/// `GET /api/v1/telegram`: the last raw telegram (decrypted DSMR for Smarty).
#[utoipa::path(get, path = "/api/v1/telegram", params(TelegramQuery), responses(
    (status = 200, content_type = "text/plain", body = String),
    (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn telegram(
    State(s): State<AppState>,
    q: Result<Query<TelegramQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let latest = s.latest.read().expect("latest lock");
    let l = match q.meter.filter(|m| !m.is_empty()) {
        Some(m) => latest.get(&m).ok_or_else(|| {
            ApiError::not_found(format!("no meter {m}; /api/v1/meters lists the meters"))
        })?,
        None => match latest.len() {
            0 => return Err(ApiError::not_found("no telegram received yet")),
            1 => latest.values().next().expect("one"),
            n => return Err(ApiError::bad(format!("{n} meters: add meter=ID"))),
        },
    };
    let raw: Arc<[u8]> = l.raw.clone();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from(raw.to_vec()),
    )
        .into_response())
}

/// `GET /api/v1/export`: CSV or JSON Lines, streamed in constant memory; at most
/// `--max-exports` at once.
#[utoipa::path(get, path = "/api/v1/export", params(SeriesQuery), responses(
    (status = 200, description = "CSV (header line, then one line per bucket or reading) or JSON Lines"),
    (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 429, body = ErrorBody, description = "Every export place is taken; see Retry-After")))]
pub async fn export(
    State(s): State<AppState>,
    q: Result<Query<SeriesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let step = parse_step(q.step.as_deref())?;
    let json_lines = match q.format.as_deref().unwrap_or("csv") {
        "csv" => false,
        "json" => true,
        f => return Err(ApiError::bad(format!("format={f}: use csv or json"))),
    };
    let (from, to) = range(&q, step, false)?;
    let Ok(place) = s.exports.clone().try_acquire_owned() else {
        s.metrics
            .listeners
            .exports_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(stream::too_many_exports(s.guard.max_exports));
    };
    let m = resolve(&s, q.meter.clone()).await?;
    let (ctype, ext, shape) = if json_lines {
        ("application/x-ndjson", "jsonl", Shape::JsonLines)
    } else {
        ("text/csv; charset=utf-8", "csv", Shape::Csv)
    };
    let disposition = attachment(
        &format!(
            "meterkast-{}-{}",
            m.equipment_id,
            step.map_or("raw", Step::name)
        ),
        ext,
    );
    let job = Job::new(m, step, (from, to), shape);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        stream::body(s, job, Budget::Export, place),
    )
        .into_response())
}

/// Characters kept as they are in an RFC 5987 `filename*` value.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// A `Content-Disposition: attachment` for `stem.ext`, whatever characters the stem
/// (a meter's id) holds: `filename` gets a plain ASCII form (anything else becomes
/// `_`), and when that differs, `filename*` (RFC 6266) carries the name in UTF-8 with
/// control characters left out.
pub(crate) fn attachment(stem: &str, ext: &str) -> HeaderValue {
    let plain: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut v = format!("attachment; filename=\"{plain}.{ext}\"");
    if plain != stem {
        let full: String = stem.chars().filter(|c| !c.is_control()).collect();
        let enc = percent_encoding::utf8_percent_encode(&full, ATTR_CHAR);
        v.push_str(&format!("; filename*=UTF-8''{enc}.{ext}"));
    }
    HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_outside_0000_to_9999_offsets_and_leap_seconds_are_refused() {
        assert_eq!(ts(FIRST_INSTANT), "0000-01-01T00:00:00Z");
        assert_eq!(ts(LAST_INSTANT), "9999-12-31T23:59:59Z");
        for bad in [
            "0000-01-01",
            "0000-01-01T00:30:00+01:00",
            "2026-03-29T00:00:00+99:99",
            "2026-03-29T00:00:00+24:00",
            "2026-03-29T00:00:00-00:60",
            "2026-03-29T23:59:60Z",
            "9999-12-31T23:59:59-01:00",
        ] {
            let e = parse_time("from", bad).expect_err(bad);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.message.contains(bad), "{bad}: {}", e.message);
        }
        for good in [
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-03-29T02:00:00+23:59",
            "2026-03-29",
        ] {
            let t = parse_time("from", good).expect(good);
            assert!(!ts(t).starts_with('-'), "{good}");
        }
    }

    #[test]
    fn attachment_names_are_header_safe_whatever_the_id() {
        let v = |s: &str| attachment(s, "csv").to_str().unwrap().to_string();
        assert_eq!(
            v("meterkast-E0025-1h"),
            "attachment; filename=\"meterkast-E0025-1h.csv\""
        );
        assert_eq!(
            v("meterkast-a\u{1}b-raw"),
            "attachment; filename=\"meterkast-a_b-raw.csv\"; filename*=UTF-8''meterkast-ab-raw.csv"
        );
        assert_eq!(
            v("meterkast-ab\"c; x=1-1h"),
            "attachment; filename=\"meterkast-ab_c__x_1-1h.csv\"; filename*=UTF-8''meterkast-ab%22c%3B%20x%3D1-1h.csv"
        );
        assert_eq!(
            v("meterkast-zähler-1d"),
            "attachment; filename=\"meterkast-z_hler-1d.csv\"; filename*=UTF-8''meterkast-z%C3%A4hler-1d.csv"
        );
        let long = "x\r\n".repeat(5000);
        assert!(!v(&long).contains('\r'));
    }
}
