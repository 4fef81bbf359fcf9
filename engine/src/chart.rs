//! Chart images of insight results with `plotters`, as PNG or SVG: funnel bars (funnel
//! trends: a line of the conversion rate), the retention heatmap with its mean curve, trend
//! lines, stickiness bars, lifecycle bars (dormant below zero) and a Sankey diagram of paths. Text uses the bundled DejaVu Sans, so
//! images look the same on every machine.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::insights::activity::{LifecycleResult, StickinessResult, TrendsResult};
use crate::insights::funnel::{FunnelResult, FunnelTrendPeriod, FunnelTrends};
use crate::insights::paths::PathsResult;
use crate::insights::retention::RetentionResult;
use crate::insights::InsightResult;
use crate::{EngineError, Result};

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Whether the bundled font registered (once per process).
static FONT_READY: OnceLock<bool> = OnceLock::new();

/// Image formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Svg,
}

impl ImageFormat {
    /// By file extension (`.png`, `.svg`).
    pub fn of_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            _ => Err(EngineError::InvalidArgument(format!(
                "{}: a chart is written as .png or .svg",
                path.display()
            ))),
        }
    }
}

/// Default image size in pixels.
pub const SIZE: (u32, u32) = (1200, 700);

const PALETTE: [RGBColor; 8] = [
    RGBColor(29, 78, 216),
    RGBColor(234, 88, 12),
    RGBColor(22, 163, 74),
    RGBColor(190, 24, 93),
    RGBColor(124, 58, 237),
    RGBColor(8, 145, 178),
    RGBColor(202, 138, 4),
    RGBColor(71, 85, 105),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidArgument(format!("drawing the chart: {e}"))
}

/// Render an insight result to `path` (PNG or SVG by extension) at `size`.
pub fn render(result: &InsightResult, title: &str, path: &Path, size: (u32, u32)) -> Result<()> {
    ensure_font()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    }
    match ImageFormat::of_path(path)? {
        ImageFormat::Png => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, result, title)?;
            root.present().map_err(err)
        }
        ImageFormat::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root, result, title)?;
            root.present().map_err(err)
        }
    }
}

/// Register the bundled font once per process.
fn ensure_font() -> Result<()> {
    let ready = *FONT_READY.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ready {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(
            "drawing the chart: the bundled font could not be loaded".into(),
        ))
    }
}

/// A bar chart of labelled values as PNG bytes, drawn in memory (for reports that embed
/// their images as `data:` URIs).
pub fn bar_chart_png(
    title: &str,
    labels: &[String],
    values: &[f64],
    x_desc: &str,
    y_desc: &str,
    size: (u32, u32),
) -> Result<Vec<u8>> {
    ensure_font()?;
    let (w, h) = size;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        bars(
            &root,
            Bars {
                title,
                categories: labels.to_vec(),
                series: vec![("".into(), values.to_vec())],
                y_desc,
                x_desc,
                annotations: values.iter().map(|v| count_label(*v)).collect(),
            },
        )?;
        root.present().map_err(err)?;
    }
    encode_png(&rgb, w, h)
}

/// A minimal PNG encoder (8-bit RGB, no filtering, zlib via flate2).
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let io = |e: std::io::Error| EngineError::InvalidArgument(format!("encoding the chart: {e}"));
    let mut raw = Vec::with_capacity(rgb.len() + h as usize);
    for row in rgb.chunks((w * 3) as usize) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).map_err(io)?;
    let idat = z.finish().map_err(io)?;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

fn draw<DB: DrawingBackend>(root: &Area<'_, DB>, r: &InsightResult, title: &str) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    match r {
        InsightResult::Funnel(f) => funnel(root, f, title),
        InsightResult::Retention(t) => retention(root, t, title),
        InsightResult::Trends(t) => trends(root, t, title),
        InsightResult::Stickiness(t) => stickiness(root, t, title),
        InsightResult::Lifecycle(t) => lifecycle(root, t, title),
        InsightResult::Paths(p) => paths(root, p, title),
    }
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn centered(size: u32) -> TextStyle<'static> {
    font(size).pos(Pos::new(HPos::Center, VPos::Bottom))
}

