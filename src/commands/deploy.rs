//! What `diff` and `apply` share: render, connect to the target's cluster, choose the ApplySet from the
//! project's identity, label the objects for it, and plan with server-side dry runs, the ApplySet parent
//! and other projects' claims included, so that every refusal comes before anything is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;

use super::{Inputs, RenderedInputs};
use crate::cli::{ClusterArgs, InputArgs};
use crate::cluster::applyset::{ApplySet, owner};
use crate::cluster::client::{Concurrency, cluster_facts};
use crate::cluster::lock::{self, DeployLock, LockReports, Locking};
use crate::cluster::plan::{Operation, Plan, PlanOptions, plan};
use crate::cluster::resources::Resources;
use crate::source::Capabilities;
use crate::ui;
use crate::vault::redact::Redactor;

/// A rendered manifest planned against a cluster.
pub struct Prepared {
    pub inputs: Inputs,
    /// How many requests may be in flight (`--concurrency`): what the plan and the apply size their
    /// queues of work to.
    pub concurrency: Concurrency,
    /// Masks vault values wherever they appear (diffs, logs, errors).
    pub redactor: Redactor,
    pub context: String,
    /// The default namespace objects that set none go to (and the ApplySet parent lives in).
    pub namespace: String,
    pub resources: Arc<Resources>,
    /// The set this apply records its objects in; none for an unnamed project.
    pub applyset: Option<ApplySet>,
    /// Why nothing is pruned this time, when nothing is.
    pub prune_off: Option<String>,
    pub plan: Plan,
    /// The deploy lock, when one was asked for and taken.
    pub lock: Option<DeployLock>,
    /// The deploy lock was asked for, but its namespace does not exist yet: take it once it does.
    pub lock_later: Option<std::time::Duration>,
}

/// Which ApplySet the objects belong to, and whether pruning is safe: only a named project, or an
/// explicit `--applyset`, can prove which objects are its own, and only the whole project can say
/// which of them left.
fn choose_applyset(inputs: &Inputs, flag: Option<&str>, namespace: &str) -> (Option<ApplySet>, Option<String>) {
    let identity = inputs.selection.identity.as_deref();
    if let Some(name) = flag {
        return (Some(ApplySet::new(name, namespace, identity)), None);
    }
    let Some(identity) = identity else {
        let why = match &inputs.project {
            Some((file, _)) => format!(
                "{} has no `name:`, so kdeploy cannot tell this project's objects from another's; objects that \
                 leave it are not pruned. Add `name: NAME` to it (or pass --applyset NAME) to prune",
                file.display()
            ),
            None => "there is no kdeploy.yaml naming this project, so kdeploy cannot tell its objects from \
                     another's; objects that leave it are not pruned. Create one with `name: NAME` (or pass --applyset NAME) to prune"
                .to_owned(),
        };
        return (None, Some(why));
    };
    let applyset = ApplySet::new(&ApplySet::parent_name(identity), namespace, Some(identity));
    let prune_off = inputs.explicit_sources.then(|| {
        "the sources named on the command line are only part of the project, so nothing is pruned; \
         apply the whole project to prune (or pass --applyset NAME to manage these sources as a set of their own)"
            .to_owned()
    });
    (Some(applyset), prune_off)
}

/// What validation against the cluster's schemas needs before the manifest is known: the server's
/// version and the index of its OpenAPI documents. Asked for as soon as there is a connection, so that
/// the round trips overlap rendering.
type ServedIndex = Result<(String, Json), String>;

fn fetch_served_index(cluster: &crate::cluster::client::Cluster) -> tokio::task::JoinHandle<ServedIndex> {
    let client = cluster.client.clone();
    tokio::spawn(async move {
        let (version, index) = tokio::join!(client.apiserver_version(), crate::cluster::openapi::index(&client));
        let version = version.map_err(|e| e.to_string())?.git_version;
        Ok((version, index.map_err(|e| e.to_string())?))
    })
}

/// The schemas the cluster serves for the group-versions of the manifest, when validation uses them
/// (`early` is then the version and index asked for before rendering; none with `--no-validate` or an
/// explicit `--kube-version`). A cluster that cannot say leaves validation to the embedded schemas,
/// with a warning.
async fn served_schemas(
    rendered: &RenderedInputs,
    cluster: &crate::cluster::client::Cluster,
    early: Option<tokio::task::JoinHandle<ServedIndex>>,
) -> Option<crate::check::Catalog> {
    let early = early?;
    let group_versions: std::collections::BTreeSet<String> = rendered
        .manifest
        .objects
        .iter()
        .map(|o| o.api_version().to_owned())
        .chain(["v1".to_owned()])
        .collect();
    let fetched = async {
        let (version, index) = early.await.map_err(|e| e.to_string())??;
        let documents =
            crate::cluster::openapi::documents_in(&cluster.client, &cluster.server, &index, &group_versions)
                .await
                .map_err(|e| e.to_string())?;
        crate::check::Catalog::served(version.trim_start_matches('v'), documents).map_err(|e| e.to_string())
    };
    match fetched.await {
        Ok(catalog) => Some(catalog),
        Err(why) => {
            ui::warn(&format!(
                "validating against kdeploy's own Kubernetes {} schemas: the cluster's could not be read ({why})",
                crate::check::kubernetes::DEFAULT_VERSION
            ));
            None
        }
    }
}

