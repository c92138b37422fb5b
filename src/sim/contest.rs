//! Everything `simulate` runs for its scoreboard, in order: the searches (the smallest static
//! fleet meeting the SLO), then every policy of the line-up on every seed, then the scoreboard.

use std::time::Instant;

use crate::{
    decide::forecast::ErrorSummary,
    sim::{
        clairvoyant,
        lineup::{Policy, PolicyKind},
        pool,
        report::{DeciderTrace, PolicyResult, SimReport},
        scoreboard::{Entry, Role, Scoreboard},
        search::smallest_static,
        seeds::{Trial, Trials},
    },
};

/// One policy of the line-up, as it will appear on the scoreboard.
#[derive(Debug, Clone)]
pub struct Contender {
    /// The policy.
    pub policy: Policy,
    /// Its role.
    pub role: Role,
    /// The setting it runs with, shown in the table.
    pub setting: Option<String>,
}

impl Contender {
    /// A line-up policy with the role its kind implies (the static fleet in the line-up is the
    /// peak-sized reference).
    pub fn of(policy: Policy) -> Self {
        let role = match &policy.kind {
            PolicyKind::Static { .. } => Role::StaticPeak,
            PolicyKind::LlmScaler { .. } if policy.name == "llm-scaler" => Role::LlmScaler,
            PolicyKind::LlmScaler { .. } => Role::Variant,
            _ => Role::Baseline,
        };
        let setting = policy.setting();
        let policy = match (&policy.kind, role) {
            (PolicyKind::Static { .. }, Role::StaticPeak) => Policy { name: "static-peak".into(), ..policy },
            _ => policy,
        };
        Contender { policy, role, setting }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The line-up, in table order.
    pub lineup: Vec<Contender>,
    /// Search the smallest static fleet meeting the SLO over `1..=max` (`None`: no search).
    pub static_search: Option<u32>,
    /// Search the clairvoyant bound.
    pub clairvoyant: bool,
}

/// Stage messages (for a progress line).
pub type Status<'a> = &'a (dyn Fn(&str) + Sync);

/// Runs the plan on `trials` and makes the scoreboard.
pub fn run(plan: &Plan, trials: &Trials, status: Status<'_>) -> Scoreboard {
    let started = Instant::now();
    let mut notes = Vec::new();
    // The searches are chains of one replay after another: each runs on a thread of its own,
    // beside the line-up when threads are left for it, else before it.
    let searches = usize::from(plan.static_search.is_some()) + usize::from(plan.clairvoyant);
    let solo = Trials { threads: 1, ..trials.clone() };
    let beside = trials.threads.saturating_sub(searches);
    let static_search = || {
        plan.static_search.map(|max| {
            status(&format!("bisecting the smallest static fleet meeting the SLO (1..={max})"));
            smallest_static(&solo, max)
        })
    };
    let clairvoyant_search = || {
        plan.clairvoyant.then(|| {
            status("bisecting the clairvoyant bound's factor");
            clairvoyant::search(&solo)
        })
    };
    let lineup = |threads: usize| {
        status(&format!("{} policies x {} seeds", plan.lineup.len(), trials.seeds.len()));
        lineup_runs(&plan.lineup, &Trials { threads: threads.max(1), ..trials.clone() })
    };
    let (search, bound, runs) = if trials.threads >= 2 {
        std::thread::scope(|sc| {
            let st = sc.spawn(static_search);
            let cl = sc.spawn(clairvoyant_search);
            let early = (beside > 0).then(|| lineup(beside));
            let (search, bound) = (st.join().ok().flatten(), cl.join().ok().flatten());
            let runs = early.unwrap_or_else(|| lineup(trials.threads));
            (search, bound, runs)
        })
    } else {
        (static_search(), clairvoyant_search(), lineup(1))
    };
    let mut entries: Vec<Entry> = Vec::new();
    if let Some(s) = &search {
        notes.push(s.note());
        if let Some(n) = s.size {
            entries.push(Entry {
                name: format!("static-{n}"),
                role: Role::StaticMin,
                setting: Some(format!("{n} replicas (bisected)")),
                runs: zip_seeds(trials, s.results.clone()),
            });
        }
    }
    for (c, r) in plan.lineup.iter().zip(runs) {
        entries.push(Entry { name: c.policy.name.clone(), role: c.role, setting: c.setting.clone(), runs: zip_seeds(trials, r) });
    }
    if let Some(c) = &bound {
        notes.push(c.note());
        if let Some(k) = c.factor {
            entries.push(Entry {
                name: "clairvoyant".into(),
                role: Role::Clairvoyant,
                setting: Some(format!("k = {k:.3} (bisected)")),
                runs: zip_seeds(trials, c.results.clone()),
            });
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let reports: Vec<SimReport> = trials
        .seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let results = entries.iter().filter_map(|e| e.runs.get(i).map(|(_, r)| named(r, &e.name))).collect();
            pool::report(&s.cfg, &s.workload, results, wall)
        })
        .collect();
    let seeds = trials.seeds.iter().map(|s| s.seed).collect();
    notes.extend(forecast_notes(&reports));
    let mut board = Scoreboard::new(trials.criterion, seeds, entries, notes, reports);
    board.static_search = search;
    board.clairvoyant = bound;
    board
}

/// For each forecasting llm-scaler row: the error at the horizon of the forecast it used and of
/// each model, over the replay (means over the seeds), and how often its floor bound.
fn forecast_notes(reports: &[SimReport]) -> Vec<String> {
    let Some(first) = reports.first() else { return Vec::new() };
    let mut notes = Vec::new();
    for (i, p) in first.policies.iter().enumerate() {
        let traces: Vec<&DeciderTrace> = reports.iter().filter_map(|r| r.policies.get(i)?.decider.as_ref()).collect();
        if traces.iter().all(|t| t.forecast_errors.is_empty()) {
            continue;
        }
        let mean = |v: Vec<Option<f64>>| {
            let v: Vec<f64> = v.into_iter().flatten().collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1} %", v * 100.0));
        let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let used = |f: fn(&ErrorSummary) -> Option<f64>| mean(traces.iter().map(|t| t.chosen_errors.as_ref().and_then(f)).collect());
        let mut parts = vec![format!("used sMAPE {} MASE {}", pct(used(|e| e.smape)), num(used(|e| e.mase)))];
        for (k, m) in traces[0].forecast_errors.iter().enumerate() {
            let of = |f: fn(&ErrorSummary) -> Option<f64>| {
                mean(traces.iter().map(|t| t.forecast_errors.get(k).and_then(|e| f(&e.since_start))).collect())
            };
            parts.push(format!("{} {} / {}", m.model, pct(of(|e| e.smape)), num(of(|e| e.mase))));
        }
        let minutes: usize = traces.iter().map(|t| t.minutes.len()).sum();
        let bound: usize = traces.iter().map(|t| t.minutes.iter().filter(|m| m.bound).count()).sum();
        let forecasting: usize = traces.iter().map(|t| t.minutes.iter().filter(|m| m.floor.is_some()).count()).sum();
        notes.push(format!(
            "{}: forecast error at the horizon over the replay (sMAPE / MASE, mean of seeds): {}; a forecast in {:.1} % of \
             minutes, its floor bound in {:.1} %",
            p.name,
            parts.join("; "),
            100.0 * forecasting as f64 / minutes.max(1) as f64,
            100.0 * bound as f64 / minutes.max(1) as f64
        ));
    }
    notes
}

/// Every contender on every seed, in one batch of replays; per contender, results in seed order.
fn lineup_runs(lineup: &[Contender], trials: &Trials) -> Vec<Vec<PolicyResult>> {
    let batch: Vec<Trial> =
        lineup.iter().flat_map(|c| trials.all().map(move |seed| Trial { seed, policy: c.policy.clone(), initial: None })).collect();
    let mut results = trials.run(&batch).into_iter();
    lineup.iter().map(|_| results.by_ref().take(trials.seeds.len()).collect()).collect()
}

fn zip_seeds(trials: &Trials, results: Vec<PolicyResult>) -> Vec<(u64, PolicyResult)> {
    trials.seeds.iter().map(|s| s.seed).zip(results).collect()
}

fn named(r: &PolicyResult, name: &str) -> PolicyResult {
    PolicyResult { name: name.to_string(), ..r.clone() }
}