/// A tidy axis maximum above `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let t = v * 1.08;
    let mag = 10f64.powf(t.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * mag >= t {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Shorten a label to `n` characters.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Every `k`-th of `n` labels so that at most `fit` show.
fn label_step(n: usize, fit: usize) -> usize {
    n.div_ceil(fit.max(1)).max(1)
}

fn count_label(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let n = v as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            format!("-{out}")
        } else {
            out
        }
    } else {
        format!("{v:.2}")
    }
}

/// Draw the series legend in a box at `pos`.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
    size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(font(size))
        .draw()
        .map_err(err)
}

/// The label at whole-number position `x` when it is every `step`-th (else nothing).
fn every_nth(labels: &[String], step: usize, x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 || !(i as usize).is_multiple_of(step) {
        return String::new();
    }
    labels.get(i as usize).cloned().unwrap_or_default()
}

/// Bars per category, grouped by series; `labels` above each bar.
struct Bars<'a> {
    title: &'a str,
    categories: Vec<String>,
    /// (series name, values per category)
    series: Vec<(String, Vec<f64>)>,
    y_desc: &'a str,
    x_desc: &'a str,
    /// Text over each bar of the first series (e.g. conversion %).
    annotations: Vec<String>,
}

fn bars<DB: DrawingBackend>(root: &Area<'_, DB>, b: Bars<'_>) -> Result<()> {
    let n = b.categories.len().max(1);
    // Headroom for the legend or the labels over the bars.
    let ymax = nice_max(
        b.series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(0.0, f64::max)
            * if b.series.len() > 1 { 1.3 } else { 1.1 },
    );
    let (w, _) = root.dim_in_pixel();
    let fit = (w as usize / 90).max(2);
    let step = label_step(n, fit);
    // Characters that fit under one bar group (about 8 px each at 15 px).
    let chars = ((w as usize - 130) * step / n / 8).clamp(6, 40);
    let cats = b.categories.clone();
    let mut chart = ChartBuilder::on(root)
        .caption(b.title, font(26))
        .margin(24)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(fit) + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            let i = i as usize;
            if !i.is_multiple_of(step) {
                return String::new();
            }
            cats.get(i).map(|c| short(c, chars)).unwrap_or_default()
        })
        .y_label_formatter(&|y| count_label(*y))
        .light_line_style(BLACK.mix(0.04))
        .y_desc(b.y_desc)
        .x_desc(b.x_desc)
        .label_style(font(15))
        .axis_desc_style(font(16))
        .draw()
        .map_err(err)?;
    let k = b.series.len().max(1) as f64;
    let width = 0.7 / k;
    for (si, (name, values)) in b.series.iter().enumerate() {
        let c = color(si);
        let drawn = chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let x0 = i as f64 - 0.35 + si as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, *v)], c.filled())
            }))
            .map_err(err)?;
        if b.series.len() > 1 {
            drawn
                .label(short(name, 28))
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        }
    }
    if let Some((_, first)) = b.series.first() {
        if b.series.len() == 1 {
            chart
                .draw_series(b.annotations.iter().enumerate().map(|(i, t)| {
                    Text::new(
                        t.clone(),
                        (i as f64, first.get(i).copied().unwrap_or(0.0) + ymax * 0.01),
                        centered(15),
                    )
                }))
                .map_err(err)?;
        }
    }
    if b.series.len() > 1 {
        legend(&mut chart, SeriesLabelPosition::UpperRight, 14)?;
    }
    Ok(())
}

