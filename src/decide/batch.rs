//! A batch target's decision: from what the queue holds to the work reported to KEDA, pure.
//!
//! KEDA's ScaledJob turns the metric into Jobs itself (`maxScale = min(ceil(work / targetSize),
//! maxReplicaCount)`, then its scaling strategy subtracts running Jobs or not), so the decision's
//! one number is the work. Three things shape it beyond the queue's length:
//!
//! * **Spot**: entries held by a worker whose pod is gone or has its `DisruptionTarget` notice are
//!   work to redo (counted as waiting at once, not only after the claim timeout), so a
//!   replacement Job starts while the node is still being provisioned.
//! * **Budget**: `budgetPerHour` caps the Jobs running at once at what it pays for.
//! * **Deadline**: with a learned throughput per Job ([`DrainRate`]), no more Jobs than finish
//!   the queue by the deadline: fewer, longer-lived Jobs pay fewer cold starts and leave Spot
//!   capacity for others.
//!
//! A cap is applied to the reported work in KEDA's own terms: under a count that includes the
//! running Jobs' work (`outstanding`, KEDA `default`) the work reported is `cap x targetSize`;
//! under a count that excludes it (`waiting`, a popped list; KEDA `accurate`) it is
//! `(cap - busy Jobs) x targetSize`, since `accurate` does not subtract the running ones.

use std::{collections::VecDeque, time::Duration};

use serde::Serialize;

use crate::read::queue::QueueReading;

/// What of a stream counts as work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkCount {
    /// Entries nobody works on: not yet delivered to the group (lag), plus delivered entries
    /// idle for longer than the claim timeout or held by a worker whose pod is gone (a preempted
    /// Spot pod: work to redo). Pair with KEDA's `accurate` strategy, which assumes the count
    /// excludes the running Jobs' items.
    Waiting,
    /// Waiting plus the entries being worked on (pending, not idle too long). Pair with KEDA's
    /// `default` strategy (`maxScale - running Jobs`), which expects the running Jobs' work
    /// inside the count.
    Outstanding,
}

/// What the Jobs cost, and by when the queue should be done.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostPolicy {
    /// Dollars per GPU-hour of the Jobs' nodes (Spot).
    pub gpu_hour_price: f64,
    /// GPUs one Job holds.
    pub gpus_per_job: u32,
    /// Dollars per hour the Jobs may cost together: caps the Jobs running at once.
    pub budget_per_hour: Option<f64>,
    /// Unix seconds by which the queue should be done.
    pub deadline: Option<f64>,
}

impl CostPolicy {
    /// One Job's cost per hour.
    pub fn job_hour(&self) -> f64 {
        self.gpu_hour_price * f64::from(self.gpus_per_job)
    }

    /// The Jobs the budget pays for at once.
    pub fn budget_jobs(&self) -> Option<u64> {
        self.budget_per_hour.map(|b| (b / self.job_hour() + 1e-9).floor().max(0.0) as u64)
    }
}

/// Spot share of an on-demand GPU-hour assumed when `gpuHourPrice` is not given: the middle of
/// the 30-60 % Spot discount range of the design, on its $4 on-demand H100 hour.
pub const DEFAULT_SPOT_GPU_HOUR: f64 = 4.0 * 0.45;

/// Share of the measured per-Job throughput the deadline plans with: a Job preempted, a
/// slower item or a pause in arrivals should not make the queue miss its deadline.
pub const DEADLINE_HEADROOM: f64 = 0.8;

/// How a batch target turns work into its answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchPolicy {
    /// Work one Job takes, items (the AverageValue target KEDA divides by).
    pub target_size: f64,
    /// Active above this much work.
    pub activation: f64,
    /// What of a stream counts (a keyed queue holds waiting items only).
    pub count: WorkCount,
    /// Price, budget and deadline.
    pub cost: CostPolicy,
}

impl BatchPolicy {
    /// Whether the count leaves out the work the running Jobs hold (so KEDA's `accurate` is the
    /// strategy, and a cap must subtract the busy Jobs itself).
    fn count_excludes_running(&self, reading: &QueueReading) -> bool {
        !matches!((reading, self.count), (QueueReading::Stream { .. }, WorkCount::Outstanding))
    }
}

