//! `kdeploy list`: every kdeploy project on the cluster (its ApplySet parents, in one namespace or all),
//! with its identity, target, namespaces, latest revision, when and by whom it was applied, how many
//! objects it holds and their health. It needs only read access: one LIST of parents, one LIST of
//! revision metadata, and the members' LISTs for health.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde_json::json;

use super::located::{Located, connect_with};
use super::status::statuses;
use super::{EXIT_ERROR, deploy};
use crate::cli::{ListArgs, ReportFormat};
use crate::cluster::applyset::{ApplySet, PROJECT_ANNOTATION};
use crate::cluster::client::with_retries;
use crate::cluster::resources::Resources;
use crate::cluster::revision;

/// One project on the cluster.
#[derive(Debug, serde::Serialize)]
struct Listed {
    project: Option<String>,
    applyset: String,
    namespace: String,
    namespaces: Vec<String>,
    target: Option<String>,
    revision: Option<u64>,
    outcome: Option<String>,
    applied_at: Option<String>,
    applied_by: Option<String>,
    objects: usize,
    health: String,
}

pub fn run(args: &ListArgs) -> anyhow::Result<ExitCode> {
    deploy::runtime()?.block_on(async {
        let (cluster, concurrency) = connect_with(&args.connection, None).await?;
        let namespace =
            (!args.all_namespaces).then(|| args.namespace.clone().unwrap_or_else(|| cluster.namespace.clone()));
        let api: Api<Secret> = match &namespace {
            Some(ns) => Api::namespaced(cluster.client.clone(), ns),
            None => Api::all(cluster.client.clone()),
        };
        let params = ListParams::default().labels("applyset.kubernetes.io/id");
        let parents = with_retries(|| api.list_metadata(&params))
            .await
            .map_err(|e| crate::cluster::ClusterError::api("listing ApplySet parents", e))
            .map_err(|e| e.naming_server(&cluster.server, &cluster.context))?;
        let headlines = revision::headlines(&cluster.client, namespace.as_deref()).await?;
        let resources = std::sync::Arc::new(Resources::new(cluster.client.clone()).with_disk_cache(&cluster.server));
        let mut listed = Vec::new();
        let mut errors = 0;
        for parent in parents.items {
            let annotations = parent.metadata.annotations.clone().unwrap_or_default();
            if !annotations
                .get("applyset.kubernetes.io/tooling")
                .is_some_and(|t| t.starts_with("kdeploy/"))
            {
                continue;
            }
            let name = parent.metadata.name.clone().unwrap_or_default();
            let namespace = parent.metadata.namespace.clone().unwrap_or_default();
            let project = annotations.get(PROJECT_ANNOTATION).cloned();
            let set = ApplySet::new(&name, &namespace, project.as_deref());
            let latest = headlines.get(&set.id).and_then(|list| list.first());
            let (health, objects, namespaces) = match set.recorded(&resources).await {
                Ok(Some(recorded)) => {
                    let mut namespaces: Vec<String> = recorded.1.iter().cloned().collect();
                    if !namespaces.contains(&namespace) {
                        namespaces.insert(0, namespace.clone());
                    }
                    let located = Located {
                        cluster: cluster.clone(),
                        resources: resources.clone(),
                        set: set.clone(),
                        recorded,
                        project_dir: None,
                        health: None,
                        concurrency,
                    };
                    match statuses(&located, None).await {
                        Ok(statuses) => {
                            let count = |h: &str| statuses.iter().filter(|s| s.health == h).count();
                            let health = format!(
                                "{} ready{}{}",
                                count("ready"),
                                match count("progressing") {
                                    0 => String::new(),
                                    n => format!(", {n} progressing"),
                                },
                                match count("failed") {
                                    0 => String::new(),
                                    n => format!(", {n} failed"),
                                }
                            );
                            (health, statuses.len(), namespaces)
                        }
                        Err(error) => {
                            errors += 1;
                            (format!("unknown ({error})"), 0, namespaces)
                        }
                    }
                }
                Ok(None) => continue,
                Err(error) => {
                    errors += 1;
                    (format!("unknown ({error})"), 0, vec![namespace.clone()])
                }
            };
            listed.push(Listed {
                project,
                applyset: name,
                namespace,
                namespaces,
                target: latest.and_then(|h| h.target.clone()),
                revision: latest.map(|h| h.number),
                outcome: latest.map(|h| h.outcome.clone()),
                applied_at: latest.map(|h| h.time.clone()),
                applied_by: latest.map(|h| h.who.clone()),
                objects,
                health,
            });
        }
        let text = if args.output == ReportFormat::Json {
            format!("{}\n", serde_json::to_string_pretty(&json!({"projects": listed}))?)
        } else {
            table(&listed)
        };
        super::write_stdout(&text)?;
        Ok(if errors > 0 {
            ExitCode::from(EXIT_ERROR)
        } else {
            ExitCode::SUCCESS
        })
    })
}

fn table(listed: &[Listed]) -> String {
    if listed.is_empty() {
        return "no kdeploy projects found\n".to_owned();
    }
    let rows: Vec<[String; 8]> = listed
        .iter()
        .map(|l| {
            [
                l.project.clone().unwrap_or_else(|| format!("({})", l.applyset)),
                l.namespaces.join(","),
                l.target.clone().unwrap_or_else(|| "-".into()),
                l.revision
                    .map_or_else(|| "-".into(), |n| format!("{n} {}", l.outcome.as_deref().unwrap_or(""))),
                l.applied_at.clone().unwrap_or_else(|| "-".into()),
                l.applied_by.clone().unwrap_or_else(|| "-".into()),
                l.objects.to_string(),
                l.health.clone(),
            ]
        })
        .collect();
    let header = [
        "PROJECT",
        "NAMESPACES",
        "TARGET",
        "REVISION",
        "APPLIED",
        "BY",
        "OBJECTS",
        "HEALTH",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    let mut text = line(header.to_vec());
    for row in &rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}
