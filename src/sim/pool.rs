//! Every policy on the same arrivals, a few threads at a time, and the run's report.

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

/// Runs every policy on the same arrivals, `threads` at a time.
pub fn run(cfg: &SimConfig, workload: &Workload, policies: &[Policy], threads: usize, progress: Progress<'_>) -> SimReport {
    let started = Instant::now();
    let results: Mutex<Vec<Option<PolicyResult>>> = Mutex::new(vec![None; policies.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(policies.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(p) = policies.get(i) else { break };
                    let r = run_policy(cfg, workload, p, i, progress);
                    if let Ok(mut v) = results.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    let mut results: Vec<PolicyResult> = results.into_inner().unwrap_or_default().into_iter().flatten().collect();
    let static_gpuh = policies.iter().zip(&results).find(|(p, _)| matches!(p.kind, PolicyKind::Static { .. })).map(|(_, r)| r.gpu_hours);
    if let Some(s) = static_gpuh.filter(|s| *s > 0.0) {
        for r in &mut results {
            r.savings_vs_static = Some(1.0 - r.gpu_hours / s);
        }
    }
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
        wall_s: started.elapsed().as_secs_f64(),
    }
}
