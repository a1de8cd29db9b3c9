//! `kdeploy diff` and `kdeploy apply` against the real local control plane (kwok nodes included).
//! Each test works in its own namespace with its own ApplySet.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Cluster, Run, TestNamespace, VaultHome, cluster, kdeploy, project, run, run_with_stdin};

struct Deploy {
    cluster: &'static Cluster,
    ns: TestNamespace,
    dir: tempfile::TempDir,
}

impl Deploy {
    fn new(prefix: &str) -> Deploy {
        let cluster = cluster();
        Deploy {
            cluster,
            ns: cluster.namespace(prefix),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).unwrap();
    }

    fn kdeploy(&self, command: &str, extra: &[&str]) -> Command {
        let mut c = kdeploy();
        c.current_dir(self.dir.path())
            .arg(command)
            .arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .args(["-n", &self.ns.name, "--applyset", "test-set"])
            .args(extra);
        c
    }

    fn diff(&self, extra: &[&str]) -> Run {
        run(&mut self.kdeploy("diff", extra))
    }

    fn apply(&self, extra: &[&str]) -> Run {
        run(self.kdeploy("apply", extra).arg("--yes"))
    }

    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        let out = run(self
            .cluster
            .kubectl()
            .args(["get", kind, name, "-n", &self.ns.name, "-o", "json"]));
        (out.code == 0).then(|| serde_json::from_str(&out.stdout).unwrap())
    }
}

fn config_map(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{data}")
}

#[test]
fn create_update_and_a_no_op_reapply() {
    let d = Deploy::new("dp-basic");
    d.write(
        "manifests/cm.yaml",
        &config_map("settings", "  mode: {{ values.mode }}\n  motto: \"yes: #1\"\n"),
    );
    let first = d.diff(&["-v", "mode=0755"]);
    assert_eq!(first.code, 1, "a diff with changes exits 1: {}", first.stderr);
    assert!(
        first.stdout.contains("create     ConfigMap") || first.stdout.contains("create  ConfigMap"),
        "{}",
        first.stdout
    );
    d.apply(&["-v", "mode=0755"]).ok();
    assert_eq!(
        d.get("configmap", "settings").unwrap()["data"],
        json!({"mode": "0755", "motto": "yes: #1"})
    );

    let again = d.diff(&["-v", "mode=0755"]);
    assert_eq!(again.code, 0, "nothing changed, so exit 0: {}", again.stdout);
    assert!(
        again
            .stdout
            .contains("0 to create, 0 to update, 1 unchanged, 0 to prune"),
        "{}",
        again.stdout
    );
    let noop = d.apply(&["-v", "mode=0755"]).ok();
    assert!(noop.stdout.contains("no changes to apply"), "{}", noop.stdout);

    let changed = d.diff(&["-v", "mode=0644"]);
    assert_eq!(changed.code, 1);
    assert!(
        changed.stdout.contains("-  mode: \"0755\"") && changed.stdout.contains("+  mode: \"0644\""),
        "{}",
        changed.stdout
    );
    assert!(
        !changed.stdout.contains("managedFields") && !changed.stdout.contains("resourceVersion"),
        "noise is removed:\n{}",
        changed.stdout
    );
    d.apply(&["-v", "mode=0644"]).ok();
    assert_eq!(d.get("configmap", "settings").unwrap()["data"]["mode"], "0644");

    let json_report = d.diff(&["-v", "mode=0644", "-o", "json"]);
    let report: Value = serde_json::from_str(&json_report.stdout).unwrap();
    assert_eq!(report["has_changes"], false);
    assert_eq!(report["changes"][0]["operation"], "unchanged");
}

