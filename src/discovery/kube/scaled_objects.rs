//! The ScaledObjects that name this scaler, from a LIST+WATCH per served namespace, so that every
//! scaler replica collects each of them from its own start, before KEDA's first call: a failover
//! (KEDA's round-robin moving to the other replica, a rollout, a restart) is answered from warm
//! state at once instead of with `UNAVAILABLE` and a first decision lacking its rate signals.
//!
//! A trigger names this scaler when its type is `external` or `external-push` and its
//! `scalerAddress` is the scaler's own (the `scaler_address` setting). Its metadata is taken as
//! KEDA sends it, so KEDA's first call finds the same target; a trigger with a `...FromEnv` key
//! cannot be (KEDA resolves those from the workload's container, which the watch does not see)
//! and is left to KEDA's first call.

use std::{collections::HashMap, sync::Arc};

use futures::StreamExt;
use kube::{
    Client,
    api::{Api, ApiResource, DynamicObject, GroupVersionKind},
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::{sync::watch, task::AbortHandle};
use tracing::{Instrument, info, info_span, warn};

/// One trigger of a ScaledObject that calls this scaler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTrigger {
    /// The ScaledObject's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The trigger's metadata as KEDA sends it.
    pub metadata: HashMap<String, String>,
}

/// Why a trigger naming this scaler cannot be kept warm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unwarmable {
    /// It has `...FromEnv` keys (their values are resolved by KEDA from the workload).
    FromEnv(String),
    /// A metadata value is not a string.
    NotAString(String),
}

/// The triggers of `obj` whose `scalerAddress` is `address`, or why one cannot be used. Pure.
pub fn triggers_naming(obj: &DynamicObject, address: &str) -> Vec<Result<NamedTrigger, (String, Unwarmable)>> {
    let (Some(namespace), Some(name)) = (obj.metadata.namespace.clone(), obj.metadata.name.clone()) else { return Vec::new() };
    let triggers = obj.data.get("spec").and_then(|s| s.get("triggers")).and_then(|t| t.as_array()).cloned().unwrap_or_default();
    triggers
        .iter()
        .filter(|t| matches!(t.get("type").and_then(|v| v.as_str()), Some("external" | "external-push")))
        .filter_map(|t| t.get("metadata").and_then(|m| m.as_object()))
        .filter(|m| m.get("scalerAddress").and_then(|v| v.as_str()).map(str::trim) == Some(address))
        .map(|m| {
            let mut metadata = HashMap::new();
            for (k, v) in m {
                if k.ends_with("FromEnv") {
                    return Err((name.clone(), Unwarmable::FromEnv(k.clone())));
                }
                let v = v.as_str().ok_or_else(|| (name.clone(), Unwarmable::NotAString(k.clone())))?;
                metadata.insert(k.clone(), v.to_string());
            }
            Ok(NamedTrigger { namespace: namespace.clone(), name: name.clone(), metadata })
        })
        .collect()
}

/// A watch of one namespace's ScaledObjects. The watch runs while any clone lives.
#[derive(Clone)]
pub struct ScaledObjectWatch {
    store: Store<DynamicObject>,
    synced: watch::Receiver<bool>,
    /// Held for its `Drop`: the watch task stops with the last clone.
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ScaledObjectWatch {
    /// Starts watching the ScaledObjects of `namespace`.
    pub fn start(client: &Client, namespace: &str) -> Self {
        let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "scaledobjects");
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let writer = reflector::store::Writer::new(resource);
        let store = writer.as_reader();
        let (tx, synced) = watch::channel(false);
        let span = info_span!("scaledobject_watch", namespace = %namespace);
        let task = tokio::spawn(
            async move {
                let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
                let mut stream = std::pin::pin!(stream);
                let mut failing = false;
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(event) => {
                            failing = false;
                            if matches!(event, watcher::Event::InitDone) {
                                tx.send_replace(true);
                            }
                        }
                        Err(e) if !failing => {
                            warn!(error = %e, "ScaledObject watch failed; keeping the last known ones warm and retrying");
                            failing = true;
                        }
                        Err(_) => {}
                    }
                }
            }
            .instrument(span),
        );
        info!(namespace, "watching ScaledObjects to keep those naming this scaler warm");
        ScaledObjectWatch { store, synced, _task: Arc::new(AbortOnDrop(task.abort_handle())) }
    }

    /// The ScaledObjects known now.
    pub fn snapshot(&self) -> Vec<Arc<DynamicObject>> {
        self.store.state()
    }

    /// Waits for the first complete list (bound it from outside).
    pub async fn wait_synced(&self) {
        let mut s = self.synced.clone();
        if s.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn so(triggers: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "llama", "namespace": "ai"},
            "spec": {"scaleTargetRef": {"name": "llama"}, "triggers": triggers}
        }))
        .unwrap()
    }

    #[test]
    fn only_external_triggers_calling_this_scaler_are_kept_warm_with_their_metadata_as_keda_sends_it() {
        let me = "llm-scaler.llm-scaler.svc.cluster.local:9090";
        let obj = so(json!([
            {"type": "external", "metadata": {"scalerAddress": me, "targetQueueDepth": "8"}},
            {"type": "external", "metadata": {"scalerAddress": "other:9090"}},
            {"type": "cpu", "metadata": {"value": "60"}},
            {"type": "external-push", "metadata": {"scalerAddress": me, "modelNameFromEnv": "MODEL"}},
        ]));
        let got = triggers_naming(&obj, me);
        assert_eq!(got.len(), 2);
        let t = got[0].as_ref().unwrap();
        assert_eq!((t.namespace.as_str(), t.name.as_str(), t.metadata["targetQueueDepth"].as_str()), ("ai", "llama", "8"));
        assert_eq!(t.metadata["scalerAddress"], me);
        assert_eq!(got[1], Err(("llama".into(), Unwarmable::FromEnv("modelNameFromEnv".into()))));
        assert!(triggers_naming(&so(json!(null)), me).is_empty());
    }
}
