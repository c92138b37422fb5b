//! Where a ScaledObject's learned state (its demand history and learned capacity) is kept across
//! restarts, rollouts and KEDA failing over to another scaler replica: one ConfigMap per
//! ScaledObject, in the scaler's own namespace, so the scaler writes nothing in the namespaces it
//! serves. Writes carry the `resourceVersion` last read or written (optimistic concurrency): two
//! replicas writing the same ConfigMap get a conflict, not a lost update, and the loser merges.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use serde::{Deserialize, Serialize};

use crate::decide::{calibrate::CalibrationState, forecast::HistorySnapshot};

/// The key of the state in the ConfigMap's `data`.
const DATA_KEY: &str = "state.json";
/// ConfigMaps are limited to 1 MiB; a week of history is ~100 KB.
pub const MAX_BYTES: usize = 1 << 20;

/// What is persisted for one ScaledObject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedState {
    /// `namespace/name` of the ScaledObject: a ConfigMap naming another is foreign.
    pub scaled_object: String,
    /// Calendar seconds of the write.
    pub saved_at_s: u64,
    /// The demand history (`None`: not forecasting).
    pub history: Option<HistorySnapshot>,
    /// The learned capacity (`None`: a fixed tokens/s target, or one saved in a shape this
    /// version does not read, which is dropped rather than costing the history too).
    #[serde(default, deserialize_with = "capacity_if_readable")]
    pub capacity: Option<CalibrationState>,
}

/// A saved capacity, or `None` (with a log line) when it is not in this version's shape: the
/// estimator then starts again from its configured start while the demand history is kept.
fn capacity_if_readable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CalibrationState>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| match serde_json::from_value(v) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "saved learned capacity is not in this version's shape: dropped, history kept");
            None
        }
    }))
}

/// Why reading or writing the state failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The API refused or failed.
    #[error("ConfigMap {namespace}/{name}: {source}")]
    Api {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// Someone else wrote it since we last read it.
    #[error("ConfigMap {0}: written by another scaler since it was read")]
    Conflict(String),
    /// Its content is not ours to read.
    #[error("ConfigMap {name}: {problem}")]
    Foreign {
        /// Name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The state would not fit in a ConfigMap.
    #[error("state of {0} bytes exceeds a ConfigMap's {MAX_BYTES}")]
    TooLarge(usize),
}

/// A state read back, with the version to write over.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The state.
    pub state: SavedState,
    /// The ConfigMap's `resourceVersion`.
    pub resource_version: String,
}

/// The ConfigMaps of one scaler deployment.
#[derive(Clone)]
pub struct HistoryStore {
    api: Api<ConfigMap>,
    namespace: String,
}

impl std::fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryStore").field("namespace", &self.namespace).finish()
    }
}

