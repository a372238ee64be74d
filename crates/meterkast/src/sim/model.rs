//! The simulated household behind the meter: loads, solar, gas, water, and the
//! registers a meter keeps, all deterministic for a seed.
//!
//! Everything the household *does* is a pure function of `(seed, time)`: appliance
//! schedules, clouds and noise come from hashing the seed with the (local) minute or
//! second, not from a random stream. So the same instant looks the same whatever the
//! interval or start, and only the registers carry history. Registers integrate the
//! printed (whole-watt) power exactly, in millijoules, so the kWh a telegram shows
//! always agree with the powers it showed before.

use meterkast_codec::time::{cet_to_utc, Civil, Timestamp};

/// The splitmix64 finalizer: a good 64-bit mixing function.
pub const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of the seed, a time index and a purpose tag, as a uniform number in `[0, 1)`.
fn u(seed: u64, index: i64, tag: u64) -> f64 {
    let h = mix(seed ^ mix((index as u64) ^ mix(tag)));
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A small deterministic random stream (splitmix64), for the one-off synthesis of a
/// meter's history at start-up.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A stream for a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// A uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

// Purpose tags for the hash (arbitrary, distinct).
const T_BASE: u64 = 1;
const T_ACT: u64 = 2;
const T_KETTLE: u64 = 3;
const T_COOK: u64 = 4;
const T_HOB: u64 = 5;
const T_OVEN: u64 = 6;
const T_WASH: u64 = 7;
const T_WASH_AT: u64 = 8;
const T_DISH: u64 = 9;
const T_DISH_AT: u64 = 10;
const T_EV: u64 = 11;
const T_EV_AT: u64 = 12;
const T_EV_KWH: u64 = 13;
const T_TEMP: u64 = 14;
const T_SHOWER: u64 = 15;
const T_FLUSH: u64 = 16;
const T_CLOUD: u64 = 17;
const T_CLOUD_CELL: u64 = 18;
const T_JITTER: u64 = 19;
const T_VOLT: u64 = 20;
const T_LIGHTS: u64 = 21;

/// Which country's conventions the meter follows: where it is (for the sun) and when
/// its tariffs switch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Region {
    /// The Netherlands (DSMR): tariff 1 is the low tariff, 23:00–07:00 and weekends.
    Nl,
    /// Belgium (Fluvius e-MUCS): tariff 1 is the day tariff, tariff 2 the night tariff
    /// (22:00–07:00 and weekends).
    Be,
}

/// The tariff (1 or 2, as the meter numbers it) in force at an instant.
pub fn tariff_at(region: Region, t: Timestamp) -> u8 {
    let (c, _) = t.to_cet();
    let days = Civil {
        hour: 0,
        minute: 0,
        second: 0,
        ..c
    }
    .to_epoch()
    .unwrap_or(0)
        / 86400;
    let weekday = (days + 4).rem_euclid(7); // 0 = Sunday
    let weekend = weekday == 0 || weekday == 6;
    match region {
        Region::Nl => {
            if weekend || c.hour >= 23 || c.hour < 7 {
                1
            } else {
                2
            }
        }
        Region::Be => {
            if weekend || c.hour >= 22 || c.hour < 7 {
                2
            } else {
                1
            }
        }
    }
}

/// One phase's instantaneous values.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Phase {
    /// Voltage in decivolts (2301 = 230.1 V).
    pub voltage_dv: u32,
    /// Current in centiamperes (|P| / V).
    pub current_ca: u32,
    /// Power drawn from the grid on this phase, W.
    pub import_w: u32,
    /// Power fed into the grid on this phase, W.
    pub export_w: u32,
}

/// A register value captured at a moment (the gas and water meters report their
/// reading as of the last capture, not live).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    /// When the value was captured.
    pub at: Timestamp,
    /// The register then, in litres (printed as m³ with three decimals).
    pub litres: u64,
}

/// One month of the Belgian capacity-tariff history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthPeak {
    /// The month the entry closes: the first instant of the next month.
    pub period: Timestamp,
    /// When the peak quarter-hour ended.
    pub at: Timestamp,
    /// The peak quarter-hour's average import, W.
    pub watts: u32,
}