/// The deploy lock, taken in the background from as soon as there is a connection.
type LockTask = tokio::task::JoinHandle<Result<(Locking, std::time::Duration), crate::cluster::ClusterError>>;

fn take_lock_early(
    cluster: &crate::cluster::client::Cluster,
    set: &ApplySet,
    timeout: std::time::Duration,
) -> LockTask {
    let (client, namespace, name) = (cluster.client.clone(), set.namespace.clone(), set.name.clone());
    tokio::spawn(async move {
        let mut waiting = |m: &str| ui::note(m);
        let reports = LockReports {
            waiting: &mut waiting,
            lost: ui::warn,
        };
        let locking = lock::acquire(client, &namespace, &name, timeout, reports).await?;
        Ok((locking, timeout))
    })
}

/// Gives back the lock an early task took, when what follows fails: a task still waiting for another
/// apply's lock is stopped instead (a lease it had just created expires on its own).
async fn give_back(task: Option<LockTask>) {
    let Some(task) = task else { return };
    if !task.is_finished() {
        task.abort();
        return;
    }
    if let Ok(Ok((Locking::Held(held), _))) = task.await {
        held.release().await;
    }
}

/// A runtime for the cluster commands (the machines kdeploy runs on are small: two threads suffice).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Renders, connects and plans. With `lock_timeout`, the project's deploy lock is taken (waiting up to
/// that long) before the plan is made, so the plan is not made against another apply's half-way state.
pub async fn prepare(
    input: &InputArgs,
    cluster_args: &ClusterArgs,
    lock_timeout: Option<std::time::Duration>,
) -> anyhow::Result<Prepared> {
    let mut inputs = Inputs::gather(input)?;
    // Validation waits for the cluster's own schemas, fetched for the group-versions the render uses.
    inputs.validate_later = true;
    ui::note(&inputs.project_line());
    let selection = &inputs.selection;
    let target_context = selection.context.clone().zip(selection.target.clone());
    let (cluster, concurrency) = super::located::connect_with(&cluster_args.connection, target_context).await?;
    // Charts may ask what the cluster serves (`.Capabilities`); only then is it asked.
    let facts = if inputs.has_charts() {
        let facts = cluster_facts(&cluster.client).await?;
        Some(Capabilities {
            kube_version: facts.kube_version,
            api_versions: facts.api_versions,
        })
    } else {
        None
    };
    let namespace = (inputs.selection.namespace.clone()).unwrap_or_else(|| cluster.namespace.clone());
    let (applyset, prune_off) = choose_applyset(&inputs, cluster_args.applyset.as_deref(), &namespace);
    // What needs only the connection starts now, while the templates render: the cluster's version and
    // schema index for validation, and the deploy lock. Both are a round trip or three away (the first
    // also opens the connection), and rendering is local.
    let validation = &inputs.validation;
    let early_index =
        (!validation.no_validate && validation.kube_version.is_none()).then(|| fetch_served_index(&cluster));
    let early_lock = match (lock_timeout, &applyset) {
        (Some(timeout), Some(set)) => Some(take_lock_early(&cluster, set, timeout)),
        _ => None,
    };
    let rendered = match inputs.render_for(facts.as_ref()) {
        Ok(rendered) => rendered,
        Err(error) => {
            give_back(early_lock).await;
            return Err(error);
        }
    };
    match &applyset {
        Some(set) => ui::note(&format!(
            "context {} · ApplySet Secret/{} in {}{}",
            cluster.context,
            set.name,
            set.namespace,
            set.project
                .as_ref()
                .map_or_else(String::new, |p| format!(" (project {p})"))
        )),
        None => ui::note(&format!("context {} · no ApplySet", cluster.context)),
    }
    if let Some(why) = &prune_off {
        ui::note(&format!("not pruning: {why}"));
    }
    let schemas = served_schemas(&rendered, &cluster, early_index).await;
    let (mut lock, mut lock_later) = (None, None);
    if let Some(task) = early_lock {
        let locking = task
            .await
            .map_err(|e| anyhow::anyhow!("taking the deploy lock failed: {e}"))?
            .map_err(|e| e.naming_server(&cluster.server, &cluster.context))?;
        match locking {
            (Locking::Held(held), _) => lock = Some(*held),
            (Locking::NamespaceMissing, timeout) => lock_later = Some(timeout),
        }
    }
    // Validation is local; if it fails, the lock is given back at once.
    if let Err(error) = rendered.validate(schemas) {
        if let Some(held) = lock {
            held.release().await;
        }
        return Err(error);
    }
    let RenderedInputs {
        inputs,
        manifest,
        redactor,
        ..
    } = rendered;
    // The objects move into the plan: one copy of the manifest is held, not two.
    let objects: Vec<Json> = manifest
        .objects
        .into_iter()
        .map(|o| {
            let mut value = o.value;
            if let Some(set) = &applyset {
                set.label(&mut value);
            }
            value
        })
        .collect();
    let resources = Arc::new(Resources::new(cluster.client.clone()).with_disk_cache(&cluster.server));
    let plan_options = PlanOptions {
        concurrency: concurrency.most(),
        chunk_size: cluster_args.chunk_size,
        force_conflicts: cluster_args.force_conflicts,
        full_dry_run: cluster_args.full_dry_run,
        readiness: Some(&inputs.selection.health),
    };
    let mut plan = match plan(&resources, objects, &namespace, applyset.as_ref(), plan_options).await {
        Ok(plan) => plan,
        Err(error) => {
            if let Some(held) = lock {
                held.release().await;
            }
            return Err(error.naming_server(&cluster.server, &cluster.context).into());
        }
    };
    if prune_off.is_some() {
        plan.changes.retain(|c| c.operation != Operation::Prune);
    }
    refuse_or_take_over_claims(&resources, &mut plan, cluster_args.force_conflicts).await;
    Ok(Prepared {
        inputs,
        concurrency,
        redactor,
        context: cluster.context,
        namespace,
        resources,
        applyset,
        prune_off,
        plan,
        lock,
        lock_later,
    })
}

