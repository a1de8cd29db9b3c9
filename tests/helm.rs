//! Helm chart sources, rendered by the real helm (pinned in scripts/tools) and applied to the real
//! control plane: a chart folder, a packaged .tgz, a chart from an HTTP repository (`helm repo index`,
//! served on loopback) and one pushed to a real OCI registry (CNCF distribution, on loopback over TLS).
//! Values come from kdeploy's values and a vault secret, and the secret is never printed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use support::serve::{LoopbackTls, serve_files, start_registry};
use support::{VaultHome, cluster, run, tool_bin};

const CANARY: &str = "helm-secret-canary-7c1e9b";

/// helm with its own HOME and cache, trusting the test CA.
fn isolate(command: &mut Command, home: &Path, tls: &LoopbackTls) {
    command
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .env("SSL_CERT_FILE", &tls.ca);
}

fn helm(home: &Path, tls: &LoopbackTls, args: &[&str]) -> String {
    let mut command = Command::new(tool_bin("helm"));
    isolate(&mut command, home, tls);
    run(command.current_dir(home).args(args)).ok().stdout
}

/// `helm create`'s chart, plus a Secret from `.Values.password` and a ConfigMap of what the chart was
/// told about the cluster.
fn make_chart(home: &Path, tls: &LoopbackTls) -> PathBuf {
    std::fs::create_dir_all(home.join("charts")).unwrap();
    helm(home, tls, &["create", "charts/web"]);
    let chart = home.join("charts/web");
    std::fs::write(
        chart.join("templates/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ include \"web.fullname\" . }}-auth\ntype: Opaque\ndata:\n  password: {{ .Values.password | b64enc | quote }}\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/capabilities.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"web.fullname\" . }}-capabilities\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  namespace: {{ .Release.Namespace | quote }}\n",
    )
    .unwrap();
    let values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
    std::fs::write(chart.join("values.yaml"), format!("{values}\npassword: unset\n")).unwrap();
    chart
}

#[test]
fn charts_from_a_folder_a_tgz_an_http_repository_and_an_oci_registry_are_applied() {
    let cluster = cluster();
    let ns = cluster.namespace("helm");
    let vault = VaultHome::new();
    let home = vault.path();
    let tls = LoopbackTls::new();
    make_chart(home, &tls);
    helm(home, &tls, &["package", "charts/web", "-d", "dist"]);
    assert!(home.join("dist/web-0.1.0.tgz").is_file());

    // An HTTP chart repository.
    let repo = home.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::copy(home.join("dist/web-0.1.0.tgz"), repo.join("web-0.1.0.tgz")).unwrap();
    let server = serve_files(&repo, None);
    helm(home, &tls, &["repo", "index", "repo", "--url", &server.url]);

    // An OCI registry.
    let registry = start_registry(Some(&tls));
    helm(
        home,
        &tls,
        &[
            "push",
            "dist/web-0.1.0.tgz",
            &format!("oci://{}/charts", registry.address),
        ],
    );

    // A vault secret for the chart's password.
    let (identity, recipient) = vault.identity("identity.txt");
    vault.write("secrets.yaml", &format!("password: {CANARY}\n"));
    run(vault
        .kdeploy()
        .args(["vault", "encrypt", "secrets.yaml", "-r", &recipient]))
    .ok();
    let values = "values: {replicaCount: '{{ values.replicas }}', password: '{{ secrets.password }}'}";
    vault.write("values.yaml", "replicas: 2\n");
    vault.write(
        "kdeploy.yaml",
        &format!(
            "name: charts\nvalues: [values.yaml]\nsecrets: [secrets.yaml]\nrecipients: [{recipient}]\nsources:\n\
             \x20 - helm: {{chart: charts/web, release: web-local, {values}}}\n\
             \x20 - helm: {{chart: dist/web-0.1.0.tgz, release: web-tgz, {values}}}\n\
             \x20 - helm: {{chart: web, repo: '{}', version: 0.1.0, release: web-repo, {values}}}\n\
             \x20 - helm: {{chart: 'oci://{}/charts/web', version: 0.1.0, release: web-oci, {values}}}\n",
            server.url, registry.address
        ),
    );
    let kdeploy = |args: &[&str]| {
        let mut command = vault.kdeploy();
        isolate(&mut command, home, &tls);
        let path = std::env::join_paths(
            [tool_bin("helm").parent().unwrap().to_path_buf()]
                .into_iter()
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        command
            .env("PATH", path)
            .env("KDEPLOY_CACHE_DIR", home.join("kdeploy-cache"))
            .args(args)
            .arg("--identity")
            .arg(&identity)
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["-n", &ns.name]);
        command
    };
    let applied = run(&mut kdeploy(&["apply", "--yes", "--timeout", "120s"]));
    let printed = format!("{}{}", applied.stdout, applied.stderr);
    assert_eq!(applied.code, 0, "{printed}");
    assert!(!printed.contains(CANARY), "the secret was printed:\n{printed}");
    assert!(
        printed.contains("left out") && printed.contains("test-connection"),
        "helm create's test hook should be named as left out:\n{printed}"
    );
    let server_version: Value = serde_json::from_str(&cluster.kubectl_ok(&["version", "-o", "json"])).unwrap();
    for release in ["web-local", "web-tgz", "web-repo", "web-oci"] {
        let get = |kind: &str, name: &str| -> Value {
            serde_json::from_str(&cluster.kubectl_ok(&["get", kind, name, "-n", &ns.name, "-o", "json"])).unwrap()
        };
        assert_eq!(get("deployment", release)["spec"]["replicas"], 2, "{release}");
        let secret = get("secret", &format!("{release}-auth"));
        let password = secret["data"]["password"].as_str().unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(password).unwrap(),
            CANARY.as_bytes(),
            "{release}"
        );
        let capabilities = get("configmap", &format!("{release}-capabilities"));
        assert_eq!(
            capabilities["data"]["kube"], server_version["serverVersion"]["gitVersion"],
            "{release}: the chart should see the cluster's version"
        );
        assert_eq!(capabilities["data"]["namespace"], ns.name.as_str());
        assert!(
            run(cluster
                .kubectl()
                .args(["get", "pod", &format!("{release}-test-connection"), "-n", &ns.name]))
            .code
                != 0,
            "{release}: a test hook was applied"
        );
    }

    // Nothing changes on a second look; the diff shows no secret either.
    let diff = run(&mut kdeploy(&["diff"]));
    assert_eq!(diff.code, 0, "{}{}", diff.stdout, diff.stderr);
    assert!(!format!("{}{}", diff.stdout, diff.stderr).contains(CANARY));

    // Remote charts are cached by version: with the servers gone, the render still works.
    drop(server);
    drop(registry);
    let offline = run(&mut kdeploy(&["diff"]));
    assert_eq!(offline.code, 0, "{}{}", offline.stdout, offline.stderr);

    // Without helm, the error names the source and the way out.
    let mut command = vault.kdeploy();
    let out = run(command
        .env("PATH", "/nonexistent")
        .env("KDEPLOY_CACHE_DIR", home.join("kdeploy-cache"))
        .arg("render")
        .arg("--identity")
        .arg(&identity));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("source helm charts/web") && out.stderr.contains("needs the `helm` binary"),
        "{}",
        out.stderr
    );
}
