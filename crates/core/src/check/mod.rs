//! Offline validation: every object of the manifest against the schema of its kind, before any
//! cluster sees it, with each mistake reported at the place its author wrote it.
//!
//! The schemas come, in this order, from the CustomResourceDefinitions in the stream itself, from the
//! cluster when one is connected (its own `/openapi/v3`), from the embedded Kubernetes schemas of the
//! target version ([`kubernetes`]), and from the schema folders a project names (`schemas:`, the
//! layout of kubeconform's CRD catalogues). [`openapi`] holds the rules; [`locate`] turns a field path
//! into a template's `file:line:column`; [`values`] finds the values that no template reads, and
//! [`values_schema`] checks them against the project's JSON Schema.
//!
//! The stage sits between the manifest and the cluster: it reads [`crate::manifest::Object`]s and
//! reports; it never changes them and never asks a cluster anything itself.

pub mod kubernetes;
pub mod locate;
pub mod openapi;
pub mod values;
pub mod values_schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::manifest::{Object, group_of};
use openapi::{Dialect, SchemaId, SchemaSet, Step, Validator};

/// What validation is held to.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A kind with no schema anywhere is an error, not a warning.
    pub strict: bool,
}

/// Where a custom kind's schema came from: the stream's own CRD replaces any other, and a folder's
/// only fills a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaOrigin {
    Stream,
    Cluster,
    Folder,
}

/// Every schema one validation may use.
#[derive(Debug, Clone)]
pub struct Catalog {
    set: SchemaSet,
    /// What the schemas describe: `Kubernetes 1.36.3`, or `the cluster (v1.36.3)`.
    pub target: String,
    /// The embedded version the target is compared with for removed apiVersions.
    embedded_version: &'static str,
    /// Built-in kinds: the name of each one's definition, compiled when an object needs it.
    builtin: HashMap<(String, String, String), String>,
    /// The built-in kinds compiled so far.
    compiled: HashMap<(String, String, String), SchemaId>,
    custom: HashMap<(String, String, String), (SchemaId, SchemaOrigin)>,
    object_meta: Option<SchemaId>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Version(String),
    #[error("cannot read the schemas: {0}")]
    Schema(#[from] openapi::SchemaError),
    #[error("schema folder {}: {message}", path.display())]
    Folder { path: PathBuf, message: String },
    /// Objects that fail validation, each problem at its place: the whole report, laid out.
    #[error("{0}")]
    Invalid(String),
}

/// `(group, version, kind)` of an apiVersion and kind.
fn gvk(api_version: &str, kind: &str) -> (String, String, String) {
    let group = group_of(api_version);
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    (group.to_owned(), version.to_owned(), kind.to_owned())
}

impl Catalog {
    /// The embedded schemas of Kubernetes `version` (`1.36`, `v1.36.3`), no cluster involved.
    pub fn embedded(version: &str) -> Result<Catalog, CheckError> {
        let version = kubernetes::normalize_version(version).map_err(CheckError::Version)?;
        let mut set = SchemaSet::new();
        let built_in = kubernetes::load(version, &mut set)?;
        let object_meta = set.definition(kubernetes::OBJECT_META)?;
        Ok(Catalog {
            set,
            target: format!("Kubernetes {}", built_in.version),
            embedded_version: version,
            builtin: built_in.kinds,
            compiled: HashMap::new(),
            custom: HashMap::new(),
            object_meta,
            warnings: Vec::new(),
        })
    }