/// Funnel trends: the conversion rate per entry period (one line per breakdown value when
/// broken down); periods whose window is still open get their own dashed-colour line, so a
/// young period's low rate does not read as a fall.
fn funnel_trends<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    t: &FunnelTrends,
    title: &str,
) -> Result<()> {
    let rate = |p: &FunnelTrendPeriod| p.conversion_rate.map(|r| r * 100.0);
    let split = |periods: &[FunnelTrendPeriod]| -> (Vec<Option<f64>>, Vec<Option<f64>>) {
        let complete = periods
            .iter()
            .map(|p| if p.complete { rate(p) } else { None })
            .collect();
        // The incomplete line starts at the last complete point, so the two lines join.
        let incomplete = periods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let next_incomplete = periods.get(i + 1).is_some_and(|q| !q.complete);
                if !p.complete || next_incomplete {
                    rate(p)
                } else {
                    None
                }
            })
            .collect();
        (complete, incomplete)
    };
    let dates: Vec<String> = t.periods.iter().map(|p| p.date.clone()).collect();
    let mut series = Vec::new();
    if t.breakdown.is_empty() {
        let (complete, incomplete) = split(&t.periods);
        series.push((
            format!("Conversion, step {} → {}", t.from_step + 1, t.to_step + 1),
            complete,
        ));
        series.push(("Incomplete (window still open)".into(), incomplete));
    } else {
        // Complete periods per value; the incomplete tail of all values together.
        for b in &t.breakdown {
            let name = if b.value.is_empty() { "None" } else { &b.value };
            series.push((name.to_string(), split(&b.periods).0));
        }
        let (_, incomplete) = split(&t.periods);
        if incomplete.iter().any(Option::is_some) {
            series.push((
                "All values, incomplete (window still open)".into(),
                incomplete,
            ));
        }
    }
    lines(
        root,
        Lines {
            title,
            dates: &dates,
            series,
            y_desc: "Conversion %",
        },
    )
}

fn funnel<DB: DrawingBackend>(root: &Area<'_, DB>, f: &FunnelResult, title: &str) -> Result<()> {
    if let Some(t) = &f.trends {
        return funnel_trends(root, t, title);
    }
    let categories: Vec<String> = f
        .steps
        .iter()
        .map(|s| format!("{}. {}", s.index + 1, s.name))
        .collect();
    let mut series = vec![(
        "All".to_string(),
        f.steps.iter().map(|s| s.count as f64).collect::<Vec<_>>(),
    )];
    // With a breakdown: the largest values side by side (at most 6).
    if !f.breakdown.is_empty() {
        series = f
            .breakdown
            .iter()
            .take(6)
            .map(|b| {
                (
                    if b.value.is_empty() {
                        "None".to_string()
                    } else {
                        b.value.clone()
                    },
                    b.steps.iter().map(|s| s.count as f64).collect(),
                )
            })
            .collect();
    }
    let annotations = f
        .steps
        .iter()
        .map(|s| match s.conversion_overall {
            Some(c) => format!("{} · {:.1}%", count_label(s.count as f64), c * 100.0),
            None => count_label(s.count as f64),
        })
        .collect();
    bars(
        root,
        Bars {
            title,
            categories,
            series,
            y_desc: f.count.noun(),
            x_desc: "Step",
            annotations,
        },
    )
}

fn stickiness<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    s: &StickinessResult,
    title: &str,
) -> Result<()> {
    bars(
        root,
        Bars {
            title,
            categories: (1..=s.persons.len()).map(|i| i.to_string()).collect(),
            series: vec![(
                "Persons".into(),
                s.persons.iter().map(|v| *v as f64).collect(),
            )],
            y_desc: "Persons",
            x_desc: "Active periods",
            annotations: s
                .persons
                .iter()
                .map(|v| {
                    if s.persons.len() <= 20 {
                        count_label(*v as f64)
                    } else {
                        String::new()
                    }
                })
                .collect(),
        },
    )
}

fn trends<DB: DrawingBackend>(root: &Area<'_, DB>, t: &TrendsResult, title: &str) -> Result<()> {
    lines(
        root,
        Lines {
            title,
            dates: &t.dates,
            series: t
                .series
                .iter()
                .map(|s| {
                    (
                        s.label.clone(),
                        s.values.iter().copied().map(Some).collect(),
                    )
                })
                .collect(),
            y_desc: "Value",
        },
    )
}

/// Lines over periods; a missing value breaks its line.
struct Lines<'a> {
    title: &'a str,
    dates: &'a [String],
    /// (label, value per period)
    series: Vec<(String, Vec<Option<f64>>)>,
    y_desc: &'a str,
}

