//! Pod discovery through the Kubernetes API, in three ideas kept apart:
//!
//! * `scale_target`: which selector a ScaledObject's pods carry (ScaledObject ->
//!   `spec.scaleTargetRef` -> Deployment/StatefulSet -> `spec.selector`). A couple of GETs, done
//!   when a fleet is set up, never per RPC.
//! * `watch`: a watch-backed cache of the pods matching a selector, shared by every caller
//!   asking for the same `(namespace, selector)`. Reading it is a memory read.
//! * `selector`: a `LabelSelector` rendered as the string the list and watch calls take.
//! * `scaled_objects`: the ScaledObjects naming this scaler, watched to collect them before
//!   KEDA's first call.
//!
//! [`KubeDiscovery`] holds the client and the shared watches, and is the entry point;
//! [`KubeFleet`] is one ScaledObject's use of it (which selector, re-resolved when, its watch).

mod error;
mod fleet;
#[cfg(test)]
mod mock_api;
mod scale_target;
pub mod scaled_objects;
mod selector;
mod watch;

use std::{fmt, sync::Arc, time::Duration};

use kube::Client;
use tracing::debug;

pub use error::DiscoveryError;
pub use fleet::{KubeFleet, PodsError};
pub use selector::selector_string;
pub use watch::{PodWatch, pod_info};

/// How long [`KubeDiscovery::connect`] and [`KubeDiscovery::ping`] wait for the API server's
/// version endpoint. Without a bound a black-holed API server would stall start-up (and the
/// health check) for the client's much longer read timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Entry point of Kubernetes discovery: a client plus the registry of shared pod watches.
///
/// Cheap to clone; clones share the client and the registry.
#[derive(Clone)]
pub struct KubeDiscovery {
    client: Client,
    watches: Arc<watch::Watches>,
}

impl fmt::Debug for KubeDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeDiscovery")
            .field("default_namespace", &self.client.default_namespace())
            .field("live_watches", &self.live_watches())
            .finish()
    }
}

impl KubeDiscovery {
    /// Connects with the in-cluster or kubeconfig config and checks the API server answers
    /// (apiserver_version), so the health service can report SERVING only when discovery really
    /// works.
    pub async fn connect() -> Result<Self, DiscoveryError> {
        let client = Client::try_default().await.map_err(|e| DiscoveryError::Config(Box::new(e)))?;
        let discovery = Self::from_client(client);
        discovery.ping().await?;
        Ok(discovery)
    }

    /// The client (the history store writes through it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Wraps an existing client (tests, or a client configured elsewhere). Does no I/O.
    pub fn from_client(client: Client) -> Self {
        Self { client, watches: Arc::default() }
    }

    /// Asks the API server for its version (bounded by a 10 s timeout): the cheapest call that
    /// proves the API server is reachable and our credentials are accepted. Usable for periodic
    /// health checks too.
    pub async fn ping(&self) -> Result<(), DiscoveryError> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.client.apiserver_version()).await {
            Ok(Ok(info)) => {
                debug!(version = %info.git_version, "Kubernetes API server answered");
                Ok(())
            }
            Ok(Err(e)) => Err(DiscoveryError::Unreachable(Box::new(e))),
            Err(_) => Err(DiscoveryError::ProbeTimeout(PROBE_TIMEOUT)),
        }
    }

    /// ScaledObject (keda.sh/v1alpha1, read as DynamicObject) -> spec.scaleTargetRef ->
    /// Deployment or StatefulSet (apps/v1) -> its spec.selector, rendered as a label-selector
    /// string (matchLabels AND matchExpressions: In, NotIn, Exists, DoesNotExist), e.g.
    /// `"app=vllm,tier in (a,b)"`.
    ///
    /// ScaledJobs are refused with [`DiscoveryError::ScaledJobUnsupported`]: they have no
    /// scale target whose pods could be scraped. Needs RBAC `get` on `scaledobjects`,
    /// `deployments` and `statefulsets` (and, to tell a ScaledJob apart from a missing
    /// ScaledObject, `get` on `scaledjobs`; without it a ScaledJob is reported as NotFound).
    pub async fn resolve_selector(&self, namespace: &str, scaled_object: &str) -> Result<String, DiscoveryError> {
        scale_target::resolve_selector(&self.client, namespace, scaled_object).await
    }

    /// A shared, watch-backed view of the pods matching (namespace, selector). Several callers
    /// asking for the same pair share ONE kube_runtime watcher+reflector task; the task is stopped
    /// when the last PodWatch handle is dropped. No API call per snapshot, no relist per tick:
    /// only the watch (plain LIST+WATCH, which any API server since 1.20 supports; a broken watch
    /// — API server restart, 410 Gone — recovers by itself with backoff while the last known
    /// pods stay readable).
    ///
    /// Must be called from within a Tokio runtime (it spawns the watch task). Needs RBAC `list`
    /// and `watch` on `pods` in `namespace`.
    pub fn watch_pods(&self, namespace: &str, selector: &str) -> PodWatch {
        self.watches.watch(&self.client, namespace, selector)
    }

    /// Number of pod watches currently running (for tests, metrics and debugging).
    pub fn live_watches(&self) -> usize {
        self.watches.live()
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use serde_json::json;

    use super::mock_api::{STEP, mock_discovery, serve};
    use super::*;

    #[tokio::test]
    async fn ping_asks_for_the_version() {
        let (discovery, mut handle) = mock_discovery();
        let version = json!({
            "major": "1", "minor": "20", "gitVersion": "v1.20.15", "gitCommit": "abc",
            "gitTreeState": "clean", "buildDate": "2022-01-01T00:00:00Z",
            "goVersion": "go1.15", "compiler": "gc", "platform": "linux/amd64"
        });
        let scenario = tokio::spawn(async move {
            serve(&mut handle, "/version", StatusCode::OK, version).await;
            let down = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "etcd down", "reason": "InternalError", "code": 500});
            serve(&mut handle, "/version", StatusCode::INTERNAL_SERVER_ERROR, down).await;
        });
        tokio::time::timeout(STEP, discovery.ping()).await.expect("ping timed out").expect("API server up");
        let err = tokio::time::timeout(STEP, discovery.ping()).await.expect("ping timed out").expect_err("API server down");
        assert!(matches!(err, DiscoveryError::Unreachable(_)), "{err:?}");
        scenario.await.expect("scenario assertions");
    }
}
