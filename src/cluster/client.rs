//! Connecting to a cluster as kubectl does (kubeconfig, `KUBECONFIG`, `--context`), with the guard
//! against applying one target's manifests to another target's cluster, and retries with backoff for
//! throttling, server errors and dropped connections.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::ClusterError;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `--kubeconfig`; otherwise `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// The context the selected target names in kdeploy.yaml, and the target's name.
    pub target_context: Option<(String, String)>,
    /// How long one request may wait for an answer (`--request-timeout`).
    pub request_timeout: Duration,
    /// How many requests may be in flight (`--concurrency`).
    pub concurrency: Concurrency,
}

/// How many requests may be in flight at once (`--concurrency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// The default: [`ADAPTIVE_START`] at first, more (up to [`ADAPTIVE_MOST`]) while the server's
    /// latency holds, fewer when it rises or the server throttles.
    Adaptive,
    /// At most this many (`--concurrency N`), fewer while the server throttles.
    Fixed(usize),
}

/// Where adaptive concurrency starts, and the least latency alone brings it down to.
pub const ADAPTIVE_START: usize = 8;
/// The most requests adaptive concurrency puts in flight.
pub const ADAPTIVE_MOST: usize = 64;

impl Concurrency {
    /// The flag's value: a number fixes it, none adapts.
    pub fn from_flag(flag: Option<u32>) -> Concurrency {
        flag.map_or(Concurrency::Adaptive, |n| Concurrency::Fixed(n.max(1) as usize))
    }

    /// The most requests that may ever be in flight: what callers size their queues of work to.
    pub fn most(self) -> usize {
        match self {
            Concurrency::Adaptive => ADAPTIVE_MOST,
            Concurrency::Fixed(n) => n.max(1),
        }
    }
}

impl Default for ConnectOptions {
    /// kubectl's way of finding the cluster, with the flags' defaults.
    fn default() -> Self {
        ConnectOptions {
            kubeconfig: None,
            context: None,
            target_context: None,
            request_timeout: Duration::from_secs(60),
            concurrency: Concurrency::Adaptive,
        }
    }
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub context: String,
    /// The context's namespace, or `default`.
    pub namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
}

const NO_KUBECONFIG_HELP: &str = "point kdeploy at a cluster with --kubeconfig FILE or KUBECONFIG=FILE (and --context NAME, \
or a target's `context:` in kdeploy.yaml, to choose a context); for a local test cluster, run \
`eval \"$(scripts/dev-cluster up)\"` in a kdeploy checkout";

/// The kubeconfig files to read, as kubectl finds them: `--kubeconfig`, else the files `KUBECONFIG` lists
/// (those that exist; kubectl skips the others), else `~/.kube/config`.
fn kubeconfig_files(flag: Option<&PathBuf>) -> Result<Vec<PathBuf>, ClusterError> {
    if let Some(file) = flag {
        if !file.is_file() {
            return Err(ClusterError::Config(format!(
                "the kubeconfig {} given with --kubeconfig does not exist",
                file.display()
            )));
        }
        return Ok(vec![file.clone()]);
    }
    if let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let listed: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let existing: Vec<PathBuf> = listed.iter().filter(|p| p.is_file()).cloned().collect();
        if existing.is_empty() {
            let names: Vec<String> = listed.iter().map(|p| p.display().to_string()).collect();
            return Err(ClusterError::Config(format!(
                "KUBECONFIG names {}, and none of it exists; {NO_KUBECONFIG_HELP}",
                names.join(", ")
            )));
        }
        return Ok(existing);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let default = home.join(".kube").join("config");
    if !default.is_file() {
        return Err(ClusterError::Config(format!(
            "there is no kubeconfig: {} does not exist and KUBECONFIG is not set; {NO_KUBECONFIG_HELP}",
            default.display()
        )));
    }
    Ok(vec![default])
}

