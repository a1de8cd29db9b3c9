//! Whether a live object is ready, from its status alone: the rules kstatus settled on (as in
//! sigs.k8s.io/cli-utils, used by Flux and kpt) for any kind, the roll-out rules of the built-in
//! workloads, and the project's own rules (`health:` in kdeploy.yaml) for custom resources with unusual
//! status.
//!
//! Any object: `status.observedGeneration` (or a condition's `observedGeneration`) behind
//! `metadata.generation` is in progress; a `Stalled` condition that is True has failed; `Reconciling`
//! True, `Ready` or `Available` not True are in progress. An object with none of these is ready, as
//! kstatus says: its controller reports nothing kdeploy could wait for.

use serde::Deserialize;
use serde_json::Value as Json;

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

/// Set on an object to `"false"`: apply never waits for it.
pub const WAIT_ANNOTATION: &str = "kdeploy.dev/wait";

/// One of the project's health rules (`health:` in kdeploy.yaml): how to tell when objects of a kind are
/// ready. Exactly one of `condition`, `field` or `wait: false`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthRule {
    pub kind: String,
    /// The API group; any group when absent.
    pub group: Option<String>,
    /// Ready when this condition is True (waiting while it is absent).
    pub condition: Option<String>,
    /// A dotted path into the object (`status.phase`) whose value says whether it is ready.
    pub field: Option<String>,
    /// With `field`: the values that mean ready.
    #[serde(default)]
    pub ready: Vec<String>,
    /// With `field`: the values that mean failed; with `condition`: the condition's reasons that do.
    #[serde(default)]
    pub failed: Vec<String>,
    /// `false`: never wait for objects of this kind.
    pub wait: Option<bool>,
}

impl HealthRule {
    /// Why the rule cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let ways = [self.condition.is_some(), self.field.is_some(), self.wait == Some(false)];
        if ways.iter().filter(|w| **w).count() != 1 {
            return Err(format!(
                "rule for {}: give exactly one of `condition:`, `field:` (with `ready:`) or `wait: false`",
                self.kind
            ));
        }
        if self.field.is_some() && self.ready.is_empty() {
            return Err(format!(
                "rule for {}: `field:` needs `ready:`, the values that mean ready",
                self.kind
            ));
        }
        if self.condition.is_none() && self.field.is_none() && !self.failed.is_empty() {
            return Err(format!(
                "rule for {}: `failed:` goes with `condition:` or `field:`",
                self.kind
            ));
        }
        Ok(())
    }

    fn matches(&self, group: &str, kind: &str) -> bool {
        self.kind == kind && self.group.as_deref().is_none_or(|g| g == group)
    }
}

/// The project's rules; the first that matches a kind wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthRules(pub Vec<HealthRule>);

impl HealthRules {
    fn find(&self, group: &str, kind: &str) -> Option<&HealthRule> {
        self.0.iter().find(|r| r.matches(group, kind))
    }
}

/// API groups of Kubernetes itself: their kinds follow the built-in rules below, and the ones without
/// a rule have no status worth waiting for (ConfigMaps, RBAC, ...). Any other group is a custom
/// resource, checked by the kstatus rules.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

fn is_builtin_group(group: &str) -> bool {
    BUILTIN_GROUPS.contains(&group)
}

