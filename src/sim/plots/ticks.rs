//! Where the axes put their ticks and what the ticks say: calendar ticks for time ("day 8",
//! "06:00", never "50.0 hours"), round numbers for counts, and a "nines" scale for SLO
//! attainment, where 99 % and 99.9 % are as far apart as 90 % and 99 %.

use super::text;

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// A tick on a time axis, in replay seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeTick {
    /// Replay seconds.
    pub t: f64,
    /// A day boundary (drawn darker).
    pub midnight: bool,
}

/// A label on a time axis: its text, centred at `t` (replay seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeLabel {
    /// Replay seconds of the label's centre.
    pub t: f64,
    /// What it says.
    pub text: String,
    /// Names a day (set in bold so days stand out among hours).
    pub day: bool,
}

/// The ticks and labels of a time axis.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeAxis {
    /// Grid lines.
    pub ticks: Vec<TimeTick>,
    /// Labels (fewer than ticks when they would not fit).
    pub labels: Vec<TimeLabel>,
}

/// The day of calendar second `c`, counted from 1 as a person would ("day 1" is the source's
/// first day).
pub fn day_of(c: f64) -> i64 {
    (c / DAY).floor() as i64 + 1
}

/// Calendar second `c` as "day N HH:MM".
pub fn when(c: f64) -> String {
    format!("day {} {}", day_of(c), clock(c))
}

