//! kdeploy for Flux, against a real Flux: source-controller and kustomize-controller v1.9.6 (built from
//! their Go modules by scripts/tools/build.sh, with their own CRDs) run as local processes against the
//! local control plane, with the CNCF distribution registry on loopback. A project with a vault Secret
//! is pushed with `kdeploy push`, deployed with what `kdeploy flux generate` prints and the cluster's
//! age identity as the decryption Secret; Flux applies it as `kdeploy render` renders it, no registry
//! blob holds the secret, an unchanged push keeps its digest, a second version is applied and prunes,
//! and a vault value bound for a ConfigMap is refused before anything is pushed.

mod support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use support::serve::start_registry;
use support::{Cluster, DeleteOnDrop, VaultHome, cluster, free_port, run, tool_binary, unique_name, wait_until};

const CANARY: &str = "flux-vault-canary-5d2c8e";
const CANARY_V2: &str = "flux-vault-canary-second-91ab";

/// Flux's two controllers, watching one namespace of their own; stopped when dropped, after the
/// objects they reconcile are gone (their finalizers need the controllers) and before their CRDs go.
struct Flux {
    cluster: &'static Cluster,
    children: Vec<Child>,
    namespace: String,
    logs: PathBuf,
    _state: tempfile::TempDir,
}