#[test]
fn an_object_made_by_another_tool_is_planned_as_an_update_and_adopted() {
    let d = Deploy::new("dp-adopt");
    run(d.cluster.kubectl().args([
        "create",
        "configmap",
        "adopted",
        "--from-literal=shared=same",
        "-n",
        &d.ns.name,
    ]))
    .ok();
    d.write(
        "manifests/cm.yaml",
        &config_map("adopted", "  shared: same\n  added: new\n"),
    );
    let diff = d.diff(&["-o", "json"]);
    assert_eq!(diff.code, 1, "{}", diff.stderr);
    let report: Value = serde_json::from_str(&diff.stdout).unwrap();
    assert_eq!(
        report["changes"][0]["operation"], "update",
        "it exists, so it is not a create: {report}"
    );
    let text = d.diff(&[]);
    assert!(
        text.stdout.contains("+  added: new") && !text.stdout.contains("-  shared: same"),
        "the live side is the object as it is:\n{}",
        text.stdout
    );
    d.apply(&[]).ok();
    assert_eq!(
        d.get("configmap", "adopted").unwrap()["data"],
        json!({"shared": "same", "added": "new"})
    );
    assert_eq!(d.diff(&[]).code, 0, "adopted into the set, and unchanged");
}

#[test]
fn a_conflict_names_the_field_and_its_manager_until_forced() {
    let d = Deploy::new("dp-conflict");
    let other = config_map("shared", "  owner: team-a\n")
        .replace("name: shared", &format!("name: shared\n  namespace: {}", d.ns.name));
    run_with_stdin(
        d.cluster
            .kubectl()
            .args(["apply", "--server-side", "--field-manager", "team-a", "-f", "-"]),
        Some(&other),
    )
    .ok();
    d.write("manifests/cm.yaml", &config_map("shared", "  owner: kdeploy\n"));
    let refused = d.apply(&[]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains(".data.owner") && refused.stderr.contains("team-a"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force-conflicts"), "{}", refused.stderr);
    assert_eq!(
        d.get("configmap", "shared").unwrap()["data"]["owner"],
        "team-a",
        "nothing was applied"
    );
    d.apply(&["--force-conflicts"]).ok();
    assert_eq!(d.get("configmap", "shared").unwrap()["data"]["owner"], "kdeploy");
}

#[test]
fn prune_removes_what_left_and_never_touches_look_alikes() {
    let d = Deploy::new("dp-prune");
    d.write("manifests/a.yaml", &config_map("keep", "  a: \"1\"\n"));
    d.write("manifests/b.yaml", &config_map("leaving", "  b: \"1\"\n"));
    d.apply(&[]).ok();
    let id = d.get("configmap", "keep").unwrap()["metadata"]["labels"]["applyset.kubernetes.io/part-of"]
        .as_str()
        .unwrap()
        .to_owned();
    let parent = d.get("secret", "test-set").unwrap();
    assert_eq!(
        parent["metadata"]["labels"]["applyset.kubernetes.io/id"],
        id.as_str(),
        "the parent Secret carries the set's ID"
    );
    assert_eq!(
        parent["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"],
        "ConfigMap"
    );
    // Look-alikes: one copies our label but was applied by someone else; one belongs to another set.
    for (name, label) in [("copycat", id.as_str()), ("other-set", "applyset-someone-else-v1")] {
        let object = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {}\n  labels:\n    applyset.kubernetes.io/part-of: {label}\ndata: {{x: z}}\n",
            d.ns.name
        );
        run_with_stdin(
            d.cluster
                .kubectl()
                .args(["apply", "--server-side", "--field-manager", "someone", "-f", "-"]),
            Some(&object),
        )
        .ok();
    }
    d.remove("manifests/b.yaml");
    let diff = d.diff(&[]);
    assert_eq!(diff.code, 1);
    assert!(
        diff.stdout.contains("prune      ConfigMap   ") || diff.stdout.contains("prune "),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout.contains("leaving") && !diff.stdout.contains("copycat") && !diff.stdout.contains("other-set"),
        "{}",
        diff.stdout
    );
    let applied = d.apply(&[]).ok();
    assert!(applied.stdout.contains("1 pruned"), "{}", applied.stdout);
    assert!(
        d.get("configmap", "leaving").is_none(),
        "the object that left the manifest is pruned"
    );
    assert!(d.get("configmap", "keep").is_some());
    assert!(
        d.get("configmap", "copycat").is_some() && d.get("configmap", "other-set").is_some(),
        "look-alikes survive"
    );
}

#[test]
fn namespaces_are_pruned_only_with_the_flag() {
    let d = Deploy::new("dp-nsprune");
    let extra_ns = format!("{}-extra", d.ns.name);
    d.write(
        "manifests/ns.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {extra_ns}\n"),
    );
    d.write("manifests/cm.yaml", &config_map("c", "  a: \"1\"\n"));
    d.apply(&[]).ok();
    d.remove("manifests/ns.yaml");
    let kept = d.apply(&[]).ok();
    assert!(
        kept.stdout.contains(&format!(
            "kept (left the manifest; prune it with --prune-namespaces, or without --no-prune): Namespace/{extra_ns}"
        )),
        "{}",
        kept.stdout
    );
    assert_eq!(run(d.cluster.kubectl().args(["get", "namespace", &extra_ns])).code, 0);
    d.apply(&["--prune-namespaces"]).ok();
    let status = run(d
        .cluster
        .kubectl()
        .args(["get", "namespace", &extra_ns, "-o", "jsonpath={.status.phase}"]));
    assert!(
        status.code != 0 || status.stdout == "Terminating",
        "the namespace is deleted: {}",
        status.stdout
    );
}

