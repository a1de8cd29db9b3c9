//! What CI jobs rely on, against the real local control plane: `diff -o markdown` (and the job summary
//! file), and the deploy lock that keeps two applies of one project apart, including one whose process
//! was killed.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{DeleteOnDrop, TestProject as Project, cluster, crd, run, unique_group, wait_until};

/// Starts kdeploy with `args` in the project, its output captured.
fn spawn(p: &Project, args: &[&str]) -> Child {
    p.command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn exists(p: &Project, resource: &str, name: &str) -> bool {
    p.get(resource, name).is_some()
}

const READY: &str = r#"{"conditions": [{"type": "Ready", "status": "True", "reason": "Done"}]}"#;

/// A project with a Widget that is ready only when the test says so, and an apply of it under way
/// (holding the deploy lock) once the Widget exists.
fn held_by_a_waiting_apply(prefix: &str) -> (Project, String, DeleteOnDrop, Child) {
    let group = unique_group("lk");
    let p = Project::new(
        prefix,
        &format!("health:\n  - {{kind: Widget, group: {group}, condition: Ready}}\n"),
    );
    let widgets = format!("widgets.{group}");
    let cleanup = DeleteOnDrop(p.cluster, "crd", vec![widgets.clone()]);
    p.write("manifests/crd.yaml", &crd(&group, "Widget"));
    p.write("manifests/w.yaml", &widget(&group, "w"));
    let apply = spawn(&p, &["apply", "--yes", "--timeout", "60s"]);
    assert!(wait_until(Duration::from_secs(30), || exists(&p, &widgets, "w")));
    (p, widgets, cleanup, apply)
}

/// Waits for a child and returns (exit code, stdout, stderr, when it ended).
fn finish(child: Child) -> (i32, String, String, Instant) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        Instant::now(),
    )
}

fn widget(group: &str, name: &str) -> String {
    format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec: {{}}\n---\n")
}

#[test]
fn a_second_apply_waits_for_the_lock_or_gives_up_after_lock_timeout() {
    // The first apply holds the lock while it waits for the Widget to become Ready.
    let (p, widgets, _cleanup, first) = held_by_a_waiting_apply("ci-lock");
    let first_pid = first.id();

    let refused = run(&mut p.command(&["apply", "--yes", "--lock-timeout", "1s"]));
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("another apply of this project is running")
            && refused.stderr.contains(&format!("(pid {first_pid})")),
        "{}",
        refused.stderr
    );
    // A dry run needs no lock.
    let dry = run(&mut p.command(&["apply", "--dry-run", "--lock-timeout", "0s"]));
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);

    let second = spawn(&p, &["apply", "--yes", "--timeout", "60s", "--lock-timeout", "60s"]);
    std::thread::sleep(Duration::from_secs(2));
    p.set_status(&widgets, "w", READY);
    let (code, stdout, stderr, first_ended) = finish(first);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr, second_ended) = finish(second);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("waiting for the deploy lock"), "{stderr}");
    assert!(second_ended >= first_ended);
    // Released: no lease is left behind.
    assert!(!exists(&p, "lease", "kdeploy-ci-lock"));
}

