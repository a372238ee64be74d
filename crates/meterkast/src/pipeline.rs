//! From a decoded telegram to what the store and the live outputs take.

use std::sync::{Arc, Mutex};

use meterkast_codec::{Reading, Telegram};
use serde_json::json;

use crate::json::FrameJson;
use crate::store::{Incoming, Sample};

/// The meter key for a telegram: its equipment id, or, for meters that send none,
/// a stand-in named after the source.
pub fn meter_key(t: &Telegram<'_>, source: &str) -> String {
    match t.meter_id() {
        Some(id) => id.to_string(),
        None => format!("unidentified@{source}"),
    }
}

/// The frame JSON kept as a meter's latest (`/api/v1/now`): the telegram's JSON with
/// the meter key and the effective time.
/// Serialized in one pass: at thousands of meters a second this is a worker's main cost.
pub fn frame_json(t: &Telegram<'_>, meter: &str, ts: i64) -> String {
    latest_json(t, meter, ts, Reading::from_telegram(t))
}

/// [`frame_json`] with the telegram's normalized reading already computed.
fn latest_json(t: &Telegram<'_>, meter: &str, ts: i64, reading: Reading) -> String {
    let mut frame = FrameJson::with_reading(t, reading);
    frame.meter = Some(meter);
    frame.timestamp = Some(meterkast_codec::Timestamp(ts));
    serde_json::to_string(&frame).unwrap_or_default()
}

/// The telegram's time, or `received` (unix seconds) for meters that send none
/// (DSMR 2.2 and 3.0).
pub fn effective_time(t: &Telegram<'_>, received: i64) -> i64 {
    t.timestamp.map_or(received, |x| x.0)
}

/// The sub-meters of a reading as the store keeps them
/// (`[{"channel", "type", "unique_id", "unit"}]`).
pub fn submeters_json(reading: &Reading) -> serde_json::Value {
    serde_json::Value::Array(
        reading
            .external
            .iter()
            .map(|x| json!({"channel": x.channel, "type": x.kind, "unique_id": x.unique_id, "unit": x.unit}))
            .collect(),
    )
}

/// Builds the store's view of one accepted telegram. With `with_frame` the frame JSON
/// for `/api/v1/now` is built too (bulk imports skip it: it is the costly part).
pub fn incoming(
    source: &str,
    t: &Telegram<'_>,
    raw: &[u8],
    received: i64,
    with_frame: bool,
) -> Incoming {
    let ts = effective_time(t, received);
    let reading = Reading::from_telegram(t);
    let sample = Sample::from_reading(ts, &reading);
    let submeters = submeters_json(&reading);
    let meter = meter_key(t, source);
    // The reading goes into the frame JSON rather than being computed a second time.
    let frame = with_frame.then(|| latest_json(t, &meter, ts, reading));
    Incoming {
        source: source.to_string(),
        meter,
        dialect: t.dialect.as_str().to_string(),
        ts,
        sample,
        submeters,
        frame,
        raw: raw.to_vec(),
    }
}

/// What to do once a reading is safely committed to the store, such as acknowledging
/// the MQTT message that carried it (so a worker that dies before its commit leaves
/// the message to be delivered again). Clones share one callback, which runs at most
/// once; dropping an `Ack` without [`Ack::done`] never runs it.
#[derive(Clone)]
pub struct Ack(Arc<Mutex<Option<AckFn>>>);

type AckFn = Box<dyn FnOnce() + Send>;

impl Ack {
    /// An acknowledgement that runs `f` when done.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Ack {
        Ack(Arc::new(Mutex::new(Some(Box::new(f)))))
    }

    /// Runs the callback (only the first call of any clone does anything).
    pub fn done(&self) {
        let f = self.0.lock().map(|mut g| g.take()).unwrap_or(None);
        if let Some(f) = f {
            f();
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

/// A reading for the store writer, with what to do once it is committed.
#[derive(Debug)]
pub struct ToStore {
    /// The reading.
    pub incoming: Incoming,
    /// Run after the commit that holds it.
    pub ack: Option<Ack>,
    /// When its frame was received (unix milliseconds), for the commit latency metric.
    pub received_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn an_ack_runs_once_and_only_when_done() {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        let a = Ack::new(move || {
            m.fetch_add(1, Ordering::SeqCst);
        });
        let b = a.clone();
        drop(a.clone());
        assert_eq!(n.load(Ordering::SeqCst), 0);
        b.done();
        a.done();
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
