//! A ScaledJob's pods, reduced to what a batch decision needs: which are alive (so their
//! workers' stream entries are live work), which are at work, which carry a disruption notice.
//!
//! KEDA labels every Job's pod template with `scaledjob.keda.sh/name`, so one pod watch per
//! ScaledJob finds them without reading the Jobs.

use k8s_openapi::api::core::v1::Pod;

use crate::decide::batch::JobPods;

/// The label KEDA puts on the pods of a ScaledJob's Jobs.
pub const SCALEDJOB_LABEL: &str = "scaledjob.keda.sh/name";

/// The pod watch's selector for ScaledJob `name`.
pub fn selector(name: &str) -> String {
    format!("{SCALEDJOB_LABEL}={name}")
}

/// Sorts pods into live, working, starting, disrupted and on a node.
///
/// A pod is live until it has Succeeded or Failed (one being deleted may still finish its entry
/// within its grace period); it works when Running, `Ready` and without a `DisruptionTarget`
/// condition; a disrupted pod (Spot reclaim, eviction, preemption) is reported with the
/// condition's reason whatever its phase, and its worker's entries are work to redo.
pub fn job_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> JobPods {
    let mut out = JobPods::default();
    for pod in pods {
        let Some(name) = pod.metadata.name.as_deref() else { continue };
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
        let condition = |t: &str| conditions.iter().find(|c| c.type_ == t && c.status == "True");
        let disruption = condition("DisruptionTarget");
        if let Some(c) = disruption {
            out.disrupted.push(format!("{name}:{}", c.reason.as_deref().unwrap_or("unknown")));
        }
        if matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        out.live.push(name.to_string());
        if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
            out.on_nodes += 1;
        }
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if disruption.is_some() || deleting {
            continue;
        }
        if phase == "Running" && condition("Ready").is_some() {
            out.working += 1;
        } else {
            out.starting += 1;
        }
    }
    out.live.sort();
    out.disrupted.sort();
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, phase: &str, conditions: &[(&str, Option<&str>)]) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
            // A Pending pod here is waiting for a node: the scheduler has not bound it.
            spec: Some(PodSpec { node_name: (phase != "Pending").then(|| "spot-1".into()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, reason)| PodCondition {
                            type_: t.to_string(),
                            status: "True".into(),
                            reason: reason.map(str::to_string),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn pods_are_sorted_into_working_starting_disrupted_and_finished() {
        let pods = [
            pod("a", "Running", &[("Ready", None)]),
            pod("b", "Pending", &[]),
            pod("c", "Running", &[("Ready", None), ("DisruptionTarget", Some("PreemptionByScheduler"))]),
            pod("d", "Failed", &[("DisruptionTarget", Some("TerminationByKubelet"))]),
            pod("e", "Succeeded", &[]),
        ];
        let p = job_pods(&pods);
        assert_eq!(p.live, ["a", "b", "c"], "finished pods hold no entries");
        assert_eq!((p.working, p.starting), (1, 1));
        assert_eq!(p.on_nodes, 2, "a and c run on a node (billed); b waits for one");
        assert_eq!(p.disrupted, ["c:PreemptionByScheduler", "d:TerminationByKubelet"]);
        assert_eq!(selector("embed"), "scaledjob.keda.sh/name=embed");
    }
}