#[test]
fn a_lock_left_by_a_killed_apply_expires_by_itself() {
    let (p, widgets, _cleanup, mut doomed) = held_by_a_waiting_apply("ci-killed");
    assert!(
        exists(&p, "lease", "kdeploy-ci-killed"),
        "the running apply holds a lease"
    );
    doomed.kill().unwrap(); // SIGKILL: no chance to release the lock
    let _ = doomed.wait();
    let killed_at = Instant::now();
    p.set_status(&widgets, "w", READY);

    let out = run(&mut p.command(&["apply", "--yes", "--timeout", "60s", "--lock-timeout", "60s"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("waiting for the deploy lock"), "{}", out.stderr);
    // The lease lasts 15 s after its last renewal (renewed every 5 s): the wait is real and bounded.
    let waited = killed_at.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(45),
        "{waited:?}"
    );
    assert!(!exists(&p, "lease", "kdeploy-ci-killed"));
}

#[test]
fn markdown_diff_fits_a_comment_masks_secrets_and_fills_the_job_summary() {
    const CANARY: &str = "markdown-canary-51d0";
    let p = Project::new("ci-markdown", "");
    p.write(
        "manifests/secret.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  token: {CANARY}\n"),
    );
    let filler = "x".repeat(2_000);
    let maps: String = (0..40)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: map-{i}\ndata:\n  blob: {filler}\n"))
        .collect();
    p.write("manifests/maps.yaml", &maps);
    let summary = p.dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let out = run(p
        .command(&["diff", "-o", "markdown"])
        .env("GITHUB_STEP_SUMMARY", &summary));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = &out.stdout;
    assert!(report.starts_with("### kdeploy diff: context "), "{report}");
    assert!(report.contains("41 to create"), "{report}");
    assert!(report.contains("| create | Secret |"), "{report}");
    for i in 0..40 {
        assert!(
            report.contains(&format!("| map-{i} |")),
            "map-{i} is missing from the table"
        );
    }
    assert!(report.len() <= 60_000, "{}", report.len());
    assert!(report.contains("diffs were left out to fit a comment"), "{report}");
    assert!(report.contains("<details><summary>create Secret/api"), "{report}");
    assert!(!report.contains(CANARY), "{report}");
    // Appended to the job summary, after what earlier steps wrote.
    let written = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(written, format!("earlier step\n{report}\n"));

    // A refusal is reported in Markdown too, and the exit code says so.
    p.write(
        "manifests/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
    );
    let out = run(p
        .command(&["diff", "-o", "markdown"])
        .env("GITHUB_STEP_SUMMARY", &summary));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.starts_with("### kdeploy diff failed"), "{}", out.stdout);
    assert!(std::fs::read_to_string(&summary).unwrap().contains("Bad_Name"));
}

/// `${{ expression }}` in a GitHub Actions value, filled from `known` (an unknown one fails the test,
/// so a new expression in the example cannot go untested).
fn github_expressions(text: &str, known: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("a closed expression") + start;
        let expression = rest[start + 3..end].trim();
        let value = known
            .iter()
            .find(|(name, _)| *name == expression)
            .unwrap_or_else(|| panic!("the test does not know ${{{{ {expression} }}}}"));
        out.push_str(&value.1);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// bash as CI runners start it, with kdeploy on PATH and none of the test run's own settings.
fn ci_shell(dir: &std::path::Path, script: &str) -> Command {
    let mut command = Command::new("bash");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("KDEPLOY_") || name == "KUBECONFIG" || support::is_store_credential(&name) {
            command.env_remove(&*name);
        }
    }
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kdeploy")).parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    command.current_dir(dir).env("PATH", path).env("NO_COLOR", "1").args([
        "--noprofile",
        "--norc",
        "-eo",
        "pipefail",
        "-c",
        script,
    ]);
    command
}

/// A copy of examples/ci whose names (project, namespace) carry `suffix`, so reruns never collide.
fn example_copy(suffix: &str) -> tempfile::TempDir {
    let example = support::repo_root().join("examples/ci");
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "kdeploy.yaml",
        "values.yaml",
        "manifests/app.yaml",
        "github-actions.yml",
        "gitlab-ci.yml",
    ] {
        let text = std::fs::read_to_string(example.join(file)).unwrap();
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text.replace("ci-demo", &format!("ci-demo-{suffix}"))).unwrap();
    }
    dir
}

