//! kdeploy inside a real Argo CD (v3.6.1, built from its own Go module by scripts/tools/build.sh), as
//! its config management plugin: redis-server (Debian), argocd-repo-server, argocd-cmp-server with
//! deploy/argocd/plugin.yaml and argocd-application-controller run as local processes against the
//! local control plane (`ARGOCD_FAKE_IN_CLUSTER`). An Application points at a `file://` git repository
//! holding a kdeploy project with a target and a SOPS-encrypted secret: it becomes Synced and Healthy
//! with the right values, a new commit is synced, an object removed from the project is pruned by Argo
//! CD, and the secret appears in no Argo CD log line.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use support::{
    Cluster, DeleteOnDrop, VaultHome, cluster, free_port, repo_root, run, run_with_stdin, tool_bin, wait_until,
};

const CANARY: &str = "gitops-canary-3e9a71";

/// Argo CD's processes, stopped (and their logs kept for reading) when dropped.
struct ArgoCd {
    cluster: &'static Cluster,
    children: Vec<Child>,
    logs: PathBuf,
    namespace: String,
    _state: tempfile::TempDir,
}

impl Drop for ArgoCd {
    fn drop(&mut self) {
        support::stop_all(&mut self.children);
        // Argo CD's CRDs go too, and before the next test binary starts: the real-world test installs
        // Argo CD v3.5.1's, which must not meet this version's fields owned by kubectl.
        let _ = run(self
            .cluster
            .kubectl()
            .args(["delete", "crd", "--wait=true", "--timeout=60s"])
            .args(ARGOCD_CRDS));
    }
}

/// The CRDs the test installs.
const ARGOCD_CRDS: [&str; 2] = ["applications.argoproj.io", "appprojects.argoproj.io"];

impl ArgoCd {
    /// Starts Argo CD against `cluster`, its own objects in a fresh namespace; the plugin's sidecar
    /// identity is `identity`.
    fn start(cluster: &'static Cluster, identity: &Path) -> ArgoCd {
        let tools = tool_bin("argocd").parent().unwrap().to_path_buf();
        let state = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let path = state.path().join(name);
            std::fs::create_dir_all(&path).unwrap();
            path
        };
        let (logs, sockets, config, home, gpg) = (dir("logs"), dir("plugins"), dir("cmp"), dir("home"), dir("gpg"));
        std::fs::copy(
            repo_root().join("deploy/argocd/plugin.yaml"),
            config.join("plugin.yaml"),
        )
        .unwrap();
        let namespace = format!("argocd-{}", support::unique_group("").split('.').next().unwrap());
        cluster.kubectl_ok(&["create", "namespace", &namespace]);
        let crds = tools.join("argocd-crds");
        // Forced: a real-world test run earlier on this cluster may have installed another version's.
        cluster.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crds.join("application-crd.yaml").to_str().unwrap(),
            "-f",
            crds.join("appproject-crd.yaml").to_str().unwrap(),
        ]);
        assert!(wait_until(Duration::from_secs(30), || {
            run(cluster.kubectl().args(["get", "appprojects", "-A"])).code == 0
        }));
        let settings = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-cm, namespace: {namespace}, labels: {{app.kubernetes.io/part-of: argocd}}}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: argocd-secret, namespace: {namespace}, labels: {{app.kubernetes.io/part-of: argocd}}}}\nstringData: {{server.secretkey: not-used-here}}\n---\n\
             apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {{name: default, namespace: {namespace}}}\n\
             spec: {{sourceRepos: ['*'], destinations: [{{namespace: '*', server: '*'}}], clusterResourceWhitelist: [{{group: '*', kind: '*'}}]}}\n"
        );
        let file = state.path().join("settings.yaml");
        std::fs::write(&file, settings).unwrap();
        cluster.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);

        let (redis, repo_server) = (free_port(), free_port());
        let kdeploy_dir = Path::new(env!("CARGO_BIN_EXE_kdeploy")).parent().unwrap();
        let path = std::env::join_paths(
            [tools.clone(), kdeploy_dir.to_path_buf()]
                .into_iter()
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )
        .unwrap();
        let spawn = |name: &str, program: &str, args: Vec<String>| -> Child {
            let mut command = Command::new(if program == "redis-server" {
                PathBuf::from(program)
            } else {
                tools.join(program)
            });
            support::scrub_env(&mut command);
            command
                .args(args)
                .env("PATH", &path)
                .env("HOME", &home)
                .env("ARGOCD_PLUGINSOCKFILEPATH", &sockets)
                .env("ARGOCD_GNUPGHOME", &gpg)
                .env("ARGOCD_GPG_ENABLED", "false")
                .env("KUBECONFIG", &cluster.kubeconfig)
                .env("KDEPLOY_NO_KEYRING", "1")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(logs.join(format!("{name}.log"))).unwrap())
                .stderr(std::fs::File::create(logs.join(format!("{name}.err.log"))).unwrap());
            if name == "cmp-server" {
                // The sidecar's identity, as a mounted Secret gives it.
                command.env("SOPS_AGE_KEY_FILE", identity);
            }
            if name == "application-controller" {
                command.env("ARGOCD_FAKE_IN_CLUSTER", "true");
            }
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
        };
        let mut children = Vec::new();
        let text = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        children.push(spawn(
            "redis",
            "redis-server",
            text(&[
                "--port",
                &redis.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
        ));
        children.push(spawn(
            "cmp-server",
            "argocd-cmp-server",
            text(&["--config-dir-path", config.to_str().unwrap(), "--logformat", "text"]),
        ));
        let redis_address = format!("127.0.0.1:{redis}");
        children.push(spawn(
            "repo-server",
            "argocd-repo-server",
            text(&[
                "--address",
                "127.0.0.1",
                "--port",
                &repo_server.to_string(),
                "--redis",
                &redis_address,
                "--disable-tls",
                "--client-ca-path",
                "",
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                &free_port().to_string(),
                "--logformat",
                "text",
            ]),
        ));
        children.push(spawn(
            "application-controller",
            "argocd-application-controller",
            text(&[
                "--kubeconfig",
                cluster.kubeconfig.to_str().unwrap(),
                "--namespace",
                &namespace,
                "--repo-server",
                &format!("127.0.0.1:{repo_server}"),
                "--repo-server-plaintext",
                "--redis",
                &redis_address,
                "--metrics-port",
                &free_port().to_string(),
                "--logformat",
                "text",
                "--app-resync",
                "15",
                "--self-heal-timeout-seconds",
                "1",
            ]),
        ));
        ArgoCd {
            cluster,
            children,
            logs,
            namespace,
            _state: state,
        }
    }

    /// Every log line Argo CD's processes wrote.
    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(&self.logs).unwrap() {
            text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
        }
        text
    }
}