/// Everything a meter could print at one instant. The formatters read only this.
#[derive(Clone, Debug)]
pub struct MeterState {
    /// The meter's clock (whole seconds, UTC).
    pub time: Timestamp,
    /// The tariff in force, as the meter numbers it (1 or 2).
    pub tariff: u8,
    /// Imported energy per tariff (index 0 = tariff 1), Wh.
    pub import_wh: [u64; 2],
    /// Exported energy per tariff, Wh.
    pub export_wh: [u64; 2],
    /// Total power drawn from the grid, W.
    pub import_w: u32,
    /// Total power fed into the grid, W.
    pub export_w: u32,
    /// L1, L2, L3.
    pub phases: [Phase; 3],
    /// Household consumption (all appliances), W; what the meter cannot see directly.
    pub load_w: u32,
    /// Solar production, W.
    pub solar_w: u32,
    /// Short power failures in any phase.
    pub power_failures: u32,
    /// Long power failures in any phase.
    pub long_power_failures: u32,
    /// The long power failure log: (end of failure, duration in s), oldest first.
    pub failure_log: Vec<(Timestamp, u32)>,
    /// Voltage sags per phase.
    pub sags: [u32; 3],
    /// Voltage swells per phase.
    pub swells: [u32; 3],
    /// The gas register as of the last 5-minute boundary (DSMR 5, e-MUCS).
    pub gas_5min: Capture,
    /// The gas register as of the last full hour (DSMR 2.2–4.2).
    pub gas_hourly: Capture,
    /// The water register as of the last 5-minute boundary (Belgian channel 2).
    pub water_5min: Capture,
    /// The current quarter-hour's average import so far, W (Belgian `1-0:1.4.0`).
    pub quarter_avg_w: u32,
    /// This month's peak quarter-hour so far (Belgian `1-0:1.6.0`).
    pub month_peak: Option<(Timestamp, u32)>,
    /// The last 13 months' peaks, newest first (Belgian `0-0:98.1.0`).
    pub peak_history: Vec<MonthPeak>,
    /// The electricity meter's equipment identifier (ASCII; formatters hex-encode it).
    pub meter_id: String,
    /// The gas meter's equipment identifier.
    pub gas_id: String,
    /// The water meter's equipment identifier.
    pub water_id: String,
}

/// The appliance loads and flows of one minute.
#[derive(Clone, Copy, Default, Debug)]
struct Minute {
    index: i64,
    phase_w: [f64; 3],
    gas_ul_s: u64,
    water_ul_s: u64,
}

/// The household and its meter.
#[derive(Clone, Debug)]
pub struct Household {
    seed: u64,
    region: Region,
    lat: f64,
    lon: f64,
    kwp: f64,
    solar_three_phase: bool,
    has_ev: bool,
    heat_loss_kw_per_k: f64,
    fridge_offset: i64,
    freezer_offset: i64,
    volt_offset: [f64; 3],
    now_ms: i64,
    minute: Minute,
    import_mj: [u64; 2],
    export_mj: [u64; 2],
    gas_nl: u64,
    water_nl: u64,
    quarter_start_ms: i64,
    quarter_start_import_mj: u64,
    month: (i64, u32),
    state: MeterState,
}

const MJ_PER_WH: u64 = 3_600_000;
const QUARTER_MS: i64 = 900_000;