#[test]
fn the_example_pipelines_run_locally_with_the_same_commands_and_variables() {
    let cluster = cluster();
    let suffix = unique_group("").split('.').next().unwrap().to_owned();
    let namespace = format!("ci-demo-{suffix}");
    let _cleanup = DeleteOnDrop(cluster, "namespace", vec![namespace.clone()]);
    let dir = example_copy(&suffix);
    let kubeconfig_text = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    // The push jobs' registry: the CNCF distribution registry on loopback, over TLS with a CA the
    // jobs trust through SSL_CERT_FILE as a runner trusts its registry's.
    let tls = support::serve::LoopbackTls::new();
    let registry = support::serve::start_registry(Some(&tls));
    let artifact = format!("{}/ci-demo-{suffix}", registry.address);
    let replicas = || {
        let jsonpath = "jsonpath={.spec.replicas}";
        cluster.kubectl_ok(&["get", "deployment", "greeter", "-n", &namespace, "-o", jsonpath])
    };

    // GitHub Actions: every step with a `run:` but the install and the PR comment (which need GitHub).
    let workflow =
        &support::yaml12_documents(&std::fs::read_to_string(dir.path().join("github-actions.yml")).unwrap())[0];
    let runner_temp = tempfile::tempdir().unwrap();
    let run_job = |job: &str| -> (String, String) {
        let output = runner_temp.path().join(format!("{job}-output"));
        let summary = runner_temp.path().join(format!("{job}-summary"));
        let _ = std::fs::remove_file(&output);
        let _ = std::fs::remove_file(&summary);
        let known = [
            ("secrets.KUBECONFIG_DATA", kubeconfig_text.clone()),
            ("secrets.SOPS_AGE_KEY", String::new()),
            ("runner.temp", runner_temp.path().display().to_string()),
            ("vars.FLUX_ARTIFACT", artifact.clone()),
        ];
        for step in workflow["jobs"][job]["steps"].as_array().unwrap() {
            let (Some(script), Some(name)) = (step["run"].as_str(), step["name"].as_str()) else {
                continue;
            };
            if [
                "Install kdeploy",
                "Comment on the pull request",
                "Log in to the registry",
            ]
            .contains(&name)
            {
                continue;
            }
            let mut command = ci_shell(dir.path(), script);
            command
                .env("SSL_CERT_FILE", &tls.ca)
                .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
                .env("RUNNER_TEMP", runner_temp.path())
                .env("GITHUB_OUTPUT", &output)
                .env("GITHUB_STEP_SUMMARY", &summary);
            for (key, value) in step["env"].as_object().into_iter().flatten() {
                command.env(key, github_expressions(value.as_str().unwrap(), &known));
            }
            let out = run(&mut command);
            assert_eq!(out.code, 0, "{job}: step {name}:\n{}{}", out.stdout, out.stderr);
        }
        (
            std::fs::read_to_string(&output).unwrap_or_default(),
            std::fs::read_to_string(&summary).unwrap_or_default(),
        )
    };
    let (output, summary) = run_job("diff");
    assert_eq!(output.trim(), "changes=true");
    assert!(summary.starts_with("### kdeploy diff: context"), "{summary}");
    assert!(summary.contains("| create | Deployment |"), "{summary}");
    let report = std::fs::read_to_string(runner_temp.path().join("diff.md")).unwrap();
    assert_eq!(format!("{report}\n"), summary);
    // The kubeconfig written from the secret is private.
    let mode = std::fs::metadata(runner_temp.path().join("kubeconfig")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077, 0);

    run_job("apply");
    assert_eq!(replicas(), "2");
    run_job("push");
    let pushed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runner_temp.path().join("pushed.json")).unwrap()).unwrap();
    assert_eq!(pushed["repository"], artifact.as_str());
    assert_eq!(pushed["objects"], 3);
    assert!(pushed["digest"].as_str().unwrap().starts_with("sha256:"), "{pushed}");
    let (output, _) = run_job("diff");
    assert_eq!(output.trim(), "changes=false");

    // GitLab CI: each job's script in one shell, KUBECONFIG a file variable.
    let pipeline = &support::yaml12_documents(&std::fs::read_to_string(dir.path().join("gitlab-ci.yml")).unwrap())[0];
    std::fs::write(
        dir.path().join("values.yaml"),
        "greeting: hello from GitLab\nreplicas: 3\n",
    )
    .unwrap();
    let gitlab_home = tempfile::tempdir().unwrap();
    for job in ["diff", "deploy", "push"] {
        let script: Vec<&str> = pipeline[job]["script"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let out = run(ci_shell(dir.path(), &script.join("\n"))
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("HOME", gitlab_home.path())
            .env("SSL_CERT_FILE", &tls.ca)
            .env("CI_REGISTRY", &registry.address)
            .env("CI_REGISTRY_USER", "gitlab-ci-token")
            .env("CI_REGISTRY_PASSWORD", "job-token-not-asked-for")
            .env("CI_REGISTRY_IMAGE", &artifact)
            .env("CI_COMMIT_SHA", "89abcdef0123456789abcdef0123456789abcdef"));
        assert_eq!(out.code, 0, "gitlab {job}:\n{}{}", out.stdout, out.stderr);
        if job == "diff" {
            assert!(out.stdout.contains("changes to deploy"), "{}", out.stdout);
            let report = std::fs::read_to_string(dir.path().join("diff.md")).unwrap();
            assert!(report.contains("| update | ConfigMap |"), "{report}");
        }
    }
    assert_eq!(replicas(), "3");
    // GitLab's push job logged in through the docker config: what it wrote is what kdeploy read.
    assert!(gitlab_home.path().join(".docker/config.json").is_file());
    // The registry keeps each tag as a folder of its repository.
    let tags = |repository: &str| {
        let stored = registry.storage.path().join(format!(
            "data/docker/registry/v2/repositories/{repository}/_manifests/tags"
        ));
        let mut names: Vec<String> = std::fs::read_dir(&stored)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        tags(&format!("ci-demo-{suffix}")),
        ["0123456789abcdef0123456789abcdef01234567", "main"]
    );
    assert_eq!(
        tags(&format!("ci-demo-{suffix}/deploy")),
        ["89abcdef0123456789abcdef0123456789abcdef", "main"]
    );
}

