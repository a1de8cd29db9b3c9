//! Faults, against the real control plane: latency, connection resets and stalls injected by toxiproxy
//! between kdeploy and the API server; an API server killed in the middle of an apply; real 429s from
//! API Priority and Fairness; a prune interrupted half-way. In each, kdeploy retries what is safe to
//! retry, says what was and was not applied, a re-run converges, and nothing outside the project's set
//! is ever pruned.
//!
//! Tests that break a server use their own: a toxiproxy proxy, or a second kube-apiserver on the same
//! etcd (`scripts/dev-cluster replica`), never the API server the other tests share.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{Cluster, Run, TestNamespace, cluster, free_port, kdeploy, run, tool_binary, wait_until};

/// A toxiproxy server for this test binary. It lives in a static, which Rust never drops, so its end is
/// tied to a pipe instead: a shell waits for the pipe to close (when this process ends, however it
/// ends) and then stops the server.
struct Toxiproxy {
    api: String,
    _lifeline: std::process::ChildStdin,
    /// Never waited for: the shell ends after this process does, and init reaps it.
    _server: Child,
}

fn toxiproxy() -> &'static Toxiproxy {
    static SERVER: OnceLock<Toxiproxy> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = free_port();
        let mut child: Child = Command::new("sh")
            .args([
                "-c",
                r#""$0" -host 127.0.0.1 -port "$1" & server=$!; cat > /dev/null; kill "$server""#,
            ])
            .arg(tool_binary("toxiproxy", "toxiproxy-server"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start toxiproxy-server");
        let api = format!("127.0.0.1:{port}");
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect(&api).is_ok()),
            "toxiproxy-server did not start"
        );
        Toxiproxy {
            api,
            _lifeline: child.stdin.take().expect("a piped stdin"),
            _server: child,
        }
    })
}

/// One HTTP/1.1 request to toxiproxy's API; the status and body.
fn toxiproxy_call(method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&toxiproxy().api).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: toxiproxy\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// A proxy in front of the shared API server, and a kubeconfig that goes through it.
struct Proxy {
    name: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn new(cluster: &Cluster, name: &str) -> Proxy {
        let (status, body) = toxiproxy_call(
            "POST",
            "/proxies",
            &format!(
                r#"{{"name": "{name}", "listen": "127.0.0.1:0", "upstream": "{}", "enabled": true}}"#,
                cluster.api_address()
            ),
        );
        assert!(status == 201, "creating proxy {name}: {status} {body}");
        let listen: serde_json::Value = serde_json::from_str(&body).unwrap();
        let listen = listen["listen"].as_str().unwrap().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("proxied.kubeconfig");
        let text = std::fs::read_to_string(&cluster.kubeconfig)
            .unwrap()
            .replace(&cluster.api_address(), &listen);
        std::fs::write(&kubeconfig, text).unwrap();
        Proxy {
            name: name.to_owned(),
            kubeconfig,
            _dir: dir,
        }
    }

    /// Adds a toxic (`type`, its attributes as JSON, the direction, the share of connections it hits).
    fn toxic(&self, name: &str, kind: &str, attributes: &str, stream: &str, toxicity: f32) {
        let (status, body) = toxiproxy_call(
            "POST",
            &format!("/proxies/{}/toxics", self.name),
            &format!(
                r#"{{"name": "{name}", "type": "{kind}", "stream": "{stream}", "toxicity": {toxicity}, "attributes": {attributes}}}"#
            ),
        );
        assert!(status == 200, "adding toxic {name}: {status} {body}");
    }

    fn remove_toxic(&self, name: &str) {
        let (status, body) = toxiproxy_call("DELETE", &format!("/proxies/{}/toxics/{name}", self.name), "");
        assert!(status == 204, "removing toxic {name}: {status} {body}");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        toxiproxy_call("DELETE", &format!("/proxies/{}", self.name), "");
    }
}

/// A project folder of `count` ConfigMaps in `namespace`, named `name`.
fn project_of_config_maps(name: &str, namespace: &str, count: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_config_maps(dir.path(), name, namespace, 0..count);
    dir
}

