//! `cost_slo.svg`: every row of the run as a point of GPU-hours against SLO attainment, the
//! Pareto frontier through the rows nothing beats on both, and a label beside every point that
//! covers no other. Attainment is drawn on a "nines" scale: the rows that matter sit between
//! 99 % and 99.99 %, which a linear axis starting at a policy's 65 % would squeeze into a line.

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, VPos},
};

use super::{
    Kind,
    canvas::{self, Area, Drawn, Frame, GRID, MUTED, RULE, SLO_RED, Scale, font},
    labels::{self, Label, Obstacles, Placed, Rect},
    text,
    ticks::{self, nines},
};

/// One row on the scatter.
#[derive(Debug, Clone)]
pub struct Point {
    /// Row name.
    pub name: String,
    /// The setting it ran with.
    pub setting: Option<String>,
    /// What it is.
    pub kind: Kind,
    /// Its colour (the same as its row in the other plots).
    pub color: RGBColor,
    /// GPU-hours.
    pub gpu_hours: f64,
    /// Share of requests within the SLO.
    pub attainment: f64,
    /// Whether it meets the strict criterion (`None`: not judged).
    pub meets: Option<bool>,
}

/// Everything the scatter draws.
#[derive(Debug, Clone)]
pub struct Scatter {
    /// Title.
    pub title: String,
    /// What was run.
    pub subtitle: String,
    /// The x axis' name.
    pub x_desc: String,
    /// The y axis' name.
    pub y_desc: String,
    /// A target attainment to draw, and what to call it.
    pub target: Option<(f64, String)>,
    /// The rows.
    pub points: Vec<Point>,
}

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 700.0;
const PLOT: Rect = Rect { x0: 92.0, y0: 114.0, x1: WIDTH - 24.0, y1: HEIGHT - 64.0 };
const NAME_PX: f64 = 13.0;
const FIGURE_PX: f64 = 12.0;
const PAD: f64 = 3.0;

/// The points on the Pareto frontier (no other deployable row has fewer GPU-hours and at least
/// its attainment), by increasing GPU-hours. The clairvoyant bound is left out: it needs
/// foresight no deployment has, so it would hide what one can actually choose between.
pub fn frontier(points: &[Point]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).filter(|&i| points[i].kind != Kind::Bound && points[i].gpu_hours.is_finite()).collect();
    idx.sort_by(|&a, &b| points[a].gpu_hours.total_cmp(&points[b].gpu_hours).then(points[b].attainment.total_cmp(&points[a].attainment)));
    let mut best = f64::NEG_INFINITY;
    idx.into_iter()
        .filter(|&i| {
            let keep = points[i].attainment > best;
            best = best.max(points[i].attainment);
            keep
        })
        .collect()
}

/// A point's label: its name (bold) and setting on the first line, its figures on the second;
/// a point under the axis' floor says so.
fn label_lines(p: &Point, floor: Option<f64>) -> (String, String, String) {
    let setting = p.setting.as_ref().map_or(String::new(), |s| format!(" {s}"));
    let below = if floor.is_some_and(|f| p.attainment < f) { ", off the axis" } else { "" };
    (p.name.clone(), setting, format!("{} GPU-h, {:.2} %{below}", ticks::thousands(p.gpu_hours), p.attainment * 100.0))
}

/// The size of a point's label box, pixels.
fn label_size(p: &Point, floor: Option<f64>) -> (f64, f64) {
    let (name, setting, figures) = label_lines(p, floor);
    let w = text::bold_then_width(&name, &setting, NAME_PX).max(text::width(&figures, FIGURE_PX, false));
    (w + 2.0 * PAD, text::line_height(NAME_PX) + text::line_height(FIGURE_PX) + 2.0 * PAD)
}

/// Marker half-size of a point.
fn radius(k: Kind) -> f64 {
    match k {
        Kind::Ours => 9.0,
        Kind::Variant | Kind::Bound => 7.0,
        _ => 6.0,
    }
}

/// Where everything goes: the frame, each point's pixel position and its label's box.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The plotting area and its scales (y in nines).
    pub frame: Frame,
    /// Each point's marker centre, pixels, in point order.
    pub positions: Vec<(f64, f64)>,
    /// Each point's label, in point order.
    pub labels: Vec<Placed>,
    /// The frontier, as indices into the points.
    pub frontier: Vec<usize>,
    /// The attainment at the bottom of the axis when points below it are drawn on its edge.
    pub floor: Option<f64>,
    /// The target line's label box.
    pub target_label: Option<Rect>,
}

/// Attainment below which a point does not set the axis when at least two others are above:
/// one policy at 73 % would otherwise squeeze every row between 99 % and 99.99 % together.
const FLOOR: f64 = 0.9;

