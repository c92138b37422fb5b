//! The small multiples: one row per policy on a shared time axis, the whole run on the left and
//! a 48-hour zoom on the right. Five policies overlaid on two weeks cannot be told apart; one row
//! each, on the same scales, can be compared by eye, and the zoom shows what a replica step or a
//! latency spike looks like at the scale of a cold start.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, VPos},
};

use super::{
    Calendar, Kind,
    canvas::{self, Area, Drawn, Frame, GRID, MUTED, RULE, SLO_RED, Scale, font},
    fmt_num, judged_hours,
    labels::Rect,
    text,
    ticks::{self, TimeAxis},
};
use crate::sim::criterion::HourTally;

/// One policy's series, as a row draws them.
#[derive(Debug, Clone)]
pub struct Lane {
    /// Row name.
    pub name: String,
    /// The setting it ran with, when the table shows one.
    pub setting: Option<String>,
    /// What it is.
    pub kind: Kind,
    /// Its colour.
    pub color: RGBColor,
    /// Seconds per point.
    pub step_s: f64,
    /// Replicas provisioned per step.
    pub replicas: Vec<f64>,
    /// p99 TTFT of the requests arriving in each step, seconds.
    pub ttft_p99_s: Vec<Option<f64>>,
    /// Requests and requests within the SLO per hour.
    pub hourly: Vec<HourTally>,
    /// GPU-hours of this replay.
    pub gpu_hours: f64,
    /// Share of its requests within the SLO.
    pub attainment: f64,
    /// Time-averaged replicas.
    pub mean_replicas: f64,
    /// Most replicas at once.
    pub peak_replicas: u32,
}

/// Everything the small multiples draw.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Where the replay sits in its source.
    pub calendar: Calendar,
    /// Replay length, seconds.
    pub duration_s: f64,
    /// Demand in replicas (arrivals / one replica's capacity within the SLO) per step.
    pub demand: Vec<f64>,
    /// Seconds per demand point.
    pub demand_step_s: f64,
    /// One replica's capacity within the SLO, requests/s.
    pub capacity_rps: f64,
    /// The TTFT SLO, seconds.
    pub slo_ttft_s: f64,
    /// Hours with fewer requests are not judged (nor picked as a worst hour).
    pub min_hour_requests: u64,
    /// Which replay this is ("seed 1 (the first of 3)"), empty when there is one.
    pub seed_note: String,
    /// One per row, in row order.
    pub lanes: Vec<Lane>,
}

/// The zoomed window and why it was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Zoom {
    /// Start, replay seconds.
    pub t0: f64,
    /// End, replay seconds.
    pub t1: f64,
    /// Why this window, for its title.
    pub why: String,
    /// The hour the window is centred on (replay seconds), marked in it.
    pub hour: Option<(f64, f64)>,
}

const ZOOM_S: f64 = 48.0 * 3600.0;
/// Picture width; the README shows it at about 900 px, so fonts are sized for that.
const WIDTH: f64 = 1200.0;
const PAD_L: f64 = 74.0;
const PAD_R: f64 = 18.0;
const COL_GAP: f64 = 60.0;
/// Share of the width given to the whole run when there is a zoom.
const FULL_SHARE: f64 = 0.58;
const TOP: f64 = 146.0;
const STRIP: f64 = 22.0;
const PLOT_H: f64 = 92.0;
const ROW_GAP: f64 = 12.0;
const BOTTOM: f64 = 34.0;
const TICK_PX: f64 = 13.0;
const TITLE_PX: f64 = 13.5;