/// The ScaledJob's pods, as a pod watch shows them (`watchPods`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobPods {
    /// Pods not finished: Pending or Running, being deleted or not (a worker finishing within
    /// its grace period still holds its entries).
    pub live: Vec<String>,
    /// Of `live`, Running with `Ready` true and no disruption notice: Jobs at work.
    pub working: u32,
    /// Of `live`, not Ready yet (waiting for a node, pulling the image, loading the model).
    pub starting: u32,
    /// Pods with a `DisruptionTarget` condition (Spot reclaim, eviction, preemption): `pod:
    /// reason`.
    pub disrupted: Vec<String>,
    /// Of `live`, the pods bound to a node (`spec.nodeName`): the Jobs whose GPUs are billed.
    pub on_nodes: u32,
}

impl JobPods {
    fn disrupted_pod(&self, name: &str) -> bool {
        self.disrupted.iter().any(|d| d.split_once(':').map_or(d.as_str(), |(p, _)| p) == name)
    }

    fn holds(&self, consumer: &str) -> bool {
        self.live.iter().any(|p| p == consumer) && !self.disrupted_pod(consumer)
    }
}

/// A consumer idle less than this is not declared gone: a worker's first read can land before
/// the pod watch has seen its pod.
pub const GONE_GRACE: Duration = Duration::from_secs(10);

/// What the loop knows beside the queue: the time, the pods, what a Job does per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchContext {
    /// Unix seconds now (for the deadline).
    pub now: f64,
    /// The ScaledJob's pods, when watched (and the watch has listed them).
    pub pods: Option<JobPods>,
    /// Work units one busy Job completes per second, learned from the drain ([`DrainRate`]).
    pub job_rate: Option<f64>,
}

/// Which limit set the Jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The queue: one Job per `targetSize` of work.
    Queue,
    /// The deadline: no more Jobs than finish the queue in time.
    Deadline,
    /// The budget per hour.
    Budget,
}

/// What a batch target reports, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchDecision {
    /// The work reported to KEDA (`GetMetrics`): the counted work, or less when a cap binds.
    pub work: f64,
    /// The work counted in the queue (before a cap).
    pub queued: f64,
    /// Of `queued`, entries of workers whose pod is gone or disrupted, counted as waiting before
    /// their claim timeout.
    pub orphaned: u64,
    /// `IsActive`: work above the activation threshold.
    pub active: bool,
    /// Jobs KEDA's `ceil(queued / targetSize)` asks for, uncapped.
    pub jobs_wanted: u64,
    /// Jobs at work now, when known (pods Ready and undisturbed, or consumers holding fresh
    /// entries).
    pub busy: Option<u64>,
    /// Jobs the plan runs at once (busy ones included).
    pub jobs: u64,
    /// What set `jobs`.
    pub bound: Bound,
    /// Jobs the deadline needs at the learned rate, when there is a deadline and a rate.
    pub deadline_jobs: Option<u64>,
    /// Jobs the budget pays for.
    pub budget_jobs: Option<u64>,
    /// `jobs x gpusPerJob x gpuHourPrice`.
    pub cost_per_hour: f64,
    /// Work units one Job completes per second, as learned.
    pub job_rate: Option<f64>,
    /// Seconds until the queue (counted work plus work in progress) is done at `jobs` Jobs and
    /// the learned rate.
    pub finish_in: Option<f64>,
    /// Seconds the finish lands after the deadline (`None`: no deadline, no rate, or in time).
    pub late_by: Option<f64>,
    /// Seconds until the deadline (negative once passed), when there is one.
    pub deadline_in: Option<f64>,
    /// The pods, when watched.
    pub pods: Option<JobPods>,
    /// What the queue held.
    pub reading: QueueReading,
    /// One line saying all of it.
    pub reason: String,
}

fn short(secs: f64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0.0).round() as u64)).to_string()
}

