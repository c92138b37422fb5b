//! The scaler's own Prometheus metrics (prometheus-client), served on the HTTP port.
//!
//! Decisions and per-signal demand per ScaledObject, scrape durations and errors per pod, and
//! RPC latencies, so the scaler can be watched with the same tools as the fleet it scales.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{
    decide::policy::{Decision, Signal},
    run::cost::CostReading,
};

/// Labels naming a ScaledObject.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Namespace.
    pub namespace: String,
    /// ScaledObject name.
    pub scaledobject: String,
}

/// Labels naming a ScaledJob (a batch target).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Namespace.
    pub namespace: String,
    /// ScaledJob name.
    pub scaledjob: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobBoundLabels {
    namespace: String,
    scaledjob: String,
    /// `queue`, `deadline` or `budget`.
    bound: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    namespace: String,
    scaledobject: String,
    signal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BoundLabels {
    namespace: String,
    scaledobject: String,
    /// `point`, `lower` or `upper`.
    bound: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    namespace: String,
    scaledobject: String,
    outcome: &'static str,
}

/// Labels naming a pod of a ScaledObject.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PodLabels {
    /// Namespace.
    pub namespace: String,
    /// ScaledObject name.
    pub scaledobject: String,
    /// Pod name.
    pub pod: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodErrorLabels {
    namespace: String,
    scaledobject: String,
    pod: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SloLabels {
    namespace: String,
    scaledobject: String,
    /// `ttft` or `tpot`.
    latency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcErrorLabels {
    method: &'static str,
    code: String,
}

type FGauge = Gauge<f64, AtomicU64>;
type FCounter = Counter<f64, AtomicU64>;

fn rpc_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

fn scrape_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 10))
}

/// Every metric the scaler exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    desired: Family<TargetLabels, Gauge>,
    current: Family<TargetLabels, Gauge>,
    demand: Family<TargetLabels, FGauge>,
    active: Family<TargetLabels, Gauge>,
    signal_raw: Family<SignalLabels, FGauge>,
    signal_demand: Family<SignalLabels, FGauge>,
    signal_contribution: Family<SignalLabels, FGauge>,
    forecast: Family<BoundLabels, FGauge>,
    forecast_floor: Family<TargetLabels, Gauge>,
    forecast_smape: Family<TargetLabels, FGauge>,
    forecast_bound: Family<TargetLabels, Gauge>,
    decisions: Family<OutcomeLabels, Counter>,
    unavailable_ticks: Family<TargetLabels, Counter>,
    tick_duration: Family<TargetLabels, Histogram, fn() -> Histogram>,
    pod_scrape_seconds: Family<PodLabels, FGauge>,
    pod_scrape_errors: Family<PodErrorLabels, Counter>,
    scrape_duration: Family<TargetLabels, Histogram, fn() -> Histogram>,
    targets: Gauge,
    rpc_duration: Family<RpcLabels, Histogram, fn() -> Histogram>,
    rpc_errors: Family<RpcErrorLabels, Counter>,
    signal_dominant: Family<SignalLabels, Gauge>,
    capacity_used: Family<TargetLabels, FGauge>,
    slo: Family<SloLabels, FGauge>,
    cost: CostMetrics,
    batch: BatchMetrics,
}

/// A serving fleet's cost, one family per number of [`CostNow`]; every series is dropped while
/// the cost is unknown.
#[derive(Debug, Default)]
struct CostMetrics {
    gpus: Family<TargetLabels, Gauge>,
    price: Family<TargetLabels, FGauge>,
    per_hour: Family<TargetLabels, FGauge>,
    dollars: Family<TargetLabels, FCounter>,
    budget: Family<TargetLabels, FGauge>,
    tokens: Family<TargetLabels, FCounter>,
    per_1k_tokens: Family<TargetLabels, FGauge>,
}

