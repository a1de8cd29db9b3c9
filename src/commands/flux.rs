//! `kdeploy flux generate`: the OCIRepository and Kustomization that deploy what `kdeploy push`
//! pushed for a target, on stdout; on stderr, the command that creates the decryption Secret, with a
//! placeholder where the cluster's key goes. `kdeploy flux status`: those two objects as Flux reports
//! them.

use std::process::ExitCode;

use anyhow::{Context as _, bail};

use serde_json::{Value as Json, json};

use crate::cli::{FluxCommand, FluxGenerateArgs, FluxProjectArgs, FluxStatusArgs, ReportFormat};
use crate::project::{FluxConfig, PROJECT_FILE, Project};
use crate::publish::flux::{self, Deployment, Follow};
use crate::publish::oci::Reference;
use crate::ui;

pub fn run(command: &FluxCommand) -> anyhow::Result<ExitCode> {
    match command {
        FluxCommand::Generate(args) => generate(args),
        FluxCommand::Status(args) => status(args),
    }
}

/// The project's identity (the Flux objects' name), its Flux settings, and the project file.
struct FluxProject {
    name: String,
    namespace: String,
    config: FluxConfig,
    context: Option<(String, String)>,
    file: std::path::PathBuf,
}

fn flux_project(args: &FluxProjectArgs) -> anyhow::Result<FluxProject> {
    let file = if args.project.is_dir() {
        Project::find_in(&args.project).with_context(|| format!("no {PROJECT_FILE} in {}", args.project.display()))?
    } else {
        args.project.clone()
    };
    let selection = Project::load(&file)?.select(args.target.as_deref())?;
    let Some(name) = selection.identity.clone() else {
        bail!(
            "{} has no `name:`; the Flux objects are named after the project's identity",
            file.display()
        );
    };
    Ok(FluxProject {
        name,
        namespace: selection.flux.namespace.clone().unwrap_or_else(|| "flux-system".into()),
        context: selection.context.clone().zip(selection.target.clone()),
        config: selection.flux,
        file,
    })
}

