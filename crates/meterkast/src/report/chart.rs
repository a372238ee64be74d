//! The report picture: a heading, the key figures as tiles, and the charts (power over
//! the day with its quarter-hour peak and hourly energy; or, for a month, daily energy
//! and each day's highest quarter-hour). Drawn with plotters into PNG or SVG, with a
//! bundled font so it renders the same on a headless box.

use std::sync::Once;

use anyhow::{anyhow, Result};
use meterkast_codec::time::{cet_to_utc, Civil};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor;
use plotters::style::FontStyle;

use super::figures::{Figures, Period, Slot};
use super::text::{key_figures, local_day_hm, local_hm, power};

const FONT: &str = "sans-serif";
static FONT_REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static FONT_BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

const INK: RGBColor = RGBColor(33, 33, 33);
const MUTED: RGBColor = RGBColor(110, 110, 110);
const TILE: RGBColor = RGBColor(244, 245, 247);
const IMPORT: RGBColor = RGBColor(230, 115, 25);
const EXPORT: RGBColor = RGBColor(34, 160, 90);
const PEAK: RGBColor = RGBColor(190, 30, 45);

/// The picture's file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PNG, for mail and phones.
    Png,
    /// SVG, for the web and print.
    Svg,
}

impl Format {
    /// The format a file name asks for, by its extension.
    pub fn from_path(p: &std::path::Path) -> Result<Format> {
        match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(anyhow!(
                "--out {}: the file name must end in .png or .svg",
                p.display()
            )),
        }
    }
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled fonts are known-good; a failure here is a build defect.
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_REGULAR)
            .unwrap_or_else(|_| panic!("the bundled regular font does not load"));
        plotters::style::register_font(FONT, FontStyle::Bold, FONT_BOLD)
            .unwrap_or_else(|_| panic!("the bundled bold font does not load"));
    });
}

/// The picture's height for a width: tall enough for the tiles and two charts.
pub fn height_for(width: u32, f: &Figures) -> u32 {
    let rows = key_figures(f).len().div_ceil(2) as u32;
    let unit = width as f64 / 1080.0;
    ((170.0 + rows as f64 * 128.0 + 2.0 * 560.0 + 20.0) * unit).round() as u32
}

/// Renders the report as PNG or SVG bytes, `width` pixels wide.
pub fn render(f: &Figures, format: Format, width: u32) -> Result<Vec<u8>> {
    register_fonts();
    let height = height_for(width, f);
    let err = |e: String| anyhow!("drawing the report failed: {e}");
    match format {
        Format::Png => {
            let mut buf = vec![0u8; width as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
                draw(&root, f).map_err(|e| err(format!("{e:?}")))?;
                root.present().map_err(|e| err(format!("{e:?}")))?;
            }
            encode_png(&buf, width, height)
        }
        Format::Svg => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, (width, height)).into_drawing_area();
                draw(&root, f).map_err(|e| err(format!("{e:?}")))?;
                root.present().map_err(|e| err(format!("{e:?}")))?;
            }
            Ok(s.into_bytes())
        }
    }
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Default);
    let mut w = enc.write_header()?;
    w.write_image_data(rgb)?;
    w.finish()?;
    Ok(out)
}

type Res<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&INK)
}

fn bold(size: f64) -> TextStyle<'static> {
    // `FontDesc::style` keeps the regular face's data: ask for the bold face by name.
    (FONT, size, FontStyle::Bold).into_font().color(&INK)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &Figures) -> Res<DB> {
    let (w, _) = root.dim_in_pixel();
    let u = w as f64 / 1080.0;
    let px = |v: f64| (v * u).round() as i32;
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        f.period.title(),
        (px(40.0), px(32.0)),
        bold(54.0 * u),
    ))?;
    root.draw(&Text::new(
        format!("meter {}", f.meter),
        (px(40.0), px(104.0)),
        font(30.0 * u).color(&MUTED),
    ))?;
    let figures = key_figures(f);
    let rows = figures.len().div_ceil(2);
    let (tile_w, tile_h) = (px(490.0), px(112.0));
    for (i, k) in figures.iter().enumerate() {
        let x = px(40.0) + (i % 2) as i32 * (tile_w + px(20.0));
        let y = px(170.0) + (i / 2) as i32 * px(128.0);
        root.draw(&Rectangle::new(
            [(x, y), (x + tile_w, y + tile_h)],
            TILE.filled(),
        ))?;
        root.draw(&Text::new(
            k.label.clone(),
            (x + px(18.0), y + px(12.0)),
            font(26.0 * u).color(&MUTED),
        ))?;
        root.draw(&Text::new(
            k.value.clone(),
            (x + px(18.0), y + px(42.0)),
            bold(38.0 * u),
        ))?;
        if !k.detail.is_empty() {
            let detail = fit(&k.detail, 44);
            root.draw(&Text::new(
                detail,
                (x + px(18.0), y + px(86.0)),
                font(20.0 * u).color(&MUTED),
            ))?;
        }
    }
    let top = px(170.0 + rows as f64 * 128.0 + 10.0) as u32;
    let (_, rest) = root.split_vertically(top);
    let (upper, lower) = rest.split_vertically(px(560.0) as u32);
    match f.period {
        Period::Day { .. } => {
            power_chart(&upper, f, u)?;
            bar_chart(&lower, f, u, "Energy per hour (kWh)")?;
        }
        Period::Month { .. } => {
            bar_chart(&upper, f, u, "Energy per day (kWh)")?;
            daily_peaks_chart(&lower, f, u)?;
        }
    }
    Ok(())
}