    /// The schemas a cluster serves at `/openapi/v3` (one document per group-version), with the
    /// embedded version nearest its own for what the documents leave out.
    pub fn served(cluster_version: &str, documents: Vec<Json>) -> Result<Catalog, CheckError> {
        let embedded = kubernetes::normalize_version(cluster_version).unwrap_or(kubernetes::DEFAULT_VERSION);
        let mut served = HashMap::new();
        let mut set = SchemaSet::new();
        for mut document in documents {
            let Some(Json::Object(definitions)) = document.pointer_mut("/components/schemas").map(Json::take) else {
                continue;
            };
            kubernetes::index_kinds(&definitions, &mut served);
            set.add_definitions(
                definitions
                    .into_iter()
                    .map(|(name, schema)| (name, openapi::Pending::Parsed(schema))),
            );
        }
        // The served documents replace the embedded ones wholesale (one arena, one ObjectMeta); a
        // cluster that serves no ObjectMeta served nothing usable, and the embedded schemas stay.
        let Some(object_meta) = set.definition(kubernetes::OBJECT_META)? else {
            return Catalog::embedded(embedded);
        };
        let mut catalog = Catalog {
            set,
            target: format!("the cluster (Kubernetes {cluster_version})"),
            embedded_version: kubernetes::normalize_version(embedded).map_err(CheckError::Version)?,
            builtin: HashMap::new(),
            compiled: HashMap::new(),
            custom: HashMap::new(),
            object_meta: Some(object_meta),
            warnings: Vec::new(),
        };
        for (key, name) in served {
            if kubernetes::is_builtin_group(&key.0) {
                catalog.builtin.insert(key, name);
            } else if let Some(id) = catalog.set.definition(&name)? {
                catalog.custom.insert(key, (id, SchemaOrigin::Cluster));
            }
        }
        Ok(catalog)
    }

    /// Adds the schemas of the CRDs among `objects`: they are what the objects beside them will meet.
    pub fn add_stream_crds(&mut self, objects: &[Object]) {
        for object in objects {
            if object.kind() == "CustomResourceDefinition" && object.api_version() == "apiextensions.k8s.io/v1" {
                let name = object.name().to_owned();
                self.add_crd(
                    &object.value,
                    SchemaOrigin::Stream,
                    &format!("CustomResourceDefinition {name}"),
                );
            }
        }
    }

    fn add_crd(&mut self, crd: &Json, origin: SchemaOrigin, label: &str) {
        let spec = &crd["spec"];
        let (Some(group), Some(kind)) = (
            spec["group"].as_str(),
            spec.pointer("/names/kind").and_then(Json::as_str),
        ) else {
            return;
        };
        for version in spec["versions"].as_array().into_iter().flatten() {
            let (Some(name), Some(schema)) = (
                version["name"].as_str(),
                version.pointer("/schema/openAPIV3Schema").filter(|s| s.is_object()),
            ) else {
                continue;
            };
            let key = (group.to_owned(), name.to_owned(), kind.to_owned());
            // The stream's own CRD is what its objects will meet; any other source only fills gaps.
            let replaces =
                |existing: &SchemaOrigin| origin == SchemaOrigin::Stream && *existing != SchemaOrigin::Stream;
            if self.custom.get(&key).is_some_and(|(_, existing)| !replaces(existing)) {
                continue;
            }
            match self.set.add_schema(schema, Dialect::Structural) {
                Ok(id) => {
                    self.custom.insert(key, (id, origin));
                }
                Err(e) => self.warnings.push(format!(
                    "{label}: version {name}'s schema cannot be read ({e}); its objects go unchecked"
                )),
            }
        }
    }