/// The y range in nines: the points' (those above [`FLOOR`] when two or more are) and the
/// target's, with a margin; and the floor when a point lies below it.
fn y_range(s: &Scatter) -> (Scale, Option<f64>) {
    let above: Vec<f64> = s.points.iter().map(|p| p.attainment).filter(|a| *a >= FLOOR).collect();
    let clip = above.len() >= 2 && above.len() < s.points.len();
    let counted = s.points.iter().map(|p| p.attainment).filter(|a| !clip || *a >= FLOOR);
    let ns: Vec<f64> = counted.chain(s.target.as_ref().map(|t| t.0)).map(nines).collect();
    let (nmin, nmax) = ns.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), n| (a.min(*n), b.max(*n)));
    let (nmin, nmax) = if nmin.is_finite() { (nmin, nmax) } else { (1.0, 3.0) };
    let range = (nmax - nmin).max(0.4);
    let (lo, hi) = ((nmin - 0.12 * range).max(0.0), (nmax + 0.12 * range).min(4.15));
    (Scale::Linear(lo, hi), clip.then(|| 1.0 - 10f64.powf(-lo)))
}

/// Lays the scatter out: scales that hold every point with room for labels, the frontier, and
/// labels placed (llm-scaler's first, then its variants, the frontier, the rest by cost).
pub fn layout(s: &Scatter) -> Layout {
    let pts = &s.points;
    let (gmin, gmax) = pts
        .iter()
        .map(|p| p.gpu_hours)
        .filter(|g| g.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), g| (a.min(g), b.max(g)));
    let (gmin, gmax) = if gmin.is_finite() { (gmin, gmax) } else { (0.0, 1.0) };
    let span = (gmax - gmin).max(gmax.abs() * 0.1).max(1e-9);
    let x = Scale::Linear((gmin - 0.1 * span).max(0.0), gmax + 0.1 * span);
    let (y, floor) = y_range(s);
    let frame = Frame { rect: PLOT, x, y };
    // A point under the floor sits just inside the bottom edge.
    let positions: Vec<(f64, f64)> = pts
        .iter()
        .map(|p| {
            let (x, y) = frame.at(p.gpu_hours, nines(p.attainment));
            (x, y.min(PLOT.y1 - radius(p.kind) - 3.0))
        })
        .collect();
    let frontier = frontier(pts);
    let mut order: Vec<usize> = (0..pts.len()).collect();
    let rank = |i: usize| match pts[i].kind {
        Kind::Ours => 0,
        Kind::Variant => 1,
        _ if frontier.contains(&i) => 2,
        _ => 3,
    };
    order.sort_by(|&a, &b| rank(a).cmp(&rank(b)).then(pts[a].gpu_hours.total_cmp(&pts[b].gpu_hours)));
    let items: Vec<Label> = order.iter().map(|&i| Label { at: positions[i], size: label_size(&pts[i], floor) }).collect();
    let mut obstacles = Obstacles { bounds: Some(PLOT.grow(-2.0)), ..Obstacles::default() };
    obstacles.lines = staircase(&positions, &frontier);
    let target_label = s.target.as_ref().map(|(t, name)| {
        let y = frame.py(nines(*t));
        obstacles.lines.push(((PLOT.x0, y), (PLOT.x1, y)));
        let r = target_box(&target_text(*t, name), y, &positions);
        obstacles.boxes.push(r);
        r
    });
    let placed = labels::place(&items, 9.0, &obstacles);
    let mut labels = vec![Placed { rect: Rect::at(0.0, 0.0, 0.0, 0.0), leader: None }; pts.len()];
    for (k, &i) in order.iter().enumerate() {
        labels[i] = placed[k];
    }
    Layout { frame, positions, labels, frontier, floor, target_label }
}

/// The frontier as a staircase: from each frontier point right at its attainment, then up to
/// the next (what lies between two frontier rows is not a policy anyone ran).
fn staircase(positions: &[(f64, f64)], frontier: &[usize]) -> Vec<labels::Segment> {
    frontier
        .windows(2)
        .flat_map(|w| {
            let (a, b) = (positions[w[0]], positions[w[1]]);
            [(a, (b.0, a.1)), ((b.0, a.1), b)]
        })
        .collect()
}

/// What the target line says.
fn target_text(t: f64, name: &str) -> String {
    format!("{name} {}", ticks::percent(t))
}

