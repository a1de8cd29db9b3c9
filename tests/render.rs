//! `kdeploy render` and `kdeploy values` end to end: the real binary on the bundled example, the
//! examples/ projects and small projects written by the tests.

mod support;

use serde_json::{Value, json};
use support::{kdeploy, project, repo_root, run, yaml12_documents};

fn render_in(dir: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let out = run(kdeploy().current_dir(dir).arg("render").args(args)).ok();
    yaml12_documents(&out.stdout)
}

#[test]
fn the_bundled_example_renders_from_the_repo_root() {
    let docs = render_in(repo_root(), &[]);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "Service", "Deployment", "CronJob"]);
    for doc in &docs[1..] {
        assert_eq!(doc["metadata"]["namespace"], "kdeploy-demo", "{}", doc["kind"]);
    }
    assert_eq!(docs[0]["metadata"].get("namespace"), None);
    let config = &docs[1]["data"];
    assert_eq!(config["GREETING"], "Hello: from kdeploy # not a comment");
    assert_eq!(config["FEATURES"], "search,yes");
    assert_eq!(config["PORT"], "8080");
    let deployment = &docs[3];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
        "web"
    );
}

#[test]
fn ytt_migration_example_keeps_a_hostile_value_as_one_exact_string() {
    let dir = repo_root().join("examples/ytt-migration");
    let value = "it's \"quoted\": a: b # not a comment\n- and: {a list?} & *alias";
    let docs = render_in(
        &dir,
        &[
            "-f",
            "do_something.yaml",
            "--data-value",
            &format!("some.value={value}"),
        ],
    );
    assert_eq!(docs.len(), 1);
    let template = std::fs::read_to_string(dir.join("do_something.yaml")).unwrap();
    let mut expected: Value =
        serde_saphyr::from_str(&template.replace("{{ values.some.value }}", "PLACEHOLDER")).unwrap();
    expected["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][2] =
        json!(format!("echo {value}"));
    assert_eq!(docs[0], expected);
}

#[test]
fn two_targets_example_layers_values_per_target() {
    let dir = repo_root().join("examples/two-targets");
    let dev = render_in(&dir, &["--target", "dev"]);
    let prod = render_in(&dir, &["--target", "prod"]);
    let deployment = |docs: &[Value]| docs.iter().find(|d| d["kind"] == "Deployment").unwrap().clone();
    let (dev, prod) = (deployment(&dev), deployment(&prod));
    assert_eq!(dev["metadata"]["namespace"], "shop-dev");
    assert_eq!(prod["metadata"]["namespace"], "shop-prod");
    assert_eq!(dev["spec"]["replicas"], 1);
    assert_eq!(prod["spec"]["replicas"], 3);
    let container = |d: &Value| d["spec"]["template"]["spec"]["containers"][0].clone();
    assert_eq!(container(&dev)["env"][0]["value"], "debug");
    assert_eq!(
        container(&prod)["resources"]["requests"],
        json!({"cpu": "500m", "memory": "128Mi"})
    );
    assert_eq!(container(&prod)["image"], "ghcr.io/example/shop:2.4.1");
}

#[test]
fn phases_example_renders_in_apply_order_with_config_checksums() {
    let dir = repo_root().join("examples/phases");
    let docs = render_in(&dir, &[]);
    let names: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    // The Namespace, then phase pre, main (in kind order), post.
    assert_eq!(
        names,
        [
            "Namespace/phases-demo",
            "Job/migrate",
            "ConfigMap/web-settings",
            "Deployment/web",
            "Job/smoke-test"
        ]
    );
    let checksum = |docs: &[Value]| {
        let web = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        web["spec"]["template"]["metadata"]["annotations"]["checksum.kdeploy.dev/configmap-web-settings"].clone()
    };
    let before = checksum(&docs);
    assert!(before.as_str().is_some_and(|c| c.len() == 32), "{before}");
    // The same config gives the same checksum; another log level another one; other values none.
    assert_eq!(checksum(&render_in(&dir, &[])), before);
    assert_eq!(checksum(&render_in(&dir, &["--data-value-yaml", "replicas=3"])), before);
    assert_ne!(checksum(&render_in(&dir, &["-v", "log_level=debug"])), before);
    assert!(checksum(&render_in(&dir, &["--no-config-checksums"])).is_null());
}

#[test]
fn a_phase_that_is_not_one_is_refused_with_its_place() {
    let dir = project(&[(
        "manifests/job.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    kdeploy.dev/phase: early\n",
    )]);
    let out = run(kdeploy().current_dir(dir.path()).arg("render"));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("manifests/job.yaml") && out.stderr.contains("early") && out.stderr.contains("not a phase"),
        "{}",
        out.stderr
    );
}

