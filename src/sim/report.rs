//! The run's report: what each policy came to (its figures and time series), as a table for
//! people and JSON for machines.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    decide::{
        forecast::{ErrorSummary, ModelError},
        policy::Signal,
    },
    sim::{
        config::{NodePool, Slo},
        criterion::HourTally,
        stats::Percentiles,
    },
};

/// Time series of one policy, one point per `step_s`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Series {
    /// Seconds per point.
    pub step_s: f64,
    /// Mean replicas provisioned (starting, Ready or draining).
    pub replicas: Vec<f64>,
    /// Mean Ready replicas.
    pub ready: Vec<f64>,
    /// Arrivals per second.
    pub arrivals_rps: Vec<f64>,
    /// p99 TTFT of the requests that arrived in the step, seconds.
    pub ttft_p99_s: Vec<Option<f64>>,
    /// Share of the step's requests within the SLO.
    pub slo: Vec<Option<f64>>,
    /// Requests and requests within the SLO per wall hour, by arrival (the strict criterion's
    /// input, independent of `step_s`).
    pub hourly: Vec<HourTally>,
}

/// One policy's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    /// Short name.
    pub name: String,
    /// What the policy is.
    pub description: String,
    /// GPU-hours provisioned over the replay (cold starts and drains included).
    pub gpu_hours: f64,
    /// `gpu_hours x price`.
    pub cost_usd: f64,
    /// Busy time / provisioned time of the GPUs (a batch was running): the duty cycle, which
    /// stays near 100 % at any load under continuous batching.
    pub gpu_utilization: f64,
    /// Work done / capacity provisioned: requests served per replica-second divided by the
    /// replica's capacity within the SLO (`replica_capacity_rps`); `None` when it is unknown.
    pub work_utilization: Option<f64>,
    /// Requests that arrived.
    pub requests: u64,
    /// Requests completed.
    pub completed: u64,
    /// Requests dropped (never admitted, or aborted after a drain's grace period).
    pub dropped: u64,
    /// Share of all requests within TTFT and TPOT SLO.
    pub slo_attainment: f64,
    /// Completed requests over the TTFT SLO.
    pub ttft_misses: u64,
    /// Completed requests over the TPOT SLO.
    pub tpot_misses: u64,
    /// TTFT percentiles, seconds.
    pub ttft: Percentiles,
    /// TPOT percentiles, seconds.
    pub tpot: Percentiles,
    /// End-to-end latency percentiles, seconds.
    pub e2e: Percentiles,
    /// Times the replica target changed.
    pub scaling_actions: u64,
    /// Time-averaged provisioned replicas.
    pub mean_replicas: f64,
    /// Most replicas provisioned at once.
    pub peak_replicas: u32,
    /// KV-cache preemptions.
    pub preemptions: u64,
    /// `1 - gpu_hours / static gpu_hours`, when a static policy ran.
    pub savings_vs_static: Option<f64>,
    /// For llm-scaler: share of decisions each signal dominated.
    pub dominant_signals: BTreeMap<String, f64>,
    /// Wall-clock seconds this policy's simulation took.
    pub wall_s: f64,
    /// Time series.
    pub series: Series,
    /// With replicas packed on GPU nodes: GPU-hours of the whole nodes held (what is billed;
    /// `cost_usd` is then these times the price), and the most nodes held at once.
    pub nodes: Option<NodeHours>,
    /// For llm-scaler: what its decider said minute by minute, and its forecast errors.
    pub decider: Option<DeciderTrace>,
}

/// llm-scaler's decider over a replay, read at the first decision of every minute.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeciderTrace {
    /// One entry per minute with a decision.
    pub minutes: Vec<DeciderMinute>,
    /// Each forecasting model's error at the horizon over the replay (empty when not forecasting).
    pub forecast_errors: Vec<ModelError>,
    /// The error of the forecast used (each minute the chosen model's) over the replay.
    pub chosen_errors: Option<ErrorSummary>,
    /// How far ahead the last minute's `forecast` was (cold start + buffer, at most the
    /// horizon; each minute carries its own).
    pub lead_s: u64,
}

