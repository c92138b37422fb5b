//! The strict scoreboard: every policy judged by the same [`SloCriterion`] on every seed, its
//! GPU-hours as mean and spread over the seeds, and the savings that matter: against the smallest
//! static fleet meeting the criterion and against the best baseline meeting it, not against a
//! fleet sized for the peak.

use std::fmt::Write as _;

use serde::Serialize;

use crate::sim::{
    clairvoyant::ClairvoyantSearch,
    criterion::{SloCriterion, Verdict},
    report::{self, PolicyResult, SimReport},
    search::StaticSearch,
    tune::Tuned,
};

/// What a row stands for on the scoreboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The smallest static fleet meeting the criterion (what savings are measured against).
    StaticMin,
    /// The static fleet of `--max-replicas`, for reference.
    StaticPeak,
    /// A static fleet of a size given on the command line.
    Static,
    /// A baseline autoscaler (HPA on GPU, KEDA on queue or tokens, KPA).
    Baseline,
    /// llm-scaler with the metadata given (defaults when none).
    LlmScaler,
    /// An llm-scaler `--variant`.
    Variant,
    /// The clairvoyant bound: follows the actual arrivals with foresight of the cold start.
    Clairvoyant,
}

/// Mean, least and most of a figure over the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Least.
    pub min: f64,
    /// Most.
    pub max: f64,
}

impl Spread {
    /// Of `xs` (NaN when empty).
    pub fn of(xs: impl IntoIterator<Item = f64>) -> Self {
        let (mut n, mut sum, mut min, mut max) = (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for x in xs {
            n += 1;
            sum += x;
            min = min.min(x);
            max = max.max(x);
        }
        if n == 0 { Spread { mean: f64::NAN, min: f64::NAN, max: f64::NAN } } else { Spread { mean: sum / n as f64, min, max } }
    }
}

/// One policy on one seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRun {
    /// The seed (arrivals, lengths, routing, jitter).
    pub seed: u64,
    /// GPU-hours.
    pub gpu_hours: f64,
    /// How it fared against the criterion.
    pub verdict: Verdict,
}

/// A policy to put on the scoreboard: its replays, one per seed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Row name.
    pub name: String,
    /// What it is.
    pub role: Role,
    /// The setting it ran with (a tuned knob, a static size, the clairvoyant factor).
    pub setting: Option<String>,
    /// Its replays, one per seed, in seed order.
    pub runs: Vec<(u64, PolicyResult)>,
}

/// One row of the scoreboard.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Row name.
    pub name: String,
    /// What it is.
    pub role: Role,
    /// What the policy is.
    pub description: String,
    /// The setting it ran with.
    pub setting: Option<String>,
    /// Per seed.
    pub runs: Vec<SeedRun>,
    /// GPU-hours over the seeds.
    pub gpu_hours: Spread,
    /// Overall SLO attainment over the seeds.
    pub attainment: Spread,
    /// Share of judged hours at the hourly target, over the seeds.
    pub good_hour_share: Spread,
    /// Attainment of the worst judged hour of any seed.
    pub worst_hour: Option<f64>,
    /// Meets the criterion on every seed.
    pub meets: bool,
    /// Worst TTFT p99 over the seeds, seconds.
    pub ttft_p99_s: f64,
    /// Mean scaling actions per seed.
    pub scaling_actions: f64,
    /// Mean provisioned replicas (mean over seeds).
    pub mean_replicas: f64,
    /// Most replicas provisioned at once on any seed.
    pub peak_replicas: u32,
    /// `1 - GPU-hours / the smallest static fleet meeting the SLO`, both as means over the seeds.
    pub saved_vs_static: Option<f64>,
    /// `1 - GPU-hours / the best baseline meeting the SLO` (means over the seeds).
    pub saved_vs_best_baseline: Option<f64>,
    /// `GPU-hours / the clairvoyant bound's` (means over the seeds).
    pub vs_clairvoyant: Option<f64>,
    /// The cheapest baseline meeting the SLO.
    pub best_baseline: bool,
}

/// The whole scoreboard.
#[derive(Debug, Clone, Serialize)]
pub struct Scoreboard {
    /// What "meets the SLO" means here.
    pub criterion: SloCriterion,
    /// The seeds every policy ran on.
    pub seeds: Vec<u64>,
    /// The rows, in line-up order.
    pub rows: Vec<Row>,
    /// Notes on how the rows were found (searches, tuning), in order.
    pub notes: Vec<String>,
    /// How the smallest static fleet was found.
    pub static_search: Option<StaticSearch>,
    /// How the clairvoyant bound's factor was found.
    pub clairvoyant: Option<ClairvoyantSearch>,
    /// What `--tune-baselines` tried and kept.
    pub tuning: Vec<Tuned>,
    /// Per seed, every replay in full (time series included), rows in row order.
    pub reports: Vec<SimReport>,
}

