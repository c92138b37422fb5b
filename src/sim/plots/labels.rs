//! Label placement for a scatter: every point gets its label beside it without covering another
//! label or point, and when nothing near is free, farther out with a leader line back to its
//! point. Deterministic (same points, same picture): candidates are tried in a fixed order.

/// An axis-aligned box in pixels, `x0 <= x1` and `y0 <= y1` (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x0: f64,
    /// Top.
    pub y0: f64,
    /// Right.
    pub x1: f64,
    /// Bottom.
    pub y1: f64,
}

impl Rect {
    /// The box of `w` x `h` whose top-left corner is `(x, y)`.
    pub fn at(x: f64, y: f64, w: f64, h: f64) -> Self {
        Rect { x0: x, y0: y, x1: x + w, y1: y + h }
    }

    /// The square of half-side `r` around `(x, y)` (a marker).
    pub fn around(x: f64, y: f64, r: f64) -> Self {
        Rect { x0: x - r, y0: y - r, x1: x + r, y1: y + r }
    }

    /// Whether the two boxes share any area (touching edges do not count).
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    /// The area the two boxes share.
    fn overlap_area(&self, o: &Rect) -> f64 {
        let w = self.x1.min(o.x1) - self.x0.max(o.x0);
        let h = self.y1.min(o.y1) - self.y0.max(o.y0);
        if w > 0.0 && h > 0.0 { w * h } else { 0.0 }
    }

    /// Whether `self` lies within `o`.
    pub fn within(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }

    /// The box grown by `m` on every side.
    pub fn grow(&self, m: f64) -> Rect {
        Rect { x0: self.x0 - m, y0: self.y0 - m, x1: self.x1 + m, y1: self.y1 + m }
    }

    /// The point of the box's edge nearest to `(x, y)`, where a leader line ends.
    pub fn nearest(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (x.clamp(self.x0, self.x1), y.clamp(self.y0, self.y1))
    }
}

/// A straight segment in pixels (a line drawn on the chart that labels should keep off).
pub type Segment = ((f64, f64), (f64, f64));

/// Whether the segment crosses the box (Liang-Barsky clipping).
pub fn crosses(s: Segment, r: &Rect) -> bool {
    let ((ax, ay), (bx, by)) = s;
    let (dx, dy) = (bx - ax, by - ay);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, ax - r.x0), (dx, r.x1 - ax), (-dy, ay - r.y0), (dy, r.y1 - ay)] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    t0 < t1
}

/// One label to place: the point it names and the size of its text box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    /// The point, pixels.
    pub at: (f64, f64),
    /// Width and height of its text box, pixels.
    pub size: (f64, f64),
}

/// Where a label went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    /// Its text box.
    pub rect: Rect,
    /// A leader line from the point to the box, when the box is not next to its point.
    pub leader: Option<Segment>,
}

/// What the labels must keep clear of.
#[derive(Debug, Clone, Default)]
pub struct Obstacles {
    /// The area labels must stay within (the plotting area).
    pub bounds: Option<Rect>,
    /// Boxes no label may cover (markers, a legend).
    pub boxes: Vec<Rect>,
    /// Lines labels should keep off when they can (a frontier, a target line).
    pub lines: Vec<Segment>,
}

/// How far from its point a label sits, pixels: next to the marker first, then in wider rings
/// (those with a leader line).
const RINGS: [f64; 6] = [4.0, 18.0, 34.0, 54.0, 80.0, 115.0];
/// Clearance kept between two labels, and between a label and a marker.
const GAP: f64 = 2.0;

