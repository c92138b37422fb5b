//! The batch report: each policy over the seeds (mean, and the spread as min-max), as a table,
//! CSV and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::sim::batch::world::{BatchConfig, RunResult};

/// Mean, min and max of one figure over the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Over `v` (NaN when empty).
    pub fn of(v: &[f64]) -> Self {
        if v.is_empty() {
            return Spread { mean: f64::NAN, min: f64::NAN, max: f64::NAN };
        }
        Spread {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    fn show(&self, digits: usize) -> String {
        if self.mean.is_nan() {
            return "-".into();
        }
        if (self.max - self.min).abs() < 0.5 * 10f64.powi(-(digits as i32)) {
            return format!("{:.digits$}", self.mean);
        }
        format!("{:.digits$} ({:.digits$}-{:.digits$})", self.mean, self.min, self.max)
    }
}

/// One policy over every seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySummary {
    /// The policy.
    pub policy: String,
    /// Seeds run.
    pub seeds: usize,
    /// Seeds on which everything was done by the horizon.
    pub seeds_done: usize,
    /// Hours from t = 0 to the back-fill's last item, over the seeds that finished it.
    pub backfill_h: Spread,
    /// Worst hours from a drop to its last item, over the seeds and drops that finished.
    pub worst_drop_h: Option<Spread>,
    /// GPU-hours.
    pub gpu_hours: Spread,
    /// Dollars.
    pub cost_usd: Spread,
    /// GPU-hours without an item in hand.
    pub idle_gpu_hours: Spread,
    /// Item-hours of work lost to preemptions (abandoned, not checkpointed).
    pub lost_item_h: Spread,
    /// Item-hours spent on items another worker had done (an entry claimed while its first
    /// worker was still at it: items longer than the claim timeout).
    pub duplicated_item_h: Spread,
    /// Items started more than once.
    pub items_redone: Spread,
    /// Most Jobs at once.
    pub peak_jobs: Spread,
    /// Jobs created.
    pub jobs_created: Spread,
}

/// Summarises `runs` (several seeds of each policy) in policy order.
pub fn summarise(runs: &[RunResult]) -> Vec<PolicySummary> {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        if !names.contains(&r.policy.as_str()) {
            names.push(&r.policy);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let of: Vec<&RunResult> = runs.iter().filter(|r| r.policy == name).collect();
            let f = |g: &dyn Fn(&RunResult) -> f64| Spread::of(&of.iter().map(|r| g(r)).collect::<Vec<_>>());
            let backfill: Vec<f64> = of.iter().filter_map(|r| r.completion_s.first().copied().flatten()).map(|s| s / 3600.0).collect();
            let drops: Vec<f64> = of
                .iter()
                .filter(|r| r.completion_s.len() > 1)
                .filter_map(|r| r.completion_s[1..].iter().try_fold(0.0f64, |w, c| c.map(|c| w.max(c / 3600.0))))
                .collect();
            PolicySummary {
                policy: name.to_string(),
                seeds: of.len(),
                seeds_done: of.iter().filter(|r| r.items_done == r.items).count(),
                backfill_h: Spread::of(&backfill),
                worst_drop_h: of.iter().any(|r| r.completion_s.len() > 1).then(|| Spread::of(&drops)),
                gpu_hours: f(&|r| r.gpu_hours),
                cost_usd: f(&|r| r.cost_usd),
                idle_gpu_hours: f(&|r| r.idle_gpu_hours),
                lost_item_h: f(&|r| r.work_lost_s / 3600.0),
                duplicated_item_h: f(&|r| r.work_duplicated_s / 3600.0),
                items_redone: f(&|r| r.items_redone as f64),
                peak_jobs: f(&|r| r.peak_jobs as f64),
                jobs_created: f(&|r| r.jobs_created as f64),
            }
        })
        .collect()
}