impl Scoreboard {
    /// Judges every entry on every seed and works out the savings. `reports` are the per-seed
    /// reports of the same replays (for the JSON and the plots).
    pub fn new(criterion: SloCriterion, seeds: Vec<u64>, entries: Vec<Entry>, notes: Vec<String>, reports: Vec<SimReport>) -> Self {
        let mut rows: Vec<Row> = entries.into_iter().map(|e| row(&criterion, e)).collect();
        let mean_of = |role: Role, rows: &[Row]| rows.iter().find(|r| r.role == role && r.meets).map(|r| r.gpu_hours.mean);
        let best = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.role == Role::Baseline && r.meets)
            .min_by(|a, b| a.1.gpu_hours.mean.total_cmp(&b.1.gpu_hours.mean))
            .map(|(i, r)| (i, r.gpu_hours.mean));
        let static_min = mean_of(Role::StaticMin, &rows);
        let clairvoyant = rows.iter().find(|r| r.role == Role::Clairvoyant && r.meets).map(|r| r.gpu_hours.mean);
        for (i, r) in rows.iter_mut().enumerate() {
            let g = r.gpu_hours.mean;
            r.saved_vs_static = static_min.filter(|s| *s > 0.0).map(|s| 1.0 - g / s);
            r.saved_vs_best_baseline = best.filter(|b| b.1 > 0.0).map(|b| 1.0 - g / b.1);
            r.vs_clairvoyant = clairvoyant.filter(|c| *c > 0.0).map(|c| g / c);
            r.best_baseline = best.is_some_and(|b| b.0 == i);
        }
        Scoreboard { criterion, seeds, rows, notes, static_search: None, clairvoyant: None, tuning: Vec::new(), reports }
    }

    /// The row called `name`.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }
}

fn row(criterion: &SloCriterion, e: Entry) -> Row {
    let runs: Vec<SeedRun> = e
        .runs
        .iter()
        .map(|(seed, p)| SeedRun {
            seed: *seed,
            gpu_hours: p.gpu_hours,
            verdict: criterion.judge(p.requests, within_slo(p), &p.series.hourly),
        })
        .collect();
    let results = || e.runs.iter().map(|(_, p)| p);
    let n = e.runs.len().max(1) as f64;
    Row {
        description: results().next().map(|p| p.description.clone()).unwrap_or_default(),
        gpu_hours: Spread::of(runs.iter().map(|r| r.gpu_hours)),
        attainment: Spread::of(runs.iter().map(|r| r.verdict.overall)),
        good_hour_share: Spread::of(runs.iter().filter_map(|r| r.verdict.good_hour_share)),
        worst_hour: runs.iter().filter_map(|r| r.verdict.worst_hour.map(|w| w.attainment)).reduce(f64::min),
        meets: !runs.is_empty() && runs.iter().all(|r| r.verdict.meets()),
        ttft_p99_s: results().map(|p| p.ttft.p99).fold(f64::NAN, f64::max),
        scaling_actions: results().map(|p| p.scaling_actions as f64).sum::<f64>() / n,
        mean_replicas: results().map(|p| p.mean_replicas).sum::<f64>() / n,
        peak_replicas: results().map(|p| p.peak_replicas).max().unwrap_or(0),
        runs,
        name: e.name,
        role: e.role,
        setting: e.setting,
        saved_vs_static: None,
        saved_vs_best_baseline: None,
        vs_clairvoyant: None,
        best_baseline: false,
    }
}

/// Requests within the SLO, from the hourly tallies (they count every request once, by arrival).
fn within_slo(p: &PolicyResult) -> u64 {
    p.series.hourly.iter().map(|h| h.within_slo).sum()
}

fn pct(v: f64) -> String {
    if v.is_nan() { "-".into() } else { format!("{:.2}%", v * 100.0) }
}

fn spread(s: Spread, f: impl Fn(f64) -> String, seeds: usize) -> String {
    if seeds <= 1 || s.min == s.max { f(s.mean) } else { format!("{} ({}..{})", f(s.mean), f(s.min), f(s.max)) }
}

