//! A simulated smart meter: a household's load curve, solar and gas, turned into the
//! bytes a real meter's customer port would send.
//!
//! [`Simulator`] is an iterator of `(time, frame bytes)`. The household model lives in
//! [`model`] and knows nothing of wire formats; each output [`Dialect`] is one function
//! from a [`MeterState`] to bytes (see [`Dialect::encode`]); the encrypted ones wrap
//! the codec's encoder.
//!
//! ```
//! use std::time::Duration;
//! use meterkast::sim::{Dialect, Simulator};
//! use meterkast_codec::Timestamp;
//! let mut sim = Simulator::new(Dialect::Dsmr5, 1, Timestamp(1_774_742_400), Duration::from_secs(1)).unwrap();
//! let (t, bytes) = sim.next_frame(); // borrowed, no allocation
//! assert_eq!(t, Timestamp(1_774_742_400));
//! assert!(bytes.starts_with(b"/"));
//! ```

pub mod dlms;
pub mod dsmr;
pub mod model;

use std::fmt;
use std::time::Duration;

use meterkast_codec::dlms::encode::Encoder;
use meterkast_codec::Timestamp;

pub use model::{Household, MeterState, Region};

/// The output formats of the simulator, named as on the command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Dialect {
    /// Dutch DSMR 5.0 (Iskra AM550): CRC, 1 s telegrams, 5-minute gas.
    #[value(name = "dsmr5")]
    Dsmr5,
    /// Dutch DSMR 4.2 (Kaifa MA105): CRC, hourly gas.
    #[value(name = "dsmr4")]
    Dsmr4,
    /// Dutch DSMR 2.2 (Iskra MT382): no CRC, no clock, gas on a continuation line.
    #[value(name = "dsmr22")]
    Dsmr22,
    /// Belgian Fluvius e-MUCS: capacity-tariff peaks, gas and water meters.
    #[value(name = "be")]
    Be,
    /// Luxembourg Smarty: a DSMR telegram in DLMS general-glo-ciphering (needs --key).
    #[value(name = "smarty")]
    Smarty,
    /// Austrian EVN-style M-Bus frames with an encrypted COSEM data-notification.
    #[value(name = "evn")]
    Evn,
    /// DLMS/COSEM data-notification in HDLC frames.
    #[value(name = "hdlc")]
    Hdlc,
}

impl Dialect {
    /// The name used on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::Dsmr5 => "dsmr5",
            Dialect::Dsmr4 => "dsmr4",
            Dialect::Dsmr22 => "dsmr22",
            Dialect::Be => "be",
            Dialect::Smarty => "smarty",
            Dialect::Evn => "evn",
            Dialect::Hdlc => "hdlc",
        }
    }

    /// Whether frames of this dialect are encrypted (and so need a key).
    pub const fn is_encrypted(self) -> bool {
        matches!(self, Dialect::Smarty | Dialect::Evn | Dialect::Hdlc)
    }

    /// The country whose meter this is (sun position, tariff hours and numbering).
    pub const fn region(self) -> Region {
        match self {
            Dialect::Be => Region::Be,
            _ => Region::Nl,
        }
    }

    /// Appends one frame for `state` to `out`. The encrypted dialects use `enc` (their
    /// keys, system title and frame counter); without one they are not written.
    pub fn encode(self, state: &MeterState, enc: Option<&mut Encoder>, out: &mut Vec<u8>) {
        match (self, enc) {
            (Dialect::Dsmr5, _) => dsmr::dsmr5(state, out),
            (Dialect::Dsmr4, _) => dsmr::dsmr42(state, out),
            (Dialect::Dsmr22, _) => dsmr::dsmr22(state, out),
            (Dialect::Be, _) => dsmr::fluvius(state, out),
            (Dialect::Smarty, Some(enc)) => {
                let mut text = Vec::with_capacity(1024);
                dsmr::smarty(state, &mut text);
                out.extend_from_slice(&enc.smarty(&text));
            }
            (Dialect::Evn, Some(enc)) => dlms::evn(state, enc, out),
            (Dialect::Hdlc, Some(enc)) => dlms::hdlc(state, enc, out),
            (Dialect::Smarty | Dialect::Evn | Dialect::Hdlc, None) => {}
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a simulator could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The interval is zero.
    ZeroInterval,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::ZeroInterval => f.write_str("the interval must be longer than zero"),
        }
    }
}

impl std::error::Error for SimError {}

/// A simulated meter: yields its frames one interval apart, starting at `start`.
///
/// Deterministic: the same dialect, seed, start and interval give the same bytes.
#[derive(Clone, Debug)]
pub struct Simulator {
    dialect: Dialect,
    encoder: Option<Encoder>,
    household: Household,
    interval_ms: u64,
    started: bool,
    buf: Vec<u8>,
}