/// The 48 hours to zoom on: those around llm-scaler's worst judged hour (where a reader wants
/// to see what went wrong), else around the highest demand; starts on a 6-hour boundary of the
/// calendar so the ticks fall on round hours. `None` when the run is not much longer than that.
pub fn zoom_window(tl: &Timeline) -> Option<Zoom> {
    if tl.duration_s < 1.25 * ZOOM_S {
        return None;
    }
    let ours = tl.lanes.iter().find(|l| l.kind == Kind::Ours);
    let worst = ours.and_then(|l| {
        judged_hours(&l.hourly, tl.min_hour_requests).min_by(|a, b| a.1.total_cmp(&b.1)).map(|(h, a)| (l.name.as_str(), h, a))
    });
    let start = tl.calendar.start_s;
    let (centre, why, hour) = match worst {
        Some((name, h, a)) => {
            let t = h as f64 * 3600.0;
            (
                t + 1800.0,
                format!("the 48 h around {name}'s worst hour, {} ({} within SLO)", ticks::when(t + start), pct(a)),
                Some((t, t + 3600.0)),
            )
        }
        None => {
            let peak = tl.demand.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
            let t = peak as f64 * tl.demand_step_s;
            (t, format!("the 48 h around the highest demand, {}", ticks::when(t + start)), None)
        }
    };
    let six = 6.0 * 3600.0;
    let t0 = (((centre - ZOOM_S / 2.0 + start) / six).round() * six - start).clamp(0.0, tl.duration_s - ZOOM_S);
    Some(Zoom { t0, t1: t0 + ZOOM_S, why, hour })
}

/// A share as "99.42 %".
fn pct(a: f64) -> String {
    format!("{:.2} %", a * 100.0)
}

/// The boxes of one row: the whole run and, with a zoom, the zoomed window.
struct Row {
    full: Frame,
    zoom: Option<Frame>,
}

/// The picture's geometry for `rows` rows.
struct Layout {
    height: f64,
    rows: Vec<Row>,
}

fn layout(tl: &Timeline, zoom: Option<&Zoom>, y: Scale) -> Layout {
    let avail = WIDTH - PAD_L - PAD_R - if zoom.is_some() { COL_GAP } else { 0.0 };
    let full_w = if zoom.is_some() { (avail * FULL_SHARE).round() } else { avail };
    let zoom_x = PAD_L + full_w + COL_GAP;
    let rows = (0..tl.lanes.len())
        .map(|i| {
            let top = TOP + i as f64 * (STRIP + PLOT_H + ROW_GAP) + STRIP;
            let full = Frame { rect: Rect::at(PAD_L, top, full_w, PLOT_H), x: Scale::Linear(0.0, tl.duration_s), y };
            let zoom = zoom.map(|z| Frame { rect: Rect::at(zoom_x, top, WIDTH - PAD_R - zoom_x, PLOT_H), x: Scale::Linear(z.t0, z.t1), y });
            Row { full, zoom }
        })
        .collect();
    Layout { height: TOP + tl.lanes.len() as f64 * (STRIP + PLOT_H + ROW_GAP) + BOTTOM, rows }
}

/// What a figure of small multiples says and how each panel draws its series.
struct Figure<'a> {
    title: String,
    subtitle: String,
    y_unit: &'a str,
    y: Scale,
    y_ticks: Vec<f64>,
    y_fmt: &'a dyn Fn(f64) -> String,
    /// Text after the row's name (and setting) in its title, shorter when asked.
    summary: &'a dyn Fn(&Lane, bool) -> String,
    /// Text after the row's name over its zoom panel.
    zoom_summary: &'a dyn Fn(&Lane, &Zoom) -> String,
    /// Draws one lane in one frame.
    series: &'a dyn Fn(&Area<'_>, &Frame, &Lane) -> Drawn,
    /// A legend drawn under the subtitle (starting at the given point).
    legend: &'a dyn Fn(&Area<'_>, (f64, f64)) -> Drawn,
}