/// Decides from one reading of the queue `label` names.
pub fn decide(policy: &BatchPolicy, label: &str, reading: QueueReading, ctx: &BatchContext) -> BatchDecision {
    let mut orphaned = 0;
    let mut busy = ctx.pods.as_ref().map(|p| u64::from(p.working));
    let mut in_progress = 0.0;
    let (queued, what) = match &reading {
        QueueReading::Key { length, kind } => (*length as f64, format!("{length} items in {label} ({})", kind.command())),
        QueueReading::Stream { lag, pending, stale, stale_idle, stale_truncated, consumers, .. } => {
            if let Some(pods) = &ctx.pods {
                orphaned = consumers.iter().filter(|c| c.idle >= GONE_GRACE && !pods.holds(&c.name)).map(|c| c.pending - c.stale).sum();
            } else {
                // Without the pods, a consumer holding an entry that is not stale is at work.
                busy = Some(consumers.iter().filter(|c| c.pending > c.stale).count() as u64);
            }
            let redo = (*stale + orphaned).min(*pending);
            in_progress = (*pending - redo) as f64;
            let at_least = if *stale_truncated { "at least " } else { "" };
            let gone = if orphaned > 0 { format!(" + {orphaned} held by workers whose pod is gone") } else { String::new() };
            let redo_text =
                format!("{at_least}{stale} of {pending} pending idle > {}{gone} (work to redo)", humantime::format_duration(*stale_idle));
            match policy.count {
                WorkCount::Waiting => ((lag + redo) as f64, format!("{} waiting in {label}: lag {lag} + {redo_text}", lag + redo)),
                WorkCount::Outstanding => (
                    (lag + pending) as f64,
                    format!("{} outstanding in {label}: lag {lag} + {pending} pending ({redo_text})", lag + pending),
                ),
            }
        }
        QueueReading::Metric { count, size: None, series } => (*count, format!("{count} in {label} ({series} series)")),
        QueueReading::Metric { count, size: Some(size), series } => {
            (*size, format!("{size} work units in {label} ({count} items, {series} series)"))
        }
    };
    // An exporter's gauge below zero (a counter reset mid-scrape, a buggy exporter) is no
    // negative work.
    let queued = queued.max(0.0);
    let excludes_running = policy.count_excludes_running(&reading);
    let jobs_wanted = (queued / policy.target_size).ceil() as u64;
    // The Jobs the queue keeps busy at once: KEDA's count, plus (when the count leaves them out)
    // the ones already at work.
    let queue_jobs = jobs_wanted + if excludes_running { busy.unwrap_or(0) } else { 0 };
    // Work left: what is counted, and what the busy Jobs hold when the count leaves it out.
    let left = queued + if excludes_running { in_progress } else { 0.0 };
    let cost = policy.cost;
    let budget_jobs = cost.budget_jobs();
    let time_left = cost.deadline.map(|d| d - ctx.now);
    let deadline_jobs = match (time_left, ctx.job_rate) {
        (Some(t), Some(r)) if t > 0.0 && r > 0.0 => Some((left / (r * DEADLINE_HEADROOM * t)).ceil().max(1.0) as u64),
        _ => None,
    };
    let (mut jobs, mut bound) = (queue_jobs, Bound::Queue);
    if let Some(d) = deadline_jobs.filter(|d| *d < jobs) {
        (jobs, bound) = (d, Bound::Deadline);
    }
    if let Some(b) = budget_jobs.filter(|b| *b < jobs) {
        (jobs, bound) = (b, Bound::Budget);
    }
    // Under `accurate`, KEDA counts a Job whose pod has its disruption notice as running (it
    // still bills until it exits), so a cap leaves room for those too.
    let noticed = ctx.pods.as_ref().map_or(0, |p| p.live.iter().filter(|n| p.disrupted_pod(n)).count() as u64);
    let work = match bound {
        Bound::Queue => queued,
        _ if excludes_running => (jobs.saturating_sub(busy.unwrap_or(0) + noticed) as f64 * policy.target_size).min(queued),
        _ => (jobs as f64 * policy.target_size).min(queued),
    };
    let active = queued > policy.activation;
    let cost_per_hour = jobs as f64 * cost.job_hour();
    let finish_in = ctx.job_rate.filter(|r| *r > 0.0 && jobs > 0).map(|r| left / (r * jobs as f64));
    let late_by = match (finish_in, time_left) {
        (Some(f), Some(t)) if f > t => Some(f - t.max(0.0)),
        _ => None,
    };

    let (one, many) = match reading {
        QueueReading::Metric { size: Some(_), .. } => ("work unit", "work units"),
        _ => ("item", "items"),
    };
    let per_job = if policy.target_size == 1.0 { format!("1 {one}") } else { format!("{} {many}", policy.target_size) };
    let mut reason = format!("{what} -> {jobs_wanted} Jobs of {per_job} (KEDA: ceil({queued} / {}))", policy.target_size);
    if let Some(b) = busy.filter(|_| excludes_running && bound != Bound::Queue) {
        reason.push_str(&format!(" + {b} busy"));
    }
    match bound {
        Bound::Queue => {}
        Bound::Deadline => reason.push_str(&format!(
            "; {jobs} finish by the deadline (in {}) at {:.3} {many}/s per Job: reporting {work}",
            short(time_left.unwrap_or(0.0)),
            ctx.job_rate.unwrap_or(0.0)
        )),
        Bound::Budget => reason.push_str(&format!(
            "; budget ${:.2}/h pays for {jobs} Jobs of ${:.2}/h: reporting {work}",
            cost.budget_per_hour.unwrap_or(0.0),
            cost.job_hour()
        )),
    }
    reason.push_str(&format!("; ${cost_per_hour:.2}/h"));
    match (finish_in, late_by) {
        (Some(f), None) => reason.push_str(&format!(", done in {}", short(f))),
        (Some(f), Some(l)) => reason.push_str(&format!(
            ", done in {}: {} after the deadline{}",
            short(f),
            short(l),
            deadline_jobs.map(|d| format!(" (it needs {d} Jobs)")).unwrap_or_default()
        )),
        (None, _) if cost.deadline.is_some() && ctx.job_rate.is_none() => reason.push_str(", no throughput measured yet: not pacing"),
        (None, _) => {}
    }
    if let Some(p) = ctx.pods.as_ref().filter(|p| !p.disrupted.is_empty()) {
        reason.push_str(&format!("; disrupted: {}", p.disrupted.join(", ")));
    }
    if !active {
        reason.push_str(&format!("; not active (<= {})", policy.activation));
    }
    BatchDecision {
        work,
        queued,
        orphaned,
        active,
        jobs_wanted,
        busy,
        jobs,
        bound,
        deadline_jobs,
        budget_jobs,
        cost_per_hour,
        job_rate: ctx.job_rate,
        finish_in,
        late_by,
        deadline_in: time_left,
        pods: ctx.pods.clone(),
        reading,
        reason,
    }
}

