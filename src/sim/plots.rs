//! SVG plots of a run, drawn to be read by a person: `replicas.svg` and `latency.svg` give each
//! policy its own panel on a shared time axis (small multiples: one row per policy, the whole run
//! on the left and a 48-hour zoom on the right, day ticks, the demand in every row, the SLO on
//! every latency panel), `cost_slo.svg` puts every row of the run on GPU-hours against SLO
//! attainment with its Pareto frontier and labels that do not overlap, and `forecast.svg` shows a
//! forecasting policy's demand against its forecast.
//!
//! [`write_scoreboard`] draws a `simulate` run (its first seed's replays, and every row's means
//! over the seeds on the scatter); [`write_all`] draws a single report. Both build the plain
//! [`Timeline`] and [`Scatter`] the drawing reads, so the drawing never sees how a run was made.

mod canvas;
mod forecast;
pub mod labels;
mod lanes;
mod scatter;
mod text;
pub mod ticks;

use std::path::{Path, PathBuf};

use plotters::style::RGBColor;

pub use lanes::{Lane, Timeline, Zoom, zoom_window};
pub use scatter::{Layout as ScatterLayout, Point, Scatter, frontier, layout as scatter_layout};

use crate::sim::{
    criterion::{HourTally, SloCriterion},
    report::{PolicyResult, SimReport},
    scoreboard::{Role, Scoreboard},
};

/// What a policy is, as far as the plots care: how its marker and colour are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// llm-scaler with the metadata given (the policy under test: drawn distinctly).
    Ours,
    /// Another llm-scaler configuration.
    Variant,
    /// The smallest static fleet meeting the SLO.
    StaticMin,
    /// Any other static fleet.
    Static,
    /// A baseline autoscaler.
    Baseline,
    /// The clairvoyant bound (not a policy one can run; kept off the frontier).
    Bound,
}

impl Kind {
    /// The kind of a scoreboard row.
    pub fn of_role(r: Role) -> Self {
        match r {
            Role::StaticMin => Kind::StaticMin,
            Role::StaticPeak | Role::Static => Kind::Static,
            Role::Baseline => Kind::Baseline,
            Role::LlmScaler => Kind::Ours,
            Role::Variant => Kind::Variant,
            Role::Clairvoyant => Kind::Bound,
        }
    }

    /// The kind of a policy known only by its result (a report without a scoreboard).
    pub fn of_result(p: &PolicyResult) -> Self {
        if p.name == "llm-scaler" {
            Kind::Ours
        } else if p.name.starts_with("static") {
            Kind::Static
        } else if p.name == "clairvoyant" {
            Kind::Bound
        } else if p.decider.is_some() {
            Kind::Variant
        } else {
            Kind::Baseline
        }
    }
}

/// One colour per row, in row order, the same in every plot: llm-scaler a strong blue, its
/// variants cyan and purple, static fleets greys, the bound brown, baselines the rest of the
/// usual categorical palette.
pub fn colors(kinds: &[Kind]) -> Vec<RGBColor> {
    const BASELINES: [RGBColor; 5] =
        [RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(227, 119, 194), RGBColor(188, 189, 34)];
    const VARIANTS: [RGBColor; 3] = [RGBColor(23, 190, 207), RGBColor(148, 103, 189), RGBColor(0, 70, 140)];
    const STATICS: [RGBColor; 3] = [RGBColor(150, 150, 150), RGBColor(110, 110, 110), RGBColor(190, 190, 190)];
    let (mut b, mut v, mut s) = (0usize, 0usize, 0usize);
    let next = |pal: &[RGBColor], i: &mut usize| {
        let c = pal[*i % pal.len()];
        *i += 1;
        c
    };
    kinds
        .iter()
        .map(|k| match k {
            Kind::Ours => RGBColor(31, 119, 180),
            Kind::Variant => next(&VARIANTS, &mut v),
            Kind::StaticMin => RGBColor(70, 70, 70),
            Kind::Static => next(&STATICS, &mut s),
            Kind::Bound => RGBColor(140, 86, 75),
            Kind::Baseline => next(&BASELINES, &mut b),
        })
        .collect()
}

