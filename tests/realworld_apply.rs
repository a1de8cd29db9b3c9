//! Real-world stacks from `../shared/realworld`, each as a kdeploy project of plain-manifest sources,
//! applied to the real control plane, then diffed (exit 0: nothing to change) and applied again (no
//! change): kube-prometheus complete (setup CRDs, all of manifests/, PrometheusRules with `{{` and the
//! dashboard ConfigMapList), Argo CD's install.yaml into `argocd`, Knative serving, metallb,
//! ingress-nginx and gateway-api.
//!
//! The local control plane runs no pods (kwok marks them running), so no webhook backend ever answers.
//! Some stacks therefore carry a patch a user of such a cluster would write: Knative's webhooks, whose
//! rules cover its own resources, are made `failurePolicy: Ignore`; ingress-nginx's admission Jobs lose
//! `ttlSecondsAfterFinished: 0` (a Job the TTL controller deletes is created again by every apply, by
//! kubectl and kdeploy alike), and its LoadBalancer Service is marked `kdeploy.dev/wait: "false"` (no
//! load balancer controller gives it an address here). These are patches of the kinds the issue asks
//! for, so they are tested too.

mod support;

use support::{cluster, kdeploy_in, project, realworld};

/// Applies the project, diffs and applies it again; returns the project's folder.
fn deploy_twice(name: &str, sources: &str, extra_files: &[(&str, &str)]) -> tempfile::TempDir {
    let text = format!("name: {name}\n{sources}");
    let mut files = vec![("kdeploy.yaml", text.as_str())];
    files.extend_from_slice(extra_files);
    let dir = project(&files);
    let kdeploy_here = |args: &[&str]| kdeploy_in(dir.path(), args);
    let applied = kdeploy_here(&["apply", "--yes", "--timeout", "180s"]);
    assert_eq!(
        applied.code, 0,
        "{name}: first apply:\n{}\n{}",
        applied.stdout, applied.stderr
    );
    let diff = kdeploy_here(&["diff"]);
    assert_eq!(
        diff.code, 0,
        "{name}: diff after apply:\n{}\n{}",
        diff.stdout, diff.stderr
    );
    assert!(
        diff.stdout.lines().any(|l| l.starts_with("0 to create, 0 to update, ")),
        "{name}: {}",
        diff.stdout
    );
    let again = kdeploy_here(&["apply", "--yes", "--timeout", "180s"]);
    assert_eq!(
        again.code, 0,
        "{name}: second apply:\n{}\n{}",
        again.stdout, again.stderr
    );
    assert!(
        again.stdout.contains("no changes to apply") || again.stderr.contains("no changes to apply"),
        "{}",
        again.stdout
    );
    dir
}

fn path(relative: &str) -> String {
    realworld().join(relative).display().to_string()
}