impl Household {
    /// A household for a seed, with its meter's clock at `start_ms` (milliseconds since
    /// the epoch, UTC). Registers start at plausible values for a meter a few years old.
    pub fn new(seed: u64, region: Region, start_ms: i64) -> Household {
        let mut r = SplitMix::new(seed ^ 0x6D65_7465_726B_6173);
        let kwh = |r: &mut SplitMix, lo: u64, hi: u64| r.range(lo * 1000, hi * 1000) * MJ_PER_WH;
        let import_mj = [kwh(&mut r, 2_000, 12_000), kwh(&mut r, 2_000, 12_000)];
        let export_mj = [kwh(&mut r, 200, 3_000), kwh(&mut r, 500, 6_000)];
        let gas_nl = r.range(800_000, 9_000_000) * 1_000_000_000; // litres -> nL
        let water_nl = r.range(50_000, 900_000) * 1_000_000_000;
        let kwp = 2.4 + 4.2 * r.unit();
        let (lat, lon) = match region {
            Region::Nl => (52.1, 5.1),
            Region::Be => (50.9, 4.4),
        };
        let start_s = start_ms.div_euclid(1000);
        let long = r.range(0, 6) as u32;
        let mut failure_log = Vec::new();
        let mut end = start_s - r.range(86_400, 40 * 86_400) as i64;
        for _ in 0..long.min(10) {
            failure_log.push((Timestamp(end), r.range(181, 30_000) as u32));
            end -= r.range(20 * 86_400, 200 * 86_400) as i64;
        }
        failure_log.reverse();
        let sags = [r.range(0, 3) as u32, r.range(0, 3) as u32, 0];
        let swells = [0, r.range(0, 1) as u32, 0];
        let digits = r.range(10_000_000, 99_999_999);
        let (meter_id, gas_id, water_id) = match region {
            Region::Nl => (
                format!("E00310{digits}{}", r.range(100, 999)),
                format!("G00520{digits}{}", r.range(100, 999)),
                String::new(),
            ),
            Region::Be => (
                format!("1SAG11{digits}"),
                format!("7FLO21{digits}"),
                format!("8SAG12{digits}"),
            ),
        };
        let mut h = Household {
            seed,
            region,
            lat,
            lon,
            kwp,
            solar_three_phase: kwp > 4.6,
            has_ev: r.unit() < 0.5,
            heat_loss_kw_per_k: 0.18 + 0.2 * r.unit(),
            fridge_offset: r.range(0, 36) as i64,
            freezer_offset: r.range(0, 52) as i64,
            volt_offset: [
                4.0 * r.unit() - 2.0,
                4.0 * r.unit() - 2.0,
                4.0 * r.unit() - 2.0,
            ],
            now_ms: start_ms,
            minute: Minute {
                index: i64::MIN,
                ..Minute::default()
            },
            import_mj,
            export_mj,
            gas_nl,
            water_nl,
            quarter_start_ms: start_ms.div_euclid(QUARTER_MS) * QUARTER_MS,
            quarter_start_import_mj: 0,
            month: (0, 0),
            state: MeterState {
                time: Timestamp(start_s),
                tariff: 1,
                import_wh: [0; 2],
                export_wh: [0; 2],
                import_w: 0,
                export_w: 0,
                phases: [Phase::default(); 3],
                load_w: 0,
                solar_w: 0,
                power_failures: long + r.range(1, 25) as u32,
                long_power_failures: long,
                failure_log,
                sags,
                swells,
                gas_5min: Capture {
                    at: Timestamp(0),
                    litres: 0,
                },
                gas_hourly: Capture {
                    at: Timestamp(0),
                    litres: 0,
                },
                water_5min: Capture {
                    at: Timestamp(0),
                    litres: 0,
                },
                quarter_avg_w: 0,
                month_peak: None,
                peak_history: Vec::new(),
                meter_id,
                gas_id,
                water_id,
            },
        };
        h.update_power();
        let import_w = u64::from(h.state.import_w);
        let into_quarter = (start_ms - h.quarter_start_ms) as u64;
        h.quarter_start_import_mj = h.import_total_mj().saturating_sub(import_w * into_quarter);
        h.synthesize_peaks(&mut r);
        h.capture(true);
        h
    }

    /// The state as of the current instant.
    pub fn state(&self) -> &MeterState {
        &self.state
    }

    /// The current instant in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Total imported energy in millijoules (exact).
    pub fn import_total_mj(&self) -> u64 {
        self.import_mj[0] + self.import_mj[1]
    }

    /// Total exported energy in millijoules (exact).
    #[cfg(test)]
    pub fn export_total_mj(&self) -> u64 {
        self.export_mj[0] + self.export_mj[1]
    }

    /// Runs the household for `dt_ms` milliseconds: the power shown now is integrated
    /// into the registers of the tariff now in force, then the clock moves on and the
    /// new instant's power, captures and peaks are computed.
    pub fn advance(&mut self, dt_ms: u64) {
        let k = usize::from(self.state.tariff - 1);
        self.import_mj[k] += u64::from(self.state.import_w) * dt_ms;
        self.export_mj[k] += u64::from(self.state.export_w) * dt_ms;
        // Gas and water are not shown live, so follow them minute by minute even when
        // the telegrams are far apart.
        let end = self.now_ms + dt_ms as i64;
        let mut t = self.now_ms;
        while t < end {
            let m = t.div_euclid(60_000);
            if m != self.minute.index {
                self.minute = self.minute_loads(m);
            }
            let seg_end = end.min((m + 1) * 60_000);
            let ms = (seg_end - t) as u64;
            self.gas_nl += self.minute.gas_ul_s * ms;
            self.water_nl += self.minute.water_ul_s * ms;
            t = seg_end;
        }
        self.now_ms = end;
        self.update_power();
        self.capture(false);
        self.quarter();
    }

    fn local(&self, t_s: i64) -> (Civil, i64) {
        Timestamp(t_s).to_cet()
    }

    /// Gas and water captures on their boundaries.
    fn capture(&mut self, init: bool) {
        let now_s = self.now_ms.div_euclid(1000);
        let b5 = now_s.div_euclid(300) * 300;
        if init || b5 > self.state.gas_5min.at.0 {
            self.state.gas_5min = Capture {
                at: Timestamp(b5),
                litres: self.gas_nl / 1_000_000_000,
            };
            self.state.water_5min = Capture {
                at: Timestamp(b5),
                litres: self.water_nl / 1_000_000_000,
            };
        }
        let b60 = now_s.div_euclid(3600) * 3600;
        if init || b60 > self.state.gas_hourly.at.0 {
            self.state.gas_hourly = Capture {
                at: Timestamp(b60),
                litres: self.gas_nl / 1_000_000_000,
            };
        }
    }

