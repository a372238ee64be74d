//! The words and numbers of a report: the key figures as the chart's tiles show them,
//! the e-mail's subject, its plain text and its HTML. All of them come from
//! [`key_figures`], so the picture and the mail never disagree.

use std::fmt::Write;

use meterkast_codec::Timestamp;

use super::figures::{Figures, Period, Totals};

/// One key figure: a label, its value, and a line of detail (possibly empty).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyFigure {
    /// What it is (`Import`).
    pub label: String,
    /// The value with its unit (`12.345 kWh`).
    pub value: String,
    /// Detail (`T1 5.100 · T2 7.245`).
    pub detail: String,
}

fn fig(label: &str, value: String, detail: String) -> KeyFigure {
    KeyFigure {
        label: label.into(),
        value,
        detail,
    }
}

/// Energy with Wh resolution: `12.345 kWh`.
pub fn kwh(v: f64) -> String {
    format!("{v:.3} kWh")
}

/// Power: `850 W` below 1 kW, else `3.46 kW`.
pub fn power(w: f64) -> String {
    if w.abs() < 1000.0 {
        format!("{w:.0} W")
    } else {
        format!("{:.2} kW", w / 1000.0)
    }
}

/// Money in the prices' currency: `€ 3.12`, `CHF 3.12`.
pub fn money(currency: &str, v: f64) -> String {
    let sym = match currency {
        "EUR" => "€",
        "GBP" => "£",
        "USD" => "$",
        other => other,
    };
    if v < 0.0 {
        format!("−{sym} {:.2}", -v)
    } else {
        format!("{sym} {v:.2}")
    }
}

/// Local `HH:MM` of an instant.
pub fn local_hm(t: i64) -> String {
    let (c, _) = Timestamp(t).to_cet();
    format!("{:02}:{:02}", c.hour, c.minute)
}

/// Local `D Mon HH:MM` of an instant.
pub fn local_day_hm(t: i64) -> String {
    let (c, _) = Timestamp(t).to_cet();
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!("{} {} {}", c.day, M[c.month as usize - 1], local_hm(t))
}

