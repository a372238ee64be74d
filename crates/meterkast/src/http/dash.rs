//! Endpoints the dashboard needs that would otherwise make the browser do heavy work:
//! what a period cost, each night's base load, the prices (read and edit), and the
//! state of sources and meters as JSON.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{parse_time, query, range, resolve, ts, Bucket, SeriesQuery};
use super::{ApiError, AppState};
use crate::prices::{Cost, Prices};
use crate::store::calendar::{local_date, Step};
use crate::store::{Rollup, RollupRow};
use meterkast_codec::Timestamp;

/// The query of `/api/v1/cost`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CostQuery {
    /// Equipment id; may be left out when there is one meter.
    pub meter: Option<String>,
    /// Start (RFC 3339 or YYYY-MM-DD); default the start of today (local).
    pub from: Option<String>,
    /// End, exclusive; default a day after `from`.
    pub to: Option<String>,
}

/// `/api/v1/cost`: what a period used and cost at the prices in force.
#[derive(Serialize, ToSchema)]
pub struct CostResponse {
    /// Equipment id.
    pub meter: String,
    /// ISO 4217 currency of `cost`.
    pub currency: String,
    /// Days covered (for the fixed daily charge).
    pub days: f64,
    /// Everything the period used, summed (the fields of a series bucket).
    pub usage: Bucket,
    /// Its cost.
    pub cost: Cost,
}

/// A query parameter left empty (`from=`) counts as left out.
fn given(p: Option<String>) -> Option<String> {
    p.filter(|s| !s.is_empty())
}

/// The coarsest step whose buckets start exactly at `from` and at `to`.
fn aligned_step(from: i64, to: i64) -> Step {
    [Step::Month, Step::Day, Step::Hour]
        .into_iter()
        .find(|s| s.bucket(from).0 == from && s.bucket(to).0 == to)
        .unwrap_or(Step::Quarter)
}

/// The prices in force: edited in the dashboard, else configured, else defaults.
async fn prices_now(s: &AppState) -> Result<Prices, ApiError> {
    let configured = s.prices.clone();
    s.read(move |r| Prices::current(r, configured.as_ref()))
        .await
}

/// `GET /api/v1/cost`: usage and cost of a period, priced as everywhere in meterkast.
#[utoipa::path(get, path = "/api/v1/cost", params(CostQuery), responses(
    (status = 200, body = CostResponse),
    (status = 400, body = super::api::ErrorBody, description = "Bad parameters"),
    (status = 404, body = super::api::ErrorBody, description = "Unknown meter")))]
pub async fn cost(
    State(s): State<AppState>,
    q: Result<Query<CostQuery>, QueryRejection>,
) -> Result<Json<CostResponse>, ApiError> {
    let q = query(q)?;
    let sq = SeriesQuery {
        meter: q.meter.clone(),
        from: given(q.from),
        to: given(q.to),
        ..Default::default()
    };
    let (from, to) = range(&sq, Some(Step::Quarter), false)?;
    let step = aligned_step(from, to);
    // Bound the work like /api/v1/series does.
    range(&sq, Some(step), true)?;
    let m = resolve(&s, q.meter).await?;
    let id = m.id;
    let rows = s.read(move |r| r.rollups(id, step, from, to)).await?;
    let mut total = Rollup::default();
    for r in &rows {
        total.merge(&r.rollup);
    }
    let prices = prices_now(&s).await?;
    let days = (to - from) as f64 / 86_400.0;
    let row = RollupRow {
        start: from,
        end: to,
        rollup: total,
    };
    Ok(Json(CostResponse {
        meter: m.equipment_id,
        currency: prices.currency.clone(),
        days,
        cost: prices.cost(&row.rollup, days),
        usage: Bucket::new(from, to, Some(&row)),
    }))
}

/// The query of `/api/v1/power`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PowerQuery {
    /// Equipment id; may be left out when there is one meter.
    pub meter: Option<String>,
    /// How far back, in minutes (1 to 1440); default 15.
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<u32>,
}

/// `/api/v1/power`: recent net power, compact, to seed a live chart.
#[derive(Serialize, ToSchema)]
pub struct PowerResponse {
    /// Equipment id.
    pub meter: String,
    /// `[unix seconds, W]` pairs, oldest first; W is import − export.
    #[schema(value_type = Vec<Vec<f64>>)]
    pub points: Vec<(i64, f64)>,
}