    /// The Belgian quarter-hour demand: running average, month peak, monthly history.
    fn quarter(&mut self) {
        let imp = self.import_total_mj();
        let qb = self.now_ms.div_euclid(QUARTER_MS) * QUARTER_MS;
        if qb > self.quarter_start_ms {
            let span = (qb - self.quarter_start_ms) as u64;
            let avg = ((imp - self.quarter_start_import_mj) / span) as u32;
            let at = Timestamp(qb / 1000);
            if self.state.month_peak.is_none_or(|(_, w)| avg > w) {
                self.state.month_peak = Some((at, avg));
            }
            let (c, _) = self.local(qb / 1000);
            if (c.year, c.month) != self.month {
                if let Some((pat, w)) = self.state.month_peak.take() {
                    self.state.peak_history.insert(
                        0,
                        MonthPeak {
                            period: at,
                            at: pat,
                            watts: w,
                        },
                    );
                    self.state.peak_history.truncate(13);
                }
                self.month = (c.year, c.month);
            }
            self.quarter_start_ms = qb;
            self.quarter_start_import_mj = imp;
        }
        let span = (self.now_ms - self.quarter_start_ms) as u64;
        self.state.quarter_avg_w = (imp - self.quarter_start_import_mj)
            .checked_div(span)
            .unwrap_or(0) as u32;
    }

    /// A believable peak history for the 13 months before the start, and a peak so far
    /// this month when the month has already run a while.
    fn synthesize_peaks(&mut self, r: &mut SplitMix) {
        let start_s = self.now_ms.div_euclid(1000);
        let (c, _) = self.local(start_s);
        self.month = (c.year, c.month);
        let month_start = |y: i64, m: u32| {
            let civ = Civil {
                year: y,
                month: m,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
            };
            cet_to_utc(&civ, None).map_or(0, |t| t.0)
        };
        let (mut y, mut m) = (c.year, c.month);
        let this_month = month_start(y, m);
        for _ in 0..13 {
            let end = month_start(y, m);
            if m == 1 {
                y -= 1;
                m = 12;
            } else {
                m -= 1;
            }
            let begin = month_start(y, m);
            let quarters = ((end - begin) / 900) as u64;
            let at = begin + 900 * r.range(1, quarters) as i64;
            self.state.peak_history.push(MonthPeak {
                period: Timestamp(end),
                at: Timestamp(at),
                watts: r.range(2_500, 7_500) as u32,
            });
        }
        let done = (self.quarter_start_ms / 1000 - this_month) / 900;
        if done > 0 {
            let at = this_month + 900 * r.range(1, done as u64) as i64;
            self.state.month_peak = Some((Timestamp(at), r.range(1_500, 5_000) as u32));
        }
    }

    /// Recomputes the instantaneous values for `now_ms`.
    fn update_power(&mut self) {
        let now_s = self.now_ms.div_euclid(1000);
        let minute = now_s.div_euclid(60);
        if minute != self.minute.index {
            self.minute = self.minute_loads(minute);
        }
        let solar = self.solar_w(self.now_ms);
        let mut load_total = 0u32;
        let mut net_total = 0i64;
        let (c, _) = self.local(now_s);
        let hour = f64::from(c.hour) + f64::from(c.minute) / 60.0;
        let evening_sag = if (17.0..21.5).contains(&hour) {
            -2.0
        } else {
            0.0
        };
        for i in 0..3 {
            let jitter = (u(self.seed, now_s, T_JITTER + 100 * i as u64) - 0.5) * 14.0;
            let load = (self.minute.phase_w[i] + jitter).max(5.0).round() as i64;
            let pv = if self.solar_three_phase {
                solar / 3.0
            } else if i == 0 {
                solar
            } else {
                0.0
            };
            let pv = pv.round() as i64;
            let net = load - pv;
            load_total += load as u32;
            net_total += net;
            let (imp, exp) = (net.max(0), (-net).max(0));
            let noise = (u(self.seed, now_s, T_VOLT + 100 * i as u64) - 0.5) * 1.2;
            let v = 231.0 + self.volt_offset[i] + evening_sag - 0.6 * imp as f64 / 1000.0
                + 1.1 * exp as f64 / 1000.0
                + noise;
            let v = v.clamp(222.0, 245.0);
            let voltage_dv = (v * 10.0).round() as u32;
            let amps = net.unsigned_abs() as f64 / v;
            self.state.phases[i] = Phase {
                voltage_dv,
                current_ca: (amps * 100.0).round() as u32,
                import_w: imp as u32,
                export_w: exp as u32,
            };
        }
        self.state.load_w = load_total;
        self.state.solar_w = solar.round() as u32;
        self.state.import_w = net_total.max(0) as u32;
        self.state.export_w = (-net_total).max(0) as u32;
        self.state.time = Timestamp(now_s);
        self.state.tariff = tariff_at(self.region, self.state.time);
        for k in 0..2 {
            self.state.import_wh[k] = self.import_mj[k] / MJ_PER_WH;
            self.state.export_wh[k] = self.export_mj[k] / MJ_PER_WH;
        }
    }

