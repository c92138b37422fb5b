//! The ScaledObjects the scaler serves: metadata parsed once, one collector each, expiry.
//!
//! An RPC looks its ScaledObject up by (namespace, name, metadata fingerprint) under a read lock.
//! The first call with a new metadata map parses it into a [`ScalerSpec`] (bad metadata is
//! refused before any state is created, so it cannot disturb another ScaledObject) and starts
//! that ScaledObject's collector. A collector nobody asked about for `idle_timeout` stops and is
//! forgotten. Two triggers of one ScaledObject with different metadata are two entries.
//!
//! Batch triggers (`mode: batch`, a ScaledJob's queue) are a second kind of entry with their own
//! spec and loop ([`crate::run::batch`]), kept in their own map under the same rules.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher},
    sync::{Arc, RwLock},
};

use crate::{
    discovery::{Discovery, FleetSource},
    run::{
        batch::{self, BatchTarget},
        collector,
        cost::{LedgerKind, max_gap},
        job_pods,
        target::{Shared, Target, TargetKey},
    },
    spec::{ParseContext, ScalerSpec, SpecError, batch::BatchSpec},
};

type Targets = Arc<RwLock<HashMap<TargetKey, Arc<Target>>>>;
type BatchTargets = Arc<RwLock<HashMap<TargetKey, Arc<BatchTarget>>>>;

/// All served ScaledObjects.
pub struct Registry {
    shared: Arc<Shared>,
    targets: Targets,
    batch: BatchTargets,
    hasher: std::hash::RandomState,
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Metadata did not validate.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The request lacks a name or namespace.
    #[error("ScaledObjectRef.{0} is empty; KEDA always sets it")]
    MissingField(&'static str),
}

impl Registry {
    /// An empty registry.
    pub fn new(shared: Shared) -> Self {
        Registry { shared: Arc::new(shared), targets: Arc::default(), batch: Arc::default(), hasher: std::hash::RandomState::new() }
    }

    /// Shared context.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn fingerprint(&self, meta: &HashMap<String, String>) -> u64 {
        // Sum of per-entry hashes: independent of the map's iteration order, no sorting.
        meta.iter().fold(0u64, |acc, (k, v)| {
            let mut h = self.hasher.build_hasher();
            k.hash(&mut h);
            v.hash(&mut h);
            acc.wrapping_add(h.finish())
        })
    }

    fn key(&self, namespace: &str, name: &str, meta: &HashMap<String, String>) -> Result<TargetKey, LookupError> {
        if name.is_empty() {
            return Err(LookupError::MissingField("name"));
        }
        if namespace.is_empty() {
            return Err(LookupError::MissingField("namespace"));
        }
        Ok(TargetKey { namespace: namespace.to_string(), name: name.to_string(), fingerprint: self.fingerprint(meta) })
    }

    /// Finds the batch trigger, or parses its metadata and starts reading its queue.
    pub fn get_or_register_batch(
        &self,
        namespace: &str,
        name: &str,
        meta: &HashMap<String, String>,
    ) -> Result<Arc<BatchTarget>, LookupError> {
        let key = self.key(namespace, name, meta)?;
        let s = &self.shared;
        let found = |map: &HashMap<TargetKey, Arc<BatchTarget>>| map.get(&key).filter(|t| &t.meta == meta).cloned();
        if let Some(t) = found(&self.batch.read().unwrap_or_else(|p| p.into_inner())) {
            t.presence.touch(s.origin);
            return Ok(t);
        }
        let spec = BatchSpec::parse(meta)?;
        let mut w = self.batch.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = found(&w) {
            t.presence.touch(s.origin);
            return Ok(t);
        }
        let pods = match (&s.discovery, spec.watch_pods) {
            (_, false) => None,
            (Discovery::Kube(k), true) => Some(k.watch_pods(namespace, &job_pods::selector(name))),
            (_, true) => {
                return Err(SpecError::Conflict {
                    key: "watchPods".into(),
                    problem: "needs Kubernetes discovery: this server runs without it (--no-kube)".into(),
                }
                .into());
            }
        };
        let ledger = s.ledgers.get(LedgerKind::ScaledJob, namespace, name, max_gap(s.settings.stale_after));
        let target = Arc::new(BatchTarget::new(key.clone(), meta.clone(), spec, s.settings.stale_after, pods, ledger));
        target.presence.touch(s.origin);
        tracing::info!(namespace, scaledjob = name, spec = ?target.spec, "reading new batch queue");
        let (shared, targets, t) = (s.clone(), self.batch.clone(), target.clone());
        target.presence.set_task(tokio::spawn(async move {
            batch::run(shared.clone(), t.clone()).await;
            let mut w = targets.write().unwrap_or_else(|p| p.into_inner());
            if w.get(&t.key).is_some_and(|x| Arc::ptr_eq(x, &t)) {
                w.remove(&t.key);
            }
            // An edited ScaledJob's new target writes the same series: leave them to it.
            if !w.keys().any(|k| same_name(k, &t.key)) {
                shared.metrics.forget_batch(&t.labels());
            }
        }));
        w.insert(key, target.clone());
        Ok(target)
    }