#[test]
fn a_crd_and_its_custom_resource_in_one_apply() {
    let d = Deploy::new("dp-crd");
    let group = format!("{}.kdeploy.test", d.ns.name);
    d.write(
        "manifests/crd.yaml",
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gizmos.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: gizmos, singular: gizmo, kind: Gizmo}}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec: {{type: object, properties: {{size: {{type: integer}}}}}}\n"
        ),
    );
    d.write(
        "manifests/gizmo.yaml",
        &format!("apiVersion: {group}/v1\nkind: Gizmo\nmetadata:\n  name: g\nspec:\n  size: 3\n"),
    );
    let diff = d.diff(&[]);
    assert_eq!(diff.code, 1, "{}", diff.stderr);
    assert!(
        diff.stdout
            .contains("its CustomResourceDefinition is created by this apply"),
        "{}",
        diff.stdout
    );
    d.apply(&[]).ok();
    assert_eq!(d.get(&format!("gizmos.{group}"), "g").unwrap()["spec"]["size"], 3);
    run(d
        .cluster
        .kubectl()
        .args(["delete", "crd", &format!("gizmos.{group}"), "--wait=false"]));
}

#[test]
fn an_invalid_object_means_nothing_is_applied() {
    let d = Deploy::new("dp-invalid");
    d.write("manifests/a.yaml", &config_map("valid-one", "  a: \"1\"\n"));
    d.write(
        "manifests/b.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\nspec:\n  replicas: -3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: other}}\n    spec:\n      containers: [{name: c, image: nginx}]\n",
    );
    let out = d.apply(&[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("Deployment/broken") && out.stderr.contains("nothing was applied"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("replicas") || out.stderr.contains("selector"),
        "the server's message is shown: {}",
        out.stderr
    );
    assert!(
        d.get("configmap", "valid-one").is_none(),
        "the valid object must not be applied either"
    );
}

#[test]
fn a_deployment_rollout_is_awaited_to_available() {
    let d = Deploy::new("dp-rollout");
    d.write(
        "manifests/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: nginx:1.27}]\n",
    );
    let out = d.apply(&["--timeout", "60s"]).ok();
    assert!(
        out.stderr.contains("Deployment/web") && out.stderr.contains("ready"),
        "progress is shown: {}",
        out.stderr
    );
    assert_eq!(
        d.get("deployment", "web").unwrap()["status"]["availableReplicas"],
        2,
        "apply returned only once the rollout was done"
    );
}

/// A StatefulSet whose pods change only when deleted (OnDelete) keeps its old revision after a spec
/// change; waiting for a revision roll-out would never end, so kdeploy waits for ready pods.
#[test]
fn an_on_delete_stateful_set_is_ready_without_a_roll_out() {
    let d = Deploy::new("dp-ondelete");
    let set = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  replicas: 2\n  serviceName: db\n  updateStrategy: {{type: OnDelete}}\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec:\n      containers: [{{name: db, image: \"{image}\"}}]\n"
        )
    };
    d.write("manifests/db.yaml", &set("postgres:16"));
    d.apply(&["--timeout", "60s"]).ok();
    assert_eq!(d.get("statefulset", "db").unwrap()["status"]["readyReplicas"], 2);
    d.write("manifests/db.yaml", &set("postgres:17"));
    d.apply(&["--timeout", "20s"]).ok();
    let status = d.get("statefulset", "db").unwrap()["status"].clone();
    assert_ne!(
        status["currentRevision"], status["updateRevision"],
        "the pods kept the old revision, as OnDelete means: {status}"
    );
}

#[test]
fn a_rollout_that_never_becomes_ready_times_out_with_a_reason() {
    let d = Deploy::new("dp-stuck");
    d.write(
        "manifests/stuck.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stuck\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: stuck}}\n  template:\n    metadata: {labels: {app: stuck}}\n    spec:\n      nodeSelector: {no-such-node: \"true\"}\n      containers: [{name: c, image: nginx}]\n",
    );
    let out = d.apply(&["--timeout", "4s"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("Deployment/stuck") && out.stderr.contains("not ready after 4s"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("0/1 available"), "{}", out.stderr);
}

#[test]
fn a_refused_object_in_a_new_namespace_leaves_nothing_behind_and_reapply_converges() {
    let d = Deploy::new("dp-rollback");
    let fresh_ns = format!("{}-new", d.ns.name);
    d.write(
        "manifests/ns.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {fresh_ns}\n"),
    );
    // Objects in a namespace this apply creates can only be checked once it exists.
    d.write(
        "manifests/a.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a-good\n  namespace: {fresh_ns}\ndata: {{a: \"1\"}}\n"
        ),
    );
    // The case: a label value the server refuses.
    d.write(
        "manifests/b.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b-bad\n  namespace: {fresh_ns}\n  labels: {{team: 'not a valid label value!'}}\n"
        ),
    );
    let out = d.apply(&[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("the server refused ConfigMap/b-bad")
            && out.stderr.contains("nothing was applied")
            && out.stderr.contains(&format!("Namespace/{fresh_ns}")),
        "{}",
        out.stderr
    );
    assert_ne!(
        run(d.cluster.kubectl().args(["get", "namespace", &fresh_ns])).code,
        0,
        "the namespace this apply created is gone again"
    );
    // A namespace that existed before is never removed: the same refusal in the test's own namespace.
    d.write(
        "manifests/c.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {team: 'bad value!'}\n",
    );
    assert_eq!(d.apply(&[]).code, 2);
    assert_eq!(run(d.cluster.kubectl().args(["get", "namespace", &d.ns.name])).code, 0);
    d.remove("manifests/c.yaml");

    d.write(
        "manifests/b.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b-bad\n  namespace: {fresh_ns}\n"),
    );
    d.apply(&[]).ok();
    assert_eq!(
        run(d.cluster.kubectl().args(["get", "configmap", "b-bad", "-n", &fresh_ns])).code,
        0
    );
    run(d
        .cluster
        .kubectl()
        .args(["delete", "namespace", &fresh_ns, "--wait=false"]));
}

#[test]
fn a_context_that_contradicts_the_target_is_refused() {
    let d = Deploy::new("dp-context");
    d.write("kdeploy.yaml", "targets:\n  prod:\n    context: prod-eu-1\n");
    d.write("manifests/cm.yaml", &config_map("c", "  a: \"1\"\n"));
    let out = run(&mut d.kdeploy("apply", &["--target", "prod", "--context", "kdeploy-dev", "--yes"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("target `prod` deploys to context `prod-eu-1`") && out.stderr.contains("refusing"),
        "{}",
        out.stderr
    );
    let out = run(&mut d.kdeploy("diff", &["--target", "prod"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("context `prod-eu-1` is not in the kubeconfig"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_secret_canary_never_appears_in_diff_or_apply_output() {
    const CANARY: &str = "canary-9d2e-supersecret";
    let home = VaultHome::new();
    let d = Deploy::new("dp-secret");
    let (identity, recipient) = home.identity("key.txt");
    d.write(
        "kdeploy.yaml",
        &format!("secrets: [secrets.sops.yaml]\nrecipients: [{recipient}]\n"),
    );
    let mut set = home.kdeploy();
    set.current_dir(d.dir.path())
        .args(["vault", "set", "secrets.sops.yaml", "token"]);
    run_with_stdin(&mut set, Some(CANARY)).ok();
    d.write(
        "manifests/s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  token: {{ secrets.token }}\n  url: https://x?t={{ secrets.token }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leaky\ndata:\n  note: {{ secrets.token }}\n",
    );
    let identity_args = ["--identity", identity.to_str().unwrap()];
    let encoded = base64_of(CANARY);
    let check = |out: &Run, what: &str| {
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(CANARY) && !text.contains(&encoded),
                "{what} printed the secret:\n{text}"
            );
        }
    };
    let diff = d.diff(&identity_args);
    check(&diff, "diff");
    assert!(diff.stdout.contains("token: <redacted>"), "{}", diff.stdout);
    let applied = d.apply(&identity_args).ok();
    check(&applied, "apply");
    set.arg("--identity").arg(&identity);
    run_with_stdin(&mut set, Some("canary-rotated-value")).ok();
    let update = d.diff(&identity_args);
    check(&update, "diff of an update");
    assert!(
        update.stdout.contains("<redacted> (before)") && update.stdout.contains("<redacted> (after)"),
        "{}",
        update.stdout
    );
    let json_out = d.diff(&[identity_args[0], identity_args[1], "-o", "json"]);
    check(&json_out, "diff -o json");
}

fn base64_of(text: &str) -> String {
    let out = run_with_stdin(Command::new("base64").arg("-w0"), Some(text)).ok();
    out.stdout.trim().to_owned()
}

#[test]
fn kdeploy_apply_and_render_piped_to_kubectl_make_the_same_objects() {
    let via_kdeploy = Deploy::new("dp-same-a");
    let via_kubectl = Deploy::new("dp-same-b");
    let files = [
        ("manifests/cm.yaml", config_map("settings", "  level: {{ values.level }}\n  count: \"3\"\n")),
        (
            "manifests/web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"nginx:{{ values.tag }}\"}]\n".to_owned(),
        ),
    ];
    for (name, text) in &files {
        via_kdeploy.write(name, text);
    }
    let values = ["-v", "level=on", "-v", "tag=1.27"];
    via_kdeploy.apply(&values).ok();
    let dir = project(&files.iter().map(|(n, t)| (*n, t.as_str())).collect::<Vec<_>>());
    let rendered = run(kdeploy()
        .current_dir(dir.path())
        .args(["render", "-n", &via_kubectl.ns.name])
        .args(values))
    .ok();
    run_with_stdin(
        via_kubectl
            .cluster
            .kubectl()
            .args(["apply", "--server-side", "-f", "-"]),
        Some(&rendered.stdout),
    )
    .ok();
    for (kind, name) in [("configmap", "settings"), ("deployment", "web")] {
        let comparable = |d: &Deploy| {
            let mut object = d.get(kind, name).unwrap();
            let metadata = object["metadata"].as_object_mut().unwrap();
            for field in [
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
                "generation",
                "annotations",
            ] {
                metadata.remove(field);
            }
            if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
                labels.remove("applyset.kubernetes.io/part-of");
                if labels.is_empty() {
                    metadata.remove("labels");
                }
            }
            object.as_object_mut().unwrap().remove("status");
            object
        };
        assert_eq!(
            comparable(&via_kdeploy),
            comparable(&via_kubectl),
            "{kind}/{name} differs"
        );
    }
}
