//! Waiting until applied objects are ready: Deployments, StatefulSets and DaemonSets rolled out, Jobs
//! complete, CRDs established, PVCs bound, Pods ready. Other kinds are ready once applied. Progress is
//! reported through a callback; a failure names the object and the reason (the failing condition).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::client::with_retries;
use super::resources::Resources;
use super::{ClusterError, describe_api_error};
use crate::manifest::ObjectRef;

/// Where an object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet, and why (`2/3 available`).
    Progressing(String),
    /// Will not become ready without a change, and why.
    Failed(String),
}

/// Whether kdeploy knows how to tell when this kind is ready.
pub fn is_waitable(object: &ObjectRef) -> bool {
    matches!(
        (object.group.as_str(), object.kind.as_str()),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("batch", "Job")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("", "PersistentVolumeClaim" | "Pod")
    )
}

fn condition<'a>(object: &'a Json, kind: &str) -> Option<&'a Json> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn describe_condition(c: &Json) -> String {
    let reason = c["reason"].as_str().unwrap_or_default();
    let message = c["message"].as_str().unwrap_or_default();
    format!(
        "condition {}={}: {reason}{}{message}",
        c["type"].as_str().unwrap_or("?"),
        c["status"].as_str().unwrap_or("?"),
        if message.is_empty() { "" } else { ": " }
    )
}

fn int(value: &Json) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The readiness of a live object, from its status alone.
pub fn readiness(kind: &str, object: &Json) -> Readiness {
    let generation = int(&object["metadata"]["generation"]);
    let observed = int(&object["status"]["observedGeneration"]);
    let spec_replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let status = &object["status"];
    match kind {
        "Deployment" => {
            if let Some(c) = condition(object, "Progressing").filter(|c| c["reason"] == "ProgressDeadlineExceeded") {
                return Readiness::Failed(describe_condition(c));
            }
            if observed < generation {
                return Readiness::Progressing("waiting for the controller to see the new spec".into());
            }
            let (updated, available, total) = (
                int(&status["updatedReplicas"]),
                int(&status["availableReplicas"]),
                int(&status["replicas"]),
            );
            if updated >= spec_replicas && available >= spec_replicas && total <= spec_replicas {
                Readiness::Ready
            } else {
                Readiness::Progressing(format!(
                    "{updated}/{spec_replicas} updated, {available}/{spec_replicas} available"
                ))
            }
        }
        // As `kubectl rollout status`, except that OnDelete sets are ready once their pods are (their
        // pods change only when deleted, so there is no roll-out to wait for) rather than an error.
        "StatefulSet" => {
            let ready = int(&status["readyReplicas"]);
            if observed < generation || observed == 0 {
                return Readiness::Progressing("waiting for the controller to see the new spec".into());
            }
            if ready < spec_replicas {
                return Readiness::Progressing(format!("{ready}/{spec_replicas} ready"));
            }
            let strategy = &object["spec"]["updateStrategy"];
            if strategy["type"] == "OnDelete" {
                return Readiness::Ready;
            }
            let updated = int(&status["updatedReplicas"]);
            if let Some(partition) = strategy["rollingUpdate"]["partition"].as_i64() {
                // Pods below the partition keep the old revision on purpose.
                let wanted = (spec_replicas - partition).max(0);
                return if updated >= wanted {
                    Readiness::Ready
                } else {
                    Readiness::Progressing(format!("{updated}/{wanted} updated (partition {partition})"))
                };
            }
            if status["updateRevision"].is_null() || status["updateRevision"] == status["currentRevision"] {
                Readiness::Ready
            } else {
                Readiness::Progressing(format!("{updated}/{spec_replicas} updated"))
            }
        }
        "DaemonSet" => {
            let desired = int(&status["desiredNumberScheduled"]);
            let (updated, available) = (int(&status["updatedNumberScheduled"]), int(&status["numberAvailable"]));
            let on_delete = object["spec"]["updateStrategy"]["type"] == "OnDelete";
            if observed >= generation && (on_delete || updated >= desired) && available >= desired {
                Readiness::Ready
            } else {
                Readiness::Progressing(format!("{updated}/{desired} updated, {available}/{desired} available"))
            }
        }
        "Job" => {
            if let Some(c) = condition(object, "Failed").filter(|c| c["status"] == "True") {
                return Readiness::Failed(describe_condition(c));
            }
            if condition(object, "Complete").is_some_and(|c| c["status"] == "True") {
                Readiness::Ready
            } else {
                Readiness::Progressing(format!(
                    "{} active, {} succeeded",
                    int(&status["active"]),
                    int(&status["succeeded"])
                ))
            }
        }
        "CustomResourceDefinition" => {
            if condition(object, "Established").is_some_and(|c| c["status"] == "True") {
                Readiness::Ready
            } else {
                Readiness::Progressing("not established yet".into())
            }
        }
        "PersistentVolumeClaim" => match status["phase"].as_str() {
            Some("Bound") => Readiness::Ready,
            Some("Lost") => Readiness::Failed("the claim lost its volume".into()),
            other => Readiness::Progressing(format!("phase {}", other.unwrap_or("unknown"))),
        },
        "Pod" => match status["phase"].as_str() {
            Some("Succeeded") => Readiness::Ready,
            Some("Failed") => Readiness::Failed(format!(
                "phase Failed: {}",
                status["message"].as_str().unwrap_or("the pod failed")
            )),
            _ if condition(object, "Ready").is_some_and(|c| c["status"] == "True") => Readiness::Ready,
            other => Readiness::Progressing(format!("phase {}", other.unwrap_or("unknown"))),
        },
        _ => Readiness::Ready,
    }
}