/// Runs git in `dir` as a fixed author.
fn git(dir: &Path, args: &[&str]) {
    let out = run(Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=kdeploy test", "-c", "user.email=test@kdeploy.invalid"])
        .args(args));
    assert_eq!(out.code, 0, "git {args:?}: {}", out.stderr);
}

#[test]
fn argo_cd_syncs_a_kdeploy_project_with_a_sops_secret_and_prunes_what_leaves_it() {
    let cluster = cluster();
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("sidecar-key.txt");
    let argocd = ArgoCd::start(cluster, &identity);
    let target_namespace = format!("{}-apps", argocd.namespace);
    let _cleanup = DeleteOnDrop(
        cluster,
        "namespace",
        vec![argocd.namespace.clone(), target_namespace.clone()],
    );
    cluster.kubectl_ok(&["create", "namespace", &target_namespace]);

    // The repository: a project with a `prod` target and a vault, committed.
    let repo = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = repo.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "kdeploy.yaml",
        &format!(
            "name: gitops-demo\ntemplates: [manifests]\nvalues: [values.yaml]\nsecrets: [secrets.sops.yaml]\nrecipients: [{recipient}]\ntargets:\n  prod:\n    values: [prod.yaml]\n"
        ),
    );
    write("values.yaml", "greeting: hello\nreplicas: 1\n");
    write("prod.yaml", "greeting: hello from prod\n");
    write(
        "manifests/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  text: {{ values.greeting }}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  token: {{ secrets.token }}\n",
    );
    write(
        "manifests/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  k: v\n",
    );
    let mut set = home.kdeploy();
    set.current_dir(repo.path())
        .args(["vault", "set", "secrets.sops.yaml", "token"]);
    run_with_stdin(&mut set, Some(CANARY)).ok();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);

    let application = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: demo\n  namespace: {}\nspec:\n  project: default\n  source:\n    repoURL: file://{}\n    targetRevision: main\n    path: .\n    plugin:\n      env:\n        - {{name: KDEPLOY_TARGET, value: prod}}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {target_namespace}\n  syncPolicy:\n    automated: {{prune: true}}\n",
        argocd.namespace,
        repo.path().display()
    );
    let file = repo.path().join("../application.yaml");
    std::fs::write(&file, application).unwrap();
    cluster.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);

    let app = || -> Value {
        let out = run(cluster
            .kubectl()
            .args(["get", "application", "demo", "-n", &argocd.namespace, "-o", "json"]));
        serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
    };
    let get = |kind: &str, name: &str| -> Option<Value> {
        let out = run(cluster
            .kubectl()
            .args(["get", kind, name, "-n", &target_namespace, "-o", "json"]));
        (out.code == 0).then(|| serde_json::from_str(&out.stdout).unwrap())
    };
    let synced_at = |revision: &str| {
        wait_until(Duration::from_secs(120), || {
            let app = app();
            app["status"]["sync"]["status"] == "Synced"
                && app["status"]["health"]["status"] == "Healthy"
                && app["status"]["sync"]["revision"] == revision
        })
    };
    let head = |dir: &Path| {
        let out = run(Command::new("git").current_dir(dir).args(["rev-parse", "HEAD"]));
        out.stdout.trim().to_owned()
    };
    let first = head(repo.path());
    assert!(
        synced_at(&first),
        "not Synced and Healthy at {first}: {}\n{}",
        app()["status"],
        argocd.logs()
    );

    // The objects have the target's values, and the secret decrypted by the sidecar's identity.
    assert_eq!(get("configmap", "greeting").unwrap()["data"]["text"], "hello from prod");
    let secret = get("secret", "api").unwrap();
    let token = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(token, CANARY.as_bytes());
    // Argo CD tracks them: no ApplySet labels from kdeploy.
    let labels = get("configmap", "extra").unwrap()["metadata"]["labels"].clone();
    assert!(labels.get("applyset.kubernetes.io/part-of").is_none(), "{labels}");

    // A new commit: a changed value and a removed object.
    write("prod.yaml", "greeting: second commit\n");
    std::fs::remove_file(repo.path().join("manifests/extra.yaml")).unwrap();
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "second"]);
    let second = head(repo.path());
    // What a webhook from the git server would do: ask for a refresh now.
    cluster.kubectl_ok(&[
        "annotate",
        "application",
        "demo",
        "-n",
        &argocd.namespace,
        "argocd.argoproj.io/refresh=normal",
        "--overwrite",
    ]);
    assert!(
        synced_at(&second),
        "not Synced at {second}: {}\n{}",
        app()["status"],
        argocd.logs()
    );
    assert!(wait_until(Duration::from_secs(60), || {
        get("configmap", "greeting").is_some_and(|c| c["data"]["text"] == "second commit")
    }));
    assert!(
        wait_until(Duration::from_secs(60), || get("configmap", "extra").is_none()),
        "Argo CD did not prune the object that left the project"
    );

    // The secret went through Argo CD's repo-server and controller, but into no log line.
    let logs = argocd.logs();
    let encoded = base64::engine::general_purpose::STANDARD.encode(CANARY);
    assert!(!logs.is_empty());
    assert!(
        !logs.contains(CANARY) && !logs.contains(&encoded),
        "the secret is in Argo CD's logs"
    );
}