    /// Solar production at an instant, W: a clear-sky curve from the sun's elevation,
    /// dimmed by the day's cloudiness and passing clouds.
    fn solar_w(&self, t_ms: i64) -> f64 {
        use core::f64::consts::PI;
        let day = t_ms.div_euclid(86_400_000);
        let (year_day, _) = {
            let (y, _, _) = meterkast_codec::time::civil_from_days(day);
            (day - meterkast_codec::time::days_from_civil(y, 1, 1), y)
        };
        let decl = (23.44 * PI / 180.0) * (2.0 * PI * (284 + year_day) as f64 / 365.0).sin();
        let utc_h = t_ms.rem_euclid(86_400_000) as f64 / 3_600_000.0;
        let omega = (utc_h + self.lon / 15.0 - 12.0) * 15.0 * PI / 180.0;
        let lat = self.lat * PI / 180.0;
        let sin_el = lat.sin() * decl.sin() + lat.cos() * decl.cos() * omega.cos();
        if sin_el <= 0.02 {
            return 0.0;
        }
        let clear = self.kwp * 1000.0 * 0.9 * sin_el * (0.7 + 0.3 * sin_el);
        let cloudiness = u(self.seed, day, T_CLOUD).powf(0.7);
        // Passing clouds: value noise over 2-minute cells, interpolated.
        let cell_ms = 120_000;
        let cell = t_ms.div_euclid(cell_ms);
        let f = t_ms.rem_euclid(cell_ms) as f64 / cell_ms as f64;
        let a = u(self.seed, cell, T_CLOUD_CELL);
        let b = u(self.seed, cell + 1, T_CLOUD_CELL);
        let passing = a + (b - a) * f * f * (3.0 - 2.0 * f);
        clear * (1.0 - cloudiness * (0.25 + 0.65 * passing))
    }

