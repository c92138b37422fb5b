//! SVG plots of a run: replicas against demand, latency over time, cost against SLO.

use std::path::Path;

use plotters::prelude::*;

use crate::sim::report::{PolicyResult, SimReport};

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Writes `replicas.svg`, `latency.svg` and `cost_slo.svg` into `dir`, and `forecast.svg` when
/// a policy forecast.
pub fn write_all(r: &SimReport, dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = vec![dir.join("replicas.svg"), dir.join("latency.svg"), dir.join("cost_slo.svg")];
    replicas(r, &files[0]).map_err(|e| format!("{}: {e}", files[0].display()))?;
    latency(r, &files[1]).map_err(|e| format!("{}: {e}", files[1].display()))?;
    cost_slo(r, &files[2]).map_err(|e| format!("{}: {e}", files[2].display()))?;
    let forecasting = r.policies.iter().find(|p| p.decider.as_ref().is_some_and(|t| t.minutes.iter().any(|m| m.forecast.is_some())));
    if let Some(p) = forecasting {
        let f = dir.join("forecast.svg");
        forecast(p, &f).map_err(|e| format!("{}: {e}", f.display()))?;
        files.push(f);
    }
    Ok(files)
}

/// The demand the decider read against its forecast of it (drawn at the minute it was for) and
/// the upper bound the floor used: the whole run above, its first 48 hours below.
fn forecast(p: &PolicyResult, path: &Path) -> PlotResult {
    let Some(t) = &p.decider else { return Ok(()) };
    let root = SVGBackend::new(path, (1200, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let h = |s: f64| s / 3600.0;
    // Each forecast is drawn at the minute it was for: its own lead after it was made.
    let ahead = |m: &crate::sim::report::DeciderMinute| h(m.t + m.lead_s.unwrap_or(0) as f64);
    let demand: Vec<(f64, f64)> = t.minutes.iter().filter_map(|m| Some((h(m.t), m.demand? / 1000.0))).collect();
    let point: Vec<(f64, f64)> = t.minutes.iter().filter_map(|m| Some((ahead(m), m.forecast? / 1000.0))).collect();
    let upper: Vec<(f64, f64)> = t.minutes.iter().filter_map(|m| Some((ahead(m), m.upper? / 1000.0))).collect();
    let end = t.minutes.last().map_or(1.0, ahead);
    let ymax = demand.iter().chain(&upper).map(|p| p.1).fold(1.0, f64::max) * 1.05;
    let panels = root.split_evenly((2, 1));
    for (panel, (to, title)) in panels.iter().zip([
        (end, format!("{}: demand vs its forecast {:.0} min ahead (whole run)", p.name, t.lead_s as f64 / 60.0)),
        (end.min(48.0), "first 48 hours".to_string()),
    ]) {
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..to, 0.0..ymax)?;
        chart.configure_mesh().x_desc("hours").y_desc("thousand tokens/s").x_labels(((to / 24.0).ceil() as usize + 1).max(8)).draw()?;
        let within = |v: &[(f64, f64)]| v.iter().copied().filter(|(x, _)| *x <= to).collect::<Vec<_>>();
        // The demand first, light, so the forecast drawn over it stays visible.
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new(within(&demand), grey.stroke_width(1)))?
            .label("demand read")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        chart
            .draw_series(LineSeries::new(within(&upper), COLORS[1].stroke_width(1)))?
            .label("upper bound (peak to lead)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], COLORS[1]));
        chart
            .draw_series(LineSeries::new(within(&point), COLORS[0].stroke_width(2)))?
            .label("forecast")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], COLORS[0].stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn hours(r: &SimReport) -> (f64, f64) {
    let h = r.duration_s / 3600.0;
    if h >= 2.0 { (h, 3600.0) } else { (r.duration_s / 60.0, 60.0) }
}

fn replicas(r: &SimReport, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (xmax, unit) = hours(r);
    let cap = r.replica_capacity_rps.max(1e-9);
    let demand: Vec<f64> = r.policies.first().map(|p| p.series.arrivals_rps.iter().map(|a| a / cap).collect()).unwrap_or_default();
    let ymax = r.policies.iter().flat_map(|p| p.series.replicas.iter().copied()).chain(demand.iter().copied()).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("Replicas provisioned vs demand", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)?;
    chart
        .configure_mesh()
        .x_desc(if unit == 3600.0 { "hours" } else { "minutes" })
        .y_desc("replicas (demand = arrivals / per-replica capacity at SLO)")
        .draw()?;
    if let Some(p) = r.policies.first() {
        let step = p.series.step_s / unit;
        chart
            .draw_series(LineSeries::new(demand.iter().enumerate().map(|(i, d)| (i as f64 * step, *d)), BLACK.stroke_width(1)))?
            .label("demand")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    for (k, p) in r.policies.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let step = p.series.step_s / unit;
        chart
            .draw_series(LineSeries::new(p.series.replicas.iter().enumerate().map(|(i, v)| (i as f64 * step, *v)), c.stroke_width(2)))?
            .label(p.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn latency(r: &SimReport, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (xmax, unit) = hours(r);
    let ymax = r.policies.iter().flat_map(|p| p.series.ttft_p99_s.iter().flatten().copied()).fold(r.slo.ttft_s * 2.0, f64::max).min(3600.0);
    let mut chart = ChartBuilder::on(&root)
        .caption("p99 TTFT of the requests arriving in each step (log scale)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..xmax, (0.01..ymax * 1.5).log_scale())?;
    chart.configure_mesh().x_desc(if unit == 3600.0 { "hours" } else { "minutes" }).y_desc("seconds").draw()?;
    chart
        .draw_series(LineSeries::new([(0.0, r.slo.ttft_s), (xmax, r.slo.ttft_s)], BLACK.stroke_width(1)))?
        .label(format!("TTFT SLO {} s", r.slo.ttft_s))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    for (k, p) in r.policies.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let step = p.series.step_s / unit;
        let pts: Vec<(f64, f64)> =
            p.series.ttft_p99_s.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i as f64 * step, v.clamp(0.01, ymax)))).collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(1)))?
            .label(p.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn cost_slo(r: &SimReport, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let xmax = r.policies.iter().map(|p| p.cost_usd).fold(1.0, f64::max) * 1.15;
    let ymin = r.policies.iter().map(|p| p.slo_attainment * 100.0).fold(100.0, f64::min).min(99.0) - 1.0;
    let mut chart = ChartBuilder::on(&root)
        .caption("Cost vs SLO attainment (up and left is better)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..xmax, ymin.max(0.0)..100.5)?;
    chart.configure_mesh().x_desc("cost, $").y_desc("% requests within SLO").draw()?;
    for (k, p) in r.policies.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let pt = (p.cost_usd, p.slo_attainment * 100.0);
        chart.draw_series(std::iter::once(Circle::new(pt, 6, c.filled())))?;
        chart.draw_series(std::iter::once(Text::new(p.name.clone(), pt, ("sans-serif", 14).into_font().color(&c))))?;
    }
    root.present()?;
    Ok(())
}
