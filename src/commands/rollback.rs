//! `kdeploy rollback [REVISION]`: apply a stored revision's manifest again (default: the last deployed
//! revision before the current one) with the plan, diff, confirmation, lock, prune and wait of `apply`.
//! It needs no project files (`--applyset` and `-n` name the set), and the vault identity only when the
//! revision holds Secrets.
//!
//! Before anything is written it refuses, each with an `--allow-…` override, when a CRD would lose a
//! version the cluster serves or stores, when the revision's Secrets cannot be restored, or when a newer
//! kdeploy wrote the revision; it warns when objects carry Argo CD or Flux tracking (their engine will
//! roll forward again).

use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value as Json, json};

use super::apply::{Execution, execute, text_summary};
use super::located::{Located, locate, release_lock, take_lock};
use super::revisions::{self, Recorder};
use super::{EXIT_ERROR, deploy};
use crate::cli::{ReportFormat, RollbackArgs};
use crate::cluster::apply::ApplyOptions;
use crate::cluster::lock::DeployLock;
use crate::cluster::plan::{Operation, PlanOptions, plan};
use crate::cluster::revision::{self, Outcome, Stored};
use crate::ui;
use crate::vault::identity::IdentityChain;
use crate::vault::redact::Redactor;

pub fn run(args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    deploy::runtime()?.block_on(async {
        let located = locate(&args.set).await?;
        let lock = take_lock(&located, args.lock_timeout, args.dry_run).await?;
        let result = roll_back(args, &located, &lock).await;
        release_lock(lock).await;
        result
    })
}

