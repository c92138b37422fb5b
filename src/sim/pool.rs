//! Policies over workloads, a few threads at a time: [`run`] replays every policy on the same
//! arrivals and makes the run's report; [`run_jobs`] runs any set of (cluster, workload, policy)
//! replays, which the scoreboard's seeds, searches and sweeps are made of.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use crate::sim::{
    config::SimConfig,
    lineup::{Policy, PolicyKind},
    replay::{Progress, run_policy},
    report::{PolicyResult, SimReport},
    workload::Workload,
};

/// One replay to run.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    /// The cluster (its seed drives routing and jitter).
    pub cfg: &'a SimConfig,
    /// The arrivals (its seed drives arrivals and lengths).
    pub workload: &'a Workload,
    /// The policy.
    pub policy: &'a Policy,
    /// Index of the policy's own routing stream (see [`run_policy`]).
    pub index: usize,
}

/// Runs every job, `threads` at a time; results in job order. `progress` gets the job's position.
pub fn run_jobs(jobs: &[Job<'_>], threads: usize, progress: Progress<'_>) -> Vec<PolicyResult> {
    let results: Mutex<Vec<Option<PolicyResult>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(jobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(j) = jobs.get(i) else { break };
                    let report = |_: usize, t: f64| progress(i, t);
                    let r = run_policy(j.cfg, j.workload, j.policy, j.index, &report);
                    if let Ok(mut v) = results.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default().into_iter().flatten().collect()
}

/// Runs every policy on the same arrivals, `threads` at a time.
pub fn run(cfg: &SimConfig, workload: &Workload, policies: &[Policy], threads: usize, progress: Progress<'_>) -> SimReport {
    let started = Instant::now();
    let jobs: Vec<Job<'_>> = policies.iter().enumerate().map(|(index, policy)| Job { cfg, workload, policy, index }).collect();
    let mut results = run_jobs(&jobs, threads, progress);
    let static_gpuh = policies.iter().zip(&results).find(|(p, _)| matches!(p.kind, PolicyKind::Static { .. })).map(|(_, r)| r.gpu_hours);
    if let Some(s) = static_gpuh.filter(|s| *s > 0.0) {
        for r in &mut results {
            r.savings_vs_static = Some(1.0 - r.gpu_hours / s);
        }
    }
    report(cfg, workload, results, started.elapsed().as_secs_f64())
}

/// The report of `results`, replays of `workload` on `cfg`.
pub fn report(cfg: &SimConfig, workload: &Workload, results: Vec<PolicyResult>, wall_s: f64) -> SimReport {
    let requests = results.first().map_or(0, |r| r.requests);
    SimReport {
        workload: workload.to_string(),
        duration_s: workload.duration_s(),
        requests,
        replica: format!("{} on {} x {} (vLLM, TP{})", cfg.profile.model, cfg.profile.tp, cfg.profile.gpu, cfg.profile.tp),
        gpus_per_replica: cfg.profile.tp,
        price_per_gpu_hour: cfg.price_per_gpu_hour,
        slo: cfg.slo,
        replica_capacity_rps: cfg.replica_capacity_rps,
        cold_start_s: cfg.cold_start_s,
        nodes: cfg.nodes,
        policies: results,
        wall_s,
    }
}
