//! Why Kubernetes discovery failed: one error type for the probe, the scale-target resolution
//! and the selector rendering, so a caller (and a gRPC status) gets one message that names the
//! object to fix.

use std::time::Duration;

/// Why discovery failed. Every variant names the object (and, where it matters, the ScaledObject
/// that led there) so the message alone, as surfaced in a gRPC status, is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No in-cluster config and no usable kubeconfig.
    #[error("cannot build a Kubernetes client (no in-cluster config or kubeconfig?): {0}")]
    Config(#[source] Box<kube::Error>),

    /// The API server did not answer the version probe.
    #[error("Kubernetes API server did not answer the version probe: {0}")]
    Unreachable(#[source] Box<kube::Error>),

    /// The API server did not answer the version probe in time.
    #[error("Kubernetes API server did not answer the version probe within {0:?}")]
    ProbeTimeout(Duration),

    /// An object on the path ScaledObject -> workload does not exist.
    #[error("{kind} {namespace}/{name} not found{}", referenced_by(.scaled_object))]
    NotFound {
        /// Kind of the missing object (`ScaledObject`, `Deployment`, ...).
        kind: String,
        /// Namespace of the missing object.
        namespace: String,
        /// Name of the missing object.
        name: String,
        /// The ScaledObject whose `scaleTargetRef` pointed at the missing workload, if any.
        scaled_object: Option<String>,
    },

    /// The name KEDA sent belongs to a ScaledJob: its Jobs' pods come and go per job, there is
    /// no long-lived fleet to scrape.
    #[error(
        "{namespace}/{name} is a ScaledJob, not a ScaledObject: ScaledJobs have no scale target \
         whose pods could be scraped; use this scaler with ScaledObjects only"
    )]
    ScaledJobUnsupported {
        /// Namespace of the ScaledJob.
        namespace: String,
        /// Name of the ScaledJob.
        name: String,
    },

    /// The ScaledObject exists but its `spec.scaleTargetRef` is unusable.
    #[error("ScaledObject {namespace}/{name}: {reason}")]
    InvalidScaledObject {
        /// Namespace of the ScaledObject.
        namespace: String,
        /// Name of the ScaledObject.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// The scale target is not a Deployment or StatefulSet of apps/v1.
    #[error(
        "ScaledObject {namespace}/{scaled_object}: scale target {kind} {name:?} (apiVersion \
         {api_version}) is not supported; only apps/v1 Deployment and StatefulSet are"
    )]
    UnsupportedKind {
        /// Namespace of the ScaledObject.
        namespace: String,
        /// Name of the ScaledObject being resolved.
        scaled_object: String,
        /// `scaleTargetRef.kind` (after defaulting).
        kind: String,
        /// `scaleTargetRef.apiVersion` (after defaulting).
        api_version: String,
        /// `scaleTargetRef.name`.
        name: String,
    },

    /// The workload has no `spec.selector` (or it is not a label selector object).
    #[error(
        "{kind} {namespace}/{name} (scale target of ScaledObject {namespace}/{scaled_object}) \
         has no usable spec.selector{}",
        colon_detail(.detail)
    )]
    SelectorMissing {
        /// Kind of the workload.
        kind: String,
        /// Namespace of the workload and its ScaledObject.
        namespace: String,
        /// Name of the workload.
        name: String,
        /// Name of the ScaledObject being resolved.
        scaled_object: String,
        /// Parse error, when `spec.selector` exists but is malformed.
        detail: Option<String>,
    },

    /// The selector selects nothing in particular, i.e. every pod of the namespace.
    #[error("{}empty label selector: it would select every pod in the namespace", owner_prefix(.workload))]
    EmptySelector {
        /// Workload the selector belongs to (`Deployment ns/name`), when known.
        workload: Option<String>,
    },

    /// The selector cannot be rendered as a label-selector string.
    #[error("{}invalid label selector: {reason}", owner_prefix(.workload))]
    InvalidSelector {
        /// Workload the selector belongs to (`Deployment ns/name`), when known.
        workload: Option<String>,
        /// What is wrong.
        reason: String,
    },

    /// Any other API failure (forbidden, server error, timeout, undecodable answer).
    #[error("Kubernetes API call failed: {action}: {source}")]
    Api {
        /// What we tried, e.g. `get ScaledObject ns/name`.
        action: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
}

fn referenced_by(scaled_object: &Option<String>) -> String {
    scaled_object.as_ref().map(|so| format!(" (scaleTargetRef of ScaledObject {so})")).unwrap_or_default()
}

fn colon_detail(detail: &Option<String>) -> String {
    detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

fn owner_prefix(workload: &Option<String>) -> String {
    workload.as_ref().map(|w| format!("{w}: ")).unwrap_or_default()
}

impl DiscoveryError {
    /// Attaches the owning workload to a selector error from [`super::selector_string`].
    pub(super) fn in_workload(self, name: String) -> Self {
        match self {
            Self::EmptySelector { workload: None } => Self::EmptySelector { workload: Some(name) },
            Self::InvalidSelector { workload: None, reason } => Self::InvalidSelector { workload: Some(name), reason },
            other => other,
        }
    }
}
