//! Shared helpers for the integration tests: running the real `kdeploy` binary, the pinned kubectl, and
//! the shared local control plane (one per test run, each test in its own namespace).
#![allow(dead_code)] // each test binary uses a different subset

pub mod serve;
pub mod stores;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The kdeploy binary under test, with a predictable environment.
pub fn kdeploy() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kdeploy"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("KDEPLOY_") || name == "KUBECONFIG" || is_store_credential(&name) {
            command.env_remove(&*name);
        }
    }
    command.env("NO_COLOR", "1");
    command
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes kdeploy's, sops' and the secret stores' settings from a server process's environment: a
/// test's servers see only what the test gives them.
pub fn scrub_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("KDEPLOY_") || key.starts_with("SOPS_") || is_store_credential(&key) {
            command.env_remove(&*key);
        }
    }
}

/// The last `lines` lines of each log file in `dir`, each under its file's name: what a failed test
/// prints of the servers it ran.
pub fn log_tails(dir: &Path, lines: usize) -> String {
    let mut text = String::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        let content = std::fs::read_to_string(&path).unwrap_or_default();
        let all: Vec<&str> = content.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        text.push_str(&format!("--- {}\n{}\n", path.display(), tail.join("\n")));
    }
    text
}

/// Kills each server process a test started and waits for it, so none outlives the test.
pub fn stop_all(children: &mut [std::process::Child]) {
    for child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// OpenBao/Vault and AWS settings, which tests give explicitly or not at all.
pub fn is_store_credential(name: &str) -> bool {
    name.starts_with("VAULT_") || name.starts_with("BAO_") || name.starts_with("AWS_")
}

/// The result of running a command, with text output.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        self
    }
}

pub fn run(command: &mut Command) -> Run {
    run_with_stdin(command, None)
}

pub fn run_with_stdin(command: &mut Command, stdin: Option<&str>) -> Run {
    use std::io::Write;
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let text = text.to_owned();
        std::thread::spawn(move || pipe.write_all(text.as_bytes()));
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A binary of the pinned control plane (kubectl, kube-apiserver, ...): from $KDEPLOY_K8S_BIN as
/// scripts/test sets it, else built or reused by scripts/cluster/build.sh.
pub fn k8s_bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("KDEPLOY_K8S_BIN") {
            return PathBuf::from(dir);
        }
        let out = Command::new(repo_root().join("scripts/cluster/build.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run scripts/cluster/build.sh");
        assert!(
            out.status.success(),
            "building the test control plane failed (see above). It needs Go 1.26+ (https://go.dev/doc/install); \
             scripts/test installs everything else."
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    });
    dir.join(name)
}

/// The shared local control plane.
pub struct Cluster {
    pub kubeconfig: PathBuf,
}

/// Starts the local control plane once per test run, or uses the one scripts/test started
/// ($KDEPLOY_TEST_KUBECONFIG). The user's own KUBECONFIG is never used: these tests create and delete
/// namespaces.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        if let Some(kubeconfig) = std::env::var_os("KDEPLOY_TEST_KUBECONFIG") {
            return Cluster {
                kubeconfig: kubeconfig.into(),
            };
        }
        let out = Command::new(repo_root().join("scripts/dev-cluster"))
            .arg("up")
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run scripts/dev-cluster");
        assert!(out.status.success(), "scripts/dev-cluster up failed (see above)");
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let kubeconfig = line
            .trim()
            .strip_prefix("export KUBECONFIG=")
            .expect("dev-cluster prints export KUBECONFIG=...");
        Cluster {
            kubeconfig: kubeconfig.into(),
        }
    })
}

impl Cluster {
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(k8s_bin("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Runs kubectl and returns its stdout, failing the test if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        run(self.kubectl().args(args)).ok().stdout
    }

    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }

