//! What a repository may make kdeploy do. Every stage asks this module; none decides on its own.
//!
//! kdeploy runs where one process holds keys to many teams' secrets (Argo CD's repo-server sidecar)
//! and where pull requests from strangers are diffed (CI). There the repository is untrusted input,
//! and [`Policy::untrusted`] is set: `kdeploy argocd …` always, `render`/`diff`/`values` with
//! `--untrusted` or `KDEPLOY_UNTRUSTED=1`. This module owns:
//!
//! - **paths**: in untrusted mode, every path a repository names resolves (symlinks followed) inside
//!   [`Policy::root`], and only regular files are read ([`read_file`], [`confine`]); in every mode a
//!   file is capped before it is read, and folder walks stop at symlink loops ([`Walk`]);
//! - **the environment**: the credentials kdeploy itself reads never reach templates, env files, Helm
//!   values or the programs it runs ([`is_credential`], [`visible_env`], [`child_env_removals`]); in
//!   untrusted mode templates see only the repository's env files and Argo CD's variables;
//! - **addresses**: in untrusted mode a Vault token goes only to the operator's Vault address (or its
//!   allowlist), and downloads never reach loopback, link-local or private addresses
//!   ([`check_vault_address`], [`check_host`]); AWS regions are checked in every mode ([`check_aws_region`]);
//! - **vault files bound to a repository**: under Argo CD a bound file opens only for its own
//!   repository's Applications ([`check_binding`]);
//! - **limits**: the render's deadline ([`watch`]), the heap limit ([`Bounded`]), the template budget
//!   ([`Limits`]), the deadline of every program run ([`Limits::tool_timeout`]);
//! - **masking**: every secret and credential kdeploy learns is masked in whatever it prints
//!   ([`mask`], [`redact`]), and errors quote only a short excerpt of a line ([`excerpt`]).

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// How far a repository is trusted, and the limits of one run.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The repository is untrusted input (Argo CD, pull requests from forks).
    pub untrusted: bool,
    /// The repository's folder (canonical): in untrusted mode every path it names must stay inside,
    /// and in every mode errors quote no file outside it.
    pub root: Option<PathBuf>,
    /// Vault/OpenBao addresses a token may be sent to besides `VAULT_ADDR`/`BAO_ADDR`
    /// (`KDEPLOY_VAULT_ADDRESSES`, comma-separated), in untrusted mode.
    pub vault_addresses: Vec<String>,
    /// Downloads may reach loopback, link-local and private addresses (`KDEPLOY_ALLOW_PRIVATE_URLS=1`).
    pub allow_private_urls: bool,
    pub limits: Limits,
}

/// The bounds of one run; hostile input fails inside them with a clear error.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The whole render (values, secrets, every source): `--render-timeout`, `KDEPLOY_RENDER_TIMEOUT`.
    pub render_timeout: Duration,
    /// The most heap the process may hold (`KDEPLOY_MAX_MEMORY`, MiB; 0 for no limit, the default
    /// when trusted), enforced by [`Bounded`].
    pub max_memory: u64,
    /// How many `{{ expressions }}` all templates may evaluate together.
    pub max_expressions: u64,
    /// How much text all templates may render together.
    pub max_output_bytes: u64,
    /// How long one program kdeploy runs (helm, kustomize) may take.
    pub tool_timeout: Duration,
    /// The largest template, env file or project file read.
    pub max_text_file_bytes: u64,
}

const MIB: u64 = 1024 * 1024;