/// Cuts a line to `n` characters with an ellipsis.
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// A chart's title and, without data, a clear "no data" in its place. Returns the area
/// for the chart itself, or `None` when there is nothing to draw.
fn frame<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &Figures,
    u: f64,
    title: &str,
) -> Result<Option<DrawingArea<DB, Shift>>, DrawingAreaErrorKind<DB::ErrorType>> {
    let area = area.margin(
        (10.0 * u) as u32,
        (10.0 * u) as u32,
        (20.0 * u) as u32,
        (40.0 * u) as u32,
    );
    area.draw(&Text::new(
        title.to_string(),
        ((20.0 * u) as i32, (4.0 * u) as i32),
        bold(32.0 * u),
    ))?;
    let (_, body) = area.split_vertically((56.0 * u) as u32);
    if f.has_data() {
        return Ok(Some(body));
    }
    let (w, h) = body.dim_in_pixel();
    body.draw(&Rectangle::new(
        [(0, 0), (w as i32, h as i32 - (10.0 * u) as i32)],
        TILE.filled(),
    ))?;
    let what = match f.period {
        Period::Day { .. } => "No data for this day",
        Period::Month { .. } => "No data for this month",
    };
    let style = bold(44.0 * u).color(&MUTED).pos(text_anchor::Pos::new(
        text_anchor::HPos::Center,
        text_anchor::VPos::Center,
    ));
    body.draw(&Text::new(what, (w as i32 / 2, h as i32 / 2), style))?;
    Ok(None)
}

/// Hours since the period's start, the x of the day charts.
fn hours(f: &Figures, t: i64) -> f64 {
    (t - f.bounds.0) as f64 / 3600.0
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// At most this many y labels.
const Y_LABELS: usize = 8;

/// The fewest decimals that show each of plotters' y ticks for `y` exactly (0.1 kWh
/// bars get 0.00, 0.02, 0.04 … instead of 0.0, 0.0, 0.0; 0 to 4 kWh gets 0.5 steps).
fn y_decimals(y: std::ops::Range<f64>) -> usize {
    use plotters::coord::ranged1d::Ranged;
    let ticks = RangedCoordf64::from(y).key_points(Y_LABELS);
    (0..6)
        .find(|d| {
            ticks.iter().all(|v| {
                let shown: f64 = format!("{v:.d$}").parse().unwrap_or(f64::NAN);
                (shown - v).abs() <= 1e-9 * v.abs().max(1.0)
            })
        })
        .unwrap_or(6)
}

/// A chart's axes: y labels and grid from plotters, x ticks where the caller says
/// (local hours or days, which plotters' evenly spaced numbers would miss on DST days).
fn axes<'a, DB: DrawingBackend>(
    body: &'a DrawingArea<DB, Shift>,
    u: f64,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    ticks: Vec<(f64, String)>,
) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(body)
        .x_label_area_size((50.0 * u) as u32)
        .y_label_area_size((80.0 * u) as u32)
        .build_cartesian_2d(x, y.clone())?;
    let decimals = y_decimals(y.clone());
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(Y_LABELS)
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .y_label_style(font(24.0 * u))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    let grid = RGBColor(225, 225, 225).stroke_width((1.5 * u).max(1.0) as u32);
    let base = body.get_base_pixel();
    let style = font(24.0 * u).pos(text_anchor::Pos::new(
        text_anchor::HPos::Center,
        text_anchor::VPos::Top,
    ));
    for (tx, label) in ticks {
        chart.draw_series(LineSeries::new([(tx, y.start), (tx, y.end)], grid))?;
        let (px, py) = chart.backend_coord(&(tx, y.start));
        body.draw(&Text::new(
            label,
            (px - base.0, py - base.1 + (10.0 * u) as i32),
            style.clone(),
        ))?;
    }
    Ok(chart)
}