    /// Adds the schemas of a folder: JSON Schema files in the layout of kubeconform's CRD catalogues
    /// (`GROUP/KIND_VERSION.json`, kind in lower case), and CRD manifests (`*.yaml`, `*.yml`).
    pub fn add_folder(&mut self, folder: &Path) -> Result<(), CheckError> {
        let fail = |message: String| CheckError::Folder {
            path: folder.to_path_buf(),
            message,
        };
        let mut files = Vec::new();
        collect_files(folder, &mut crate::trust::Walk::default(), 0, &mut files).map_err(|e| fail(e.to_string()))?;
        files.sort();
        let limit = crate::trust::policy().limits.max_text_file_bytes;
        for file in files {
            let extension = file.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if !matches!(extension, "json" | "yaml" | "yml") {
                continue;
            }
            let text = crate::trust::read_text(&file, "schema", limit).map_err(|e| fail(e.to_string()))?;
            if extension == "json" {
                let Some((kind, version)) = file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.rsplit_once('_'))
                else {
                    continue;
                };
                let group = file
                    .parent()
                    .and_then(|p| p.file_name())
                    .and_then(|g| g.to_str())
                    .unwrap_or_default();
                let schema: Json = serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", file.display())))?;
                let id = self
                    .set
                    .add_schema(&schema, Dialect::Structural)
                    .map_err(|e| fail(format!("{}: {e}", file.display())))?;
                let key = (group.to_owned(), version.to_owned(), kind.to_lowercase());
                self.custom.entry(key).or_insert((id, SchemaOrigin::Folder));
            } else {
                let documents = crate::yaml::json_documents(&text).map_err(|e| fail(e.at(&file)))?;
                for document in documents {
                    if document.root["kind"] == "CustomResourceDefinition" {
                        let label = format!("{}", file.display());
                        self.add_crd(&document.root, SchemaOrigin::Folder, &label);
                    }
                }
            }
        }
        Ok(())
    }

    /// Compiles the built-in kinds `objects` use, and every definition they refer to.
    fn prepare(&mut self, objects: &[Object]) -> Result<(), CheckError> {
        for object in objects {
            let key = gvk(object.api_version(), object.kind());
            if self.compiled.contains_key(&key) || self.custom.contains_key(&key) {
                continue;
            }
            if let Some(name) = self.builtin.get(&key)
                && let Some(id) = self.set.definition(name)?
            {
                self.compiled.insert(key, id);
            }
        }
        Ok(())
    }

    /// Compiles every definition, so that copies of the catalog need no more work.
    pub fn compile_all(&mut self) -> Result<(), CheckError> {
        self.set.compile_all()?;
        let compiled: Vec<_> = self
            .builtin
            .iter()
            .filter_map(|(key, name)| Some((key.clone(), self.set.definition(name).ok()??)))
            .collect();
        self.compiled.extend(compiled);
        Ok(())
    }

    /// The schema of a kind, and whether it is a custom resource's.
    fn schema_for(&self, api_version: &str, kind: &str) -> Option<(SchemaId, bool)> {
        let key = gvk(api_version, kind);
        if let Some((id, _)) = self.custom.get(&key) {
            return Some((*id, true));
        }
        if let Some(id) = self.compiled.get(&key) {
            return Some((*id, false));
        }
        let folder_key = (key.0, key.1, key.2.to_lowercase());
        self.custom
            .get(&folder_key)
            .filter(|(_, origin)| *origin == SchemaOrigin::Folder)
            .map(|(id, _)| (*id, true))
    }
}

/// Every regular file below `dir` (confined in untrusted mode; links are not followed).
fn collect_files(
    dir: &Path,
    walk: &mut crate::trust::Walk,
    depth: usize,
    files: &mut Vec<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    if depth > 8 || !walk.enter(dir, "schema folder")? {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), walk, depth + 1, files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// One finding about one object of the manifest.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Its position in the manifest's objects.
    pub object: usize,
    pub path: Vec<Step>,
    pub at_key: bool,
    pub message: String,
}

/// What validation found.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<Finding>,
    /// Kinds with no schema anywhere (errors under `--strict`), and schemas that could not be read.
    pub warnings: Vec<String>,
}