impl Simulator {
    /// A meter of `dialect` whose household is drawn from `seed`, first frame at `start`.
    pub fn new(
        dialect: Dialect,
        seed: u64,
        start: Timestamp,
        interval: Duration,
    ) -> Result<Simulator, SimError> {
        let interval_ms = interval.as_millis() as u64;
        if interval_ms == 0 {
            return Err(SimError::ZeroInterval);
        }
        Ok(Simulator {
            dialect,
            encoder: None,
            household: Household::new(seed, dialect.region(), start.0 * 1000),
            interval_ms,
            started: false,
            buf: Vec::with_capacity(2048),
        })
    }

    /// Sets the encryption key for the encrypted dialects (ignored by the plaintext
    /// ones); Smarty frames are authenticated with the Luxembourg default key.
    pub fn with_key(mut self, key: [u8; 16]) -> Simulator {
        let title = dlms::system_title(&self.household.state().meter_id);
        self.encoder = Some(Encoder::new(&key, None, title, 1));
        self
    }

    /// The dialect being written.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The state behind the frame last returned (or the start state before the first).
    #[allow(dead_code)] // for `run --demo` and in-process benchmarks
    pub fn state(&self) -> &MeterState {
        self.household.state()
    }

    /// The simulated time of the next frame, in milliseconds since the epoch.
    pub fn next_time_ms(&self) -> i64 {
        if self.started {
            self.household.now_ms() + self.interval_ms as i64
        } else {
            self.household.now_ms()
        }
    }

    /// Produces the next frame into an internal buffer and lends it out: the fast path,
    /// no allocation per frame.
    pub fn next_frame(&mut self) -> (Timestamp, &[u8]) {
        if self.started {
            self.household.advance(self.interval_ms);
        }
        self.started = true;
        self.buf.clear();
        let state = self.household.state();
        self.dialect
            .encode(state, self.encoder.as_mut(), &mut self.buf);
        (state.time, &self.buf)
    }
}

impl Iterator for Simulator {
    type Item = (Timestamp, Vec<u8>);

    /// The next frame as an owned buffer; endless.
    fn next(&mut self) -> Option<Self::Item> {
        let (t, b) = self.next_frame();
        Some((t, b.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_deterministic_and_a_second_apart() {
        let start = Timestamp(1_774_742_400);
        let a: Vec<_> = Simulator::new(Dialect::Dsmr5, 1, start, Duration::from_secs(1))
            .unwrap()
            .take(30)
            .collect();
        let b: Vec<_> = Simulator::new(Dialect::Dsmr5, 1, start, Duration::from_secs(1))
            .unwrap()
            .take(30)
            .collect();
        assert_eq!(a, b);
        for (i, (t, _)) in a.iter().enumerate() {
            assert_eq!(t.0, start.0 + i as i64);
        }
    }

    #[test]
    fn encrypted_dialects_decode_with_their_key_only() {
        use meterkast_codec::{Decoder, Keys, Reading};
        let key = [7u8; 16];
        for d in [Dialect::Smarty, Dialect::Evn, Dialect::Hdlc] {
            let mut sim = Simulator::new(d, 3, Timestamp(1_774_742_400), Duration::from_secs(1))
                .unwrap()
                .with_key(key);
            let (_, bytes) = sim.next_frame();
            let bytes = bytes.to_vec();
            let want = sim.state().clone();
            let mut dec = Decoder::with_keys(Keys {
                encryption: Some(key),
                authentication: None,
            });
            dec.push(&bytes);
            dec.finish();
            let f = dec.next().unwrap().unwrap_or_else(|e| panic!("{d}: {e}"));
            let r = Reading::from_telegram(&f.telegram);
            let import: u64 = want.import_wh.iter().sum();
            assert_eq!(
                r.total_power_import_kwh,
                Some(import as f64 / 1000.0),
                "{d}"
            );
            assert_eq!(
                r.active_voltage_l1_v,
                Some(f64::from(want.phases[0].voltage_dv) / 10.0),
                "{d}"
            );
            let mut wrong = Decoder::with_keys(Keys {
                encryption: Some([8u8; 16]),
                authentication: None,
            });
            wrong.push(&bytes);
            wrong.finish();
            assert!(
                !matches!(wrong.next(), Some(Ok(_))),
                "{d}: decoded with the wrong key"
            );
        }
        assert_eq!(
            Simulator::new(Dialect::Dsmr5, 1, Timestamp(0), Duration::ZERO).unwrap_err(),
            SimError::ZeroInterval
        );
    }
}
