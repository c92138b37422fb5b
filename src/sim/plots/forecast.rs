//! `forecast.svg`: the demand the decider read against its forecast of it (drawn at the minute
//! it was for) and the upper bound the floor used, the whole run above and 48 hours below, on
//! the same calendar axis as the other plots.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, VPos},
};

use super::{
    Calendar, Zoom,
    canvas::{self, Area, Drawn, Frame, GRID, MUTED, RULE, SLO_RED, Scale, font},
    labels::Rect,
    text,
    ticks::{self, TimeAxis},
};
use crate::sim::report::{DeciderMinute, PolicyResult};

const WIDTH: f64 = 1200.0;
const PAD_L: f64 = 74.0;
const PAD_R: f64 = 18.0;
const PANEL_H: f64 = 230.0;
const TICK_PX: f64 = 13.0;

/// One line of the figure: its points (replay seconds, thousand tokens/s), colour and name.
struct Line {
    pts: Vec<(f64, f64)>,
    color: RGBColor,
    width: u32,
    name: &'static str,
}

/// Draws `p`'s forecast over a replay of `duration_s`; the lower panel is `zoom` (the same 48
/// hours as the other plots' zoom) or, without one, the first 48 hours with a forecast. An empty
/// picture when `p` has no decider trace.
pub fn draw(p: &PolicyResult, cal: Calendar, duration_s: f64, zoom: Option<&Zoom>) -> Result<String, String> {
    let Some(t) = &p.decider else { return Ok(String::new()) };
    // Each forecast is drawn at the minute it was for: its own lead after it was made.
    let ahead = |m: &DeciderMinute| m.t + m.lead_s.unwrap_or(0) as f64;
    let lines = [
        Line {
            pts: t.minutes.iter().filter_map(|m| Some((m.t, m.demand? / 1000.0))).collect(),
            color: RGBColor(150, 150, 150),
            width: 1,
            name: "demand read",
        },
        Line {
            pts: t.minutes.iter().filter_map(|m| Some((ahead(m), m.upper? / 1000.0))).collect(),
            color: RGBColor(255, 127, 14),
            width: 1,
            name: "upper bound (peak to the lead)",
        },
        Line {
            pts: t.minutes.iter().filter_map(|m| Some((ahead(m), m.forecast? / 1000.0))).collect(),
            color: RGBColor(31, 119, 180),
            width: 2,
            name: "forecast",
        },
    ];
    let end = duration_s.max(1.0);
    let (lower, what) = match zoom {
        Some(z) => ((z.t0, z.t1), z.why.clone()),
        None => {
            let first = lines[2].pts.first().map_or(0.0, |p| p.0);
            ((first, (first + 48.0 * 3600.0).min(end)), "the first 48 h with a forecast".to_string())
        }
    };
    let top = lines.iter().flat_map(|l| l.pts.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.05;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH as u32, (110.0 + 2.0 * (PANEL_H + 60.0)) as u32)).into_drawing_area();
        let title = format!("{}: demand against its forecast {:.0} min ahead", p.name, t.lead_s as f64 / 60.0);
        let span = |(a, b): (f64, f64)| format!("{} to {}", ticks::when(cal.start_s + a), ticks::when(cal.start_s + b));
        let panels = [((0.0, end), format!("whole run, {}", span((0.0, end)))), (lower, format!("{}: {what}", span(lower)))];
        // Shaded: where the lower panel is on the upper one, and the hour it is centred on.
        let bands = [Some((lower, BLACK.mix(0.06))), zoom.and_then(|z| z.hour).map(|h| (h, SLO_RED.mix(0.12)))];
        draw_on(&area, &title, &lines, &panels, &bands, top, cal).map_err(|e| e.to_string())?;
        area.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// A shaded window of a panel, replay seconds, and its colour.
type Band = Option<((f64, f64), RGBAColor)>;

fn draw_on(
    area: &Area<'_>,
    title: &str,
    lines: &[Line],
    panels: &[((f64, f64), String)],
    bands: &[Band],
    top: f64,
    cal: Calendar,
) -> Drawn {
    area.fill(&WHITE)?;
    canvas::label(area, title, (PAD_L, 10.0), &font(19.0, true, BLACK), HPos::Left, VPos::Top)?;
    let mut x = PAD_L;
    for l in lines {
        canvas::polyline(area, &[(x, 52.0), (x + 24.0, 52.0)], l.color.stroke_width(l.width))?;
        canvas::label(area, l.name, (x + 30.0, 52.0), &font(12.5, false, MUTED), HPos::Left, VPos::Center)?;
        x += 30.0 + text::width(l.name, 12.5, false) + 22.0;
    }
    let y_ticks = ticks::nice(0.0, top, PANEL_H, 30.0);
    let hi = y_ticks.last().copied().unwrap_or(top).max(top);
    for (k, ((t0, t1), name)) in panels.iter().enumerate() {
        let y0 = 110.0 + k as f64 * (PANEL_H + 60.0);
        let f = Frame {
            rect: Rect::at(PAD_L, y0, WIDTH - PAD_L - PAD_R, PANEL_H),
            x: Scale::Linear(*t0, t1.max(t0 + 1.0)),
            y: Scale::Linear(0.0, hi),
        };
        canvas::label(area, name, (PAD_L, y0 - 22.0), &font(14.0, true, BLACK), HPos::Left, VPos::Top)?;
        if let Some(((b0, b1), color)) = bands.get(k).copied().flatten() {
            canvas::band(area, Rect { x0: f.px(b0), y0: f.rect.y0, x1: f.px(b1), y1: f.rect.y1 }, color)?;
        }
        let axis: TimeAxis = ticks::time_axis(*t0, *t1, cal.start_s, f.width(), TICK_PX);
        for t in &axis.ticks {
            let x = f.px(t.t);
            canvas::polyline(area, &[(x, f.rect.y0), (x, f.rect.y1)], if t.midnight { RULE } else { GRID }.stroke_width(1))?;
        }
        canvas::y_axis(area, &f, &y_ticks, &|v| format!("{v}"), 12.0)?;
        for l in lines {
            let pts: Vec<(f64, f64)> = l.pts.iter().filter(|p| (*t0..=*t1).contains(&p.0)).map(|&(x, y)| f.at(x, y)).collect();
            canvas::polyline(area, &pts, l.color.stroke_width(l.width))?;
        }
        canvas::outline(area, f.rect, RULE)?;
        canvas::time_labels(area, &f, &axis, TICK_PX)?;
        canvas::y_title(area, "thousand tokens/s", 14.0, f.rect.y0 + PANEL_H / 2.0, 12.5)?;
    }
    Ok(())
}