impl HistoryStore {
    /// The store in `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        HistoryStore { api: Api::namespaced(client, namespace), namespace: namespace.to_string() }
    }

    /// The ConfigMap name of a ScaledObject: `llm-scaler-history.<namespace>.<name>` (both are
    /// DNS names, so the result is a valid ConfigMap name when it fits in 253 characters; longer
    /// ones end in a hash of the full name instead).
    pub fn config_map_name(namespace: &str, name: &str) -> String {
        let full = format!("llm-scaler-history.{namespace}.{name}");
        if full.len() <= 253 {
            return full;
        }
        // FNV-1a, written out because every replica (and every version of this scaler) must
        // name the same ConfigMap: std's and foldhash's hashers promise no stable output.
        let h = full.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
        let head = full[..253 - 17].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        format!("{head}.{h:016x}")
    }

    fn api_error(&self, name: &str, e: kube::Error) -> StoreError {
        match &e {
            kube::Error::Api(s) if s.code == 409 => StoreError::Conflict(format!("{}/{name}", self.namespace)),
            _ => StoreError::Api { namespace: self.namespace.clone(), name: name.to_string(), source: Box::new(e) },
        }
    }

    /// Reads the state of `namespace/name` (`None`: never written).
    pub async fn load(&self, namespace: &str, name: &str) -> Result<Option<Loaded>, StoreError> {
        let cm_name = Self::config_map_name(namespace, name);
        let Some(cm) = self.api.get_opt(&cm_name).await.map_err(|e| self.api_error(&cm_name, e))? else { return Ok(None) };
        let foreign = |problem: String| StoreError::Foreign { name: cm_name.clone(), problem };
        let text = cm.data.as_ref().and_then(|d| d.get(DATA_KEY)).ok_or_else(|| foreign(format!("no {DATA_KEY} key")))?;
        let state: SavedState = serde_json::from_str(text).map_err(|e| foreign(format!("{DATA_KEY} is not a saved state: {e}")))?;
        let want = format!("{namespace}/{name}");
        if state.scaled_object != want {
            return Err(foreign(format!("holds the state of {}, not {want}", state.scaled_object)));
        }
        let resource_version = cm.metadata.resource_version.unwrap_or_default();
        Ok(Some(Loaded { state, resource_version }))
    }

    /// The `resourceVersion` of the ConfigMap of `namespace/name`, whatever it holds (`None`:
    /// there is none): to write over one whose content was refused.
    pub async fn version(&self, namespace: &str, name: &str) -> Result<Option<String>, StoreError> {
        let cm_name = Self::config_map_name(namespace, name);
        let cm = self.api.get_opt(&cm_name).await.map_err(|e| self.api_error(&cm_name, e))?;
        Ok(cm.and_then(|c| c.metadata.resource_version))
    }

    /// Writes `state`: creates the ConfigMap when `version` is `None`, else replaces the one at
    /// `version` ([`StoreError::Conflict`] if it moved on). Returns the new `resourceVersion`.
    pub async fn save(&self, state: &SavedState, version: Option<&str>) -> Result<String, StoreError> {
        let (namespace, name) = state.scaled_object.split_once('/').unwrap_or(("", &state.scaled_object));
        let cm_name = Self::config_map_name(namespace, name);
        let text = serde_json::to_string(state).map_err(|e| StoreError::Foreign { name: cm_name.clone(), problem: e.to_string() })?;
        if text.len() > MAX_BYTES - 4096 {
            return Err(StoreError::TooLarge(text.len()));
        }
        let labels = BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), "llm-scaler".to_string())]);
        let annotations = BTreeMap::from([("llm-scaler.io/scaledobject".to_string(), state.scaled_object.clone())]);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(cm_name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                resource_version: version.map(str::to_string),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(DATA_KEY.to_string(), text)])),
            ..ConfigMap::default()
        };
        let pp = PostParams::default();
        let written = match version {
            None => self.api.create(&pp, &cm).await,
            Some(_) => self.api.replace(&cm_name, &pp, &cm).await,
        }
        .map_err(|e| self.api_error(&cm_name, e))?;
        Ok(written.metadata.resource_version.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_map_names_are_valid_and_distinct_even_for_the_longest_names() {
        assert_eq!(HistoryStore::config_map_name("ai", "llama"), "llm-scaler-history.ai.llama");
        let long = "x".repeat(253);
        let a = HistoryStore::config_map_name("ai", &long);
        let b = HistoryStore::config_map_name("ai", &format!("{}y", &long[..252]));
        assert!(a.len() <= 253 && b.len() <= 253);
        assert_ne!(a, b);
        // A DNS subdomain: labels of [a-z0-9-] starting and ending alphanumeric.
        let dotted = HistoryStore::config_map_name("ai", &format!("{}.-x", "y".repeat(232)));
        for name in [a, b, dotted] {
            assert!(name.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-')), "{name}");
        }
        assert_eq!(HistoryStore::config_map_name("ai", &long), HistoryStore::config_map_name("ai", &long), "stable");
    }

    #[test]
    fn a_capacity_saved_in_an_older_shape_is_dropped_and_the_rest_of_the_state_kept() {
        let old = r#"{"scaledObject":"ai/llama","savedAtS":7,"history":null,
            "capacity":{"start":5000,"capacity":4500,"fit":{"w":1,"x":1,"y":1,"xx":1,"xy":1,"points":1,"at_s":0},
            "recent":[],"evidence":{"at_s":0,"load_per_replica":1,"quantile_s":0.5,"slo_s":2,"requests":300,"verdict":{"kind":"used"}},
            "last_update":{"at_s":0,"from":5000,"to":4500,"rule":{"kind":"breach","load":4000},"evidence":{"at_s":0,
            "load_per_replica":1,"quantile_s":3,"slo_s":2,"requests":300,"verdict":{"kind":"used"}}}}}"#;
        let state: SavedState = serde_json::from_str(old).expect("the state still reads");
        assert_eq!((state.scaled_object.as_str(), state.saved_at_s, state.capacity), ("ai/llama", 7, None));
        let none: SavedState = serde_json::from_str(r#"{"scaledObject":"ai/llama","savedAtS":7,"history":null}"#).unwrap();
        assert_eq!(none.capacity, None);
    }
}