    /// Appliance loads per phase and gas/water flows for one UTC minute.
    fn minute_loads(&self, minute: i64) -> Minute {
        let s = self.seed;
        let t_s = minute * 60;
        let (_, off) = self.local(t_s);
        let lm = (t_s + off).div_euclid(60); // local minute index
        let day = lm.div_euclid(1440);
        let mo = lm.rem_euclid(1440);
        let weekday = (day + 4).rem_euclid(7);
        let weekend = weekday == 0 || weekday == 6;
        let h = mo as f64 / 60.0;
        let mut p = [0.0f64; 3];
        let mut water_l_min = 0.0f64;

        // Standby and always-on, different each night.
        let night = if mo < 720 { day - 1 } else { day };
        let base = 80.0 + 170.0 * u(s, night, T_BASE);
        p[0] += base * 0.4;
        p[1] += base * 0.3;
        p[2] += base * 0.3;

        // People at home: lights, screens, cooking smalls.
        let act = activity(h, weekend);
        let lights = act
            * (120.0 + 260.0 * u(s, day, T_LIGHTS))
            * (0.7 + 0.6 * u(s, lm.div_euclid(7), T_ACT));
        p[0] += lights * 0.5;
        p[1] += lights * 0.2;
        p[2] += lights * 0.3;

        // Fridge and freezer compressors.
        if (lm + self.fridge_offset).rem_euclid(37) < 13 {
            p[1] += 95.0;
        }
        if (lm + self.freezer_offset).rem_euclid(53) < 16 {
            p[2] += 80.0;
        }

        // Kettle: three minutes at 2.1 kW, most likely in the morning.
        let kettle = (lm - 2..=lm).any(|k| {
            let hk = k.rem_euclid(1440) as f64 / 60.0;
            let morning = if (6.5..9.0).contains(&hk) { 1.0 } else { 0.0 };
            u(s, k, T_KETTLE) < 0.001 + 0.02 * morning + 0.006 * activity(hk, weekend)
        });
        if kettle {
            p[0] += 2100.0;
        }

        // Dinner on the induction hob (two phases), the oven on some weekend days.
        let dinner = 17 * 60 + 15 + (105.0 * u(s, day, T_COOK)) as i64;
        if (dinner..dinner + 40).contains(&mo) {
            let hob = 900.0 + 2200.0 * u(s, lm.div_euclid(3), T_HOB);
            p[1] += hob * 0.5;
            p[2] += hob * 0.5;
        }
        if weekend && u(s, day, T_OVEN) < 0.6 && (dinner - 45..dinner + 15).contains(&mo) {
            // Thermostat cycling after the heat-up.
            let rel = mo - (dinner - 45);
            if rel < 12 || rel % 4 != 3 {
                p[2] += 2300.0;
            }
        }

        // Washing machine: fill, heat, wash, spin.
        let wash_p = if weekend { 0.7 } else { 0.4 };
        if u(s, day, T_WASH) < wash_p {
            let start = 9 * 60 + (600.0 * u(s, day, T_WASH_AT)) as i64;
            let rel = mo - start;
            let (w, water) = match rel {
                0..=2 => (30.0, 12.0),
                3..=17 => (2000.0, 0.0),
                18..=64 => (140.0 + 120.0 * ((rel % 3) as f64), 0.0),
                65..=69 => (30.0, 10.0),
                70..=79 => (450.0, 0.0),
                _ => (0.0, 0.0),
            };
            p[0] += w;
            water_l_min += water;
        }

        // Dishwasher after dinner.
        if u(s, day, T_DISH) < 0.7 {
            let start = 20 * 60 + (110.0 * u(s, day, T_DISH_AT)) as i64;
            let rel = mo - start;
            let (w, water) = match rel {
                0..=3 => (25.0, 3.0),
                4..=19 => (1900.0, 0.0),
                20..=59 => (80.0, 0.0),
                60..=74 => (1900.0, 0.0),
                75..=99 => (20.0, 0.0),
                _ => (0.0, 0.0),
            };
            p[1] += w;
            water_l_min += water;
        }

        // The electric car, on some weekday evenings: 11 kW over three phases.
        if self.has_ev && !weekend && u(s, day, T_EV) < 0.35 {
            let arrive = 17 * 60 + 30 + (120.0 * u(s, day, T_EV_AT)) as i64;
            let kwh = 6.0 + 14.0 * u(s, day, T_EV_KWH);
            let minutes = (kwh / 11.0 * 60.0) as i64;
            if (arrive..arrive + minutes).contains(&mo) {
                for x in &mut p {
                    *x += 3680.0;
                }
            }
        }

        // Showers (hot water from the combi boiler) and toilet flushes.
        let shower = (lm - 7..=lm).any(|k| {
            let hk = k.rem_euclid(1440) as f64 / 60.0;
            let pr = if (6.25..8.5).contains(&hk) {
                0.02
            } else if (19.0..22.5).contains(&hk) {
                0.008
            } else {
                0.0005
            };
            u(s, k, T_SHOWER) < pr
        });
        if shower {
            water_l_min += 8.0;
        }
        if u(s, lm, T_FLUSH) < 0.015 * act + 0.001 {
            water_l_min += 6.0;
        }

        // Space heating: outside temperature by season, hour and day, a thermostat
        // with a night setback and a morning warm-up.
        let (y, _, _) = meterkast_codec::time::civil_from_days(day);
        let doy = (day - meterkast_codec::time::days_from_civil(y, 1, 1)) as f64;
        let two_pi = 2.0 * core::f64::consts::PI;
        let outside = 10.5 - 7.5 * (two_pi * (doy - 20.0) / 365.25).cos()
            + 3.5 * (two_pi * (h - 9.0) / 24.0).sin()
            + 6.0 * (u(s, day, T_TEMP) - 0.5);
        let wake = if weekend { 7.5 } else { 6.5 };
        let comfort = (wake..22.5).contains(&h);
        let setpoint = if comfort { 20.0 } else { 15.0 };
        let mut heat_kw = ((setpoint - 4.0 - outside) * self.heat_loss_kw_per_k).max(0.0);
        if comfort && h < wake + 1.0 {
            heat_kw += 4.0 * self.heat_loss_kw_per_k / 0.28;
        }
        // Below the boiler's minimum modulation it cycles on and off.
        let min_kw = 4.0;
        if heat_kw > 0.0 && heat_kw < min_kw {
            let duty = heat_kw / min_kw;
            heat_kw = if (lm.rem_euclid(10) as f64) < duty * 10.0 {
                min_kw
            } else {
                0.0
            };
        }
        if shower {
            heat_kw += 18.0;
        }
        // 8.8 kWh per m³ of Dutch natural gas; µL/s = m³/h * 1e9 / 3600.
        let gas_m3_h = heat_kw / 8.8;
        Minute {
            index: minute,
            phase_w: p,
            gas_ul_s: (gas_m3_h * 1e9 / 3600.0).round() as u64,
            water_ul_s: (water_l_min * 1e6 / 60.0).round() as u64,
        }
    }
}

