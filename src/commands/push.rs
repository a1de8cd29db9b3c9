//! `kdeploy push oci://HOST/REPOSITORY:TAG` (or `--dir PATH`): render, lay the objects out as a tree
//! with Secrets encrypted for the cluster, and push it as a Flux OCI artifact (or write it to a
//! folder). Nothing is pushed or written when any object is refused.
//!
//! An unchanged render gives the same tree (unchanged Secrets keep their SOPS documents), so the same
//! layer; when the tag already holds that layer, nothing is pushed and the tag keeps its digest, so
//! Flux sees no new revision.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::cli::{PushArgs, ReportFormat};
use crate::publish::archive;
use crate::publish::layout::{self, Files, SecretEncryption};
use crate::publish::oci::{self, Reference};
use crate::publish::registry::{Connection, Registry};
use crate::ui;
use crate::vault::keys::KeyServices;

/// The largest previous layer read back, packed and unpacked.
const MAX_PREVIOUS_LAYER: u64 = 64 << 20;
const MAX_PREVIOUS_TREE: usize = 256 << 20;

pub fn run(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let reference = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if let Some(reference) = &reference {
        if reference.digest.is_some() {
            bail!("push to a tag (oci://HOST/REPOSITORY:TAG): a digest names what is already there");
        }
        if reference.tag.is_none() {
            bail!("`{reference}` has no tag: push to oci://HOST/REPOSITORY:TAG");
        }
    }
    let inputs = super::Inputs::gather(&args.input)?;
    // A repository under review must not choose what is published, nor the keys it is encrypted to.
    if crate::trust::untrusted() {
        bail!(
            "kdeploy push publishes what it renders, encrypted to the recipients the project names: run it on \
             trusted commits (the main branch), never with --untrusted (a pull request's `kdeploy diff --untrusted` is the check)"
        );
    }
    let rendered = inputs.render()?;
    let selection = &rendered.inputs.selection;
    warn_about_flux_fields(&rendered.manifest);
    let recipients = selection.flux.recipients.clone().unwrap_or_default();
    let services = KeyServices::new(&|name| std::env::var(name).ok());
    let encryption = SecretEncryption {
        recipients: &recipients,
        services: &services,
        content_key: rendered.inputs.secrets.checksum_key(),
    };
    let secrets = rendered
        .manifest
        .objects
        .iter()
        .filter(|o| layout::is_secret_object(o))
        .count();
    if secrets > 0 && encryption.content_key.is_none() && !recipients.is_empty() {
        ui::note(
            "without a project vault kdeploy has no key to recognise an unchanged Secret, so each push encrypts \
             them afresh and makes a new digest (`kdeploy vault init` makes one)",
        );
    }
    let is_secret = |text: &str| rendered.redactor.contains_secret(text);
    let objects = rendered.manifest.objects.len();
    let report = |changed: bool, place: serde_json::Value, text: String| -> anyhow::Result<ExitCode> {
        match args.output {
            ReportFormat::Text => {
                ui::note(&format!(
                    "{} {objects} object{} ({secrets} Secret{} encrypted for {} cluster recipient{})",
                    if changed { "pushed" } else { "unchanged:" },
                    plural(objects),
                    plural(secrets),
                    recipients.len(),
                    plural(recipients.len()),
                ));
                super::write_stdout(&format!("{text}\n"))?;
            }
            ReportFormat::Json => {
                let mut report = json!({"changed": changed, "objects": objects, "secrets": secrets});
                if let (Some(map), Some(place)) = (report.as_object_mut(), place.as_object()) {
                    map.extend(place.clone());
                }
                super::write_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            }
        }
        Ok(ExitCode::SUCCESS)
    };

    if let Some(dir) = &args.dir {
        let previous = read_folder(dir)?;
        let files = layout::build(
            &rendered.manifest,
            &is_secret,
            &encryption,
            previous.as_ref().map(|p| &p.files),
        )?;
        let changed = previous.as_ref().is_none_or(|p| p.files != files);
        if changed {
            write_folder(dir, &files, previous.as_ref())?;
        }
        return report(changed, json!({"dir": dir}), dir.display().to_string());
    }

    let Some(reference) = reference else {
        bail!("name where to push (oci://HOST/REPOSITORY:TAG) or a folder (--dir PATH)");
    };
    let tag = reference.tag.clone().unwrap_or_default();
    let connection = Connection {
        plain_http: args.registry.plain_http,
        ca_file: args.registry.ca_file.clone(),
    };
    let registry = Registry::connect(&reference, &connection)?;
    let existing = registry.manifest(&tag)?;
    let previous = match &existing {
        Some((_, manifest)) => previous_tree(&registry, manifest),
        None => None,
    };
    let files = layout::build(&rendered.manifest, &is_secret, &encryption, previous.as_ref())?;
    let layer = archive::tar_gz(&files);
    let layer_digest = oci::digest(&layer);
    let place = |digest: &str| {
        json!({
            "repository": reference.repository_url(),
            "tag": tag,
            "digest": digest,
            "url": reference.to_string(),
        })
    };
    if let Some((digest, manifest)) = &existing
        && oci::content_layer(manifest).map(|(d, _)| d) == Some(layer_digest.as_str())
    {
        return report(false, place(digest), format!("{}@{digest}", reference.repository_url()));
    }
    let project_dir = selection.project_dir.clone().unwrap_or_else(|| ".".into());
    let annotations = annotations(&project_dir, args.source.as_deref(), args.revision.as_deref());
    let manifest = oci::manifest(&layer, &annotations);
    registry.put_blob(oci::CONFIG)?;
    registry.put_blob(&layer)?;
    let digest = registry.put_manifest(&tag, &manifest)?;
    report(true, place(&digest), format!("{}@{digest}", reference.repository_url()))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Objects rendered with Flux's own labels would fight the Kustomization that applies them, and a
/// namespaced object that names no namespace has none in Flux either (kubectl would use the context's).
fn warn_about_flux_fields(manifest: &crate::manifest::Manifest) {
    let unplaced: Vec<String> = manifest
        .without_namespace()
        .iter()
        .map(|o| o.reference().to_string())
        .collect();
    if !unplaced.is_empty() {
        ui::warn(&format!(
            "{}{} name no namespace, and Flux has no current namespace to give them: set `namespace:` in kdeploy.yaml \
             or the target (a custom kind whose CRD is not in the project may be cluster-scoped and fine)",
            unplaced.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if unplaced.len() > 3 {
                format!(" and {} more", unplaced.len() - 3)
            } else {
                String::new()
            }
        ));
    }
    for object in &manifest.objects {
        if let Some(engine) = crate::cluster::gitops::tracked_by(&object.value) {
            ui::warn(&format!(
                "{} is rendered with the tracking labels of {engine}; Flux sets its own on what it applies",
                object.reference()
            ));
        }
    }
}

/// The tree the tag holds now, to keep its unchanged Secrets; None (with a note) when it cannot be
/// read, which only costs reproducibility.
fn previous_tree(registry: &Registry, manifest: &serde_json::Value) -> Option<Files> {
    let (digest, size) = oci::content_layer(manifest)?;
    if size > MAX_PREVIOUS_LAYER {
        ui::note("the tag's current artifact is too large to read back; its Secrets are encrypted afresh");
        return None;
    }
    let result = registry
        .blob(digest, MAX_PREVIOUS_LAYER)
        .map_err(|e| e.to_string())
        .and_then(|bytes| archive::read_tar_gz(&bytes, MAX_PREVIOUS_TREE));
    match result {
        Ok(files) => Some(files),
        Err(e) => {
            ui::note(&format!(
                "the tag's current artifact could not be read back ({e}); its Secrets are encrypted afresh"
            ));
            None
        }
    }
}

/// `created`, `source` and `revision`, as `flux push artifact` sets them: the time of the commit
/// (`SOURCE_DATE_EPOCH` first, now outside git), the git remote without credentials, BRANCH@sha1:COMMIT.
fn annotations(dir: &Path, source: Option<&str>, revision: Option<&str>) -> BTreeMap<String, String> {
    let git = |args: &[&str]| crate::util::git(dir, args);
    let created = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .or_else(|| git(&["log", "-1", "--format=%ct"]))
        .and_then(|secs| secs.trim().parse::<i64>().ok())
        .map(|secs| {
            let [y, mo, d, h, mi, s] = crate::util::utc_from_unix(secs);
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
        })
        .unwrap_or_else(crate::util::now_rfc3339);
    let mut annotations = BTreeMap::from([(oci::CREATED.to_owned(), created)]);
    let source = source
        .map(str::to_owned)
        .or_else(|| git(&["config", "--get", "remote.origin.url"]))
        .map(|url| crate::util::without_userinfo(&url));
    if let Some(source) = source.filter(|s| !s.is_empty()) {
        annotations.insert(oci::SOURCE.to_owned(), source);
    }
    let revision = revision.map(str::to_owned).or_else(|| {
        let commit = git(&["rev-parse", "HEAD"]).filter(|c| c.len() >= 40)?;
        Some(
            match git(&["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD") {
                Some(branch) => format!("{branch}@sha1:{commit}"),
                None => format!("sha1:{commit}"),
            },
        )
    });
    if let Some(revision) = revision {
        annotations.insert(oci::REVISION.to_owned(), revision);
    }
    annotations
}

/// What an earlier `push --dir` wrote into a folder: the files its kustomization.yaml lists.
struct Folder {
    files: Files,
}

/// The tree kdeploy wrote into `dir` before; None for a missing or empty folder. A folder holding
/// anything else is refused: kdeploy removes files there, and only its own.
fn read_folder(dir: &Path) -> anyhow::Result<Option<Folder>> {
    let kustomization = dir.join(layout::KUSTOMIZATION_FILE);
    if !kustomization.exists() {
        let empty = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        };
        if !empty {
            bail!(
                "{} is not empty and holds no kustomization.yaml written by kdeploy push; give an empty or new folder",
                dir.display()
            );
        }
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&kustomization).with_context(|| format!("cannot read {}", kustomization.display()))?;
    if !text.starts_with(layout::KUSTOMIZATION_HEADER) {
        bail!(
            "{} was not written by kdeploy push; kdeploy only rewrites a folder it wrote",
            kustomization.display()
        );
    }
    let listed = crate::yaml::json_documents(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", kustomization.display()))?
        .into_iter()
        .next()
        .map(|d| d.root)
        .unwrap_or_default();
    let mut files = Files::new();
    files.insert(layout::KUSTOMIZATION_FILE.to_owned(), text.into_bytes());
    for path in listed["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
    {
        if !layout::is_tree_path(path) {
            bail!(
                "{} lists `{path}`, which is not a path kdeploy writes",
                kustomization.display()
            );
        }
        match std::fs::read(dir.join(path)) {
            Ok(bytes) => {
                files.insert(path.to_owned(), bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.join(path).display())),
        }
    }
    Ok(Some(Folder { files }))
}

/// Writes the tree (each file atomically, kustomization.yaml last), then removes the files of
/// objects that left and folders that are empty after that.
fn write_folder(dir: &Path, files: &Files, previous: Option<&Folder>) -> anyhow::Result<()> {
    let objects = || files.iter().filter(|(p, _)| *p != layout::KUSTOMIZATION_FILE);
    // Every file in the way is found before anything is written: a refusal leaves the folder as it was.
    for (path, _) in objects() {
        let file = dir.join(path);
        if previous.is_none_or(|p| !p.files.contains_key(path)) && file.exists() {
            bail!(
                "{} exists and was not written by kdeploy push; move it away first",
                file.display()
            );
        }
    }
    for (path, bytes) in objects() {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        crate::vault::write_atomically(&file, bytes)?;
    }
    if let Some(previous) = previous {
        for path in previous.files.keys().filter(|p| !files.contains_key(*p)) {
            let file = dir.join(path);
            std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
            if let Some(parent) = file.parent().filter(|p| *p != dir) {
                // Only an empty folder goes.
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::vault::write_atomically(
        &dir.join(layout::KUSTOMIZATION_FILE),
        &files[layout::KUSTOMIZATION_FILE],
    )?;
    Ok(())
}
