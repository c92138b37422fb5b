//! The seeds a scoreboard runs on: seed `s` draws its own arrivals, lengths, routing and
//! cold-start jitter (`--seed`, `--seed`+1, ...), so a policy that meets the SLO by luck on one
//! draw does not meet it on all. [`Trials`] runs replays on any of them, a few threads at a time.

use crate::sim::{
    config::SimConfig,
    criterion::{SloCriterion, Verdict},
    lineup::Policy,
    pool::{self, Job},
    report::PolicyResult,
    workload::Workload,
};

/// One seed's world: the cluster and the arrivals, both drawn from `seed`.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The seed.
    pub seed: u64,
    /// The cluster (its seed drives routing and jitter).
    pub cfg: SimConfig,
    /// The arrivals (its seed drives arrival times and lengths; a trace's times are fixed).
    pub workload: Workload,
}

/// A policy to replay on one seed, with the Ready replicas it starts with when it is not the
/// cluster's default (`None`).
#[derive(Debug, Clone)]
pub struct Trial {
    /// Index into [`Trials::seeds`].
    pub seed: usize,
    /// The policy.
    pub policy: Policy,
    /// Replicas Ready at t = 0 (the clairvoyant bound starts with what its schedule asks for).
    pub initial: Option<u32>,
}

/// Replays on a set of seeds, judged by one criterion.
#[derive(Debug, Clone)]
pub struct Trials {
    /// The seeds, first one first.
    pub seeds: Vec<Seed>,
    /// What meets the SLO.
    pub criterion: SloCriterion,
    /// Replays run at once.
    pub threads: usize,
}

impl Trials {
    /// `count` seeds from `cfg.seed` on (at least one): `cfg` and `workload` with their seed set.
    pub fn new(cfg: &SimConfig, workload: &Workload, count: u32, criterion: SloCriterion, threads: usize) -> Self {
        let seeds = (0..u64::from(count.max(1)))
            .map(|i| {
                let seed = cfg.seed.wrapping_add(i);
                let mut workload = workload.clone();
                workload.seed = seed;
                Seed { seed, cfg: SimConfig { seed, ..cfg.clone() }, workload }
            })
            .collect();
        Trials { seeds, criterion, threads: threads.max(1) }
    }

    /// The same trials on another part of the workload (`from..to` seconds of the source).
    pub fn on_part(&self, from_s: f64, to_s: f64) -> Self {
        let mut t = self.clone();
        for s in &mut t.seeds {
            s.workload.from_s = from_s;
            s.workload.to_s = to_s;
        }
        t
    }

    /// Only the first seed (tuning and searches start there).
    pub fn first_only(&self) -> Self {
        Trials { seeds: self.seeds.iter().take(1).cloned().collect(), ..self.clone() }
    }

    /// Indices of every seed.
    pub fn all(&self) -> std::ops::Range<usize> {
        0..self.seeds.len()
    }

    /// Runs the trials, `threads` at a time; results in trial order. The routing stream is the
    /// same for every policy on a seed, so two policies differ by what they do, not by their draw.
    pub fn run(&self, trials: &[Trial]) -> Vec<PolicyResult> {
        let cfgs: Vec<SimConfig> = trials
            .iter()
            .map(|t| {
                let base = &self.seeds[t.seed].cfg;
                SimConfig { initial_replicas: t.initial.or(base.initial_replicas), ..base.clone() }
            })
            .collect();
        let jobs: Vec<Job<'_>> = trials
            .iter()
            .zip(&cfgs)
            .map(|(t, cfg)| Job { cfg, workload: &self.seeds[t.seed].workload, policy: &t.policy, index: 0 })
            .collect();
        pool::run_jobs(&jobs, self.threads, &|_, _| {})
    }

    /// `policy` on every seed.
    pub fn run_everywhere(&self, policy: &Policy) -> Vec<PolicyResult> {
        let trials: Vec<Trial> = self.all().map(|seed| Trial { seed, policy: policy.clone(), initial: None }).collect();
        self.run(&trials)
    }

    /// Whether a replay meets the criterion.
    pub fn meets(&self, r: &PolicyResult) -> bool {
        self.verdict(r).meets()
    }

    /// A replay judged by the criterion.
    pub fn verdict(&self, r: &PolicyResult) -> Verdict {
        let within: u64 = r.series.hourly.iter().map(|h| h.within_slo).sum();
        self.criterion.judge(r.requests, within, &r.series.hourly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::workload::RateCurve;

    #[test]
    fn each_seed_draws_its_own_arrivals_and_routing_from_consecutive_seeds() {
        let curve = RateCurve::synthetic("step:5:5:0", 600.0, 10.0).unwrap();
        let w = Workload::servegen("flat", curve, 0);
        let cfg = SimConfig { seed: 7, ..SimConfig::default() };
        let t = Trials::new(&cfg, &w, 3, SloCriterion::default(), 1);
        let seeds: Vec<(u64, u64, u64)> = t.seeds.iter().map(|s| (s.seed, s.cfg.seed, s.workload.seed)).collect();
        assert_eq!(seeds, vec![(7, 7, 7), (8, 8, 8), (9, 9, 9)]);
        let first = |i: usize| t.seeds[i].workload.arrivals().take(50).collect::<Vec<_>>();
        assert_ne!(first(0), first(1));
        assert_eq!(first(0), first(0), "a seed is reproducible");
        assert_eq!(Trials::new(&cfg, &w, 0, SloCriterion::default(), 1).seeds.len(), 1, "at least one seed");
    }
}
