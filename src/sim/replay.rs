//! One policy over the workload, in virtual time: each second the arrivals are routed, the fleet
//! advances, and the policy's driver does what is due; a tail after the workload lets the fleet
//! finish its work, and what is still held then is dropped.

use std::{iter::Peekable, time::Instant};

use crate::sim::{
    accounting::Ledger,
    config::SimConfig,
    driver::Driver,
    fleet::Fleet,
    lineup::{Policy, PolicyKind},
    report::{NodeHours, PolicyResult},
    scrape::Scraper,
    stats::Percentiles,
    workload::{Arrivals, Workload},
};

/// Progress hook: `(policy index, virtual seconds done)`.
pub type Progress<'a> = &'a (dyn Fn(usize, f64) + Sync);

/// The simulator's step, seconds.
const DT: f64 = 1.0;
/// How long the replay goes on after the workload's end for the fleet to finish, seconds.
const TAIL_S: f64 = 900.0;
/// How often progress is reported, virtual seconds.
const PROGRESS_EVERY_S: f64 = 3600.0;

/// Runs one policy over the workload.
pub fn run_policy(cfg: &SimConfig, workload: &Workload, policy: &Policy, index: usize, progress: Progress<'_>) -> PolicyResult {
    let started = Instant::now();
    let mut replay = Replay::new(cfg, workload, policy, index);
    let mut arrivals = workload.arrivals().peekable();
    let end = replay.duration + TAIL_S;
    let mut t = 0.0;
    let mut last_report = 0.0;
    while t < end {
        t = replay.step(t + DT, &mut arrivals);
        if t - last_report >= PROGRESS_EVERY_S {
            last_report = t;
            progress(index, t.min(replay.duration));
        }
        if t >= replay.duration && arrivals.peek().is_none() && replay.fleet.idle() {
            break;
        }
    }
    replay.drop_held(t);
    progress(index, replay.duration);
    replay.result(policy, started)
}

/// One policy's replay in progress.
struct Replay<'c> {
    cfg: &'c SimConfig,
    /// The workload's length, seconds.
    duration: f64,
    fleet: Fleet<'c>,
    driver: Driver,
    scraper: Scraper,
    ledger: Ledger,
}

impl<'c> Replay<'c> {
    fn new(cfg: &'c SimConfig, workload: &Workload, policy: &Policy, index: usize) -> Self {
        let duration = workload.duration_s();
        let step = cfg.series_step_s.unwrap_or_else(|| (duration / 600.0).max(1.0).ceil());
        let initial = match &policy.kind {
            PolicyKind::Static { replicas } => *replicas,
            _ => cfg.initial_replicas.unwrap_or(cfg.min_replicas),
        };
        // Each policy routes and jitters with its own stream.
        let seed = cfg.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Replay {
            cfg,
            duration,
            fleet: Fleet::with_ready(cfg, seed, initial),
            driver: Driver::new(&policy.kind, cfg, DT, workload),
            scraper: Scraper::default(),
            ledger: Ledger::new(duration, step, cfg.hour_s, cfg.slo),
        }
    }

    /// Routes the arrivals before `t`, advances the fleet to `t`, counts its size and lets the
    /// driver act; returns `t`.
    fn step(&mut self, t: f64, arrivals: &mut Peekable<Arrivals>) -> f64 {
        let ledger = &mut self.ledger;
        while let Some(r) = arrivals.next_if(|r| r.arrival_s < t) {
            ledger.arrived(&r);
            self.fleet.route(r, &mut |d| ledger.done(d));
        }
        self.fleet.tick(t, DT, self.duration, &mut |d| ledger.done(d));
        if t <= self.duration + 1e-9 {
            ledger.fleet(t, DT, self.fleet.provisioned(), self.fleet.ready());
        }
        self.driver.step(t, &mut self.fleet, &mut self.scraper, t <= self.duration, self.cfg);
        t
    }

    /// Whatever is still held at the end of the tail is dropped.
    fn drop_held(&mut self, t: f64) {
        let ledger = &mut self.ledger;
        self.fleet.abort_all(t, &mut |d| ledger.done(d));
    }

    fn result(self, policy: &Policy, started: Instant) -> PolicyResult {
        let (cfg, duration, fleet, ledger) = (self.cfg, self.duration, &self.fleet, &self.ledger);
        let gpu_seconds = fleet.gpu_seconds();
        // With a node pool the bill is whole nodes; GPU-hours stay the replicas' own.
        let nodes =
            fleet.node_gpu_seconds().zip(fleet.peak_nodes()).map(|(s, peak_nodes)| NodeHours { node_gpu_hours: s / 3600.0, peak_nodes });
        let billed_seconds = nodes.map_or(gpu_seconds, |n| n.node_gpu_hours * 3600.0);
        let replica_seconds = gpu_seconds / f64::from(cfg.profile.tp);
        let tally = &ledger.tally;
        let dominant = self.driver.dominant_signals();
        let total_dom: u64 = dominant.values().sum();
        PolicyResult {
            name: policy.name.clone(),
            description: policy.describe(),
            gpu_hours: gpu_seconds / 3600.0,
            cost_usd: billed_seconds / 3600.0 * cfg.price_per_gpu_hour,
            gpu_utilization: if gpu_seconds > 0.0 { fleet.busy_seconds() / gpu_seconds } else { 0.0 },
            work_utilization: (cfg.replica_capacity_rps > 0.0 && gpu_seconds > 0.0)
                .then(|| ledger.requests as f64 / (replica_seconds * cfg.replica_capacity_rps)),
            requests: ledger.requests,
            completed: tally.completed,
            dropped: tally.dropped,
            slo_attainment: tally.attainment(ledger.requests),
            ttft_misses: tally.ttft_miss,
            tpot_misses: tally.tpot_miss,
            ttft: Percentiles::of(&tally.ttft),
            tpot: Percentiles::of(&tally.tpot),
            e2e: Percentiles::of(&tally.e2e),
            scaling_actions: fleet.actions(),
            mean_replicas: if duration > 0.0 { replica_seconds / duration } else { 0.0 },
            peak_replicas: fleet.peak(),
            preemptions: fleet.preemptions(),
            savings_vs_static: None,
            dominant_signals: dominant.into_iter().map(|(k, v)| (k, v as f64 / total_dom.max(1) as f64)).collect(),
            wall_s: started.elapsed().as_secs_f64(),
            series: ledger.series(duration),
            decider: self.driver.decider_trace(),
            nodes,
        }
    }
}