/// `replicas.svg`: each policy's provisioned replicas (its colour, filled) against the demand in
/// replicas (black), one row per policy.
pub fn replicas(tl: &Timeline) -> Result<String, String> {
    let top = tl.lanes.iter().flat_map(|l| l.replicas.iter().copied()).chain(tl.demand.iter().copied()).fold(1.0, f64::max) * 1.04;
    let y_ticks = ticks::nice(0.0, top, PLOT_H, 24.0);
    let hi = y_ticks.last().copied().unwrap_or(top).max(top);
    let demand_line = |area: &Area<'_>, f: &Frame| -> Drawn {
        for run in canvas::runs(f, tl.demand_step_s, tl.demand.iter().map(|d| Some(*d))) {
            canvas::polyline(area, &run, BLACK.stroke_width(1))?;
        }
        Ok(())
    };
    let series = |area: &Area<'_>, f: &Frame, l: &Lane| -> Drawn {
        for run in canvas::runs(f, l.step_s, l.replicas.iter().map(|r| Some(*r))) {
            let mut poly = run.clone();
            if let (Some(a), Some(b)) = (run.first(), run.last()) {
                poly.push((b.0, f.rect.y1));
                poly.push((a.0, f.rect.y1));
            }
            canvas::fill(area, &poly, l.color.mix(0.14))?;
            canvas::polyline(area, &run, l.color.stroke_width(2))?;
        }
        demand_line(area, f)
    };
    let summary = |l: &Lane, short: bool| {
        let (g, a) = (ticks::thousands(l.gpu_hours), pct(l.attainment));
        if short {
            format!("{g} GPU-h, mean {:.1} / peak {}, {a} in SLO", l.mean_replicas, l.peak_replicas)
        } else {
            format!("{g} GPU-h, replicas mean {:.1} / peak {}, {a} of requests within SLO", l.mean_replicas, l.peak_replicas)
        }
    };
    let zoom_summary = |l: &Lane, z: &Zoom| {
        let mean = window_mean(&l.replicas, l.step_s, z.t0, z.t1);
        format!("here: mean {mean:.1} replicas, worst hour {}", worst_in(l, tl.min_hour_requests, z))
    };
    let legend = |area: &Area<'_>, (x, y): (f64, f64)| -> Drawn {
        let x = legend_item(area, (x, y), "replicas provisioned (starting, Ready and draining; the row's colour)", |a, p| {
            canvas::polyline(a, &[p, (p.0 + 24.0, p.1)], RGBColor(31, 119, 180).stroke_width(2))
        })?;
        let cap = if tl.capacity_rps > 0.0 { format!(" ({:.2} req/s)", tl.capacity_rps) } else { String::new() };
        legend_item(area, (x, y), &format!("demand in replicas = arrivals / one replica's capacity within the SLO{cap}"), |a, p| {
            canvas::polyline(a, &[p, (p.0 + 24.0, p.1)], BLACK.stroke_width(1))
        })?;
        Ok(())
    };
    let fig = Figure {
        title: "Replicas each policy provisioned, against the demand".into(),
        subtitle: subtitle(tl, "one row per policy, all on the same scale"),
        y_unit: "replicas",
        y: Scale::Linear(0.0, hi),
        y_ticks,
        y_fmt: &|v| format!("{v}"),
        summary: &summary,
        zoom_summary: &zoom_summary,
        series: &series,
        legend: &legend,
    };
    draw(tl, &fig)
}

