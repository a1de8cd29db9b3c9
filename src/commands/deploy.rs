//! What `diff` and `apply` share: render, connect to the target's cluster, label the objects for the
//! ApplySet, and plan with server-side dry runs.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value as Json;

use super::{Inputs, RenderedInputs};
use crate::cli::{ClusterArgs, InputArgs};
use crate::cluster::applyset::{ApplySet, group_kind};
use crate::cluster::client::{ConnectOptions, connect};
use crate::cluster::plan::{Operation, Plan, PlanOptions, plan};
use crate::cluster::resources::Resources;

/// A rendered manifest planned against a cluster.
pub struct Prepared {
    pub rendered: RenderedInputs,
    pub context: String,
    pub resources: Arc<Resources>,
    pub applyset: ApplySet,
    pub plan: Plan,
}

impl Prepared {
    /// The group-kinds and namespaces of the objects that stay (for the ApplySet parent).
    pub fn desired_scope(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let staying = self.plan.changes.iter().filter(|c| c.operation != Operation::Prune);
        let kinds = staying
            .clone()
            .map(|c| group_kind(&c.object.group, &c.object.kind))
            .collect();
        let namespaces = staying.filter_map(|c| c.object.namespace.clone()).collect();
        (kinds, namespaces)
    }
}

/// A runtime for the cluster commands (the machines kdeploy runs on are small: two threads suffice).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub async fn prepare(input: &InputArgs, cluster_args: &ClusterArgs) -> anyhow::Result<Prepared> {
    let rendered = Inputs::gather(input)?.render()?;
    let selection = &rendered.inputs.selection;
    let options = ConnectOptions {
        kubeconfig: cluster_args.kubeconfig.clone(),
        context: cluster_args.context.clone(),
        target_context: selection.context.clone().zip(selection.target.clone()),
    };
    let cluster = connect(&options).await?;
    let namespace = selection.namespace.clone().unwrap_or_else(|| cluster.namespace.clone());
    let applyset_name = cluster_args
        .applyset
        .clone()
        .unwrap_or_else(|| match &selection.target {
            Some(target) => format!("kdeploy-{target}"),
            None => "kdeploy".to_owned(),
        });
    let applyset = ApplySet::new(&applyset_name, &namespace);
    let objects: Vec<Json> = rendered
        .manifest
        .objects
        .iter()
        .map(|o| {
            let mut value = o.value.clone();
            applyset.label(&mut value);
            value
        })
        .collect();
    let resources = Arc::new(Resources::new(cluster.client.clone()));
    let plan_options = PlanOptions {
        concurrency: cluster_args.concurrency,
        force_conflicts: cluster_args.force_conflicts,
    };
    let plan = plan(&resources, objects, &namespace, Some(&applyset), plan_options).await?;
    Ok(Prepared {
        rendered,
        context: cluster.context,
        resources,
        applyset,
        plan,
    })
}

/// The server's refusals, one a line.
pub fn failures_text(plan: &Plan) -> String {
    let mut text = format!("the server refused {} object(s) in the dry run:\n", plan.failures.len());
    for (object, message) in &plan.failures {
        text.push_str(&format!("  {object}: {message}\n"));
    }
    text
}