#[test]
fn kube_prometheus_complete() {
    let sources = format!("sources:\n  - manifests: {}\n", path("kube-prometheus/manifests"));
    let dir = deploy_twice("rw-kube-prometheus", &sources, &[]);
    let cluster = cluster();
    // A second revision (one Deployment scaled), then a rollback to the first: the whole stack's
    // revisions fit the object size limit, and the rollback restores the first.
    let replicas = || {
        let text = cluster.kubectl_ok(&[
            "get",
            "deployment",
            "blackbox-exporter",
            "-n",
            "monitoring",
            "-o",
            "jsonpath={.spec.replicas}",
        ]);
        text.trim().to_owned()
    };
    assert_eq!(replicas(), "1");
    std::fs::write(
        dir.path().join("kdeploy.yaml"),
        format!(
            "name: rw-kube-prometheus\n{sources}patches:\n  - target: {{kind: Deployment, name: blackbox-exporter}}\n    merge: {{spec: {{replicas: 2}}}}\n"
        ),
    )
    .unwrap();
    kdeploy_in(dir.path(), &["apply", "--yes", "--timeout", "180s"]).ok();
    assert_eq!(replicas(), "2");
    let rolled = kdeploy_in(dir.path(), &["rollback", "--yes", "--timeout", "180s"]).ok();
    assert!(rolled.stdout.contains("rolled back to revision "), "{}", rolled.stdout);
    assert_eq!(replicas(), "1");
    let history: serde_json::Value =
        serde_json::from_str(&kdeploy_in(dir.path(), &["history", "-o", "json"]).ok().stdout).unwrap();
    let revisions = history["revisions"].as_array().unwrap();
    // Newest first: the rollback, the scaled revision, the first apply it went back to.
    assert!(revisions.len() >= 3, "{history}");
    assert_eq!(revisions[0]["rollback_of"], revisions[2]["number"], "{history}");
    assert_eq!(revisions[1]["outcome"], "superseded", "{history}");
    let secrets: serde_json::Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "get",
        "secrets",
        "-n",
        "default",
        "-l",
        "kdeploy.dev/revision-of",
        "-o",
        "json",
    ]))
    .unwrap();
    for secret in secrets["items"].as_array().unwrap() {
        let name = secret["metadata"]["name"].as_str().unwrap();
        if !name.starts_with("kdeploy-rw-kube-prometheus.") {
            continue;
        }
        let size = serde_json::to_vec(secret).unwrap().len();
        assert!(
            size < 1024 * 1024,
            "{name} is {size} bytes: over the 1 MiB object limit"
        );
        eprintln!("{name}: {size} bytes as stored");
    }
    let dashboards = cluster.kubectl_ok(&["get", "configmap", "-n", "monitoring", "-o", "name"]);
    assert!(
        dashboards.lines().filter(|l| l.contains("grafana-dashboard-")).count() >= 33,
        "{dashboards}"
    );
    let rule = cluster.kubectl_ok(&[
        "get",
        "prometheusrule",
        "-n",
        "monitoring",
        "kubernetes-monitoring-rules",
        "-o",
        "yaml",
    ]);
    assert!(
        rule.contains("{{ $labels."),
        "PrometheusRule templates must arrive as written"
    );
}

#[test]
fn argo_cd_install_into_argocd() {
    deploy_twice(
        "rw-argocd",
        &format!(
            "namespace: argocd\nsources:\n  - manifests: namespace.yaml\n  - manifests: {}\n",
            path("argo-cd/manifests/install.yaml")
        ),
        &[(
            "namespace.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: argocd}\n",
        )],
    );
}

#[test]
fn knative_serving() {
    deploy_twice(
        "rw-knative",
        &format!(
            "sources:\n  - manifests: {}\npatches:\n  - target: {{group: admissionregistration.k8s.io}}\n    json6902: [{{op: replace, path: /webhooks/0/failurePolicy, value: Ignore}}]\n",
            path("knative-serving/config/core")
        ),
        &[],
    );
}

#[test]
fn metallb() {
    deploy_twice(
        "rw-metallb",
        &format!(
            "sources:\n  - manifests: {}\n",
            path("metallb/config/manifests/metallb-native.yaml")
        ),
        &[],
    );
}

#[test]
fn ingress_nginx() {
    deploy_twice(
        "rw-ingress-nginx",
        &format!(
            "sources:\n  - manifests: {}\npatches:\n  - target: {{kind: Job, namespace: ingress-nginx}}\n    merge: {{spec: {{ttlSecondsAfterFinished: null}}}}\n  - target: {{kind: Service, name: ingress-nginx-controller}}\n    merge: {{metadata: {{annotations: {{kdeploy.dev/wait: \"false\"}}}}}}\n",
            path("ingress-nginx/deploy/static/provider/cloud/deploy.yaml")
        ),
        &[],
    );
}

#[test]
fn gateway_api() {
    deploy_twice(
        "rw-gateway-api",
        &format!("sources:\n  - manifests: {}\n", path("gateway-api/config/crd/standard")),
        &[],
    );
}