/// Validates every object against its kind's schema, on every core (the kinds' schemas compiled
/// first).
pub fn validate(objects: &[Object], catalog: &mut Catalog, options: &Options) -> Result<Report, CheckError> {
    catalog.prepare(objects)?;
    let catalog = &*catalog;
    enum Outcome {
        Checked(Vec<openapi::Violation>),
        Unserved(String),
        Unknown,
    }
    let outcomes = crate::parallel::map(objects, |object| {
        let (api_version, kind) = (object.api_version(), object.kind());
        match catalog.schema_for(api_version, kind) {
            Some((schema, custom)) => {
                let mut validator = Validator::new(&catalog.set, catalog.object_meta);
                validator.object(&object.value, schema, custom);
                Outcome::Checked(validator.violations)
            }
            None => {
                let (group, version, _) = gvk(api_version, kind);
                if kubernetes::is_builtin_group(&group) {
                    let why = kubernetes::removal(catalog.embedded_version, &group, &version, kind)
                        .unwrap_or_else(|| format!("{} does not serve {api_version} {kind}", catalog.target));
                    Outcome::Unserved(why)
                } else {
                    Outcome::Unknown
                }
            }
        }
    });
    let mut report = Report {
        warnings: catalog.warnings.clone(),
        ..Report::default()
    };
    let mut unknown: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Checked(violations) => report.errors.extend(violations.into_iter().map(|v| Finding {
                object: index,
                path: v.path,
                at_key: v.at_key,
                message: v.message,
            })),
            Outcome::Unserved(why) => report.errors.push(Finding {
                object: index,
                path: vec![Step::Key("apiVersion".into())],
                at_key: false,
                message: why,
            }),
            Outcome::Unknown => {
                let object = &objects[index];
                if options.strict {
                    report.errors.push(Finding {
                        object: index,
                        path: vec![Step::Key("kind".into())],
                        at_key: false,
                        message: format!(
                            "no schema for {} {}: no CRD in the stream, the cluster or the schema folders defines it (--strict)",
                            object.api_version(),
                            object.kind()
                        ),
                    });
                } else {
                    *unknown
                        .entry(format!("{} {}", object.api_version(), object.kind()))
                        .or_default() += 1;
                }
            }
        }
    }
    for (kind, count) in unknown {
        report.warnings.push(format!(
            "{kind}: no schema (no CRD for it in the stream, the cluster or the schema folders), so {count} object(s) go unchecked; --strict makes this an error"
        ));
    }
    Ok(report)
}

