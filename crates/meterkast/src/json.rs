//! The JSON shape of one decoded frame: what `meterkast parse` prints per line and what
//! the API's `/api/v1/now` builds on.

use meterkast_codec::{Dialect, ObjectMap, Reading, Security, Telegram, Timestamp};
use serde::Serialize;

/// One decoded frame, ready for `serde_json`.
#[derive(Serialize)]
pub struct FrameJson<'t, 'a> {
    /// The detected dialect.
    pub dialect: Dialect,
    /// The identification line (DSMR), or null.
    pub header: Option<&'t str>,
    /// The electricity meter's equipment id, as sent.
    pub meter_id: Option<&'t str>,
    /// The meter key the store files it under (only in `/api/v1/now`'s frames).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<&'t str>,
    /// The telegram's own time, UTC; null when it has none.
    pub timestamp: Option<Timestamp>,
    /// Every object keyed by reduced OBIS id.
    pub objects: ObjectMap<'t, 'a>,
    /// The normalized reading.
    pub reading: Reading,
    /// DLMS security details (system title, frame counter, authenticated), when encrypted.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub security: Option<&'t Security>,
}

impl<'t, 'a> FrameJson<'t, 'a> {
    /// Builds the JSON view of a telegram (computes its normalized reading).
    pub fn new(t: &'t Telegram<'a>) -> Self {
        Self::with_reading(t, Reading::from_telegram(t))
    }

    /// The JSON view of a telegram whose normalized reading is already at hand.
    pub fn with_reading(t: &'t Telegram<'a>, reading: Reading) -> Self {
        FrameJson {
            dialect: t.dialect,
            header: t.header.as_deref(),
            meter_id: t.meter_id(),
            meter: None,
            timestamp: t.timestamp,
            objects: ObjectMap(&t.objects),
            reading,
            security: t.security.as_ref(),
        }
    }
}