/// How much of the household is awake and about, 0..1, by local hour.
fn activity(h: f64, weekend: bool) -> f64 {
    let (wake, sleep) = if weekend { (7.5, 23.75) } else { (6.5, 23.0) };
    if h < wake || h >= sleep {
        0.04
    } else if h < wake + 2.0 {
        0.6
    } else if h < 17.0 {
        if weekend {
            0.5
        } else {
            0.2
        }
    } else if h < 18.0 {
        0.6
    } else {
        0.85
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32, hh: u32, mm: u32) -> i64 {
        Civil {
            year: y,
            month: m,
            day: d,
            hour: hh,
            minute: mm,
            second: 0,
        }
        .to_epoch()
        .unwrap()
    }

    fn run(seed: u64, start_s: i64, secs: u64) -> Vec<MeterState> {
        let mut h = Household::new(seed, Region::Nl, start_s * 1000);
        let mut out = vec![h.state().clone()];
        for _ in 0..secs {
            h.advance(1000);
            out.push(h.state().clone());
        }
        out
    }

    #[test]
    fn deterministic_for_a_seed() {
        let start = at(2026, 3, 29, 0, 0);
        let a = run(7, start, 600);
        let b = run(7, start, 600);
        let c = run(8, start, 600);
        let key = |s: &MeterState| (s.import_wh, s.export_wh, s.import_w, s.phases, s.gas_5min);
        assert!(a.iter().zip(&b).all(|(x, y)| key(x) == key(y)));
        assert!(a.iter().zip(&c).any(|(x, y)| key(x) != key(y)));
    }

    #[test]
    fn the_same_instant_looks_the_same_at_any_interval() {
        let start = at(2026, 6, 10, 12, 0);
        let mut fine = Household::new(3, Region::Nl, start * 1000);
        let mut coarse = fine.clone();
        for _ in 0..600 {
            fine.advance(1000);
        }
        for _ in 0..60 {
            coarse.advance(10_000);
        }
        assert_eq!(fine.state().phases, coarse.state().phases);
        assert_eq!(fine.state().solar_w, coarse.state().solar_w);
    }

    #[test]
    fn registers_monotonic_and_energy_matches_power_over_a_day() {
        for (seed, (y, m, d)) in [(1, (2026, 1, 14)), (2, (2026, 6, 21)), (3, (2026, 10, 25))] {
            let start = at(y, m, d, 0, 0) * 1000;
            let mut h = Household::new(seed, Region::Nl, start);
            let (imp0, exp0) = (h.import_total_mj(), h.export_total_mj());
            let s0 = h.state().clone();
            let mut integral_mj: i64 = 0;
            let mut prev = s0.clone();
            let (mut saw_import, mut saw_export) = (false, false);
            for _ in 0..86_400 / 5 {
                let s = h.state();
                integral_mj += (i64::from(s.import_w) - i64::from(s.export_w)) * 5000;
                saw_import |= s.import_w > 0;
                saw_export |= s.export_w > 0;
                h.advance(5000);
                let s = h.state();
                for k in 0..2 {
                    assert!(s.import_wh[k] >= prev.import_wh[k]);
                    assert!(s.export_wh[k] >= prev.export_wh[k]);
                }
                assert!(s.gas_5min.litres >= prev.gas_5min.litres);
                assert!(s.gas_hourly.litres >= prev.gas_hourly.litres);
                let net: i64 = s
                    .phases
                    .iter()
                    .map(|p| i64::from(p.import_w) - i64::from(p.export_w))
                    .sum();
                assert_eq!(net, i64::from(s.import_w) - i64::from(s.export_w));
                assert!(s.import_w == 0 || s.export_w == 0);
                for p in &s.phases {
                    assert!((2220..=2450).contains(&p.voltage_dv));
                    let w = f64::from(p.import_w.max(p.export_w));
                    let a = w / (f64::from(p.voltage_dv) / 10.0);
                    assert!((f64::from(p.current_ca) / 100.0 - a).abs() < 0.011);
                }
                prev = s.clone();
            }
            let exact = (h.import_total_mj() - imp0) as i64 - (h.export_total_mj() - exp0) as i64;
            assert_eq!(exact, integral_mj);
            let s = h.state();
            let printed = |s: &MeterState| {
                (s.import_wh[0] + s.import_wh[1]) as i64 - (s.export_wh[0] + s.export_wh[1]) as i64
            };
            let printed_delta = printed(s) - printed(&s0);
            assert!(
                (printed_delta * 3_600_000 - integral_mj).abs() <= 4 * 3_600_000,
                "{printed_delta} Wh vs {} Wh",
                integral_mj / 3_600_000
            );
            assert!(saw_import);
            let summer = m == 6;
            assert!(!summer || saw_export, "a June day exports at noon");
            let gas = s.gas_hourly.litres - s0.gas_hourly.litres;
            if m == 1 {
                assert!(gas > 2_000, "a January day burns gas: {gas} L");
            }
        }
    }

    #[test]
    fn tariffs_switch_at_local_hours_across_dst() {
        // Sunday 29 March 2026: summer time starts; weekend so low tariff all day.
        assert_eq!(tariff_at(Region::Nl, Timestamp(at(2026, 3, 29, 10, 0))), 1);
        // Monday 30 March 2026 (CEST, UTC+2): 07:00 local is 05:00 UTC.
        let mon = at(2026, 3, 30, 0, 0);
        assert_eq!(tariff_at(Region::Nl, Timestamp(mon + 5 * 3600 - 1)), 1);
        assert_eq!(tariff_at(Region::Nl, Timestamp(mon + 5 * 3600)), 2);
        // 23:00 local is 21:00 UTC.
        assert_eq!(tariff_at(Region::Nl, Timestamp(mon + 21 * 3600 - 1)), 2);
        assert_eq!(tariff_at(Region::Nl, Timestamp(mon + 21 * 3600)), 1);
        // Friday 27 March 2026 (CET, UTC+1): 07:00 local is 06:00 UTC.
        let fri = at(2026, 3, 27, 0, 0);
        assert_eq!(tariff_at(Region::Nl, Timestamp(fri + 6 * 3600 - 1)), 1);
        assert_eq!(tariff_at(Region::Nl, Timestamp(fri + 6 * 3600)), 2);
        // Belgium: day tariff is 1, night (from 22:00 local) is 2.
        assert_eq!(tariff_at(Region::Be, Timestamp(mon + 12 * 3600)), 1);
        assert_eq!(tariff_at(Region::Be, Timestamp(mon + 20 * 3600)), 2);
        // The registers follow: on the Monday, T2 only grows in the day.
        let mut h = Household::new(5, Region::Nl, mon * 1000);
        let mut last = h.state().clone();
        for _ in 0..(24 * 60) {
            h.advance(60_000);
            let s = h.state();
            let hour_utc = (s.time.0 - mon) / 3600;
            // Energy of the minute that just ended went to the tariff then in force.
            let prev_t = tariff_at(Region::Nl, Timestamp(s.time.0 - 60));
            let other = usize::from(2 - prev_t);
            assert_eq!(s.import_wh[other], last.import_wh[other], "hour {hour_utc}");
            last = s.clone();
        }
    }

    #[test]
    fn gas_is_captured_on_five_minute_boundaries() {
        let start = at(2026, 1, 10, 6, 58) + 17;
        let mut h = Household::new(9, Region::Nl, start * 1000);
        assert_eq!(h.state().gas_5min.at.0 % 300, 0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3600 {
            h.advance(1000);
            let s = h.state();
            assert_eq!(s.gas_5min.at.0 % 300, 0);
            assert!(s.gas_5min.at.0 <= s.time.0 && s.time.0 - s.gas_5min.at.0 < 300);
            assert_eq!(s.gas_hourly.at.0 % 3600, 0);
            seen.insert(s.gas_5min.at.0);
        }
        // 06:55 (the capture before the start), then 07:00 to 07:55.
        assert_eq!(seen.len(), 13);
    }

    #[test]
    fn solar_only_in_daylight() {
        let h = Household::new(4, Region::Nl, 0);
        // Dark hours (UTC) for each date in the Netherlands.
        for (m, d, light) in [
            (1, 15, 8..=15),
            (3, 29, 6..=17),
            (6, 21, 4..=19),
            (10, 25, 7..=15),
        ] {
            let midnight = at(2026, m, d, 0, 0);
            let mut noon_max = 0.0f64;
            for minute in 0..1440 {
                let t = midnight + minute * 60;
                let w = h.solar_w(t * 1000);
                let utc_h = minute / 60;
                if !(light.start() - 1..=light.end() + 1).contains(&utc_h) {
                    assert_eq!(w, 0.0, "{m}/{d} {utc_h}h UTC");
                }
                if (10..=13).contains(&utc_h) {
                    noon_max = noon_max.max(w);
                }
            }
            assert!(noon_max > 100.0, "{m}/{d}");
        }
    }

    #[test]
    fn belgian_quarter_hours_and_month_peaks() {
        // Start just before a month ends (local time) and run into the next month.
        let start = at(2026, 5, 31, 20, 0);
        let mut h = Household::new(11, Region::Be, start * 1000);
        assert_eq!(h.state().peak_history.len(), 13);
        let first_period = h.state().peak_history[0].period;
        for _ in 0..(3 * 3600) {
            h.advance(1000);
            let s = h.state();
            if s.time.0 % 900 == 0 {
                assert_eq!(s.quarter_avg_w, 0);
            }
            if let Some((at, w)) = s.month_peak {
                assert_eq!(at.0 % 900, 0);
                assert!(w < 40_000);
            }
        }
        let s = h.state();
        assert_eq!(s.peak_history.len(), 13);
        assert!(s.peak_history[0].period > first_period);
        // 1 June 00:00 CEST = 31 May 22:00 UTC.
        assert_eq!(s.peak_history[0].period.0, at(2026, 5, 31, 22, 0));
        assert!(s.month_peak.is_some());
    }
}