/// `GET /api/v1/power`: the stored net power of the last minutes, as `[time, W]` pairs
/// (a few kB where `series?step=raw` would send every quantity).
#[utoipa::path(get, path = "/api/v1/power", params(PowerQuery), responses(
    (status = 200, body = PowerResponse),
    (status = 400, body = super::api::ErrorBody, description = "Bad parameters"),
    (status = 404, body = super::api::ErrorBody, description = "Unknown meter")))]
pub async fn power(
    State(s): State<AppState>,
    q: Result<Query<PowerQuery>, QueryRejection>,
) -> Result<Json<PowerResponse>, ApiError> {
    let q = query(q)?;
    let minutes = q.minutes.unwrap_or(15);
    if !(1..=1440).contains(&minutes) {
        return Err(ApiError::bad(format!(
            "minutes={minutes}: ask for 1 to 1440 minutes"
        )));
    }
    let m = resolve(&s, q.meter).await?;
    let id = m.id;
    // The meter's clock, not ours: a replayed capture is "recent" by its own time.
    let end = m.last_seen + 1;
    let from = end - i64::from(minutes) * 60;
    let samples = s.read(move |r| r.samples(id, from, end)).await?;
    let field = crate::store::sample::FIELDS
        .iter()
        .position(|f| f.name == "active_power_w")
        .expect("active_power_w is stored");
    let scale = crate::store::sample::FIELDS[field].scale;
    let points = samples
        .iter()
        .filter_map(|x| x.v[field].map(|v| (x.ts, v as f64 / scale)))
        .collect();
    Ok(Json(PowerResponse {
        meter: m.equipment_id,
        points,
    }))
}

/// The query of `/api/v1/baseload`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BaseloadQuery {
    /// Equipment id; may be left out when there is one meter.
    pub meter: Option<String>,
    /// First night (RFC 3339 or YYYY-MM-DD); default 90 days before `to`.
    pub from: Option<String>,
    /// End, exclusive; default the end of today (local).
    pub to: Option<String>,
}

/// One night's base load.
#[derive(Serialize, ToSchema)]
pub struct Night {
    /// The local date the night ends on (00:00–06:00 of this date).
    pub date: String,
    /// The lowest quarter-hour average import power of the night, W.
    pub power_w: f64,
    /// When that quarter started (RFC 3339, UTC).
    pub start: String,
}

/// `/api/v1/baseload`: what runs while everyone sleeps.
#[derive(Serialize, ToSchema)]
pub struct BaseloadResponse {
    /// Equipment id.
    pub meter: String,
    /// Each night with enough data, oldest first.
    pub nights: Vec<Night>,
    /// The median of the nights, W (null: no night with enough data).
    pub typical_w: Option<f64>,
    /// That power all year round, kWh.
    pub yearly_kwh: Option<f64>,
    /// Its yearly cost at the current import price (the mean of tariffs 1 and 2).
    pub yearly_cost: Option<f64>,
    /// ISO 4217 currency of `yearly_cost`.
    pub currency: String,
}

/// The local hours that count as night.
const NIGHT_HOURS: std::ops::Range<u32> = 0..6;
/// Quarters with readings a night needs to count (of 24).
const MIN_QUARTERS: usize = 20;
/// Longest range one request may cover.
const MAX_BASELOAD_DAYS: i64 = 800;

/// Per local night, the lowest quarter-hour average import among quarters that had
/// readings (quarters filled only by spreading a gap are not evidence).
fn nights(rows: &[RollupRow]) -> Vec<Night> {
    let mut out: Vec<(Night, usize)> = Vec::new();
    for r in rows {
        let (c, _) = Timestamp(r.start).to_cet();
        if !NIGHT_HOURS.contains(&c.hour) || r.rollup.sums[14] == 0 {
            continue;
        }
        let date = local_date(r.start);
        let w = (r.rollup.sums[0] * 4) as f64;
        match out.last_mut() {
            Some((n, k)) if n.date == date => {
                *k += 1;
                if w < n.power_w {
                    n.power_w = w;
                    n.start = ts(r.start);
                }
            }
            _ => out.push((
                Night {
                    date,
                    power_w: w,
                    start: ts(r.start),
                },
                1,
            )),
        }
    }
    out.into_iter()
        .filter(|(_, k)| *k >= MIN_QUARTERS)
        .map(|(n, _)| n)
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `GET /api/v1/baseload`: each night's lowest quarter-hour (00:00–06:00 local), the
/// typical night and what it costs a year.
#[utoipa::path(get, path = "/api/v1/baseload", params(BaseloadQuery), responses(
    (status = 200, body = BaseloadResponse),
    (status = 400, body = super::api::ErrorBody, description = "Bad parameters"),
    (status = 404, body = super::api::ErrorBody, description = "Unknown meter")))]
