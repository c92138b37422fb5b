//! Collecting every ScaledObject that names this scaler from the scaler's start, before KEDA's
//! first call about it, and for as long as it exists: each served namespace's ScaledObjects are
//! watched (`discovery::kube::scaled_objects`), and every scrape interval each trigger naming
//! this scaler is registered (or touched) exactly as KEDA's call would, with the same metadata,
//! so the call finds it warm. A ScaledObject deleted is no longer touched and stops being
//! collected after the idle timeout, as one KEDA stopped asking about.

use std::{collections::HashSet, sync::Arc, time::Duration};

use tracing::{info, warn};

use crate::{
    discovery::kube::scaled_objects::{ScaledObjectWatch, triggers_naming},
    run::registry::Registry,
};

/// How long the first lists (all namespaces together) may take before the scaler reports
/// ready anyway.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// The ScaledObjects of some namespaces, kept registered while they name this scaler.
pub struct Prewarm {
    registry: Arc<Registry>,
    watches: Vec<ScaledObjectWatch>,
    address: String,
    /// Logged once each: ScaledObjects that cannot be kept warm, and those that are.
    reported: HashSet<(String, String)>,
    warm: HashSet<(String, String)>,
}

impl Prewarm {
    /// Keeps the ScaledObjects of `watches` naming `address` registered in `registry`.
    pub fn new(registry: Arc<Registry>, watches: Vec<ScaledObjectWatch>, address: String) -> Self {
        Prewarm { registry, watches, address, reported: HashSet::new(), warm: HashSet::new() }
    }

    /// Waits for every watch's first list (at most [`SYNC_TIMEOUT`]) and registers what it
    /// found: done before the scaler reports ready, so its first ticks run before KEDA's call.
    pub async fn first_round(&mut self) {
        let all = futures::future::join_all(self.watches.iter().map(ScaledObjectWatch::wait_synced));
        if tokio::time::timeout(SYNC_TIMEOUT, all).await.is_err() {
            warn!(timeout = ?SYNC_TIMEOUT, "ScaledObject lists not complete yet: warming what is known");
        }
        self.round();
    }

    /// Registers (or touches) every trigger naming this scaler, every `every`, forever.
    pub async fn run(mut self, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            self.round();
        }
    }

    fn round(&mut self) {
        for w in &self.watches {
            for obj in w.snapshot() {
                for t in triggers_naming(&obj, &self.address) {
                    match t {
                        Ok(t) => {
                            let key = (t.namespace.clone(), t.name.clone());
                            match self.registry.get_or_register(&t.namespace, &t.name, &t.metadata) {
                                Ok(_) => {
                                    if self.warm.insert(key) {
                                        info!(namespace = %t.namespace, scaledobject = %t.name, "kept warm from the ScaledObject watch");
                                    }
                                }
                                Err(e) => {
                                    if self.reported.insert(key) {
                                        warn!(namespace = %t.namespace, scaledobject = %t.name, error = %e,
                                            "cannot keep warm: its metadata is refused (KEDA's call will get the same error)");
                                    }
                                }
                            }
                        }
                        Err((name, why)) => {
                            let ns = obj.metadata.namespace.clone().unwrap_or_default();
                            if self.reported.insert((ns.clone(), name.clone())) {
                                info!(namespace = %ns, scaledobject = %name, reason = ?why, "not kept warm: collected from KEDA's first call");
                            }
                        }
                    }
                }
            }
        }
    }
}
