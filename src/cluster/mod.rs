//! Everything that talks to a cluster: connecting ([`client`], over [`transport`]), discovery ([`resources`]), planning with
//! server-side dry runs ([`plan`]), applying phase by phase and pruning ([`apply`], [`applyset`]) and
//! waiting for readiness ([`wait`], judged by [`health`]), and the history of what was applied
//! ([`revision`]). It takes rendered objects and never parses a template.

pub mod apply;
pub mod applyset;
pub mod client;
pub mod gitops;
pub mod health;
pub mod lock;
pub mod openapi;
pub mod plan;
pub mod resources;
pub mod revision;
pub mod trace;
pub mod transport;
pub mod unchanged;
pub mod wait;

/// Set when SIGINT or SIGTERM arrives during an apply that rolls back on failure: the apply stops
/// before its next kind, a wait stops at its next round, and the rollback runs.
pub fn interruption() -> &'static std::sync::Arc<std::sync::atomic::AtomicBool> {
    static FLAG: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(Default::default)
}

/// Whether an interruption was asked for (see [`interruption`]).
pub fn interrupted() -> bool {
    interruption().load(std::sync::atomic::Ordering::Relaxed)
}

/// What an interrupted step reports.
pub const INTERRUPTED: &str = "interrupted (SIGINT or SIGTERM)";

/// The field manager kdeploy applies as (kubectl uses `kubectl`).
pub const FIELD_MANAGER: &str = "kdeploy";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Config(String),
    #[error("{context}: {}", describe_api_error(source))]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "target `{target}` deploys to context `{target_context}`, but --context {flag} was given; refusing, so that one target's manifests never reach another target's cluster (drop --context, or pick the target that uses {flag})"
    )]
    ContextMismatch {
        target: String,
        target_context: String,
        flag: String,
    },
}

impl ClusterError {
    pub fn api(context: impl Into<String>, source: kube::Error) -> ClusterError {
        ClusterError::Api {
            context: context.into(),
            source,
        }
    }

    /// A request that never reached the server says which server that was.
    pub fn naming_server(self, server: &str, context: &str) -> ClusterError {
        match self {
            ClusterError::Api { source, .. } if client::is_transport(&source) => ClusterError::Config(format!(
                "cannot reach the API server {server} (context {context}): {}",
                describe_api_error(&source)
            )),
            other => other,
        }
    }
}

/// An API error as a person can act on it. Conflicts name the fields and the managers that own them.
pub fn describe_api_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status)
            if status.code == 409 && status.reason == "Conflict" && status.message.contains("conflict") =>
        {
            let fields: Vec<String> = status
                .details
                .as_ref()
                .map(|d| {
                    d.causes
                        .iter()
                        .map(|c| {
                            format!(
                                "{} (owned by {})",
                                c.field,
                                c.message
                                    .trim_start_matches("conflict with ")
                                    .split(" using ")
                                    .next()
                                    .unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let fields = if fields.is_empty() {
                status.message.clone()
            } else {
                fields.join(", ")
            };
            // A GitOps engine's manager: taking its fields over only lasts until it reconciles.
            let engine = [
                ("\"kustomize-controller\"", "Flux"),
                ("\"helm-controller\"", "Flux"),
                ("\"argocd-controller\"", "Argo CD"),
            ]
            .into_iter()
            .find(|(manager, _)| fields.contains(manager))
            .map(|(_, engine)| {
                format!(
                    " {engine} applies this object: change the source it deploys, since it reverts a direct change."
                )
            });
            format!(
                "conflict: {fields}; another field manager owns these fields. Remove them from the template, or take them over with --force-conflicts.{}",
                engine.unwrap_or_default()
            )
        }
        kube::Error::Api(status) => format!("{} ({} {})", status.message, status.code, status.reason),
        other => {
            // Transport errors say little on their own ("client error (Connect)"); their causes say why.
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(error) = cause {
                let part = error.to_string();
                if !text.contains(&part) {
                    text.push_str(&format!(": {part}"));
                }
                cause = error.source();
            }
            text
        }
    }
}