/// Power over the day from quarter-hour averages: import above the axis, export below,
/// the peak quarter marked.
fn power_chart<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, f: &Figures, u: f64) -> Res<DB> {
    let Some(body) = frame(area, f, u, "Power over the day (kW, 15-minute averages)")? else {
        return Ok(());
    };
    let kw = |w: Option<f64>| w.unwrap_or(0.0) / 1000.0;
    let top = f
        .quarters
        .iter()
        .map(|q| kw(q.import_w()))
        .fold(0.5, f64::max)
        * 1.15;
    let bottom = -f
        .quarters
        .iter()
        .map(|q| kw(q.export_w()))
        .fold(0.0, f64::max)
        * 1.15;
    let span = hours(f, f.bounds.1);
    let start = f.bounds.0;
    let ticks = day_ticks(f)
        .into_iter()
        .map(|x| (x, local_hm(start + (x * 3600.0).round() as i64)))
        .collect();
    let mut chart = axes(&body, u, 0.0..span, bottom.min(-0.05 * top)..top, ticks)?;
    for run in runs(&f.quarters) {
        let step = |v: fn(&Slot) -> Option<f64>, sign: f64| -> Vec<(f64, f64)> {
            run.iter()
                .flat_map(|q| {
                    let y = sign * v(q).unwrap_or(0.0) / 1000.0;
                    [(hours(f, q.start), y), (hours(f, q.end), y)]
                })
                .collect()
        };
        chart.draw_series(
            AreaSeries::new(step(Slot::import_w, 1.0), 0.0, IMPORT.mix(0.35))
                .border_style(IMPORT.stroke_width((3.0 * u).max(1.0) as u32)),
        )?;
        chart.draw_series(
            AreaSeries::new(step(Slot::export_w, -1.0), 0.0, EXPORT.mix(0.35))
                .border_style(EXPORT.stroke_width((3.0 * u).max(1.0) as u32)),
        )?;
    }
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (span, 0.0)],
        INK.stroke_width((2.0 * u).max(1.0) as u32),
    ))?;
    if let Some(p) = &f.peak {
        let x = hours(f, p.start) + 0.125;
        let y = p.power_w / 1000.0;
        chart.draw_series([Circle::new(
            (x, y),
            (9.0 * u) as u32,
            PEAK.stroke_width((4.0 * u).max(1.0) as u32),
        )])?;
        let right = x > span * 0.6;
        let style = peak_label(u, right, text_anchor::VPos::Center);
        let dx = if right { -0.35 } else { 0.35 };
        chart.draw_series([Text::new(
            format!("peak {} at {}", power(p.power_w), local_hm(p.start)),
            (x + dx, y * 0.97),
            style,
        )])?;
    }
    Ok(())
}

/// Tick positions (hours since the day's start) at local 00:00, 03:00, ... 21:00,
/// wherever DST puts them.
fn day_ticks(f: &Figures) -> Vec<f64> {
    let Period::Day { year, month, day } = f.period else {
        return Vec::new();
    };
    (0..24)
        .step_by(3)
        .filter_map(|hour| {
            let c = Civil {
                year,
                month,
                day,
                hour,
                minute: 0,
                second: 0,
            };
            cet_to_utc(&c, None).map(|t| hours(f, t.0))
        })
        .collect()
}

/// Ticks on bar charts: every third local hour at the bar's start, or days 1, 5, 10,
/// 15, 20, 25 and 30 under the bar's middle.
fn bar_ticks(bars: &[Slot], month: bool) -> Vec<(f64, String)> {
    bars.iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let (c, _) = meterkast_codec::Timestamp(b.start).to_cet();
            if month {
                (c.day == 1 || c.day % 5 == 0).then(|| (i as f64 + 0.5, c.day.to_string()))
            } else {
                (c.hour % 3 == 0 && c.minute == 0).then(|| (i as f64, local_hm(b.start)))
            }
        })
        .collect()
}

/// The peak's label: bold, in the peak colour, to the left of the mark when it is
/// on the right of the chart.
fn peak_label(u: f64, right: bool, v: text_anchor::VPos) -> TextStyle<'static> {
    let h = if right {
        text_anchor::HPos::Right
    } else {
        text_anchor::HPos::Left
    };
    bold(26.0 * u).color(&PEAK).pos(text_anchor::Pos::new(h, v))
}

/// Consecutive runs of slots that have data (gaps stay gaps).
fn runs(slots: &[Slot]) -> Vec<&[Slot]> {
    slots
        .split(|s| s.import_wh.is_none())
        .filter(|r| !r.is_empty())
        .collect()
}