/// `T1 5.100 · T2 7.245` for the tariffs that saw energy.
fn tariffs(v: [f64; 4]) -> String {
    v.iter()
        .enumerate()
        .filter(|(_, x)| **x > 0.0)
        .map(|(i, x)| format!("T{} {x:.3}", i + 1))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn change(now: f64, before: f64) -> String {
    if before.abs() < 1e-9 {
        return if now.abs() < 1e-9 {
            "±0 %".into()
        } else {
            "new".into()
        };
    }
    let pct = (now - before) / before * 100.0;
    if pct.abs() < 0.5 {
        "±0 %".into()
    } else if pct > 0.0 {
        format!("+{pct:.0} %")
    } else {
        format!("−{:.0} %", -pct)
    }
}

fn has_gas(t: &Totals) -> bool {
    t.rollup.sums[10] > 0
}

fn has_water(t: &Totals) -> bool {
    t.rollup.sums[11] > 0
}

/// The key figures, in the order the chart's tiles and the mail show them.
pub fn key_figures(f: &Figures) -> Vec<KeyFigure> {
    let t = &f.totals;
    let none = || "–".to_string();
    let cur = &f.prices.currency;
    let mut out = Vec::new();
    if !f.has_data() {
        let what = match f.period {
            Period::Day { .. } => "day",
            Period::Month { .. } => "month",
        };
        out.push(fig(
            "Import",
            none(),
            format!("no data stored for this {what}"),
        ));
        out.push(fig("Export", none(), String::new()));
        out.push(fig("Cost", none(), String::new()));
        out.push(fig("Peak (15 min)", none(), String::new()));
        return out;
    }
    out.push(fig(
        "Import",
        kwh(t.import_kwh()),
        tariffs(t.import_tariffs_kwh()),
    ));
    out.push(fig(
        "Export",
        kwh(t.export_kwh()),
        tariffs(t.export_tariffs_kwh()),
    ));
    let c = &t.cost;
    let mut parts = vec![format!("import {:.2}", c.import)];
    if c.export > 0.0 {
        parts.push(format!("export −{:.2}", c.export));
    }
    if c.gas > 0.0 {
        parts.push(format!("gas {:.2}", c.gas));
    }
    if c.water > 0.0 {
        parts.push(format!("water {:.2}", c.water));
    }
    if c.fixed > 0.0 {
        parts.push(format!("fixed {:.2}", c.fixed));
    }
    out.push(fig("Cost", money(cur, c.total), parts.join(" · ")));
    let prev = &f.previous.1;
    if has_gas(t) || has_gas(prev) {
        out.push(fig("Gas", format!("{:.3} m³", t.gas_m3()), String::new()));
    }
    if has_water(t) || has_water(prev) {
        out.push(fig(
            "Water",
            format!("{:.3} m³", t.water_m3()),
            String::new(),
        ));
    }
    let peak_label = match f.period {
        Period::Day { .. } => "Peak (15 min)",
        Period::Month { .. } => "Capacity peak",
    };
    out.push(match &f.peak {
        Some(p) => fig(
            peak_label,
            power(p.power_w),
            match f.period {
                Period::Day { .. } => format!("at {}", local_hm(p.start)),
                Period::Month { .. } => format!("on {}", local_day_hm(p.start)),
            },
        ),
        None => fig(peak_label, none(), "no import".into()),
    });
    out.push(fig(
        "Base load",
        f.base_load_w.map_or_else(none, power),
        match f.period {
            Period::Day { .. } => "lowest quarter-hour 00:00–06:00".into(),
            Period::Month { .. } => "mean of the nights' lowest quarter-hour".into(),
        },
    ));
    let label = format!("vs {}", f.previous_label());
    out.push(if prev.has_data {
        let mut detail = format!("import {}", kwh(prev.import_kwh()));
        if prev.rollup.sums[1] > 0 || t.rollup.sums[1] > 0 {
            let _ = write!(detail, " · export {}", kwh(prev.export_kwh()));
        }
        if has_gas(prev) || has_gas(t) {
            let _ = write!(detail, " · gas {:.3} m³", prev.gas_m3());
        }
        fig(&label, change(t.import_kwh(), prev.import_kwh()), detail)
    } else {
        fig(&label, none(), "no data then".into())
    });
    out
}

/// The e-mail's subject.
pub fn subject(f: &Figures) -> String {
    let what = match f.period {
        Period::Day { .. } => "day",
        Period::Month { .. } => "month",
    };
    if !f.has_data() {
        return format!("meterkast {what}: {}: no data", f.period.title());
    }
    format!(
        "meterkast {what}: {}: {} imported, {}",
        f.period.title(),
        kwh(f.totals.import_kwh()),
        money(&f.prices.currency, f.totals.cost.total)
    )
}

/// The heading line: `Sunday 29 March 2026 · meter E0012…`.
pub fn heading(f: &Figures) -> String {
    format!("{} · meter {}", f.period.title(), f.meter)
}

/// The plain-text body: one line per key figure (`Import: 12.345 kWh (T1 … · T2 …)`).
pub fn plain(f: &Figures) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", heading(f));
    for k in key_figures(f) {
        if k.detail.is_empty() {
            let _ = writeln!(out, "{}: {}", k.label, k.value);
        } else {
            let _ = writeln!(out, "{}: {} ({})", k.label, k.value, k.detail);
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML body: the key figures as a table, then the chart (`cid:` reference).
pub fn html(f: &Figures, image_cid: &str) -> String {
    let mut rows = String::new();
    for k in key_figures(f) {
        let _ = write!(
            rows,
            "<tr><td style=\"padding:6px 12px 6px 0;color:#555\">{}</td>\
             <td style=\"padding:6px 12px 6px 0;font-weight:bold;font-size:18px\">{}</td>\
             <td style=\"padding:6px 0;color:#777;font-size:13px\">{}</td></tr>",
            esc(&k.label),
            esc(&k.value),
            esc(&k.detail)
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;color:#222;margin:0;padding:12px\">\
         <h2 style=\"margin:0 0 4px 0\">{period}</h2>\
         <div style=\"color:#666;margin-bottom:12px\">meter {meter}</div>\
         <table style=\"border-collapse:collapse\">{rows}</table>\
         <p><img src=\"cid:{cid}\" alt=\"{alt}\" style=\"width:100%;max-width:1080px;height:auto\"></p>\
         <p style=\"color:#999;font-size:12px\">Sent by meterkast.</p></body></html>",
        title = esc(&subject(f)),
        period = esc(&f.period.title()),
        meter = esc(&f.meter),
        cid = esc(image_cid),
        alt = esc(&format!("Chart of {}", f.period.title())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(kwh(12.3456), "12.346 kWh");
        assert_eq!(power(850.4), "850 W");
        assert_eq!(power(3456.0), "3.46 kW");
        assert_eq!(money("EUR", 3.1249), "€ 3.12");
        assert_eq!(money("CHF", -1.0), "−CHF 1.00");
        assert_eq!(tariffs([1.0, 0.0, 2.5, 0.0]), "T1 1.000 · T3 2.500");
        assert_eq!(change(11.0, 10.0), "+10 %");
        assert_eq!(change(9.0, 10.0), "−10 %");
        assert_eq!(change(1.0, 0.0), "new");
        assert_eq!(esc("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