/// A batch target's decision, one family per number of the decision record.
#[derive(Debug, Default)]
struct BatchMetrics {
    work: Family<JobLabels, FGauge>,
    queued: Family<JobLabels, FGauge>,
    orphaned: Family<JobLabels, Gauge>,
    jobs_wanted: Family<JobLabels, Gauge>,
    jobs: Family<JobLabels, Gauge>,
    busy: Family<JobLabels, Gauge>,
    bound: Family<JobBoundLabels, Gauge>,
    cost_per_hour: Family<JobLabels, FGauge>,
    job_rate: Family<JobLabels, FGauge>,
    finish: Family<JobLabels, FGauge>,
    late: Family<JobLabels, FGauge>,
    disrupted: Family<JobLabels, Gauge>,
    read_errors: Family<JobLabels, Counter>,
    dollars: Family<JobLabels, FCounter>,
}

const BOUNDS: [(crate::decide::batch::Bound, &str); 3] = {
    use crate::decide::batch::Bound;
    [(Bound::Queue, "queue"), (Bound::Deadline, "deadline"), (Bound::Budget, "budget")]
};

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family under the `llm_scaler` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("llm_scaler");
        let m = Metrics {
            desired: Family::default(),
            current: Family::default(),
            demand: Family::default(),
            active: Family::default(),
            signal_raw: Family::default(),
            signal_demand: Family::default(),
            signal_contribution: Family::default(),
            forecast: Family::default(),
            forecast_floor: Family::default(),
            forecast_smape: Family::default(),
            forecast_bound: Family::default(),
            decisions: Family::default(),
            unavailable_ticks: Family::default(),
            tick_duration: Family::new_with_constructor(scrape_histogram),
            pod_scrape_seconds: Family::default(),
            pod_scrape_errors: Family::default(),
            scrape_duration: Family::new_with_constructor(scrape_histogram),
            targets: Gauge::default(),
            rpc_duration: Family::new_with_constructor(rpc_histogram),
            rpc_errors: Family::default(),
            signal_dominant: Family::default(),
            capacity_used: Family::default(),
            slo: Family::default(),
            cost: CostMetrics::default(),
            batch: BatchMetrics::default(),
            registry: Registry::default(),
        };
        let b = &m.batch;
        registry.register("batch_work", "Work reported to KEDA for a ScaledJob (items or size units), after any cap", b.work.clone());
        registry.register("batch_queued_work", "Work counted in a ScaledJob's queue, before any cap", b.queued.clone());
        registry.register(
            "batch_orphaned_items",
            "Stream entries held by workers whose pod is gone or disrupted, counted as waiting",
            b.orphaned.clone(),
        );
        registry.register("batch_jobs_wanted", "Jobs the queue asks for, ceil(queued / targetSize)", b.jobs_wanted.clone());
        registry.register("batch_jobs_planned", "Jobs planned at once after the deadline and budget caps", b.jobs.clone());
        registry.register("batch_jobs_busy", "Jobs at work (pods Ready, or consumers holding fresh entries)", b.busy.clone());
        registry.register("batch_bound", "1 for the limit that set the planned Jobs (queue, deadline, budget)", b.bound.clone());
        registry.register("batch_cost_dollars_per_hour", "Planned Jobs x GPUs per Job x price per GPU-hour", b.cost_per_hour.clone());
        registry.register("batch_job_throughput", "Work units one Job completes per second, learned from the drain", b.job_rate.clone());
        registry.register("batch_finish_seconds", "Projected time to finish the queue at the planned Jobs", b.finish.clone());
        registry.register("batch_deadline_late_seconds", "How far the projected finish lands after the deadline", b.late.clone());
        registry.register("batch_disrupted_pods", "The ScaledJob's pods with a DisruptionTarget condition", b.disrupted.clone());
        registry.register("batch_read_errors", "Failed reads of a ScaledJob's queue", b.read_errors.clone());
        registry.register(
            "batch_cost_dollars",
            "Cost of the ScaledJob's Job pods on nodes (x GPUs per Job x gpuHourPrice) since this scaler began watching them",
            b.dollars.clone(),
        );
        registry.register("desired_replicas", "Replicas the latest decision asks for", m.desired.clone());
        registry.register("current_replicas", "Ready plus starting pods at the latest decision", m.current.clone());
        registry.register("demand_replicas", "Blended demand in replicas at target, before the peak factor", m.demand.clone());
        registry.register("active", "1 when the fleet has work (IsActive)", m.active.clone());
        registry.register("signal_value", "Fleet total of each signal (latency: quantile in seconds)", m.signal_raw.clone());
        registry.register("signal_demand_replicas", "Replicas each signal asks for at target", m.signal_demand.clone());
        registry.register("signal_contribution_replicas", "Each signal's share of the blended demand", m.signal_contribution.clone());
        registry.register(
            "signal_dominant",
            "1 for the signal that decided (max) or weighed most (weighted), 0 for the others",
            m.signal_dominant.clone(),
        );
        registry.register(
            "capacity_used_ratio",
            "Blended demand at target over Ready replicas: the share of the fleet's capacity at target in use (1 = at target)",
            m.capacity_used.clone(),
        );
        registry.register("slo_seconds", "The ScaledObject's latency SLO bound (sloTtft, sloTpot)", m.slo.clone());
        let c = &m.cost;
        registry.register(
            "gpus_provisioned",
            "GPUs of the fleet's Ready and starting pods (nvidia.com/gpu requests, else gpusPerPod)",
            c.gpus.clone(),
        );
        registry.register("gpu_hour_price_dollars", "Price of one GPU-hour the fleet is charged at (gpuHourPrice)", c.price.clone());
        registry.register("cost_dollars_per_hour", "GPUs provisioned x price per GPU-hour", c.per_hour.clone());
        registry.register("cost_dollars", "Cost of the fleet's GPUs since this scaler began metering it", c.dollars.clone());
        registry.register("cost_budget_dollars_per_hour", "The fleet's budget (budgetPerHour)", c.budget.clone());
        registry.register("tokens_served", "Prompt and generation tokens the fleet's pods served, from vLLM's counters", c.tokens.clone());
        registry.register(
            "cost_per_1k_tokens_dollars",
            "Cost of 1,000 prompt + generation tokens over the last 5 minutes (absent while none flowed)",
            c.per_1k_tokens.clone(),
        );
        registry.register(
            "forecast_tokens_per_second",
            "Forecast demand at the floor's lead (point, lower) and the upper bound's peak until then, prompt + generation tokens/s",
            m.forecast.clone(),
        );
        registry.register(
            "forecast_floor_replicas",
            "Replicas the demand forecast asks for (acted on only with forecastAndScale)",
            m.forecast_floor.clone(),
        );
        registry.register("forecast_smape", "Recent sMAPE (0..2) of the forecast model in use, at the horizon", m.forecast_smape.clone());
        registry.register("forecast_floor_bound", "1 when the forecast floor raised the latest decision", m.forecast_bound.clone());
        registry.register("decisions", "Decisions made, by outcome", m.decisions.clone());
        registry.register("unavailable_ticks", "Ticks that produced no decision (no usable data)", m.unavailable_ticks.clone());
        registry.register("tick_duration_seconds", "Wall time of one collect-and-decide tick", m.tick_duration.clone());
        registry.register("pod_scrape_duration_seconds", "Duration of the latest scrape of each pod", m.pod_scrape_seconds.clone());
        registry.register("pod_scrape_errors", "Failed scrapes per pod and kind", m.pod_scrape_errors.clone());
        registry.register("scrape_duration_seconds", "Scrape durations of a ScaledObject's pods", m.scrape_duration.clone());
        registry.register("scaledobjects", "ScaledObjects being collected", m.targets.clone());
        registry.register("rpc_duration_seconds", "gRPC handler latency by method", m.rpc_duration.clone());
        registry.register("rpc_errors", "gRPC errors by method and code", m.rpc_errors.clone());
        Metrics { registry, ..m }
    }

    /// Text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The same metrics in the classic text format 0.0.4, for readers without OpenMetrics
    /// (`promtool check metrics`, `curl`, older agents).
    ///
    /// prometheus-client writes OpenMetrics only. The two differ, for what we export, in three
    /// places: a counter family is named without `_total` in OpenMetrics (`# TYPE x counter`,
    /// samples `x_total`) but with it in 0.0.4 (else the samples read as a second, untyped
    /// family without help text); `# UNIT` lines exist only in OpenMetrics; and OpenMetrics ends
    /// with `# EOF`.
    pub fn encode_classic(&self) -> String {
        classic_text(&self.encode())
    }

    /// Records a decision.
    pub fn decision(&self, t: &TargetLabels, d: &Decision) {
        self.desired.get_or_create(t).set(i64::from(d.desired_replicas));
        self.current.get_or_create(t).set(i64::from(d.current_replicas));
        self.demand.get_or_create(t).set(d.demand);
        self.active.get_or_create(t).set(i64::from(d.active));
        let outcome = match d.outcome {
            crate::decide::policy::Outcome::ScaleUp => "scale_up",
            crate::decide::policy::Outcome::ScaleDown => "scale_down",
            crate::decide::policy::Outcome::Hold => "hold",
        };
        self.decisions
            .get_or_create(&OutcomeLabels { namespace: t.namespace.clone(), scaledobject: t.scaledobject.clone(), outcome })
            .inc();
        for r in &d.signals {
            let l = SignalLabels { namespace: t.namespace.clone(), scaledobject: t.scaledobject.clone(), signal: r.signal.as_str() };
            match (r.raw, r.demand) {
                (Some(raw), Some(dem)) => {
                    self.signal_raw.get_or_create(&l).set(raw);
                    self.signal_demand.get_or_create(&l).set(dem);
                }
                // Missing is not zero: drop the series rather than export a 0.
                _ => {
                    self.signal_raw.remove(&l);
                    self.signal_demand.remove(&l);
                }
            }
            self.signal_contribution.get_or_create(&l).set(r.contribution);
            self.signal_dominant.get_or_create(&l).set(i64::from(d.dominant == Some(r.signal)));
        }
        let used = (d.ready_pods > 0).then(|| d.demand / f64::from(d.ready_pods));
        set_or_drop(&self.capacity_used, t, used);
        self.forecast_of(t, d);
    }

    /// The forecast of a decision; no forecast (short history, stale, off) removes the series:
    /// a missing forecast is not a forecast of zero.
    fn forecast_of(&self, t: &TargetLabels, d: &Decision) {
        let f = d.forecast.as_ref();
        for (bound, v) in [("point", f.and_then(|f| f.point)), ("lower", f.and_then(|f| f.lower)), ("upper", f.and_then(|f| f.upper))] {
            let l = BoundLabels { namespace: t.namespace.clone(), scaledobject: t.scaledobject.clone(), bound };
            match v {
                Some(v) => {
                    self.forecast.get_or_create(&l).set(v);
                }
                None => {
                    self.forecast.remove(&l);
                }
            }
        }
        match f.and_then(|f| Some((f.floor?, f.smape?, f.bound))) {
            Some((floor, smape, bound)) => {
                self.forecast_floor.get_or_create(t).set(i64::from(floor));
                self.forecast_smape.get_or_create(t).set(smape);
                self.forecast_bound.get_or_create(t).set(i64::from(bound));
            }
            None => {
                self.forecast_floor.remove(t);
                self.forecast_smape.remove(t);
                self.forecast_bound.remove(t);
            }
        }
    }

    /// Records a tick without a decision.
    pub fn unavailable(&self, t: &TargetLabels) {
        self.unavailable_ticks.get_or_create(t).inc();
    }

    /// Records a tick's wall time.
    pub fn tick(&self, t: &TargetLabels, secs: f64) {
        self.tick_duration.get_or_create(t).observe(secs);
    }

    /// Records one pod scrape.
    pub fn pod_scrape(&self, p: &PodLabels, secs: f64, error: Option<&'static str>) {
        self.pod_scrape_seconds.get_or_create(p).set(secs);
        self.scrape_duration
            .get_or_create(&TargetLabels { namespace: p.namespace.clone(), scaledobject: p.scaledobject.clone() })
            .observe(secs);
        if let Some(kind) = error {
            let l = PodErrorLabels { namespace: p.namespace.clone(), scaledobject: p.scaledobject.clone(), pod: p.pod.clone(), kind };
            self.pod_scrape_errors.get_or_create(&l).inc();
        }
    }

    /// Forgets a pod that left the fleet.
    pub fn forget_pod(&self, p: &PodLabels) {
        self.pod_scrape_seconds.remove(p);
    }

    /// Forgets a ScaledObject no longer collected.
    pub fn forget_target(&self, t: &TargetLabels) {
        for bound in ["point", "lower", "upper"] {
            self.forecast.remove(&BoundLabels { namespace: t.namespace.clone(), scaledobject: t.scaledobject.clone(), bound });
        }
        self.forecast_floor.remove(t);
        self.forecast_smape.remove(t);
        self.forecast_bound.remove(t);
        self.desired.remove(t);
        self.current.remove(t);
        self.demand.remove(t);
        self.active.remove(t);
        for s in Signal::ALL {
            let l = SignalLabels { namespace: t.namespace.clone(), scaledobject: t.scaledobject.clone(), signal: s.as_str() };
            self.signal_raw.remove(&l);
            self.signal_demand.remove(&l);
            self.signal_contribution.remove(&l);
            self.signal_dominant.remove(&l);
        }
        self.capacity_used.remove(t);
        for latency in ["ttft", "tpot"] {
            self.slo.remove(&SloLabels { namespace: t.namespace.clone(), scaledobject: t.scaledobject.clone(), latency });
        }
        self.cost_of(t, &CostReading::Unknown { reason: String::new() });
    }

    /// Exports the ScaledObject's SLO bounds, so dashboards draw the line it is held to.
    pub fn slo(&self, t: &TargetLabels, slo: Option<&crate::spec::SloSpec>) {
        let bounds = slo.map(|s| [("ttft", s.bounds.ttft()), ("tpot", s.bounds.tpot())]).unwrap_or([("ttft", None), ("tpot", None)]);
        for (latency, bound) in bounds {
            let l = SloLabels { namespace: t.namespace.clone(), scaledobject: t.scaledobject.clone(), latency };
            match bound {
                Some(b) => {
                    self.slo.get_or_create(&l).set(b.as_secs_f64());
                }
                None => {
                    self.slo.remove(&l);
                }
            }
        }
    }

    /// Records the fleet's cost; an unknown cost drops every cost series (a fleet priced at
    /// zero GPUs would read as free). The counters carry the meter's totals, so a series that
    /// comes back resumes where the meter is.
    pub fn cost_of(&self, t: &TargetLabels, reading: &CostReading) {
        let c = &self.cost;
        match reading {
            CostReading::Known(now) => {
                c.gpus.get_or_create(t).set(i64::from(now.gpus));
                c.price.get_or_create(t).set(now.gpu_hour_price);
                c.per_hour.get_or_create(t).set(now.dollars_per_hour);
                raise_to(&c.dollars, t, now.dollars_total);
                raise_to(&c.tokens, t, now.tokens_total);
                set_or_drop(&c.budget, t, now.budget_dollars_per_hour);
                set_or_drop(&c.per_1k_tokens, t, now.dollars_per_1k_tokens);
            }
            CostReading::Unknown { .. } => {
                c.gpus.remove(t);
                for f in [&c.price, &c.per_hour, &c.budget, &c.per_1k_tokens] {
                    f.remove(t);
                }
                c.dollars.remove(t);
                c.tokens.remove(t);
            }
        }
    }

    /// Records a batch target's decision; a number the decision does not know drops its series
    /// (unknown is not zero).
    pub fn batch_decision(&self, t: &JobLabels, d: &crate::decide::batch::BatchDecision) {
        let b = &self.batch;
        b.work.get_or_create(t).set(d.work);
        b.queued.get_or_create(t).set(d.queued);
        b.orphaned.get_or_create(t).set(d.orphaned as i64);
        b.jobs_wanted.get_or_create(t).set(d.jobs_wanted as i64);
        b.jobs.get_or_create(t).set(d.jobs as i64);
        b.cost_per_hour.get_or_create(t).set(d.cost_per_hour);
        for (bound, name) in BOUNDS {
            let l = JobBoundLabels { namespace: t.namespace.clone(), scaledjob: t.scaledjob.clone(), bound: name };
            b.bound.get_or_create(&l).set(i64::from(d.bound == bound));
        }
        set_or_drop(&b.job_rate, t, d.job_rate);
        set_or_drop(&b.finish, t, d.finish_in);
        // Late by 0 when the projection meets the deadline; no series without a deadline or a rate.
        set_or_drop(&b.late, t, d.deadline_in.and(d.finish_in).map(|_| d.late_by.unwrap_or(0.0)));
        set_or_drop(&b.busy, t, d.busy.map(|n| n as i64));
        set_or_drop(&b.disrupted, t, d.pods.as_ref().map(|p| p.disrupted.len() as i64));
    }

    /// Records what a batch target's Job pods cost so far; unknown (no pod watch) drops it.
    pub fn batch_spend(&self, t: &JobLabels, dollars: Option<f64>) {
        match dollars {
            Some(total) => raise_to(&self.batch.dollars, t, total),
            None => {
                self.batch.dollars.remove(t);
            }
        }
    }

    /// Records a failed read of a batch target's queue.
    pub fn batch_read_error(&self, t: &JobLabels) {
        self.batch.read_errors.get_or_create(t).inc();
    }

    /// Forgets a ScaledJob no longer read.
    pub fn forget_batch(&self, t: &JobLabels) {
        let b = &self.batch;
        for f in [&b.work, &b.queued, &b.cost_per_hour, &b.job_rate, &b.finish, &b.late] {
            f.remove(t);
        }
        for f in [&b.orphaned, &b.jobs_wanted, &b.jobs, &b.busy, &b.disrupted] {
            f.remove(t);
        }
        b.dollars.remove(t);
        for (_, bound) in BOUNDS {
            b.bound.remove(&JobBoundLabels { namespace: t.namespace.clone(), scaledjob: t.scaledjob.clone(), bound });
        }
    }

    /// Sets the number of ScaledObjects being collected.
    pub fn set_targets(&self, n: usize) {
        self.targets.set(n as i64);
    }

    /// Records one RPC.
    pub fn rpc(&self, method: &'static str, secs: f64, code: Option<tonic::Code>) {
        self.rpc_duration.get_or_create(&RpcLabels { method }).observe(secs);
        if let Some(code) = code {
            self.rpc_errors.get_or_create(&RpcErrorLabels { method, code: format!("{code:?}") }).inc();
        }
    }
}