/// Whether apply should wait for this object (`manifest` as applied): every custom resource, the
/// built-in kinds with a readiness rule, none marked `kdeploy.dev/wait: "false"` or by a `wait: false`
/// rule.
pub fn needs_wait(object: &ObjectRef, manifest: &Json, rules: &HealthRules) -> bool {
    if manifest["metadata"]["annotations"][WAIT_ANNOTATION] == "false" {
        return false;
    }
    if let Some(rule) = rules.find(&object.group, &object.kind) {
        return rule.wait != Some(false);
    }
    if !is_builtin_group(&object.group) {
        return true;
    }
    match (object.group.as_str(), object.kind.as_str()) {
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job")
        | ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("", "PersistentVolumeClaim" | "Pod")
        | ("networking.k8s.io", "Ingress")
        | ("policy", "PodDisruptionBudget")
        | ("autoscaling", "HorizontalPodAutoscaler") => true,
        ("", "Service") => manifest["spec"]["type"] == "LoadBalancer",
        _ => false,
    }
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

/// The readiness of a live object of `object`'s group and kind.
pub fn readiness(object: &ObjectRef, live: &Json, rules: &HealthRules) -> Readiness {
    if live["metadata"]["deletionTimestamp"].is_string() {
        return Readiness::Progressing("being deleted".into());
    }
    if let Some(rule) = rules.find(&object.group, &object.kind) {
        return by_rule(rule, live);
    }
    if is_builtin_group(&object.group) {
        builtin(&object.kind, live)
    } else {
        kstatus(live)
    }
}

/// In progress while the controller has not seen the current spec, by `status.observedGeneration`.
fn unobserved(live: &Json) -> Option<Readiness> {
    let generation = live["metadata"]["generation"].as_i64()?;
    let observed = live["status"]["observedGeneration"].as_i64()?;
    (observed < generation).then(|| {
        Readiness::Progressing(format!(
            "waiting for its controller to see generation {generation} (it has seen {observed})"
        ))
    })
}

/// kstatus for any object: generations, then `Stalled`, `Reconciling`, `Ready` and `Available`.
fn kstatus(live: &Json) -> Readiness {
    if let Some(waiting) = unobserved(live) {
        return waiting;
    }
    if let Some(c) = condition(live, "Stalled").filter(|c| c["status"] == "True") {
        return Readiness::Failed(describe_condition(c));
    }
    if let Some(c) = condition(live, "Reconciling").filter(|c| c["status"] == "True") {
        return Readiness::Progressing(describe_condition(c));
    }
    let generation = live["metadata"]["generation"].as_i64();
    for kind in ["Ready", "Available"] {
        let Some(c) = condition(live, kind) else { continue };
        // A condition written for an older spec says nothing about the current one.
        if let (Some(generation), Some(seen)) = (generation, c["observedGeneration"].as_i64())
            && seen < generation
        {
            return Readiness::Progressing(format!(
                "condition {kind} is about generation {seen}, the object is at {generation}"
            ));
        }
        if c["status"] != "True" {
            return Readiness::Progressing(describe_condition(c));
        }
    }
    Readiness::Ready
}

fn by_rule(rule: &HealthRule, live: &Json) -> Readiness {
    if let Some(waiting) = unobserved(live) {
        return waiting;
    }
    if let Some(name) = &rule.condition {
        return match condition(live, name) {
            Some(c) if c["status"] == "True" => Readiness::Ready,
            Some(c) if rule.failed.iter().any(|r| c["reason"] == r.as_str()) => {
                Readiness::Failed(describe_condition(c))
            }
            Some(c) => Readiness::Progressing(describe_condition(c)),
            None => Readiness::Progressing(format!("waiting for condition {name}")),
        };
    }
    let Some(path) = &rule.field else {
        return Readiness::Ready;
    };
    let value = path.split('.').fold(live, |v, key| &v[key]);
    let text = match value {
        Json::String(s) => s.clone(),
        Json::Null => return Readiness::Progressing(format!("{path} is not set yet")),
        other => other.to_string(),
    };
    if rule.ready.contains(&text) {
        Readiness::Ready
    } else if rule.failed.contains(&text) {
        Readiness::Failed(format!("{path} is {text}"))
    } else {
        Readiness::Progressing(format!("{path} is {text}"))
    }
}

/// The built-in kinds' rules; kinds without one are ready once applied.
fn builtin(kind: &str, object: &Json) -> Readiness {
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
        // A LoadBalancer Service and an Ingress are reachable once a controller gives them an address.
        "Service" if object["spec"]["type"] == "LoadBalancer" => load_balanced(object, "a load balancer controller"),
        "Ingress" => load_balanced(object, "an ingress controller"),
        "PodDisruptionBudget" => {
            if let Some(waiting) = unobserved(object) {
                return waiting;
            }
            let (healthy, needed) = (int(&status["currentHealthy"]), int(&status["desiredHealthy"]));
            // With no pods to protect yet (their workload comes later, or from an operator), the budget
            // has nothing to wait for.
            if status.get("observedGeneration").is_none() {
                Readiness::Progressing("waiting for the disruption controller to see it".into())
            } else if int(&status["expectedPods"]) > 0 && healthy < needed {
                Readiness::Progressing(format!("{healthy}/{needed} healthy pods the budget needs"))
            } else {
                Readiness::Ready
            }
        }
        "HorizontalPodAutoscaler" => {
            if let Some(c) = condition(object, "AbleToScale").filter(|c| c["status"] == "False") {
                return Readiness::Progressing(describe_condition(c));
            }
            if status.get("conditions").is_none() && status.get("currentReplicas").is_none() {
                return Readiness::Progressing("waiting for the autoscaler to see it".into());
            }
            Readiness::Ready
        }
        _ => Readiness::Ready,
    }
}

