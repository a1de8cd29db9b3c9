//! Offline validation (`kdeploy validate`, and the same check in `render`): each mistake exits 2 with
//! nothing on stdout and names the object, the field and the place its author wrote it: the
//! template's `file:line:column` through loops and includes, the plain manifest's own line, the Helm
//! chart template below its `# Source:`. No cluster is contacted: KUBECONFIG points at nothing.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Run, kdeploy, project, run, tool_bin};

/// kdeploy with no cluster to reach: a kubeconfig that does not exist.
fn offline(dir: &Path) -> Command {
    let mut command = kdeploy();
    command
        .current_dir(dir)
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .env_remove("KDEPLOY_KUBE_VERSION");
    command
}

fn fails(dir: &Path, args: &[&str]) -> Run {
    let out = run(offline(dir).args(args));
    assert_eq!(out.code, 2, "expected exit code 2; stderr:\n{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on error, got:\n{}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

/// The `  --> place` line under the problem whose first line contains `problem`.
fn place_of(stderr: &str, problem: &str) -> String {
    let mut lines = stderr.lines();
    while let Some(line) = lines.next() {
        if line.contains(problem) {
            let next = lines.next().unwrap_or_default();
            return next.trim_start().trim_start_matches("--> ").to_owned();
        }
    }
    panic!("no problem `{problem}` in:\n{stderr}")
}

const PROJECT: &str = "name: shop\ntemplates: [templates]\nvalues: [values.yaml]\n";

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: string, enum: [S, M, L]}
"#;

/// One template per mistake, each in a loop or an include where that makes placing it harder.
fn mistakes() -> tempfile::TempDir {
    project(&[
        ("kdeploy.yaml", PROJECT),
        ("values.yaml", "apps: [web, api]\nreplicas: \"3\"\nsize: XL\n"),
        (
            "templates/_container.tera",
            "name: {{ app }}\nimage: nginx:1.27\nimagePullPolicy: 5\n",
        ),
        (
            "templates/deployments.yaml",
            r#"{% for app in values.apps %}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ app }}
spec:
  replicas: {{ values.replicas }}
  selector:
    matchLabels: {app: {{ app }}}
  template:
    metadata:
      labels: {app: {{ app }}}
    spec:
      contianers: []
      containers:
        -
          {% include "_container.tera" %}
        - image: busybox
{% endfor %}
"#,
        ),
        ("templates/crd.yaml", CRD),
        (
            "templates/widgets.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: big\nspec:\n  size: {{ values.size }}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: odd\nspec:\n  size: S\n  colour: red\n",
        ),
        (
            "templates/old.yaml",
            "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: 1\n",
        ),
    ])
}

#[test]
fn every_mistake_is_reported_at_the_template_line_that_wrote_it() {
    let dir = mistakes();
    let out = fails(dir.path(), &["validate"]);
    let stderr = &out.stderr;
    assert!(stderr.contains("checked against Kubernetes 1.36"), "{stderr}");
    // Wrong type, from a value: the line of the expression, in both iterations of the loop.
    assert_eq!(
        place_of(stderr, "Deployment/web spec.replicas: must be an integer, not a string"),
        "templates/deployments.yaml:8:13"
    );
    assert_eq!(
        place_of(stderr, "Deployment/api spec.replicas: must be an integer, not a string"),
        "templates/deployments.yaml:8:13"
    );
    // Unknown field: the key itself.
    assert_eq!(
        place_of(
            stderr,
            "Deployment/web spec.template.spec.contianers: unknown field `contianers`"
        ),
        "templates/deployments.yaml:15:7"
    );
    // A wrong value written in an included partial: the partial's own line.
    assert_eq!(
        place_of(
            stderr,
            "Deployment/api spec.template.spec.containers[0].imagePullPolicy: must be a string, not an integer"
        ),
        "templates/_container.tera:3:18"
    );
    // Missing required field: the list item that lacks it.
    assert_eq!(
        place_of(
            stderr,
            "Deployment/web spec.template.spec.containers[1]: missing required field `name`"
        ),
        "templates/deployments.yaml:19:11"
    );
    // A custom resource against the CRD of the same stream: a bad enum, an undeclared field.
    assert_eq!(
        place_of(stderr, "Widget/big spec.size: must be one of `S`, `M`, `L`"),
        "templates/widgets.yaml:6:9"
    );
    assert_eq!(
        place_of(stderr, "Widget/odd spec.colour: unknown field `colour`"),
        "templates/widgets.yaml:14:3"
    );
    // A removed apiVersion says when and what replaced it.
    let removed = "PodDisruptionBudget/web apiVersion: policy/v1beta1 PodDisruptionBudget was removed in Kubernetes 1.25; use policy/v1";
    assert_eq!(place_of(stderr, removed), "templates/old.yaml:1:13");
    // The line is quoted as the author wrote it, never with the value in it.
    assert!(stderr.contains("  replicas: {{ values.replicas }}"), "{stderr}");
    assert!(stderr.contains("11 problems in 5 objects"), "{stderr}");
}

#[test]
fn render_runs_the_same_check_and_no_validate_skips_it() {
    let dir = mistakes();
    let out = fails(dir.path(), &["render"]);
    assert!(out.stderr.contains("templates/deployments.yaml:8:13"), "{}", out.stderr);
    let skipped = run(offline(dir.path()).args(["render", "--no-validate"])).ok();
    assert!(
        skipped.stdout.contains("kind: PodDisruptionBudget"),
        "{}",
        skipped.stdout
    );
}

#[test]
fn valid_objects_pass_offline_with_int_or_string_quantities_nulls_and_lists() {
    let dir = project(&[
        ("kdeploy.yaml", PROJECT),
        ("values.yaml", "replicas: 2\ncpu: 0.5\n"),
        (
            "templates/app.yaml",
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  creationTimestamp: null
  annotations: {}
spec:
  replicas: {{ values.replicas }}
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx
          ports: [{containerPort: 53}, {containerPort: 53, protocol: UDP}]
          env: null
          resources: {limits: {cpu: {{ values.cpu }}, memory: 128Mi}, requests: {cpu: 100m}}
          livenessProbe: {httpGet: {path: /, port: http}}
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: a}
    data: {k: v}
  - apiVersion: v1
    kind: Secret
    metadata: {name: b}
    data: {k: dmFsdWU=}
    stringData: {plain: text}
"#,
        ),
    ]);
    let out = run(offline(dir.path()).arg("validate")).ok();
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("3 objects valid against Kubernetes 1.36"),
        "{}",
        out.stderr
    );
}

