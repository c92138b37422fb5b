//! The plots drawn from a made-up week: what a reader needs is in the SVG (a titled row per
//! policy, day ticks, the SLO line, labels clear of each other).

use super::*;
use crate::sim::{config::Slo, report::Series, stats::Percentiles};

const DAY: f64 = 86_400.0;

/// A week in 1008 steps of 10 minutes: a daily wave of demand (in replicas) with one sharp step
/// on day 4; each policy follows it with its own lag and headroom.
fn week() -> SimReport {
    let step = 600.0;
    let n = (7.0 * DAY / step) as usize;
    let demand: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 * step;
            let wave = 6.0 + 4.0 * (std::f64::consts::TAU * (t / DAY - 0.3)).sin();
            if (3.5 * DAY..3.6 * DAY).contains(&t) { wave * 1.8 } else { wave }
        })
        .collect();
    let cap = 4.8;
    let policy = |name: &str, follow: &dyn Fn(usize) -> f64| {
        let replicas: Vec<f64> = (0..n).map(follow).collect();
        let ttft: Vec<Option<f64>> = (0..n)
            .map(|i| {
                if i % 97 == 13 { None } else { Some(if replicas[i] < demand[i] { 0.5 * (demand[i] / replicas[i]).powi(8) } else { 0.35 }) }
            })
            .collect();
        let hourly: Vec<HourTally> = (0..n / 6)
            .map(|h| {
                let late = (h * 6..h * 6 + 6).filter(|&i| ttft[i].is_some_and(|v| v > 2.0)).count() as u64;
                HourTally { requests: 60_000, within_slo: 60_000 - late * 1500 }
            })
            .collect();
        let requests: u64 = hourly.iter().map(|h| h.requests).sum();
        let within: u64 = hourly.iter().map(|h| h.within_slo).sum();
        let gpu_hours = replicas.iter().sum::<f64>() * step / 3600.0 * 2.0;
        PolicyResult {
            name: name.into(),
            description: name.into(),
            gpu_hours,
            cost_usd: gpu_hours * 4.0,
            gpu_utilization: 0.9,
            work_utilization: None,
            requests,
            completed: requests,
            dropped: 0,
            slo_attainment: within as f64 / requests as f64,
            ttft_misses: requests - within,
            tpot_misses: 0,
            ttft: Percentiles::default(),
            tpot: Percentiles::default(),
            e2e: Percentiles::default(),
            scaling_actions: 3,
            mean_replicas: replicas.iter().sum::<f64>() / n as f64,
            peak_replicas: replicas.iter().fold(0.0, |a: f64, b| a.max(*b)) as u32,
            preemptions: 0,
            savings_vs_static: None,
            dominant_signals: Default::default(),
            wall_s: 0.0,
            nodes: None,
            decider: None,
            series: Series {
                step_s: step,
                arrivals_rps: demand.iter().map(|d| d * cap).collect(),
                ready: replicas.clone(),
                replicas,
                ttft_p99_s: ttft,
                slo: vec![None; n],
                hourly,
            },
        }
    };
    let d = &demand;
    let lag = |k: usize, head: f64| move |i: usize| (d[i.saturating_sub(k)] * head).ceil().clamp(2.0, 20.0);
    let policies = vec![
        policy("static-15", &|_| 15.0),
        policy("static-peak", &|_| 20.0),
        policy("hpa-gpu70", &|_| 20.0),
        policy("keda-queue5", &lag(3, 1.05)),
        policy("kpa", &lag(2, 1.1)),
        policy("keda-tokens", &lag(2, 1.25)),
        policy("llm-scaler", &lag(1, 1.2)),
        policy("clairvoyant", &|i| (d[(i + 1).min(n - 1)] * 1.1).ceil().clamp(2.0, 20.0)),
    ];
    SimReport {
        workload: "made-up week".into(),
        duration_s: 7.0 * DAY,
        requests: policies[0].requests,
        replica: "model".into(),
        gpus_per_replica: 2,
        price_per_gpu_hour: 4.0,
        slo: Slo { ttft_s: 2.0, tpot_s: 0.1 },
        replica_capacity_rps: cap,
        cold_start_s: 120.0,
        nodes: None,
        policies,
        wall_s: 0.0,
    }
}

fn timeline_of(r: &SimReport, start_s: f64) -> Timeline {
    let kinds: Vec<Kind> = r.policies.iter().map(Kind::of_result).collect();
    timeline(r, &kinds, &vec![None; kinds.len()], Calendar { start_s }, 100, "seed 1 (the first of 3)".into())
}