#[test]
fn values_command_shows_where_each_value_came_from() {
    let dir = repo_root().join("examples/two-targets");
    let out = run(kdeploy()
        .current_dir(&dir)
        .args(["values", "--target", "prod", "-v", "extra=1", "-o", "json"]))
    .ok();
    let shown: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(shown["values"]["resources"], json!({"cpu": "500m", "memory": "128Mi"}));
    assert_eq!(shown["origins"]["resources.cpu"], "values/prod.yaml:3:8");
    assert_eq!(shown["origins"]["resources.memory"], "values/base.yaml:7:11");
    assert_eq!(shown["origins"]["extra"], "--data-value extra");
    let text = run(kdeploy().current_dir(&dir).args(["values", "--target", "prod"]))
        .ok()
        .stdout;
    assert!(
        text.lines().any(|l| l == "replicas: 3  # values/prod.yaml:1:11"),
        "{text}"
    );
}

#[test]
fn env_files_and_the_process_environment_feed_env() {
    let dir = project(&[
        (
            "manifests/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata:\n  a: {{ env.A }}\n  b: {{ env.B }}\n  c: {{ env.C }}\n",
        ),
        (".env", "A=from-dotenv\nB=from-dotenv\n"),
        (".envrc", "export B=\"from envrc: $A\"\nexport C=from-envrc\n"),
    ]);
    let out = run(kdeploy()
        .current_dir(dir.path())
        .args(["render", "--env-file", ".env", "--env-file", ".envrc"])
        .env("C", "from-process"))
    .ok();
    let docs = yaml12_documents(&out.stdout);
    assert_eq!(
        docs[0]["data"],
        json!({"a": "from-dotenv", "b": "from envrc: from-dotenv", "c": "from-process"})
    );
}

#[test]
fn data_value_flags_follow_ytt_precedence() {
    let dir = project(&[
        (
            "manifests/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {{ values.data }}\n",
        ),
        ("v.yaml", "data: {a: file, b: file, c: file, d: file}\n"),
        (
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        ),
    ]);
    let out = run(kdeploy()
        .current_dir(dir.path())
        .args([
            "render",
            "--data-values-file",
            "v.yaml",
            "--data-values-env",
            "DV",
            "-v",
            "data.c=flag",
            "--data-value-yaml",
            "data.d='yaml'",
        ])
        .args(["--data-value-file", "data.e=cert.pem"])
        .env("DV_data__b", "env"))
    .ok();
    let docs = yaml12_documents(&out.stdout);
    assert_eq!(
        docs[0]["data"],
        json!({"a": "file", "b": "env", "c": "flag", "d": "yaml", "e": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})
    );
}

#[test]
fn json_output_is_a_v1_list_and_empty_documents_are_dropped() {
    let dir = project(&[(
        "manifests/cm.yaml",
        "{% if false %}apiVersion: v1{% endif %}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n---\n# nothing here\n",
    )]);
    let out = run(kdeploy()
        .current_dir(dir.path())
        .args(["render", "-o", "json", "-n", "team"]))
    .ok();
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["metadata"]["namespace"], "team");
}

#[test]
fn completions_and_man_page_come_from_the_flag_definitions() {
    let bash = run(kdeploy().args(["completions", "bash"])).ok().stdout;
    assert!(bash.contains("--data-values-file") && bash.contains("render"), "{bash}");
    let man = run(kdeploy().arg("man")).ok().stdout;
    assert!(
        man.contains(".TH kdeploy") && man.contains("kdeploy\\-render"),
        "{}",
        &man[..man.len().min(500)]
    );
}

#[test]
fn values_needs_no_templates_and_render_still_says_when_there_are_none() {
    let dir = project(&[("v.yaml", "db: {host: h}\n")]);
    let out = run(kdeploy().current_dir(dir.path()).args([
        "values",
        "-o",
        "json",
        "--data-values-file",
        "v.yaml",
        "-v",
        "app.tag=1.10",
    ]))
    .ok();
    let values: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(values["values"], json!({"db": {"host": "h"}, "app": {"tag": "1.10"}}));
    let render = run(kdeploy().current_dir(dir.path()).arg("render"));
    assert_eq!(render.code, 2);
    assert!(render.stderr.contains("no templates"), "{}", render.stderr);
}

/// A project's own template Secret used by a workload, with no vault to key its checksum: one note
/// for the run, naming the Secret and the setting that silences it; with the setting, none.
#[test]
fn an_unkeyed_secret_of_the_projects_templates_is_said_once_with_the_way_to_silence_it() {
    let deployment = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: c, image: x, envFrom: [{{secretRef: {{name: db}}}}]}}]\n"
        )
    };
    let dir = support::project(&[
        ("kdeploy.yaml", "name: app\nnamespace: a\ntemplates: [manifests]\n"),
        (
            "manifests/secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {p: x}\n",
        ),
        ("manifests/one.yaml", &deployment("one")),
        ("manifests/two.yaml", &deployment("two")),
    ]);
    let out = run(kdeploy().current_dir(dir.path()).arg("render")).ok();
    assert_eq!(out.stderr.matches("do not roll").count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("Secret/db") && out.stderr.contains("config_checksums: false"),
        "{}",
        out.stderr
    );
    let out = run(kdeploy()
        .current_dir(dir.path())
        .args(["render", "--no-config-checksums"]))
    .ok();
    assert!(!out.stderr.contains("do not roll"), "{}", out.stderr);
}