/// Where a replay sits in its source's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Calendar {
    /// The source second replay second 0 is (e.g. 7 days for a hold-out from `--from 7d`), so
    /// the axes name the source's days.
    pub start_s: f64,
}

/// The files written, in order.
pub type Written = Result<Vec<PathBuf>, String>;

/// Draws a `simulate` scoreboard into `dir`: the first seed's replays as small multiples, every
/// row (means over the seeds) on the cost/SLO scatter, and `forecast.svg` when a row forecast.
pub fn write_scoreboard(b: &Scoreboard, cal: Calendar, dir: &Path) -> Written {
    let Some(first) = b.reports.first() else { return Err("no replay to plot".into()) };
    let kinds: Vec<Kind> =
        first.policies.iter().map(|p| b.row(&p.name).map_or_else(|| Kind::of_result(p), |r| Kind::of_role(r.role))).collect();
    let settings: Vec<Option<String>> = first.policies.iter().map(|p| b.row(&p.name).and_then(|r| r.setting.clone())).collect();
    let seeds = b.seeds.len();
    let seed_note = match b.seeds.first() {
        Some(s) if seeds > 1 => format!("seed {s} (the first of {seeds})"),
        Some(s) => format!("seed {s}"),
        None => String::new(),
    };
    let timeline = timeline(first, &kinds, &settings, cal, b.criterion.min_hour_requests, seed_note);
    let colors = colors(&kinds);
    let points = first
        .policies
        .iter()
        .zip(&kinds)
        .zip(&colors)
        .filter_map(|((p, k), c)| {
            let r = b.row(&p.name)?;
            Some(Point {
                name: r.name.clone(),
                setting: r.setting.clone(),
                kind: *k,
                color: *c,
                gpu_hours: r.gpu_hours.mean,
                attainment: r.attainment.mean,
                meets: Some(r.meets),
            })
        })
        .collect();
    let over = if seeds > 1 { format!("mean of {seeds} seeds") } else { "one seed".to_string() };
    let scatter = Scatter {
        title: "GPU-hours against SLO attainment, every row of the run".into(),
        subtitle: format!("{}; {over}; filled = meets the strict SLO on every seed, hollow = misses it", first.workload),
        y_desc: format!(
            "requests within SLO (TTFT \u{2264} {} s, TPOT \u{2264} {} ms), {over}",
            fmt_num(first.slo.ttft_s),
            fmt_num(first.slo.tpot_s * 1e3)
        ),
        x_desc: format!("GPU-hours provisioned, {over}"),
        target: Some((b.criterion.overall.get(), "strict SLO: overall".to_string())),
        points,
    };
    write_figures(first, &timeline, &scatter, dir)
}

/// Draws one report into `dir` (every policy of it, one seed): `replicas.svg`, `latency.svg`,
/// `cost_slo.svg`, and `forecast.svg` when a policy forecast.
pub fn write_all(r: &SimReport, dir: &Path) -> Written {
    let kinds: Vec<Kind> = r.policies.iter().map(Kind::of_result).collect();
    let settings = vec![None; r.policies.len()];
    let timeline = timeline(r, &kinds, &settings, Calendar::default(), SloCriterion::default().min_hour_requests, String::new());
    write_figures(r, &timeline, &scatter_of(r), dir)
}

/// The cost/SLO scatter of one report: each policy's GPU-hours and attainment (no criterion, so
/// no "meets").
pub fn scatter_of(r: &SimReport) -> Scatter {
    let kinds: Vec<Kind> = r.policies.iter().map(Kind::of_result).collect();
    let points = r
        .policies
        .iter()
        .zip(&kinds)
        .zip(colors(&kinds))
        .map(|((p, k), color)| Point {
            name: p.name.clone(),
            setting: None,
            kind: *k,
            color,
            gpu_hours: p.gpu_hours,
            attainment: p.slo_attainment,
            meets: None,
        })
        .collect();
    Scatter {
        title: "GPU-hours against SLO attainment".into(),
        subtitle: r.workload.clone(),
        y_desc: format!(
            "requests within the SLO (TTFT \u{2264} {} s, TPOT \u{2264} {} ms)",
            fmt_num(r.slo.ttft_s),
            fmt_num(r.slo.tpot_s * 1e3)
        ),
        x_desc: "GPU-hours provisioned".into(),
        target: None,
        points,
    }
}