/// One minute of a [`DeciderTrace`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeciderMinute {
    /// Replay time, seconds.
    pub t: f64,
    /// Replicas decided.
    pub desired: u32,
    /// The fleet's token rate the decider read (tokens/s), when every Ready pod reported it.
    pub demand: Option<f64>,
    /// The learned tokens/s capacity (`auto`).
    pub capacity: Option<f64>,
    /// The forecast's point at the floor's lead, tokens/s.
    pub forecast: Option<f64>,
    /// That lead, seconds (the measured cold start + buffer, at most the horizon).
    pub lead_s: Option<u64>,
    /// The upper bound's peak to the lead, tokens/s.
    pub upper: Option<f64>,
    /// The floor in replicas.
    pub floor: Option<u32>,
    /// Whether the floor raised the decision.
    pub bound: bool,
}

/// What a policy held of a GPU node pool.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NodeHours {
    /// GPU-hours of whole nodes held (provisioning included).
    pub node_gpu_hours: f64,
    /// Most nodes held at once.
    pub peak_nodes: u32,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Workload description.
    pub workload: String,
    /// Replay length, seconds.
    pub duration_s: f64,
    /// Requests replayed (per policy).
    pub requests: u64,
    /// The modelled replica.
    pub replica: String,
    /// GPUs per replica.
    pub gpus_per_replica: u32,
    /// Price per GPU-hour.
    pub price_per_gpu_hour: f64,
    /// The SLO.
    pub slo: Slo,
    /// Requests/s one replica serves within the SLO.
    pub replica_capacity_rps: f64,
    /// Cold start, seconds.
    pub cold_start_s: f64,
    /// The GPU node pool the replicas were packed on, if any.
    pub nodes: Option<NodePool>,
    /// Per policy.
    pub policies: Vec<PolicyResult>,
    /// Wall-clock seconds of the whole run.
    pub wall_s: f64,
}

/// The signals in display order with their names (for reports).
pub fn signal_names() -> impl Iterator<Item = &'static str> {
    Signal::ALL.iter().map(|s| s.as_str())
}

/// A duration in seconds for a table cell: `-` for none, whole seconds from 10 s, hundredths
/// from 1 s, milliseconds below (the report's and the scoreboard's latency columns).
pub(crate) fn fmt_secs(v: f64) -> String {
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
            fmt_secs(p.ttft.p50),
            fmt_secs(p.ttft.p95),
            fmt_secs(p.ttft.p99),
            fmt_secs(p.tpot.p99),
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
    node_table(r, &mut s);
    let _ = writeln!(
        s,
        "duty = GPU busy time / provisioned GPU time (DCGM's duty cycle); work = requests / (replica-seconds x capacity at SLO);\n\
         replicas = mean provisioned / peak provisioned (draining pods included); simulated in {:.1} s",
        r.wall_s
    );
    s
}

/// With a node pool: each policy's replica GPU-hours next to the node GPU-hours billed, and
/// the saving against the static fleet counted in node GPU-hours.
fn node_table(r: &SimReport, s: &mut String) {
    let Some(pool) = r.nodes else { return };
    let _ = writeln!(
        s,
        "GPU nodes  {} GPUs each, {:.0} s to provision a new one; replicas packed first fit; whole nodes billed",
        pool.gpus_per_node, pool.provisioning_s
    );
    let _ = writeln!(s, "{:<16} {:>13} {:>12} {:>8} {:>7} {:>8}", "policy", "replica GPU-h", "node GPU-h", "packing", "nodes", "saved");
    let static_nodes = r.policies.iter().find(|p| p.name == "static").and_then(|p| p.nodes).map(|n| n.node_gpu_hours);
    for p in &r.policies {
        let Some(n) = p.nodes else { continue };
        let packing = if n.node_gpu_hours > 0.0 { format!("{:.1}%", 100.0 * p.gpu_hours / n.node_gpu_hours) } else { "-".into() };
        let saved = static_nodes.filter(|s| *s > 0.0).map_or("-".into(), |st| format!("{:.1}%", 100.0 * (1.0 - n.node_gpu_hours / st)));
        let _ =
            writeln!(s, "{:<16} {:>13.1} {:>12.1} {:>8} {:>7} {:>8}", p.name, p.gpu_hours, n.node_gpu_hours, packing, n.peak_nodes, saved);
    }
    let _ = writeln!(s);
}

/// The report as pretty JSON.
pub fn json(r: &SimReport) -> serde_json::Result<String> {
    serde_json::to_string_pretty(r)
}