/// The box of the target line's label, just above the line: at its right end unless a point
/// is there, else at its left end.
fn target_box(s: &str, y: f64, positions: &[(f64, f64)]) -> Rect {
    let w = text::width(s, 11.5, true) + 4.0;
    let right = Rect::at(PLOT.x1 - w - 4.0, y - 16.0, w, 14.0);
    let left = Rect::at(PLOT.x0 + 4.0, y - 16.0, w, 14.0);
    // Clear of every marker and llm-scaler's halo.
    let clear = |r: &Rect| !positions.iter().any(|&(x, y)| r.grow(20.0).overlaps(&Rect::around(x, y, 1.0)));
    if clear(&right) || !clear(&left) { right } else { left }
}

/// Draws the scatter as an SVG.
pub fn draw(s: &Scatter) -> Result<String, String> {
    let lay = layout(s);
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH as u32, HEIGHT as u32)).into_drawing_area();
        draw_on(&area, s, &lay).map_err(|e| e.to_string())?;
        area.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw_on(area: &Area<'_>, s: &Scatter, lay: &Layout) -> Drawn {
    area.fill(&WHITE)?;
    let f = &lay.frame;
    canvas::label(area, &s.title, (PLOT.x0, 10.0), &font(19.0, true, BLACK), HPos::Left, VPos::Top)?;
    let px = text::fit(&s.subtitle, WIDTH - PLOT.x0 - 10.0, 13.0, false);
    canvas::label(area, &s.subtitle, (PLOT.x0, 38.0), &font(px, false, MUTED), HPos::Left, VPos::Top)?;
    legend(area, s, (PLOT.x0, 66.0))?;
    axes(area, s, lay)?;
    if let (Some((t, name)), Some(r)) = (&s.target, lay.target_label) {
        let y = f.py(nines(*t));
        canvas::dashed(area, (PLOT.x0, y), (PLOT.x1, y), SLO_RED.stroke_width(1))?;
        canvas::label(area, &target_text(*t, name), (r.x0 + 2.0, r.y1 - 2.0), &font(11.5, true, SLO_RED), HPos::Left, VPos::Bottom)?;
    }
    for seg in staircase(&lay.positions, &lay.frontier) {
        canvas::dashed(area, seg.0, seg.1, RGBColor(60, 60, 60).stroke_width(2))?;
    }
    for p in &lay.labels {
        if let Some((a, b)) = p.leader {
            canvas::polyline(area, &[a, b], RGBColor(120, 120, 120).stroke_width(1))?;
        }
    }
    for (p, at) in s.points.iter().zip(&lay.positions) {
        marker(area, *at, p)?;
    }
    for (p, placed) in s.points.iter().zip(&lay.labels) {
        point_label(area, p, placed.rect, lay.floor)?;
    }
    canvas::outline(area, PLOT, RULE)?;
    Ok(())
}

/// Grid, ticks and axis names: GPU-hours below, attainment percentages (nines) on the left.
fn axes(area: &Area<'_>, s: &Scatter, lay: &Layout) -> Drawn {
    let f = &lay.frame;
    let (Scale::Linear(x0, x1), Scale::Linear(y0, y1)) = (f.x, f.y) else { return Ok(()) };
    let tick = font(12.5, false, MUTED);
    for v in ticks::nice(x0, x1, f.width(), 90.0) {
        let x = f.px(v);
        canvas::polyline(area, &[(x, PLOT.y0), (x, PLOT.y1)], GRID.stroke_width(1))?;
        canvas::label(area, &ticks::thousands(v), (x, PLOT.y1 + 6.0), &tick, HPos::Center, VPos::Top)?;
    }
    let yt = ticks::nines_ticks(y0, y1, f.height(), 26.0);
    let ys: Vec<f64> = yt.iter().map(|a| nines(*a)).collect();
    canvas::y_axis(area, f, &ys, &|n| ticks::percent(1.0 - 10f64.powf(-n)), 12.5)?;
    canvas::label(area, &s.x_desc, ((PLOT.x0 + PLOT.x1) / 2.0, PLOT.y1 + 28.0), &font(13.0, false, MUTED), HPos::Center, VPos::Top)?;
    let desc = format!("{}, nines scale", s.y_desc);
    let px = text::fit(&desc, f.height(), 13.0, false);
    area.draw(&Text::new(
        desc,
        canvas::ip((14.0, (PLOT.y0 + PLOT.y1) / 2.0)),
        font(px, false, MUTED).transform(FontTransform::Rotate270).pos(plotters::style::text_anchor::Pos::new(HPos::Center, VPos::Top)),
    ))?;
    Ok(())
}

