//! The latest decision per ScaledObject, as the RPCs and the HTTP API read it.
//!
//! The collector writes here once per tick; every RPC only reads (a short read lock, no I/O).
//! A decision older than the staleness window is not served: the RPC answers `UNAVAILABLE` so
//! KEDA and the HPA hold the current size instead of acting on old or missing data.

use std::{
    collections::VecDeque,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use tokio::{sync::watch, time::Instant};

use crate::{
    decide::policy::{Decision, Outcome, Signal},
    run::cost::CostReading,
};

/// How many past decisions the HTTP API shows.
const HISTORY: usize = 60;

/// A past decision, compact.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Unix time in milliseconds.
    pub at_unix_ms: u64,
    /// Replicas decided.
    pub desired_replicas: u32,
    /// Ready + starting at the time.
    pub current_replicas: u32,
    /// Up, down or hold.
    pub outcome: Outcome,
    /// Deciding signal.
    pub dominant: Option<Signal>,
    /// Blended demand.
    pub demand: f64,
    /// Explanation.
    pub reason: String,
}

/// What an RPC gets.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A fresh decision.
    Fresh(Arc<Decision>),
    /// No usable decision, with the reason (for the gRPC status message).
    Unavailable(String),
}

#[derive(Debug, Default)]
struct Inner {
    latest: Option<Arc<Decision>>,
    decided_at: Option<Instant>,
    decided_unix_ms: u64,
    last_error: Option<String>,
    history: VecDeque<HistoryEntry>,
    cost: Option<CostReading>,
}

/// Decision store of one ScaledObject.
#[derive(Debug)]
pub struct DecisionStore {
    inner: RwLock<Inner>,
    stale_after: Duration,
    active: watch::Sender<bool>,
}

/// JSON view for `/api/v1/decisions`.
#[derive(Debug, Serialize)]
pub struct StoreView {
    /// Latest decision, if any.
    pub latest: Option<Arc<Decision>>,
    /// Unix ms of the latest decision.
    pub decided_at_unix_ms: Option<u64>,
    /// Age of the latest decision in seconds.
    pub age_seconds: Option<f64>,
    /// Whether RPCs currently serve it.
    pub fresh: bool,
    /// Latest problem (scrape failures, discovery errors), if any.
    pub last_error: Option<String>,
    /// Recent decisions, newest last.
    pub history: Vec<HistoryEntry>,
    /// The fleet's cost at the latest count of its pods (`None` before the first).
    pub cost: Option<CostReading>,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl DecisionStore {
    /// An empty store: RPCs answer unavailable until the first decision.
    pub fn new(stale_after: Duration) -> Self {
        DecisionStore { inner: RwLock::new(Inner::default()), stale_after, active: watch::channel(false).0 }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new decision made at `now`.
    pub fn publish(&self, d: Decision, now: Instant) {
        let active = d.active;
        let at = unix_ms();
        let entry = HistoryEntry {
            at_unix_ms: at,
            desired_replicas: d.desired_replicas,
            current_replicas: d.current_replicas,
            outcome: d.outcome,
            dominant: d.dominant,
            demand: d.demand,
            reason: d.reason.clone(),
        };
        {
            let mut w = self.write();
            w.latest = Some(Arc::new(d));
            w.decided_at = Some(now);
            w.decided_unix_ms = at;
            w.last_error = None;
            if w.history.len() == HISTORY {
                w.history.pop_front();
            }
            w.history.push_back(entry);
        }
        self.active.send_if_modified(|cur| std::mem::replace(cur, active) != active);
    }

    /// Stores the fleet's cost at the latest count of its pods.
    pub fn record_cost(&self, cost: CostReading) {
        self.write().cost = Some(cost);
    }

    /// Notes a tick that produced no decision; the previous one is served until it goes stale.
    pub fn record_problem(&self, reason: String) {
        self.write().last_error = Some(reason);
    }

    /// What an RPC should answer at `now`.
    pub fn answer(&self, now: Instant) -> Answer {
        let r = self.read();
        match (&r.latest, r.decided_at) {
            (Some(d), Some(at)) if now.saturating_duration_since(at) <= self.stale_after => Answer::Fresh(d.clone()),
            (Some(_), Some(at)) => Answer::Unavailable(format!(
                "latest decision is {:.0?} old (stale after {:?}); {}",
                now.saturating_duration_since(at),
                self.stale_after,
                r.last_error.as_deref().unwrap_or("no pod could be scraped since")
            )),
            _ => Answer::Unavailable(match &r.last_error {
                Some(e) => format!("no decision yet: {e}"),
                None => "no decision yet: the first scrape of this fleet has not finished".to_string(),
            }),
        }
    }

    /// Watches the "fleet has work" flag (for `StreamIsActive`).
    pub fn subscribe_active(&self) -> watch::Receiver<bool> {
        self.active.subscribe()
    }

    /// JSON view.
    pub fn view(&self, now: Instant) -> StoreView {
        let r = self.read();
        let age = r.decided_at.map(|at| now.saturating_duration_since(at));
        StoreView {
            latest: r.latest.clone(),
            decided_at_unix_ms: r.latest.as_ref().map(|_| r.decided_unix_ms),
            age_seconds: age.map(|a| a.as_secs_f64()),
            fresh: age.is_some_and(|a| a <= self.stale_after),
            last_error: r.last_error.clone(),
            history: r.history.iter().cloned().collect(),
            cost: r.cost.clone(),
        }
    }
}