/// Objects that belong to another ApplySet are another project's: each is a refusal naming its owner,
/// unless `--force-conflicts` takes them over (which is also how a renamed project moves its objects).
async fn refuse_or_take_over_claims(resources: &Resources, plan: &mut Plan, force: bool) {
    let mut owners = BTreeMap::new();
    for change in &plan.changes {
        if let Some(id) = &change.claimed_by
            && !owners.contains_key(id)
        {
            owners.insert(id.clone(), owner(resources, id).await);
        }
    }
    for change in &plan.changes {
        let Some(owner) = change.claimed_by.as_ref().and_then(|id| owners.get(id)) else {
            continue;
        };
        if force {
            ui::note(&format!(
                "taking over {} from {owner} (--force-conflicts)",
                change.object
            ));
        } else {
            plan.failures.push((
                change.object.clone(),
                format!(
                    "it belongs to {owner}, and kdeploy never changes another project's objects; remove it from \
                     these manifests, or take it over with --force-conflicts (after renaming a project, that is how its objects move)"
                ),
            ));
        }
    }
}

/// The server's refusals, one a line.
pub fn failures_text(plan: &Plan) -> String {
    let mut text = format!("the server refused {} object(s) in the dry run:\n", plan.failures.len());
    for (object, message) in &plan.failures {
        text.push_str(&format!("  {object}: {message}\n"));
    }
    text
}

/// Shows the plan's diffs and summary table: on stdout, or on stderr when stdout carries a JSON report.
/// Warns about the objects a change would touch that a GitOps engine applies: `consequence` says what
/// the engine will do about it.
pub fn warn_about_gitops(plan: &Plan, consequence: &str) {
    let mut tracked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for change in plan.changes.iter().filter(|c| c.operation != Operation::Unchanged) {
        let engine = [change.live.as_ref(), change.manifest.as_ref()]
            .into_iter()
            .flatten()
            .find_map(crate::cluster::gitops::tracked_by);
        if let Some(engine) = engine {
            tracked
                .entry(engine.to_string())
                .or_default()
                .push(change.object.to_string());
        }
    }
    for (engine, objects) in tracked {
        ui::warn(&format!(
            "{} {} applied by {engine}: {consequence}",
            objects.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                + &if objects.len() > 3 {
                    format!(" and {} more", objects.len() - 3)
                } else {
                    String::new()
                },
            if objects.len() == 1 { "is" } else { "are" },
        ));
    }
}

pub fn show_plan(plan: &Plan, redactor: &Redactor, json_output: bool) -> anyhow::Result<()> {
    let diff: String = plan
        .changes
        .iter()
        .map(|c| crate::ui::diff::change_diff(c, redactor, !json_output && ui::stdout_color()))
        .collect();
    let shown = format!("{diff}{}", crate::ui::diff::summary_table(plan));
    if json_output {
        eprint!("{shown}");
        Ok(())
    } else {
        super::write_stdout(&shown)
    }
}

/// Asks `question` before `verb` writes anything, unless `yes`; false when the answer is no. Without a
/// terminal to ask on, it is an error to go on unasked.
pub fn confirmed(yes: bool, verb: &str, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !(ui::stdin_is_terminal() && ui::stderr_is_terminal()) {
        anyhow::bail!("refusing to {verb} without confirmation: there is no terminal to ask on, so pass --yes");
    }
    Ok(ui::confirm(question, false)?)
}

/// Writes a command's closing summary, masked: a failure's on stderr (unless it is the JSON report),
/// and says how to exit.
pub fn finish(
    summary: &str,
    redactor: &Redactor,
    failed: bool,
    json_output: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let summary = redactor.redact(summary);
    if failed && !json_output {
        eprint!("{summary}");
    } else {
        super::write_stdout(&summary)?;
    }
    Ok(if failed {
        std::process::ExitCode::from(super::EXIT_ERROR)
    } else {
        std::process::ExitCode::SUCCESS
    })
}