/// How fast one Job drains the queue, learned from successive readings: work done over a sliding
/// window divided by the Job-seconds spent on it.
///
/// A stream says exactly what was done (entries acknowledged); a keyed queue or an exporter's
/// gauge only shows its decrease, which arrivals hide: a lower bound, which makes the deadline
/// plan for more Jobs rather than fewer.
#[derive(Debug, Clone, Default)]
pub struct DrainRate {
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    /// Work done since the first reading.
    done: f64,
    /// Job-seconds spent since the first reading.
    busy_secs: f64,
    /// What the reading counts: a stream's acknowledged total, or a gauge's level.
    mark: f64,
}

/// Readings the rate is learned over, seconds.
pub const DRAIN_WINDOW: f64 = 600.0;

/// Job-seconds a rate needs behind it before the deadline uses it.
pub const DRAIN_MIN_JOB_SECS: f64 = 120.0;

impl DrainRate {
    /// Notes a reading at `at` (seconds, monotonic) with `busy` Jobs at work since the last one
    /// (`None`: unknown, and the interval teaches nothing).
    pub fn observe(&mut self, at: f64, reading: &QueueReading, busy: Option<u64>) {
        let (mark, gauge) = match reading {
            QueueReading::Stream { acked: Some(a), .. } => (*a as f64, false),
            // Without `entries-read` (Redis < 7) a stream's drain is not known.
            QueueReading::Stream { acked: None, .. } => {
                self.samples.clear();
                return;
            }
            QueueReading::Key { length, .. } => (*length as f64, true),
            QueueReading::Metric { count, size, .. } => (size.unwrap_or(*count), true),
        };
        let Some(last) = self.samples.back().copied() else {
            self.samples.push_back(Sample { at, done: 0.0, busy_secs: 0.0, mark });
            return;
        };
        let dt = at - last.at;
        if dt <= 0.0 {
            return;
        }
        let step = if gauge { (last.mark - mark).max(0.0) } else { mark - last.mark };
        if step < 0.0 {
            // The stream or its group was recreated: start over.
            self.samples.clear();
            self.samples.push_back(Sample { at, done: 0.0, busy_secs: 0.0, mark });
            return;
        }
        let busy_secs = last.busy_secs + busy.unwrap_or(0) as f64 * dt;
        let (done, busy_secs) = match busy {
            Some(_) => (last.done + step, busy_secs),
            // Work may have been done, by Jobs not counted: leave the interval out of both sums.
            None => (last.done, last.busy_secs),
        };
        self.samples.push_back(Sample { at, done, busy_secs, mark });
        while self.samples.len() > 2 && self.samples.front().is_some_and(|f| at - f.at > DRAIN_WINDOW) {
            self.samples.pop_front();
        }
    }

