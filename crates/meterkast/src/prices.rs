//! Prices: what a kWh, an m³ and a day cost, and what a capacity peak costs per year.
//! Set in the config file (`[prices]`), changed in the dashboard (kept in the store's
//! settings, which then win), and used by the dashboard, the reports and the API.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::store::{Rollup, StoreRead};

/// The settings key the store keeps edited prices under.
pub const SETTINGS_KEY: &str = "prices";

/// Fixed prices, in `currency` per unit. Every field is required in a `PUT` (the
/// schema says so); `PATCH` takes any of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    /// ISO 4217 currency code.
    #[schema(pattern = "^[A-Za-z]{3}$", required = true)]
    pub currency: String,
    /// Import per kWh for tariffs 1 to 4 (tariff 1 is the Dutch low/night tariff,
    /// Belgian day tariff; a meter without tariffs uses tariff 1's price).
    #[schema(schema_with = per_tariff, required = true)]
    pub import_kwh: [f64; 4],
    /// Export (feed-in) compensation per kWh for tariffs 1 to 4.
    #[schema(schema_with = per_tariff, required = true)]
    pub export_kwh: [f64; 4],
    /// Gas per m³.
    #[schema(minimum = 0, maximum = 1000000, required = true)]
    pub gas_m3: f64,
    /// Water per m³.
    #[schema(minimum = 0, maximum = 1000000, required = true)]
    pub water_m3: f64,
    /// Heat per GJ.
    #[schema(minimum = 0, maximum = 1000000, required = true)]
    pub heat_gj: f64,
    /// A fixed charge per day (standing charge, network fees).
    #[schema(minimum = 0, maximum = 1000000, required = true)]
    pub daily: f64,
    /// Capacity tariff per kW per year (the Belgian capacity tariff's rolling average).
    #[schema(minimum = 0, maximum = 1000000, required = true)]
    pub capacity_kw_year: f64,
    /// The least kW the capacity tariff charges (Fluvius: 2.5).
    #[schema(minimum = 0, maximum = 1000000, required = true)]
    pub capacity_min_kw: f64,
}

/// The OpenAPI schema of a per-tariff price list: four prices from 0 to 1,000,000.
fn per_tariff() -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(0.0))
                .maximum(Some(1e6)),
        )
        .min_items(Some(4))
        .max_items(Some(4))
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            currency: "EUR".into(),
            import_kwh: [0.25; 4],
            export_kwh: [0.05; 4],
            gas_m3: 1.20,
            water_m3: 1.10,
            heat_gj: 45.0,
            daily: 0.0,
            capacity_kw_year: 53.0,
            capacity_min_kw: 2.5,
        }
    }
}

/// What a period cost, in the prices' currency.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cost {
    /// Imported electricity.
    pub import: f64,
    /// Exported electricity (a credit, subtract it).
    pub export: f64,
    /// Gas.
    pub gas: f64,
    /// Water.
    pub water: f64,
    /// Heat.
    pub heat: f64,
    /// Fixed charges for the days covered.
    pub fixed: f64,
    /// import - export + gas + water + heat + fixed.
    pub total: f64,
}