/// The time of day of calendar second `c`, "HH:MM".
pub fn clock(c: f64) -> String {
    let s = c.rem_euclid(DAY).round() as i64 % DAY as i64;
    format!("{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

/// A time axis over replay seconds `t0..t1`, whose second 0 is calendar second `start`, drawn
/// `width_px` wide with labels of `font_px`. Spans of several days get a grid line at each
/// midnight and the day's name centred under it; shorter spans get hour-of-day ticks (the
/// coarsest step from a human list that fits), midnights named by their day.
pub fn time_axis(t0: f64, t1: f64, start: f64, width_px: f64, font_px: f64) -> TimeAxis {
    if t0.is_nan() || t1.is_nan() || t1 <= t0 || width_px <= 0.0 {
        return TimeAxis::default();
    }
    let span = t1 - t0;
    let per_s = width_px / span;
    let day_w = text::width("day 88", font_px, true) + font_px;
    if span >= 2.5 * DAY && DAY * per_s >= day_w {
        return day_axis(t0, t1, start, per_s, day_w);
    }
    if span >= 2.5 * DAY {
        // Days too narrow for a label each: a label every few days, every midnight a line.
        let mut axis = day_axis(t0, t1, start, per_s, 0.0);
        let every = (day_w / (DAY * per_s)).ceil().max(1.0) as i64;
        axis.labels.retain(|l| (day_of(l.t + start) - 1) % every == 0);
        return axis;
    }
    clock_axis(t0, t1, start, per_s, font_px)
}

/// A grid line at each midnight in `t0..t1` and each day's name centred in the part of it
/// shown, when that part is at least `min_w` pixels wide.
fn day_axis(t0: f64, t1: f64, start: f64, per_s: f64, min_w: f64) -> TimeAxis {
    let mut axis = TimeAxis::default();
    let first = ((t0 + start) / DAY).ceil() * DAY - start;
    let mut m = first;
    while m <= t1 + 1e-6 {
        axis.ticks.push(TimeTick { t: m, midnight: true });
        m += DAY;
    }
    let mut d = ((t0 + start) / DAY).floor() * DAY - start;
    while d < t1 {
        let (a, b) = (d.max(t0), (d + DAY).min(t1));
        if (b - a) * per_s >= min_w {
            axis.labels.push(TimeLabel { t: (a + b) / 2.0, text: format!("day {}", day_of(d + start + 1.0)), day: true });
        }
        d += DAY;
    }
    axis
}

/// Ticks every few minutes or hours of the day: the smallest step from 1 min to 12 h at which
/// every label fits beside its neighbours. A midnight is labelled with its day.
fn clock_axis(t0: f64, t1: f64, start: f64, per_s: f64, font_px: f64) -> TimeAxis {
    const STEPS: [f64; 13] = [
        MINUTE,
        2.0 * MINUTE,
        5.0 * MINUTE,
        10.0 * MINUTE,
        15.0 * MINUTE,
        30.0 * MINUTE,
        HOUR,
        2.0 * HOUR,
        3.0 * HOUR,
        6.0 * HOUR,
        12.0 * HOUR,
        DAY,
        2.0 * DAY,
    ];
    let need = (text::width("day 88", font_px, true) + text::width("88:88", font_px, false)) / 2.0 + font_px * 0.5;
    let step = STEPS.iter().copied().find(|s| s * per_s >= need).unwrap_or(2.0 * DAY);
    let mut axis = TimeAxis::default();
    let mut c = ((t0 + start) / step).ceil() * step;
    while c - start <= t1 + 1e-6 {
        let t = c - start;
        let midnight = (c / DAY - (c / DAY).round()).abs() < 1e-9;
        axis.ticks.push(TimeTick { t, midnight });
        let text = if midnight { format!("day {}", day_of(c + 1.0)) } else { clock(c) };
        axis.labels.push(TimeLabel { t, text, day: midnight });
        c += step;
    }
    axis
}

/// Round ticks (1, 2 or 5 times a power of ten) over `lo..hi`, at least `min_gap_px` apart on
/// an axis `len_px` long.
pub fn nice(lo: f64, hi: f64, len_px: f64, min_gap_px: f64) -> Vec<f64> {
    if lo.is_nan() || hi.is_nan() || hi <= lo || len_px <= 0.0 {
        return vec![lo];
    }
    let most = (len_px / min_gap_px.max(1.0)).floor().max(1.0);
    let raw = (hi - lo) / most;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 {
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    out
}

/// Decades (and, when there is room, 2x and 5x) between `lo` and `hi` for a log axis.
pub fn log_ticks(lo: f64, hi: f64, len_px: f64, min_gap_px: f64) -> Vec<f64> {
    if !(hi > lo && lo > 0.0) {
        return vec![];
    }
    let decades = (hi / lo).log10();
    let per_decade = len_px / decades.max(1e-9);
    let mults: &[f64] = if per_decade >= 3.0 * min_gap_px {
        &[1.0, 2.0, 5.0]
    } else if per_decade >= min_gap_px {
        &[1.0]
    } else {
        &[]
    };
    let mut out = Vec::new();
    let mut p = 10f64.powf(lo.log10().floor());
    while p <= hi * (1.0 + 1e-9) {
        for m in mults {
            let v = p * m;
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
        p *= 10.0;
    }
    if out.is_empty() {
        out = vec![lo, hi];
    }
    out
}

/// Seconds for a tick label: "0.1 s", "2 s", "100 s".
pub fn secs(v: f64) -> String {
    if v >= 1.0 { format!("{} s", v.round()) } else { format!("{} s", (v * 1000.0).round() / 1000.0) }
}

/// The "nines" of an attainment: `-log10(1 - a)`, so 90 % is 1, 99 % is 2, 99.9 % is 3. Capped
/// at 99.99 % (4) so a perfect run stays on the chart.
pub fn nines(a: f64) -> f64 {
    -(1.0 - a.clamp(0.0, 0.9999)).log10()
}

/// Attainment ticks for a nines axis from `lo` to `hi` (both in nines), at least `min_gap_px`
/// apart on an axis `len_px` long: the round percentages a person reads SLOs in.
pub fn nines_ticks(lo: f64, hi: f64, len_px: f64, min_gap_px: f64) -> Vec<f64> {
    const CANDIDATES: [f64; 17] =
        [0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.997, 0.998, 0.999, 0.9995, 0.9997, 0.9998, 0.9999, 0.6, 0.7];
    let per_nine = len_px / (hi - lo).max(1e-9);
    let mut kept: Vec<f64> = Vec::new();
    // Coarse ones first, so the finer ones fill in only where there is room.
    let mut order: Vec<f64> = CANDIDATES.to_vec();
    order.sort_by(|a, b| rank(*a).cmp(&rank(*b)).then(a.total_cmp(b)));
    for a in order {
        let y = nines(a);
        if y < lo - 1e-9 || y > hi + 1e-9 {
            continue;
        }
        if kept.iter().all(|k| (nines(*k) - y).abs() * per_nine >= min_gap_px) {
            kept.push(a);
        }
    }
    if kept.len() < 3 {
        // A narrow range (every row near the same attainment): round percentages in it instead.
        let (a0, a1) = (1.0 - 10f64.powf(-lo), 1.0 - 10f64.powf(-hi));
        let step = nice(a0 * 100.0, a1 * 100.0, 4.0, 1.0);
        kept = step.into_iter().map(|p| p / 100.0).filter(|a| (lo..=hi).contains(&nines(*a))).collect();
    }
    kept.sort_by(f64::total_cmp);
    kept.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    kept
}

/// How round an attainment is: 90 %, 99 %, 99.9 % first, then the halves, then the rest.
fn rank(a: f64) -> u8 {
    let n = nines(a);
    if (n - n.round()).abs() < 1e-6 {
        0
    } else if [0.5, 0.95, 0.995, 0.9995].iter().any(|h| (h - a).abs() < 1e-9) {
        1
    } else {
        2
    }
}

/// A share as a percentage with as many decimals as it needs to differ from its neighbours on
/// a nines axis: "90 %", "99.5 %", "99.95 %".
pub fn percent(a: f64) -> String {
    let p = a * 100.0;
    for d in 0..4 {
        let f = 10f64.powi(d);
        if ((p * f).round() - p * f).abs() < 1e-6 {
            return format!("{:.*} %", d as usize, p);
        }
    }
    format!("{p:.2} %")
}

/// A number with thousands separators: "1,927".
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_is_labelled_by_day_centred_between_midnight_lines() {
        // The hold-out: source days 8..14, replay second 0 at 7 d.
        let a = time_axis(0.0, 7.0 * DAY, 7.0 * DAY, 700.0, 14.0);
        let names: Vec<&str> = a.labels.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(names, ["day 8", "day 9", "day 10", "day 11", "day 12", "day 13", "day 14"]);
        assert!((a.labels[0].t - 0.5 * DAY).abs() < 1e-6, "centred in its day");
        assert_eq!(a.ticks.len(), 8);
        assert!(a.ticks.iter().all(|t| t.midnight));
        assert!(names.iter().all(|n| !n.contains("hours")));
    }

    #[test]
    fn two_days_get_hours_of_the_day_and_midnights_named_by_day() {
        // 48 h from day 12 06:00.
        let start = 7.0 * DAY;
        let (t0, t1) = (4.0 * DAY + 6.0 * HOUR, 6.0 * DAY + 6.0 * HOUR);
        let a = time_axis(t0, t1, start, 480.0, 14.0);
        let names: Vec<&str> = a.labels.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(names, ["06:00", "12:00", "18:00", "day 13", "06:00", "12:00", "18:00", "day 14", "06:00"], "{names:?}");
        // Narrower: 12-hour steps.
        let b = time_axis(t0, t1, start, 200.0, 14.0);
        assert!(b.labels.len() < a.labels.len() && b.labels.iter().any(|l| l.text == "day 13"), "{:?}", b.labels);
    }

    #[test]
    fn labels_of_a_clock_axis_never_overlap() {
        for width in [150.0, 300.0, 600.0, 1200.0] {
            for span in [1800.0, 3.0 * HOUR, 12.0 * HOUR, 2.0 * DAY] {
                let a = time_axis(0.0, span, 0.0, width, 14.0);
                let x = |t: f64| t / span * width;
                for w in a.labels.windows(2) {
                    let gap = x(w[1].t) - x(w[0].t);
                    let half = (text::width(&w[0].text, 14.0, w[0].day) + text::width(&w[1].text, 14.0, w[1].day)) / 2.0;
                    assert!(gap > half, "{width} px, {span} s: {:?} {:?}", w[0], w[1]);
                }
            }
        }
    }

    #[test]
    fn nines_put_99_and_99_9_one_unit_apart() {
        assert!((nines(0.9) - 1.0).abs() < 1e-9 && (nines(0.999) - 3.0).abs() < 1e-9);
        assert!((nines(1.0) - 4.0).abs() < 1e-9, "capped at 99.99 %");
        let t = nines_ticks(nines(0.93), nines(0.9995), 400.0, 30.0);
        assert!(t.contains(&0.99) && t.contains(&0.999), "{t:?}");
        for w in t.windows(2) {
            assert!((nines(w[1]) - nines(w[0])) * 400.0 / (nines(0.9995) - nines(0.93)) >= 30.0, "{t:?}");
        }
        assert_eq!(percent(0.995), "99.5 %");
        assert_eq!(percent(0.9), "90 %");
    }

    #[test]
    fn round_numbers() {
        assert_eq!(nice(0.0, 20.0, 100.0, 25.0), [0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_eq!(nice(1800.0, 3400.0, 600.0, 80.0), [2000.0, 2500.0, 3000.0]);
        assert_eq!(log_ticks(0.1, 100.0, 90.0, 20.0), [0.1, 1.0, 10.0, 100.0]);
        assert_eq!(thousands(1927.4), "1,927");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(secs(0.1), "0.1 s");
        assert_eq!(secs(2.0), "2 s");
    }
}
