//! The README's five-minute tour, run as written: the shell block after the `<!-- the tour … -->`
//! marker, with the real kdeploy on PATH, a real keyring (gnome-keyring in a private D-Bus session)
//! and the local control plane in `$KUBECONFIG`.

mod support;

use std::process::Command;

use base64::Engine as _;
use support::{VaultHome, cluster, kdeploy, run};

/// The tour's shell block, from the README as committed.
fn tour() -> String {
    let readme = std::fs::read_to_string(support::repo_root().join("README.md")).unwrap();
    let after = readme
        .split_once("<!-- the tour: tests/readme.rs runs this block as written -->")
        .expect("the README marks its tour")
        .1;
    let block = after.split_once("```sh\n").expect("a shell block after the marker").1;
    block.split_once("\n```").expect("the block ends").0.to_owned()
}

#[test]
fn the_readme_tour_runs_as_written() {
    let cluster = cluster();
    let _ = run(cluster
        .kubectl()
        .args(["delete", "namespace", "tour", "--wait=true", "--timeout=60s"]));
    let home = VaultHome::new();
    let binary = kdeploy().get_program().to_owned();
    let bin_dir = std::path::Path::new(&binary).parent().unwrap().to_path_buf();
    let kubectl_dir = support::k8s_bin("kubectl").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        kubectl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("dbus-run-session");
    home.isolate(&mut command);
    command
        .env_remove("KDEPLOY_NO_KEYRING")
        .env("PATH", path)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("NO_COLOR", "1")
        .current_dir(home.path())
        .args([
            "--",
            "bash",
            "-c",
            &format!("set -euo pipefail\n{}\n{}", support::keyring_prelude(true), tour()),
        ]);
    let out = run(&mut command);
    let cleanup = || run(cluster.kubectl().args(["delete", "namespace", "tour", "--wait=false"]));
    if out.code != 0 {
        cleanup();
        panic!("the tour failed:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    }
    let live = |kind: &str, name: &str| -> serde_json::Value {
        let text = cluster.kubectl_ok(&["get", kind, name, "-n", "tour", "-o", "json"]);
        serde_json::from_str(&text).unwrap()
    };
    let secret = live("secret", "db");
    let deployment = live("deployment", "web");
    let config = live("configmap", "web");
    cleanup();
    // render printed the stream: the greeting one string, the password where it belongs.
    assert!(out.stdout.contains("kind: Deployment"), "{}", out.stdout);
    assert_eq!(config["data"]["greeting"], "yes: it stays a string");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let password = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["password"].as_str().unwrap())
        .unwrap();
    assert_eq!(password, b"correct-horse-battery");
    // The diffs masked the password: it appears once on stdout, in render's output only.
    assert_eq!(out.stdout.matches("correct-horse-battery").count(), 1, "{}", out.stdout);
    assert!(!out.stderr.contains("correct-horse-battery"), "{}", out.stderr);
    // The last diff found the replica change.
    let last = out.stdout.rsplit("Deployment").next().unwrap_or_default();
    assert!(
        out.stdout.contains("replicas: 3"),
        "the last diff should show replicas: 3:\n{last}"
    );
    // The vault file is a SOPS file that is safe to commit.
    let vault = std::fs::read_to_string(home.path().join("tour/secrets.sops.yaml")).unwrap();
    assert!(
        vault.contains("sops:") && !vault.contains("correct-horse-battery"),
        "{vault}"
    );
}