/// Reads and merges the kubeconfig files; an error names the file it is in.
fn read_kubeconfig(files: &[PathBuf]) -> Result<Kubeconfig, ClusterError> {
    let mut merged = Kubeconfig::default();
    for file in files {
        let config = Kubeconfig::read_from(file).map_err(|e| {
            // kube's parse errors point at `<input>`: put the file there.
            let message = e.to_string().replace("<input>", &file.display().to_string());
            ClusterError::Config(format!("cannot read the kubeconfig {}: {message}", file.display()))
        })?;
        merged = merged
            .merge(config)
            .map_err(|e| ClusterError::Config(format!("cannot merge the kubeconfig {}: {e}", file.display())))?;
    }
    Ok(merged)
}

/// Decides which context to use: the target's wins over the kubeconfig's current one, and a `--context`
/// that contradicts the target's is refused.
pub fn choose_context(options: &ConnectOptions, current: Option<&str>) -> Result<Option<String>, ClusterError> {
    match (&options.target_context, &options.context) {
        (Some((target_context, target)), Some(flag)) if flag != target_context => Err(ClusterError::ContextMismatch {
            target: target.clone(),
            target_context: target_context.clone(),
            flag: flag.clone(),
        }),
        (Some((target_context, _)), _) => Ok(Some(target_context.clone())),
        (None, Some(flag)) => Ok(Some(flag.clone())),
        (None, None) => Ok(current.map(str::to_owned)),
    }
}

pub async fn connect(options: &ConnectOptions) -> Result<Cluster, ClusterError> {
    set_concurrency(options.concurrency);
    let files = kubeconfig_files(options.kubeconfig.as_ref())?;
    let shown = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let kubeconfig = read_kubeconfig(&files)?;
    let context = choose_context(options, kubeconfig.current_context.as_deref())?.ok_or_else(|| {
        ClusterError::Config(format!(
            "the kubeconfig {shown} has no current context; pass --context NAME (or set a target's `context:`)"
        ))
    })?;
    if !kubeconfig.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(ClusterError::Config(format!(
            "context `{context}` is not in the kubeconfig {shown} (it has: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    }
    let namespace = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    let config_options = KubeConfigOptions {
        context: Some(context.clone()),
        ..Default::default()
    };
    let in_context =
        |e: &dyn std::fmt::Display| ClusterError::Config(format!("kubeconfig {shown}, context `{context}`: {e}"));
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &config_options)
        .await
        .map_err(|e| in_context(&e))?;
    // A server that accepts and then stalls is retried after this, like one that drops the connection.
    config.read_timeout = Some(options.request_timeout);
    config.write_timeout = Some(options.request_timeout);
    config.connect_timeout = Some(options.request_timeout.min(Duration::from_secs(10)));
    // kube's own retry layer would wait out 429s (up to 15 times) inside a request, hidden from
    // with_retries and its limiter: kdeploy retries in one place, where throttling shapes concurrency.
    config.default_retry = false;
    let server = config.cluster_url.to_string();
    let client = super::transport::client(config).map_err(|e| in_context(&e))?;
    Ok(Cluster {
        client,
        context,
        namespace,
        server,
    })
}

/// Whether an error is worth retrying: throttling, server errors, and transport failures.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || (500..=599).contains(&status.code),
        other => is_transport(other),
    }
}

