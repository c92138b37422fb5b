//! SVG plots of a run: replicas against demand, latency over time, cost against SLO.

use std::path::Path;

use plotters::prelude::*;

use crate::sim::report::SimReport;

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

/// Writes `replicas.svg`, `latency.svg` and `cost_slo.svg` into `dir`.
pub fn write_all(r: &SimReport, dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = [dir.join("replicas.svg"), dir.join("latency.svg"), dir.join("cost_slo.svg")];
    replicas(r, &files[0]).map_err(|e| format!("{}: {e}", files[0].display()))?;
    latency(r, &files[1]).map_err(|e| format!("{}: {e}", files[1].display()))?;
    cost_slo(r, &files[2]).map_err(|e| format!("{}: {e}", files[2].display()))?;
    Ok(files.to_vec())
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
