//! A batch target's decision: from what the queue holds to the work reported to KEDA, pure.
//!
//! KEDA's ScaledJob turns the metric into Jobs itself (`maxScale = min(ceil(work / targetSize),
//! maxReplicaCount)`, then its scaling strategy subtracts running Jobs or not), so the decision's
//! one number is the work, counted as the trigger's `workCount` says; the Jobs it implies are
//! shown to explain it, not sent.

use serde::Serialize;

use crate::read::queue::QueueReading;

/// What of a stream counts as work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkCount {
    /// Entries nobody works on: not yet delivered to the group (lag), plus delivered entries
    /// idle for longer than the claim timeout (their consumer is presumed dead, e.g. a
    /// preempted Spot pod: work to redo). Pair with KEDA's `accurate` strategy, which assumes
    /// the count excludes the running Jobs' items.
    Waiting,
    /// Waiting plus the entries being worked on (pending, not idle too long). Pair with KEDA's
    /// `default` strategy (`maxScale - running Jobs`), which expects the running Jobs' work
    /// inside the count.
    Outstanding,
}

/// How a batch target turns work into its answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchPolicy {
    /// Work one Job takes, items (the AverageValue target KEDA divides by).
    pub target_size: f64,
    /// Active above this much work.
    pub activation: f64,
    /// What of a stream counts (a keyed queue holds waiting items only).
    pub count: WorkCount,
}

/// What a batch target reports, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchDecision {
    /// The work reported to KEDA (`GetMetrics`), items.
    pub work: f64,
    /// `IsActive`: work above the activation threshold.
    pub active: bool,
    /// Jobs KEDA's `ceil(work / targetSize)` asks for (before `maxReplicaCount` and the
    /// strategy's subtraction of running Jobs).
    pub jobs_wanted: u64,
    /// What the queue held.
    pub reading: QueueReading,
    /// One line saying all of it.
    pub reason: String,
}

/// Decides from one reading of the queue `label` names.
pub fn decide(policy: &BatchPolicy, label: &str, reading: QueueReading) -> BatchDecision {
    let (work, what) = match reading {
        QueueReading::Key { length, kind } => (length as f64, format!("{length} items in {label} ({})", kind.command())),
        QueueReading::Stream { lag, pending, stale, stale_idle, stale_truncated } => {
            let at_least = if stale_truncated { "at least " } else { "" };
            let redo = format!("{at_least}{stale} of {pending} pending idle > {} (work to redo)", humantime::format_duration(stale_idle));
            match policy.count {
                WorkCount::Waiting => ((lag + stale) as f64, format!("{} waiting in {label}: lag {lag} + {redo}", lag + stale)),
                WorkCount::Outstanding => {
                    ((lag + pending) as f64, format!("{} outstanding in {label}: lag {lag} + {pending} pending ({redo})", lag + pending))
                }
            }
        }
        QueueReading::Metric { count, size: None, series } => (count, format!("{count} in {label} ({series} series)")),
        QueueReading::Metric { count, size: Some(size), series } => {
            (size, format!("{size} work units in {label} ({count} items, {series} series)"))
        }
    };
    // An exporter's gauge below zero (a counter reset mid-scrape, a buggy exporter) is no
    // negative work.
    let work = work.max(0.0);
    let jobs_wanted = (work / policy.target_size).ceil() as u64;
    let active = work > policy.activation;
    let (one, many) = match reading {
        QueueReading::Metric { size: Some(_), .. } => ("work unit", "work units"),
        _ => ("item", "items"),
    };
    let per_job = if policy.target_size == 1.0 { format!("1 {one}") } else { format!("{} {many}", policy.target_size) };
    let reason = format!(
        "{what} -> {jobs_wanted} Jobs of {per_job} (KEDA: ceil({work} / {})){}",
        policy.target_size,
        if active { String::new() } else { format!("; not active (<= {})", policy.activation) }
    );
    BatchDecision { work, active, jobs_wanted, reading, reason }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::read::queue::KeyKind;

    const LIST: BatchPolicy = BatchPolicy { target_size: 4.0, activation: 2.0, count: WorkCount::Waiting };

    #[test]
    fn a_list_s_length_is_the_work_and_the_jobs_are_keda_s_ceiling() {
        let d = decide(&LIST, "jobs", QueueReading::Key { length: 9, kind: KeyKind::List });
        assert_eq!((d.work, d.active, d.jobs_wanted), (9.0, true, 3));
        assert_eq!(d.reason, "9 items in jobs (LLEN) -> 3 Jobs of 4 items (KEDA: ceil(9 / 4))");
        let d = decide(&LIST, "jobs", QueueReading::Key { length: 2, kind: KeyKind::List });
        assert!(!d.active && d.reason.ends_with("; not active (<= 2)"), "{}", d.reason);
    }

    #[test]
    fn a_stream_counts_lag_plus_stale_entries_as_waiting_and_adds_claimed_ones_as_outstanding() {
        let r = QueueReading::Stream { lag: 6, pending: 4, stale: 1, stale_idle: Duration::from_secs(120), stale_truncated: false };
        let one = |count| BatchPolicy { target_size: 1.0, activation: 0.0, count };
        let waiting = decide(&one(WorkCount::Waiting), "s/g", r);
        assert_eq!(waiting.work, 7.0, "6 undelivered + 1 whose consumer is gone");
        assert_eq!(
            waiting.reason,
            "7 waiting in s/g: lag 6 + 1 of 4 pending idle > 2m (work to redo) -> 7 Jobs of 1 item (KEDA: ceil(7 / 1))"
        );
        assert_eq!(decide(&one(WorkCount::Outstanding), "s/g", r).work, 10.0, "every entry not acknowledged");
    }

    #[test]
    fn an_exporter_s_size_metric_is_the_work_when_given_and_its_count_otherwise() {
        let p = BatchPolicy { target_size: 1000.0, activation: 0.0, count: WorkCount::Waiting };
        let d = decide(&p, "embed", QueueReading::Metric { count: 12.0, size: Some(48_000.0), series: 1 });
        assert_eq!((d.work, d.jobs_wanted), (48_000.0, 48));
        assert_eq!(d.reason, "48000 work units in embed (12 items, 1 series) -> 48 Jobs of 1000 work units (KEDA: ceil(48000 / 1000))");
        assert_eq!(decide(&p, "embed", QueueReading::Metric { count: 12.0, size: None, series: 2 }).work, 12.0);
    }
}
