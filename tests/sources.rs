//! Sources other than templates, without a cluster: plain manifests next to templates, patches of
//! each kind, common labels, kustomize overlays built by the real kubectl and kustomize, pinned
//! https downloads (served on loopback with a test CA), `kdeploy sources` and `kdeploy vendor`.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::serve::{LoopbackTls, serve_files};
use support::{k8s_bin, kdeploy, project, run, tool_bin};

fn objects(stdout: &str) -> Vec<Value> {
    let list: Value = serde_json::from_str(stdout).unwrap();
    list["items"].as_array().unwrap().clone()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {objects:#?}"))
}

/// kdeploy in `dir`, with its own cache, so that nothing is shared between tests.
fn kdeploy_in(dir: &Path) -> Command {
    let mut command = kdeploy();
    command.current_dir(dir).env("KDEPLOY_CACHE_DIR", dir.join(".cache"));
    command
}

const VENDOR_DEPLOYMENT: &str = r#"# someone else's YAML, with a template language of its own
apiVersion: apps/v1
kind: Deployment
metadata:
  name: upstream
  labels: {app: upstream}
spec:
  replicas: 1
  selector: {matchLabels: {app: upstream}}
  template:
    metadata: {labels: {app: upstream}}
    spec:
      containers:
        - name: app
          image: upstream:1.0
          args: ["--serve"]
          env:
            - {name: LEVEL, value: info}
            - {name: GREETING, value: "{{ .Values.greeting }}"}
        - name: sidecar
          image: sidecar:1.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: rules
data:
  rule: 'sum(rate(x[5m])) by ({{ $labels.pod }})'
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gadget
spec:
  size: 1
  mode: 0755
"#;

#[test]
fn plain_manifests_and_templates_in_one_project_with_patches_and_labels() {
    let dir = project(&[
        (
            "kdeploy.yaml",
            r#"name: mixed
namespace: shop
values: [values.yaml]
sources:
  - templates: templates
  - manifests: vendor/upstream
    namespace: upstream
patches:
  - target: {kind: Deployment, name: upstream}
    merge: {spec: {replicas: 3}}
  - target: {group: apps, kind: Deployment, name: upstream, namespace: upstream}
    json6902:
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --verbose}
      - {op: test, path: /spec/replicas, value: 3}
  - target: {kind: Deployment, labelSelector: app=upstream}
    strategic:
      spec:
        template:
          spec:
            containers:
              - name: app
                env:
                  - {name: LEVEL, value: debug}
              - {name: sidecar, $patch: delete}
  - target: {kind: Widget, name: gad*}
    merge: {spec: {size: 2, color: null}}
labels: {team: shop}
"#,
        ),
        (
            "templates/app.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: own\ndata:\n  size: {{ values.size }}\n",
        ),
        ("values.yaml", "size: '10'\n"),
        ("vendor/upstream/all.yaml", VENDOR_DEPLOYMENT),
    ]);
    let out = run(kdeploy_in(dir.path()).args(["render", "-o", "json"])).ok();
    let objects = objects(&out.stdout);
    assert_eq!(objects.len(), 4, "{objects:#?}");
    let deployment = find(&objects, "Deployment", "upstream");
    assert_eq!(deployment["metadata"]["namespace"], "upstream");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "the sidecar was deleted by the strategic patch");
    assert_eq!(containers[0]["args"], json!(["--serve", "--verbose"]));
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "LEVEL", "value": "debug"}, {"name": "GREETING", "value": "{{ .Values.greeting }}"}])
    );
    let rules = find(&objects, "ConfigMap", "rules");
    assert_eq!(rules["data"]["rule"], "sum(rate(x[5m])) by ({{ $labels.pod }})");
    // YAML 1.1, as kubectl reads it (in a custom resource: a ConfigMap's data would refuse a number).
    assert_eq!(
        find(&objects, "Widget", "gadget")["spec"],
        json!({"size": 2, "mode": 493})
    );
    let own = find(&objects, "ConfigMap", "own");
    assert_eq!(own["metadata"]["namespace"], "shop");
    assert_eq!(own["data"]["size"], "10");
    for object in &objects {
        assert_eq!(object["metadata"]["labels"]["team"], "shop", "{object}");
    }
    assert_eq!(
        deployment["spec"]["selector"],
        json!({"matchLabels": {"app": "upstream"}}),
        "labels touch metadata only"
    );

    let listed = run(kdeploy_in(dir.path()).args(["sources", "-o", "json"])).ok();
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["objects"], 1);
    assert_eq!(listed[1]["objects"], 3);
    assert_eq!(listed[1]["namespace"], "upstream");
    assert_eq!(listed[1]["digest"].as_str().unwrap().len(), 64);
}

