//! Drawing in pixels: a [`Frame`] maps data to a box of the picture (linear, log or nines
//! scale), and a few helpers draw lines, text and axes on an SVG. The plots lay out their own
//! panels (several per picture, sharing axes) rather than use plotters' chart builder, whose
//! one-chart-per-area layout and automatic ticks ("50.0 hours") are what made them unreadable.

use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{labels::Rect, text, ticks::TimeAxis};

/// The drawing area of a whole picture, in pixels.
pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// What drawing returns.
pub type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Light grey of grid lines.
pub const GRID: RGBColor = RGBColor(225, 225, 225);
/// Darker grey of day boundaries and frames.
pub const RULE: RGBColor = RGBColor(170, 170, 170);
/// Grey of secondary text.
pub const MUTED: RGBColor = RGBColor(90, 90, 90);
/// Red of the SLO.
pub const SLO_RED: RGBColor = RGBColor(200, 30, 30);

/// How a value maps to a position along an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Evenly.
    Linear(f64, f64),
    /// By its logarithm (both ends positive).
    Log(f64, f64),
}

impl Scale {
    /// Where `v` falls, 0 at the low end and 1 at the high end (not clamped).
    pub fn unit(&self, v: f64) -> f64 {
        match *self {
            Scale::Linear(lo, hi) => (v - lo) / (hi - lo).max(1e-12),
            Scale::Log(lo, hi) => (v.max(lo * 1e-6).ln() - lo.ln()) / (hi.ln() - lo.ln()).max(1e-12),
        }
    }
}

/// A panel: a box of the picture and the data ranges it shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// The box, pixels.
    pub rect: Rect,
    /// The horizontal scale.
    pub x: Scale,
    /// The vertical scale.
    pub y: Scale,
}

impl Frame {
    /// Pixel x of `v`.
    pub fn px(&self, v: f64) -> f64 {
        self.rect.x0 + self.x.unit(v) * (self.rect.x1 - self.rect.x0)
    }

    /// Pixel y of `v`, clamped to the box: values beyond the scale are drawn at its edge.
    pub fn py(&self, v: f64) -> f64 {
        let u = self.y.unit(v).clamp(0.0, 1.0);
        self.rect.y1 - u * (self.rect.y1 - self.rect.y0)
    }

    /// The pixel point of `(x, y)`.
    pub fn at(&self, x: f64, y: f64) -> (f64, f64) {
        (self.px(x), self.py(y))
    }

    /// The width in pixels.
    pub fn width(&self) -> f64 {
        self.rect.x1 - self.rect.x0
    }

    /// The height in pixels.
    pub fn height(&self) -> f64 {
        self.rect.y1 - self.rect.y0
    }
}

/// A pixel point as plotters wants it.
pub fn ip((x, y): (f64, f64)) -> (i32, i32) {
    (x.round() as i32, y.round() as i32)
}

/// A text style of SVG font size `px` (plotters divides the size it is given by 1.24).
pub fn font(px: f64, bold: bool, color: RGBColor) -> TextStyle<'static> {
    let f = ("sans-serif", px * 1.24).into_font();
    let f = if bold { f.style(FontStyle::Bold) } else { f };
    f.color(&color)
}

/// Draws `s` at `(x, y)` anchored by `h` and `v`.
pub fn label(area: &Area<'_>, s: &str, (x, y): (f64, f64), style: &TextStyle<'_>, h: HPos, v: VPos) -> Drawn {
    area.draw(&Text::new(s.to_string(), ip((x, y)), style.pos(Pos::new(h, v))))?;
    Ok(())
}

/// Draws a polyline through pixel points.
pub fn polyline(area: &Area<'_>, pts: &[(f64, f64)], style: ShapeStyle) -> Drawn {
    if pts.len() >= 2 {
        area.draw(&PathElement::new(pts.iter().copied().map(ip).collect::<Vec<_>>(), style))?;
    }
    Ok(())
}

/// Draws a dashed line from `a` to `b`.
pub fn dashed(area: &Area<'_>, a: (f64, f64), b: (f64, f64), style: ShapeStyle) -> Drawn {
    area.draw(&plotters::element::DashedPathElement::new(vec![ip(a), ip(b)], 7, 5, style))?;
    Ok(())
}

/// Draws a filled polygon through pixel points.
pub fn fill(area: &Area<'_>, pts: &[(f64, f64)], color: RGBAColor) -> Drawn {
    if pts.len() >= 3 {
        area.draw(&Polygon::new(pts.iter().copied().map(ip).collect::<Vec<_>>(), color.filled()))?;
    }
    Ok(())
}

/// Draws a filled box.
pub fn band(area: &Area<'_>, r: Rect, color: RGBAColor) -> Drawn {
    area.draw(&Rectangle::new([ip((r.x0, r.y0)), ip((r.x1, r.y1))], color.filled()))?;
    Ok(())
}

