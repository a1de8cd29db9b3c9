//! The whole life of a deployed project against the real control plane: revisions, history,
//! rollback (by hand, from a folder without project files, and automatic on failure), status, list
//! and delete, including what delete must keep and what a killed rollback or delete leaves for the
//! next run to finish.

mod support;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value as Json;
use support::{
    DeleteOnDrop, Run, TestProject as Project, VaultHome, crd, kdeploy, run, run_with_stdin, unique_group, wait_until,
};

const CANARY_ONE: &str = "canary-one-7f3a9c";
const CANARY_TWO: &str = "canary-two-b81d2e";

fn deployment(name: &str, replicas: &str, pod_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: app\n          image: registry.example/{name}:1\n{pod_extra}"
    )
}

fn json(run: &Run) -> Json {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", run.stdout, run.stderr))
}

/// Every value of every Secret and ConfigMap in the cluster, decoded every way kdeploy might store
/// it (base64, gzip, base64 inside gzip), with where it was found.
fn every_stored_text(p: &Project) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for kind in ["secrets", "configmaps"] {
        let list: Json = serde_json::from_str(&p.cluster.kubectl_ok(&["get", kind, "-A", "-o", "json"])).unwrap();
        for item in list["items"].as_array().unwrap() {
            let place = format!(
                "{kind} {}/{}",
                item["metadata"]["namespace"].as_str().unwrap_or_default(),
                item["metadata"]["name"].as_str().unwrap_or_default()
            );
            found.push((place.clone(), item["metadata"].to_string()));
            for field in ["data", "binaryData", "stringData"] {
                for (key, value) in item[field].as_object().into_iter().flatten() {
                    let text = value.as_str().unwrap_or_default();
                    found.push((format!("{place} {field}.{key}"), text.to_owned()));
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) {
                        found.push((
                            format!("{place} {field}.{key} (base64)"),
                            String::from_utf8_lossy(&bytes).into_owned(),
                        ));
                        let mut inflated = Vec::new();
                        if flate2::read::GzDecoder::new(&bytes[..])
                            .read_to_end(&mut inflated)
                            .is_ok()
                        {
                            let inflated = String::from_utf8_lossy(&inflated).into_owned();
                            found.push((format!("{place} {field}.{key} (gzip)"), inflated));
                        }
                    }
                }
            }
        }
    }
    found
}