#[test]
fn plain_manifests_are_placed_at_their_own_lines_and_secrets_are_never_quoted() {
    let dir = project(&[(
        "upstream/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  n: 5\n---\napiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n    metadata: {name: s}\n    data:\n      token: not-base64-canary!\n",
    )]);
    let out = fails(dir.path(), &["validate", "-m", "upstream"]);
    assert_eq!(
        place_of(&out.stderr, "ConfigMap/a data.n: must be a string, not an integer"),
        "upstream/app.yaml:6:6"
    );
    assert_eq!(
        place_of(&out.stderr, "Secret/s data.token: is not a valid base64 text"),
        "upstream/app.yaml:15:14"
    );
    assert!(
        !out.stderr.contains("canary"),
        "a Secret's line is never quoted: {}",
        out.stderr
    );
}

/// PATH with the pinned helm first.
fn helm_path() -> String {
    let helm = tool_bin("helm");
    format!(
        "{}:{}",
        helm.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn a_helm_chart_is_placed_in_its_template_below_the_source_comment() {
    let dir = project(&[
        (
            "kdeploy.yaml",
            "name: shop\nsources:\n  - helm: {chart: chart, release: web}\n",
        ),
        ("chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"),
        (
            "chart/templates/service.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  ports:\n    - port: http-port\n",
        ),
    ]);
    let out = run(offline(dir.path()).env("PATH", helm_path()).arg("validate"));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        place_of(
            &out.stderr,
            "Service/web spec.ports[0].port: must be an integer, not a string"
        ),
        "helm web: web/templates/service.yaml:7:13"
    );
}

#[test]
fn kube_version_picks_the_schemas_and_lists_the_known_ones() {
    let dir = project(&[(
        "manifests/flow.yaml",
        "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\nkind: FlowSchema\nmetadata: {name: f}\nspec: {priorityLevelConfiguration: {name: p}}\n",
    )]);
    // Served by 1.31 and before: an error for every embedded version, saying when it left.
    let out = fails(dir.path(), &["validate", "--kube-version", "1.32"]);
    assert!(out.stderr.contains("was removed in Kubernetes 1.32"), "{}", out.stderr);
    let out = fails(dir.path(), &["validate", "--kube-version", "1.19"]);
    assert!(
        out.stderr.contains("kdeploy has no schemas for Kubernetes 1.19"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("1.32, 1.33, 1.34, 1.35, 1.36, 1.37"),
        "{}",
        out.stderr
    );
}

#[test]
fn kinds_without_a_schema_warn_and_strict_makes_them_errors() {
    let dir = project(&[
        (
            "kdeploy.yaml",
            "name: shop\ntemplates: [templates]\nschemas: [schemas]\n",
        ),
        (
            "templates/r.yaml",
            "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\nspec: {endpoints: [{port: web, interval: 30s}], selector: {}}\n---\napiVersion: example.org/v1\nkind: Gadget\nmetadata: {name: g}\n",
        ),
        // A kubeconform-style catalogue entry: GROUP/KIND_VERSION.json.
        (
            "schemas/monitoring.coreos.com/servicemonitor_v1.json",
            r#"{"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "endpoints": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "string"}, "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}}}},
                "selector": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}"#,
        ),
    ]);
    let out = run(offline(dir.path()).arg("validate")).ok();
    assert!(
        out.stderr.contains("example.org/v1 Gadget: no schema"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("ServiceMonitor: no schema"), "{}", out.stderr);
    let out = fails(dir.path(), &["validate", "--strict"]);
    assert!(
        out.stderr
            .contains("Gadget/g kind: no schema for example.org/v1 Gadget"),
        "{}",
        out.stderr
    );
}

#[test]
fn values_nobody_reads_are_warned_about_at_their_line_and_strict_values_refuses_them() {
    let dir = project(&[
        ("kdeploy.yaml", PROJECT),
        (
            "values.yaml",
            "replicas: 2\nfeature:\n  enabeld: true\napps: [{name: web}]\n",
        ),
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  replicas: \"{{ values.replicas }}\"\n  on: \"{{ values.feature.enabled | default(value=false) }}\"\n{% for app in values.apps %}  {{ app.name }}: x\n{% endfor %}",
        ),
    ]);
    let out = run(offline(dir.path()).args(["render", "-v", "extra=1"])).ok();
    assert!(
        out.stderr.contains(
            "values.yaml:3:12: value `feature.enabeld` is read by no template; did you mean `feature.enabled`?"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("--data-value extra: value `extra` is read by no template"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("`apps"),
        "a list given to a loop is read whole: {}",
        out.stderr
    );
    let out = fails(dir.path(), &["render", "--strict-values"]);
    assert!(
        out.stderr.contains("1 value is read by no template (--strict-values)"),
        "{}",
        out.stderr
    );
    std::fs::write(
        dir.path().join("kdeploy.yaml"),
        format!("{PROJECT}strict_values: true\n"),
    )
    .unwrap();
    fails(dir.path(), &["render"]);
}

#[test]
fn a_values_schema_refuses_a_flags_value_by_its_name_and_accepts_valid_values() {
    let dir = project(&[
        (
            "kdeploy.yaml",
            "name: shop\ntemplates: [templates]\nvalues: [values.yaml]\nvalues_schema: values.schema.yaml\n",
        ),
        ("values.yaml", "replicas: 2\nimage: {tag: \"1.0\"}\n"),
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  replicas: \"{{ values.replicas }}\"\n  tag: \"{{ values.image.tag }}\"\n",
        ),
    ]);
    // The starting schema comes from the values themselves.
    let inferred = run(offline(dir.path()).args(["values", "--schema"])).ok().stdout;
    assert!(
        inferred.contains("https://json-schema.org/draft/2020-12/schema"),
        "{inferred}"
    );
    std::fs::write(dir.path().join("values.schema.yaml"), &inferred).unwrap();
    run(offline(dir.path()).arg("render")).ok();
    let out = fails(dir.path(), &["render", "--data-value-yaml", "replicas=two-canary"]);
    assert!(
        out.stderr
            .contains("--data-value-yaml replicas: `replicas` must be of type integer"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("two-canary"),
        "a value is never echoed: {}",
        out.stderr
    );
    let out = fails(dir.path(), &["render", "-v", "colour=red"]);
    assert!(
        out.stderr
            .contains("the values do not meet the schema values.schema.yaml"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("has key(s) the schema does not allow: colour"),
        "{}",
        out.stderr
    );
    // An env-prefix value is named by its variable.
    let out = run(offline(dir.path())
        .env("APP_replicas", "0.5")
        .args(["render", "--data-values-env-yaml", "APP"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("env APP_replicas: `replicas` must be of type integer"),
        "{}",
        out.stderr
    );
}

/// With a cluster, diff and apply validate against what it serves at `/openapi/v3`: a custom resource
/// whose CRD is only in the cluster is checked against it, placed at its template line, and nothing is
/// written. The documents are kept on disk under the server's content hash.
#[test]
fn apply_validates_against_the_clusters_own_schemas_before_writing_anything() {
    use support::{DeleteOnDrop, TestProject, cluster, unique_group};
    let cluster = cluster();
    let group = unique_group("gadgets");
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: Gadget, plural: gadgets, singular: gadget}}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec:\n              type: object\n              properties:\n                size: {{type: string, enum: [S, M, L]}}\n"
    );
    let crd_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(crd_file.path(), &crd).unwrap();
    cluster.kubectl_ok(&["apply", "-f", crd_file.path().to_str().unwrap()]);
    let _cleanup = DeleteOnDrop(cluster, "crd", vec![format!("gadgets.{group}")]);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/gadgets.{group}"),
        "--timeout=60s",
    ]);
    let cache = tempfile::tempdir().unwrap();
    let project = TestProject::new("served-schemas", "templates: [templates]\n");
    project.write(
        "templates/gadget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: XL\n"),
    );
    // The CRD's schema is published a moment after it is Established.
    let mut out = None;
    support::wait_until(std::time::Duration::from_secs(60), || {
        let attempt = run(project
            .command(&["apply", "--yes"])
            .env("KDEPLOY_CACHE_DIR", cache.path()));
        let published = attempt.stderr.contains("must be one of");
        out = Some(attempt);
        published
    });
    let out = out.unwrap();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("checked against the cluster (Kubernetes 1.36"),
        "{}",
        out.stderr
    );
    assert_eq!(place_of(&out.stderr, "Gadget/g"), "templates/gadget.yaml:6:9");
    assert!(
        project.get(&format!("gadgets.{group}"), "g").is_none(),
        "nothing may be written"
    );
    let kept = std::fs::read_dir(cache.path().join("openapi")).map_or(0, |d| d.count());
    assert!(kept >= 2, "the cluster's documents are cached ({kept})");
    // A valid one applies.
    project.write(
        "templates/gadget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: M\n"),
    );
    run(project
        .command(&["apply", "--yes"])
        .env("KDEPLOY_CACHE_DIR", cache.path()))
    .ok();
    assert!(project.get(&format!("gadgets.{group}"), "g").is_some());
}

#[test]
fn a_charts_values_are_compared_with_its_own_values_yaml() {
    let dir = project(&[
        (
            "kdeploy.yaml",
            "name: shop\nsources:\n  - helm:\n      chart: chart\n      release: web\n      values: {replicaCuont: 3, podAnnotations: {team: a}, global: {x: 1}}\n",
        ),
        ("chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"),
        ("chart/values.yaml", "replicaCount: 1\npodAnnotations: {}\n"),
        (
            "chart/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  replicas: \"{{ .Values.replicaCount }}\"\n",
        ),
    ]);
    let out = run(offline(dir.path()).env("PATH", helm_path()).arg("render")).ok();
    assert!(
        out.stderr.contains("helm web: value `replicaCuont` is not in the chart's values.yaml, so no template of it reads it; did you mean `replicaCount`?"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("podAnnotations") && !out.stderr.contains("global"),
        "{}",
        out.stderr
    );
    let out = run(offline(dir.path())
        .env("PATH", helm_path())
        .args(["render", "--strict-values"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("1 value is read by no template (--strict-values)"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}