fn generate(args: &FluxGenerateArgs) -> anyhow::Result<ExitCode> {
    let project = flux_project(&args.project)?;
    let (name, namespace, flux_config, file) = (&project.name, &project.namespace, &project.config, &project.file);
    let text = match (&args.reference, &flux_config.repository) {
        (Some(text), _) | (None, Some(text)) => text.clone(),
        (None, None) => bail!(
            "name the artifact's repository: `kdeploy flux generate oci://HOST/REPOSITORY`, or `flux: {{repository: …}}` in {}",
            file.display()
        ),
    };
    let repository = Reference::parse(&text).map_err(anyhow::Error::msg)?;
    let follow = match (&args.digest, &args.tag, &args.semver) {
        (Some(digest), _, _) => {
            Reference::parse(&format!("oci://{}@{digest}", repository.repository_url())).map_err(anyhow::Error::msg)?;
            Follow::Digest(digest.clone())
        }
        (_, Some(tag), _) => Follow::Tag(tag.clone()),
        (_, _, Some(range)) => Follow::Semver(range.clone()),
        _ => match (&repository.digest, &repository.tag) {
            (Some(digest), _) => Follow::Digest(digest.clone()),
            (None, Some(tag)) => Follow::Tag(tag.clone()),
            (None, None) => Follow::Tag("latest".into()),
        },
    };
    let decryption_secret = flux_config
        .decryption_secret
        .clone()
        .unwrap_or_else(|| format!("{name}-sops"));
    let deployment = Deployment {
        name,
        namespace,
        repository: &repository,
        follow,
        insecure: args.plain_http,
        cert_secret: args.ca_secret.as_deref(),
        decryption_secret: &decryption_secret,
        interval: &args.interval,
    };
    let objects = flux::objects(&deployment);
    let text = crate::yaml::emit::to_yaml_stream(objects.iter())?;
    super::write_stdout(&text)?;
    let recipients = flux_config.recipients.clone().unwrap_or_default();
    let commands = flux::decryption_secret_commands(&recipients, &decryption_secret, namespace);
    if commands.is_empty() {
        ui::note(&format!(
            "{} declares no `flux: recipients:`; `kdeploy push` refuses Secrets until it does",
            file.display()
        ));
    } else {
        ui::note("create the decryption Secret with the cluster's key (kdeploy never holds it):");
        for command in commands {
            eprintln!("  {command}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The Flux objects' state: (Ready status, reason, message) of each, the revision the Kustomization
/// last applied and the one the source holds.
fn status(args: &FluxStatusArgs) -> anyhow::Result<ExitCode> {
    let project = flux_project(&args.project)?;
    super::deploy::runtime()?.block_on(async {
        let (cluster, _) = super::located::connect_with(&args.connection, project.context.clone()).await?;
        let get = |group: &str, kind: &str, plural: &str| {
            let resource = kube::api::ApiResource {
                group: group.into(),
                version: "v1".into(),
                api_version: format!("{group}/v1"),
                kind: kind.into(),
                plural: plural.into(),
            };
            let api: kube::Api<kube::api::DynamicObject> =
                kube::Api::namespaced_with(cluster.client.clone(), &project.namespace, &resource);
            let name = project.name.clone();
            async move { api.get_opt(&name).await }
        };
        let kustomization = get("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations")
            .await
            .with_context(|| format!("reading Kustomization {}/{}", project.namespace, project.name))?;
        let source = get("source.toolkit.fluxcd.io", "OCIRepository", "ocirepositories")
            .await
            .with_context(|| format!("reading OCIRepository {}/{}", project.namespace, project.name))?;
        let Some(kustomization) = kustomization else {
            bail!(
                "there is no Kustomization {}/{} on context {}: apply what `kdeploy flux generate` prints",
                project.namespace,
                project.name,
                cluster.context
            );
        };
        let kustomization = serde_json::to_value(kustomization)?;
        let source = source.map(serde_json::to_value).transpose()?.unwrap_or(Json::Null);
        let applied = kustomization["status"]["lastAppliedRevision"].as_str().unwrap_or_default();
        let attempted = kustomization["status"]["lastAttemptedRevision"].as_str().unwrap_or_default();
        let available = source["status"]["artifact"]["revision"].as_str().unwrap_or_default();
        let (ready, reason, message) = ready_condition(&kustomization);
        let (source_ready, source_reason, source_message) = ready_condition(&source);
        let inventory = kustomization["status"]["inventory"]["entries"].as_array().map_or(0, Vec::len);
        let fine = ready == "True" && !available.is_empty() && applied == available;
        let report = json!({
            "context": cluster.context,
            "kustomization": {
                "name": project.name, "namespace": project.namespace,
                "ready": ready, "reason": reason, "message": message,
                "lastAppliedRevision": applied, "lastAttemptedRevision": attempted,
                "objects": inventory,
            },
            "source": {
                "ready": source_ready, "reason": source_reason, "message": source_message,
                "revision": available,
                "url": source["spec"]["url"],
                "metadata": source["status"]["artifact"]["metadata"],
            },
            "upToDate": fine,
        });
        let text = match args.output {
            ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
            ReportFormat::Text => {
                let created = source["status"]["artifact"]["metadata"][crate::publish::oci::REVISION]
                    .as_str()
                    .map(|r| format!(" (from {r})"))
                    .unwrap_or_default();
                format!(
                    "context {}\nKustomization {}/{}: Ready={ready} {reason}: {message}\n  last applied:   {}\n  last attempted: {}\n  objects:        {inventory}\nOCIRepository {}/{}: Ready={source_ready} {source_reason}: {source_message}\n  artifact:       {}{created}\n",
                    cluster.context,
                    project.namespace,
                    project.name,
                    none_if_empty(applied),
                    none_if_empty(attempted),
                    project.namespace,
                    project.name,
                    none_if_empty(available),
                )
            }
        };
        super::write_stdout(&text)?;
        Ok(if fine { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_CHANGES) })
    })
}

fn none_if_empty(text: &str) -> &str {
    if text.is_empty() { "(none)" } else { text }
}

/// The `Ready` condition's status, reason and message (`Unknown` when there is none).
fn ready_condition(object: &Json) -> (String, String, String) {
    let condition = object["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Ready"));
    let field = |name: &str| condition.and_then(|c| c[name].as_str()).unwrap_or_default().to_owned();
    match condition {
        Some(_) => (field("status"), field("reason"), field("message")),
        None => (
            "Unknown".into(),
            "NotReconciled".into(),
            "Flux has not reported on it yet".into(),
        ),
    }
}