    /// Work units one busy Job completes per second over the window, once enough Job-seconds
    /// are behind it.
    pub fn per_job(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let job_secs = last.busy_secs - first.busy_secs;
        (job_secs >= DRAIN_MIN_JOB_SECS).then(|| (last.done - first.done) / job_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::queue::{Consumer, KeyKind};

    const FREE: CostPolicy = CostPolicy { gpu_hour_price: DEFAULT_SPOT_GPU_HOUR, gpus_per_job: 1, budget_per_hour: None, deadline: None };
    const LIST: BatchPolicy = BatchPolicy { target_size: 4.0, activation: 2.0, count: WorkCount::Waiting, cost: FREE };

    fn one(count: WorkCount) -> BatchPolicy {
        BatchPolicy { target_size: 1.0, activation: 0.0, count, cost: FREE }
    }

    fn consumer(name: &str, pending: u64, stale: u64, idle_s: u64) -> Consumer {
        Consumer { name: name.into(), pending, stale, idle: Duration::from_secs(idle_s) }
    }

    fn stream(lag: u64, consumers: Vec<Consumer>) -> QueueReading {
        let pending = consumers.iter().map(|c| c.pending).sum();
        let stale = consumers.iter().map(|c| c.stale).sum();
        QueueReading::Stream {
            lag,
            pending,
            stale,
            stale_idle: Duration::from_secs(120),
            stale_truncated: false,
            acked: Some(0),
            consumers,
        }
    }

    fn now() -> BatchContext {
        BatchContext { now: 1_000_000.0, ..Default::default() }
    }

    #[test]
    fn a_list_s_length_is_the_work_and_the_jobs_are_keda_s_ceiling() {
        let d = decide(&LIST, "jobs", QueueReading::Key { length: 9, kind: KeyKind::List }, &now());
        assert_eq!((d.work, d.active, d.jobs_wanted, d.bound), (9.0, true, 3, Bound::Queue));
        assert_eq!(d.reason, "9 items in jobs (LLEN) -> 3 Jobs of 4 items (KEDA: ceil(9 / 4)); $5.40/h");
        let d = decide(&LIST, "jobs", QueueReading::Key { length: 2, kind: KeyKind::List }, &now());
        assert!(!d.active && d.reason.ends_with("; not active (<= 2)"), "{}", d.reason);
    }

    #[test]
    fn a_stream_counts_lag_plus_stale_entries_as_waiting_and_adds_claimed_ones_as_outstanding() {
        let r = stream(6, vec![consumer("a", 3, 0, 1), consumer("b", 1, 1, 200)]);
        let waiting = decide(&one(WorkCount::Waiting), "s/g", r.clone(), &now());
        assert_eq!(waiting.work, 7.0, "6 undelivered + 1 whose consumer is gone");
        assert_eq!(waiting.busy, Some(1), "a holds fresh entries; b only a stale one");
        assert!(
            waiting
                .reason
                .starts_with("7 waiting in s/g: lag 6 + 1 of 4 pending idle > 2m (work to redo) -> 7 Jobs of 1 item (KEDA: ceil(7 / 1))"),
            "{}",
            waiting.reason
        );
        assert_eq!(decide(&one(WorkCount::Outstanding), "s/g", r, &now()).work, 10.0, "every entry not acknowledged");
    }

    #[test]
    fn an_exporter_s_size_metric_is_the_work_when_given_and_its_count_otherwise() {
        let p = BatchPolicy { target_size: 1000.0, ..one(WorkCount::Waiting) };
        let d = decide(&p, "embed", QueueReading::Metric { count: 12.0, size: Some(48_000.0), series: 1 }, &now());
        assert_eq!((d.work, d.jobs_wanted), (48_000.0, 48));
        assert!(
            d.reason.starts_with("48000 work units in embed (12 items, 1 series) -> 48 Jobs of 1000 work units (KEDA: ceil(48000 / 1000))"),
            "{}",
            d.reason
        );
        assert_eq!(decide(&p, "embed", QueueReading::Metric { count: 12.0, size: None, series: 2 }, &now()).work, 12.0);
    }

    fn pods(live: &[&str], working: u32, disrupted: &[&str]) -> JobPods {
        JobPods {
            live: live.iter().map(|s| s.to_string()).collect(),
            working,
            starting: live.len() as u32 - working,
            disrupted: disrupted.iter().map(|s| s.to_string()).collect(),
            on_nodes: live.len() as u32,
        }
    }

    #[test]
    fn entries_held_by_a_worker_whose_pod_is_gone_or_disrupted_are_waiting_before_their_claim_timeout() {
        // w1 at work, w2's pod is gone, w3 has its Spot notice, w4 just started (its pod not seen yet).
        let r = stream(2, vec![consumer("w1", 1, 0, 5), consumer("w2", 3, 1, 200), consumer("w3", 1, 0, 40), consumer("w4", 1, 0, 2)]);
        let ctx = BatchContext { pods: Some(pods(&["w1", "w3"], 1, &["w3:PreemptionByScheduler"])), ..now() };
        let d = decide(&one(WorkCount::Waiting), "s/g", r.clone(), &ctx);
        assert_eq!(d.orphaned, 3, "w2's 2 not yet stale + w3's 1; w4 is within the grace");
        assert_eq!(d.work, 2.0 + 1.0 + 3.0, "lag + stale + orphaned, each entry once");
        assert!(d.reason.contains("+ 3 held by workers whose pod is gone"), "{}", d.reason);
        assert!(d.reason.contains("disrupted: w3:PreemptionByScheduler"), "{}", d.reason);
        assert_eq!(d.busy, Some(1), "the pods' count of Jobs at work");
        let out = decide(&one(WorkCount::Outstanding), "s/g", r, &ctx);
        assert_eq!(out.work, 2.0 + 6.0, "outstanding already holds every pending entry: nothing added twice");
    }

    #[test]
    fn a_budget_caps_the_jobs_at_once_in_the_terms_of_each_strategy() {
        let cost = CostPolicy { gpu_hour_price: 2.0, gpus_per_job: 2, budget_per_hour: Some(20.0), deadline: None };
        // 5 Jobs of $4/h fit in $20/h. Waiting (accurate): 3 Jobs are busy, so 2 more.
        let busy = stream(40, vec![consumer("a", 1, 0, 1), consumer("b", 1, 0, 1), consumer("c", 1, 0, 1)]);
        let p = BatchPolicy { cost, ..one(WorkCount::Waiting) };
        let d = decide(&p, "s/g", busy.clone(), &now());
        assert_eq!((d.jobs, d.bound, d.work, d.budget_jobs), (5, Bound::Budget, 2.0, Some(5)));
        assert_eq!(d.cost_per_hour, 20.0);
        assert!(d.reason.contains("budget $20.00/h pays for 5 Jobs of $4.00/h: reporting 2"), "{}", d.reason);
        // A Job under its Spot notice still runs (and bills) until it exits: one fewer new Job.
        let ctx = BatchContext { pods: Some(pods(&["a", "b", "c", "d"], 3, &["d:TerminationByKubelet"])), ..now() };
        assert_eq!(decide(&p, "s/g", busy.clone(), &ctx).work, 1.0);
        // Outstanding (default): KEDA subtracts the running Jobs itself.
        let d = decide(&BatchPolicy { count: WorkCount::Outstanding, ..p }, "s/g", busy, &now());
        assert_eq!((d.jobs, d.work), (5, 5.0));
        // A queue the budget covers is not capped.
        let small = decide(&p, "s/g", stream(1, vec![]), &now());
        assert_eq!((small.bound, small.work), (Bound::Queue, 1.0));
    }

    #[test]
    fn a_deadline_runs_no_more_jobs_than_finish_in_time_and_says_when_it_cannot_be_met() {
        let hour = 3600.0;
        let cost = CostPolicy { deadline: Some(1_000_000.0 + 2.0 * hour), ..FREE };
        let p = BatchPolicy { target_size: 10.0, cost, ..one(WorkCount::Waiting) };
        // 1,000 waiting, a Job does 0.05 items/s (180/h); at 80 % that is 288 per Job in 2 h: 4 Jobs.
        let ctx = BatchContext { job_rate: Some(0.05), ..now() };
        let d = decide(&p, "s/g", stream(1000, vec![]), &ctx);
        assert_eq!((d.jobs_wanted, d.deadline_jobs, d.jobs, d.bound, d.work), (100, Some(4), 4, Bound::Deadline, 40.0));
        let finish = d.finish_in.expect("a rate gives a finish");
        assert!((finish - 1000.0 / (0.05 * 4.0)).abs() < 1e-6 && d.late_by.is_none(), "{finish}");
        assert!(d.reason.contains("4 finish by the deadline (in 2h)"), "{}", d.reason);
        // A budget of 2 Jobs cannot: the decision says by how much.
        let tight = BatchPolicy { cost: CostPolicy { budget_per_hour: Some(2.0 * DEFAULT_SPOT_GPU_HOUR), ..cost }, ..p };
        let d = decide(&tight, "s/g", stream(1000, vec![]), &ctx);
        assert_eq!((d.jobs, d.bound), (2, Bound::Budget));
        let late = d.late_by.expect("2 Jobs finish after the deadline");
        assert!((late - (1000.0 / (0.05 * 2.0) - 2.0 * hour)).abs() < 1e-6, "{late}");
        assert!(d.reason.contains("after the deadline (it needs 4 Jobs)"), "{}", d.reason);
        // No rate yet: the queue decides, and the reason says why it is not pacing.
        let d = decide(&p, "s/g", stream(1000, vec![]), &now());
        assert_eq!(d.bound, Bound::Queue);
        assert!(d.reason.ends_with("no throughput measured yet: not pacing"), "{}", d.reason);
    }

    #[test]
    fn the_drain_rate_is_work_done_per_busy_job_second_and_forgets_a_recreated_stream() {
        let acked = |a: u64| QueueReading::Stream {
            lag: 0,
            pending: 0,
            stale: 0,
            stale_idle: Duration::from_secs(60),
            stale_truncated: false,
            acked: Some(a),
            consumers: vec![],
        };
        let mut r = DrainRate::default();
        r.observe(0.0, &acked(100), Some(2));
        r.observe(30.0, &acked(106), Some(2));
        assert_eq!(r.per_job(), None, "60 Job-seconds are too few to plan with");
        r.observe(60.0, &acked(112), Some(2));
        assert_eq!(r.per_job(), Some(0.1), "12 entries over 120 Job-seconds");
        r.observe(90.0, &acked(3), Some(2));
        assert_eq!(r.per_job(), None, "a smaller acknowledged total is a new stream");
        let mut list = DrainRate::default();
        for (t, len) in [(0.0, 50), (60.0, 44), (120.0, 47), (180.0, 41)] {
            list.observe(t, &QueueReading::Key { length: len, kind: KeyKind::List }, Some(1));
        }
        assert_eq!(list.per_job(), Some(12.0 / 180.0), "only the decreases count: a lower bound when items arrive");
    }
}