    /// Runs scripts/dev-cluster on this cluster (`user NAME`, `replica NAME start|kill`); its stdout.
    pub fn dev_cluster(&self, args: &[&str]) -> String {
        let state = self
            .kubeconfig
            .parent()
            .expect("the kubeconfig lives in the cluster's folder");
        let out = run(Command::new(repo_root().join("scripts/dev-cluster"))
            .args(args)
            .env("KDEPLOY_CLUSTER_DIR", state));
        assert_eq!(out.code, 0, "scripts/dev-cluster {args:?} failed:\n{}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// The API server's address (`127.0.0.1:PORT`), from the kubeconfig.
    pub fn api_address(&self) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: https://"))
            .expect("a server line in the kubeconfig");
        server.trim().to_owned()
    }

    /// A fresh namespace for one test, deleted when the guard drops.
    pub fn namespace(&'static self, prefix: &str) -> TestNamespace {
        let name = unique_name(prefix);
        self.kubectl_ok(&["create", "namespace", &name]);
        TestNamespace { name, cluster: self }
    }
}

pub struct TestNamespace {
    pub name: String,
    cluster: &'static Cluster,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = run(self
            .cluster
            .kubectl()
            .args(["delete", "namespace", &self.name, "--wait=false"]));
    }
}

/// A namespaced CRD `KIND` in `GROUP` with a status subresource and free-form spec and status.
pub fn crd(group: &str, kind: &str) -> String {
    let plural = format!("{}s", kind.to_lowercase());
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: {kind}, plural: {plural}, singular: {}}}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      subresources: {{status: {{}}}}\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n            status: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
        kind.to_lowercase()
    )
}

pub fn unique_group(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{nanos:x}.kdeploy.test")
}

/// Deletes the named objects of a cluster-scoped `kind` when the test ends, passed or not.
pub struct DeleteOnDrop(pub &'static Cluster, pub &'static str, pub Vec<String>);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let _ = run(self.0.kubectl().args(["delete", self.1, "--wait=false"]).args(&self.2));
    }
}

/// A named kdeploy project in a temporary folder, deployed into a namespace of its own.
pub struct TestProject {
    pub cluster: &'static Cluster,
    pub ns: TestNamespace,
    pub dir: tempfile::TempDir,
}

impl TestProject {
    /// `kdeploy.yaml` is `name: PREFIX` and `kdeploy_yaml`; the namespace is PREFIX-<random>.
    pub fn new(prefix: &str, kdeploy_yaml: &str) -> TestProject {
        let cluster = cluster();
        let project = TestProject {
            cluster,
            ns: cluster.namespace(prefix),
            dir: tempfile::tempdir().unwrap(),
        };
        project.write("kdeploy.yaml", &format!("name: {prefix}\n{kdeploy_yaml}"));
        project
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// kdeploy with `args`, in the project, against the test cluster and namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = kdeploy();
        c.current_dir(self.dir.path())
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .args(["-n", &self.ns.name]);
        c
    }

    /// The object as JSON, if it exists (`resource` as kubectl takes it: `job`, `widgets.example.com`).
    pub fn get(&self, resource: &str, name: &str) -> Option<serde_json::Value> {
        let out = run(self
            .cluster
            .kubectl()
            .args(["get", resource, name, "-n", &self.ns.name, "-o", "json"]));
        (out.code == 0).then(|| serde_json::from_str(&out.stdout).unwrap())
    }

    /// Merges `status` (JSON) into the object's status subresource, as its controller would.
    pub fn set_status(&self, resource: &str, name: &str, status: &str) {
        self.cluster.kubectl_ok(&[
            "patch",
            resource,
            name,
            "-n",
            &self.ns.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!("{{\"status\": {status}}}"),
        ]);
    }
}

/// Polls `check` until it returns true or `timeout` passes; returns whether it did.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Writes `files` (relative path, content) under a new temporary folder.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// Parses a YAML stream with a YAML 1.2 parser (serde-saphyr), independent of kdeploy's own reader.
pub fn yaml12_documents(text: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("not valid YAML 1.2: {e}\n{text}"))
}

/// A pinned Go tool from scripts/tools (sops, ...): from $KDEPLOY_TOOLS_BIN as scripts/test sets it,
/// else built or reused by scripts/tools/build.sh.
pub fn tool_bin(name: &str) -> PathBuf {
    tool_binary(name, name)
}