#[test]
fn a_failed_apply_rolls_back_and_a_rollback_from_anywhere_restores_values_replicas_and_secrets() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    let p = Project::new(
        "life",
        &format!("secrets: [secrets.sops.yaml]\nrecipients: [{recipient}]\n"),
    );
    let set_secret = |value: &str| home.vault_set(p.dir.path(), &identity, "secrets.sops.yaml", "token", value);
    let in_home = |mut command: Command| {
        home.isolate(&mut command);
        command.env("SOPS_AGE_KEY_FILE", &identity);
        command
    };
    let apply = |extra: &[&str]| run(in_home(p.command(&["apply", "--yes", "--timeout", "60s"])).args(extra));
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: {{ values.mode }}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  token: {{ secrets.token }}\n";
    p.write("manifests/config.yaml", config);

    // Revision 1.
    set_secret(CANARY_ONE);
    p.write("manifests/web.yaml", &deployment("web", "1", ""));
    apply(&["-v", "mode=one"]).ok();
    // Revision 2: other values, more replicas, another Secret value, one more object.
    set_secret(CANARY_TWO);
    p.write("manifests/web.yaml", &deployment("web", "2", ""));
    p.write(
        "manifests/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  k: v\n",
    );
    apply(&["-v", "mode=two"]).ok();
    // An apply that changes nothing records nothing.
    apply(&["-v", "mode=two"]).ok();

    // Revision 3 fails readiness (its new Deployment can never be scheduled) and rolls back.
    p.write("manifests/web.yaml", &deployment("web", "3", ""));
    p.write(
        "manifests/stuck.yaml",
        &deployment("stuck", "1", "      nodeSelector: {kdeploy-test: nowhere}\n"),
    );
    let failed = run(&mut in_home(p.command(&[
        "apply",
        "--yes",
        "--timeout",
        "3s",
        "--rollback-on-failure",
        "--rollback-timeout",
        "60s",
        "-v",
        "mode=three",
    ])));
    assert_eq!(failed.code, 2, "{}\n{}", failed.stdout, failed.stderr);
    assert!(failed.stderr.contains("stuck"), "says what failed:\n{}", failed.stderr);
    assert!(
        failed.stderr.contains("rolled back to revision 2"),
        "says what was restored:\n{}",
        failed.stderr
    );
    // Exactly as revision 2 left it.
    assert!(
        p.get("deployment", "stuck").is_none(),
        "the failed apply's new object is pruned"
    );
    assert_eq!(p.get("deployment", "web").unwrap()["spec"]["replicas"], 2);
    assert_eq!(p.get("configmap", "settings").unwrap()["data"]["mode"], "two");
    assert!(p.get("configmap", "extra").is_some());

    let history = json(&run(&mut in_home(p.command(&["history", "-o", "json"]))).ok());
    let revisions = history["revisions"].as_array().unwrap();
    let outcome = |n: u64| {
        revisions
            .iter()
            .find(|r| r["number"] == n)
            .map(|r| r["outcome"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no revision {n}: {history}"))
    };
    assert_eq!(
        revisions.len(),
        4,
        "1, 2, the failed 3 and its rollback 4 (the no-op recorded nothing): {history}"
    );
    assert_eq!(outcome(4), "deployed");
    assert_eq!(outcome(3), "rolled-back");
    assert_eq!(outcome(2), "superseded");
    assert_eq!(outcome(1), "superseded");
    assert_eq!(revisions[0]["rollback_of"], 2);
    let text = run(&mut in_home(p.command(&["history"]))).ok().stdout;
    assert!(
        text.contains("create Deployment/stuck"),
        "history names the objects changed:\n{text}"
    );

    // history show masks the Secret; the revision's manifest holds no value of it.
    let shown = run(&mut in_home(p.command(&["history", "show", "2"]))).ok().stdout;
    assert!(shown.contains("name: api") && shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains(CANARY_TWO) && !shown.contains(CANARY_ONE), "{shown}");

    // Without a key that opens the vault, a rollback refuses before it writes anything.
    let elsewhere = tempfile::tempdir().unwrap();
    let from_elsewhere = |args: &[&str]| {
        let mut command = kdeploy();
        home.isolate(&mut command);
        command
            .current_dir(elsewhere.path())
            .args(args)
            .args(["--applyset", "life", "-n", &p.ns.name, "--kubeconfig"])
            .arg(&p.cluster.kubeconfig);
        command
    };
    let refused = run(&mut from_elsewhere(&["rollback", "1", "--yes"]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("cannot be restored"), "{}", refused.stderr);
    assert_eq!(
        p.get("configmap", "settings").unwrap()["data"]["mode"],
        "two",
        "nothing changed"
    );

    // From a folder with no project files, with the identity: revision 1 comes back whole.
    let mut rollback = from_elsewhere(&["rollback", "1", "--yes"]);
    rollback.env("SOPS_AGE_KEY_FILE", &identity);
    let rolled = run(&mut rollback).ok();
    assert!(
        !rolled.stdout.contains(CANARY_ONE) && !rolled.stderr.contains(CANARY_ONE),
        "{}",
        rolled.stdout
    );
    assert_eq!(p.get("configmap", "settings").unwrap()["data"]["mode"], "one");
    assert_eq!(p.get("deployment", "web").unwrap()["spec"]["replicas"], 1);
    assert!(
        p.get("configmap", "extra").is_none(),
        "what was added since revision 1 is pruned"
    );
    let secret = p.get("secret", "api").unwrap();
    let token = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(token, CANARY_ONE.as_bytes(), "the Secret is restored");

    // diff --revision: the cluster now is revision 5 (a copy of 1), and differs from 2.
    let mut diff = from_elsewhere(&["diff", "--revision", "2"]);
    diff.env("SOPS_AGE_KEY_FILE", &identity);
    let diff = run(&mut diff);
    assert_eq!(diff.code, 1, "{}\n{}", diff.stdout, diff.stderr);
    assert!(diff.stdout.contains("extra"), "{}", diff.stdout);
    assert!(!diff.stdout.contains(CANARY_TWO), "{}", diff.stdout);

    // The canaries are nowhere but in their own Secret, however the stored data is decoded.
    for (place, text) in every_stored_text(&p) {
        if text.contains(CANARY_ONE) || text.contains(CANARY_TWO) {
            assert!(
                place.starts_with(&format!("secrets {}/api data.token", p.ns.name)),
                "a secret value is readable in {place}"
            );
        }
    }
}

#[test]
fn history_stays_within_history_max_and_status_names_what_is_missing() {
    let p = Project::new("life-max", "");
    let apply = |n: u32| {
        p.write(
            "manifests/cm.yaml",
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: counter\ndata:\n  n: \"{n}\"\n"),
        );
        run(&mut p.command(&["apply", "--yes", "--history-max", "3"])).ok();
    };
    for n in 1..=5 {
        apply(n);
    }
    let revisions = p.cluster.kubectl_ok(&[
        "get",
        "secrets",
        "-n",
        &p.ns.name,
        "-l",
        "kdeploy.dev/revision-of",
        "-o",
        "name",
    ]);
    assert_eq!(revisions.lines().count(), 3, "{revisions}");
    let history = json(&run(&mut p.command(&["history", "-o", "json"])).ok());
    let numbers: Vec<u64> = history["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [5, 4, 3]);

    let status = run(&mut p.command(&["status"]));
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    p.cluster
        .kubectl_ok(&["delete", "configmap", "counter", "-n", &p.ns.name]);
    let status = run(&mut p.command(&["status"]));
    assert_eq!(status.code, 1, "{}\n{}", status.stdout, status.stderr);
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.contains("ConfigMap/counter") && l.contains("missing")),
        "{}",
        status.stdout
    );
    // Another field manager's change shows too.
    run(&mut p.command(&["apply", "--yes"])).ok();
    p.cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "counter",
        "-n",
        &p.ns.name,
        "--type=merge",
        "-p",
        r#"{"data":{"n":"edited"}}"#,
    ]);
    let status = json(&run(&mut p.command(&["status", "-o", "json"])));
    let counter = status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"]["name"] == "counter")
        .unwrap();
    assert_eq!(counter["state"], "changed", "{status}");
    assert!(counter["changed_by"].as_str().unwrap().contains("kubectl"), "{status}");
}