#[test]
fn patches_that_match_nothing_or_cannot_apply_are_errors_and_nothing_is_printed() {
    let base = "name: p\nsources:\n  - manifests: m\n";
    let cases = [
        (
            "patches:\n  - target: {kind: Deployment, name: upstreem}\n    merge: {spec: {replicas: 3}}\n",
            "matches no object (target kind=Deployment name=upstreem)",
        ),
        (
            "patches:\n  - target: {kind: Widget}\n    strategic: {spec: {size: 2}}\n",
            "strategic merge is defined for built-in kinds only",
        ),
        (
            "patches:\n  - target: {kind: ConfigMap}\n    json6902: [{op: replace, path: /data/missing, value: x}]\n",
            "path /data/missing does not exist",
        ),
        (
            "patches:\n  - target: {kind: ConfigMap}\n    merge: {}\n    strategic: {}\n",
            "give exactly one of `merge:`, `json6902:` or `strategic:`",
        ),
    ];
    for (patches, expected) in cases {
        let dir = project(&[
            ("kdeploy.yaml", &format!("{base}{patches}")),
            ("m/all.yaml", VENDOR_DEPLOYMENT),
        ]);
        let out = run(kdeploy_in(dir.path()).arg("render"));
        assert_eq!(out.code, 2, "{patches}");
        assert!(out.stderr.contains(expected), "{patches}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
}

#[test]
fn source_entries_are_checked_when_the_project_loads() {
    let cases = [
        ("sources:\n  - manifests: m\n    templates: t\n", "give exactly one of"),
        ("sources:\n  - url: https://example.com/a.yaml\n", "needs `sha256:`"),
        (
            "sources:\n  - url: https://example.com/a.yaml\n    sha256: abc\n",
            "is not a sha256 digest",
        ),
        (
            "sources:\n  - manifests: m\n    sha256: abc\n",
            "`sha256:` belongs with `url:`",
        ),
        ("sources:\n  - helm: {chart: x, chrat: y}\n", "chrat"),
    ];
    for (text, expected) in cases {
        let dir = project(&[("kdeploy.yaml", text)]);
        let out = run(kdeploy_in(dir.path()).arg("render"));
        assert_eq!(out.code, 2, "{text}");
        assert!(out.stderr.contains(expected), "{text}: {}", out.stderr);
    }
}

/// A base and an overlay that prefixes names, adds a label and patches the replicas.
fn kustomization() -> tempfile::TempDir {
    project(&[
        (
            "base/kustomization.yaml",
            "resources: [deployment.yaml]\nconfigMapGenerator:\n  - name: settings\n    literals: [mode=fast]\n",
        ),
        (
            "base/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: 'web:1', envFrom: [{configMapRef: {name: settings}}]}]\n",
        ),
        (
            "overlays/prod/kustomization.yaml",
            "resources: [../../base]\nnamePrefix: prod-\nlabels:\n  - pairs: {env: prod}\npatches:\n  - patch: '[{\"op\": \"replace\", \"path\": \"/spec/replicas\", \"value\": 4}]'\n    target: {kind: Deployment}\n",
        ),
    ])
}

#[test]
fn kustomize_overlays_build_as_kubectl_kustomize_and_kustomize_build_do() {
    let dir = kustomization();
    let overlay = dir.path().join("overlays/prod");
    let expected = run(Command::new(k8s_bin("kubectl")).arg("kustomize").arg(&overlay)).ok();
    let expected = support::yaml12_documents(&expected.stdout);
    let kubectl_dir = k8s_bin("kubectl").parent().unwrap().to_path_buf();
    let kustomize_dir = tool_bin("kustomize").parent().unwrap().to_path_buf();
    // Only kubectl on PATH, then kustomize first: the same objects either way.
    for path in [kubectl_dir.clone(), kustomize_dir] {
        let path = std::env::join_paths([path, kubectl_dir.clone()]).unwrap();
        let out = run(kdeploy_in(dir.path())
            .env("PATH", &path)
            .args(["render", "--no-config-checksums", "-o", "json", "-k"])
            .arg(&overlay))
        .ok();
        let mut actual = objects(&out.stdout);
        let mut wanted = expected.clone();
        actual.sort_by_key(|o| o["kind"].to_string());
        wanted.sort_by_key(|o| o["kind"].to_string());
        assert_eq!(actual, wanted);
        let deployment = find(&actual, "Deployment", "prod-web");
        assert_eq!(deployment["spec"]["replicas"], 4);
        assert_eq!(deployment["metadata"]["labels"]["env"], "prod");
    }
    let empty = tempfile::tempdir().unwrap();
    let out = run(kdeploy_in(dir.path())
        .env("PATH", empty.path())
        .args(["render", "-k"])
        .arg(&overlay));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("needs `kustomize` or `kubectl`") && out.stderr.contains("overlays/prod"),
        "{}",
        out.stderr
    );
    // A broken kustomization: the error names the tool and what it said.
    std::fs::write(overlay.join("kustomization.yaml"), "resources: [../../missing]\n").unwrap();
    let path = std::env::join_paths([kubectl_dir]).unwrap();
    let out = run(kdeploy_in(dir.path())
        .env("PATH", &path)
        .args(["render", "-k"])
        .arg(&overlay));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("kubectl kustomize failed") && out.stderr.contains("missing"),
        "{}",
        out.stderr
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn url_sources_are_verified_before_use_cached_by_digest_and_vendored() {
    let tls = LoopbackTls::new();
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("v1")).unwrap();
    std::fs::write(site.path().join("v1/install.yaml"), VENDOR_DEPLOYMENT).unwrap();
    let server = serve_files(site.path(), Some(&tls));
    let url = format!("{}/v1/install.yaml", server.url);
    let digest = sha256_hex(VENDOR_DEPLOYMENT.as_bytes());
    let project_text =
        |sha: &str| format!("name: remote\nsources:\n  - url: {url}\n    sha256: {sha}\n    namespace: upstream\n");
    let dir = project(&[("kdeploy.yaml", &project_text(&digest))]);
    let with_ca = |command: &mut Command| {
        command.env("SSL_CERT_FILE", &tls.ca);
    };

    // Not trusted without the CA: the download fails and says so.
    let out = run(kdeploy_in(dir.path())
        .env("SSL_CERT_FILE", dir.path().join("none.pem"))
        .arg("render"));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("cannot download") && out.stderr.contains(&url),
        "{}",
        out.stderr
    );

    let mut command = kdeploy_in(dir.path());
    with_ca(&mut command);
    let out = run(command.args(["render", "-o", "json"])).ok();
    let objects = objects(&out.stdout);
    assert_eq!(objects.len(), 3);
    assert_eq!(
        find(&objects, "Deployment", "upstream")["metadata"]["namespace"],
        "upstream"
    );
    assert_eq!(
        find(&objects, "ConfigMap", "rules")["data"]["rule"],
        "sum(rate(x[5m])) by ({{ $labels.pod }})"
    );
    let fetched = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(fetched >= 1);

    // Cached by digest: a second render asks nothing.
    let mut command = kdeploy_in(dir.path());
    with_ca(&mut command);
    run(command.arg("render")).ok();
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), fetched);

    // The content changes upstream under the same URL: refused with both digests; nothing kept.
    let changed = VENDOR_DEPLOYMENT.replace("replicas: 1", "replicas: 9");
    std::fs::write(site.path().join("v1/install.yaml"), &changed).unwrap();
    let other = project(&[("kdeploy.yaml", &project_text(&"0".repeat(64)))]);
    let mut command = kdeploy_in(other.path());
    with_ca(&mut command);
    let out = run(command.arg("render"));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(&format!("expected sha256 {}", "0".repeat(64)))
            && out
                .stderr
                .contains(&format!("received sha256 {}", sha256_hex(changed.as_bytes()))),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    assert!(
        !other.path().join(".cache/sources/sha256").exists(),
        "a mismatched download was kept"
    );

    // http:// is refused before anything is fetched.
    let plain = project(&[(
        "kdeploy.yaml",
        &format!("sources:\n  - url: http://127.0.0.1:1/x.yaml\n    sha256: {digest}\n"),
    )]);
    let out = run(kdeploy_in(plain.path()).arg("render"));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("only https:// URLs"), "{}", out.stderr);

    // Vendored: renders offline, with an empty cache and the server gone.
    let mut command = kdeploy_in(dir.path());
    with_ca(&mut command);
    run(command.arg("vendor")).ok();
    assert!(dir.path().join("vendor/urls/sha256").join(&digest).is_file());
    drop(server);
    std::fs::remove_dir_all(dir.path().join(".cache")).unwrap();
    let out = run(kdeploy_in(dir.path()).args(["render", "-o", "json"])).ok();
    assert_eq!(self::objects(&out.stdout).len(), 3);
}