/// Energy bars: per hour for a day, per day for a month; import up, export down.
fn bar_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &Figures,
    u: f64,
    title: &str,
) -> Res<DB> {
    let Some(body) = frame(area, f, u, title)? else {
        return Ok(());
    };
    let kwh = |wh: Option<i64>| wh.unwrap_or(0) as f64 / 1000.0;
    let top = f.bars.iter().map(|b| kwh(b.import_wh)).fold(0.1, f64::max) * 1.1;
    let bottom = -f.bars.iter().map(|b| kwh(b.export_wh)).fold(0.0, f64::max) * 1.1;
    let n = f.bars.len() as f64;
    let bars = &f.bars;
    let month = matches!(f.period, Period::Month { .. });
    let ticks = bar_ticks(bars, month);
    let mut chart = axes(&body, u, 0.0..n, bottom.min(-0.05 * top)..top, ticks)?;
    for (i, b) in bars.iter().enumerate() {
        let x0 = i as f64 + 0.12;
        let x1 = i as f64 + 0.88;
        chart.draw_series([
            Rectangle::new([(x0, 0.0), (x1, kwh(b.import_wh))], IMPORT.filled()),
            Rectangle::new([(x0, 0.0), (x1, -kwh(b.export_wh))], EXPORT.filled()),
        ])?;
    }
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (n, 0.0)],
        INK.stroke_width((2.0 * u).max(1.0) as u32),
    ))?;
    Ok(())
}

/// For a month: each day's highest quarter-hour of import, the month's peak marked.
fn daily_peaks_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f: &Figures,
    u: f64,
) -> Res<DB> {
    let Some(body) = frame(area, f, u, "Highest quarter-hour per day (kW)")? else {
        return Ok(());
    };
    let daily: Vec<f64> = f
        .bars
        .iter()
        .map(|d| {
            f.quarters
                .iter()
                .filter(|q| q.start >= d.start && q.start < d.end)
                .filter_map(Slot::import_w)
                .fold(0.0, f64::max)
                / 1000.0
        })
        .collect();
    let top = daily.iter().copied().fold(0.5, f64::max) * 1.2;
    let n = daily.len() as f64;
    let ticks = bar_ticks(&f.bars, true);
    let mut chart = axes(&body, u, 0.0..n, 0.0..top, ticks)?;
    let peak_day = f.peak.as_ref().and_then(|p| {
        f.bars
            .iter()
            .position(|b| b.start <= p.start && p.start < b.end)
    });
    for (i, v) in daily.iter().enumerate() {
        let c = if Some(i) == peak_day {
            PEAK.mix(1.0)
        } else {
            IMPORT.mix(0.6)
        };
        chart.draw_series([Rectangle::new(
            [(i as f64 + 0.12, 0.0), (i as f64 + 0.88, *v)],
            c.filled(),
        )])?;
    }
    if let (Some(i), Some(p)) = (peak_day, &f.peak) {
        let right = (i as f64) > n * 0.6;
        let style = peak_label(u, right, text_anchor::VPos::Bottom);
        let x = if right {
            i as f64 - 0.2
        } else {
            i as f64 + 1.2
        };
        chart.draw_series([Text::new(
            format!(
                "month peak {} · {}",
                power(p.power_w),
                local_day_hm(p.start)
            ),
            (x, daily[i]),
            style,
        )])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::coord::ranged1d::Ranged;

    #[test]
    fn y_labels_have_the_decimals_their_ticks_need() {
        for (lo, hi) in [
            (-0.0055, 0.11),
            (0.0, 0.6),
            (-0.3, 4.4),
            (0.0, 0.011),
            (-2.0, 35.0),
            (0.0, 1234.0),
        ] {
            let d = y_decimals(lo..hi);
            let r: RangedCoordf64 = (lo..hi).into();
            let ticks = r.key_points(Y_LABELS);
            assert!(ticks.len() >= 3, "{lo}..{hi}: {ticks:?}");
            let labels: Vec<String> = ticks.iter().map(|v| format!("{v:.d$}")).collect();
            for (v, l) in ticks.iter().zip(&labels) {
                let back: f64 = l.parse().unwrap();
                assert!((back - v).abs() < 1e-9, "{lo}..{hi}: {v} shown as {l}");
            }
            let mut distinct = labels.clone();
            distinct.dedup();
            assert_eq!(distinct, labels, "{lo}..{hi}");
            assert!(
                d <= 1 || labels.iter().any(|l| !l.ends_with('0')),
                "{labels:?}: too many decimals"
            );
        }
    }
}