/// Places `labels` in order (earlier ones get the better spots: put the most important first),
/// each off markers of half-size `marker_r` at every label's point. Each candidate box, nearest
/// ring first and in a fixed order of directions, must lie within the bounds and cover no
/// placed label, no marker and no obstacle box; the first that also keeps off the obstacle
/// lines and the leader lines drawn so far is taken, else the first that only breaks that, else
/// the candidate covering least (with a leader line), so every label is drawn.
pub fn place(labels: &[Label], marker_r: f64, obstacles: &Obstacles) -> Vec<Placed> {
    let markers: Vec<Rect> = labels.iter().map(|l| Rect::around(l.at.0, l.at.1, marker_r + GAP)).collect();
    let mut placed: Vec<Placed> = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let candidates = candidates(label, marker_r);
        let hard_ok = |c: &Placed| {
            obstacles.bounds.is_none_or(|b| c.rect.within(&b))
                && !placed.iter().any(|p| p.rect.grow(GAP).overlaps(&c.rect))
                && !markers.iter().chain(&obstacles.boxes).any(|m| m.overlaps(&c.rect))
                && c.leader.is_none_or(|l| !placed.iter().any(|p| crosses(l, &p.rect)))
        };
        // Off the lines, and its leader line (if any) past no other point.
        let soft_ok = |c: &Placed| {
            let leaders = placed.iter().filter_map(|p| p.leader);
            !obstacles.lines.iter().copied().chain(leaders).any(|s| crosses(s, &c.rect))
                && c.leader.is_none_or(|l| !markers.iter().enumerate().any(|(j, m)| j != i && crosses(l, m)))
        };
        let chosen = candidates
            .iter()
            .find(|c| hard_ok(c) && soft_ok(c))
            .or_else(|| candidates.iter().find(|c| hard_ok(c)))
            .copied()
            .unwrap_or_else(|| least_covering(&candidates, &placed, &markers, obstacles));
        placed.push(chosen);
    }
    placed
}

/// Every candidate box for `label`, nearest ring first; within a ring: right, left, above,
/// below, then the diagonals, then (outer rings) the directions between.
fn candidates(label: &Label, marker_r: f64) -> Vec<Placed> {
    const H: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const DIRS: [(f64, f64); 16] = [
        (1.0, 0.0),
        (-1.0, 0.0),
        (0.0, -1.0),
        (0.0, 1.0),
        (H, -H),
        (H, H),
        (-H, -H),
        (-H, H),
        (0.9239, -0.3827),
        (0.9239, 0.3827),
        (-0.9239, -0.3827),
        (-0.9239, 0.3827),
        (0.3827, -0.9239),
        (0.3827, 0.9239),
        (-0.3827, -0.9239),
        (-0.3827, 0.9239),
    ];
    let (x, y) = label.at;
    let (w, h) = label.size;
    let mut out = Vec::new();
    for (ring, d) in RINGS.iter().enumerate() {
        let dirs = if ring == 0 { &DIRS[..8] } else { &DIRS[..] };
        for &(dx, dy) in dirs {
            let (ax, ay) = (x + (marker_r + d) * dx, y + (marker_r + d) * dy);
            // The box's corner or edge nearest the point sits at the anchor.
            let left = if dx > 0.3 {
                ax
            } else if dx < -0.3 {
                ax - w
            } else {
                ax - w / 2.0
            };
            let top = if dy > 0.3 {
                ay
            } else if dy < -0.3 {
                ay - h
            } else {
                ay - h / 2.0
            };
            let rect = Rect::at(left, top, w, h);
            let leader = (ring > 1).then(|| ((x + marker_r * dx, y + marker_r * dy), rect.nearest((x, y))));
            out.push(Placed { rect, leader });
        }
    }
    out
}