/// Whether the request failed on the way (connecting, TLS, a dropped connection) rather than at the server.
pub fn is_transport(error: &kube::Error) -> bool {
    matches!(error, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// How many requests may be in flight at once, adapting to the server. One per process: a kdeploy run
/// talks to one API server.
///
/// - **Throttling** (a 429, which is how API Priority and Fairness says a client's share is full): the
///   limit halves, once per burst, and holds until the throttled requests are due back (their
///   Retry-After). Below where it started, it grows back one step per 250 ms (additive increase,
///   multiplicative decrease, as TCP does). Adaptive concurrency also never again rises to where it was
///   throttled.
/// - **Latency** (adaptive concurrency only): the fastest round trip seen is the baseline (what a request
///   costs with no queue, as TCP Vegas takes it), and a moving average of the last ten is now. While now
///   stays within 1.5× the baseline, the server is not queueing, and the limit grows (by up to 0.8 per
///   answer, as Netflix's Gradient2 limiter steps) towards [`ADAPTIVE_MOST`]; when now rises past that,
///   it shrinks in proportion, down to where it started. At a distance, round trips are mostly the
///   network's, so the limit climbs and the many dry runs of a first apply overlap; a server that queues
///   holds it back. On loopback the server's own work is most of a round trip, and a dry run costs a few
///   times a GET, so it stays near where it started. It only moves while at least half of it is in use:
///   an idle limit says nothing about the server. A request beyond the most ever in flight is left out
///   of the round trips: over HTTP/1.1 it opens a connection, and its TCP and TLS handshakes (two or
///   three round trips more) are not the server queueing.
pub struct Limiter {
    state: std::sync::Mutex<LimiterState>,
    freed: tokio::sync::Notify,
}

struct LimiterState {
    limit: f64,
    /// Where it starts; latency alone never takes it lower.
    start: f64,
    /// The most it may reach: the flag's value, or for adaptive concurrency [`ADAPTIVE_MOST`] lowered
    /// to just under wherever the server throttled.
    most: f64,
    adaptive: bool,
    in_flight: usize,
    /// The most requests ever in flight at once: as many connections are open.
    most_in_flight: usize,
    /// Round trips in seconds: the fastest seen, a moving average of the latest, and how many were seen.
    least_rtt: f64,
    recent_rtt: f64,
    samples: u32,
    last_decrease: Option<std::time::Instant>,
    last_change: Option<std::time::Instant>,
}

/// A place in flight; freed when dropped.
pub struct Slot<'a> {
    limiter: &'a Limiter,
    /// More requests are in flight with this one than ever before: it likely opens a connection.
    opens_connection: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.limiter.lock().in_flight -= 1;
        self.limiter.freed.notify_waiters();
    }
}

/// The limit grows by one at most this often while it recovers from throttling.
const GROWTH_STEP: Duration = Duration::from_millis(250);
/// How much slower than the baseline a round trip may be before the server is taken to be queueing.
const LATENCY_TOLERANCE: f64 = 1.5;
/// Answers averaged into the recent round trip.
const RECENT_WINDOW: f64 = 10.0;
/// Answers seen before latency moves the limit.
const WARM_UP: u32 = 10;
/// How many requests beyond the current limit a step aims for while latency holds, and how much of a
/// step is taken at once.
const PROBE: f64 = 4.0;
const SMOOTHING: f64 = 0.2;