pub async fn baseload(
    State(s): State<AppState>,
    q: Result<Query<BaseloadQuery>, QueryRejection>,
) -> Result<Json<BaseloadResponse>, ApiError> {
    let q = query(q)?;
    let to = match &given(q.to) {
        Some(t) => parse_time("to", t)?,
        None => Step::Day.bucket(crate::source::now()).1,
    };
    let from = match &given(q.from) {
        Some(f) => parse_time("from", f)?,
        None => to - 90 * 86_400,
    };
    if from >= to {
        return Err(ApiError::bad("from must be before to"));
    }
    if to - from > MAX_BASELOAD_DAYS * 86_400 {
        return Err(ApiError::bad(format!(
            "ask for at most {MAX_BASELOAD_DAYS} days of nights at once"
        )));
    }
    let m = resolve(&s, q.meter).await?;
    let id = m.id;
    let rows = s
        .read(move |r| r.rollups(id, Step::Quarter, from, to))
        .await?;
    let nights = nights(&rows);
    let typical_w = median(nights.iter().map(|n| n.power_w).collect());
    let prices = prices_now(&s).await?;
    let price = (prices.import_kwh[0] + prices.import_kwh[1]) / 2.0;
    let yearly_kwh = typical_w.map(|w| w * 8766.0 / 1000.0);
    Ok(Json(BaseloadResponse {
        meter: m.equipment_id,
        nights,
        typical_w,
        yearly_kwh,
        yearly_cost: yearly_kwh.map(|k| k * price),
        currency: prices.currency,
    }))
}

/// `GET /api/v1/prices`: the prices in force (edited in the dashboard, else the config
/// file's `[prices]`, else defaults).
#[utoipa::path(get, path = "/api/v1/prices", responses((status = 200, body = Prices)))]
pub async fn get_prices(State(s): State<AppState>) -> Result<Json<Prices>, ApiError> {
    Ok(Json(prices_now(&s).await?))
}

/// The JSON object of a prices request body, or a 400 saying what to send.
fn prices_body(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let bad = |why: String| {
        ApiError::bad(format!(
            "the body must be prices as a JSON object, like GET /api/v1/prices answers: {why}"
        ))
    };
    let Json(v) = body.map_err(|e| bad(e.body_text()))?;
    match v {
        serde_json::Value::Object(m) => Ok(m),
        other => {
            let shown: String = other.to_string().chars().take(40).collect();
            Err(bad(format!("got {shown}")))
        }
    }
}

/// Checks and stores prices given as a complete object.
async fn store_prices(
    s: &AppState,
    v: serde_json::Map<String, serde_json::Value>,
) -> Result<Json<Prices>, ApiError> {
    let p: Prices = serde_json::from_value(serde_json::Value::Object(v)).map_err(|e| {
        ApiError::bad(format!(
            "the body must be prices as a JSON object, like GET /api/v1/prices answers: {e}"
        ))
    })?;
    p.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    s.read(move |r| p.save(r).map(|()| p)).await.map(Json)
}

/// `PUT /api/v1/prices`: replaces the prices; every field must be given (`PATCH`
/// changes some). They are kept in the database and win over the config file from
/// then on.
#[utoipa::path(put, path = "/api/v1/prices", request_body = Prices, responses(
    (status = 200, body = Prices, description = "The prices now in force"),
    (status = 400, body = super::api::ErrorBody, description = "Not valid prices, or fields missing (named in the message)")))]
pub async fn put_prices(
    State(s): State<AppState>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Prices>, ApiError> {
    let v = prices_body(body)?;
    let all = serde_json::to_value(Prices::default()).unwrap_or_default();
    let missing: Vec<&str> = all
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| !v.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad(format!(
            "PUT replaces all prices: {} missing (send them too, or use PATCH to change some)",
            missing.join(", ")
        )));
    }
    store_prices(&s, v).await
}

/// `PATCH /api/v1/prices`: changes the fields given and keeps the others (a JSON
/// merge patch, RFC 7396: a per-tariff list is replaced as a whole).
#[utoipa::path(patch, path = "/api/v1/prices", request_body(content = Object, description = "Some of the fields of Prices"), responses(
    (status = 200, body = Prices, description = "The prices now in force"),
    (status = 400, body = super::api::ErrorBody, description = "Not valid prices")))]