/// Writes the made-up week's plots where a person can look at them (`cargo test` leaves them in
/// the temp directory) and returns the three SVGs.
fn drawn() -> (String, String, String) {
    let r = week();
    let tl = timeline_of(&r, 7.0 * DAY);
    let (a, b, c) = (lanes::replicas(&tl).unwrap(), lanes::latency(&tl).unwrap(), scatter::draw(&scatter_of(&r)).unwrap());
    let dir = std::env::temp_dir().join("llm-scaler-plots-unit");
    if std::fs::create_dir_all(&dir).is_ok() {
        for (name, svg) in [("replicas.svg", &a), ("latency.svg", &b), ("cost_slo.svg", &c)] {
            let _ = std::fs::write(dir.join(name), svg);
        }
    }
    (a, b, c)
}

#[test]
fn every_policy_has_a_titled_row_on_a_shared_day_axis() {
    let (replicas, latency, _) = drawn();
    for svg in [&replicas, &latency] {
        let t = svg_texts(svg);
        for name in ["static-15", "static-peak", "hpa-gpu70", "keda-queue5", "kpa", "keda-tokens", "llm-scaler", "clairvoyant"] {
            // One bold title over the whole run and one over the zoom.
            assert_eq!(t.iter().filter(|(bold, s)| *bold && s == name).count(), 2, "{name}: {t:?}");
        }
        // The shared axis: days 8..14 once each (bottom row only), on the source's calendar.
        for d in 8..=14 {
            assert_eq!(t.iter().filter(|(_, s)| *s == format!("day {d}")).count(), if (11..=12).contains(&d) { 2 } else { 1 }, "day {d}");
        }
        assert!(t.iter().any(|(_, s)| s == "06:00"), "the zoom has hours of the day");
        assert!(!t.iter().any(|(_, s)| s.contains("hours") && s.chars().next().is_some_and(|c| c.is_ascii_digit())), "no \"50.0 hours\"");
        // The zoom is on llm-scaler's worst hour, the step of day 11.
        assert!(t.iter().any(|(bold, s)| *bold && s == "zoom: day 10 12:00 to day 12 12:00"), "{t:?}");
        assert!(t.iter().any(|(_, s)| s.starts_with("the 48 h around llm-scaler's worst hour, day 11 12:00 (")), "{t:?}");
    }
    let t = svg_texts(&latency);
    assert_eq!(t.iter().filter(|(_, s)| s == "SLO 2 s").count(), 16, "the SLO line labelled in every panel");
}

#[test]
fn the_zoom_is_the_48_hours_around_our_worst_hour_on_round_hours() {
    let r = week();
    let tl = timeline_of(&r, 7.0 * DAY);
    let z = zoom_window(&tl).unwrap();
    assert_eq!(z.t1 - z.t0, 48.0 * 3600.0);
    assert_eq!(z.t0 % (6.0 * 3600.0), 0.0);
    let (h0, h1) = z.hour.unwrap();
    assert!(z.t0 <= h0 && h1 <= z.t1);
    assert!((3.5 * DAY..3.6 * DAY).contains(&h0), "{h0}");
    // Two days or less: nothing to zoom on.
    let short = Timeline { duration_s: 2.0 * DAY, ..tl };
    assert_eq!(zoom_window(&short), None);
}

#[test]
fn cost_slo_labels_cover_no_label_and_no_point() {
    let mut s = scatter_of(&week());
    // Two rows at the same cost and attainment (as static and hpa-gpu70 were).
    let twin = Point { name: "static-twin".into(), ..s.points[1].clone() };
    s.points.push(twin);
    let lay = scatter::layout(&s);
    assert_eq!(lay.labels.len(), s.points.len());
    assert!(!labels::any_overlap(&lay.labels), "{:#?}", lay.labels);
    for (i, l) in lay.labels.iter().enumerate() {
        assert!(l.rect.within(&lay.frame.rect), "{} {:?}", s.points[i].name, l.rect);
        for p in &s.points {
            let (x, y) = lay.frame.at(p.gpu_hours, ticks::nines(p.attainment));
            assert!(!l.rect.overlaps(&labels::Rect::around(x, y, 6.0)), "{}'s label covers {}", s.points[i].name, p.name);
        }
    }
    let svg = scatter::draw(&s).unwrap();
    let t = svg_texts(&svg);
    for p in &s.points {
        assert!(t.iter().any(|(bold, x)| *bold && *x == p.name), "{} labelled", p.name);
    }
    assert!(t.iter().any(|(_, x)| x == "Pareto frontier"));
}

