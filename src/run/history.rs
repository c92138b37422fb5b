//! Keeping one ScaledObject's learned state across restarts and failover: read once before its
//! first tick, written every `history_interval` and when its collection stops for idleness. A
//! process shutdown aborts the collectors: what was recorded since the last write (at most one
//! interval) is lost, and the other replica, which recorded the same fleet, fills it in at its
//! next write through the merge. Every failure is a log line naming the ScaledObject and the
//! ConfigMap, never a crash: the scaler then runs with what it has (a cold forecaster forecasts
//! nothing for a day and says so).

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::{
    decide::{Decider, calibrate::CalibrationState, forecast::Forecaster},
    run::history_store::{HistoryStore, SavedState, StoreError},
};

/// Tries per write when another replica keeps winning the race.
const TRIES: usize = 3;

/// The persistence of one collector.
#[derive(Debug)]
pub struct Persistence {
    store: HistoryStore,
    namespace: String,
    name: String,
    every: Duration,
    /// The `resourceVersion` last read or written (`None`: the ConfigMap does not exist yet).
    version: Option<String>,
    next: Instant,
}

impl Persistence {
    /// Persistence of `namespace/name` in `store`, written every `every`.
    pub fn new(store: HistoryStore, namespace: &str, name: &str, every: Duration) -> Self {
        Persistence { store, namespace: namespace.into(), name: name.into(), every, version: None, next: Instant::now() + every }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Loads the saved state into `decider` and gives it back. A missing ConfigMap is a first
    /// start; a foreign or bad one is ignored (logged, and overwritten at the next write); an API
    /// failure leaves the decider cold. Restoring a week backtests every model over its last day
    /// (~3 s of CPU, `benches/forecast.rs`), so it runs on the blocking pool, not on a runtime
    /// worker that other ScaledObjects' ticks and KEDA's calls share.
    pub async fn restore(&mut self, decider: &mut Decider) {
        let cm = HistoryStore::config_map_name(&self.namespace, &self.name);
        match self.store.load(&self.namespace, &self.name).await {
            Ok(None) => info!(configmap = %cm, "no saved history: starting cold"),
            Ok(Some(loaded)) => {
                self.version = Some(loaded.resource_version);
                if let Some(h) = loaded.state.history {
                    let buckets = h.values.len();
                    let Some(spec) = decider.forecast_spec().cloned() else {
                        info!(configmap = %cm, "forecastMode is off: saved demand history not used");
                        return self.restore_capacity(decider, loaded.state.capacity, &cm);
                    };
                    let restored = tokio::task::spawn_blocking(move || {
                        let mut f = Forecaster::new(spec);
                        f.restore(&h).map(|()| f)
                    })
                    .await;
                    match restored {
                        Ok(Ok(f)) => match decider.install_forecaster(f) {
                            Ok(()) => info!(configmap = %cm, buckets, "demand history restored"),
                            Err(e) => warn!(configmap = %cm, reason = %e, "saved demand history ignored"),
                        },
                        Ok(Err(e)) => warn!(configmap = %cm, reason = %e, "saved demand history ignored"),
                        // Only a panic in the forecaster gets here.
                        Err(e) => warn!(configmap = %cm, error = %e, "restoring the demand history failed: starting cold"),
                    }
                }
                self.restore_capacity(decider, loaded.state.capacity, &cm);
            }
            Err(StoreError::Foreign { name, problem }) => {
                // Overwritten at the next write: its version is needed for that.
                warn!(configmap = %name, reason = %problem, "saved state ignored");
                match self.store.version(&self.namespace, &self.name).await {
                    Ok(v) => self.version = v,
                    Err(e) => warn!(configmap = %cm, error = %e, "cannot read its version"),
                }
            }
            Err(e) => warn!(configmap = %cm, error = %e, "cannot read saved state: starting cold"),
        }
    }

    fn restore_capacity(&self, decider: &mut Decider, capacity: Option<CalibrationState>, cm: &str) {
        if let Some(c) = capacity {
            match decider.restore_capacity(c) {
                Ok(()) => info!(configmap = %cm, capacity = ?decider.learned_capacity(), "learned capacity restored"),
                Err(e) => warn!(configmap = %cm, reason = %e, "saved learned capacity ignored"),
            }
        }
    }

    /// Writes the state when due.
    pub async fn maybe_save(&mut self, decider: &Decider, calendar_s: u64) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + self.every;
        self.save(decider, calendar_s).await;
    }

    /// Writes the state now. On a conflict (another replica wrote since), reads theirs, merges
    /// its history into ours and writes over its version.
    pub async fn save(&mut self, decider: &Decider, calendar_s: u64) {
        let mut state = SavedState {
            scaled_object: self.key(),
            saved_at_s: calendar_s,
            history: decider.history_snapshot(),
            capacity: decider.capacity_snapshot(),
        };
        if state.history.is_none() && state.capacity.is_none() {
            return;
        }
        let cm = HistoryStore::config_map_name(&self.namespace, &self.name);
        for _ in 0..TRIES {
            match self.store.save(&state, self.version.as_deref()).await {
                Ok(v) => {
                    self.version = Some(v);
                    return;
                }
                Err(StoreError::Conflict(_)) => match self.store.load(&self.namespace, &self.name).await {
                    Ok(Some(theirs)) => {
                        state.history = match (state.history.take(), theirs.state.history) {
                            (Some(ours), Some(t)) => Some(ours.merged_with(&t)),
                            (ours, t) => ours.or(t),
                        };
                        self.version = Some(theirs.resource_version);
                    }
                    Ok(None) => self.version = None,
                    Err(e) => {
                        warn!(configmap = %cm, error = %e, "cannot re-read saved state after a conflict");
                        return;
                    }
                },
                Err(e) => {
                    warn!(configmap = %cm, error = %e, "cannot save state");
                    return;
                }
            }
        }
        warn!(configmap = %cm, tries = TRIES, "state not saved: another scaler kept writing it");
    }
}