fn load_balanced(object: &Json, who: &str) -> Readiness {
    let ingress = object["status"]["loadBalancer"]["ingress"].as_array();
    if ingress.is_some_and(|i| !i.is_empty()) {
        Readiness::Ready
    } else {
        Readiness::Progressing(format!(
            "waiting for an address from {who} (none? mark it kdeploy.dev/wait: \"false\")"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(group: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
        }
    }

    fn builtin_readiness(kind: &str, live: &Json) -> Readiness {
        builtin(kind, live)
    }

    #[test]
    fn deployments_are_ready_when_rolled_out_and_fail_on_the_progress_deadline() {
        let rolling = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": {"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 2, "replicas": 3}});
        assert_eq!(
            builtin_readiness("Deployment", &rolling),
            Readiness::Progressing("3/3 updated, 2/3 available".into())
        );
        let done = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": {"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 3, "replicas": 3}});
        assert_eq!(builtin_readiness("Deployment", &done), Readiness::Ready);
        let stuck = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]}});
        assert!(
            matches!(builtin_readiness("Deployment", &stuck), Readiness::Failed(m) if m.contains("ProgressDeadlineExceeded"))
        );
    }

    #[test]
    fn jobs_complete_or_fail() {
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert!(
            matches!(builtin_readiness("Job", &failed), Readiness::Failed(m) if m.contains("BackoffLimitExceeded"))
        );
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(builtin_readiness("Job", &done), Readiness::Ready);
    }

    #[test]
    fn stateful_sets_follow_their_update_strategy() {
        let set = |strategy: Json, status: Json| json!({"metadata": {"generation": 2}, "spec": {"replicas": 3, "updateStrategy": strategy}, "status": status});
        let mid_roll = json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1,
            "currentRevision": "web-1", "updateRevision": "web-2"});
        assert_eq!(
            builtin_readiness("StatefulSet", &set(json!({"type": "RollingUpdate"}), mid_roll.clone())),
            Readiness::Progressing("1/3 updated".into())
        );
        // A partition of 2 keeps two pods at the old revision: one updated pod is the whole roll-out.
        let partitioned = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
        assert_eq!(
            builtin_readiness("StatefulSet", &set(partitioned.clone(), mid_roll.clone())),
            Readiness::Ready
        );
        let none_updated = json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 0});
        assert_eq!(
            builtin_readiness("StatefulSet", &set(partitioned, none_updated)),
            Readiness::Progressing("0/1 updated (partition 2)".into())
        );
        // OnDelete: pods change when deleted, so ready pods are all there is to wait for.
        assert_eq!(
            builtin_readiness("StatefulSet", &set(json!({"type": "OnDelete"}), mid_roll)),
            Readiness::Ready
        );
        let unready = json!({"observedGeneration": 2, "readyReplicas": 1});
        assert_eq!(
            builtin_readiness("StatefulSet", &set(json!({"type": "OnDelete"}), unready)),
            Readiness::Progressing("1/3 ready".into())
        );
        let unseen = json!({"observedGeneration": 1, "readyReplicas": 3});
        assert!(matches!(
            builtin_readiness("StatefulSet", &set(json!({"type": "OnDelete"}), unseen)),
            Readiness::Progressing(_)
        ));
    }

    #[test]
    fn on_delete_daemon_sets_need_available_pods_not_updated_ones() {
        let status = json!({"observedGeneration": 2, "desiredNumberScheduled": 2, "updatedNumberScheduled": 0, "numberAvailable": 2});
        let with = |strategy: &str| json!({"metadata": {"generation": 2}, "spec": {"updateStrategy": {"type": strategy}}, "status": status});
        assert_eq!(builtin_readiness("DaemonSet", &with("OnDelete")), Readiness::Ready);
        assert_eq!(
            builtin_readiness("DaemonSet", &with("RollingUpdate")),
            Readiness::Progressing("0/2 updated, 2/2 available".into())
        );
    }

    #[test]
    fn custom_resources_follow_kstatus() {
        let rules = HealthRules::default();
        let widget = of("example.com", "Widget");
        let at = |status: Json| json!({"metadata": {"generation": 3}, "status": status});
        // Nothing reported: nothing to wait for.
        assert_eq!(
            readiness(&widget, &json!({"metadata": {"generation": 1}}), &rules),
            Readiness::Ready
        );
        assert!(matches!(
            readiness(&widget, &at(json!({"observedGeneration": 2})), &rules),
            Readiness::Progressing(m) if m.contains("generation 3")
        ));
        let stalled = at(json!({"observedGeneration": 3, "conditions": [
            {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "issuer not found"}]}));
        assert!(
            matches!(readiness(&widget, &stalled, &rules), Readiness::Failed(m) if m.contains("InvalidSpec: issuer not found"))
        );
        let reconciling =
            at(json!({"conditions": [{"type": "Reconciling", "status": "True", "reason": "Progressing"}]}));
        assert!(matches!(
            readiness(&widget, &reconciling, &rules),
            Readiness::Progressing(_)
        ));
        let not_ready = at(json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Issuing"}]}));
        assert!(matches!(readiness(&widget, &not_ready, &rules), Readiness::Progressing(m) if m.contains("Issuing")));
        let stale = at(json!({"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}));
        assert!(matches!(readiness(&widget, &stale, &rules), Readiness::Progressing(_)));
        let ready = at(json!({"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 3}]}));
        assert_eq!(readiness(&widget, &ready, &rules), Readiness::Ready);
        // A custom resource is always waited for; a ConfigMap never.
        assert!(needs_wait(&widget, &json!({}), &rules));
        assert!(!needs_wait(&of("", "ConfigMap"), &json!({}), &rules));
        let opted_out = json!({"metadata": {"annotations": {WAIT_ANNOTATION: "false"}}});
        assert!(!needs_wait(&widget, &opted_out, &rules));
    }

    #[test]
    fn project_rules_name_a_condition_or_a_field() {
        let rules = HealthRules(vec![
            HealthRule {
                kind: "Database".into(),
                field: Some("status.phase".into()),
                ready: vec!["Available".into()],
                failed: vec!["Failed".into()],
                ..Default::default()
            },
            HealthRule {
                kind: "Widget".into(),
                group: Some("example.com".into()),
                condition: Some("Synced".into()),
                failed: vec!["ReconcileError".into()],
                ..Default::default()
            },
            HealthRule {
                kind: "Noise".into(),
                wait: Some(false),
                ..Default::default()
            },
        ]);
        let database = of("db.example.com", "Database");
        let phase = |p: &str| json!({"status": {"phase": p}});
        assert_eq!(readiness(&database, &phase("Available"), &rules), Readiness::Ready);
        assert_eq!(
            readiness(&database, &phase("Failed"), &rules),
            Readiness::Failed("status.phase is Failed".into())
        );
        assert!(matches!(readiness(&database, &json!({}), &rules), Readiness::Progressing(m) if m.contains("not set")));
        let widget = of("example.com", "Widget");
        assert!(matches!(readiness(&widget, &json!({}), &rules), Readiness::Progressing(m) if m.contains("Synced")));
        let error =
            json!({"status": {"conditions": [{"type": "Synced", "status": "False", "reason": "ReconcileError"}]}});
        assert!(matches!(readiness(&widget, &error, &rules), Readiness::Failed(_)));
        // The rule names a group: the same kind in another group follows kstatus.
        assert_eq!(
            readiness(&of("other.io", "Widget"), &json!({}), &rules),
            Readiness::Ready
        );
        assert!(!needs_wait(&of("x.io", "Noise"), &json!({}), &rules));
        assert!(
            HealthRule {
                kind: "A".into(),
                ..Default::default()
            }
            .check()
            .is_err()
        );
        assert!(
            HealthRule {
                kind: "A".into(),
                field: Some("status.x".into()),
                ..Default::default()
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn load_balancers_and_budgets_are_checked() {
        let rules = HealthRules::default();
        let service = of("", "Service");
        assert!(needs_wait(&service, &json!({"spec": {"type": "LoadBalancer"}}), &rules));
        assert!(!needs_wait(&service, &json!({"spec": {"type": "ClusterIP"}}), &rules));
        let pending = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        assert!(matches!(
            readiness(&service, &pending, &rules),
            Readiness::Progressing(_)
        ));
        let addressed =
            json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
        assert_eq!(readiness(&service, &addressed, &rules), Readiness::Ready);
        let ingress = of("networking.k8s.io", "Ingress");
        assert!(matches!(
            readiness(&ingress, &json!({"status": {}}), &rules),
            Readiness::Progressing(_)
        ));
        let pdb = of("policy", "PodDisruptionBudget");
        let budget = |expected: i64, healthy: i64| {
            json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "expectedPods": expected, "currentHealthy": healthy, "desiredHealthy": 2}})
        };
        assert!(matches!(readiness(&pdb, &budget(3, 1), &rules), Readiness::Progressing(m) if m.contains("1/2")));
        assert_eq!(readiness(&pdb, &budget(3, 2), &rules), Readiness::Ready);
        assert_eq!(readiness(&pdb, &budget(0, 0), &rules), Readiness::Ready);
    }
}