#[test]
fn the_frontier_is_what_no_deployable_row_beats_on_both() {
    let p = |name: &str, kind: Kind, g: f64, a: f64| Point {
        name: name.into(),
        setting: None,
        kind,
        color: RGBColor(0, 0, 0),
        gpu_hours: g,
        attainment: a,
        meets: None,
    };
    let pts = vec![
        p("static-11", Kind::StaticMin, 3000.0, 0.999),
        p("static-peak", Kind::Static, 5000.0, 0.9995),
        p("kpa", Kind::Baseline, 2000.0, 0.99),
        p("keda-queue", Kind::Baseline, 2500.0, 0.98), // dearer and worse than kpa
        p("llm-scaler", Kind::Ours, 1900.0, 0.994),
        p("clairvoyant", Kind::Bound, 1500.0, 0.9999), // beats all, but needs foresight
    ];
    let names: Vec<&str> = frontier(&pts).into_iter().map(|i| pts[i].name.as_str()).collect();
    assert_eq!(names, ["llm-scaler", "static-11", "static-peak"]);
}

#[test]
fn rows_keep_their_colour_across_plots_and_ours_is_always_the_same_blue() {
    let c = colors(&[Kind::Static, Kind::Baseline, Kind::Ours, Kind::Baseline]);
    assert_eq!(c[2], RGBColor(31, 119, 180));
    assert_ne!(c[1], c[3]);
    let c2 = colors(&[Kind::Ours]);
    assert_eq!(c2[0], c[2]);
}

/// The text elements of an SVG with where they start: (bold, x, y, font size, content).
fn placed_texts(svg: &str) -> Vec<(bool, f64, f64, f64, String)> {
    let attr = |attrs: &str, name: &str| {
        attrs.split(&format!(" {name}=\"")).nth(1).and_then(|v| v.split('"').next()).and_then(|v| v.parse::<f64>().ok())
    };
    svg.split("<text")
        .skip(1)
        .zip(svg_texts(svg))
        .filter_map(|(t, (bold, content))| {
            let (attrs, _) = t.split_once('>')?;
            Some((bold, attr(attrs, "x")?, attr(attrs, "y")?, attr(attrs, "font-size")?, content))
        })
        .collect()
}

#[test]
fn the_text_after_a_bold_name_starts_at_least_a_space_after_it() {
    // Names ending in digits were measured short: "hpa-gpu60GPU 60%", "keda-queue20queue 20".
    let r = week();
    let kinds: Vec<Kind> = r.policies.iter().map(Kind::of_result).collect();
    let settings: Vec<Option<String>> = r
        .policies
        .iter()
        .map(|p| match p.name.as_str() {
            "hpa-gpu70" => Some("GPU 70% (tuned, closest: none met)".into()),
            "keda-queue5" => Some("queue 5 (tuned, closest: none met)".into()),
            "static-15" => Some("15 replicas (bisected)".into()),
            _ => None,
        })
        .collect();
    let tl = timeline(&r, &kinds, &settings, Calendar { start_s: 7.0 * DAY }, 100, String::new());
    let mut scatter = scatter_of(&r);
    for (p, s) in scatter.points.iter_mut().zip(&settings) {
        p.setting = s.clone();
    }
    // Every row's title over both panels; the scatter's labels with a setting.
    let with_setting = settings.iter().flatten().count();
    for (svg, want) in
        [(lanes::replicas(&tl).unwrap(), 16), (lanes::latency(&tl).unwrap(), 16), (scatter::draw(&scatter).unwrap(), with_setting)]
    {
        let t = placed_texts(&svg);
        let mut pairs = 0;
        for w in t.windows(2) {
            let ((true, x0, y0, px, name), (false, x1, y1, _, rest)) = (&w[0], &w[1]) else { continue };
            if y0 != y1 || !r.policies.iter().any(|p| p.name == *name) {
                continue;
            }
            pairs += 1;
            // DejaVu Sans Bold, the widest sans-serif a viewer picks, plus a bold space.
            let need = x0 + text::width(name, *px, true) + text::width(" ", *px, true);
            assert!(*x1 >= need, "{name:?} then {rest:?}: starts at {x1}, the name ends at {need}");
        }
        assert_eq!(pairs, want, "names followed by their text");
    }
}