pub async fn patch_prices(
    State(s): State<AppState>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Prices>, ApiError> {
    let v = prices_body(body)?;
    let now = serde_json::to_value(prices_now(&s).await?).unwrap_or_default();
    let mut merged = now.as_object().cloned().unwrap_or_default();
    for (k, x) in v {
        if x.is_null() {
            return Err(ApiError::bad(format!(
                "{k}: null cannot remove a price; give a number"
            )));
        }
        merged.insert(k, x);
    }
    store_prices(&s, merged).await
}

/// A source as the status page shows it.
#[derive(Serialize, ToSchema)]
pub struct SourceJson {
    /// The source URL (without credentials).
    pub name: String,
    /// Whether its link is up.
    pub connected: bool,
    /// What it is doing or what went wrong, in words.
    pub note: String,
    /// Frames accepted.
    pub accepted: u64,
    /// Frames rejected, by cause.
    pub rejected: BTreeMap<String, u64>,
    /// The last accepted frame's time (RFC 3339, UTC).
    pub last_frame: Option<String>,
}

/// A meter's freshness.
#[derive(Serialize, ToSchema)]
pub struct MeterStatus {
    /// Equipment id.
    pub id: String,
    /// Its latest reading's time (RFC 3339, UTC).
    pub last_reading: String,
    /// Seconds since then (by the meter's clock).
    pub age_seconds: i64,
    /// Set while its clock is suspect: why (its readings are kept as suspect and not
    /// counted until the clock is right again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_suspect: Option<String>,
}

/// `/api/v1/status`: everything the dashboard's Meter page shows.
#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    /// meterkast's version.
    pub version: String,
    /// Every source.
    pub sources: Vec<SourceJson>,
    /// Every meter with a reading since start.
    pub meters: Vec<MeterStatus>,
    /// Readings dropped by the store as duplicate or late.
    pub duplicates: u64,
    /// Store commits since start.
    pub commits: u64,
}

/// `GET /api/v1/status`: sources with their state and counts, meters with their age.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = StatusResponse)))]
pub async fn status(State(s): State<AppState>) -> Json<StatusResponse> {
    let now = crate::source::now();
    let sources = s
        .sources
        .iter()
        .map(|st| {
            let st = st.lock().expect("status lock");
            SourceJson {
                name: st.name.clone(),
                connected: st.connected,
                note: st.note.clone(),
                accepted: st.accepted,
                rejected: st
                    .rejected
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), *v))
                    .collect(),
                last_frame: st.last_frame.map(ts),
            }
        })
        .collect();
    let suspect = s
        .metrics
        .suspect_meters
        .lock()
        .expect("suspect lock")
        .clone();
    let meters = s
        .latest
        .read()
        .expect("latest lock")
        .iter()
        .map(|(id, l)| MeterStatus {
            id: id.clone(),
            last_reading: ts(l.ts),
            age_seconds: now - l.ts,
            clock_suspect: suspect.get(id).cloned(),
        })
        .collect();
    Json(StatusResponse {
        version: env!("CARGO_PKG_VERSION").to_string(),
        sources,
        meters,
        duplicates: s.metrics.duplicates.load(Ordering::Relaxed),
        commits: s.metrics.commits.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::calendar::local_midnight;

    fn quarter(start: i64, wh: i64, samples: i64) -> RollupRow {
        let mut rollup = Rollup::default();
        rollup.sums[0] = wh;
        rollup.sums[14] = samples;
        RollupRow {
            start,
            end: start + 900,
            rollup,
        }
    }

    #[test]
    fn a_night_is_its_lowest_quarter_between_midnight_and_six() {
        let midnight = local_midnight(2026, 1, 15);
        let mut rows: Vec<RollupRow> = (0..96)
            .map(|i| quarter(midnight + i * 900, 100 + i, 10))
            .collect();
        rows[30].rollup.sums[0] = 20; // 07:30, not night: ignored
        rows[9].rollup.sums[0] = 50; // 02:15: the base load, 200 W
        rows[3].rollup.sums[0] = 1; // 00:45 but no readings: a spread gap, ignored
        rows[3].rollup.sums[14] = 0;
        let n = nights(&rows);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].date, "2026-01-15");
        assert_eq!(n[0].power_w, 200.0);
        assert_eq!(n[0].start, ts(midnight + 9 * 900));
        // A night with too few quarters does not count.
        assert!(nights(&rows[..10]).is_empty());
    }

    #[test]
    fn median_and_aligned_steps() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let d = local_midnight(2026, 3, 1);
        assert_eq!(aligned_step(d, local_midnight(2026, 4, 1)), Step::Month);
        assert_eq!(aligned_step(d, local_midnight(2026, 3, 2)), Step::Day);
        assert_eq!(aligned_step(d, d + 3600), Step::Hour);
        assert_eq!(aligned_step(d + 900, d + 1800), Step::Quarter);
    }
}