/// Binary `binary` of the pinned Go tool `tool` (toxiproxy's server is `toxiproxy-server`).
pub fn tool_binary(tool: &str, binary: &str) -> PathBuf {
    let name = binary;
    if let Some(dir) = std::env::var_os("KDEPLOY_TOOLS_BIN") {
        return PathBuf::from(dir).join(name);
    }
    let out = Command::new(repo_root().join("scripts/tools/build.sh"))
        .arg(tool)
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run scripts/tools/build.sh");
    assert!(
        out.status.success(),
        "building {name} failed (see above); it needs Go 1.26+"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(name)
}

/// A private environment for vault commands: its own HOME, no OS keyring, no SOPS_* variables, so
/// the tests never read or write the developer's identities.
pub struct VaultHome {
    pub dir: tempfile::TempDir,
}

impl VaultHome {
    pub fn new() -> VaultHome {
        VaultHome {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// kdeploy, run in this home's folder with this home's environment.
    pub fn kdeploy(&self) -> Command {
        let mut command = kdeploy();
        self.isolate(&mut command);
        command.current_dir(self.path());
        command
    }

    pub fn isolate(&self, command: &mut Command) {
        command
            .env("HOME", self.path())
            .env("KDEPLOY_NO_KEYRING", "1")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_RECIPIENTS");
        for (name, _) in std::env::vars() {
            if is_store_credential(&name) {
                command.env_remove(name);
            }
        }
    }

    /// Creates an identity file `name` here; returns its path and recipient.
    pub fn identity(&self, name: &str) -> (PathBuf, String) {
        let file = self.path().join(name);
        let out = run(self.kdeploy().args(["vault", "init", "--file"]).arg(&file)).ok();
        (file, out.stdout.trim().to_owned())
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `kdeploy vault set FILE KEY` in `dir` with `identity`, the value on stdin; it must succeed.
    pub fn vault_set(&self, dir: &Path, identity: &Path, file: &str, key: &str, value: &str) {
        let mut set = self.kdeploy();
        set.current_dir(dir)
            .env("SOPS_AGE_KEY_FILE", identity)
            .args(["vault", "set", file, key]);
        run_with_stdin(&mut set, Some(value)).ok();
    }

    /// The pinned sops CLI, with this home's environment and `identity` as its key file.
    pub fn sops(&self, identity: &Path) -> Command {
        let mut command = Command::new(tool_bin("sops"));
        self.isolate(&mut command);
        command.current_dir(self.path()).env("SOPS_AGE_KEY_FILE", identity);
        command
    }
}

/// The real-world corpus of upstream manifests, `../shared/realworld` beside the checkout (never
/// copied into the repository). Its absence fails the test that needs it: it is never skipped.
pub fn realworld() -> PathBuf {
    let dir = std::env::var_os("KDEPLOY_REALWORLD")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/realworld"));
    assert!(
        dir.join("README.md").is_file(),
        "the real-world corpus is not at {} (set KDEPLOY_REALWORLD to its folder)",
        dir.display()
    );
    dir
}

/// Shell lines that start gnome-keyring inside a `dbus-run-session`, unlocked with a test password
/// (or locked when `unlock` is false), and export its variables. They return only once the daemon
/// owns org.freedesktop.secrets: `--daemonize` can return earlier, and a client arriving in that
/// window makes D-Bus activate a second daemon, which reads the login keyring while the first is
/// still writing it and reports it locked.
pub fn keyring_prelude(unlock: bool) -> String {
    let start = if unlock {
        r#"eval "$(printf 'test-password' | gnome-keyring-daemon --daemonize --unlock --components=secrets | sed 's/^/export /')""#
    } else {
        r#"eval "$(gnome-keyring-daemon --daemonize --components=secrets < /dev/null | sed 's/^/export /')""#
    };
    let wait = r#"i=0
while ! dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; do
  i=$((i+1)); [ "$i" -lt 200 ] || { echo 'gnome-keyring never took org.freedesktop.secrets' >&2; exit 99; }
  sleep 0.05
done"#;
    format!("{start}\n{wait}")
}

/// `PREFIX-` and a suffix no other test run of the moment has.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{nanos:x}")
}

/// kdeploy with `args`, run in `dir` against the test cluster.
pub fn kdeploy_in(dir: &Path, args: &[&str]) -> Run {
    let mut command = kdeploy();
    command
        .current_dir(dir)
        .args(args)
        .arg("--kubeconfig")
        .arg(&cluster().kubeconfig);
    run(&mut command)
}
