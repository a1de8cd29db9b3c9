//! The floor for diff: only the server-side apply dry runs `kdeploy diff` sends (one per object, at
//! kdeploy's default concurrency of 8), without rendering, listing, comparison or output.
//! `benches/compare.sh` times it next to `kdeploy diff`, in the namespace kdeploy diffs, so the dry runs
//! meet the same existing objects (a dry-run update costs the server more than a dry-run create).
//!
//! Usage: dry-run-floor FILE NAMESPACE [CONCURRENCY]
//!   FILE: a YAML stream of objects (an object's own namespace wins over NAMESPACE); KUBECONFIG selects
//!   the cluster; CONCURRENCY defaults to 8.

use std::sync::Arc;

use kdeploy::cluster::client::{Concurrency, ConnectOptions, connect, with_retries};
use kdeploy::cluster::resources::Resources;
use kdeploy::yaml::parse_stream;
use kube::api::{Patch, PatchParams};
use tokio::sync::Semaphore;

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (path, namespace) = (
        args.next().ok_or("usage: dry-run-floor FILE NAMESPACE")?,
        args.next().ok_or("NAMESPACE")?,
    );
    let text = std::fs::read_to_string(path)?;
    let objects: Vec<serde_json::Value> = parse_stream(&text, &mut |_| Ok(None))?
        .into_iter()
        .filter(|d| !d.root.is_null())
        .map(|d| d.root.to_json())
        .collect::<Result<_, _>>()?;
    let concurrency: usize = args.next().map_or(Ok(8), |c| c.parse())?;
    let options = ConnectOptions {
        concurrency: Concurrency::Fixed(concurrency),
        ..ConnectOptions::default()
    };
    let cluster = connect(&options).await?;
    let resources = Arc::new(Resources::new(cluster.client));
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for object in objects {
        let (resources, semaphore, namespace) = (resources.clone(), semaphore.clone(), namespace.clone());
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let resolved = resources
                .resolve(object["apiVersion"].as_str().unwrap_or_default(), &kind)
                .await?
                .ok_or("unknown kind")?;
            let mut object = object;
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(&namespace)
                .to_owned();
            if resolved.namespaced {
                object["metadata"]["namespace"] = serde_json::Value::String(namespace.clone());
            }
            let api = resources.api(&resolved, Some(&namespace));
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let params = PatchParams::apply("kdeploy").dry_run();
            let patch = Patch::Apply(&object);
            with_retries(|| api.patch(&name, &params, &patch)).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result?.map_err(|e| e.to_string())?;
    }
    Ok(())
}