/// Draws the outline of a box.
pub fn outline(area: &Area<'_>, r: Rect, color: RGBColor) -> Drawn {
    area.draw(&Rectangle::new([ip((r.x0, r.y0)), ip((r.x1, r.y1))], color.stroke_width(1)))?;
    Ok(())
}

/// Points of a series `v[i]` at `i * step` (seconds) within the frame's x range, split where a
/// value is missing so a gap is drawn as a gap; values off the y scale sit on its edge.
pub fn runs(frame: &Frame, step: f64, v: impl IntoIterator<Item = Option<f64>>) -> Vec<Vec<(f64, f64)>> {
    let (lo, hi) = match frame.x {
        Scale::Linear(lo, hi) | Scale::Log(lo, hi) => (lo, hi),
    };
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, y) in v.into_iter().enumerate() {
        let t = i as f64 * step;
        // One point either side of the window, so lines reach its edges.
        if t < lo - step || t > hi + step {
            continue;
        }
        match y.filter(|y| y.is_finite()) {
            Some(y) => {
                if let Some(run) = out.last_mut() {
                    run.push((frame.px(t.clamp(lo, hi)), frame.py(y)));
                }
            }
            None => out.push(Vec::new()),
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// The y axis of `frame`: a light grid line and a label at each of `ticks`, left of the box.
pub fn y_axis(area: &Area<'_>, frame: &Frame, ticks: &[f64], fmt: &dyn Fn(f64) -> String, px: f64) -> Drawn {
    let style = font(px, false, MUTED);
    for &v in ticks {
        let y = frame.py(v);
        polyline(area, &[(frame.rect.x0, y), (frame.rect.x1, y)], GRID.stroke_width(1))?;
        label(area, &fmt(v), (frame.rect.x0 - 5.0, y), &style, HPos::Right, VPos::Center)?;
    }
    Ok(())
}

/// The labels of a time axis under `frame`; a label that would run past the frame's ends (into
/// the next panel's labels) is left out.
pub fn time_labels(area: &Area<'_>, frame: &Frame, axis: &TimeAxis, px: f64) -> Drawn {
    for l in &axis.labels {
        let (x, half) = (frame.px(l.t), text::width(&l.text, px, l.day) / 2.0);
        if x - half < frame.rect.x0 - 2.0 || x + half > frame.rect.x1 + 2.0 {
            continue;
        }
        let style = font(px, l.day, if l.day { BLACK } else { MUTED });
        label(area, &l.text, (x, frame.rect.y1 + 5.0), &style, HPos::Center, VPos::Top)?;
    }
    Ok(())
}

/// A vertical label along the left of a box (the unit of a y axis).
pub fn y_title(area: &Area<'_>, s: &str, x: f64, y_mid: f64, px: f64) -> Drawn {
    let style = font(px, false, MUTED).transform(FontTransform::Rotate270);
    label(area, s, (x, y_mid), &style, HPos::Center, VPos::Top)
}

/// A line of text in which the first part is bold (a name and what follows it): two texts, the
/// second placed by [`text::after_bold`] (SVG drops a text's leading spaces, so the gap is made
/// by moving the rest along); [`text::bold_then_width`] is the room it takes.
pub fn bold_then(area: &Area<'_>, bold: &str, rest: &str, (x, y): (f64, f64), px: f64, color: RGBColor) -> Drawn {
    label(area, bold, (x, y), &font(px, true, color), HPos::Left, VPos::Top)?;
    let (dx, trimmed) = text::after_bold(bold, rest, px);
    if trimmed.is_empty() {
        return Ok(());
    }
    // Rounded up, not to the nearest pixel, so the gap is never less than measured.
    label(area, trimmed, ((x + dx).ceil(), y), &font(px, false, RGBColor(40, 40, 40)), HPos::Left, VPos::Top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_map_and_clamp() {
        let f = Frame { rect: Rect::at(100.0, 50.0, 200.0, 100.0), x: Scale::Linear(0.0, 10.0), y: Scale::Log(0.1, 100.0) };
        assert_eq!(f.px(5.0), 200.0);
        assert!((f.py(0.1) - 150.0).abs() < 1e-9 && (f.py(100.0) - 50.0).abs() < 1e-9);
        assert!((f.py(1.0) - (150.0 - 100.0 / 3.0)).abs() < 1e-9);
        assert_eq!(f.py(1e6), 50.0, "clipped at the top");
        let r = runs(&f, 1.0, [Some(1.0), None, Some(2.0), Some(3.0)]);
        assert_eq!(r.len(), 2, "a gap where a value is missing");
        assert_eq!(r[1].len(), 2);
    }
}