/// A failed wait: which objects, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotReady {
    pub object: ObjectRef,
    pub reason: String,
}

/// Polls `objects` until all are ready, one fails, or `timeout` passes. `report` hears every change.
pub async fn wait_ready(
    resources: &Arc<Resources>,
    objects: &[(ObjectRef, String)],
    timeout: Duration,
    report: &mut dyn FnMut(&ObjectRef, &Readiness),
) -> Result<Vec<NotReady>, ClusterError> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&(ObjectRef, String)> = objects.iter().filter(|(o, _)| is_waitable(o)).collect();
    let mut last: HashMap<ObjectRef, Readiness> = HashMap::new();
    loop {
        let mut still = Vec::new();
        for entry in pending {
            let (object, api_version) = entry;
            let Some(resolved) = resources.resolve(api_version, &object.kind).await? else {
                continue;
            };
            let api = resources.api(&resolved, object.namespace.as_deref());
            let state = match with_retries(|| api.get_opt(&object.name)).await {
                Ok(Some(live)) => {
                    let live = serde_json::to_value(live).unwrap_or(Json::Null);
                    if object.kind == "PersistentVolumeClaim" && waits_for_first_consumer(resources, &live).await {
                        Readiness::Ready
                    } else {
                        readiness(&object.kind, &live)
                    }
                }
                Ok(None) => Readiness::Failed("it no longer exists".into()),
                Err(error) => Readiness::Progressing(format!("cannot read it: {}", describe_api_error(&error))),
            };
            if last.get(object) != Some(&state) {
                report(object, &state);
                last.insert(object.clone(), state.clone());
            }
            match state {
                Readiness::Ready => {}
                Readiness::Failed(reason) => {
                    return Ok(vec![NotReady {
                        object: object.clone(),
                        reason,
                    }]);
                }
                Readiness::Progressing(_) => still.push(entry),
            }
        }
        if still.is_empty() {
            return Ok(Vec::new());
        }
        if Instant::now() >= deadline {
            return Ok(still
                .into_iter()
                .map(|(object, _)| NotReady {
                    object: object.clone(),
                    reason: match last.get(object) {
                        Some(Readiness::Progressing(why)) => format!("not ready after {}s: {why}", timeout.as_secs()),
                        _ => format!("not ready after {}s", timeout.as_secs()),
                    },
                })
                .collect());
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A Pending claim whose StorageClass binds only when a pod uses it is as ready as it will get.
async fn waits_for_first_consumer(resources: &Resources, claim: &Json) -> bool {
    use k8s_openapi::api::storage::v1::StorageClass;
    if claim["status"]["phase"] != "Pending" {
        return false;
    }
    let Some(class) = claim["spec"]["storageClassName"].as_str() else {
        return false;
    };
    let api: kube::Api<StorageClass> = kube::Api::all(resources.client());
    matches!(api.get_opt(class).await, Ok(Some(sc)) if sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_are_ready_when_rolled_out_and_fail_on_the_progress_deadline() {
        let rolling = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": {"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 2, "replicas": 3}});
        assert_eq!(
            readiness("Deployment", &rolling),
            Readiness::Progressing("3/3 updated, 2/3 available".into())
        );
        let done = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": {"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 3, "replicas": 3}});
        assert_eq!(readiness("Deployment", &done), Readiness::Ready);
        let stuck = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]}});
        assert!(
            matches!(readiness("Deployment", &stuck), Readiness::Failed(m) if m.contains("ProgressDeadlineExceeded"))
        );
    }

    #[test]
    fn jobs_complete_or_fail() {
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert!(matches!(readiness("Job", &failed), Readiness::Failed(m) if m.contains("BackoffLimitExceeded")));
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(readiness("Job", &done), Readiness::Ready);
    }

    #[test]
    fn stateful_sets_follow_their_update_strategy() {
        let set = |strategy: serde_json::Value, status: serde_json::Value| json!({"metadata": {"generation": 2}, "spec": {"replicas": 3, "updateStrategy": strategy}, "status": status});
        let mid_roll = json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1,
            "currentRevision": "web-1", "updateRevision": "web-2"});
        assert_eq!(
            readiness("StatefulSet", &set(json!({"type": "RollingUpdate"}), mid_roll.clone())),
            Readiness::Progressing("1/3 updated".into())
        );
        // A partition of 2 keeps two pods at the old revision: one updated pod is the whole roll-out.
        let partitioned = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
        assert_eq!(
            readiness("StatefulSet", &set(partitioned.clone(), mid_roll.clone())),
            Readiness::Ready
        );
        let none_updated = json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 0});
        assert_eq!(
            readiness("StatefulSet", &set(partitioned, none_updated)),
            Readiness::Progressing("0/1 updated (partition 2)".into())
        );
        // OnDelete: pods change when deleted, so ready pods are all there is to wait for.
        assert_eq!(
            readiness("StatefulSet", &set(json!({"type": "OnDelete"}), mid_roll)),
            Readiness::Ready
        );
        let unready = json!({"observedGeneration": 2, "readyReplicas": 1});
        assert_eq!(
            readiness("StatefulSet", &set(json!({"type": "OnDelete"}), unready)),
            Readiness::Progressing("1/3 ready".into())
        );
        let unseen = json!({"observedGeneration": 1, "readyReplicas": 3});
        assert!(matches!(
            readiness("StatefulSet", &set(json!({"type": "OnDelete"}), unseen)),
            Readiness::Progressing(_)
        ));
    }

    #[test]
    fn on_delete_daemon_sets_need_available_pods_not_updated_ones() {
        let status = json!({"observedGeneration": 2, "desiredNumberScheduled": 2, "updatedNumberScheduled": 0, "numberAvailable": 2});
        let with = |strategy: &str| json!({"metadata": {"generation": 2}, "spec": {"updateStrategy": {"type": strategy}}, "status": status});
        assert_eq!(readiness("DaemonSet", &with("OnDelete")), Readiness::Ready);
        assert_eq!(
            readiness("DaemonSet", &with("RollingUpdate")),
            Readiness::Progressing("0/2 updated, 2/2 available".into())
        );
    }
}