impl Prices {
    /// Refuses negative or non-finite prices and a currency that is not three letters.
    pub fn validate(&self) -> Result<()> {
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_alphabetic()) {
            bail!("currency must be a three-letter code such as EUR");
        }
        let others = [
            self.gas_m3,
            self.water_m3,
            self.heat_gj,
            self.daily,
            self.capacity_kw_year,
            self.capacity_min_kw,
        ];
        for v in self
            .import_kwh
            .iter()
            .chain(&self.export_kwh)
            .chain(&others)
        {
            if !v.is_finite() || *v < 0.0 || *v > 1e6 {
                bail!("prices must be numbers between 0 and 1000000, got {v}");
            }
        }
        Ok(())
    }

    /// The prices in force: those edited in the dashboard (kept in the store), else
    /// `configured` (the config file), else the defaults.
    pub fn current(store: &dyn StoreRead, configured: Option<&Prices>) -> Result<Prices> {
        if let Some(json) = store.setting(SETTINGS_KEY)? {
            if let Ok(p) = serde_json::from_str::<Prices>(&json) {
                return Ok(p);
            }
            tracing::warn!("the stored prices are unreadable; using the configured ones");
        }
        Ok(configured.cloned().unwrap_or_default())
    }

    /// Keeps edited prices in the store.
    pub fn save(&self, store: &dyn StoreRead) -> Result<()> {
        self.validate()?;
        store.put_setting(SETTINGS_KEY, &serde_json::to_string(self)?)
    }

    /// The cost of a roll-up covering `days` days (for the fixed charge). Energy that
    /// is not split per tariff is priced at tariff 1.
    pub fn cost(&self, r: &Rollup, days: f64) -> Cost {
        let s = &r.sums;
        let per_tariff = |total: i64, t: &[i64], p: &[f64; 4]| -> f64 {
            let split: i64 = t.iter().sum();
            let rest = (total - split).max(0);
            let mut c: f64 = t.iter().zip(p).map(|(wh, p)| *wh as f64 / 1000.0 * p).sum();
            c += rest as f64 / 1000.0 * p[0];
            c
        };
        let import = per_tariff(s[0], &s[2..6], &self.import_kwh);
        let export = per_tariff(s[1], &s[6..10], &self.export_kwh);
        let gas = s[10] as f64 / 1000.0 * self.gas_m3;
        let water = s[11] as f64 / 1000.0 * self.water_m3;
        let heat = s[12] as f64 / 1000.0 * self.heat_gj;
        let fixed = days * self.daily;
        Cost {
            import,
            export,
            gas,
            water,
            heat,
            fixed,
            total: import - export + gas + water + heat + fixed,
        }
    }

    /// What a capacity peak (the rolling average of monthly peaks, in kW) costs a year.
    pub fn capacity_cost_year(&self, kw: f64) -> f64 {
        kw.max(self.capacity_min_kw) * self.capacity_kw_year
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_prices_each_tariff_and_the_unsplit_rest() {
        let p = Prices {
            import_kwh: [0.20, 0.30, 0.0, 0.0],
            export_kwh: [0.10, 0.10, 0.0, 0.0],
            daily: 1.0,
            ..Prices::default()
        };
        let mut r = Rollup::default();
        r.sums[0] = 3000; // 3 kWh import, of which 1 at T1 and 1 at T2, 1 unsplit
        r.sums[2] = 1000;
        r.sums[3] = 1000;
        r.sums[1] = 2000; // 2 kWh export, unsplit
        r.sums[10] = 500; // 0.5 m³ gas
        let c = p.cost(&r, 1.0);
        assert!((c.import - 0.70).abs() < 1e-9, "{c:?}");
        assert!((c.export - 0.20).abs() < 1e-9);
        assert!((c.gas - 0.60).abs() < 1e-9);
        assert!((c.total - (0.70 - 0.20 + 0.60 + 1.0)).abs() < 1e-9);
    }

    #[test]
    fn capacity_has_a_floor_and_bad_prices_are_refused() {
        let p = Prices::default();
        assert_eq!(p.capacity_cost_year(1.0), 2.5 * 53.0);
        assert_eq!(p.capacity_cost_year(4.0), 4.0 * 53.0);
        let bad = Prices {
            gas_m3: -1.0,
            ..Prices::default()
        };
        assert!(bad.validate().is_err());
        let bad = Prices {
            currency: "euro".into(),
            ..Prices::default()
        };
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<Prices>(r#"{"gass_m3": 1}"#).is_err());
        let partial: Prices = serde_json::from_str(r#"{"gas_m3": 2.0}"#).unwrap();
        assert_eq!(partial.gas_m3, 2.0);
        assert_eq!(partial.import_kwh, [0.25; 4]);
    }

    #[test]
    fn edited_prices_are_kept_in_the_store_and_win() {
        let dir = std::env::temp_dir().join(format!("mk-prices-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::store::sqlite::SqliteReader::open(&dir.join("p.db")).unwrap();
        let configured = Prices {
            gas_m3: 2.0,
            ..Prices::default()
        };
        assert_eq!(
            Prices::current(&store, Some(&configured)).unwrap(),
            configured
        );
        let edited = Prices {
            gas_m3: 3.0,
            ..Prices::default()
        };
        edited.save(&store).unwrap();
        assert_eq!(Prices::current(&store, Some(&configured)).unwrap(), edited);
        let bad = Prices {
            daily: f64::NAN,
            ..Prices::default()
        };
        assert!(bad.save(&store).is_err());
        assert_eq!(Prices::current(&store, None).unwrap(), edited);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
