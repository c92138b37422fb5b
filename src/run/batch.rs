//! One batch target (a ScaledJob's queue): its store and its loop, read queue -> decide -> store.
//!
//! Like a serving target's collector, the loop runs every collection interval and never inside
//! an RPC, so KEDA's calls are answered from memory; it stops when nobody asked about the
//! ScaledJob for the idle timeout. A failed read keeps the last count until it goes stale and is
//! then `UNAVAILABLE`: KEDA never reads a Redis outage as an empty queue.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    sync::watch,
    time::{Instant, MissedTickBehavior},
};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    decide::batch::{BatchContext, BatchDecision, DrainRate, decide},
    discovery::kube::PodWatch,
    read::queue::QueueMetricExtractor,
    run::{
        cost::Ledger,
        job_pods::job_pods,
        target::{Presence, Shared, TargetKey},
        telemetry::JobLabels,
    },
    spec::batch::{BatchSpec, QueueSource},
};

/// One served batch trigger.
pub struct BatchTarget {
    /// Identity (namespace, ScaledJob name, metadata fingerprint).
    pub key: TargetKey,
    /// The metadata as received.
    pub meta: HashMap<String, String>,
    /// Parsed spec.
    pub spec: Arc<BatchSpec>,
    /// The latest decision.
    pub store: BatchStore,
    /// When it was last asked about, its push streams and its loop.
    pub presence: Arc<Presence>,
    /// The ScaledJob's pods (`watchPods`).
    pub pods: Option<PodWatch>,
    /// What one Job does per second, learned from the queue's drain.
    drain: Mutex<DrainRate>,
    /// What the Job pods on nodes cost so far (with `watchPods`), shared with any other target
    /// of this ScaledJob (see [`cost::Ledgers`]).
    ledger: Arc<Mutex<Ledger>>,
}

impl BatchTarget {
    /// A target whose loop is not started yet, charging its Job pods into `ledger`.
    pub fn new(
        key: TargetKey,
        meta: HashMap<String, String>,
        spec: BatchSpec,
        stale_after: Duration,
        pods: Option<PodWatch>,
        ledger: Arc<Mutex<Ledger>>,
    ) -> Self {
        BatchTarget {
            key,
            meta,
            spec: Arc::new(spec),
            store: BatchStore::new(stale_after),
            presence: Arc::default(),
            pods,
            drain: Mutex::default(),
            ledger,
        }
    }

    /// Its metrics' labels.
    pub fn labels(&self) -> JobLabels {
        JobLabels { namespace: self.key.namespace.clone(), scaledjob: self.key.name.clone() }
    }
}

#[derive(Debug, Default)]
struct Latest {
    decision: Option<(Instant, Arc<BatchDecision>)>,
    last_error: Option<String>,
    spent: Option<f64>,
}

/// The latest decision of a batch target, as the RPCs read it.
#[derive(Debug)]
pub struct BatchStore {
    inner: RwLock<Latest>,
    stale_after: Duration,
    active: watch::Sender<bool>,
}

impl BatchStore {
    /// Empty: unavailable until the first read.
    pub fn new(stale_after: Duration) -> Self {
        BatchStore { inner: RwLock::default(), stale_after, active: watch::channel(false).0 }
    }

    /// Stores a decision made at `now`.
    pub fn publish(&self, d: BatchDecision, now: Instant) {
        let active = d.active;
        {
            let mut w = self.inner.write().unwrap_or_else(|p| p.into_inner());
            w.decision = Some((now, Arc::new(d)));
            w.last_error = None;
        }
        self.active.send_if_modified(|cur| std::mem::replace(cur, active) != active);
    }

    /// Notes what the Job pods cost so far (`None` while their pods are not known).
    pub fn record_spend(&self, dollars: Option<f64>) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).spent = dollars;
    }

    /// Notes a failed read; the previous decision is served until it goes stale.
    pub fn record_problem(&self, why: String) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).last_error = Some(why);
    }

    /// The latest decision (fresh or not), its age at `now`, and the latest read error.
    pub fn view(&self, now: Instant) -> BatchView {
        let r = self.inner.read().unwrap_or_else(|p| p.into_inner());
        BatchView {
            decision: r.decision.as_ref().map(|(_, d)| d.clone()),
            age_seconds: r.decision.as_ref().map(|(at, _)| now.saturating_duration_since(*at).as_secs_f64()),
            fresh: r.decision.as_ref().is_some_and(|(at, _)| now.saturating_duration_since(*at) <= self.stale_after),
            last_error: r.last_error.clone(),
            dollars_total: r.spent,
        }
    }

    /// A fresh decision at `now`, or why there is none (for the `UNAVAILABLE` message).
    pub fn answer(&self, now: Instant) -> Result<Arc<BatchDecision>, String> {
        let r = self.inner.read().unwrap_or_else(|p| p.into_inner());
        match &r.decision {
            Some((at, d)) if now.saturating_duration_since(*at) <= self.stale_after => Ok(d.clone()),
            Some((at, _)) => Err(format!(
                "latest queue reading is {:.0?} old (stale after {:?}); {}",
                now.saturating_duration_since(*at),
                self.stale_after,
                r.last_error.as_deref().unwrap_or("the queue could not be read since")
            )),
            None => Err(match &r.last_error {
                Some(e) => format!("no queue reading yet: {e}"),
                None => "no queue reading yet: the first read has not finished".to_string(),
            }),
        }
    }

    /// Watches the "work waits" flag (for `StreamIsActive`).
    pub fn subscribe_active(&self) -> watch::Receiver<bool> {
        self.active.subscribe()
    }
}