#[test]
fn list_shows_projects_sharing_a_namespace_and_delete_takes_only_what_is_provably_the_projects() {
    let group = unique_group("life");
    let alpha = Project::new("life-alpha", "");
    let ns = alpha.ns.name.clone();
    let shared = format!("{ns}-shared");
    let _cleanup = DeleteOnDrop(alpha.cluster, "namespace", vec![shared.clone()]);
    let _crd_cleanup = DeleteOnDrop(alpha.cluster, "crd", vec![format!("widgets.{group}")]);
    alpha.write("manifests/crd.yaml", &crd(&group, "Widget"));
    alpha.write(
        "manifests/objects.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {shared}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a1\n  namespace: {shared}\ndata: {{k: v}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a2\ndata: {{k: v}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: precious\n  annotations: {{kdeploy.dev/keep: \"true\"}}\ndata: {{k: v}}\n---\n\
             apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  annotations: {{kdeploy.dev/wait: \"false\"}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\n\
             apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\nspec: {{}}\n"
        ),
    );
    // Beta shares alpha's namespaces: one object in each.
    let beta = support::project(&[
        ("kdeploy.yaml", "name: life-beta\n"),
        (
            "manifests/b.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b1\n  namespace: {shared}\ndata: {{k: v}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b2\ndata: {{k: v}}\n"
            ),
        ),
    ]);
    let beta_command = |args: &[&str]| {
        let mut command = kdeploy();
        command
            .current_dir(beta.path())
            .args(args)
            .args(["-n", &ns, "--kubeconfig"])
            .arg(&alpha.cluster.kubeconfig);
        command
    };
    let widget_status = r#"{"conditions": [{"type": "Ready", "status": "True", "reason": "Done"}]}"#;
    let applying = std::thread::scope(|scope| {
        let handle = scope.spawn(|| run(&mut alpha.command(&["apply", "--yes", "--timeout", "60s"])));
        wait_until(Duration::from_secs(30), || {
            alpha.get(&format!("widgets.{group}"), "w1").is_some()
        });
        alpha.set_status(&format!("widgets.{group}"), "w1", widget_status);
        handle.join().unwrap()
    });
    applying.ok();
    run(&mut beta_command(&["apply", "--yes"])).ok();
    // A custom resource made by hand, outside both projects.
    let hand_made =
        format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: by-hand\n  namespace: {ns}\nspec: {{}}\n");
    let mut kubectl = alpha.cluster.kubectl();
    kubectl.args(["apply", "-f", "-"]);
    run_with_stdin(&mut kubectl, Some(&hand_made)).ok();

    let listed = json(&run(&mut alpha.command(&["list", "-o", "json"])).ok());
    let projects: Vec<&str> = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["project"].as_str())
        .collect();
    assert!(
        projects.contains(&"life-alpha") && projects.contains(&"life-beta"),
        "{listed}"
    );
    let alpha_entry = listed["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["project"] == "life-alpha")
        .unwrap();
    assert_eq!(alpha_entry["revision"], 1, "{listed}");
    // The CRD, the shared Namespace, a1, a2, precious, the PVC and w1.
    assert_eq!(alpha_entry["objects"], 7, "{listed}");

    // A dry run changes nothing.
    let dry = run(&mut alpha.command(&["delete", "--dry-run", "--delete-namespaces", "--delete-crds"])).ok();
    assert!(dry.stdout.contains("delete  ConfigMap/a2"), "{}", dry.stdout);
    assert!(alpha.get("configmap", "a2").is_some());
    assert!(
        alpha
            .cluster
            .kubectl()
            .args(["get", "secret", "kdeploy-life-alpha", "-n", &ns])
            .status()
            .unwrap()
            .success()
    );

    let deleted = run(&mut alpha.command(&["delete", "--yes", "--delete-namespaces", "--delete-crds", "-o", "json"]));
    assert_eq!(deleted.code, 0, "{}\n{}", deleted.stdout, deleted.stderr);
    let report = json(&deleted);
    let kept: Vec<(String, String)> = report["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                format!(
                    "{}/{}",
                    k["object"]["kind"].as_str().unwrap(),
                    k["object"]["name"].as_str().unwrap()
                ),
                k["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let reason = |object: &str| {
        kept.iter()
            .find(|(o, _)| o == object)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{object} was not kept: {report}"))
    };
    assert!(
        reason(&format!("Namespace/{shared}")).contains("b1"),
        "names the other project's object: {report}"
    );
    assert!(
        reason(&format!("CustomResourceDefinition/widgets.{group}")).contains("by-hand"),
        "{report}"
    );
    assert!(
        reason("PersistentVolumeClaim/data").contains("--delete-volumes"),
        "{report}"
    );
    assert!(reason("ConfigMap/precious").contains("kdeploy.dev/keep"), "{report}");
    // Gone: alpha's own objects, its parent and its revisions.
    assert!(alpha.get("configmap", "a2").is_none());
    assert!(alpha.get(&format!("widgets.{group}"), "w1").is_none());
    let a1 = alpha
        .cluster
        .kubectl()
        .args(["get", "configmap", "a1", "-n", &shared])
        .output()
        .unwrap();
    assert!(!a1.status.success(), "a1 is deleted");
    let leftovers = alpha.cluster.kubectl_ok(&["get", "secrets", "-n", &ns, "-o", "name"]);
    assert!(!leftovers.contains("kdeploy-life-alpha"), "{leftovers}");
    // Kept: beta's objects, the shared Namespace, the CRD with the hand-made resource, the PVC and
    // the annotated ConfigMap, each released from alpha's set.
    let b1 = alpha
        .cluster
        .kubectl_ok(&["get", "configmap", "b1", "-n", &shared, "-o", "json"]);
    assert!(
        b1.contains("applyset.kubernetes.io/part-of"),
        "beta's object is still beta's"
    );
    assert!(alpha.get("configmap", "b2").is_some());
    assert!(alpha.get(&format!("widgets.{group}"), "by-hand").is_some());
    let pvc = alpha.get("persistentvolumeclaim", "data").expect("the PVC is kept");
    assert!(
        pvc["metadata"]["labels"]
            .get("applyset.kubernetes.io/part-of")
            .is_none(),
        "released: {pvc}"
    );
    assert!(alpha.get("configmap", "precious").is_some());
    // Beta is untouched and still healthy.
    let status = run(&mut beta_command(&["status"]));
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
}

