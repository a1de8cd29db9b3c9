//! The shortcut that makes diff and apply fast at a distance, against the real control plane: an object
//! the last apply proves unchanged (its recorded digest matches, and kdeploy's managedFields still cover
//! every field it set) is not dry-run. Every way another manager can change an object must bring the
//! dry run back, and in every state the shortcut must agree with a full dry run of every object.
//! Discovery kept on disk must not hide a CRD created or deleted since.

mod support;

use std::collections::BTreeMap;

use serde_json::Value as Json;
use support::{DeleteOnDrop, TestProject as Project, cluster, crd, run, unique_group};

/// `diff -o json` (with `extra` flags): the exit code and, per `Kind/name`, the operation and how it was
/// checked.
fn diff(p: &Project, extra: &[&str]) -> (i32, BTreeMap<String, (String, String)>, Json) {
    let out = run(&mut p.command(&[&["diff", "-o", "json"], extra].concat()));
    assert!(out.code == 0 || out.code == 1, "diff failed: {}", out.stderr);
    let report: Json = serde_json::from_str(&out.stdout).unwrap();
    let changes = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{}/{}",
                    c["object"]["kind"].as_str().unwrap(),
                    c["object"]["name"].as_str().unwrap()
                ),
                (
                    c["operation"].as_str().unwrap().to_owned(),
                    c["checked_by"].as_str().unwrap_or("none").to_owned(),
                ),
            )
        })
        .collect();
    (out.code, changes, report)
}

/// The diff with the shortcut, checked against a full dry run of every object: the same exit code and
/// the same operation for every object.
fn diff_agreeing(p: &Project, extra: &[&str]) -> (i32, BTreeMap<String, (String, String)>, Json) {
    let (code, changes, report) = diff(p, extra);
    let (full_code, full, _) = diff(p, &[extra, &["--full-dry-run"]].concat());
    assert_eq!(
        code, full_code,
        "the shortcut and a full dry run disagree on the exit code"
    );
    for (object, (operation, _)) in &changes {
        assert_eq!(
            &full[object].0, operation,
            "{object}: the shortcut and a full dry run disagree"
        );
    }
    assert!(full.values().all(|(_, checked)| checked == "dry-run"));
    (code, changes, report)
}

fn operation(changes: &BTreeMap<String, (String, String)>, object: &str) -> (String, String) {
    changes[object].clone()
}