/// The legend line: marker shapes, filled or hollow, the frontier.
fn legend(area: &Area<'_>, s: &Scatter, (x0, y0): (f64, f64)) -> Drawn {
    let sample = |kind: Kind, meets: Option<bool>| Point {
        name: String::new(),
        setting: None,
        kind,
        color: RGBColor(110, 110, 110),
        gpu_hours: 0.0,
        attainment: 0.0,
        meets,
    };
    let judged = s.points.iter().any(|p| p.meets.is_some());
    let mut items: Vec<(Option<Point>, String)> = vec![
        (Some(Point { color: RGBColor(31, 119, 180), ..sample(Kind::Ours, None) }), "llm-scaler".into()),
        (Some(sample(Kind::Baseline, None)), "baseline".into()),
        (Some(sample(Kind::Static, None)), "static fleet".into()),
    ];
    if s.points.iter().any(|p| p.kind == Kind::Variant) {
        items.push((Some(sample(Kind::Variant, None)), "llm-scaler variant".into()));
    }
    if s.points.iter().any(|p| p.kind == Kind::Bound) {
        items.push((Some(sample(Kind::Bound, None)), "clairvoyant bound (off the frontier)".into()));
    }
    if judged {
        items.push((Some(sample(Kind::Baseline, Some(false))), "hollow: misses the strict SLO".into()));
    }
    items.push((None, "Pareto frontier".into()));
    let style = font(12.5, false, MUTED);
    let (mut x, mut y) = (x0, y0);
    for (m, name) in items {
        // Room for the sample: a dash, or the marker (llm-scaler's halo reaches 28 px from the
        // entry's start; the name starts 6 px after it).
        let lead = match &m {
            Some(p) if p.kind == Kind::Ours => 34.0,
            Some(_) => 20.0,
            None => 28.0,
        };
        let w = lead + text::width(&name, 12.5, false);
        if x > x0 && x + w > WIDTH - 16.0 {
            // Clear of the halo (16 px around its centre) above.
            (x, y) = (x0, y + 24.0);
        }
        match m {
            Some(p) => marker(area, (x + if p.kind == Kind::Ours { 12.0 } else { 8.0 }, y), &p)?,
            None => canvas::dashed(area, (x, y), (x + 22.0, y), RGBColor(60, 60, 60).stroke_width(2))?,
        }
        canvas::label(area, &name, (x + lead, y), &style, HPos::Left, VPos::Center)?;
        x += w + 18.0;
    }
    Ok(())
}

/// A point's marker: a diamond for llm-scaler (larger, outlined) and its variants, a square for
/// static fleets, a triangle for the bound, a circle for baselines; hollow when it misses.
fn marker(area: &Area<'_>, (x, y): (f64, f64), p: &Point) -> Drawn {
    let r = radius(p.kind);
    let hollow = p.meets == Some(false);
    if p.kind == Kind::Ours {
        // A halo: ours stands out whether it meets the SLO (filled) or not (hollow).
        area.draw(&Circle::new(canvas::ip((x, y)), (r + 7.0) as i32, p.color.mix(0.25).filled()))?;
    }
    let shape: Vec<(f64, f64)> = match p.kind {
        Kind::Ours | Kind::Variant => vec![(x, y - r), (x + r, y), (x, y + r), (x - r, y)],
        Kind::Static | Kind::StaticMin => vec![(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)],
        Kind::Bound => vec![(x, y - r), (x + r, y + r * 0.8), (x - r, y + r * 0.8)],
        Kind::Baseline => (0..16).map(|k| k as f64 * std::f64::consts::TAU / 16.0).map(|a| (x + r * a.cos(), y + r * a.sin())).collect(),
    };
    canvas::fill(area, &shape, if hollow { WHITE.mix(1.0) } else { p.color.mix(1.0) })?;
    let mut ring = shape.clone();
    ring.push(shape[0]);
    let edge = if p.kind == Kind::Ours { BLACK } else { p.color };
    canvas::polyline(area, &ring, edge.stroke_width(if hollow || p.kind == Kind::Ours { 2 } else { 1 }))
}

/// A point's label in its box: on a light ground, the name in the row's colour.
fn point_label(area: &Area<'_>, p: &Point, r: Rect, floor: Option<f64>) -> Drawn {
    canvas::band(area, r, WHITE.mix(0.8))?;
    let (name, setting, figures) = label_lines(p, floor);
    let (x, y) = (r.x0 + PAD, r.y0 + PAD);
    canvas::bold_then(area, &name, &setting, (x, y), NAME_PX, darker(p.color))?;
    canvas::label(area, &figures, (x, y + text::line_height(NAME_PX)), &font(FIGURE_PX, false, MUTED), HPos::Left, VPos::Top)
}

/// A colour dark enough for text on white.
fn darker(c: RGBColor) -> RGBColor {
    let RGBColor(r, g, b) = c;
    let k = |v: u8| (v as f64 * 0.8) as u8;
    RGBColor(k(r), k(g), k(b))
}