/// The table `simulate-batch` prints.
pub fn table(cfg: &BatchConfig, summaries: &[PolicySummary]) -> String {
    let mut out = String::new();
    let drops = cfg.drops.map_or(String::new(), |d| format!(", then {} items every {:.0} h x {}", d.items, d.every_s / 3600.0, d.count));
    let _ = writeln!(
        out,
        "{} items at t=0{drops}; {:.0} tokens/s per Job of {} GPU(s); node {:.0} s + pull {:.0} s + load {:.0} s; \
         {} preemptions per pod-hour, {:.0} s notice{}; Spot ${:.2}, on-demand ${:.2} per GPU-hour; maxReplicaCount {}, \
         --max-items {}, claim timeout {:.0} s, idle exit {:.0} s",
        cfg.backfill_items,
        cfg.job_tokens_per_s,
        cfg.gpus_per_job,
        cfg.provisioning_s,
        cfg.image_pull_s,
        cfg.model_load_s,
        cfg.preemptions_per_hour,
        cfg.notice_s,
        if cfg.checkpoint { ", checkpointing" } else { "" },
        cfg.spot_price,
        cfg.on_demand_price,
        cfg.max_replicas,
        cfg.max_items,
        cfg.claim_timeout_s,
        cfg.idle_exit_s,
    );
    let _ = writeln!(out, "mean (min-max) over the seeds; completion over the seeds that finished\n");
    let with_drops = summaries.iter().any(|s| s.worst_drop_h.is_some());
    let mut head = vec!["policy", "done", "back-fill h"];
    if with_drops {
        head.push("worst drop h");
    }
    head.extend(["GPU-h", "cost $", "idle GPU-h", "lost item-h", "dup item-h", "redone", "peak Jobs", "Jobs"]);
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            let mut row = vec![s.policy.clone(), format!("{}/{}", s.seeds_done, s.seeds), s.backfill_h.show(2)];
            if with_drops {
                row.push(s.worst_drop_h.map_or("-".into(), |d| d.show(2)));
            }
            row.extend([
                s.gpu_hours.show(1),
                s.cost_usd.show(0),
                s.idle_gpu_hours.show(1),
                s.lost_item_h.show(2),
                s.duplicated_item_h.show(2),
                s.items_redone.show(0),
                s.peak_jobs.show(0),
                s.jobs_created.show(0),
            ]);
            row
        })
        .collect();
    let widths: Vec<usize> =
        (0..head.len()).map(|i| rows.iter().map(|r| r[i].len()).chain(std::iter::once(head[i].len())).max().unwrap_or(0)).collect();
    let line = |cells: Vec<String>| {
        let c: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, s)| if i == 0 { format!("{s:<w$}", w = widths[i]) } else { format!("{s:>w$}", w = widths[i]) })
            .collect();
        format!("| {} |\n", c.join(" | "))
    };
    out.push_str(&line(head.iter().map(|s| s.to_string()).collect()));
    out.push_str(&format!(
        "|{}|\n",
        widths
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { "-".repeat(w + 2) } else { format!("{}:", "-".repeat(w + 1)) })
            .collect::<Vec<_>>()
            .join("|")
    ));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// Every run, one line each.
pub fn csv(runs: &[RunResult]) -> String {
    let mut out = String::from(
        "policy,seed,items,items_done,completions,backfill_s,worst_drop_s,gpu_hours,idle_gpu_hours,price,cost_usd,work_lost_s,work_duplicated_s,items_redone,preemptions,peak_jobs,jobs_created,end_s\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
    for r in runs {
        let drops = if r.completion_s.len() > 1 { r.completion_s[1..].iter().try_fold(0.0f64, |w, c| c.map(|c| w.max(c))) } else { None };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.4},{:.4},{},{:.4},{:.1},{:.1},{},{},{},{},{:.1}",
            r.policy,
            r.seed,
            r.items,
            r.items_done,
            r.completions,
            opt(r.completion_s.first().copied().flatten()),
            opt(drops),
            r.gpu_hours,
            r.idle_gpu_hours,
            r.price,
            r.cost_usd,
            r.work_lost_s,
            r.work_duplicated_s,
            r.items_redone,
            r.preemptions,
            r.peak_jobs,
            r.jobs_created,
            r.end_s
        );
    }
    out
}

/// The JSON report: the world, the summaries, every run.
pub fn json(cfg: &BatchConfig, summaries: &[PolicySummary], runs: &[RunResult]) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Report<'a> {
        config: &'a BatchConfig,
        policies: &'a [PolicySummary],
        runs: &'a [RunResult],
    }
    serde_json::to_string_pretty(&Report { config: cfg, policies: summaries, runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_mean_and_range_and_a_constant_shows_once() {
        let s = Spread::of(&[1.0, 2.0, 6.0]);
        assert_eq!((s.mean, s.min, s.max), (3.0, 1.0, 6.0));
        assert_eq!(s.show(1), "3.0 (1.0-6.0)");
        assert_eq!(Spread::of(&[2.0, 2.0]).show(1), "2.0");
        assert_eq!(Spread::of(&[]).show(1), "-");
    }
}