/// The scoreboard as printed on stdout: the run's context, the table, then one line per row.
pub fn table(b: &Scoreboard) -> String {
    let mut s = String::new();
    if let Some(r) = b.reports.first() {
        let _ = writeln!(s, "workload   {} ({} requests, {:.1} h)", r.workload, r.requests, r.duration_s / 3600.0);
        let _ = writeln!(
            s,
            "replica    {}; ~{:.2} req/s within SLO; cold start {:.0} s; ${}/GPU-h",
            r.replica, r.replica_capacity_rps, r.cold_start_s, r.price_per_gpu_hour
        );
        let _ = writeln!(s, "SLO        TTFT <= {} s and TPOT <= {} ms per request", r.slo.ttft_s, r.slo.tpot_s * 1e3);
    }
    let _ = writeln!(s, "meets      {}", b.criterion);
    let seeds: Vec<String> = b.seeds.iter().map(u64::to_string).collect();
    let _ = writeln!(s, "seeds      {} (figures are means, (min..max) over the seeds; meets = on every seed)", seeds.join(", "));
    match b.rows.iter().find(|r| r.role == Role::StaticMin && r.meets) {
        Some(r) => {
            let _ = writeln!(
                s,
                "saved      GPU-hours saved against {}, the smallest static fleet meeting the SLO (vs static), and against the best baseline meeting it (vs best)",
                r.name
            );
        }
        None => {
            let _ = writeln!(
                s,
                "saved      no static fleet meeting the SLO was found: no savings against static; vs best = against the best baseline meeting the SLO"
            );
        }
    }
    let _ = writeln!(s);
    let n = b.seeds.len();
    let _ = writeln!(
        s,
        "{:<18} {:<18} {:>26} {:>9} {:>9} {:>7} {:>26} {:>12} {:>8} {:>5} {:>8} {:>8} {:>10}",
        "policy",
        "setting",
        "GPU-hours",
        "vs static",
        "vs best",
        "x clair",
        "SLO",
        "hours ok",
        "worst h",
        "meets",
        "TTFT99",
        "actions",
        "replicas"
    );
    for r in &b.rows {
        let opt_pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        let name = if r.best_baseline { format!("{} *", r.name) } else { r.name.clone() };
        let _ = writeln!(
            s,
            "{:<18} {:<18} {:>26} {:>9} {:>9} {:>7} {:>26} {:>12} {:>8} {:>5} {:>8} {:>8.0} {:>5.1}/{:<4}",
            name,
            r.setting.as_deref().unwrap_or("-"),
            spread(r.gpu_hours, |v| format!("{v:.1}"), n),
            opt_pct(r.saved_vs_static),
            opt_pct(r.saved_vs_best_baseline),
            r.vs_clairvoyant.map_or("-".to_string(), |v| format!("{v:.2}x")),
            spread(r.attainment, pct, n),
            spread(r.good_hour_share, |v| if v.is_nan() { "-".into() } else { format!("{:.1}%", v * 100.0) }, n),
            r.worst_hour.map_or("-".to_string(), pct),
            if r.meets { "yes" } else { "no" },
            report::fmt_secs(r.ttft_p99_s),
            r.scaling_actions,
            r.mean_replicas,
            r.peak_replicas,
        );
    }
    let _ = writeln!(s);
    for r in &b.rows {
        let _ = write!(s, "{:<18} {}", r.name, r.description);
        let fails: Vec<String> = r
            .runs
            .iter()
            .filter(|x| !x.verdict.meets())
            .map(|x| {
                let what: Vec<&str> = x.verdict.shortfalls.iter().map(|f| f.as_str()).collect();
                format!("seed {}: {}", x.seed, what.join(", "))
            })
            .collect();
        if !fails.is_empty() {
            let _ = write!(s, "; misses the SLO on {}", fails.join("; "));
        }
        let unjudged: usize = r.runs.iter().map(|x| x.verdict.unjudged_hours.len()).max().unwrap_or(0);
        if unjudged > 0 {
            let _ = write!(s, "; {unjudged} hour(s) not judged (too few requests)");
        }
        let _ = writeln!(s);
    }
    for note in &b.notes {
        let _ = writeln!(s, "note: {note}");
    }
    if let Some(ours) = b.rows.iter().find(|r| r.role == Role::LlmScaler) {
        let best = b.rows.iter().find(|r| r.best_baseline);
        let vs = |v: Option<f64>, what: String| match v {
            Some(v) if v >= 0.0 => format!("{:.1}% fewer GPU-hours than {what}", v * 100.0),
            Some(v) => format!("{:.1}% more GPU-hours than {what}", -v * 100.0),
            None => format!("{what}: nothing to compare with"),
        };
        let static_name =
            b.rows.iter().find(|r| r.role == Role::StaticMin && r.meets).map_or("no static fleet meets the SLO".into(), |r| r.name.clone());
        let _ = writeln!(
            s,
            "llm-scaler (untuned): {} the SLO; {}; {}; {}",
            if ours.meets { "meets" } else { "does NOT meet" },
            vs(ours.saved_vs_static, static_name),
            vs(
                ours.saved_vs_best_baseline,
                best.map_or("no baseline meets the SLO".into(), |r| format!("the best baseline meeting the SLO ({})", r.name))
            ),
            ours.vs_clairvoyant.map_or("no clairvoyant bound".into(), |v| format!("{v:.2}x the clairvoyant bound's GPU-hours")),
        );
    }
    let _ = writeln!(
        s,
        "hours ok = share of judged hours at >= {}; worst h = worst judged hour of any seed; x clair = GPU-hours / the clairvoyant bound's;\n\
         * = the best baseline meeting the SLO; replicas = mean provisioned / peak provisioned (draining pods included)",
        b.criterion.hour_target
    );
    s
}