/// The candidate within the bounds (if any is) covering the least area of placed labels and
/// markers, with a leader line so it still points at its point.
fn least_covering(candidates: &[Placed], placed: &[Placed], markers: &[Rect], obstacles: &Obstacles) -> Placed {
    let cost = |c: &Placed| -> f64 {
        let outside = obstacles.bounds.is_some_and(|b| !c.rect.within(&b));
        let covered: f64 = placed
            .iter()
            .map(|p| p.rect)
            .chain(markers.iter().copied())
            .chain(obstacles.boxes.iter().copied())
            .map(|r| r.overlap_area(&c.rect))
            .sum();
        covered + if outside { 1e9 } else { 0.0 }
    };
    let best = candidates.iter().min_by(|a, b| cost(a).total_cmp(&cost(b))).copied();
    let mut p = best.unwrap_or(Placed { rect: Rect::at(0.0, 0.0, 0.0, 0.0), leader: None });
    if p.leader.is_none() {
        let c = ((p.rect.x0 + p.rect.x1) / 2.0, (p.rect.y0 + p.rect.y1) / 2.0);
        p.leader = Some((c, c));
    }
    p
}

/// Whether any two placed boxes overlap (for tests and checks).
pub fn any_overlap(placed: &[Placed]) -> bool {
    placed.iter().enumerate().any(|(i, a)| placed[i + 1..].iter().any(|b| a.rect.overlaps(&b.rect)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Rect {
        Rect::at(0.0, 0.0, 800.0, 500.0)
    }

    #[test]
    fn labels_of_points_that_nearly_coincide_do_not_overlap() {
        // static and hpa-gpu70 at the same cost and attainment, as in the old cost_slo.svg,
        // plus a crowd around them.
        let labels: Vec<Label> =
            [(700.0, 40.0), (702.0, 42.0), (690.0, 50.0), (400.0, 300.0), (405.0, 305.0), (395.0, 298.0), (410.0, 290.0)]
                .iter()
                .map(|&at| Label { at, size: (120.0, 34.0) })
                .collect();
        let obstacles = Obstacles { bounds: Some(bounds()), ..Obstacles::default() };
        let placed = place(&labels, 6.0, &obstacles);
        assert_eq!(placed.len(), labels.len());
        assert!(!any_overlap(&placed), "{placed:#?}");
        for (p, l) in placed.iter().zip(&labels) {
            assert!(p.rect.within(&bounds()), "{p:?}");
            for m in &labels {
                assert!(!p.rect.overlaps(&Rect::around(m.at.0, m.at.1, 6.0)), "{p:?} covers the point {:?}", m.at);
            }
            // Far from its point only with a leader line to it.
            let (nx, ny) = p.rect.nearest(l.at);
            let far = ((nx - l.at.0).powi(2) + (ny - l.at.1).powi(2)).sqrt() > 6.0 + RINGS[1] + 1.0;
            assert!(!far || p.leader.is_some(), "{p:?} for {:?}", l.at);
        }
    }

    #[test]
    fn a_lone_point_gets_its_label_right_beside_it() {
        let placed = place(&[Label { at: (100.0, 100.0), size: (80.0, 20.0) }], 5.0, &Obstacles::default());
        assert_eq!(placed[0].rect, Rect::at(109.0, 90.0, 80.0, 20.0));
        assert_eq!(placed[0].leader, None);
    }

    #[test]
    fn a_label_at_the_right_edge_goes_left_and_keeps_off_lines() {
        let obstacles = Obstacles {
            bounds: Some(bounds()),
            boxes: vec![],
            lines: vec![((0.0, 100.0), (800.0, 100.0))], // a horizontal target line through the point
        };
        let placed = place(&[Label { at: (780.0, 100.0), size: (100.0, 20.0) }], 5.0, &obstacles);
        let r = placed[0].rect;
        assert!(r.x1 <= 780.0 && r.within(&bounds()), "{r:?}");
        assert!(!crosses(obstacles.lines[0], &r), "{r:?}");
    }

    #[test]
    fn segments_cross_boxes_they_pass_through_only() {
        let r = Rect::at(10.0, 10.0, 10.0, 10.0);
        assert!(crosses(((0.0, 15.0), (30.0, 15.0)), &r));
        assert!(!crosses(((0.0, 5.0), (30.0, 5.0)), &r));
        assert!(!crosses(((0.0, 0.0), (5.0, 30.0)), &r));
        assert!(crosses(((0.0, 0.0), (30.0, 30.0)), &r));
    }
}