/// Starts `command`, waits until `started` says it has begun writing, and kills it (SIGKILL: no
/// cleanup of any kind). True when it was killed while it ran.
fn kill_when(mut command: Command, started: impl Fn() -> bool) -> bool {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let began = wait_until(Duration::from_secs(60), || {
        started() || child.try_wait().unwrap().is_some()
    });
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    began && running
}

#[test]
fn a_killed_rollback_and_a_killed_or_stalled_delete_finish_when_run_again() {
    let group = unique_group("lk");
    let widgets = format!("widgets.{group}");
    let p = Project::new(
        "life-kill",
        &format!("health:\n  - {{kind: Widget, group: {group}, condition: Ready}}\n"),
    );
    let _cleanup = DeleteOnDrop(p.cluster, "crd", vec![widgets.clone()]);
    p.write("manifests/crd.yaml", &crd(&group, "Widget"));
    let revision = |value: &str| {
        let mut text = format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: gate\n  annotations: {{kdeploy.dev/phase: pre}}\nspec: {{v: {value}}}\n---\n"
        );
        for i in 0..10 {
            text.push_str(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  v: {value}\n---\n"
            ));
        }
        p.write("manifests/objects.yaml", &text);
    };
    let ready = |status: &str| {
        p.set_status(
            &widgets,
            "gate",
            &format!(r#"{{"conditions": [{{"type": "Ready", "status": "{status}", "reason": "Test"}}]}}"#),
        )
    };
    let values = || -> Vec<String> {
        let list: Json =
            serde_json::from_str(
                &p.cluster
                    .kubectl_ok(&["get", "configmaps", "-n", &p.ns.name, "-o", "json"]),
            )
            .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["data"]["v"].as_str().map(str::to_owned))
            .collect()
    };
    revision("one");
    std::thread::scope(|scope| {
        let apply = scope.spawn(|| run(&mut p.command(&["apply", "--yes", "--timeout", "60s"])));
        wait_until(Duration::from_secs(30), || p.get(&widgets, "gate").is_some());
        ready("True");
        apply.join().unwrap().ok();
    });
    revision("two");
    run(&mut p.command(&["apply", "--yes", "--timeout", "60s"])).ok();

    // The rollback to 1 writes the gate (phase pre), then waits for it, which never becomes ready: it
    // is killed there, with the main phase not yet restored.
    ready("False");
    let killed = kill_when(p.command(&["rollback", "1", "--yes"]), || {
        p.get(&widgets, "gate").is_some_and(|g| g["spec"]["v"] == "one")
    });
    assert!(killed, "the rollback was killed while it ran");
    assert!(values().iter().all(|v| v == "two"), "the kill left it part-way");
    ready("True");
    // Run again (once the killed one's lock expires): it finishes.
    let again = run(&mut p.command(&["rollback", "1", "--yes", "--timeout", "60s"]));
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let done = values();
    assert_eq!(done.len(), 10);
    assert!(done.iter().all(|v| v == "one"), "all restored: {done:?}");
    let history = json(&run(&mut p.command(&["history", "-o", "json"])).ok());
    assert_eq!(history["revisions"][0]["rollback_of"], 1, "{history}");

    // A finalizer holds the ConfigMaps: the delete says what is left and what holds it, and keeps the
    // parent, so that running it again finishes.
    let finalizers = |value: &str| {
        for i in 0..10 {
            let patch = format!(r#"{{"metadata":{{"finalizers":{value}}}}}"#);
            let name = format!("cm-{i}");
            p.cluster.kubectl_ok(&[
                "patch",
                "configmap",
                &name,
                "-n",
                &p.ns.name,
                "--type=merge",
                "-p",
                &patch,
            ]);
        }
    };
    finalizers(r#"["kdeploy.test/hold"]"#);
    let stalled = run(&mut p.command(&["delete", "--yes", "--timeout", "3s"]));
    assert_eq!(stalled.code, 2, "{}\n{}", stalled.stdout, stalled.stderr);
    assert!(
        stalled.stderr.contains("held by finalizer kdeploy.test/hold"),
        "{}",
        stalled.stderr
    );
    assert!(
        stalled.stderr.contains("run kdeploy delete again"),
        "{}",
        stalled.stderr
    );
    assert!(p.get(&widgets, "gate").is_none(), "the custom resource went first");
    // Killed while it waits for the same finalizers.
    let killed = kill_when(p.command(&["delete", "--yes"]), || {
        // The kill comes once it is past its plan: the lock it holds is renewed.
        std::thread::sleep(Duration::from_secs(2));
        true
    });
    assert!(killed, "the delete was killed while it ran");
    let secrets = p
        .cluster
        .kubectl_ok(&["get", "secrets", "-n", &p.ns.name, "-o", "name"]);
    assert!(
        secrets.contains("kdeploy-life-kill"),
        "the parent stays until the delete finishes: {secrets}"
    );
    finalizers("null");
    let again = run(&mut p.command(&["delete", "--yes"]));
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(values().is_empty());
    let secrets = p
        .cluster
        .kubectl_ok(&["get", "secrets", "-n", &p.ns.name, "-o", "name"]);
    assert!(
        !secrets.contains("kdeploy-life-kill"),
        "parent and revisions are gone: {secrets}"
    );
}

#[test]
fn a_failed_first_apply_deletes_what_it_created_and_releases_what_it_adopted() {
    let p = Project::new("life-first", "");
    // Made by hand before the project's first apply: the project adopts it.
    p.cluster.kubectl_ok(&[
        "create",
        "configmap",
        "existing",
        "-n",
        &p.ns.name,
        "--from-literal=k=before",
    ]);
    p.write(
        "manifests/objects.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: existing\ndata:\n  k: after\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: new\ndata:\n  k: v\n---\n{}",
            deployment("stuck", "1", "      nodeSelector: {kdeploy-test: nowhere}\n")
        ),
    );
    // SIGTERM while it waits for readiness: the rollback runs, and the process says what it did.
    // It existed: taking over its fields is what adopting it means.
    let mut command = p.command(&[
        "apply",
        "--yes",
        "--timeout",
        "120s",
        "--rollback-on-failure",
        "--force-conflicts",
    ]);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || p.get("deployment", "stuck").is_some()),
        "the apply got as far as the Deployment"
    );
    std::thread::sleep(Duration::from_secs(1));
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr.contains("what the failed first apply created was deleted"),
        "{stderr}"
    );
    assert!(
        wait_until(Duration::from_secs(30), || p.get("deployment", "stuck").is_none()),
        "created by the failed apply: deleted"
    );
    assert!(p.get("configmap", "new").is_none());
    let existing = p.get("configmap", "existing").expect("adopted: never deleted");
    assert!(
        existing["metadata"]["labels"]
            .get("applyset.kubernetes.io/part-of")
            .is_none(),
        "released from the set: {existing}"
    );
    // The next apply can go ahead: nothing is locked.
    p.write(
        "manifests/objects.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: new\ndata:\n  k: v\n",
    );
    run(&mut p.command(&["apply", "--yes", "--lock-timeout", "0s"])).ok();
}

