//! Waiting until applied objects are ready ([`health`](super::health) says what ready means): each
//! round reads every object still pending at once, reports changes through a callback, and stops at the
//! first failure or when the timeout passes. A failure names the object and the reason. An object the
//! plan proved unchanged and found ready in its listing (read under the deploy lock) is not read again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::client::with_retries;
pub use super::health::Readiness;
use super::health::{HealthRules, needs_wait, readiness};
use super::plan::{Change, Operation};
use super::resources::Resources;
use super::{ClusterError, describe_api_error};
use crate::manifest::ObjectRef;

/// How many objects are read at once in a round.
const READS_AT_ONCE: usize = 16;

/// A failed wait: which objects, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotReady {
    pub object: ObjectRef,
    pub reason: String,
}

/// Polls the changes' objects that have something to wait for until all are ready, one fails, or
/// `timeout` passes. `report` hears every change of state.
pub async fn wait_ready(
    resources: &Arc<Resources>,
    changes: &[&Change],
    rules: &HealthRules,
    timeout: Duration,
    report: &mut dyn FnMut(&ObjectRef, &Readiness),
) -> Result<Vec<NotReady>, ClusterError> {
    use futures::StreamExt;
    let deadline = Instant::now() + timeout;
    let mut last: HashMap<ObjectRef, Readiness> = HashMap::new();
    let mut pending = Vec::new();
    for change in changes.iter().copied() {
        if !change
            .manifest
            .as_ref()
            .is_some_and(|m| needs_wait(&change.object, m, rules))
        {
            continue;
        }
        // Unchanged, and ready when the plan listed it under the lock: nothing to read again.
        if change.ready_when_listed && change.operation == Operation::Unchanged {
            report(&change.object, &Readiness::Ready);
            last.insert(change.object.clone(), Readiness::Ready);
            continue;
        }
        pending.push(change);
    }
    loop {
        let states: Vec<Result<Readiness, ClusterError>> =
            futures::stream::iter(pending.iter().map(|change| current_readiness(resources, change, rules)))
                .buffered(READS_AT_ONCE)
                .collect()
                .await;
        let mut still = Vec::new();
        for (change, state) in pending.into_iter().zip(states) {
            let object = &change.object;
            let state = state?;
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
                Readiness::Progressing(_) => still.push(change),
            }
        }
        if still.is_empty() {
            return Ok(Vec::new());
        }
        if super::interrupted() {
            return Ok(still
                .into_iter()
                .map(|change| NotReady {
                    object: change.object.clone(),
                    reason: super::INTERRUPTED.to_owned(),
                })
                .collect());
        }
        if Instant::now() >= deadline {
            return Ok(still
                .into_iter()
                .map(|change| NotReady {
                    object: change.object.clone(),
                    reason: match last.get(&change.object) {
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

/// Reads one object and judges it.
async fn current_readiness(
    resources: &Resources,
    change: &Change,
    rules: &HealthRules,
) -> Result<Readiness, ClusterError> {
    let object = &change.object;
    let resolved = match &change.resolved {
        Some(resolved) => resolved.clone(),
        None => {
            let api_version = change
                .manifest
                .as_ref()
                .and_then(|m| m["apiVersion"].as_str())
                .unwrap_or_default();
            match resources.resolve(api_version, &object.kind).await? {
                Some(resolved) => resolved,
                None => return Ok(Readiness::Progressing("its kind is not served yet".into())),
            }
        }
    };
    let api = resources.api(&resolved, object.namespace.as_deref());
    Ok(match with_retries(|| api.get_opt(&object.name)).await {
        Ok(Some(live)) => {
            let live = serde_json::to_value(live).unwrap_or(Json::Null);
            if object.kind == "PersistentVolumeClaim" && waits_for_first_consumer(resources, &live).await {
                Readiness::Ready
            } else {
                readiness(object, &live, rules)
            }
        }
        Ok(None) => Readiness::Failed("it no longer exists".into()),
        Err(error) => Readiness::Progressing(format!("cannot read it: {}", describe_api_error(&error))),
    })
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