fn lines<DB: DrawingBackend>(root: &Area<'_, DB>, l: Lines<'_>) -> Result<()> {
    let n = l.dates.len().max(1);
    let values = || l.series.iter().flat_map(|s| s.1.iter().flatten().copied());
    // Headroom above for the legend.
    let ymax = nice_max(values().fold(0.0, f64::max) * 1.25);
    let ymin = values().fold(0.0, f64::min);
    let ymin = if ymin < 0.0 { -nice_max(-ymin) } else { 0.0 };
    let (w, _) = root.dim_in_pixel();
    let step = label_step(n, (w as usize / 110).max(2));
    let dates = l.dates.to_vec();
    let mut chart = ChartBuilder::on(root)
        .caption(l.title, font(26))
        .margin(24)
        // The last date label is centred on the right edge: room for its half.
        .margin_right(56)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..((n - 1).max(1) as f64), ymin..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(n.min(200))
        .x_label_formatter(&|x| every_nth(&dates, step, *x))
        .y_label_formatter(&|y| count_label(*y))
        .light_line_style(BLACK.mix(0.05))
        .y_desc(l.y_desc)
        .x_desc("Period starting")
        .label_style(font(15))
        .axis_desc_style(font(16))
        .draw()
        .map_err(err)?;
    for (i, (label, values)) in l.series.iter().take(12).enumerate() {
        let c = color(i);
        // Runs of consecutive values, each its own line.
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut run: Vec<(f64, f64)> = Vec::new();
        for (x, v) in values.iter().enumerate() {
            match v {
                Some(v) => run.push((x as f64, *v)),
                None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        for (k, points) in runs.iter().enumerate() {
            let drawn = chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))
                .map_err(err)?;
            if k == 0 {
                drawn.label(short(label, 40)).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            }
            if n <= 40 {
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))
                    .map_err(err)?;
            }
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft, 14)?;
    if l.series.len() > 12 {
        root.draw(&Text::new(
            format!("showing 12 of {} series", l.series.len()),
            (24, 40),
            font(13),
        ))
        .map_err(err)?;
    }
    Ok(())
}