#[test]
fn delete_with_delete_namespaces_takes_the_namespace_that_holds_the_project_and_its_parent() {
    let cluster = support::cluster();
    let name = support::unique_name("life-own");
    let _cleanup = DeleteOnDrop(cluster, "namespace", vec![name.clone()]);
    let dir = support::project(&[
        ("kdeploy.yaml", &format!("name: {name}\nnamespace: {name}\n")),
        (
            "manifests/all.yaml",
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: {{k: v}}\n"
            ),
        ),
    ]);
    let here = |args: &[&str]| support::kdeploy_in(dir.path(), args);
    here(&["apply", "--yes"]).ok();
    // The parent, its revision and the lock live in the namespace: they do not keep it.
    let deleted = here(&["delete", "--yes", "--delete-namespaces"]);
    assert_eq!(deleted.code, 0, "{}\n{}", deleted.stdout, deleted.stderr);
    assert!(deleted.stdout.contains("kept 0"), "{}", deleted.stdout);
    // Gone, or (on a cluster where an aggregated API has no backend, as kube-prometheus's adapter
    // leaves this one) terminating with nothing of the project left, which delete says.
    let gone = wait_until(Duration::from_secs(30), || {
        !cluster
            .kubectl()
            .args(["get", "namespace", &name])
            .output()
            .unwrap()
            .status
            .success()
    });
    if !gone {
        assert!(
            deleted.stderr.contains("Kubernetes cannot finish it"),
            "{}",
            deleted.stderr
        );
        let stamp = cluster.kubectl_ok(&[
            "get",
            "namespace",
            &name,
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        assert!(!stamp.trim().is_empty(), "it is being deleted");
        let left = cluster.kubectl_ok(&["get", "configmaps,secrets", "-n", &name, "-o", "name"]);
        assert!(!left.contains("configmap/c") && !left.contains("kdeploy-"), "{left}");
    }
}
