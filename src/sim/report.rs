//! The run's report: a table for people, JSON for machines.

use std::fmt::Write as _;

use super::SimReport;

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 10.0 {
        format!("{v:.0}s")
    } else if v >= 1.0 {
        format!("{v:.2}s")
    } else {
        format!("{:.0}ms", v * 1e3)
    }
}

/// The comparison table and the run's context, as printed on stdout.
pub fn table(r: &SimReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "workload   {} ({} requests, {:.1} h)", r.workload, r.requests, r.duration_s / 3600.0);
    let _ = writeln!(
        s,
        "replica    {}; ~{:.2} req/s within SLO; cold start {:.0} s; ${}/GPU-h",
        r.replica, r.replica_capacity_rps, r.cold_start_s, r.price_per_gpu_hour
    );
    let _ = writeln!(s, "SLO        TTFT <= {} s and TPOT <= {} ms", r.slo.ttft_s, r.slo.tpot_s * 1e3);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<16} {:>10} {:>11} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8}",
        "policy", "GPU-hours", "cost $", "duty", "work", "SLO", "TTFT50", "TTFT95", "TTFT99", "TPOT99", "actions", "replicas", "saved"
    );
    for p in &r.policies {
        let saved = p.savings_vs_static.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        let _ = writeln!(
            s,
            "{:<16} {:>10.1} {:>11.0} {:>5.1}% {:>6} {:>7.2}% {:>8} {:>8} {:>8} {:>8} {:>7} {:>4.1}/{:<4} {:>8}",
            p.name,
            p.gpu_hours,
            p.cost_usd,
            p.gpu_utilization * 100.0,
            p.work_utilization.map_or("-".to_string(), |w| format!("{:.1}%", w * 100.0)),
            p.slo_attainment * 100.0,
            ms(p.ttft.p50),
            ms(p.ttft.p95),
            ms(p.ttft.p99),
            ms(p.tpot.p99),
            p.scaling_actions,
            p.mean_replicas,
            p.peak_replicas,
            saved
        );
    }
    let _ = writeln!(s);
    for p in &r.policies {
        let _ = write!(s, "{:<16} {}", p.name, p.description);
        if p.ttft_misses + p.tpot_misses > 0 {
            let _ = write!(s, "; over SLO: {} TTFT, {} TPOT", p.ttft_misses, p.tpot_misses);
        }
        if p.dropped > 0 {
            let _ = write!(s, "; {} dropped", p.dropped);
        }
        if p.preemptions > 0 {
            let _ = write!(s, "; {} preemptions", p.preemptions);
        }
        if !p.dominant_signals.is_empty() {
            let doms: Vec<String> = p.dominant_signals.iter().map(|(k, v)| format!("{k} {:.0}%", v * 100.0)).collect();
            let _ = write!(s, "; decided by {}", doms.join(", "));
        }
        let _ = writeln!(s, " [{:.1} s]", p.wall_s);
    }
    let _ = writeln!(
        s,
        "duty = GPU busy time / provisioned GPU time (DCGM's duty cycle); work = requests / (replica-seconds x capacity at SLO);\n\
         replicas = mean provisioned / peak provisioned (draining pods included); simulated in {:.1} s",
        r.wall_s
    );
    s
}

/// The report as pretty JSON.
pub fn json(r: &SimReport) -> serde_json::Result<String> {
    serde_json::to_string_pretty(r)
}