/// Sets the series of `t` to `v`, or drops it when `v` is unknown (unknown is not zero).
fn set_or_drop<L, N, A>(f: &Family<L, Gauge<N, A>>, t: &L, v: Option<N>)
where
    L: Clone + std::hash::Hash + Eq,
    A: prometheus_client::metrics::gauge::Atomic<N> + Default,
{
    match v {
        Some(v) => {
            f.get_or_create(t).set(v);
        }
        None => {
            f.remove(t);
        }
    }
}

/// Raises the counter of `t` to `total` (a counter only goes up: a lower total is ignored).
fn raise_to<L: Clone + std::hash::Hash + Eq>(f: &Family<L, FCounter>, t: &L, total: f64) {
    let c = f.get_or_create(t);
    let by = total - c.get();
    if by > 0.0 {
        c.inc_by(by);
    }
}

/// OpenMetrics text as written by prometheus-client -> classic text 0.0.4 (see
/// [`Metrics::encode_classic`]).
fn classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .filter(|name| !name.ends_with("_total"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{tag}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_text_names_counter_families_with_total_and_drops_what_only_openmetrics_has() {
        let m = Metrics::new();
        let t = TargetLabels { namespace: "ai".into(), scaledobject: "llama".into() };
        m.unavailable(&t);
        let open = m.encode();
        assert!(open.contains("# TYPE llm_scaler_unavailable_ticks counter") && open.ends_with("# EOF\n"), "{open}");
        let classic = m.encode_classic();
        assert!(classic.contains("# HELP llm_scaler_unavailable_ticks_total Ticks that produced no decision"), "{classic}");
        assert!(classic.contains("# TYPE llm_scaler_unavailable_ticks_total counter"), "{classic}");
        assert!(classic.contains("llm_scaler_unavailable_ticks_total{namespace=\"ai\",scaledobject=\"llama\"} 1"), "{classic}");
        assert!(classic.contains("# TYPE llm_scaler_scaledobjects gauge"), "gauges keep their names: {classic}");
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"), "{classic}");
    }
    use crate::decide::{
        forecast::ForecastMode,
        policy::{ColdStartSource, FloorReport, Outcome},
    };

    fn decision(forecast: Option<FloorReport>) -> Decision {
        Decision {
            desired_replicas: 4,
            demand: 2.0,
            with_peak: 3.0,
            current_replicas: 2,
            ready_pods: 2,
            starting_pods: 0,
            dominant: None,
            outcome: Outcome::ScaleUp,
            clamped: false,
            active: true,
            in_flight: 3.0,
            signals: Vec::new(),
            capacity: None,
            forecast,
            warming_up: Vec::new(),
            reason: String::new(),
        }
    }

    #[test]
    fn a_known_cost_is_exported_and_an_unknown_one_drops_every_cost_series_and_resumes_at_the_meters_total() {
        use crate::run::cost::CostNow;
        let m = Metrics::new();
        let t = TargetLabels { namespace: "ai".into(), scaledobject: "llama".into() };
        let now = |total: f64, per_1k: Option<f64>| {
            CostReading::Known(CostNow {
                gpus: 4,
                gpu_hour_price: 4.0,
                dollars_per_hour: 16.0,
                dollars_total: total,
                tokens_total: 2_000.0,
                dollars_per_1k_tokens: per_1k,
                budget_dollars_per_hour: None,
            })
        };
        m.cost_of(&t, &now(1.5, Some(0.002)));
        let text = m.encode_classic();
        for needle in [
            "llm_scaler_gpus_provisioned{namespace=\"ai\",scaledobject=\"llama\"} 4",
            "llm_scaler_cost_dollars_per_hour{namespace=\"ai\",scaledobject=\"llama\"} 16.0",
            "llm_scaler_cost_dollars_total{namespace=\"ai\",scaledobject=\"llama\"} 1.5",
            "llm_scaler_tokens_served_total{namespace=\"ai\",scaledobject=\"llama\"} 2000.0",
            "llm_scaler_cost_per_1k_tokens_dollars{namespace=\"ai\",scaledobject=\"llama\"} 0.002",
            "# TYPE llm_scaler_cost_dollars_total counter",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains("llm_scaler_cost_budget_dollars_per_hour{"), "no budget set: no series\n{text}");
        m.cost_of(&t, &CostReading::Unknown { reason: "pod x".into() });
        let text = m.encode_classic();
        for gone in ["llm_scaler_gpus_provisioned{", "llm_scaler_cost_dollars_total{", "llm_scaler_cost_dollars_per_hour{"] {
            assert!(!text.contains(gone), "{gone} still exported while the cost is unknown\n{text}");
        }
        m.cost_of(&t, &now(2.0, None));
        let text = m.encode_classic();
        assert!(text.contains("llm_scaler_cost_dollars_total{namespace=\"ai\",scaledobject=\"llama\"} 2.0"), "{text}");
        assert!(!text.contains("llm_scaler_cost_per_1k_tokens_dollars{"), "idle: undefined, not zero\n{text}");
    }

    #[test]
    fn a_scaledjobs_spend_is_a_dollars_total_counter_absent_while_its_pods_are_unknown() {
        let m = Metrics::new();
        let t = JobLabels { namespace: "batch".into(), scaledjob: "embed".into() };
        let series = "llm_scaler_batch_cost_dollars_total{namespace=\"batch\",scaledjob=\"embed\"}";
        m.batch_spend(&t, Some(0.25));
        let text = m.encode_classic();
        assert!(text.contains(&format!("{series} 0.25")) && text.contains("# TYPE llm_scaler_batch_cost_dollars_total counter"), "{text}");
        m.batch_spend(&t, None);
        assert!(!m.encode_classic().contains(series), "unknown is not $0");
        m.batch_spend(&t, Some(0.5));
        m.forget_batch(&t);
        assert!(!m.encode_classic().contains(series), "a ScaledJob no longer read leaves no series");
    }

    #[test]
    fn the_deciding_signal_reads_1_and_the_others_0() {
        use crate::decide::policy::SignalReport;
        let m = Metrics::new();
        let t = TargetLabels { namespace: "ai".into(), scaledobject: "llama".into() };
        let mut d = decision(None);
        d.dominant = Some(Signal::QueueDepth);
        d.signals = [Signal::QueueDepth, Signal::KvCacheUsage]
            .into_iter()
            .map(|signal| SignalReport {
                signal,
                raw: Some(1.0),
                target: 1.0,
                weight: 1.0,
                reporting_pods: 2,
                demand: Some(1.0),
                demand_if_missing_at_target: Some(1.0),
                contribution: 1.0,
            })
            .collect();
        m.decision(&t, &d);
        let text = m.encode_classic();
        let q =
            format!("llm_scaler_signal_dominant{{namespace=\"ai\",scaledobject=\"llama\",signal=\"{}\"}} 1", Signal::QueueDepth.as_str());
        let kv =
            format!("llm_scaler_signal_dominant{{namespace=\"ai\",scaledobject=\"llama\",signal=\"{}\"}} 0", Signal::KvCacheUsage.as_str());
        assert!(text.contains(&q) && text.contains(&kv), "{text}");
        assert!(
            text.contains("llm_scaler_capacity_used_ratio{namespace=\"ai\",scaledobject=\"llama\"} 1.0"),
            "demand 2 over 2 Ready: {text}"
        );
    }

    #[test]
    fn the_forecast_is_exported_while_there_is_one_and_its_series_vanish_when_there_is_none() {
        let m = Metrics::new();
        let t = TargetLabels { namespace: "ai".into(), scaledobject: "llama".into() };
        let f = FloorReport {
            mode: ForecastMode::ForecastAndScale,
            cold_start_s: 120,
            cold_start_from: ColdStartSource::Default,
            lead_s: 420,
            model: None,
            point: Some(50_000.0),
            lower: Some(45_000.0),
            upper: Some(56_000.0),
            smape: Some(0.04),
            mase: Some(0.5),
            floor: Some(8),
            skilled: true,
            bound: true,
            unavailable: None,
        };
        m.decision(&t, &decision(Some(f)));
        let text = m.encode();
        for needle in [
            "llm_scaler_forecast_tokens_per_second{namespace=\"ai\",scaledobject=\"llama\",bound=\"upper\"} 56000.0",
            "llm_scaler_forecast_floor_replicas{namespace=\"ai\",scaledobject=\"llama\"} 8",
            "llm_scaler_forecast_floor_bound{namespace=\"ai\",scaledobject=\"llama\"} 1",
            "# HELP llm_scaler_forecast_smape ",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        m.decision(&t, &decision(None));
        let text = m.encode();
        assert!(!text.contains("llm_scaler_forecast_tokens_per_second{"), "{text}");
        assert!(!text.contains("llm_scaler_forecast_floor_replicas{"), "{text}");
    }
}