/// The small multiples' input from a report's policies.
fn timeline(
    r: &SimReport,
    kinds: &[Kind],
    settings: &[Option<String>],
    cal: Calendar,
    min_hour_requests: u64,
    seed_note: String,
) -> Timeline {
    let cap = r.replica_capacity_rps;
    let first = r.policies.first();
    let demand = match first {
        Some(p) if cap > 0.0 => within_run(&p.series.arrivals_rps, p.series.step_s, r.duration_s).iter().map(|a| a / cap).collect(),
        _ => Vec::new(),
    };
    let lanes = r
        .policies
        .iter()
        .zip(kinds)
        .zip(colors(kinds))
        .zip(settings)
        .map(|(((p, k), color), setting)| Lane {
            name: p.name.clone(),
            setting: setting.clone(),
            kind: *k,
            color,
            step_s: p.series.step_s,
            replicas: within_run(&p.series.replicas, p.series.step_s, r.duration_s).to_vec(),
            ttft_p99_s: within_run(&p.series.ttft_p99_s, p.series.step_s, r.duration_s).to_vec(),
            hourly: p.series.hourly.clone(),
            gpu_hours: p.gpu_hours,
            attainment: p.slo_attainment,
            mean_replicas: p.mean_replicas,
            peak_replicas: p.peak_replicas,
        })
        .collect();
    Timeline {
        calendar: cal,
        duration_s: r.duration_s,
        demand,
        demand_step_s: first.map_or(1.0, |p| p.series.step_s),
        capacity_rps: cap,
        slo_ttft_s: r.slo.ttft_s,
        min_hour_requests,
        seed_note,
        lanes,
    }
}

/// The points of a series that start within the run: a series may end with a point at the
/// run's last instant, an empty step (no arrivals, no replicas) that would draw as a drop to 0.
fn within_run<T>(v: &[T], step_s: f64, duration_s: f64) -> &[T] {
    if step_s <= 0.0 {
        return v;
    }
    let n = (duration_s / step_s - 1e-9).ceil().max(0.0) as usize;
    &v[..n.min(v.len())]
}

/// Writes every figure; `r` is searched for a forecasting policy.
fn write_figures(r: &SimReport, timeline: &Timeline, scatter: &Scatter, dir: &Path) -> Written {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let mut write = |name: &str, svg: Result<String, String>| -> Result<(), String> {
        let path = dir.join(name);
        let svg = svg.map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
        Ok(())
    };
    write("replicas.svg", lanes::replicas(timeline))?;
    write("latency.svg", lanes::latency(timeline))?;
    write("cost_slo.svg", scatter::draw(scatter))?;
    let forecasting = r.policies.iter().find(|p| p.decider.as_ref().is_some_and(|t| t.minutes.iter().any(|m| m.forecast.is_some())));
    if let Some(p) = forecasting {
        let zoom = zoom_window(timeline);
        write("forecast.svg", forecast::draw(p, timeline.calendar, timeline.duration_s, zoom.as_ref()))?;
    }
    Ok(files)
}

/// A number as short as it can be written: "2", "0.5", "100".
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The attainment of each hour that had at least `min_requests` requests (fewer are not judged:
/// one late request in a quiet hour says little), with the hour's index.
pub fn judged_hours(hourly: &[HourTally], min_requests: u64) -> impl Iterator<Item = (usize, f64)> + '_ {
    hourly
        .iter()
        .enumerate()
        .filter(move |(_, h)| h.requests >= min_requests.max(1))
        .map(|(i, h)| (i, h.within_slo as f64 / h.requests as f64))
}

/// The text elements of an SVG these plots drew, as (bold, content) with entities decoded: what
/// a reader of the picture sees, for checks that it says what it should.
pub fn svg_texts(svg: &str) -> Vec<(bool, String)> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let (attrs, rest) = t.split_once('>')?;
            let (content, _) = rest.split_once("</text>")?;
            let content = content
                .trim()
                .replace("&apos;", "'")
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            Some((attrs.contains("font-weight=\"bold\""), content))
        })
        .collect()
}

#[cfg(test)]
mod tests;
