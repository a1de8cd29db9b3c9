//! Loopback servers for source tests: a file server over http or https (rustls), the CNCF
//! distribution registry, and a certificate authority made with openssl whose certificate the
//! programs under test trust through `SSL_CERT_FILE`, as curl, Go (helm) and kdeploy do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA and a server certificate for 127.0.0.1 and localhost.
pub struct LoopbackTls {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl LoopbackTls {
    pub fn new() -> LoopbackTls {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kdeploy-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(path("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        LoopbackTls {
            ca: path("ca.crt"),
            cert: path("server.crt"),
            key: path("server.key"),
            dir,
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&self.key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }
}

/// Serves the files under a folder until dropped; counts the requests it answered.
pub struct FileServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub fn serve_files(root: &Path, tls: Option<&LoopbackTls>) -> FileServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = tls.map(LoopbackTls::server_config);
    let scheme = if config.is_some() { "https" } else { "http" };
    let requests = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (counter, stopping, root) = (requests.clone(), stop.clone(), root.to_path_buf());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            let (config, root, counter) = (config.clone(), root.clone(), counter.clone());
            std::thread::spawn(move || match config {
                Some(config) => {
                    let Ok(connection) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(connection, stream);
                    if answer(&mut tls, &root, &counter).is_ok() {
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                }
                None => {
                    let mut stream = stream;
                    let _ = answer(&mut stream, &root, &counter);
                }
            });
        }
    });
    FileServer {
        url: format!("{scheme}://127.0.0.1:{port}"),
        requests,
        stop,
        port,
    }
}

fn answer(stream: &mut (impl Read + Write), root: &Path, counter: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut *stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    drop(reader);
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path).trim_start_matches('/');
    let file = root.join(path);
    counter.fetch_add(1, Ordering::SeqCst);
    let response = match (path.contains(".."), std::fs::read(&file)) {
        (false, Ok(body)) => {
            let mut head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            head.extend(body);
            head
        }
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    stream.write_all(&response)?;
    stream.flush()
}

/// The CNCF distribution registry on a free loopback port, over TLS or plain HTTP; stopped when
/// dropped. Its storage is `storage` (blobs under `data/`), for tests that look inside.
pub struct Registry {
    child: Child,
    pub address: String,
    pub storage: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_registry(tls: Option<&LoopbackTls>) -> Registry {
    start_registry_with(tls, "")
}

/// A registry as [`start_registry`] starts it, with `extra` added to its configuration (an `auth:`
/// section, say).
pub fn start_registry_with(tls: Option<&LoopbackTls>, extra: &str) -> Registry {
    let storage = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = storage.path().join("config.yml");
    let tls_config = tls.map_or_else(String::new, |tls| {
        format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            tls.cert.display(),
            tls.key.display()
        )
    });
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_config}{extra}",
            storage.path().join("data").display(),
        ),
    )
    .unwrap();
    let child = Command::new(super::tool_bin("registry"))
        .args(["serve"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry {
        child,
        address: format!("127.0.0.1:{port}"),
        storage,
    };
    assert!(
        super::wait_until(Duration::from_secs(20), || TcpStream::connect(&registry.address)
            .is_ok()),
        "the registry did not start"
    );
    registry
}