/// A batch target's latest decision as the HTTP API shows it.
#[derive(Debug, serde::Serialize)]
pub struct BatchView {
    /// The latest decision.
    pub decision: Option<Arc<BatchDecision>>,
    /// Its age.
    pub age_seconds: Option<f64>,
    /// Whether KEDA is answered from it (else `UNAVAILABLE`).
    pub fresh: bool,
    /// The latest failed read, if the last read failed.
    pub last_error: Option<String>,
    /// Dollars the Job pods on nodes cost since this scaler began watching them: pods x GPUs
    /// per Job x `gpuHourPrice` (the Spot price), integrated tick by tick; `None` without
    /// `watchPods` or before the pods are listed (unknown, not free).
    pub dollars_total: Option<f64>,
}

/// Reads the queue every interval until the target expires.
pub async fn run(shared: Arc<Shared>, target: Arc<BatchTarget>) {
    let span = info_span!("scaledjob", namespace = %target.key.namespace, name = %target.key.name);
    async move {
        let mut ticker = tokio::time::interval(shared.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if target.presence.expired(shared.origin, shared.settings.idle_timeout) {
                info!(idle_for = ?target.presence.idle_for(shared.origin), "no RPC about this ScaledJob for a while: stopping");
                break;
            }
            tick(&shared, &target).await;
        }
    }
    .instrument(span)
    .await
}

async fn tick(shared: &Shared, target: &BatchTarget) {
    let read = match &target.spec.source {
        QueueSource::Redis { endpoint, queue } => shared.redis.read(endpoint, queue).await.map_err(|e| e.to_string()),
        QueueSource::Prometheus { url, metric, labels, size_metric } => {
            let mut x = QueueMetricExtractor::new(metric, size_metric.as_deref(), labels);
            match shared.scraper.scrape(url, &mut x).await {
                Ok(_) => x.finish().map_err(|e| format!("{url}: {e}")),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let pods = target.pods.as_ref().and_then(|w| {
        if !w.is_synced() {
            debug!("the ScaledJob's pods are not listed yet: deciding without them");
            return None;
        }
        Some(job_pods(w.pods().iter().map(|p| p.as_ref())))
    });
    charge(shared, target, pods.as_ref().map(|p| p.on_nodes));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let job_rate = target.drain.lock().unwrap_or_else(|p| p.into_inner()).per_job();
    let ctx = BatchContext { now, pods, job_rate };
    match read.map(|r| decide(&target.spec.policy, &target.spec.source.label(), r, &ctx)) {
        Ok(d) => {
            let at = Instant::now();
            target.drain.lock().unwrap_or_else(|p| p.into_inner()).observe(
                at.saturating_duration_since(shared.origin).as_secs_f64(),
                &d.reading,
                d.busy,
            );
            info!(
                work = d.work,
                queued = d.queued,
                jobs_wanted = d.jobs_wanted,
                jobs = d.jobs,
                bound = ?d.bound,
                cost_per_hour = d.cost_per_hour,
                finish_in_s = d.finish_in,
                reason = %d.reason,
                "decision"
            );
            shared.metrics.batch_decision(&target.labels(), &d);
            target.store.publish(d, at);
        }
        Err(e) => {
            warn!(error = %e, "queue read failed");
            shared.metrics.batch_read_error(&target.labels());
            target.store.record_problem(e);
        }
    }
}

/// Charges the Job pods on nodes for the interval since the last tick, at the Spot price of
/// their GPUs. Without their pods (no `watchPods`, not listed yet) the cost is unknown: its
/// series is dropped and the interval is not charged.
fn charge(shared: &Shared, target: &BatchTarget, on_nodes: Option<u32>) {
    let now = Instant::now().saturating_duration_since(shared.origin);
    let spent = {
        let mut ledger = target.ledger.lock().unwrap_or_else(|p| p.into_inner());
        match on_nodes {
            Some(n) => Some(ledger.spend.charge(now, f64::from(n) * target.spec.policy.cost.job_hour())),
            None => {
                ledger.spend.interrupt();
                None
            }
        }
    };
    shared.metrics.batch_spend(&target.labels(), spent);
    target.store.record_spend(spent);
}