/// The report's errors as one error: each at the place its author wrote it, as far as that can be
/// told, else at the object's document.
pub fn failure(report: &Report, objects: &[Object], catalog: &Catalog, origins: &dyn locate::Origins) -> CheckError {
    let mut placed: HashMap<(PathBuf, usize), Option<locate::Placed>> = HashMap::new();
    let mut text = String::new();
    let failing: std::collections::BTreeSet<usize> = report.errors.iter().map(|f| f.object).collect();
    text.push_str(&format!(
        "{} problem{} in {} object{}, checked against {} (--no-validate skips this):",
        report.errors.len(),
        if report.errors.len() == 1 { "" } else { "s" },
        failing.len(),
        if failing.len() == 1 { "" } else { "s" },
        catalog.target
    ));
    for finding in &report.errors {
        let object = &objects[finding.object];
        let path = openapi::path_text(&finding.path);
        let message = if path.is_empty() {
            format!("{}: {}", object.reference(), finding.message)
        } else {
            format!("{} {path}: {}", object.reference(), finding.message)
        };
        let source = &object.source;
        let document = placed
            .entry((source.template.clone(), source.document))
            .or_insert_with(|| origins.place(source));
        // A Secret's lines are its values; a program's output may carry a vault value.
        let quote = object.kind() != "Secret";
        let at = document
            .as_ref()
            .and_then(|d| locate::locate(d, source.list_item, &finding.path, finding.at_key, quote));
        text.push_str("\n\n");
        match at {
            Some((location, line)) => text.push_str(&locate::error_at(message, location, line).to_string()),
            None => text.push_str(&format!("{message}\n  --> {source}")),
        }
    }
    CheckError::Invalid(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Source;
    use serde_json::json;

    fn object(value: Json) -> Object {
        Object {
            value,
            source: Source {
                template: PathBuf::from("t.yaml"),
                document: 1,
                line: 1,
                rendered: false,
                source: 0,
                list_item: None,
            },
        }
    }

    fn messages(objects: &[Object], options: &Options) -> (Vec<String>, Vec<String>) {
        let mut catalog = Catalog::embedded(kubernetes::DEFAULT_VERSION).unwrap();
        catalog.add_stream_crds(objects);
        let report = validate(objects, &mut catalog, options).unwrap();
        let errors = report
            .errors
            .iter()
            .map(|f| {
                format!(
                    "{} {}: {}",
                    objects[f.object].kind(),
                    openapi::path_text(&f.path),
                    f.message
                )
            })
            .collect();
        (errors, report.warnings)
    }

    fn deployment(spec: Json) -> Json {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": spec})
    }

    #[test]
    fn a_valid_deployment_passes_and_mistakes_are_each_named() {
        let good = deployment(json!({
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}, "creationTimestamp": null}, "spec": {"containers": [{
                "name": "web", "image": "nginx",
                "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 0.25}}
            }]}}
        }));
        assert_eq!(messages(&[object(good)], &Options::default()), (vec![], vec![]));
        let bad = deployment(json!({
            "replicas": "3",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"contianers": [], "containers": [{"image": "nginx", "resources": {"limits": {"cpu": "half"}}}]}}
        }));
        let (errors, _) = messages(&[object(bad)], &Options::default());
        assert_eq!(
            errors,
            [
                "Deployment spec.replicas: must be an integer, not a string",
                "Deployment spec.template.spec.contianers: unknown field `contianers`",
                "Deployment spec.template.spec.containers[0].resources.limits.cpu: is not a quantity: quantities are a number with an optional suffix (100m, 1.5, 2Gi, 1e3)",
                "Deployment spec.template.spec.containers[0]: missing required field `name`",
            ]
        );
    }

    #[test]
    fn custom_resources_meet_the_crd_of_their_own_stream() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "string", "enum": ["S", "M", "L"]}}}}}}}]}
        });
        let good = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}}, "spec": {"size": "M"}});
        let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "lables": {}}, "spec": {"size": "XL", "colour": "red"}});
        let (errors, warnings) = messages(&[object(crd), object(good), object(bad)], &Options::default());
        assert_eq!(
            errors,
            [
                "Widget metadata.lables: unknown field `lables`",
                "Widget spec.size: must be one of `S`, `M`, `L`",
                "Widget spec.colour: unknown field `colour`",
            ]
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn kinds_without_a_schema_warn_unless_strict_and_removed_apis_say_what_replaced_them() {
        let widget = object(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}));
        let (errors, warnings) = messages(std::slice::from_ref(&widget), &Options::default());
        assert!(errors.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("example.com/v1 Widget: no schema"),
            "{warnings:?}"
        );
        let (errors, _) = messages(std::slice::from_ref(&widget), &Options { strict: true });
        assert_eq!(errors.len(), 1, "{errors:?}");
        let old =
            object(json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"}}));
        let (errors, _) = messages(&[old], &Options::default());
        assert_eq!(
            errors,
            [
                "PodDisruptionBudget apiVersion: policy/v1beta1 PodDisruptionBudget was removed in Kubernetes 1.25; use policy/v1 (Kubernetes' deprecated API migration guide)"
            ]
        );
    }

    #[test]
    fn secret_data_must_be_base64_and_messages_never_quote_values() {
        let secret = object(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "hunter2!"}, "stringData": {"ok": "plain"}}),
        );
        let (errors, _) = messages(&[secret], &Options::default());
        assert_eq!(
            errors,
            ["Secret data.password: is not a valid base64 text (format byte)"]
        );
        assert!(!errors[0].contains("hunter2"));
    }
}