const APP: &str = r#"apiVersion: v1
kind: Secret
metadata: {name: pin}
stringData: {pin: "1234"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {tier: web}}
data: {mode: "{{ values.mode | default(value='fast') }}", level: "3"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {tier: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          args: ["--port", "8080"]
          ports: [{containerPort: 8080}]
          env: [{name: MODE, value: fast}]
"#;

#[test]
fn an_unchanged_object_needs_no_dry_run_until_another_manager_changes_it() {
    let group = unique_group("sc");
    let p = Project::new("shortcut", "");
    let _crd = DeleteOnDrop(p.cluster, "crd", vec![format!("widgets.{group}")]);
    let crd_file = p.dir.path().join("crd.yaml");
    std::fs::write(&crd_file, crd(&group, "Widget")).unwrap();
    p.cluster.kubectl_ok(&["apply", "-f", crd_file.to_str().unwrap()]);
    p.cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/widgets.{group}"),
        "--timeout=60s",
    ]);
    p.write("manifests/app.yaml", APP);
    p.write(
        "manifests/widget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w}}\nspec: {{size: 2, tags: [a, b]}}\n"),
    );
    run(&mut p.command(&["apply", "--yes", "--no-wait"])).ok();

    // Right after the apply, every object is proven unchanged without a dry run.
    let (code, changes, _) = diff_agreeing(&p, &[]);
    assert_eq!(code, 0);
    assert_eq!(changes.len(), 5);
    for (object, (operation, checked)) in &changes {
        assert_eq!(
            (operation.as_str(), checked.as_str()),
            ("unchanged", "last-apply"),
            "{object}"
        );
    }

    // A field kdeploy set, changed by an update (as `kubectl edit` does): the dry run shows it.
    let ns = p.ns.name.clone();
    let kubectl = |args: &[&str]| p.cluster.kubectl_ok(&[args, &["-n", &ns]].concat());
    kubectl(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"edited"}}"#,
    ]);
    // A label kdeploy set, removed by another manager.
    kubectl(&["label", "deployment", "web", "tier-"]);
    // A list element's field, taken by another manager's forced apply.
    let other = p.dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{name: http, port: 80, targetPort: 9090}]\n",
    )
    .unwrap();
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=other",
        "-f",
        other.to_str().unwrap(),
    ]);
    // A field of a custom resource, changed by an update.
    kubectl(&[
        "patch",
        &format!("widgets.{group}"),
        "w",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":3}}"#,
    ]);
    // Fields another manager took are conflicts the dry run names, with or without the shortcut.
    for extra in [&[][..], &["--full-dry-run"]] {
        let out = run(&mut p.command(&[&["diff"], extra].concat()));
        assert_eq!(out.code, 2, "{}", out.stdout);
        for (object, owner) in [
            ("ConfigMap/settings", "kubectl-patch"),
            ("Service/web", "\"other\""),
            ("Widget/w", "kubectl-patch"),
        ] {
            let line = out
                .stderr
                .lines()
                .find(|l| l.contains(object))
                .unwrap_or_else(|| panic!("{object}: {}", out.stderr));
            assert!(line.contains("conflict") && line.contains(owner), "{line}");
        }
    }
    let (code, changes, report) = diff_agreeing(&p, &["--force-conflicts"]);
    assert_eq!(code, 1, "{report}");
    for object in ["ConfigMap/settings", "Deployment/web", "Service/web", "Widget/w"] {
        assert_eq!(
            operation(&changes, object),
            ("update".into(), "dry-run".into()),
            "{object}"
        );
    }
    let text = report.to_string();
    for shown in ["edited", "tier", "9090", "size"] {
        assert!(text.contains(shown), "the diff does not show `{shown}`: {text}");
    }

    // Re-applying takes every field back; then all is proven again.
    run(&mut p.command(&["apply", "--yes", "--no-wait", "--force-conflicts"])).ok();
    let (code, changes, _) = diff_agreeing(&p, &[]);
    assert_eq!(code, 0);
    assert!(
        changes.values().all(|(_, checked)| checked == "last-apply"),
        "{changes:?}"
    );
    assert_eq!(p.get("service", "web").unwrap()["spec"]["ports"][0]["targetPort"], 8080);

    // What another manager adds beside kdeploy's fields changes nothing kdeploy applies: still proven,
    // and a full dry run agrees (diff_agreeing).
    kubectl(&["annotate", "configmap", "settings", "team/owner=someone"]);
    let (code, changes, _) = diff_agreeing(&p, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        operation(&changes, "ConfigMap/settings"),
        ("unchanged".into(), "last-apply".into())
    );

    // A changed template: that object is dry-run, the others stay proven.
    let (code, changes, _) = diff(&p, &["-v", "mode=slow"]);
    assert_eq!(code, 1);
    assert_eq!(
        operation(&changes, "ConfigMap/settings"),
        ("update".into(), "dry-run".into())
    );
    assert_eq!(
        operation(&changes, "Service/web"),
        ("unchanged".into(), "last-apply".into())
    );

    // An object without the digest (applied by an older kdeploy): unchanged by a dry run, and the next
    // apply records the digest without counting it as a change.
    kubectl(&["annotate", "service", "web", "kdeploy.dev/applied-digest-"]);
    let (code, changes, _) = diff_agreeing(&p, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        operation(&changes, "Service/web"),
        ("unchanged".into(), "dry-run".into())
    );
    let out = run(&mut p.command(&["apply", "--yes", "--no-wait"])).ok();
    assert!(
        out.stderr
            .contains("recording the applied digest on 1 unchanged object"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("no changes to apply"), "{}", out.stdout);
    let (_, changes, _) = diff(&p, &[]);
    assert_eq!(
        operation(&changes, "Service/web"),
        ("unchanged".into(), "last-apply".into())
    );

    // Digests are keyed with a key only readers of the ApplySet parent Secret have: a Secret's digest
    // does not invite guessing its short value.
    let parent = p.get("secret", "kdeploy-shortcut").unwrap();
    let key = parent["data"]["kdeploy.dev-digest-key"].as_str().unwrap();
    assert_eq!(key.len(), 44, "32 bytes, base64");
    let pin = p.get("secret", "pin").unwrap();
    let digest = pin["metadata"]["annotations"]["kdeploy.dev/applied-digest"]
        .as_str()
        .unwrap();
    assert!(digest.starts_with("hmac-sha256:"), "{digest}");
    // A lost key proves nothing: every object is dry-run, and the next apply records digests under a
    // new key.
    kubectl(&[
        "patch",
        "secret",
        "kdeploy-shortcut",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/data"}]"#,
    ]);
    let (code, changes, _) = diff_agreeing(&p, &[]);
    assert_eq!(code, 0);
    assert!(changes.values().all(|(_, checked)| checked == "dry-run"), "{changes:?}");
    let out = run(&mut p.command(&["apply", "--yes", "--no-wait"])).ok();
    assert!(
        out.stderr
            .contains("recording the applied digest on 5 unchanged object"),
        "{}",
        out.stderr
    );
    let (_, changes, _) = diff(&p, &[]);
    assert!(
        changes.values().all(|(_, checked)| checked == "last-apply"),
        "{changes:?}"
    );
    let new_key = p.get("secret", "kdeploy-shortcut").unwrap()["data"]["kdeploy.dev-digest-key"].clone();
    assert!(new_key.is_string() && new_key != key);

    // `render` output (for kubectl) carries no digest.
    let out = run(support::kdeploy().current_dir(p.dir.path()).arg("render")).ok();
    assert!(!out.stdout.contains("applied-digest"));
}