/// `latency.svg`: each policy's p99 TTFT per step on a log scale (clipped so one policy's
/// minutes-long queue does not flatten the rest), the SLO dashed, the excess above it shaded.
pub fn latency(tl: &Timeline) -> Result<String, String> {
    let slo = if tl.slo_ttft_s > 0.0 { tl.slo_ttft_s } else { 1.0 };
    let values = || tl.lanes.iter().flat_map(|l| l.ttft_p99_s.iter().flatten().copied()).filter(|v| v.is_finite() && *v > 0.0);
    let max = values().fold(slo, f64::max);
    let min = values().fold(slo, f64::min);
    let decade = |v: f64, up: bool| 10f64.powf(if up { v.log10().ceil() } else { v.log10().floor() });
    let lo = decade(min, false).clamp(slo / 1000.0, slo / 10.0);
    let hi = decade(max, true).clamp(slo * 5.0, slo * 100.0);
    let clipped = max > hi * (1.0 + 1e-9);
    let y_ticks = ticks::log_ticks(lo, hi, PLOT_H, 20.0);
    let series = |area: &Area<'_>, f: &Frame, l: &Lane| -> Drawn {
        let slo_y = f.py(slo);
        for run in canvas::runs(f, l.step_s, l.ttft_p99_s.iter().copied()) {
            // The excess over the SLO, shaded: the top edge is the p99 where it is above the SLO.
            let mut poly: Vec<(f64, f64)> = run.iter().map(|&(x, y)| (x, y.min(slo_y))).collect();
            if let (Some(a), Some(b)) = (run.first(), run.last()) {
                poly.push((b.0, slo_y));
                poly.push((a.0, slo_y));
            }
            canvas::fill(area, &poly, SLO_RED.mix(0.25))?;
            canvas::polyline(area, &run, l.color.stroke_width(1))?;
        }
        slo_line(area, f, slo)
    };
    let summary = |l: &Lane, short: bool| {
        let known: Vec<f64> = l.ttft_p99_s.iter().flatten().copied().collect();
        let over = known.iter().filter(|v| **v > slo).count();
        let (o, n, a) = (ticks::thousands(over as f64), ticks::thousands(known.len() as f64), pct(l.attainment));
        if short {
            format!("p99 > {} s in {o} of {n} steps, {a} in SLO", fmt_num(slo))
        } else {
            let share = 100.0 * over as f64 / known.len().max(1) as f64;
            format!("p99 above {} s in {o} of {n} steps ({share:.1} %), {a} of requests within SLO", fmt_num(slo))
        }
    };
    let zoom_summary = |l: &Lane, z: &Zoom| format!("here: worst hour {}", worst_in(l, tl.min_hour_requests, z));
    let legend = |area: &Area<'_>, (x, y): (f64, f64)| -> Drawn {
        let x = legend_item(area, (x, y), "p99 TTFT of the requests arriving in each step (the row's colour)", |a, p| {
            canvas::polyline(a, &[p, (p.0 + 24.0, p.1)], RGBColor(31, 119, 180).stroke_width(1))
        })?;
        let x = legend_item(area, (x, y), &format!("TTFT SLO {} s", fmt_num(slo)), |a, p| {
            canvas::dashed(a, p, (p.0 + 24.0, p.1), SLO_RED.stroke_width(1))
        })?;
        legend_item(area, (x, y), "time above it", |a, p| canvas::band(a, Rect::at(p.0, p.1 - 6.0, 24.0, 12.0), SLO_RED.mix(0.25)))?;
        Ok(())
    };
    let note = if clipped { format!("log scale, p99 above {} drawn at the top edge", ticks::secs(hi)) } else { "log scale".to_string() };
    let fig = Figure {
        title: "p99 time to first token of each policy".into(),
        subtitle: subtitle(tl, &note),
        y_unit: "p99 TTFT",
        y: Scale::Log(lo, hi),
        y_ticks,
        y_fmt: &ticks::secs,
        summary: &summary,
        zoom_summary: &zoom_summary,
        series: &series,
        legend: &legend,
    };
    draw(tl, &fig)
}

/// The SLO: a dashed red line across the frame, labelled "SLO 2 s" at its right end on a white
/// ground so the series under it do not hide it.
fn slo_line(area: &Area<'_>, f: &Frame, slo: f64) -> Drawn {
    let y = f.py(slo);
    canvas::dashed(area, (f.rect.x0, y), (f.rect.x1, y), SLO_RED.stroke_width(1))?;
    let s = format!("SLO {} s", fmt_num(slo));
    let w = text::width(&s, 11.0, true);
    let r = Rect::at(f.rect.x1 - w - 8.0, y - 15.0, w + 6.0, 13.0);
    canvas::band(area, r, WHITE.mix(0.85))?;
    canvas::label(area, &s, (f.rect.x1 - 5.0, y - 2.0), &font(11.0, true, SLO_RED), HPos::Right, VPos::Bottom)
}