/// Flux's CRDs the test installs (all of the source-controller's, which it watches, and the
/// Kustomization).
fn flux_crds(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

impl Flux {
    fn start(cluster: &'static Cluster) -> Flux {
        let tools = tool_binary("flux", "source-controller").parent().unwrap().to_path_buf();
        assert!(
            tools.join("kustomize-controller").is_file(),
            "kustomize-controller was not built"
        );
        let crds = tools.join("flux-crds");
        let mut apply = cluster.kubectl();
        apply.args(["apply", "--server-side", "--force-conflicts"]);
        for file in flux_crds(&crds) {
            apply.args(["-f", &file]);
        }
        let out = run(&mut apply);
        assert_eq!(out.code, 0, "installing Flux's CRDs: {}", out.stderr);
        assert!(wait_until(Duration::from_secs(30), || {
            run(cluster.kubectl().args(["get", "kustomizations,ocirepositories", "-A"])).code == 0
        }));
        let namespace = unique_name("flux");
        cluster.kubectl_ok(&["create", "namespace", &namespace]);
        let state = tempfile::tempdir().unwrap();
        let logs = state.path().join("logs");
        let storage = state.path().join("storage");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::create_dir_all(&storage).unwrap();
        let storage_port = free_port();
        let spawn = |name: &str, args: Vec<String>| -> Child {
            let mut command = Command::new(tools.join(name));
            support::scrub_env(&mut command);
            command
                .args(args)
                .env("KUBECONFIG", &cluster.kubeconfig)
                .env("RUNTIME_NAMESPACE", &namespace)
                .env("HOME", state.path())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(logs.join(format!("{name}.log"))).unwrap())
                .stderr(std::fs::File::create(logs.join(format!("{name}.err.log"))).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
        };
        let address = |port: u16| format!("127.0.0.1:{port}");
        let common = |extra: Vec<String>| {
            let mut args = vec![
                format!("--metrics-addr={}", address(free_port())),
                format!("--health-addr={}", address(free_port())),
                "--enable-leader-election=false".to_owned(),
                "--watch-all-namespaces=false".to_owned(),
            ];
            args.extend(extra);
            args
        };
        let children = vec![
            spawn(
                "source-controller",
                common(vec![
                    format!("--storage-path={}", storage.display()),
                    format!("--storage-addr={}", address(storage_port)),
                    format!("--storage-adv-addr={}", address(storage_port)),
                ]),
            ),
            spawn("kustomize-controller", common(Vec::new())),
        ];
        Flux {
            cluster,
            children,
            namespace,
            logs,
            _state: state,
        }
    }

    fn logs(&self) -> String {
        support::log_tails(&self.logs, 40)
    }

    fn get(&self, resource: &str, name: &str) -> Value {
        let out = run(self
            .cluster
            .kubectl()
            .args(["get", resource, name, "-n", &self.namespace, "-o", "json"]));
        serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        // The Kustomization first, while kustomize-controller still runs to take its finalizer off.
        let _ = run(self.cluster.kubectl().args([
            "delete",
            "kustomizations,ocirepositories",
            "--all",
            "-n",
            &self.namespace,
            "--wait=true",
            "--timeout=60s",
        ]));
        support::stop_all(&mut self.children);
        let _ = run(self
            .cluster
            .kubectl()
            .args(["delete", "namespace", &self.namespace, "--wait=false"]));
        let _ = run(self.cluster.kubectl().args([
            "delete",
            "crd",
            "kustomizations.kustomize.toolkit.fluxcd.io",
            "ocirepositories.source.toolkit.fluxcd.io",
            "gitrepositories.source.toolkit.fluxcd.io",
            "buckets.source.toolkit.fluxcd.io",
            "helmcharts.source.toolkit.fluxcd.io",
            "helmrepositories.source.toolkit.fluxcd.io",
            "externalartifacts.source.toolkit.fluxcd.io",
            "--wait=true",
            "--timeout=60s",
        ]));
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// The registry's blobs as stored, and gunzipped where they are gzip: what anyone who can pull sees.
fn registry_contents(storage: &Path) -> Vec<Vec<u8>> {
    let mut contents = Vec::new();
    for path in files_under(storage) {
        let bytes = std::fs::read(&path).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_end(&mut unpacked)
                .unwrap();
            contents.push(unpacked);
        }
        contents.push(bytes);
    }
    contents
}

/// A project folder in a private vault home, with the team's identity (which opens the vault) and
/// the cluster's (which Flux decrypts with).
struct Fixture {
    home: VaultHome,
    project: PathBuf,
    team_identity: PathBuf,
    team: String,
    cluster_identity: PathBuf,
    cluster_recipient: String,
}

impl Fixture {
    fn new() -> Fixture {
        let home = VaultHome::new();
        let (team_identity, team) = home.identity("team.txt");
        let (cluster_identity, cluster_recipient) = home.identity("cluster.txt");
        Fixture {
            project: home.path().join("project"),
            home,
            team_identity,
            team,
            cluster_identity,
            cluster_recipient,
        }
    }

    /// `db_password` in the project's vault.
    fn set_password(&self, value: &str) {
        self.home
            .vault_set(&self.project, &self.team_identity, "secrets.yaml", "db_password", value);
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.project.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// kdeploy in the project, with the team's identity and an empty docker config.
    fn kdeploy(&self, args: &[&str]) -> support::Run {
        let mut command = self.home.kdeploy();
        command
            .current_dir(&self.project)
            .env("SOPS_AGE_KEY_FILE", &self.team_identity)
            .env("DOCKER_CONFIG", self.home.path().join("docker"))
            .args(args);
        run(&mut command)
    }
}

/// A private home holding project NAME: one ConfigMap in namespace `web`, no Secrets.
fn one_configmap_project(name: &str) -> VaultHome {
    let home = VaultHome::new();
    home.write("kdeploy.yaml", &format!("name: {name}\nnamespace: web\n"));
    home.write(
        "manifests/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n",
    );
    home
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn flux_reconciles_a_pushed_artifact_decrypts_its_secret_and_prunes_what_leaves() {
    let cluster = cluster();
    let flux = Flux::start(cluster);
    let registry = start_registry(None);
    let app_namespace = unique_name("flux-app");
    let _cleanup = DeleteOnDrop(cluster, "namespace", vec![app_namespace.clone()]);

    let fixture = Fixture::new();
    let (team, cluster_recipient) = (&fixture.team, &fixture.cluster_recipient);
    fixture.write(
        "kdeploy.yaml",
        &format!(
            "name: shop\nnamespace: {app_namespace}\ntemplates: [manifests]\nvalues: [values.yaml]\nsecrets: [secrets.yaml]\nrecipients: [{team}]\n\
             flux:\n  recipients: [{cluster_recipient}]\n  namespace: {}\n  repository: oci://{}/shop\n",
            flux.namespace, registry.address
        ),
    );
    fixture.write("values.yaml", "greeting: hello from v1\n");
    fixture.write(
        "manifests/namespace.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {app_namespace}\n"),
    );
    fixture.write(
        "manifests/app.yaml",
        "\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: {{ values.greeting }}\n  literal: \"${NOT_FOR_FLUX}\"\n  count: \"3\"\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n  password: {{ secrets.db_password }}\n",
    );
    fixture.write(
        "manifests/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  k: v\n",
    );
    fixture.set_password(CANARY);

    let kdeploy = |args: &[&str]| fixture.kdeploy(args);
    let reference = |tag: &str| format!("oci://{}/shop:{tag}", registry.address);
    let push = |tag: &str| -> Value {
        let out = kdeploy(&["push", &reference(tag), "--plain-http", "-o", "json"]);
        assert_eq!(out.code, 0, "push {tag}: {}", out.stderr);
        assert!(!out.stderr.contains(CANARY), "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    };

    // 1. Push v1; deploy it with what `flux generate` prints and the cluster's identity.
    let v1 = push("v1");
    let digest = v1["digest"].as_str().unwrap().to_owned();
    assert_eq!(v1["secrets"], 1);
    assert_eq!(v1["changed"], true);
    let generated = kdeploy(&["flux", "generate", "--plain-http", "--digest", &digest]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    assert!(
        generated.stderr.contains("kubectl create secret generic shop-sops")
            && !generated.stderr.contains("AGE-SECRET-KEY"),
        "{}",
        generated.stderr
    );
    let decryption = std::fs::read_to_string(&fixture.cluster_identity).unwrap();
    let key_file = fixture.home.path().join("identity.agekey");
    std::fs::write(&key_file, decryption).unwrap();
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "shop-sops",
        "-n",
        &flux.namespace,
        &format!("--from-file=identity.agekey={}", key_file.display()),
    ]);
    let objects = fixture.home.path().join("flux-objects.yaml");
    std::fs::write(&objects, &generated.stdout).unwrap();
    cluster.kubectl_ok(&["apply", "--server-side", "-f", objects.to_str().unwrap()]);

    // 2. Ready, with the vault value in the live Secret and every object as kdeploy renders it.
    let applied = |digest: &str| {
        wait_until(Duration::from_secs(120), || {
            let status = &flux.get("kustomization", "shop")["status"];
            status["lastAppliedRevision"] == digest
                && status["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
    };
    assert!(
        applied(&digest),
        "the Kustomization did not apply {digest}: {}\n{}",
        flux.get("kustomization", "shop")["status"],
        flux.logs()
    );
    let live = |kind: &str, name: &str| -> Option<Value> {
        let out = run(cluster
            .kubectl()
            .args(["get", kind, name, "-n", &app_namespace, "-o", "json"]));
        (out.code == 0).then(|| serde_json::from_str(&out.stdout).unwrap())
    };
    let secret = live("secret", "db").unwrap();
    let password = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["password"].as_str().unwrap())
        .unwrap();
    assert_eq!(password, CANARY.as_bytes());
    let rendered = kdeploy(&["render", "-o", "json"]);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    let rendered: Value = serde_json::from_str(&rendered.stdout).unwrap();
    for object in rendered["items"].as_array().unwrap() {
        let kind = object["kind"].as_str().unwrap().to_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap();
        let found = if kind == "namespace" {
            let out = run(cluster.kubectl().args(["get", "namespace", name, "-o", "json"]));
            serde_json::from_str(&out.stdout).ok()
        } else {
            live(&kind, name)
        };
        let found = found.unwrap_or_else(|| panic!("{kind}/{name} is not in the cluster"));
        assert_eq!(
            found["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/substitute"], "disabled",
            "{kind}/{name}"
        );
        assert_eq!(found["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"], "shop");
        match kind.as_str() {
            "configmap" => assert_eq!(found["data"], object["data"], "{name}: Flux changed the data"),
            "secret" => {
                for (key, value) in object["stringData"].as_object().unwrap() {
                    let live_value = base64::engine::general_purpose::STANDARD
                        .decode(found["data"][key].as_str().unwrap())
                        .unwrap();
                    assert_eq!(live_value, value.as_str().unwrap().as_bytes(), "{name}.{key}");
                }
            }
            _ => {}
        }
    }
    assert_eq!(live("configmap", "web").unwrap()["data"]["literal"], "${NOT_FOR_FLUX}");

    // kdeploy's own commands know whose objects these are.
    let status = kdeploy(&["flux", "status", "--kubeconfig", cluster.kubeconfig.to_str().unwrap()]);
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    assert!(
        status.stdout.contains("Ready=True") && status.stdout.contains(&digest),
        "{}",
        status.stdout
    );
    let kdeploy_status = kdeploy(&["status", "--kubeconfig", cluster.kubeconfig.to_str().unwrap()]);
    assert_eq!(kdeploy_status.code, 2, "{}", kdeploy_status.stderr);
    assert!(
        kdeploy_status.stderr.contains("`kdeploy flux status`"),
        "{}",
        kdeploy_status.stderr
    );
    let diff = kdeploy(&[
        "diff",
        "--force-conflicts",
        "--kubeconfig",
        cluster.kubeconfig.to_str().unwrap(),
        "-v",
        "greeting=changed around Flux",
    ]);
    assert!(
        diff.stderr.contains("applied by Flux Kustomization") && diff.stderr.contains("reverted"),
        "{}",
        diff.stderr
    );

    // 3. No registry blob holds the secret, in plain text or base64.
    let encoded = base64::engine::general_purpose::STANDARD.encode(CANARY);
    for blob in registry_contents(registry.storage.path()) {
        assert!(
            !contains(&blob, CANARY) && !contains(&blob, &encoded),
            "a registry blob holds the secret"
        );
    }

    // 4. An unchanged push keeps the digest.
    let again = push("v1");
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!(again["changed"], false);

    // 5. v2: a changed value and a removed object; Flux applies it and prunes.
    fixture.write("values.yaml", "greeting: hello from v2\n");
    std::fs::remove_file(fixture.project.join("manifests/extra.yaml")).unwrap();
    fixture.set_password(CANARY_V2);
    let v2 = push("v2");
    let digest2 = v2["digest"].as_str().unwrap().to_owned();
    assert_ne!(digest2, digest);
    let generated = kdeploy(&["flux", "generate", "--plain-http", "--digest", &digest2]);
    std::fs::write(&objects, &generated.stdout).unwrap();
    cluster.kubectl_ok(&["apply", "--server-side", "-f", objects.to_str().unwrap()]);
    assert!(
        applied(&digest2),
        "the Kustomization did not apply {digest2}: {}\n{}",
        flux.get("kustomization", "shop")["status"],
        flux.logs()
    );
    assert_eq!(live("configmap", "web").unwrap()["data"]["greeting"], "hello from v2");
    let password = base64::engine::general_purpose::STANDARD
        .decode(live("secret", "db").unwrap()["data"]["password"].as_str().unwrap())
        .unwrap();
    assert_eq!(password, CANARY_V2.as_bytes());
    assert!(
        wait_until(Duration::from_secs(30), || live("configmap", "extra").is_none()),
        "Flux did not prune ConfigMap/extra"
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(CANARY_V2);
    for blob in registry_contents(registry.storage.path()) {
        assert!(
            !contains(&blob, CANARY_V2) && !contains(&blob, &encoded),
            "a registry blob holds the secret"
        );
    }

    // 6. A vault value bound for a ConfigMap: refused, naming the object and path; nothing pushed.
    fixture.write(
        "manifests/leak.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  url: postgres://app:{{ secrets.db_password }}@db\n",
    );
    let refused = kdeploy(&["push", &reference("v3"), "--plain-http"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("ConfigMap/leak") && refused.stderr.contains("data.url"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(CANARY_V2), "{}", refused.stderr);
    let tags = files_under(registry.storage.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/_manifests/tags/v3"))
        .count();
    assert_eq!(tags, 0, "a v3 tag was pushed");
}

#[test]
fn push_dir_writes_sops_documents_only_the_cluster_key_opens_and_keeps_the_folder_its_own() {
    let fixture = Fixture::new();
    let (team, cluster_recipient) = (&fixture.team, &fixture.cluster_recipient);
    fixture.write(
        "kdeploy.yaml",
        &format!(
            "name: shop\nnamespace: shop\nsecrets: [secrets.yaml]\nrecipients: [{team}]\ntargets:\n  prod:\n    flux: {{recipients: [{cluster_recipient}]}}\n"
        ),
    );
    fixture.write(
        "manifests/app.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {{ secrets.db_password }}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  k: v\n",
    );
    fixture.set_password(CANARY);
    let kdeploy = |args: &[&str]| fixture.kdeploy(args);
    let out = fixture.home.path().join("rendered");

    // Untrusted input never publishes: the project would choose the keys.
    let refused = kdeploy(&["push", "--untrusted", "-t", "prod", "--dir", out.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("never with --untrusted"), "{}", refused.stderr);
    assert!(!out.exists());

    // Without the target there are no cluster recipients: refused, nothing written.
    let refused = kdeploy(&["push", "--dir", out.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("Secret/db (namespace shop)") && refused.stderr.contains("flux:"),
        "{}",
        refused.stderr
    );
    assert!(!out.exists());

    let pushed = kdeploy(&["push", "-t", "prod", "--dir", out.to_str().unwrap()]);
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    let secret = out.join("shop/secret_db.yaml");
    let files: Vec<PathBuf> = files_under(&out);
    assert_eq!(files.len(), 3, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(CANARY), "{} holds the secret", file.display());
    }
    // The real sops opens it with the cluster's key, and not with the team's.
    let opened = run(fixture.home.sops(&fixture.cluster_identity).arg("-d").arg(&secret));
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    assert!(opened.stdout.contains(CANARY), "{}", opened.stdout);
    let refused = run(fixture.home.sops(&fixture.team_identity).arg("-d").arg(&secret));
    assert_ne!(refused.code, 0, "the team's key opened the cluster's Secret");

    // Unchanged: the same bytes. An object that leaves takes its file along.
    let before = std::fs::read(&secret).unwrap();
    let again = kdeploy(&["push", "-t", "prod", "--dir", out.to_str().unwrap()]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    assert_eq!(std::fs::read(&secret).unwrap(), before);
    fixture.write(
        "manifests/app.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {{ secrets.db_password }}\n",
    );
    assert_eq!(kdeploy(&["push", "-t", "prod", "--dir", out.to_str().unwrap()]).code, 0);
    assert!(!out.join("shop/configmap_extra.yaml").exists());
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        before,
        "the unchanged Secret kept its document"
    );
    let kustomization = std::fs::read_to_string(out.join("kustomization.yaml")).unwrap();
    assert!(
        kustomization.ends_with("resources:\n- shop/secret_db.yaml\n"),
        "{kustomization}"
    );

    // A file in the way of a new object: refused before anything is written.
    fixture.write(
        "manifests/app.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {{ secrets.db_password }}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a-new\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: z-new\n",
    );
    std::fs::write(out.join("shop/configmap_z-new.yaml"), "mine\n").unwrap();
    let refused = kdeploy(&["push", "-t", "prod", "--dir", out.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("configmap_z-new.yaml exists"),
        "{}",
        refused.stderr
    );
    assert!(
        !out.join("shop/configmap_a-new.yaml").exists(),
        "a file was written before the refusal"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("kustomization.yaml")).unwrap(),
        kustomization
    );

    // A folder kdeploy did not write is left alone.
    let foreign = fixture.home.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("kustomization.yaml"), "resources: [mine.yaml]\n").unwrap();
    let refused = kdeploy(&["push", "-t", "prod", "--dir", foreign.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not written by kdeploy push"),
        "{}",
        refused.stderr
    );
    assert_eq!(files_under(&foreign).len(), 1);
}

#[test]
fn push_over_tls_trusts_the_ca_it_is_given_and_nothing_else() {
    let tls = support::serve::LoopbackTls::new();
    let registry = start_registry(Some(&tls));
    let home = one_configmap_project("tls-app");
    let reference = format!("oci://{}/team/app:1.0.0", registry.address);
    let untrusted = run(home.kdeploy().args(["push", &reference]));
    assert_eq!(untrusted.code, 2, "{}", untrusted.stderr);
    assert!(untrusted.stderr.contains(&registry.address), "{}", untrusted.stderr);
    let pushed = run(home.kdeploy().args(["push", &reference, "--ca-file"]).arg(&tls.ca));
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    let line = pushed.stdout.trim();
    assert!(
        line.starts_with(&format!("{}/team/app@sha256:", registry.address)),
        "{line}"
    );
}

#[test]
fn push_sends_the_docker_configs_credentials_to_the_registry_that_asks_for_them() {
    let tls = support::serve::LoopbackTls::new();
    let auth = tempfile::tempdir().unwrap();
    let htpasswd = auth.path().join("htpasswd");
    let out = run(Command::new("htpasswd")
        .args(["-Bbc"])
        .arg(&htpasswd)
        .args(["ci-bot", "registry-pw-4e1d"]));
    assert_eq!(out.code, 0, "htpasswd (Debian's apache2-utils): {}", out.stderr);
    let registry = support::serve::start_registry_with(
        Some(&tls),
        &format!(
            "auth:\n  htpasswd:\n    realm: kdeploy-test\n    path: {}\n",
            htpasswd.display()
        ),
    );
    let home = one_configmap_project("auth-app");
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let reference = format!("oci://{}/team/app:1", registry.address);
    let push = || {
        let mut command = home.kdeploy();
        command
            .env("DOCKER_CONFIG", &docker)
            .args(["push", &reference, "--ca-file"])
            .arg(&tls.ca);
        run(&mut command)
    };
    let config = |password: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("ci-bot:{password}"));
        std::fs::write(
            docker.join("config.json"),
            format!("{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}", registry.address),
        )
        .unwrap();
    };

    // No credentials: refused, with what to do.
    let anonymous = push();
    assert_eq!(anonymous.code, 2, "{}", anonymous.stderr);
    assert!(
        anonymous.stderr.contains("401") && anonymous.stderr.contains("docker login"),
        "{}",
        anonymous.stderr
    );
    // Wrong ones: refused, and the password is never printed.
    config("not-the-password");
    let wrong = push();
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("refused"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("not-the-password"), "{}", wrong.stderr);
    // The right ones: pushed.
    config("registry-pw-4e1d");
    let pushed = push();
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    assert!(
        pushed
            .stdout
            .starts_with(&format!("{}/team/app@sha256:", registry.address)),
        "{}",
        pushed.stdout
    );
    assert!(!pushed.stderr.contains("registry-pw-4e1d"));
}

/// A hostile registry on loopback: it answers each request line with `answer(request line)`, for as
/// long as the test runs.
fn hostile_registry(answer: fn(&str, u16) -> String, elsewhere: u16) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut stream = stream;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                if stream.write_all(answer(&line, elsewhere).as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    port
}

/// A listener that only counts who connects to it: where a hostile registry would send credentials.
fn recorder() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (port, count)
}

#[test]
fn a_hostile_registry_cannot_send_the_credentials_or_the_upload_elsewhere() {
    let home = one_configmap_project("hostile");
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let push = |port: u16| {
        let auth = base64::engine::general_purpose::STANDARD.encode("ci-bot:canary-registry-pw");
        std::fs::write(
            docker.join("config.json"),
            format!("{{\"auths\": {{\"127.0.0.1:{port}\": {{\"auth\": \"{auth}\"}}}}}}"),
        )
        .unwrap();
        let mut command = home.kdeploy();
        command
            .env("DOCKER_CONFIG", &docker)
            .args(["push", &format!("oci://127.0.0.1:{port}/app:v1"), "--plain-http"]);
        run(&mut command)
    };

    // A token realm on another host over plain HTTP: no credentials go there.
    let (elsewhere, contacted) = recorder();
    let registry = hostile_registry(
        |_, elsewhere| {
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://localhost:{elsewhere}/token\",service=\"x\"\r\nContent-Length: 0\r\n\r\n"
            )
        },
        elsewhere,
    );
    let out = push(registry);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no credentials are sent there"), "{}", out.stderr);
    assert!(!out.stderr.contains("canary-registry-pw"), "{}", out.stderr);
    assert_eq!(contacted.load(std::sync::atomic::Ordering::SeqCst), 0);

    // An upload sent to another address: refused before a byte goes there.
    let (elsewhere, contacted) = recorder();
    let registry = hostile_registry(
        |line, elsewhere| {
            if line.starts_with("POST ") {
                format!(
                    "HTTP/1.1 202 Accepted\r\nLocation: http://localhost:{elsewhere}/steal\r\nContent-Length: 0\r\n\r\n"
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
            }
        },
        elsewhere,
    );
    let out = push(registry);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("points elsewhere"), "{}", out.stderr);
    assert_eq!(contacted.load(std::sync::atomic::Ordering::SeqCst), 0);
}