/// Members are listed in pages (`--chunk-size`): a member on any page is proven, and one that left the
/// manifest is pruned, whichever page it arrives on.
#[test]
fn members_on_every_page_are_proven_and_pruned() {
    let p = Project::new("paged", "");
    p.write(
        "manifests/many.yaml",
        r#"{% for i in range(end=25) %}{% if not (values.leave is defined and i in values.leave) %}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: "item-{{ i }}"}
data: {index: "{{ i }}"}
{% endif %}{% endfor %}
"#,
    );
    let chunked = ["--chunk-size", "4"];
    run(&mut p.command(&[&["apply", "--yes", "--no-wait"][..], &chunked].concat())).ok();

    // 25 members: seven pages of four. Every member is proven.
    let (code, changes, _) = diff_agreeing(&p, &chunked);
    assert_eq!(code, 0);
    assert_eq!(changes.len(), 25);
    assert!(
        changes
            .values()
            .all(|c| c == &("unchanged".into(), "last-apply".into())),
        "{changes:?}"
    );

    // Two members leave the manifest, one on the first page and one on the last (LISTs come back in
    // name order: item-1 is among the first four, item-9 among the last).
    let leave = ["--data-value-yaml", "leave=[1, 9]"];
    let (code, changes, _) = diff(&p, &[&leave[..], &chunked].concat());
    assert_eq!(code, 1);
    let pruned: Vec<&String> = changes.iter().filter(|(_, c)| c.0 == "prune").map(|(o, _)| o).collect();
    assert_eq!(pruned, ["ConfigMap/item-1", "ConfigMap/item-9"]);
    assert_eq!(
        changes
            .values()
            .filter(|c| *c == &("unchanged".into(), "last-apply".into()))
            .count(),
        23
    );
    run(&mut p.command(&[&["apply", "--yes", "--no-wait"][..], &leave, &chunked].concat())).ok();
    assert!(p.get("configmap", "item-1").is_none() && p.get("configmap", "item-9").is_none());
    assert!(p.get("configmap", "item-8").is_some() && p.get("configmap", "item-24").is_some());
}

