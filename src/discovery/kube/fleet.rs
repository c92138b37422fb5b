//! One ScaledObject's pods through Kubernetes: which selector (the one given in metadata, or its
//! scale target's), and the shared watch on it.
//!
//! A scale target's selector rarely changes, so it is looked up again only every
//! [`RESOLVE_EVERY`]; while the API server is away the last selector and its cache keep serving,
//! because a stale fleet is a better basis for a decision than none.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{DiscoveryError, KubeDiscovery, PodWatch};
use crate::discovery::PodInfo;

/// How often a scale target's selector is looked up again (it rarely changes).
const RESOLVE_EVERY: Duration = Duration::from_secs(300);

/// Why a ScaledObject's pods cannot be listed this tick.
#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    /// The scale target's selector could not be found, and none is known from before.
    #[error("cannot find the pods: {0}")]
    ScaleTarget(#[source] DiscoveryError),
    /// The watch has not completed its first LIST: "no pods" would be a guess.
    #[error("pod cache for \"{selector}\" in {namespace} has not synced with the API server yet")]
    NotSynced {
        /// Namespace of the pods.
        namespace: String,
        /// Selector being watched.
        selector: String,
    },
}

/// Where the selector comes from.
#[derive(Debug)]
enum Selector {
    /// `podSelector` in metadata: fixed for the life of the ScaledObject.
    Given(String),
    /// The ScaledObject's scale target, looked up by its name.
    OfScaleTarget {
        /// Namespace of the ScaledObject.
        namespace: String,
        /// Name of the ScaledObject.
        name: String,
    },
}

/// The selector in use, its watch, and when it was last confirmed.
struct Watched {
    selector: String,
    watch: PodWatch,
    confirmed: Instant,
}

/// One ScaledObject's pods through Kubernetes. Nothing is asked of the API server until the first
/// [`KubeFleet::pods`].
pub struct KubeFleet {
    discovery: KubeDiscovery,
    /// Namespace of the pods.
    namespace: String,
    selector: Selector,
    watched: Option<Watched>,
}

impl KubeFleet {
    /// The pods matching `selector` in `namespace`, or, without a selector, those of the
    /// ScaledObject `scaled_object` (in `so_namespace`)'s scale target.
    pub fn new(discovery: KubeDiscovery, so_namespace: &str, scaled_object: &str, namespace: &str, selector: Option<&str>) -> Self {
        let selector = match selector {
            Some(s) => Selector::Given(s.to_string()),
            None => Selector::OfScaleTarget { namespace: so_namespace.to_string(), name: scaled_object.to_string() },
        };
        KubeFleet { discovery, namespace: namespace.to_string(), selector, watched: None }
    }

    /// The discovery this fleet watches through (and its dcgm-exporters may too).
    pub fn discovery(&self) -> &KubeDiscovery {
        &self.discovery
    }

    /// The pods now, from the watch cache (an API call only to resolve a scale target's
    /// selector, at most every five minutes).
    pub async fn pods(&mut self) -> Result<Vec<PodInfo>, PodsError> {
        let w = self.current().await?;
        if !w.watch.is_synced() {
            return Err(PodsError::NotSynced { namespace: w.watch.namespace().to_string(), selector: w.selector.clone() });
        }
        Ok(w.watch.snapshot())
    }

    /// The watch to read: the last one while it is fresh, else the selector (re)established.
    async fn current(&mut self) -> Result<&Watched, PodsError> {
        let w = match self.watched.take() {
            Some(w) if !self.due(&w) => w,
            last => self.establish(last).await?,
        };
        Ok(self.watched.insert(w))
    }

    /// A given selector never changes; a scale target's is looked up again every
    /// [`RESOLVE_EVERY`].
    fn due(&self, w: &Watched) -> bool {
        matches!(self.selector, Selector::OfScaleTarget { .. }) && w.confirmed.elapsed() >= RESOLVE_EVERY
    }

    /// Finds the selector and watches it; an unchanged selector keeps its watch, and when the
    /// lookup fails the last watch stays in use.
    async fn establish(&self, last: Option<Watched>) -> Result<Watched, PodsError> {
        let selector = match &self.selector {
            Selector::Given(s) => Ok(s.clone()),
            Selector::OfScaleTarget { namespace, name } => self.discovery.resolve_selector(namespace, name).await,
        };
        match (selector, last) {
            (Ok(sel), Some(mut w)) if w.selector == sel => {
                w.confirmed = Instant::now();
                Ok(w)
            }
            (Ok(sel), _) => {
                info!(selector = %sel, namespace = %self.namespace, "watching pods");
                let watch = self.discovery.watch_pods(&self.namespace, &sel);
                Ok(Watched { selector: sel, watch, confirmed: Instant::now() })
            }
            // Keep the last known selector and cache while the API server is away.
            (Err(e), Some(w)) => {
                warn!(error = %e, "could not refresh the scale target's selector; keeping the last one");
                Ok(w)
            }
            (Err(e), None) => Err(PodsError::ScaleTarget(e)),
        }
    }
}