fn lifecycle<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    l: &LifecycleResult,
    title: &str,
) -> Result<()> {
    let n = l.periods.len().max(1);
    let up = l
        .periods
        .iter()
        .map(|p| (p.new + p.returning + p.resurrecting) as f64)
        .fold(0.0, f64::max);
    let down = l
        .periods
        .iter()
        .map(|p| -(p.dormant as f64))
        .fold(0.0, f64::max);
    // Headroom above for the legend.
    let (ymax, ymin) = (nice_max(up * 1.3), -nice_max(down.max(up * 0.1)));
    let (w, _) = root.dim_in_pixel();
    let step = label_step(n, (w as usize / 110).max(2));
    let dates: Vec<String> = l.periods.iter().map(|p| p.date.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, font(26))
        .margin(24)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), ymin..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(200) + 1)
        .x_label_formatter(&|x| every_nth(&dates, step, *x))
        .y_label_formatter(&|y| count_label(*y))
        .light_line_style(BLACK.mix(0.04))
        .y_desc("Persons")
        .x_desc("Period starting")
        .label_style(font(15))
        .axis_desc_style(font(16))
        .draw()
        .map_err(err)?;
    let kinds: [(&str, RGBColor); 4] = [
        ("new", RGBColor(22, 163, 74)),
        ("returning", RGBColor(29, 78, 216)),
        ("resurrecting", RGBColor(202, 138, 4)),
        ("dormant", RGBColor(220, 38, 38)),
    ];
    for (k, (name, c)) in kinds.iter().enumerate() {
        let c = *c;
        chart
            .draw_series(l.periods.iter().enumerate().map(|(i, p)| {
                let stack = [p.new as f64, p.returning as f64, p.resurrecting as f64];
                let (y0, y1) = if k == 3 {
                    (0.0, p.dormant as f64)
                } else {
                    let base: f64 = stack[..k].iter().sum();
                    (base, base + stack[k])
                };
                let x = i as f64;
                Rectangle::new([(x - 0.38, y0), (x + 0.38, y1)], c.filled())
            }))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            vec![(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    legend(&mut chart, SeriesLabelPosition::UpperRight, 14)?;
    Ok(())
}

/// The heatmap of retained % per cohort and period above the mean curve.
fn retention<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    r: &RetentionResult,
    title: &str,
) -> Result<()> {
    let (_, h) = root.dim_in_pixel();
    let (top, bottom) = root.split_vertically((h as f64 * 0.62) as u32);
    let rows = r.cohorts.len().max(1);
    let cols = r
        .cohorts
        .iter()
        .map(|c| c.values.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let labels: Vec<String> = r
        .cohorts
        .iter()
        .map(|c| format!("{} ({})", c.label, count_label(c.size as f64)))
        .collect();
    let mut chart = ChartBuilder::on(&top)
        .caption(title, font(26))
        .margin(16)
        .x_label_area_size(30)
        .y_label_area_size(170)
        .build_cartesian_2d(0f64..cols as f64, 0f64..rows as f64)
        .map_err(err)?;
    let row_step = label_step(rows, 16);
    let col_step = label_step(cols, 24);
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_axes()
        .x_labels(0)
        .y_labels(0)
        .draw()
        .map_err(err)?;
    // Row and column labels at the centres of the cells.
    for (ci, label) in labels.iter().enumerate() {
        if !ci.is_multiple_of(row_step) {
            continue;
        }
        let (px, py) = chart.backend_coord(&(0.0, (rows - 1 - ci) as f64 + 0.5));
        top.draw(&Text::new(
            label.clone(),
            (px - 8, py),
            font(13).pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(err)?;
    }
    for k in (0..cols).step_by(col_step) {
        let (px, py) = chart.backend_coord(&(k as f64 + 0.5, 0.0));
        top.draw(&Text::new(
            format!("P{k}"),
            (px, py + 6),
            font(13).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
    }
    let cell_text = rows <= 16 && cols <= 16;
    for (ci, c) in r.cohorts.iter().enumerate() {
        let y = (rows - 1 - ci) as f64;
        for (k, v) in c.values.iter().enumerate() {
            let x = k as f64;
            let (fill, text) = match v {
                Some(n) if c.size > 0 => {
                    let pct = *n as f64 / c.size as f64;
                    let shade = (235.0 - pct * 200.0) as u8;
                    (
                        RGBColor(shade, (shade as f64 * 0.95 + 12.0) as u8, 250).filled(),
                        format!("{:.0}%", pct * 100.0),
                    )
                }
                Some(_) => (RGBColor(245, 245, 245).filled(), "–".to_string()),
                None => (RGBColor(250, 250, 250).filled(), String::new()),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.02, y + 0.04), (x + 0.98, y + 0.96)],
                    fill,
                )))
                .map_err(err)?;
            if cell_text && !text.is_empty() {
                let dark = v
                    .map(|n| c.size > 0 && n as f64 / c.size as f64 > 0.55)
                    .unwrap_or(false);
                let style = font(13)
                    .color(if dark { &WHITE } else { &BLACK })
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart
                    .draw_series(std::iter::once(Text::new(text, (x + 0.5, y + 0.5), style)))
                    .map_err(err)?;
            }
        }
    }
    // The mean curve, simple and weighted, in %.
    let n = r.mean_simple.len().max(1);
    let mut curve = ChartBuilder::on(&bottom)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d(0f64..((n - 1).max(1) as f64), 0f64..100f64)
        .map_err(err)?;
    curve
        .configure_mesh()
        .x_labels(n.min(40))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 {
                return String::new();
            }
            format!("P{}", i as usize)
        })
        .y_label_formatter(&|y| format!("{y:.0}%"))
        .light_line_style(BLACK.mix(0.04))
        .y_desc("Mean retained")
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()
        .map_err(err)?;
    // Broken down: the weighted mean of everyone and of each value (up to 10 lines).
    let curves: Vec<(String, &Vec<Option<f64>>)> = if r.breakdown.is_empty() {
        vec![
            ("simple mean".to_string(), &r.mean_simple),
            ("weighted mean".to_string(), &r.mean_weighted),
        ]
    } else {
        std::iter::once(("everyone (weighted)".to_string(), &r.mean_weighted))
            .chain(
                r.breakdown
                    .iter()
                    .take(9)
                    .map(|b| (short(&b.value, 28), &b.mean_weighted)),
            )
            .collect()
    };
    for (i, (name, vals)) in curves.into_iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = vals
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (k as f64, v * 100.0)))
            .collect();
        curve
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(3)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        curve
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
    }
    legend(&mut curve, SeriesLabelPosition::UpperRight, 13)?;
    Ok(())
}