impl Limits {
    fn for_mode(untrusted: bool) -> Limits {
        Limits {
            render_timeout: Duration::from_secs(if untrusted { 60 } else { 600 }),
            max_memory: if untrusted { 512 * MIB } else { 0 },
            max_expressions: if untrusted { 5_000_000 } else { 100_000_000 },
            max_output_bytes: if untrusted { 256 * MIB } else { 2048 * MIB },
            tool_timeout: Duration::from_secs(if untrusted { 60 } else { 600 }),
            max_text_file_bytes: 16 * MIB,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::for_mode(false)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "{what} {} is outside the repository ({}): in untrusted mode kdeploy reads only files inside it",
        path.display(),
        root.display()
    )]
    OutsideRoot { what: String, path: PathBuf, root: PathBuf },
    #[error("{what} {} is not a regular file: kdeploy reads only regular files", path.display())]
    NotRegularFile { what: String, path: PathBuf },
    #[error("{what} {} is {size} bytes, over the limit of {limit} bytes", path.display())]
    TooLarge {
        what: String,
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("cannot read {what} {}: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

static POLICY: OnceLock<Policy> = OnceLock::new();

/// Sets the policy of this run, once, before anything reads a repository; also masks the values of
/// the credentials in the environment from then on.
pub fn set(policy: Policy) {
    if POLICY.set(policy).is_ok() {
        set_memory_limit(self::policy().limits.max_memory);
    }
    mask(
        std::env::vars()
            .filter(|(name, _)| is_secret_valued(name))
            .map(|(_, value)| value),
    );
}

/// The credential variables whose values are secrets (not addresses, regions or file paths): masked
/// wherever kdeploy prints.
fn is_secret_valued(name: &str) -> bool {
    matches!(
        name,
        "SOPS_AGE_KEY"
            | "VAULT_TOKEN"
            | "BAO_TOKEN"
            | "AWS_ACCESS_KEY_ID"
            | "AWS_SECRET_ACCESS_KEY"
            | "AWS_SESSION_TOKEN"
            | "AWS_SECURITY_TOKEN"
            | "AWS_CONTAINER_AUTHORIZATION_TOKEN"
    )
}

/// The policy in force: trusted with the default limits until [`set`] says otherwise.
pub fn policy() -> &'static Policy {
    POLICY.get_or_init(Policy::default)
}

pub fn untrusted() -> bool {
    policy().untrusted
}

/// The policy a command asked for: `untrusted` from its flag (or `KDEPLOY_UNTRUSTED=1`), the root the
/// repository must stay in, and the operator's settings from the environment.
pub fn policy_from_env(untrusted: bool, root: Option<&Path>, render_timeout: Option<Duration>) -> Policy {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let untrusted = untrusted || env("KDEPLOY_UNTRUSTED").is_some_and(|v| v != "0" && v != "false");
    let mut limits = Limits::for_mode(untrusted);
    if let Some(timeout) = render_timeout.or_else(|| {
        env("KDEPLOY_RENDER_TIMEOUT")
            .and_then(|v| v.trim_end_matches('s').parse::<u64>().ok())
            .map(Duration::from_secs)
    }) {
        limits.render_timeout = timeout;
    }
    if let Some(mib) = env("KDEPLOY_MAX_MEMORY").and_then(|v| v.parse::<u64>().ok()) {
        limits.max_memory = mib * MIB;
    }
    let root = env("KDEPLOY_UNTRUSTED_ROOT")
        .map(PathBuf::from)
        .or_else(|| root.map(Path::to_path_buf))
        .or_else(|| std::env::current_dir().ok())
        .and_then(|r| r.canonicalize().ok());
    Policy {
        untrusted,
        root,
        vault_addresses: env("KDEPLOY_VAULT_ADDRESSES")
            .map(|v| {
                v.split(',')
                    .map(|a| a.trim().trim_end_matches('/').to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        allow_private_urls: env("KDEPLOY_ALLOW_PRIVATE_URLS").is_some_and(|v| v != "0" && v != "false"),
        limits,
    }
}

/// The repository's root for a project in `dir`: the enclosing git work tree, else `dir` itself.
pub fn repository_root(dir: &Path) -> PathBuf {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map_or_else(|| dir.clone(), Path::to_path_buf)
}

// ---------------------------------------------------------------------------------------------
// Paths

/// `path` resolved, symlinks followed: in untrusted mode it must lie inside the root, or the error
/// names `what` it was. In trusted mode it is returned as given.
pub fn confine(path: &Path, what: &str) -> Result<PathBuf, TrustError> {
    let policy = policy();
    match (&policy.root, policy.untrusted) {
        (Some(root), true) => confine_to(root, path, what),
        _ => Ok(path.to_path_buf()),
    }
}

/// `path` if it resolves (symlinks followed) inside `root`, which is canonical.
pub fn confine_to(root: &Path, path: &Path, what: &str) -> Result<PathBuf, TrustError> {
    if resolves_inside(root, path) {
        Ok(path.to_path_buf())
    } else {
        Err(TrustError::OutsideRoot {
            what: what.to_owned(),
            path: path.to_path_buf(),
            root: root.to_path_buf(),
        })
    }
}

fn resolves_inside(root: &Path, path: &Path) -> bool {
    if let Ok(resolved) = path.canonicalize() {
        return resolved.starts_with(root);
    }
    // A path that does not exist yet is judged by its nearest existing folder (what is missing is
    // reported by whoever reads it); `..` after a missing part cannot be judged, so it is refused.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    loop {
        let Some(parent) = existing.parent() else { return false };
        existing = parent;
        if let Ok(resolved) = existing.canonicalize() {
            let rest = absolute.strip_prefix(existing).unwrap_or(Path::new(""));
            let climbs = rest.components().any(|c| c == std::path::Component::ParentDir);
            return !climbs && resolved.starts_with(root);
        }
    }
}

/// Whether a search upward (`source_up`, `.sops.yaml`) may look in `dir`: always when trusted; in
/// untrusted mode only inside the root.
pub fn may_search(dir: &Path) -> bool {
    let policy = policy();
    match (&policy.root, policy.untrusted) {
        (Some(root), true) => dir.canonicalize().is_ok_and(|d| d.starts_with(root)),
        _ => true,
    }
}

/// Whether a program may be taken from the PATH entry `dir`: always when trusted; in untrusted mode
/// only an absolute folder outside the checkout.
pub fn may_run_from(dir: &Path) -> bool {
    let policy = policy();
    match (&policy.root, policy.untrusted) {
        (Some(root), true) => dir.is_absolute() && !dir.canonicalize().is_ok_and(|d| d.starts_with(root)),
        _ => true,
    }
}

/// Whether an error may quote a line of `path`: only a file inside the repository (or, with no
/// repository known, any file).
pub fn may_quote(path: &Path) -> bool {
    match &policy().root {
        Some(root) => resolves_inside(root, path),
        None => true,
    }
}

/// Reads a file a repository names: confined (untrusted mode), a regular file, at most `limit` bytes
/// (checked before anything is allocated, and again while reading).
pub fn read_file(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>, TrustError> {
    confine(path, what)?;
    let io = |source| TrustError::Io {
        what: what.to_owned(),
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(TrustError::NotRegularFile {
            what: what.to_owned(),
            path: path.to_path_buf(),
        });
    }
    let too_large = |size| TrustError::TooLarge {
        what: what.to_owned(),
        path: path.to_path_buf(),
        size,
        limit,
    };
    if metadata.len() > limit {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_file`] as UTF-8 text.
pub fn read_text(path: &Path, what: &str, limit: u64) -> Result<String, TrustError> {
    let bytes = read_file(path, what, limit)?;
    String::from_utf8(bytes).map_err(|_| TrustError::Io {
        what: what.to_owned(),
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// A folder walk's memory of where it has been: a folder reached twice (a symlink loop, or two links
/// to one folder) is walked once.
#[derive(Default)]
pub struct Walk {
    seen: HashSet<PathBuf>,
}

impl Walk {
    /// Whether to enter `dir`: confined (untrusted mode) and not entered before.
    pub fn enter(&mut self, dir: &Path, what: &str) -> Result<bool, TrustError> {
        confine(dir, what)?;
        let canonical = dir.canonicalize().map_err(|source| TrustError::Io {
            what: what.to_owned(),
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(self.seen.insert(canonical))
    }
}

// ---------------------------------------------------------------------------------------------
// The environment

/// Variables that hold, or point at, the credentials kdeploy itself reads.
const CREDENTIALS: &[&str] = &[
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
];

/// Whether `name` is a credential kdeploy reads (or one of OpenBao/Vault's variables, all of which
/// kdeploy's clients read): templates, env files and programs never see these.
pub fn is_credential(name: &str) -> bool {
    CREDENTIALS.contains(&name)
        || name.starts_with("VAULT_")
        || name.starts_with("BAO_")
        || name.starts_with("AWS_CONTAINER_AUTHORIZATION_TOKEN")
}

/// Why a template or env file may not read `name`, if it may not.
pub fn env_refusal(name: &str) -> Option<String> {
    if is_credential(name) {
        return Some(format!(
            "`{name}` is a credential kdeploy reads itself, so templates and env files never see it"
        ));
    }
    if untrusted() && !is_argocd_variable(name) {
        return Some(format!(
            "`{name}` is not given to templates in untrusted mode, which see only the repository's env files and Argo CD's \
             ARGOCD_APP_*, ARGOCD_ENV_*, KUBE_VERSION and KUBE_API_VERSIONS"
        ));
    }
    None
}

/// The variables Argo CD documents for config management plugins.
pub fn is_argocd_variable(name: &str) -> bool {
    name.starts_with("ARGOCD_APP_")
        || name.starts_with("ARGOCD_ENV_")
        || name == "KUBE_VERSION"
        || name == "KUBE_API_VERSIONS"
}

/// What of the process environment templates and env files may see.
pub fn visible_env(process: BTreeMap<String, String>) -> BTreeMap<String, String> {
    process
        .into_iter()
        .filter(|(name, _)| env_refusal(name).is_none())
        .collect()
}

/// The credential variables set in this process, to be removed from a program's environment.
pub fn child_env_removals() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| is_credential(name))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Vault files bound to a repository

/// In untrusted mode under Argo CD (`ARGOCD_APP_SOURCE_REPO_URL` set), a vault file bound to
/// repositories (`kdeploy vault bind`) opens only for an Application of one of them, and with
/// `KDEPLOY_REQUIRE_BINDING=1` an unbound file does not open at all: a team's file copied into another
/// repository is then refused, though the sidecar's identity could decrypt it.
pub fn check_binding(file: &Path, bound: Option<&[String]>) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(repository) = env("ARGOCD_APP_SOURCE_REPO_URL").filter(|_| untrusted()) else {
        return Ok(());
    };
    match bound {
        Some(bound) if bound.iter().any(|b| same_repository(b, &repository)) => Ok(()),
        Some(bound) => Err(format!(
            "the file is bound to {} (kdeploy vault bind), not to this Application's repository {repository}",
            bound.join(", ")
        )),
        None if env("KDEPLOY_REQUIRE_BINDING").is_some_and(|v| v != "0" && v != "false") => Err(format!(
            "the file is bound to no repository, and this sidecar opens only bound vault files (KDEPLOY_REQUIRE_BINDING); \
             its owners bind it with `kdeploy vault bind {} --repo URL`",
            file.display()
        )),
        None => Ok(()),
    }
}

/// Whether two repository URLs name one repository: case of the host, a trailing `/` or `.git` aside.
pub fn same_repository(a: &str, b: &str) -> bool {
    let normal = |url: &str| {
        let url = url.trim().trim_end_matches('/');
        let url = url.strip_suffix(".git").unwrap_or(url);
        match url.split_once("://") {
            Some((scheme, rest)) => {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                format!("{}://{}/{path}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase())
            }
            None => url.to_owned(),
        }
    };
    normal(a) == normal(b)
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// In untrusted mode, a Vault/OpenBao token is sent only to the operator's address (`configured`,
/// from `VAULT_ADDR`/`BAO_ADDR`) or one on the operator's allowlist; never to one a file or a
/// reference names.
pub fn check_vault_address(address: &str, configured: Option<&str>) -> Result<(), String> {
    let policy = policy();
    if !policy.untrusted {
        return Ok(());
    }
    let address = address.trim_end_matches('/');
    let allowed = configured.map(|c| c.trim_end_matches('/')) == Some(address)
        || policy.vault_addresses.iter().any(|a| a == address);
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "untrusted mode sends the Vault token only to VAULT_ADDR/BAO_ADDR or an address in KDEPLOY_VAULT_ADDRESSES, \
             not to {address}, which the repository named"
        ))
    }
}

/// Whether an address is one a download must not reach: loopback, link-local (cloud metadata),
/// private, unspecified, multicast or otherwise not globally routed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// In untrusted mode (unless the operator allows private URLs), refuses a host that is, or resolves
/// to, an internal address.
pub fn check_host(host: &str, port: u16) -> Result<(), String> {
    let policy = policy();
    if !policy.untrusted || policy.allow_private_urls {
        return Ok(());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let refused = || {
        format!(
            "{host} is a loopback, link-local or private address: untrusted mode does not download from inside the network \
             (the operator may allow it with KDEPLOY_ALLOW_PRIVATE_URLS=1)"
        )
    };
    if bare.eq_ignore_ascii_case("localhost") || bare.to_ascii_lowercase().ends_with(".localhost") {
        return Err(refused());
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if is_internal(ip) { Err(refused()) } else { Ok(()) };
    }
    use std::net::ToSocketAddrs;
    let addresses = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    if addresses.into_iter().any(|a| is_internal(a.ip())) {
        return Err(refused());
    }
    Ok(())
}

/// An AWS region as AWS names them (`us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`),
/// checked before any URL is built from it.
pub fn check_aws_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts[0].len() >= 2
        && parts[0].len() <= 4
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit());
    if well_formed {
        Ok(())
    } else {
        let shown: String = region.chars().take(40).collect();
        Err(format!(
            "`{shown}` is not an AWS region (like us-east-1 or eu-central-2)"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

/// Guards a render: while the returned value lives, a watchdog ends the process with a clear error
/// (exit 2, nothing on stdout) once the render outlives [`Limits::render_timeout`]. Dropping it
/// disarms the watchdog.
pub fn watch(what: &'static str) -> Watchdog {
    let limits = policy().limits.clone();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = armed.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        while flag.load(std::sync::atomic::Ordering::Relaxed) {
            let elapsed = started.elapsed();
            if elapsed > limits.render_timeout {
                fail(&format!(
                    "the {what} took longer than {}s, its limit (--render-timeout or KDEPLOY_RENDER_TIMEOUT): \
                     a template or source loops, or something it waits for never answers",
                    limits.render_timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    Watchdog { armed }
}

/// Disarms the render's watchdog when dropped.
#[derive(Debug)]
pub struct Watchdog {
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.armed.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The heap limit in force (0: none), and the heap held since it was set.
static MEMORY_LIMIT: AtomicU64 = AtomicU64::new(0);
static HELD: AtomicI64 = AtomicI64::new(0);

fn set_memory_limit(bytes: u64) {
    HELD.store(0, Ordering::Relaxed);
    MEMORY_LIMIT.store(bytes, Ordering::Relaxed);
}

/// A global allocator that ends the process with a clear error (exit 2) when the heap passes the
/// policy's limit, before the allocation that would pass it: a string doubled in a loop or a runaway
/// render fails as a message, not as an abort or the machine's OOM killer. With no limit (trusted, by
/// default) it only asks one relaxed load per allocation.
pub struct Bounded<A>(pub A);

unsafe impl<A: std::alloc::GlobalAlloc> std::alloc::GlobalAlloc for Bounded<A> {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        charge(layout.size() as i64);
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        charge(layout.size() as i64);
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        charge(-(layout.size() as i64));
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        charge(new_size as i64 - layout.size() as i64);
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

thread_local! {
    /// What this thread allocated (or freed) since it last told [`HELD`]: threads settle up a MiB at a
    /// time, so render threads do not contend for one counter on every allocation. No destructor and
    /// no lazy set-up, so the allocator may touch it at any time.
    static UNSETTLED: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// How far a thread's unsettled count may drift before it settles (the limit's precision, per thread).
const SETTLE_BYTES: i64 = 1 << 20;

fn charge(bytes: i64) {
    let limit = MEMORY_LIMIT.load(Ordering::Relaxed);
    if limit == 0 {
        return;
    }
    let settle = UNSETTLED
        .try_with(|unsettled| {
            let now = unsettled.get() + bytes;
            if now.abs() < SETTLE_BYTES {
                unsettled.set(now);
                None
            } else {
                unsettled.set(0);
                Some(now)
            }
        })
        .unwrap_or(Some(bytes));
    if let Some(bytes) = settle
        && HELD.fetch_add(bytes, Ordering::Relaxed) + bytes > limit as i64
    {
        out_of_memory(limit);
    }
}

#[cold]
fn out_of_memory(limit: u64) -> ! {
    use std::io::Write;
    // Nothing here may allocate: the message is written from the stack.
    MEMORY_LIMIT.store(0, Ordering::Relaxed);
    let mut message = [0u8; 200];
    let mut cursor = std::io::Cursor::new(&mut message[..]);
    let _ = writeln!(
        cursor,
        "error: the render needed more than {} MiB of memory, its limit (KDEPLOY_MAX_MEMORY): a template or input grows without bound",
        limit / MIB
    );
    let written = cursor.position() as usize;
    let _ = std::io::stderr().write_all(&message[..written]);
    std::process::exit(2);
}

fn fail(message: &str) -> ! {
    eprintln!("error: {}", redact(message));
    std::process::exit(2);
}

// ---------------------------------------------------------------------------------------------
// Masking

static NEEDLES: RwLock<Vec<Zeroizing<String>>> = RwLock::new(Vec::new());

/// The shortest value worth masking: masking every `1` or `yes` would hide more than it protects.
pub const MIN_MASKED_LEN: usize = 4;
pub const MASK: &str = "<redacted>";

/// From now on, [`redact`] masks each of `values` (and its base64 form).
pub fn mask(values: impl IntoIterator<Item = impl AsRef<str>>) {
    use base64::Engine as _;
    let Ok(mut needles) = NEEDLES.write() else { return };
    for value in values {
        let value = value.as_ref();
        for line in std::iter::once(value).chain(value.lines()) {
            let line = line.trim();
            if line.chars().count() < MIN_MASKED_LEN {
                continue;
            }
            for needle in [line.to_owned(), base64::engine::general_purpose::STANDARD.encode(line)] {
                if !needles.iter().any(|n| **n == needle) {
                    needles.push(Zeroizing::new(needle));
                }
            }
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
}

/// `text` with every secret and credential kdeploy knows of masked.
pub fn redact(text: &str) -> String {
    let Ok(needles) = NEEDLES.read() else {
        return text.to_owned();
    };
    let mut out = text.to_owned();
    for needle in needles.iter() {
        if out.contains(needle.as_str()) {
            out = out.replace(needle.as_str(), MASK);
        }
    }
    out
}

/// The longest excerpt of a line an error quotes, in characters.
pub const EXCERPT_CHARS: usize = 120;

/// At most [`EXCERPT_CHARS`] of `line` around `column` (1-based, in characters), and the column
/// within the excerpt. An error quoting a file shows where, not the whole of a long line.
pub fn excerpt(line: &str, column: usize) -> (String, usize) {
    let count = line.chars().count();
    if count <= EXCERPT_CHARS {
        return (line.to_owned(), column);
    }
    let start = column.saturating_sub(EXCERPT_CHARS / 2).min(count - EXCERPT_CHARS);
    let text: String = line.chars().skip(start).take(EXCERPT_CHARS).collect();
    let prefix = if start > 0 { "…" } else { "" };
    let suffix = if start + EXCERPT_CHARS < count { "…" } else { "" };
    (
        format!("{prefix}{text}{suffix}"),
        column - start + prefix.chars().count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_named_and_argocd_variables_are_not() {
        for name in [
            "SOPS_AGE_KEY",
            "VAULT_TOKEN",
            "BAO_ADDR",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        ] {
            assert!(is_credential(name), "{name}");
        }
        for name in ["HOME", "AWS_REGION", "ARGOCD_APP_NAME", "PATH"] {
            assert!(!is_credential(name), "{name}");
        }
        assert!(is_argocd_variable("ARGOCD_ENV_TIER") && is_argocd_variable("KUBE_VERSION"));
        assert!(!is_argocd_variable("ARGOCD_TOKEN"));
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "140.82.112.3", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn repository_urls_compare_as_one_repository() {
        assert!(same_repository(
            "https://Git.Example.com/shop.git",
            "https://git.example.com/shop/"
        ));
        assert!(!same_repository(
            "https://git.example.com/shop",
            "https://git.example.com/shop-evil"
        ));
        assert!(!same_repository(
            "https://git.example.com/Shop",
            "https://git.example.com/shop"
        ));
    }

    #[test]
    fn aws_regions_are_checked_by_their_form() {
        for region in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-3",
            "us-isob-east-1",
        ] {
            assert!(check_aws_region(region).is_ok(), "{region}");
        }
        for region in [
            "x@127.0.0.1:9",
            "us-east",
            "US-EAST-1",
            "us-east-1/",
            "",
            "a-b-1",
            "us-east-123",
        ] {
            assert!(check_aws_region(region).is_err(), "{region}");
        }
    }

    #[test]
    fn long_lines_are_cut_to_an_excerpt_around_the_column() {
        let line = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let (text, column) = excerpt(&line, 501);
        assert!(text.chars().count() <= EXCERPT_CHARS + 2, "{}", text.len());
        assert_eq!(text.chars().nth(column - 1), Some('X'));
        assert_eq!(excerpt("short", 3), ("short".to_owned(), 3));
    }

    #[test]
    fn masked_values_and_their_base64_are_redacted() {
        mask(["canary-secret-value-1234"]);
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode("canary-secret-value-1234");
        assert_eq!(redact("a canary-secret-value-1234 b"), "a <redacted> b");
        assert_eq!(redact(&encoded), MASK);
        assert_eq!(redact("abc"), "abc");
    }

    #[test]
    fn files_are_capped_and_must_be_regular() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "0123456789").unwrap();
        assert_eq!(read_file(&file, "values file", 10).unwrap().len(), 10);
        assert!(matches!(
            read_file(&file, "values file", 9),
            Err(TrustError::TooLarge { .. })
        ));
        assert!(matches!(
            read_file(Path::new("/dev/zero"), "values file", 9),
            Err(TrustError::NotRegularFile { .. })
        ));
        assert!(matches!(
            read_file(dir.path(), "values file", 9),
            Err(TrustError::NotRegularFile { .. })
        ));
    }

    #[test]
    fn confinement_follows_symlinks_and_refuses_climbing_out() {
        let outside = tempfile::tempdir().unwrap();
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path().canonicalize().unwrap();
        std::fs::write(outside.path().join("key.txt"), "AGE-SECRET-KEY-1").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/values.yaml"), "a: 1").unwrap();
        std::os::unix::fs::symlink(outside.path().join("key.txt"), root.join("link.yaml")).unwrap();
        assert!(confine_to(&root, &root.join("sub/values.yaml"), "values file").is_ok());
        assert!(confine_to(&root, &root.join("sub/../sub/values.yaml"), "values file").is_ok());
        assert!(confine_to(&root, &root.join("link.yaml"), "values file").is_err());
        assert!(confine_to(&root, &outside.path().join("key.txt"), "values file").is_err());
        assert!(confine_to(&root, &root.join("sub/../../x"), "values file").is_err());
        assert!(confine_to(&root, &root.join("missing/../../../etc/passwd"), "values file").is_err());
        assert!(confine_to(&root, &root.join("missing.yaml"), "values file").is_ok());
    }

    #[test]
    fn a_walk_enters_each_folder_once() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        let mut walk = Walk::default();
        assert!(walk.enter(dir.path(), "folder").unwrap());
        assert!(!walk.enter(&dir.path().join("loop"), "folder").unwrap());
    }
}