#[test]
fn discovery_kept_on_disk_sees_crds_created_and_deleted_since() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_owned();
    let group = unique_group("dc");
    let p = Project::new("discovery", "");
    let gadgets = format!("gadgets.{group}");
    let _crd = DeleteOnDrop(p.cluster, "crd", vec![gadgets.clone()]);
    let diff = |p: &Project| {
        let mut command = p.command(&["diff"]);
        command.env("KDEPLOY_CACHE_DIR", &cache_dir);
        run(&mut command)
    };
    // An aggregated API whose backend never answers (as a broken metrics-server does) makes its group
    // stale in discovery; that must not keep the rest from being kept.
    let broken = unique_group("broken");
    let apiservice = p.dir.path().join("apiservice.yaml");
    std::fs::write(
        &apiservice,
        format!(
            "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1.{broken}}}\nspec: {{group: {broken}, version: v1, groupPriorityMinimum: 100, versionPriority: 100, insecureSkipTLSVerify: true, service: {{name: nowhere, namespace: default}}}}\n"
        ),
    )
    .unwrap();
    let _apiservice = DeleteOnDrop(p.cluster, "apiservice", vec![format!("v1.{broken}")]);
    p.cluster.kubectl_ok(&["apply", "-f", apiservice.to_str().unwrap()]);
    // A first run keeps the server's discovery on disk.
    p.write(
        "manifests/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    assert_eq!(diff(&p).code, 1);
    let kept: Vec<_> = std::fs::read_dir(cache.path().join("discovery")).unwrap().collect();
    assert_eq!(kept.len(), 1, "one file per server");

    // A CRD created after that is found all the same.
    let crd_file = p.dir.path().join("crd.yaml");
    std::fs::write(&crd_file, crd(&group, "Gadget")).unwrap();
    p.cluster.kubectl_ok(&["apply", "-f", crd_file.to_str().unwrap()]);
    p.cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{gadgets}"),
        "--timeout=60s",
    ]);
    p.write(
        "manifests/gadget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Gadget\nmetadata: {{name: g}}\nspec: {{}}\n"),
    );
    let out = diff(&p);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains("Gadget"), "{}", out.stdout);

    // Deleted since the disk last heard of it: the server's 404 is believed, and said as such.
    cluster().kubectl_ok(&["delete", "crd", &gadgets, "--wait=true"]);
    let out = diff(&p);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("the server does not serve Gadget"),
        "{}",
        out.stderr
    );
}

/// Every request goes over HTTP/2 when the API server offers it (one connection carries all of a
/// plan's concurrent reads), and the request log (`KDEPLOY_TRACE=requests`) names methods, paths and
/// statuses, never a query's values.
#[test]
fn requests_go_over_http2_and_the_request_log_shows_no_query_values() {
    let p = Project::new("h2", "");
    p.write(
        "manifests/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n",
    );
    for round in ["first", "no-op"] {
        let out = run(p.command(&["apply", "--yes"]).env("KDEPLOY_TRACE", "requests"));
        assert_eq!(out.code, 0, "{round} apply: {}", out.stderr);
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("kdeploy: request at"))
            .collect();
        assert!(
            lines.len() >= 5,
            "{round} apply logged too few requests: {}",
            out.stderr
        );
        assert!(
            lines.iter().all(|l| l.ends_with(" HTTP/2.0")),
            "{round} apply: every answer is HTTP/2: {}",
            out.stderr
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("POST /apis/coordination.k8s.io/v1/namespaces/") && l.contains("/leases 201")),
            "{round} apply takes the lock by creating it: {}",
            out.stderr
        );
        assert!(
            lines.iter().any(|l| l.contains("?labelSelector&limit 200")),
            "{round} apply lists the members: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("applyset-") && !out.stderr.contains("part-of"),
            "a query's values (the label selector) stay out of the log: {}",
            out.stderr
        );
    }
}