/// A legend entry: a sample drawn by `sample` at the left, then `s`; returns where the next
/// entry starts.
fn legend_item(
    area: &Area<'_>,
    (x, y): (f64, f64),
    s: &str,
    sample: impl Fn(&Area<'_>, (f64, f64)) -> Drawn,
) -> Result<f64, Box<dyn std::error::Error>> {
    sample(area, (x, y))?;
    canvas::label(area, s, (x + 30.0, y), &font(12.5, false, MUTED), HPos::Left, VPos::Center)?;
    Ok(x + 30.0 + text::width(s, 12.5, false) + 22.0)
}

/// The subtitle: which replay, then `what`.
fn subtitle(tl: &Timeline, what: &str) -> String {
    let span = format!("{} to {}", ticks::when(tl.calendar.start_s), ticks::when(tl.calendar.start_s + tl.duration_s));
    if tl.seed_note.is_empty() { format!("{span}; {what}") } else { format!("{span}, {}; {what}", tl.seed_note) }
}

/// The mean of a series over the window `t0..t1`.
fn window_mean(v: &[f64], step: f64, t0: f64, t1: f64) -> f64 {
    let inside: Vec<f64> = v.iter().enumerate().filter(|(i, _)| (t0..t1).contains(&(*i as f64 * step))).map(|(_, x)| *x).collect();
    inside.iter().sum::<f64>() / inside.len().max(1) as f64
}

/// The lane's worst judged hour inside the zoom, as "93.3 % (day 12 14:00)", or "-".
fn worst_in(l: &Lane, min_requests: u64, z: &Zoom) -> String {
    judged_hours(&l.hourly, min_requests)
        .filter(|(h, _)| (z.t0..z.t1).contains(&(*h as f64 * 3600.0)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or("-".into(), |(_, a)| format!("{:.1} %", a * 100.0))
}

/// Draws a figure of small multiples.
fn draw(tl: &Timeline, fig: &Figure<'_>) -> Result<String, String> {
    let zoom = zoom_window(tl);
    let lay = layout(tl, zoom.as_ref(), fig.y);
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH as u32, lay.height.ceil() as u32)).into_drawing_area();
        draw_on(&area, tl, fig, &lay, zoom.as_ref()).map_err(|e| e.to_string())?;
        area.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw_on(area: &Area<'_>, tl: &Timeline, fig: &Figure<'_>, lay: &Layout, zoom: Option<&Zoom>) -> Drawn {
    area.fill(&WHITE)?;
    canvas::label(area, &fig.title, (PAD_L, 10.0), &font(19.0, true, BLACK), HPos::Left, VPos::Top)?;
    canvas::label(area, &fig.subtitle, (PAD_L, 38.0), &font(13.0, false, MUTED), HPos::Left, VPos::Top)?;
    (fig.legend)(area, (PAD_L, 68.0))?;
    headers(area, tl, lay, zoom)?;
    let (Some(first), Some(last)) = (lay.rows.first(), lay.rows.last()) else { return Ok(()) };
    canvas::y_title(area, fig.y_unit, 14.0, (first.full.rect.y0 + last.full.rect.y1) / 2.0, 13.0)?;
    let start = tl.calendar.start_s;
    let full_axis = ticks::time_axis(0.0, tl.duration_s, start, first.full.width(), TICK_PX);
    let zoom_axis = match (zoom, &first.zoom) {
        (Some(z), Some(f)) => ticks::time_axis(z.t0, z.t1, start, f.width(), TICK_PX),
        _ => TimeAxis::default(),
    };
    let titles = row_titles(fig, tl, lay);
    for (i, ((row, lane), title)) in lay.rows.iter().zip(&tl.lanes).zip(&titles).enumerate() {
        let bottom = i + 1 == lay.rows.len();
        // Where the zoom is, on the whole run.
        let band = zoom.map(|z| ((z.t0, z.t1), BLACK.mix(0.06)));
        panel(area, fig, &row.full, lane, &full_axis, band, bottom)?;
        row_title(area, lane, title, &row.full)?;
        if let (Some(z), Some(f)) = (zoom, &row.zoom) {
            // The hour the zoom is centred on.
            panel(area, fig, f, lane, &zoom_axis, z.hour.map(|h| (h, SLO_RED.mix(0.12))), bottom)?;
            row_title(area, lane, &[format!(" \u{2014} {}", (fig.zoom_summary)(lane, z))], f)?;
        }
    }
    Ok(())
}

/// A row's title after its bold name, longest first, each with whether its summary is the
/// short one: the setting and the full summary; a shorter setting and summary; no setting.
fn title_variants(fig: &Figure<'_>, lane: &Lane) -> Vec<(String, bool)> {
    let dash = " \u{2014} ";
    let (full, short) = ((fig.summary)(lane, false), (fig.summary)(lane, true));
    match &lane.setting {
        Some(s) => {
            // "GPU 60% (tuned, closest: none met)" -> "GPU 60%, tuned".
            let brief =
                s.split_once(" (").map_or(s.clone(), |(knob, how)| format!("{knob}, {}", how.split([',', ')']).next().unwrap_or("")));
            vec![(format!(" {s}{dash}{full}"), false), (format!(" {brief}{dash}{short}"), true), (format!("{dash}{short}"), true)]
        }
        None => vec![(format!("{dash}{full}"), false), (format!("{dash}{short}"), true)],
    }
}

/// Each row's title variants for [`row_title`]. The rows' summaries read alike, so they can be
/// compared down the column: when one row's full summary does not fit at the title size, every
/// row gets the short one.
fn row_titles(fig: &Figure<'_>, tl: &Timeline, lay: &Layout) -> Vec<Vec<String>> {
    let variants: Vec<Vec<(String, bool)>> = tl.lanes.iter().map(|l| title_variants(fig, l)).collect();
    let full_fits = |lane: &Lane, vs: &[(String, bool)], f: &Frame| {
        vs.iter().any(|(v, short)| !short && text::bold_then_width(&lane.name, v, TITLE_PX) <= f.width())
    };
    let short = tl.lanes.iter().zip(&variants).zip(&lay.rows).any(|((l, vs), row)| !full_fits(l, vs, &row.full));
    variants.into_iter().map(|vs| vs.into_iter().filter(|(_, s)| *s || !short).map(|(v, _)| v).collect()).collect()
}

/// Draws the first of `variants` (each the text after the bold name) that fits over `f` at the
/// title size, else the last one shrunk to fit: a title never runs into the next column.
fn row_title(area: &Area<'_>, lane: &Lane, variants: &[String], f: &Frame) -> Drawn {
    let w = |s: &str, px: f64| text::bold_then_width(&lane.name, s, px);
    // Each variant at the title size, then each a little smaller, before the shortest shrinks.
    let chosen =
        [TITLE_PX, TITLE_PX - 1.5].iter().find_map(|&px| variants.iter().find(|v| w(v, px) <= f.width()).map(|v| (v.as_str(), px)));
    let (rest, mut px) = chosen.unwrap_or((variants.last().map_or("", |s| s.as_str()), TITLE_PX));
    while px > 10.0 && w(rest, px) > f.width() {
        px -= 0.5;
    }
    canvas::bold_then(area, &lane.name, rest, (f.rect.x0, f.rect.y0 - STRIP + 4.0), px, lane.color)
}

/// The two column headers: what the whole run is, and which 48 hours the zoom shows and why.
fn headers(area: &Area<'_>, tl: &Timeline, lay: &Layout, zoom: Option<&Zoom>) -> Drawn {
    let Some(first) = lay.rows.first() else { return Ok(()) };
    let y = TOP - 52.0;
    let hours = tl.duration_s / 3600.0;
    let whole = format!("whole run, {} h", fmt_num((hours * 10.0).round() / 10.0));
    let whole = if zoom.is_some() { format!("{whole} (grey: the 48 h on the right)") } else { whole };
    canvas::label(area, &whole, (first.full.rect.x0, y), &font(14.0, true, BLACK), HPos::Left, VPos::Top)?;
    if let (Some(z), Some(f)) = (zoom, &first.zoom) {
        let start = tl.calendar.start_s;
        let head = format!("zoom: {} to {}", ticks::when(z.t0 + start), ticks::when(z.t1 + start));
        canvas::label(area, &head, (f.rect.x0, y), &font(14.0, true, BLACK), HPos::Left, VPos::Top)?;
        let why = z.why.clone();
        let px = text::fit(&why, f.width(), 12.5, false);
        canvas::label(area, &why, (f.rect.x0, y + 19.0), &font(px, false, MUTED), HPos::Left, VPos::Top)?;
    }
    Ok(())
}

/// One panel: grid, a shaded window (`t0..t1`, under the series), the lane's series, the frame,
/// and (on the bottom row) the time labels.
fn panel(
    area: &Area<'_>,
    fig: &Figure<'_>,
    f: &Frame,
    lane: &Lane,
    axis: &TimeAxis,
    band: Option<((f64, f64), RGBAColor)>,
    bottom: bool,
) -> Drawn {
    if let Some(((t0, t1), color)) = band {
        canvas::band(area, Rect { x0: f.px(t0), y0: f.rect.y0, x1: f.px(t1), y1: f.rect.y1 }, color)?;
    }
    for t in &axis.ticks {
        let x = f.px(t.t);
        let color = if t.midnight { RULE } else { GRID };
        canvas::polyline(area, &[(x, f.rect.y0), (x, f.rect.y1)], color.stroke_width(1))?;
    }
    canvas::y_axis(area, f, &fig.y_ticks, fig.y_fmt, 12.0)?;
    (fig.series)(area, f, lane)?;
    canvas::outline(area, f.rect, RULE)?;
    if bottom {
        canvas::time_labels(area, f, axis, TICK_PX)?;
    }
    Ok(())
}
