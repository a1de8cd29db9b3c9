//! Smoke tests of the local control plane itself (scripts/dev-cluster): what kdeploy's diff and apply
//! rely on, exercised through the kube crate and kubectl against the real API server.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use support::{cluster, kdeploy, project, run, run_with_stdin};

fn config_map(name: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

#[tokio::test]
async fn lists_namespaces() {
    let client = cluster().client().await;
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for expected in ["default", "kube-system", "kube-node-lease"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}

#[tokio::test]
async fn server_side_apply_records_the_field_manager_and_dry_run_persists_nothing() {
    let ns = cluster().namespace("smoke-ssa");
    let api: Api<ConfigMap> = Api::namespaced(cluster().client().await, &ns.name);
    let applied = api
        .patch(
            "applied",
            &PatchParams::apply("kdeploy-test"),
            &Patch::Apply(config_map("applied", json!({"a": "1"}))),
        )
        .await
        .unwrap();
    let managers: Vec<String> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["kdeploy-test"]);

    let dry = api
        .patch(
            "dry",
            &PatchParams::apply("kdeploy-test").dry_run(),
            &Patch::Apply(config_map("dry", json!({"b": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        dry.data.unwrap()["b"],
        "2",
        "the dry run returns what the object would be"
    );
    assert!(
        api.get_opt("dry").await.unwrap().is_none(),
        "a dry run must not create the object"
    );
}

#[tokio::test]
async fn two_field_managers_conflict_until_one_forces() {
    let ns = cluster().namespace("smoke-conflict");
    let api: Api<ConfigMap> = Api::namespaced(cluster().client().await, &ns.name);
    api.patch(
        "shared",
        &PatchParams::apply("team-a"),
        &Patch::Apply(config_map("shared", json!({"owner": "a"}))),
    )
    .await
    .unwrap();
    let conflict = api
        .patch(
            "shared",
            &PatchParams::apply("team-b"),
            &Patch::Apply(config_map("shared", json!({"owner": "b"}))),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = conflict else {
        panic!("expected an API error, got {conflict:?}")
    };
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("team-a") && status.message.contains(".data.owner"),
        "{}",
        status.message
    );

    let forced = api
        .patch(
            "shared",
            &PatchParams::apply("team-b").force(),
            &Patch::Apply(config_map("shared", json!({"owner": "b"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["owner"], "b");
}

#[tokio::test]
async fn a_crd_becomes_established_and_serves_custom_resources() {
    let ns = cluster().namespace("smoke-crd");
    let client = cluster().client().await;
    let group = format!("{}.kdeploy.test", ns.name);
    let crd_name = format!("gadgets.{group}");
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": crd_name},
        "spec": {"group": group, "scope": "Namespaced", "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}
    });
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(&crd_name, &PatchParams::apply("kdeploy-test"), &Patch::Apply(crd))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds.clone(), &crd_name, conditions::is_crd_established()),
    )
    .await
    .unwrap()
    .unwrap();

    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Gadget"), "gadgets");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client, &ns.name, &resource);
    let gadget =
        json!({"apiVersion": format!("{group}/v1"), "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 3}});
    let created = gadgets
        .patch("g", &PatchParams::apply("kdeploy-test"), &Patch::Apply(gadget))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["size"], 3);
    crds.delete(&crd_name, &Default::default()).await.unwrap();
}

#[tokio::test]
async fn a_deployment_becomes_available_on_a_kwok_node() {
    let ns = cluster().namespace("smoke-rollout");
    let api: Api<Deployment> = Api::namespaced(cluster().client().await, &ns.name);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    });
    api.patch("web", &PatchParams::apply("kdeploy-test"), &Patch::Apply(deployment))
        .await
        .unwrap();
    let rolled_out = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(api.clone(), "web", conditions::is_deployment_completed()),
    )
    .await;
    assert!(rolled_out.is_ok(), "the Deployment did not roll out within 60s");
    let status = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.available_replicas, Some(2));
}

#[test]
fn kdeploy_render_piped_into_kubectl_apply_creates_what_was_rendered() {
    let cluster = cluster();
    let ns = cluster.namespace("smoke-pipe");
    let dir = project(&[(
        "manifests/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: piped\ndata:\n  mode: {{ values.mode }}\n  motto: {{ values.motto }}\n",
    )]);
    let rendered = run(kdeploy().current_dir(dir.path()).args([
        "render",
        "-n",
        &ns.name,
        "-v",
        "mode=0755",
        "-v",
        "motto=yes: # no",
    ]))
    .ok();
    run_with_stdin(
        cluster
            .kubectl()
            .args(["apply", "--server-side", "--field-manager", "kdeploy-test", "-f", "-"]),
        Some(&rendered.stdout),
    )
    .ok();
    let data = cluster.kubectl_ok(&["get", "configmap", "piped", "-n", &ns.name, "-o", "jsonpath={.data}"]);
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data, json!({"mode": "0755", "motto": "yes: # no"}));
}

#[test]
fn secrets_are_encrypted_at_rest_in_the_local_clusters_etcd() {
    let cluster = cluster();
    let ns = cluster.namespace("at-rest");
    let secret_canary = format!("secret-canary-{}", ns.name);
    let config_canary = format!("config-canary-{}", ns.name);
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        &ns.name,
        &format!("--from-literal=k={secret_canary}"),
    ]);
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "c",
        "-n",
        &ns.name,
        &format!("--from-literal=k={config_canary}"),
    ]);
    // etcd's write-ahead log and database hold every value written, as written.
    let etcd = cluster.kubeconfig.parent().unwrap().join("etcd");
    let found = |needle: &str| {
        let mut stack = vec![etcd.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(bytes) = std::fs::read(&path)
                    && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
                {
                    return true;
                }
            }
        }
        false
    };
    assert!(
        found(&config_canary),
        "the search finds a ConfigMap's value: the check can see plain text"
    );
    assert!(
        !found(&secret_canary),
        "a Secret's value is in etcd's files in plain text"
    );
}