#[test]
fn generate_takes_the_target_values_and_namespace_from_argo_cds_environment() {
    let dir = support::project(&[
        (
            "kdeploy.yaml",
            "name: p\ntemplates: [manifests]\nvalues: [values.yaml]\ntargets:\n  prod:\n    values: [prod.yaml]\n  staging: {}\n",
        ),
        ("values.yaml", "greeting: hi\nreplicas: 1\n"),
        ("prod.yaml", "greeting: hello prod\n"),
        (
            "manifests/app.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  text: {{ values.greeting }}\n  replicas: \"{{ values.replicas }}\"\n  typed: \"{{ values.replicas is number }}\"\n",
        ),
    ]);
    let listing = |dir: &Path| {
        let mut names: Vec<String> = walk(dir);
        names.sort();
        names
    };
    let before = listing(dir.path());
    let generate = |envs: &[(&str, &str)]| {
        let mut command = support::kdeploy();
        command.current_dir(dir.path()).args(["argocd", "generate"]);
        for (key, value) in envs {
            command.env(key, value);
        }
        run(&mut command)
    };
    // Parameters: the target, and a values map read as YAML.
    let out = generate(&[
        (
            "ARGOCD_APP_PARAMETERS",
            r#"[{"name": "target", "string": "prod"}, {"name": "values", "map": {"replicas": "3"}}]"#,
        ),
        ("ARGOCD_APP_NAMESPACE", "shop"),
    ])
    .ok();
    let object = &support::yaml12_documents(&out.stdout)[0];
    assert_eq!(object["data"]["text"], "hello prod");
    assert_eq!(object["data"]["replicas"], "3");
    assert_eq!(object["data"]["typed"], "true");
    assert_eq!(object["metadata"]["namespace"], "shop");
    assert!(
        object["metadata"].get("labels").is_none(),
        "no ApplySet labels: {object}"
    );
    // The Application's plugin env names the target when no parameter does; `null` parameters are none.
    let out = generate(&[("ARGOCD_APP_PARAMETERS", "null"), ("ARGOCD_ENV_KDEPLOY_TARGET", "prod")]).ok();
    assert_eq!(support::yaml12_documents(&out.stdout)[0]["data"]["text"], "hello prod");
    // A bad parameter is an error naming it, with nothing on stdout.
    let out = generate(&[("ARGOCD_APP_PARAMETERS", r#"[{"name": "colour", "string": "red"}]"#)]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty() && out.stderr.contains("colour"), "{}", out.stderr);
    // Nothing was written into the checkout.
    assert_eq!(listing(dir.path()), before);
    // The parameters Argo CD's UI offers name the targets.
    let announced = run(support::kdeploy()
        .current_dir(dir.path())
        .args(["argocd", "parameters"]))
    .ok();
    let announced: Value = serde_json::from_str(&announced.stdout).unwrap();
    assert_eq!(announced[0]["name"], "target");
    assert!(announced[0]["tooltip"].as_str().unwrap().contains("prod, staging"));
}

fn walk(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        names.push(path.display().to_string());
        if path.is_dir() {
            names.extend(walk(&path));
        }
    }
    names
}

#[test]
fn the_argocd_install_project_adds_the_plugin_sidecar_to_the_upstream_manifest() {
    // The pinned upstream manifest is the real-world corpus' Argo CD install.yaml, placed where a
    // verified download is kept (this machine reaches no GitHub).
    let cache = tempfile::tempdir().unwrap();
    let upstream = support::realworld().join("argo-cd/manifests/install.yaml");
    let project = std::fs::read_to_string(repo_root().join("deploy/argocd/kdeploy.yaml")).unwrap();
    let digest = project
        .lines()
        .find_map(|l| l.trim().strip_prefix("sha256: "))
        .unwrap()
        .to_owned();
    let stored = cache.path().join("sources/sha256").join(&digest);
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::copy(&upstream, &stored).unwrap();
    let out = run(support::kdeploy()
        .env("KDEPLOY_CACHE_DIR", cache.path())
        .args(["render", "-o", "json"])
        .arg(repo_root().join("deploy/argocd")))
    .ok();
    let objects: Value = serde_json::from_str(&out.stdout).unwrap();
    let items = objects["items"].as_array().unwrap();
    let find = |kind: &str, name: &str| {
        items
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} missing"))
    };
    let pod = &find("Deployment", "argocd-repo-server")["spec"]["template"]["spec"];
    let names: Vec<&str> = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["argocd-repo-server", "kdeploy"]);
    let sidecar = &pod["containers"][1];
    assert_eq!(sidecar["command"][0], "/var/run/argocd/argocd-cmp-server");
    let mounts: Vec<&str> = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for mount in &mounts {
        assert!(
            volumes.contains(mount),
            "{mount} is mounted but not a volume of the pod"
        );
    }
    assert!(mounts.contains(&"var-files") && mounts.contains(&"plugins") && mounts.contains(&"kdeploy-age"));
    // The upstream container is untouched.
    assert_eq!(pod["containers"][0]["image"], "quay.io/argoproj/argocd:v3.5.1");
    // The sidecar reads the same plugin.yaml the end-to-end test gives argocd-cmp-server.
    let plugin = std::fs::read_to_string(repo_root().join("deploy/argocd/plugin.yaml")).unwrap();
    assert_eq!(
        find("ConfigMap", "kdeploy-plugin")["data"]["plugin.yaml"],
        plugin.as_str()
    );
    assert!(
        items
            .iter()
            .all(|o| o["metadata"]["namespace"].is_null() || o["metadata"]["namespace"] == "argocd")
    );
}