impl Limiter {
    fn new(concurrency: Concurrency) -> Limiter {
        let (start, most, adaptive) = match concurrency {
            Concurrency::Adaptive => (ADAPTIVE_START, ADAPTIVE_MOST, true),
            Concurrency::Fixed(n) => (n.max(1), n.max(1), false),
        };
        Limiter {
            state: std::sync::Mutex::new(LimiterState {
                limit: start as f64,
                start: start as f64,
                most: most as f64,
                adaptive,
                in_flight: 0,
                most_in_flight: 0,
                least_rtt: f64::INFINITY,
                recent_rtt: 0.0,
                samples: 0,
                last_decrease: None,
                last_change: None,
            }),
            freed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn acquire(&self) -> Slot<'_> {
        loop {
            // Created before the check, so a slot freed in between still wakes it.
            let freed = self.freed.notified();
            {
                let mut state = self.lock();
                if (state.in_flight as f64) < state.limit.floor() {
                    state.in_flight += 1;
                    let opens_connection = state.in_flight > state.most_in_flight;
                    state.most_in_flight = state.most_in_flight.max(state.in_flight);
                    return Slot {
                        limiter: self,
                        opens_connection,
                    };
                }
            }
            freed.await;
        }
    }

    /// The server throttled a request, asking to come back after `retry_after`.
    fn throttled(&self, retry_after: Duration) {
        let mut state = self.lock();
        // The 429s of one burst say one thing: halve once per burst, not once per reply.
        let now = std::time::Instant::now();
        if state
            .last_decrease
            .is_none_or(|at| now.duration_since(at) > Duration::from_millis(200))
        {
            if state.adaptive {
                state.most = (state.limit.floor() - 1.0).max(state.start);
            }
            state.limit = (state.limit / 2.0).max(1.0);
            state.last_decrease = Some(now);
        }
        // No growth until the throttled requests are back: the server said when that would be.
        let hold = now + retry_after;
        state.last_change = Some(state.last_change.map_or(hold, |at| at.max(hold)));
    }

    /// A request was answered after `round_trip`; `opened_connection` if it likely opened one.
    fn succeeded(&self, round_trip: Duration, opened_connection: bool) {
        let mut state = self.lock();
        if !opened_connection {
            let sample = round_trip.as_secs_f64();
            state.least_rtt = state.least_rtt.min(sample);
            state.recent_rtt = match state.samples {
                0 => sample,
                _ => state.recent_rtt + (sample - state.recent_rtt) * 2.0 / (RECENT_WINDOW + 1.0),
            };
            state.samples = state.samples.saturating_add(1);
        }
        let now = std::time::Instant::now();
        if state.last_change.is_some_and(|at| now < at) {
            return; // throttled requests are not back yet
        }
        if state.limit < state.start || !state.adaptive {
            // Growth is paced in time, not per success: at a few milliseconds a request, counting
            // successes would regrow the limit long before the throttled requests come back (APF's
            // Retry-After is up to 8 s), and buy the next burst of 429s.
            if state.limit >= state.most || state.last_change.is_some_and(|at| now < at + GROWTH_STEP) {
                return;
            }
            state.limit = (state.limit + 1.0).min(state.start);
            state.last_change = Some(now);
            return;
        }
        if state.samples < WARM_UP || (state.in_flight as f64) < state.limit / 2.0 {
            return;
        }
        let gradient = (LATENCY_TOLERANCE * state.least_rtt / state.recent_rtt.max(f64::MIN_POSITIVE)).clamp(0.5, 1.0);
        let target = state.limit * gradient + PROBE;
        state.limit = (state.limit * (1.0 - SMOOTHING) + target * SMOOTHING).clamp(state.start, state.most);
    }

    /// The current limit (for tests and progress).
    pub fn limit(&self) -> usize {
        self.lock().limit.floor() as usize
    }
}

static LIMITER: std::sync::OnceLock<Limiter> = std::sync::OnceLock::new();

/// Sets how many requests may be in flight (`--concurrency`); the first call wins.
pub fn set_concurrency(concurrency: Concurrency) {
    let _ = LIMITER.set(Limiter::new(concurrency));
}

fn limiter() -> &'static Limiter {
    LIMITER.get_or_init(|| Limiter::new(Concurrency::Adaptive))
}

/// Attempts for a request that fails on the way or with a server error (5xx).
const MAX_ATTEMPTS: u32 = 5;
/// Attempts for a request the server throttles (429): throttling says "later", not "broken", so it is
/// waited out longer; API Priority and Fairness sends it whenever the client's share is full.
const MAX_THROTTLED_ATTEMPTS: u32 = 20;

/// Runs `request` until it succeeds, fails for good, or runs out of attempts. Every request kdeploy
/// retries is idempotent (GET, LIST, server-side apply, DELETE), so a retry after an answer that was
/// lost on the way is safe. Backoff is exponential with jitter (200 ms, 400 ms, ... up to 5 s); a 429's
/// Retry-After is honoured up to 10 s.
pub async fn with_retries<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let (mut failures, mut throttled) = (0, 0);
    let limiter = limiter();
    loop {
        let slot = limiter.acquire().await;
        let opens_connection = slot.opens_connection;
        let sent = std::time::Instant::now();
        let result = request().await;
        drop(slot);
        let error = match result {
            Ok(value) => {
                limiter.succeeded(sent.elapsed(), opens_connection);
                return Ok(value);
            }
            Err(error) => error,
        };
        let retry_after = match &error {
            kube::Error::Api(status) if status.code == 429 => {
                let retry_after = status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(u64::from(s).min(10)));
                limiter.throttled(retry_after.unwrap_or(Duration::from_secs(1)));
                throttled += 1;
                if throttled >= MAX_THROTTLED_ATTEMPTS {
                    return Err(error);
                }
                retry_after
            }
            other if is_transient(other) => {
                failures += 1;
                if failures >= MAX_ATTEMPTS {
                    return Err(error);
                }
                None
            }
            _ => return Err(error),
        };
        let attempt = failures + throttled - 1;
        let backoff = Duration::from_millis(200 * 2u64.pow(attempt.min(5))).min(Duration::from_secs(5));
        tokio::time::sleep(retry_after.unwrap_or(backoff) + jitter(backoff / 2)).await;
    }
}