/// The scoreboard as pretty JSON (every replay in full under `reports`).
pub fn json(b: &Scoreboard) -> serde_json::Result<String> {
    serde_json::to_string_pretty(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{criterion::HourTally, report::Series, stats::Percentiles};

    /// A replay of `gpu_hours` whose hours went as `hourly`.
    fn replay(name: &str, gpu_hours: f64, hourly: Vec<HourTally>) -> PolicyResult {
        let requests = hourly.iter().map(|h| h.requests).sum();
        let ok: u64 = hourly.iter().map(|h| h.within_slo).sum();
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
            slo_attainment: ok as f64 / requests as f64,
            ttft_misses: requests - ok,
            tpot_misses: 0,
            ttft: Percentiles::default(),
            tpot: Percentiles::default(),
            e2e: Percentiles::default(),
            scaling_actions: 3,
            mean_replicas: 2.0,
            peak_replicas: 4,
            preemptions: 0,
            savings_vs_static: None,
            dominant_signals: Default::default(),
            wall_s: 0.0,
            nodes: None,
            decider: None,
            series: Series { hourly, ..Series::default() },
        }
    }

    fn good(n: usize) -> Vec<HourTally> {
        vec![HourTally { requests: 1000, within_slo: 1000 }; n]
    }

    fn entry(name: &str, role: Role, runs: Vec<PolicyResult>) -> Entry {
        Entry { name: name.into(), role, setting: None, runs: runs.into_iter().enumerate().map(|(i, r)| (i as u64 + 1, r)).collect() }
    }

    #[test]
    fn a_policy_meets_only_if_it_meets_on_every_seed_and_savings_are_against_the_smallest_static_fleet() {
        let mut bad_peak = good(23);
        bad_peak.push(HourTally { requests: 1000, within_slo: 800 });
        let entries = vec![
            entry("static-9", Role::StaticMin, vec![replay("s", 100.0, good(24)), replay("s", 100.0, good(24))]),
            entry("static-peak", Role::StaticPeak, vec![replay("p", 200.0, good(24)), replay("p", 200.0, good(24))]),
            // Cheap but one seed has a bad peak hour: not meeting, not the best baseline.
            entry("kpa", Role::Baseline, vec![replay("k", 50.0, good(24)), replay("k", 50.0, bad_peak)]),
            entry("keda-tokens", Role::Baseline, vec![replay("t", 80.0, good(24)), replay("t", 90.0, good(24))]),
            entry("llm-scaler", Role::LlmScaler, vec![replay("l", 60.0, good(24)), replay("l", 70.0, good(24))]),
            entry("clairvoyant", Role::Clairvoyant, vec![replay("c", 50.0, good(24)), replay("c", 50.0, good(24))]),
        ];
        let b = Scoreboard::new(SloCriterion::default(), vec![1, 2], entries, Vec::new(), Vec::new());
        let kpa = b.row("kpa").unwrap();
        assert!(!kpa.meets && !kpa.best_baseline);
        assert!(kpa.runs[0].verdict.meets() && !kpa.runs[1].verdict.meets());
        assert_eq!(kpa.worst_hour, Some(0.8));
        let tokens = b.row("keda-tokens").unwrap();
        assert!(tokens.meets && tokens.best_baseline);
        assert_eq!((tokens.gpu_hours.mean, tokens.gpu_hours.min, tokens.gpu_hours.max), (85.0, 80.0, 90.0));
        let ours = b.row("llm-scaler").unwrap();
        assert!((ours.saved_vs_static.unwrap() - 0.35).abs() < 1e-12, "65 of static-9's 100");
        assert!((ours.saved_vs_best_baseline.unwrap() - (1.0 - 65.0 / 85.0)).abs() < 1e-12);
        assert!((ours.vs_clairvoyant.unwrap() - 1.3).abs() < 1e-12);
        assert!((b.row("static-peak").unwrap().saved_vs_static.unwrap() + 1.0).abs() < 1e-12, "twice static-9");
        let t = table(&b);
        assert!(t.contains("against static-9, the smallest static fleet meeting the SLO"), "{t}");
        assert!(t.contains("keda-tokens *"), "{t}");
        assert!(t.contains("misses the SLO on seed 2: worst hour"), "{t}");
    }
}
