//! What the day-two commands (status, history, rollback, delete, diff --revision) share: finding a
//! deployed project's ApplySet from its kdeploy.yaml (name, target, namespace and context only:
//! nothing is rendered and no secret is read) or from --applyset and -n, from any folder, and
//! connecting to its cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Secret;

use crate::cli::{ConnectionArgs, SetArgs};
use crate::cluster::applyset::{ApplySet, PROJECT_ANNOTATION};
use crate::cluster::client::{Cluster, Concurrency, ConnectOptions, connect, with_retries};
use crate::cluster::health::HealthRules;
use crate::cluster::lock::{self, DeployLock, LockReports, Locking};
use crate::cluster::resources::Resources;
use crate::project::Project;
use crate::ui;

/// A deployed project's set, on its cluster.
pub struct Located {
    pub cluster: Cluster,
    pub resources: Arc<Resources>,
    pub set: ApplySet,
    /// What the parent records: the group-kinds and namespaces the set spans.
    pub recorded: (std::collections::BTreeSet<String>, std::collections::BTreeSet<String>),
    /// The project's folder, when the set was found from a project file.
    pub project_dir: Option<PathBuf>,
    /// The project's readiness rules, when found from a project file.
    pub health: Option<HealthRules>,
    pub concurrency: Concurrency,
}

/// Connects as `connection` says, to `target_context` (the project's target's, with the target's
/// name) unless --context names one.
pub async fn connect_with(
    connection: &ConnectionArgs,
    target_context: Option<(String, String)>,
) -> anyhow::Result<(Cluster, Concurrency)> {
    let concurrency = Concurrency::from_flag(connection.concurrency);
    let options = ConnectOptions {
        kubeconfig: connection.kubeconfig.clone(),
        context: connection.context.clone(),
        target_context,
        request_timeout: connection.request_timeout,
        concurrency,
    };
    Ok((connect(&options).await?, concurrency))
}

/// Finds the set. A missing parent is an error that says where it was looked for.
pub async fn locate(args: &SetArgs) -> anyhow::Result<Located> {
    let project_file = match (&args.project, &args.applyset) {
        (Some(file), _) => Some(file.clone()),
        (None, Some(_)) => None,
        (None, None) => Project::find_in(Path::new(".")),
    };
    let selection = match &project_file {
        Some(file) => Some(Project::load(file)?.select(args.target.as_deref())?),
        None if args.target.is_some() => {
            bail!(
                "--target needs a project file (kdeploy.yaml), and there is none here; pass --applyset NAME and -n NAMESPACE"
            )
        }
        None => None,
    };
    let target_context = selection.as_ref().and_then(|s| s.context.clone().zip(s.target.clone()));
    let (cluster, concurrency) = connect_with(&args.connection, target_context).await?;
    let namespace = args
        .namespace
        .clone()
        .or_else(|| selection.as_ref().and_then(|s| s.namespace.clone()))
        .unwrap_or_else(|| cluster.namespace.clone());
    let candidates: Vec<String> = match (&args.applyset, &selection) {
        (Some(name), _) => {
            let prefixed = ApplySet::parent_name(name);
            if name.starts_with("kdeploy-") {
                vec![name.clone()]
            } else {
                vec![name.clone(), prefixed]
            }
        }
        (None, Some(selection)) => match &selection.identity {
            Some(identity) => vec![ApplySet::parent_name(identity)],
            None => bail!(
                "{} has no `name:`, so it has no ApplySet to look after; name the set with --applyset NAME",
                project_file.as_deref().unwrap_or(Path::new("kdeploy.yaml")).display()
            ),
        },
        (None, None) => bail!(
            "there is no kdeploy.yaml here to say which project; run from the project's folder, or name its set with --applyset NAME and -n NAMESPACE"
        ),
    };
    let api: kube::Api<Secret> = kube::Api::namespaced(cluster.client.clone(), &namespace);
    let mut found = None;
    for name in &candidates {
        let parent = with_retries(|| api.get_opt(name))
            .await
            .map_err(|e| crate::cluster::ClusterError::api(format!("reading Secret/{name} in {namespace}"), e))
            .map_err(|e| e.naming_server(&cluster.server, &cluster.context))?;
        if let Some(parent) = parent {
            found = Some((name.clone(), parent));
            break;
        }
    }
    let Some((name, parent)) = found else {
        // A project Flux deploys has no ApplySet of kdeploy's: Flux keeps its own inventory.
        let flux = selection
            .as_ref()
            .is_some_and(|s| s.flux != crate::project::FluxConfig::default());
        bail!(
            "no kdeploy ApplySet parent Secret/{} in namespace {namespace} (context {}): nothing was deployed there with this name; \
             `kdeploy list -A` shows what is{}",
            candidates.join(" or Secret/"),
            cluster.context,
            if flux {
                " (if Flux deploys this project, `kdeploy flux status` reads its Kustomization)"
            } else {
                ""
            }
        );
    };
    let project = parent
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROJECT_ANNOTATION))
        .cloned();
    if let (Some(selection), Some(recorded)) = (&selection, &project)
        && selection.identity.as_ref() != Some(recorded)
        && args.applyset.is_none()
    {
        bail!(
            "Secret/{name} in {namespace} belongs to project `{recorded}`, not to this project's `{}`",
            selection.identity.as_deref().unwrap_or_default()
        );
    }
    let set = ApplySet::new(&name, &namespace, project.as_deref());
    let resources = Arc::new(Resources::new(cluster.client.clone()).with_disk_cache(&cluster.server));
    let recorded = set
        .recorded(&resources)
        .await?
        .with_context(|| format!("Secret/{name} in {namespace} went away while it was read"))?;
    Ok(Located {
        cluster,
        resources,
        set,
        recorded,
        project_dir: project_file
            .as_deref()
            .and_then(Path::parent)
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }.to_path_buf()),
        health: selection.map(|s| s.health),
        concurrency,
    })
}

/// The project's deploy lock, held for a day-two command that writes (none for a dry run).
pub type HeldLock = std::sync::Mutex<Option<DeployLock>>;

/// Takes the set's deploy lock, waiting up to `timeout` while another apply holds it; a dry run
/// takes none.
pub async fn take_lock(located: &Located, timeout: std::time::Duration, dry_run: bool) -> anyhow::Result<HeldLock> {
    let lock = std::sync::Mutex::new(None);
    if dry_run {
        return Ok(lock);
    }
    let reports = LockReports {
        waiting: &mut |m| ui::note(m),
        lost: ui::warn,
    };
    let set = &located.set;
    match lock::acquire(
        located.cluster.client.clone(),
        &set.namespace,
        &set.name,
        timeout,
        reports,
    )
    .await?
    {
        Locking::Held(held) => *lock.lock().map_err(|_| anyhow::anyhow!("the lock's holder panicked"))? = Some(*held),
        Locking::NamespaceMissing => bail!("namespace {} is gone", set.namespace),
    }
    Ok(lock)
}

/// Gives the lock back.
pub async fn release_lock(lock: HeldLock) {
    let held = lock.into_inner().unwrap_or_default();
    if let Some(held) = held {
        held.release().await;
    }
}