/// A Sankey diagram: one column per step, node heights by path count, edges as bands.
fn paths<DB: DrawingBackend>(root: &Area<'_, DB>, p: &PathsResult, title: &str) -> Result<()> {
    let root = root.titled(title, font(26)).map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as f64, h as f64);
    let steps = p.nodes.iter().map(|n| n.step).max().unwrap_or(1).max(1);
    let margin = 30.0;
    let node_w = 14.0;
    let col_x = |step: usize| -> f64 {
        if steps == 1 {
            margin
        } else {
            margin + (step - 1) as f64 * (w - 2.0 * margin - node_w - 160.0) / (steps - 1) as f64
        }
    };
    let gap = 8.0;
    // Scale: the fullest column fills the height.
    let mut scale = f64::INFINITY;
    for s in 1..=steps {
        let col: Vec<_> = p.nodes.iter().filter(|n| n.step == s).collect();
        let total: f64 = col.iter().map(|n| n.paths as f64).sum();
        if total > 0.0 {
            let room = h - 2.0 * margin - gap * col.len().saturating_sub(1) as f64;
            scale = scale.min(room.max(20.0) / total);
        }
    }
    if !scale.is_finite() {
        root.draw(&Text::new("no paths in this range", (40, 60), font(18)))
            .map_err(err)?;
        return Ok(());
    }
    // Node rectangles: key → (x, y top, height, out-offset, in-offset).
    let mut pos: std::collections::HashMap<&str, (f64, f64, f64, f64, f64)> =
        std::collections::HashMap::new();
    for s in 1..=steps {
        let mut y = margin;
        for n in p.nodes.iter().filter(|n| n.step == s) {
            let hgt = (n.paths as f64 * scale).max(1.0);
            pos.insert(n.key.as_str(), (col_x(s), y, hgt, 0.0, 0.0));
            y += hgt + gap;
        }
    }
    let mut edges: Vec<_> = p.edges.iter().collect();
    edges.sort_by(|a, b| a.source.cmp(&b.source).then(b.paths.cmp(&a.paths)));
    for e in edges {
        let (Some(&s), Some(&t)) = (pos.get(e.source.as_str()), pos.get(e.target.as_str())) else {
            continue;
        };
        let band = e.paths as f64 * scale;
        let (x0, y0) = (s.0 + node_w, s.1 + s.3);
        let (x1, y1) = (t.0, t.1 + t.4);
        if let Some(v) = pos.get_mut(e.source.as_str()) {
            v.3 += band;
        }
        if let Some(v) = pos.get_mut(e.target.as_str()) {
            v.4 += band;
        }
        // A smooth band: sample a cubic ease between the columns.
        let k = 24;
        let ease = |u: f64| u * u * (3.0 - 2.0 * u);
        let mut poly: Vec<(i32, i32)> = Vec::with_capacity(2 * k + 2);
        for i in 0..=k {
            let u = i as f64 / k as f64;
            poly.push((
                (x0 + (x1 - x0) * u) as i32,
                (y0 + (y1 - y0) * ease(u)) as i32,
            ));
        }
        for i in (0..=k).rev() {
            let u = i as f64 / k as f64;
            poly.push((
                (x0 + (x1 - x0) * u) as i32,
                (y0 + band + (y1 - y0) * ease(u)) as i32,
            ));
        }
        root.draw(&Polygon::new(poly, color(0).mix(0.25)))
            .map_err(err)?;
    }
    for n in &p.nodes {
        if let Some(&(x, y, hgt, _, _)) = pos.get(n.key.as_str()) {
            root.draw(&Rectangle::new(
                [
                    (x as i32, y as i32),
                    ((x + node_w) as i32, (y + hgt) as i32),
                ],
                color(n.step - 1).filled(),
            ))
            .map_err(err)?;
            if hgt >= 14.0 {
                root.draw(&Text::new(
                    format!("{} ({})", short(&n.item, 22), count_label(n.paths as f64)),
                    ((x + node_w + 4.0) as i32, (y + hgt / 2.0) as i32),
                    font(13).pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(err)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_and_labels() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(95.0), 120.0);
        assert_eq!(nice_max(3.0), 4.0);
        assert_eq!(count_label(1234567.0), "1,234,567");
        assert_eq!(count_label(-1200.0), "-1,200");
        assert_eq!(count_label(2.5), "2.50");
        assert_eq!(label_step(60, 10), 6);
        assert_eq!(short("abcdef", 4), "abc…");
    }
}