    /// Finds the ScaledObject, or parses its metadata and starts collecting it.
    pub fn get_or_register(&self, namespace: &str, name: &str, meta: &HashMap<String, String>) -> Result<Arc<Target>, LookupError> {
        let key = self.key(namespace, name, meta)?;
        if let Some(t) = self.read().get(&key).filter(|t| &t.meta == meta) {
            t.presence.touch(self.shared.origin);
            return Ok(t.clone());
        }
        let s = &self.shared;
        let spec = ScalerSpec::parse(
            meta,
            &ParseContext {
                namespace,
                policy_defaults: &s.policy_defaults,
                latency_defaults: &s.latency_defaults,
                allow_static_endpoints: s.allow_static_endpoints,
                kube_enabled: s.discovery.finds_pods(),
                namespace_access: &s.namespace_access,
                dcgm_selector: &s.dcgm_selector,
                gpu_hour_price: s.gpu_hour_price,
            },
        )?;
        let mut w = self.targets.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = w.get(&key).filter(|t| &t.meta == meta) {
            t.presence.touch(s.origin);
            return Ok(t.clone());
        }
        let fleet = FleetSource::new(namespace, name, &spec, &s.discovery)?;
        let target = Arc::new(Target::new(key.clone(), meta.clone(), spec, s.settings.stale_after));
        target.presence.touch(s.origin);
        tracing::info!(namespace, scaledobject = name, spec = ?target.spec, ?fleet, "collecting new ScaledObject");
        target.presence.set_task(tokio::spawn(Self::run(self.shared.clone(), self.targets.clone(), target.clone(), fleet)));
        w.insert(key, target.clone());
        s.metrics.set_targets(w.len());
        Ok(target)
    }

    async fn run(shared: Arc<Shared>, targets: Targets, target: Arc<Target>, fleet: FleetSource) {
        collector::run(shared.clone(), target.clone(), fleet).await;
        let mut w = targets.write().unwrap_or_else(|p| p.into_inner());
        if w.get(&target.key).is_some_and(|t| Arc::ptr_eq(t, &target)) {
            w.remove(&target.key);
        }
        // An edited ScaledObject's new target (other metadata, same name) writes the same
        // series: dropping them would read as a counter reset and count the overlap twice.
        if !w.keys().any(|k| same_name(k, &target.key)) {
            shared.metrics.forget_target(&target.labels);
        }
        shared.metrics.set_targets(w.len());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TargetKey, Arc<Target>>> {
        self.targets.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Every served ScaledObject (for the HTTP API).
    pub fn all(&self) -> Vec<Arc<Target>> {
        let mut v: Vec<_> = self.read().values().cloned().collect();
        v.sort_by(|a, b| (&a.key.namespace, &a.key.name).cmp(&(&b.key.namespace, &b.key.name)));
        v
    }

    /// Every served batch target, sorted by namespace and name.
    pub fn all_batch(&self) -> Vec<Arc<BatchTarget>> {
        let mut v: Vec<_> = self.batch.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| (&a.key.namespace, &a.key.name).cmp(&(&b.key.namespace, &b.key.name)));
        v
    }

    /// Stops every collector (shutdown).
    pub fn shutdown(&self) {
        for t in self.read().values() {
            t.presence.abort();
        }
        for t in self.batch.read().unwrap_or_else(|p| p.into_inner()).values() {
            t.presence.abort();
        }
    }
}

/// Whether two targets are the same ScaledObject or ScaledJob, whatever their metadata.
fn same_name(a: &TargetKey, b: &TargetKey) -> bool {
    a.namespace == b.namespace && a.name == b.name
}
