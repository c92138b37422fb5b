//! KEDA's side of a ScaledJob: its own Redis streams scaler's metric, and the Jobs a poll
//! creates from a metric under the `default` and `accurate` scaling strategies.
//!
//! Written from KEDA's sources (v2.20, `pkg/scalers/redis_streams_scaler.go`,
//! `pkg/scaling/scaledjob/metrics.go`, `pkg/scaling/executor/scale_jobs.go`) so the baseline
//! is KEDA as it runs, not as its docs summarise it. Note that the `accurate` rule in the code
//! compares `maxScale + running` with the maximum (not `maxScale + running - pending`).

use serde::Serialize;

/// A ScaledJob's `scalingStrategy.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// `maxScale - running Jobs`: the metric should include the running Jobs' work.
    Default,
    /// `maxScale - pending Jobs` (or `max - running` when that would exceed the maximum): the
    /// metric should exclude the running Jobs' work.
    Accurate,
}

impl Strategy {
    /// Its name in a ScaledJob.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Default => "default",
            Strategy::Accurate => "accurate",
        }
    }
}

/// What KEDA's `redis-streams` trigger reads from a stream with a `consumerGroup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamsMetric {
    /// `pendingEntriesCount` (the default): `XPENDING`'s count, entries delivered to the group
    /// and not acknowledged. Nothing is pending before a worker reads, so from zero Jobs it
    /// never starts one.
    PendingEntries,
    /// `lagCount`: the group's lag (`XINFO GROUPS`, Redis 7+), entries not yet delivered.
    /// Entries a dead worker holds are not in it.
    Lag,
}

impl StreamsMetric {
    /// The trigger's value from the group's counts. The trigger is active when it is above
    /// `activationLagCount` (default 0).
    pub fn value(self, lag: u64, pending: u64) -> u64 {
        match self {
            StreamsMetric::PendingEntries => pending,
            StreamsMetric::Lag => lag,
        }
    }

    /// The metadata key that selects it.
    pub fn key(self) -> &'static str {
        match self {
            StreamsMetric::PendingEntries => "pendingEntriesCount",
            StreamsMetric::Lag => "lagCount",
        }
    }
}

/// One poll's inputs beside the metric: the ScaledJob's Jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCounts {
    /// Jobs neither Complete nor Failed.
    pub running: u64,
    /// Of those, Jobs whose pod is not Running/Succeeded (or, with `pendingPodConditions`, does
    /// not meet them yet).
    pub pending: u64,
}

/// Jobs one poll creates (`minReplicaCount` 0): `maxScale = ceil(min(metric / target,
/// maxReplicaCount))`, the strategy's effective maximum, then `min(ceil(metric), effective)`
/// if the trigger is active.
pub fn jobs_to_create(strategy: Strategy, metric: f64, target: f64, max_replicas: u64, jobs: JobCounts, active: bool) -> u64 {
    if !active || target <= 0.0 {
        return 0;
    }
    let metric = metric.max(0.0);
    let max_scale = (metric / target).min(max_replicas as f64).ceil() as i64;
    let (running, pending, max) = (jobs.running as i64, jobs.pending as i64, max_replicas as i64);
    let effective = match strategy {
        Strategy::Default => max_scale - running,
        Strategy::Accurate => {
            if max_scale + running > max {
                max - running
            } else {
                max_scale - pending
            }
        }
    };
    let scale_to = metric.ceil() as i64;
    scale_to.min(effective).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: JobCounts = JobCounts { running: 0, pending: 0 };

    #[test]
    fn the_spec_s_worked_example_creates_three_jobs_under_either_strategy() {
        // Target 5, queue 12, max 10, none running: maxScale 3.
        for s in [Strategy::Default, Strategy::Accurate] {
            assert_eq!(jobs_to_create(s, 12.0, 5.0, 10, NONE, true), 3, "{s:?}");
        }
    }

    #[test]
    fn default_subtracts_running_jobs_and_accurate_subtracts_pending_ones_until_the_maximum() {
        let jobs = JobCounts { running: 4, pending: 1 };
        // maxScale 6: default 6 - 4; accurate 6 + 4 <= 10, so 6 - 1.
        assert_eq!(jobs_to_create(Strategy::Default, 6.0, 1.0, 10, jobs, true), 2);
        assert_eq!(jobs_to_create(Strategy::Accurate, 6.0, 1.0, 10, jobs, true), 5);
        // maxScale 8: 8 + 4 > 10, so accurate fills up to the maximum: 10 - 4.
        assert_eq!(jobs_to_create(Strategy::Accurate, 8.0, 1.0, 10, jobs, true), 6);
        // maxScale is capped at the maximum before the strategy: default 10 - 4.
        assert_eq!(jobs_to_create(Strategy::Default, 500.0, 1.0, 10, jobs, true), 6);
    }

    #[test]
    fn no_job_is_created_when_inactive_or_below_the_running_ones_and_never_more_than_the_metric() {
        assert_eq!(jobs_to_create(Strategy::Accurate, 12.0, 5.0, 10, NONE, false), 0);
        assert_eq!(jobs_to_create(Strategy::Default, 3.0, 1.0, 10, JobCounts { running: 5, pending: 0 }, true), 0);
        // scaleTo is the metric itself: 2 items with a target of 0.5 make maxScale 4, but 2 Jobs.
        assert_eq!(jobs_to_create(Strategy::Default, 2.0, 0.5, 10, NONE, true), 2);
    }

    #[test]
    fn keda_s_pending_entries_metric_is_zero_before_any_worker_reads_and_lag_is_not() {
        assert_eq!(StreamsMetric::PendingEntries.value(1000, 0), 0);
        assert_eq!(StreamsMetric::Lag.value(1000, 0), 1000);
        assert_eq!(StreamsMetric::Lag.value(0, 3), 0, "a dead worker's entries are not lag");
    }
}