/// A release deletes the lease only as this process last wrote it: one that another apply took over
/// (as one does once the lease has gone unrenewed) stays with its new holder, and one nobody touched
/// is gone.
#[test]
fn releasing_never_deletes_a_lock_another_apply_took_over() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kdeploy::cluster::lock::{LockReports, Locking, acquire};
    let c = cluster();
    let ns = c.namespace("ci-takeover");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = c.client().await;
        let take = |name: &'static str| {
            let client = client.clone();
            let namespace = ns.name.clone();
            async move {
                let mut waiting = |_: &str| {};
                let reports = LockReports {
                    waiting: &mut waiting,
                    lost: |_| {},
                };
                match acquire(client, &namespace, name, Duration::from_secs(5), reports).await {
                    Ok(Locking::Held(held)) => held,
                    Ok(Locking::NamespaceMissing) => panic!("the namespace exists"),
                    Err(error) => panic!("{error}"),
                }
            }
        };
        let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &ns.name);
        let other = "kdeploy other@host (pid 1) beef";

        let held = take("kdeploy-taken-over").await;
        let mut lease = api.get("kdeploy-taken-over").await.unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some(other.to_owned());
        api.replace("kdeploy-taken-over", &Default::default(), &lease)
            .await
            .unwrap();
        held.release().await;
        let left = api.get_opt("kdeploy-taken-over").await.unwrap();
        let holder = left.and_then(|l| l.spec).and_then(|s| s.holder_identity);
        assert_eq!(holder.as_deref(), Some(other), "the other apply's lock must stay");

        let held = take("kdeploy-untouched").await;
        assert!(api.get_opt("kdeploy-untouched").await.unwrap().is_some());
        held.release().await;
        assert!(
            api.get_opt("kdeploy-untouched").await.unwrap().is_none(),
            "released, so gone"
        );
    });
}