/// A pseudo-random duration below `max`, so that requests throttled together do not retry together.
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(std::time::Instant::now());
    Duration::from_nanos(random % (max.as_nanos().max(1) as u64))
}

/// What a cluster says of itself: its version and every group-version it serves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterFacts {
    /// `v1.36.3`.
    pub kube_version: String,
    /// `apps/v1`, `monitoring.coreos.com/v1`, ...
    pub api_versions: Vec<String>,
}

/// Asks the cluster its version and the group-versions it serves (what Helm charts see as
/// `.Capabilities`).
pub async fn cluster_facts(client: &kube::Client) -> Result<ClusterFacts, ClusterError> {
    let failed = |e| ClusterError::api("asking the cluster's version and APIs for Helm charts", e);
    let version = with_retries(|| client.apiserver_version()).await.map_err(failed)?;
    let core = with_retries(|| client.list_core_api_versions()).await.map_err(failed)?;
    let groups = with_retries(|| client.list_api_groups()).await.map_err(failed)?;
    let mut api_versions: Vec<String> = core.versions;
    for group in groups.groups {
        api_versions.extend(group.versions.into_iter().map(|v| v.group_version));
    }
    Ok(ClusterFacts {
        kube_version: version.git_version,
        api_versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(flag: Option<&str>, target: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            context: flag.map(str::to_owned),
            target_context: target.map(|t| (t.to_owned(), "prod".to_owned())),
            ..Default::default()
        }
    }

    /// `n` answers after `rtt` each, with `busy` other requests in flight (at most the limit).
    fn answer(limiter: &Limiter, n: usize, rtt_ms: u64, busy: usize) {
        for _ in 0..n {
            let mut state = limiter.lock();
            state.in_flight = busy.min(state.limit.floor() as usize);
            drop(state);
            limiter.succeeded(Duration::from_millis(rtt_ms), false);
        }
        limiter.lock().in_flight = 0;
    }

    #[tokio::test]
    async fn the_limiter_halves_on_throttling_once_per_burst_and_grows_back() {
        let limiter = Limiter::new(Concurrency::Fixed(16));
        limiter.throttled(Duration::from_secs(1));
        limiter.throttled(Duration::from_secs(1));
        assert_eq!(limiter.limit(), 8, "one burst of 429s halves once");
        answer(&limiter, 100, 5, 16);
        assert_eq!(
            limiter.limit(),
            8,
            "no growth before the throttled requests are back, then paced in time"
        );
        for _ in 0..20 {
            limiter.lock().last_change = Some(std::time::Instant::now() - GROWTH_STEP);
            answer(&limiter, 1, 5, 16);
        }
        assert_eq!(
            limiter.limit(),
            16,
            "it grows back one step at a time to the maximum, no further"
        );
        let held: Vec<Slot<'_>> = futures::future::join_all((0..16).map(|_| limiter.acquire())).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), limiter.acquire()).await;
        assert!(waiting.is_err(), "a 17th request waits");
        drop(held);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), limiter.acquire())
                .await
                .is_ok()
        );
    }

    #[test]
    fn a_fixed_limit_never_grows_past_the_flag_however_fast_the_server() {
        let limiter = Limiter::new(Concurrency::Fixed(8));
        answer(&limiter, 500, 20, 8);
        assert_eq!(limiter.limit(), 8);
    }

    #[test]
    fn adaptive_concurrency_grows_while_latency_holds_and_backs_off_when_it_rises() {
        let limiter = Limiter::new(Concurrency::Adaptive);
        assert_eq!(limiter.limit(), ADAPTIVE_START);
        // A distant server that is not queueing: round trips stay at 20 ms however many are in flight.
        answer(&limiter, 40, 20, 64);
        let grown = limiter.limit();
        assert!(grown > 16, "latency held, the limit grew: {grown}");
        answer(&limiter, 500, 20, 64);
        assert_eq!(limiter.limit(), ADAPTIVE_MOST, "and stops at the most");

        // Round trips that double: the server queues, and the limit comes down.
        answer(&limiter, 20, 60, 64);
        let backed_off = limiter.limit();
        assert!(
            backed_off < ADAPTIVE_MOST * 3 / 4,
            "latency rose, the limit fell: {backed_off}"
        );
        // Never below where it started, on latency alone.
        answer(&limiter, 200, 500, 64);
        assert_eq!(limiter.limit(), ADAPTIVE_START);
    }

    #[tokio::test]
    async fn a_request_that_opens_a_connection_is_not_taken_for_queueing() {
        let limiter = Limiter::new(Concurrency::Adaptive);
        answer(&limiter, 20, 20, 64);
        let before = limiter.limit();
        // Slots beyond the most ever in flight open connections (HTTP/1.1): their round trips carry
        // TCP and TLS handshakes, and are left out.
        let held: Vec<Slot<'_>> = futures::future::join_all((0..before).map(|_| limiter.acquire())).await;
        assert!(held.iter().all(|slot| slot.opens_connection));
        drop(held);
        let again = limiter.acquire().await;
        assert!(!again.opens_connection, "a connection is open for it");
        drop(again);
        for _ in 0..20 {
            limiter.lock().in_flight = before;
            limiter.succeeded(Duration::from_millis(80), true);
        }
        limiter.lock().in_flight = 0;
        assert!(limiter.limit() > before, "handshakes did not stop the growth");
        // The same round trips on open connections are queueing.
        answer(&limiter, 20, 80, 64);
        assert!(limiter.limit() < before, "and bring it down");
    }

    #[test]
    fn adaptive_concurrency_does_not_move_while_mostly_idle() {
        let limiter = Limiter::new(Concurrency::Adaptive);
        // Two requests at a time say nothing about how the server takes eight or more.
        answer(&limiter, 200, 20, 2);
        assert_eq!(limiter.limit(), ADAPTIVE_START);
    }

    #[test]
    fn adaptive_concurrency_stays_under_where_the_server_throttled() {
        let limiter = Limiter::new(Concurrency::Adaptive);
        answer(&limiter, 500, 20, 64);
        assert_eq!(limiter.limit(), ADAPTIVE_MOST);
        limiter.throttled(Duration::from_millis(0));
        assert_eq!(limiter.limit(), ADAPTIVE_MOST / 2);
        // The hold is over (Retry-After 0): latency holds, so it grows again, but not back to 64.
        answer(&limiter, 500, 20, 64);
        assert_eq!(limiter.limit(), ADAPTIVE_MOST - 1);
    }

    #[test]
    fn the_target_context_wins_and_a_contradicting_flag_is_refused() {
        assert_eq!(
            choose_context(&options(None, Some("prod-ctx")), Some("dev-ctx"))
                .unwrap()
                .as_deref(),
            Some("prod-ctx")
        );
        assert_eq!(
            choose_context(&options(Some("prod-ctx"), Some("prod-ctx")), None)
                .unwrap()
                .as_deref(),
            Some("prod-ctx")
        );
        let err = choose_context(&options(Some("dev-ctx"), Some("prod-ctx")), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("target `prod`") && err.contains("prod-ctx") && err.contains("dev-ctx"),
            "{err}"
        );
        assert_eq!(
            choose_context(&options(Some("x"), None), Some("y")).unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(
            choose_context(&options(None, None), Some("y")).unwrap().as_deref(),
            Some("y")
        );
    }
}