fn write_config_maps(dir: &Path, name: &str, namespace: &str, range: std::ops::Range<usize>) {
    std::fs::write(
        dir.join("kdeploy.yaml"),
        format!("name: {name}\nnamespace: {namespace}\n"),
    )
    .unwrap();
    let manifests = dir.join("manifests");
    let _ = std::fs::remove_dir_all(&manifests);
    std::fs::create_dir_all(&manifests).unwrap();
    let mut text = String::new();
    for i in range {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\ndata:\n  index: \"{i}\"\n"
        ));
    }
    std::fs::write(manifests.join("config-maps.yaml"), text).unwrap();
}

fn kdeploy_in(dir: &Path, kubeconfig: &Path, command: &str, extra: &[&str]) -> Command {
    let mut c = kdeploy();
    c.current_dir(dir)
        .arg(command)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra);
    if command == "apply" {
        c.args(["--yes", "--no-wait"]);
    }
    c
}

fn count_config_maps(cluster: &Cluster, namespace: &str, prefix: &str) -> usize {
    cluster
        .kubectl_ok(&["get", "configmaps", "-n", namespace, "-o", "name"])
        .lines()
        .filter(|l| l.starts_with(&format!("configmap/{prefix}")))
        .count()
}

/// A failed apply says what was applied and what was not, and how to converge.
fn assert_reports_partial_apply(out: &Run) {
    assert_eq!(out.code, 2, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let said = out.stderr.contains("applied before the failure") && out.stderr.contains("not applied:")
        || out.stderr.contains("cannot reach the API server")
        || out.stderr.contains("nothing was applied");
    assert!(said, "the failure does not say what was applied:\n{}", out.stderr);
}

#[test]
fn latency_and_connection_resets_are_retried_and_a_rerun_converges() {
    let cluster = cluster();
    let ns = cluster.namespace("fault-reset");
    let proxy = Proxy::new(cluster, "resets");
    proxy.toxic("slow", "latency", r#"{"latency": 40, "jitter": 10}"#, "downstream", 1.0);
    // A third of new connections are reset at once, before TLS completes.
    proxy.toxic("resets", "reset_peer", r#"{"timeout": 0}"#, "upstream", 0.33);
    let dir = project_of_config_maps("fault-reset", &ns.name, 60);
    let first = run(&mut kdeploy_in(dir.path(), &proxy.kubeconfig, "apply", &[]));
    if first.code != 0 {
        assert_reports_partial_apply(&first);
    }
    proxy.remove_toxic("resets");
    run(&mut kdeploy_in(dir.path(), &proxy.kubeconfig, "apply", &[])).ok();
    assert_eq!(count_config_maps(cluster, &ns.name, "cm-"), 60);
    let diff = run(&mut kdeploy_in(dir.path(), &proxy.kubeconfig, "diff", &[]));
    assert_eq!(diff.code, 0, "after convergence, nothing to change:\n{}", diff.stdout);
}

#[test]
fn connections_cut_mid_response_are_retried() {
    let cluster = cluster();
    let ns = cluster.namespace("fault-cut");
    let proxy = Proxy::new(cluster, "cuts");
    // Every connection is closed after 40 kB from the server: responses in flight are cut in the middle.
    proxy.toxic("cut", "limit_data", r#"{"bytes": 40000}"#, "downstream", 1.0);
    let dir = project_of_config_maps("fault-cut", &ns.name, 80);
    let out = run(&mut kdeploy_in(dir.path(), &proxy.kubeconfig, "apply", &[]));
    if out.code != 0 {
        assert_reports_partial_apply(&out);
        proxy.remove_toxic("cut");
        run(&mut kdeploy_in(dir.path(), &proxy.kubeconfig, "apply", &[])).ok();
    }
    assert_eq!(count_config_maps(cluster, &ns.name, "cm-"), 80);
}

#[test]
fn a_server_that_stalls_is_timed_out_with_a_clear_error_and_nothing_is_applied() {
    let cluster = cluster();
    let ns = cluster.namespace("fault-stall");
    let proxy = Proxy::new(cluster, "stall");
    let dir = project_of_config_maps("fault-stall", &ns.name, 5);
    // The server accepts, then nothing comes back: without a timeout this would hang for ever.
    proxy.toxic("stall", "timeout", r#"{"timeout": 0}"#, "downstream", 1.0);
    let started = Instant::now();
    let out = run(&mut kdeploy_in(
        dir.path(),
        &proxy.kubeconfig,
        "apply",
        &["--request-timeout", "1s"],
    ));
    let took = started.elapsed();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot reach the API server") && out.stderr.contains("127.0.0.1"),
        "{}",
        out.stderr
    );
    assert!(took < Duration::from_secs(60), "gave up only after {took:?}");
    assert_eq!(count_config_maps(cluster, &ns.name, "cm-"), 0, "nothing was applied");
    proxy.remove_toxic("stall");
    run(&mut kdeploy_in(dir.path(), &proxy.kubeconfig, "apply", &[])).ok();
    assert_eq!(count_config_maps(cluster, &ns.name, "cm-"), 5);
}

#[test]
fn an_api_server_killed_mid_apply_is_reported_and_a_rerun_converges_without_touching_others() {
    let cluster = cluster();
    let ns: TestNamespace = cluster.namespace("fault-kill");
    // Objects that are not the project's: one made by kubectl, one by another kdeploy project.
    cluster.kubectl_ok(&["create", "configmap", "outsider", "-n", &ns.name, "--from-literal=a=b"]);
    let other = project_of_config_maps("fault-kill-other", &ns.name, 0);
    std::fs::write(
        other.path().join("manifests/other.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other-project}\ndata: {a: b}\n",
    )
    .unwrap();
    run(&mut kdeploy_in(other.path(), &cluster.kubeconfig, "apply", &[])).ok();

    let replica = PathBuf::from(cluster.dev_cluster(&["replica", "faults", "start"]));
    let dir = project_of_config_maps("fault-kill", &ns.name, 500);
    // Output to files: a pipe nobody reads until the end would fill and stall the apply.
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut apply = kdeploy_in(dir.path(), &replica, "apply", &["--concurrency", "4"])
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // Kill the server once part of the set is in (the dry runs are over by then).
    let started = wait_until(Duration::from_secs(120), || {
        count_config_maps(cluster, &ns.name, "cm-") >= 60
    });
    cluster.dev_cluster(&["replica", "faults", "kill"]);
    let status = apply.wait().unwrap();
    let out = Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&stdout).unwrap(),
        stderr: std::fs::read_to_string(&stderr).unwrap(),
    };
    assert!(started, "the apply never got going:\n{}", out.stderr);
    let applied = count_config_maps(cluster, &ns.name, "cm-");
    assert!(
        applied < 500,
        "the apply finished before the kill; the test proves nothing"
    );
    assert_reports_partial_apply(&out);

    cluster.dev_cluster(&["replica", "faults", "start"]);
    run(&mut kdeploy_in(dir.path(), &replica, "apply", &[])).ok();
    assert_eq!(count_config_maps(cluster, &ns.name, "cm-"), 500);
    // A smaller set prunes exactly what left it, and nothing else.
    write_config_maps(dir.path(), "fault-kill", &ns.name, 0..400);
    let pruned = run(&mut kdeploy_in(dir.path(), &replica, "apply", &[])).ok();
    assert!(pruned.stdout.contains("100 pruned"), "{}", pruned.stdout);
    assert_eq!(count_config_maps(cluster, &ns.name, "cm-"), 400);
    for survivor in ["outsider", "other-project"] {
        assert_eq!(
            count_config_maps(cluster, &ns.name, survivor),
            1,
            "{survivor} was touched"
        );
    }
    cluster.dev_cluster(&["replica", "faults", "kill"]);
}

/// API Priority and Fairness objects that give one user a tiny share and reject the rest at once.
fn throttle_user(user: &str) -> String {
    format!(
        "apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {{name: {user}}}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    limitResponse: {{type: Reject}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {{name: {user}}}
spec:
  priorityLevelConfiguration: {{name: {user}}}
  matchingPrecedence: 100
  rules:
  - subjects: [{{kind: User, user: {{name: {user}}}}}]
    resourceRules: [{{verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['*'], clusterScope: true}}]
    nonResourceRules: [{{verbs: ['*'], nonResourceURLs: ['*']}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {user}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: User, name: {user}, apiGroup: rbac.authorization.k8s.io}}]
",
    )
}

/// How many requests APF has rejected for a priority level so far.
fn rejected(cluster: &Cluster, level: &str) -> u64 {
    let metrics = cluster.kubectl_ok(&["get", "--raw", "/metrics"]);
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_flowcontrol_rejected_requests_total{"))
        .filter(|l| l.contains(&format!("priority_level=\"{level}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn throttling_by_priority_and_fairness_is_waited_out_and_no_object_is_lost() {
    let cluster = cluster();
    let ns = cluster.namespace("fault-apf");
    let user = "kdeploy-fault-throttled";
    let objects = throttle_user(user);
    support::run_with_stdin(cluster.kubectl().args(["apply", "-f", "-"]), Some(&objects)).ok();
    let kubeconfig = PathBuf::from(cluster.dev_cluster(&["user", user]));
    // RBAC and APF configuration take a moment to reach the request path.
    assert!(wait_until(Duration::from_secs(30), || {
        run(Command::new(support::k8s_bin("kubectl"))
            .args(["--kubeconfig"])
            .arg(&kubeconfig)
            .args(["get", "configmaps", "-n", &ns.name]))
        .code
            == 0
    }));
    let before = rejected(cluster, user);
    let dir = project_of_config_maps("fault-apf", &ns.name, 500);
    let out = run(&mut kdeploy_in(
        dir.path(),
        &kubeconfig,
        "apply",
        &["--concurrency", "32"],
    ));
    let after = rejected(cluster, user);
    support::run_with_stdin(cluster.kubectl().args(["delete", "-f", "-"]), Some(&objects));
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert!(
        after > before,
        "the API server rejected none of kdeploy's requests; the test proves nothing"
    );
    assert_eq!(count_config_maps(cluster, &ns.name, "cm-"), 500, "every object arrived");
}

#[test]
fn a_prune_interrupted_half_way_is_finished_by_the_next_apply() {
    let cluster = cluster();
    let ns = cluster.namespace("fault-prune");
    let policy = format!("kdeploy-fault-prune-{}", ns.name);
    // An admission policy that refuses to delete ConfigMaps labelled block-delete, in this namespace.
    let admission = format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {policy}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{{apiGroups: [''], apiVersions: [v1], operations: [DELETE], resources: [configmaps]}}]
  validations:
  - expression: \"!has(oldObject.metadata.labels) || !('block-delete' in oldObject.metadata.labels)\"
    message: deleting this ConfigMap is blocked for the test
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {policy}}}
spec:
  policyName: {policy}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {}}}
",
        ns.name
    );
    let dir = project_of_config_maps("fault-prune", &ns.name, 20);
    run(&mut kdeploy_in(dir.path(), &cluster.kubeconfig, "apply", &[])).ok();
    support::run_with_stdin(cluster.kubectl().args(["apply", "-f", "-"]), Some(&admission)).ok();
    cluster.kubectl_ok(&["label", "configmap", "cm-0010", "block-delete=true", "-n", &ns.name]);
    // Admission policies take effect shortly after they are created.
    assert!(wait_until(Duration::from_secs(30), || {
        let probe = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: probe, namespace: {}, labels: {{block-delete: 'true'}}}}\n",
            ns.name
        );
        support::run_with_stdin(cluster.kubectl().args(["apply", "-f", "-"]), Some(&probe)).ok();
        run(cluster.kubectl().args(["delete", "configmap", "probe", "-n", &ns.name])).code != 0
    }));

    // Only cm-0000..cm-0004 stay: fifteen leave, and the prune stops at cm-0010.
    write_config_maps(dir.path(), "fault-prune", &ns.name, 0..5);
    let out = run(&mut kdeploy_in(dir.path(), &cluster.kubeconfig, "apply", &[]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("ConfigMap/cm-0010") && out.stderr.contains("blocked for the test"),
        "the failure names the object and the reason:\n{}",
        out.stderr
    );
    let remaining = count_config_maps(cluster, &ns.name, "cm-");
    assert!(
        remaining > 5 && remaining < 20,
        "the prune stopped half-way: {remaining} left"
    );
    let parent = cluster.kubectl_ok(&[
        "get",
        "secret",
        "kdeploy-fault-prune",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.metadata.annotations.applyset\\.kubernetes\\.io/contains-group-kinds}",
    ]);
    assert_eq!(parent, "ConfigMap", "the parent still lists the kind of what remains");

    support::run_with_stdin(cluster.kubectl().args(["delete", "-f", "-"]), Some(&admission)).ok();
    assert!(wait_until(Duration::from_secs(30), || {
        let out = run(&mut kdeploy_in(dir.path(), &cluster.kubeconfig, "apply", &[]));
        out.code == 0
    }));
    assert_eq!(
        count_config_maps(cluster, &ns.name, "cm-"),
        5,
        "the next apply finished the prune"
    );
    assert_eq!(
        count_config_maps(cluster, &ns.name, "probe"),
        1,
        "the probe is not the project's"
    );
}
