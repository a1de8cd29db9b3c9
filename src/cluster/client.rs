//! Connecting to a cluster as kubectl does (kubeconfig, `KUBECONFIG`, `--context`), with the guard
//! against applying one target's manifests to another target's cluster, and retries with backoff for
//! throttling, server errors and dropped connections.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::ClusterError;

/// Where and how to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`; otherwise `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// The context the selected target names in kdeploy.yaml, and the target's name.
    pub target_context: Option<(String, String)>,
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
    config.read_timeout = Some(Duration::from_secs(60));
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| in_context(&e))?;
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

const MAX_ATTEMPTS: u32 = 5;

/// Runs `request` until it succeeds, fails for good, or [`MAX_ATTEMPTS`] transient failures have
/// happened, backing off exponentially (200 ms, 400 ms, ...; a 429's Retry-After is honoured up to 10s).
pub async fn with_retries<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match request().await {
            Err(error) if is_transient(&error) && attempt + 1 < MAX_ATTEMPTS => {
                let mut delay = Duration::from_millis(200 * 2u64.pow(attempt));
                if let kube::Error::Api(status) = &error
                    && status.code == 429
                    && let Some(seconds) = status
                        .details
                        .as_ref()
                        .map(|d| d.retry_after_seconds)
                        .filter(|s| *s > 0)
                {
                    delay = Duration::from_secs(u64::from(seconds).min(10));
                }
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(flag: Option<&str>, target: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: None,
            context: flag.map(str::to_owned),
            target_context: target.map(|t| (t.to_owned(), "prod".to_owned())),
        }
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
