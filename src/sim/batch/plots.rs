//! The batch plot: queue length and Jobs over time, one panel per policy on a shared time axis
//! (items on the left, Jobs on the right).

use std::path::Path;

use plotters::prelude::*;

use crate::sim::batch::world::RunResult;

const LAG: RGBColor = RGBColor(31, 119, 180);
const PENDING: RGBColor = RGBColor(255, 127, 14);
const JOBS: RGBColor = RGBColor(44, 160, 44);
const WORKING: RGBColor = RGBColor(214, 39, 40);

/// Writes one SVG of `runs` (one seed's, one panel each) to `path`.
pub fn queue_and_jobs(runs: &[&RunResult], path: &Path) -> Result<(), String> {
    draw(runs, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw(runs: &[&RunResult], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let panel_h = 210u32;
    let root = SVGBackend::new(path, (1200, 40 + panel_h * runs.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.titled(
        &format!(
            "Seed {}: entries (left) lag in blue, pending in orange; Jobs (right) running in green, Ready in red",
            runs.first().map_or(0, |r| r.seed)
        ),
        ("sans-serif", 20),
    )?;
    // The runs that finished set the time axis (a stalled one would stretch it to the horizon).
    let finished = runs.iter().filter(|r| r.items_done == r.items).map(|r| r.end_s).fold(0.0, f64::max);
    let end_h = if finished > 0.0 { finished * 1.05 } else { runs.iter().map(|r| r.end_s).fold(60.0, f64::max) } / 3600.0;
    let items = runs.iter().flat_map(|r| r.series.lag.iter().chain(&r.series.pending)).copied().fold(1.0, f64::max) * 1.05;
    let jobs = runs.iter().flat_map(|r| r.series.jobs.iter()).copied().fold(1.0, f64::max) * 1.1;
    for (panel, r) in body.split_evenly((runs.len().max(1), 1)).iter().zip(runs) {
        let h = |i: usize| i as f64 * r.series.step_s / 3600.0;
        let done = match r.completion_s.first().copied().flatten() {
            Some(c) => format!("back-fill done in {:.2} h", c / 3600.0),
            None => "back-fill NOT done".into(),
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{}: {done}, {:.1} GPU-h, ${:.0}", r.policy, r.gpu_hours, r.cost_usd), ("sans-serif", 15))
            .margin(6)
            .x_label_area_size(28)
            .y_label_area_size(55)
            .right_y_label_area_size(45)
            .build_cartesian_2d(0.0..end_h, 0.0..items)?
            .set_secondary_coord(0.0..end_h, 0.0..jobs);
        chart.configure_mesh().x_desc("hours").y_desc("entries").y_label_formatter(&|v| format!("{v:.0}")).max_light_lines(2).draw()?;
        chart.configure_secondary_axes().y_desc("Jobs").y_label_formatter(&|v| format!("{v:.0}")).draw()?;
        let pts = |v: &[f64]| v.iter().enumerate().map(|(i, y)| (h(i), *y)).filter(|(x, _)| *x <= end_h).collect::<Vec<_>>();
        chart.draw_series(LineSeries::new(pts(&r.series.lag), LAG.stroke_width(2)))?;
        chart.draw_series(LineSeries::new(pts(&r.series.pending), PENDING.stroke_width(1)))?;
        chart.draw_secondary_series(LineSeries::new(pts(&r.series.jobs), JOBS.stroke_width(2)))?;
        chart.draw_secondary_series(LineSeries::new(pts(&r.series.working), WORKING.stroke_width(1)))?;
    }
    root.present()?;
    Ok(())
}