async fn roll_back(
    args: &RollbackArgs,
    located: &Located,
    lock: &std::sync::Mutex<Option<DeployLock>>,
) -> anyhow::Result<ExitCode> {
    let set = &located.set;
    let resources = &located.resources;
    let history = revision::read_all(&resources.client(), set).await?;
    for skipped in &history.skipped {
        ui::warn(skipped);
    }
    let Some(current) = history.latest() else {
        bail!(
            "Secret/{} in {} has no revisions to roll back to",
            set.name,
            set.namespace
        );
    };
    let target: &Stored = match args.revision {
        Some(number) => history.get(number).ok_or_else(|| {
            let kept: Vec<String> = history.revisions.iter().map(|r| r.record.number.to_string()).collect();
            anyhow::anyhow!("there is no revision {number} (kept: {})", kept.join(", "))
        })?,
        None => history.last_good_before_latest().ok_or_else(|| {
            anyhow::anyhow!(
                "there is no deployed revision before the current one ({}); name one with `kdeploy rollback N` (see `kdeploy history`)",
                current.record.number
            )
        })?,
    };
    let record = &target.record;
    ui::note(&format!(
        "rolling back to revision {} of {} (applied {} by {})",
        record.number,
        set.project.as_deref().unwrap_or(&set.name),
        record.time,
        record.who
    ));

    // Refusals, before anything is written.
    let mut refusals = Vec::new();
    if (record.format > revision::FORMAT || revision::is_newer_version(&record.kdeploy_version)) && !args.allow_newer {
        refusals.push(format!(
            "revision {} was written by kdeploy {}, newer than this one ({}): it may hold what this kdeploy cannot restore faithfully (--allow-newer)",
            record.number,
            record.kdeploy_version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    let mut identities = IdentityChain::from_process(args.identity.identity.as_deref());
    let (objects, left_alone, unrestorable) = revisions::restorable(resources, record, None, &mut identities).await;
    if let Some(why) = unrestorable {
        if args.allow_unrestored_secrets {
            ui::warn(&format!(
                "{why}; those Secrets are left as they are (--allow-unrestored-secrets)"
            ));
        } else {
            refusals.push(format!(
                "its Secrets cannot be restored: {why} (--allow-unrestored-secrets leaves them as they are)"
            ));
        }
    }
    if !args.allow_crd_version_loss {
        refusals.extend(crd_version_losses(resources, &objects).await?);
    }
    if !refusals.is_empty() {
        eprintln!("error: refusing to roll back to revision {}:", record.number);
        for refusal in &refusals {
            eprintln!("  - {refusal}");
        }
        eprintln!("nothing was changed");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    // Values of the restored Secrets are masked wherever they could show.
    let mut plaintexts = Vec::new();
    for object in objects.iter().filter(|o| o["kind"] == "Secret") {
        for field in ["data", "stringData"] {
            crate::vault::collect_plaintexts(&object[field], &mut plaintexts);
        }
    }
    let redactor = Redactor::new(plaintexts.iter().map(|s| s.as_str()));
    crate::trust::mask(plaintexts.iter().map(|s| s.as_str()));

    let options = PlanOptions {
        concurrency: located.concurrency.most(),
        chunk_size: 500,
        force_conflicts: args.force_conflicts,
        full_dry_run: false,
        readiness: None,
    };
    let mut plan = plan(resources, objects, &record.namespace, Some(set), options).await?;
    // Secrets that cannot be restored stay as they are, in the set.
    plan.changes
        .retain(|c| !(c.operation == Operation::Prune && left_alone.contains(&c.object)));
    if !plan.failures.is_empty() {
        eprint!("error: {}", redactor.redact(&deploy::failures_text(&plan)));
        eprintln!("nothing was changed");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    deploy::warn_about_gitops(
        &plan,
        "it will roll them forward again unless its source is rolled back too",
    );
    let json_output = args.output == ReportFormat::Json;
    deploy::show_plan(&plan, &redactor, json_output)?;
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let changing = plan.has_changes();
    let question = format!(
        "roll back to revision {} in context {}?",
        record.number, located.cluster.context
    );
    if changing && !deploy::confirmed(args.yes, "roll back", &question)? {
        ui::note("nothing was changed");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let rules = located.health.clone().unwrap_or_else(|| record.health_rules());
    let reserved = changing.then(|| revisions::reserve(set, &plan, args.history_max));
    let execution = Execution {
        resources,
        applyset: Some(set),
        options: ApplyOptions {
            force_conflicts: args.force_conflicts,
            prune: true,
            prune_namespaces: args.prune_namespaces,
            concurrency: located.concurrency.most(),
            wait_timeout: args.timeout,
            wait_last: !args.no_wait,
            rules: &rules,
        },
        lock_later: None,
        lock,
        // Secrets left as they are stay members: the parent keeps their kind.
        narrow_parent: left_alone.is_empty(),
    };
    let report = execute(&execution, &plan).await?;
    let failed = report.failure.is_some() || !report.not_ready.is_empty();
    if let Some((number, previous_max)) = reserved {
        let recorder = Recorder {
            client: resources.client(),
            set,
            history_max: args.history_max,
            previous_max,
            project_dir: located.project_dir.as_deref(),
            target: record.target.clone(),
            context: located.cluster.context.clone(),
            namespace: record.namespace.clone(),
            health: rules.clone(),
            redactor: &redactor,
            sealing: None,
        };
        let outcome = if failed { Outcome::Failed } else { Outcome::Deployed };
        let restored = recorder.record_restored(number, record, &report, outcome);
        recorder.write(&restored).await;
    }
    let summary = if json_output {
        let report_json = json!({
            "rolled_back_to": record.number,
            "revision": reserved.map(|(n, _)| n),
            "applied": report.applied.iter().map(|(o, op)| json!({"object": o, "operation": op})).collect::<Vec<_>>(),
            "pruned": report.pruned,
            "kept": report.kept,
            "not_applied": report.not_applied,
            "failure": report.failure.as_ref().map(|(o, m)| json!({"object": o, "message": redactor.redact(m)})),
            "not_ready": report.not_ready,
            "success": !failed,
        });
        format!("{}\n", serde_json::to_string_pretty(&report_json)?)
    } else {
        let mut text = text_summary(&report, changing);
        if !failed {
            text.push_str(&match reserved {
                Some((number, _)) => format!(
                    "rolled back to revision {} (recorded as revision {number})\n",
                    record.number
                ),
                None => format!("the cluster already holds revision {}\n", record.number),
            });
        }
        text
    };
    deploy::finish(&summary, &redactor, failed, json_output)
}

/// The versions CRDs in `objects` would stop serving or lose although the cluster serves them or
/// stores objects in them.
async fn crd_version_losses(
    resources: &crate::cluster::resources::Resources,
    objects: &[Json],
) -> anyhow::Result<Vec<String>> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(resources.client());
    let mut losses = Vec::new();
    for crd in objects.iter().filter(|o| o["kind"] == "CustomResourceDefinition") {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let Some(live) = crate::cluster::client::with_retries(|| api.get_opt(name)).await? else {
            continue;
        };
        let wanted: Vec<(&str, bool)> = crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?, v["served"] == true)))
            .collect();
        let served_after = |version: &str| wanted.iter().any(|(n, served)| *n == version && *served);
        let present_after = |version: &str| wanted.iter().any(|(n, _)| *n == version);
        for version in live.spec.versions.iter().filter(|v| v.served) {
            if !served_after(&version.name) {
                losses.push(format!(
                    "CustomResourceDefinition/{name} would stop serving {}, which the cluster serves now (--allow-crd-version-loss)",
                    version.name
                ));
            }
        }
        for stored in live.status.iter().flat_map(|s| s.stored_versions.iter().flatten()) {
            if !present_after(stored) {
                losses.push(format!(
                    "CustomResourceDefinition/{name} would lose {stored}, which status.storedVersions says objects are stored in (--allow-crd-version-loss)"
                ));
            }
        }
    }
    Ok(losses)
}
