//! The stored history that `status`, `history`, `rollback` and `delete` read: one revision per apply
//! that changed something, kept in Secrets next to the ApplySet parent.
//!
//! A revision is a [`Record`] (who, when, which commit, what changed, the outcome, and the whole applied
//! manifest), gzipped JSON in the Secret `PARENT.rN`, where N is the revision's slot: revision `n` goes
//! to slot `(n - 1) % history_max`, overwriting the oldest, so recording one is one write and the
//! history never grows past `history_max` with no deletes. A record larger than [`PART_BYTES`] once
//! compressed (none of the upstream stacks kdeploy is tested with comes near: kube-prometheus is about
//! 300 KB) is split into parts `PARENT.rN.pK`, one write each.
//!
//! No revision makes a Secret readable by anyone who could not read it before. The manifest keeps only
//! a stub of every Secret (its metadata, and its data keys with masked values), and of any other object
//! that carries a vault value; the objects themselves are sealed to the project's vault recipients
//! ([`crate::vault::seal`]) in [`Record::sealed`]. Without a vault they are not stored at all, and
//! [`Record::unsealed`] names them.
//!
//! The outcome lives in a label, so that a later step (an automatic rollback) can change it with one
//! small patch; `superseded` is not stored but read: a deployed revision with a newer one after it.

use std::io::{Read as _, Write as _};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value as Json, json};

use super::ClusterError;
use super::applyset::ApplySet;
use super::client::with_retries;
use super::health::HealthRules;
use super::plan::Operation;
use crate::manifest::ObjectRef;

/// Labels every revision Secret with its set's ID.
pub const REVISION_OF_LABEL: &str = "kdeploy.dev/revision-of";
const NUMBER_LABEL: &str = "kdeploy.dev/revision";
const OUTCOME_LABEL: &str = "kdeploy.dev/outcome";
const PART_LABEL: &str = "kdeploy.dev/revision-part";
const PARTS_ANNOTATION: &str = "kdeploy.dev/revision-parts";
const TIME_ANNOTATION: &str = "kdeploy.dev/applied-at";
const WHO_ANNOTATION: &str = "kdeploy.dev/applied-by";
const TARGET_ANNOTATION: &str = "kdeploy.dev/target";
const OBJECTS_ANNOTATION: &str = "kdeploy.dev/objects";
const VERSION_ANNOTATION: &str = "kdeploy.dev/kdeploy-version";
const SECRET_TYPE: &str = "kdeploy.dev/revision";
const DATA_KEY: &str = "revision.json.gz";
const FIELD_MANAGER: &str = "kdeploy-revision";
/// The format of [`Record`]; a revision of a later format is refused by a rollback unless asked.
pub const FORMAT: u32 = 1;
/// The most compressed bytes one revision Secret holds (Secrets hold 1 MiB, base64 makes 4 of 3).
pub const PART_BYTES: usize = 700 * 1024;
/// What a sealed object's stub carries in place of its values.
pub const MASK: &str = crate::vault::redact::MASK;
/// Marks a stub: its value is the object's index in the sealed list.
pub const STUB_FIELD: &str = "kdeploy.dev/sealed";
/// Revisions kept by default.
pub const DEFAULT_HISTORY_MAX: u32 = 10;

/// How an apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Deployed,
    /// Deployed, and a newer revision came after it (never stored: read from the order).
    Superseded,
    Failed,
    /// Failed, and the automatic rollback put the revision before it back.
    RolledBack,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::Superseded => "superseded",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled-back",
        }
    }

    /// Deployed, whether or not a newer revision came after it.
    pub fn is_deployed(self) -> bool {
        matches!(self, Outcome::Deployed | Outcome::Superseded)
    }

    fn parse(text: &str) -> Option<Outcome> {
        [Outcome::Deployed, Outcome::Failed, Outcome::RolledBack]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// One change an apply made.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChangeRecord {
    pub object: ObjectRef,
    pub operation: Operation,
}

/// One revision.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub format: u32,
    pub number: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// `user@host`, or the CI's job and actor.
    pub who: String,
    pub kdeploy_version: String,
    pub commit: Option<String>,
    /// The work tree had changes not committed.
    pub dirty: Option<bool>,
    pub project: Option<String>,
    pub target: Option<String>,
    pub context: String,
    /// The default namespace the manifest was applied with.
    pub namespace: String,
    pub outcome: Outcome,
    /// The revision a rollback put back.
    pub rollback_of: Option<u64>,
    /// What failed, for a failed revision (masked).
    pub message: Option<String>,
    pub changes: Vec<ChangeRecord>,
    /// The applied manifest, in apply order; sealed objects as stubs.
    pub objects: Vec<Json>,
    /// The sealed objects (a SOPS JSON document), when any were sealed.
    pub sealed: Option<String>,
    /// Secrets whose values were not stored: the project has no vault to seal them to.
    pub unsealed: Vec<ObjectRef>,
    /// The readiness rules the apply used (a rollback uses them without the project file).
    pub health: Vec<super::health::HealthRule>,
    /// The number of the revision's objects (as the manifest holds them).
    #[serde(default)]
    pub object_count: usize,
}

/// A revision as the cluster holds it: its record, and its outcome as labelled.
#[derive(Debug, Clone)]
pub struct Stored {
    pub record: Record,
    /// The outcome as read (superseded when a newer revision exists).
    pub outcome: Outcome,
    /// The compressed size, over all its parts.
    pub stored_bytes: usize,
}

/// A revision's headline, from its Secret's metadata only (for `list`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Headline {
    pub number: u64,
    pub outcome: String,
    pub time: String,
    pub who: String,
    pub target: Option<String>,
    pub objects: usize,
}

impl Record {
    pub fn health_rules(&self) -> HealthRules {
        HealthRules(self.health.clone())
    }

    /// The object a stub stands for, from the opened sealed list; the stub itself when it is none.
    pub fn objects_unsealed(&self, sealed: Option<&[Json]>) -> Vec<Json> {
        self.objects
            .iter()
            .map(|object| match (stub_index(object), sealed) {
                (Some(index), Some(list)) => list.get(index).cloned().unwrap_or_else(|| object.clone()),
                _ => object.clone(),
            })
            .collect()
    }
}

/// The objects of `objects` that are stubs of sealed ones (their values not at hand), as references.
pub fn stubs(objects: &[Json]) -> Vec<ObjectRef> {
    objects
        .iter()
        .filter(|o| stub_index(o).is_some())
        .map(reference)
        .collect()
}

/// The index a stub stands for.
pub fn stub_index(object: &Json) -> Option<usize> {
    object[STUB_FIELD].as_u64().map(|n| n as usize)
}

/// What identifies a manifest object (its namespace as applied).
pub fn reference(object: &Json) -> ObjectRef {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    ObjectRef {
        group: crate::manifest::group_of(api_version).to_owned(),
        kind: object["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
        name: object["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Splits the applied objects into what the record keeps in the clear and what must be sealed: every
/// Secret, and every object in which `carries_secret` finds a vault value. Returns the objects with
/// stubs in place of the sealed ones, and the sealed ones in stub order.
pub fn split_sealed(objects: Vec<Json>, carries_secret: &dyn Fn(&str) -> bool) -> (Vec<Json>, Vec<Json>) {
    let mut sealed = Vec::new();
    let kept = objects
        .into_iter()
        .map(|object| {
            let is_secret = object["kind"] == "Secret" && object["apiVersion"] == "v1";
            let text = object.to_string();
            if !is_secret && !carries_secret(&text) {
                return object;
            }
            let stub = stub_of(&object, sealed.len(), carries_secret);
            sealed.push(object);
            stub
        })
        .collect();
    (kept, sealed)
}

/// A sealed object's stand-in: its identity and metadata, and for a Secret its data keys, masked. When
/// even the metadata carries a vault value, only the identity.
fn stub_of(object: &Json, index: usize, carries_secret: &dyn Fn(&str) -> bool) -> Json {
    let mut stub = json!({
        "apiVersion": object["apiVersion"],
        "kind": object["kind"],
        "metadata": object["metadata"],
        STUB_FIELD: index,
    });
    if carries_secret(&stub.to_string()) {
        stub["metadata"] = json!({
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
        });
        return stub;
    }
    for field in ["data", "stringData"] {
        if let Some(map) = object[field].as_object()
            && object["kind"] == "Secret"
        {
            let masked: serde_json::Map<String, Json> =
                map.keys().map(|k| (k.clone(), Json::String(MASK.into()))).collect();
            stub[field] = Json::Object(masked);
        }
    }
    if object["kind"] == "Secret" && object["type"].is_string() {
        stub["type"] = object["type"].clone();
    }
    stub
}

/// gzip.
pub fn compress(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// gunzip, refusing more than `limit` bytes of output (a revision is read from a cluster, not trusted
/// to be small).
pub fn decompress(bytes: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not gzip: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes uncompressed"));
    }
    Ok(out)
}

/// The most a revision may inflate to when read.
const MAX_RECORD_BYTES: u64 = 512 * 1024 * 1024;

/// The name of slot `slot`'s Secret (part 0) or of a further part.
fn secret_name(set: &ApplySet, slot: u64, part: usize) -> String {
    match part {
        0 => format!("{}.r{slot}", set.name),
        n => format!("{}.r{slot}.p{n}", set.name),
    }
}

fn api(client: &kube::Client, set: &ApplySet) -> Api<Secret> {
    Api::namespaced(client.clone(), &set.namespace)
}

fn selector(set: &ApplySet) -> ListParams {
    ListParams::default().labels(&format!("{REVISION_OF_LABEL}={}", set.id))
}

/// Writes `record` into its slot: one write, or one per part for a record over [`PART_BYTES`].
/// When `history_max` shrank since the last write (`previous_max`), the slots past it are deleted.
pub async fn write(
    client: &kube::Client,
    set: &ApplySet,
    record: &Record,
    history_max: u32,
    previous_max: Option<u32>,
) -> Result<usize, ClusterError> {
    let history_max = history_max.max(1);
    let slot = (record.number - 1) % u64::from(history_max);
    let json = serde_json::to_vec(record).map_err(|e| ClusterError::Config(format!("encoding revision: {e}")))?;
    let compressed = compress(&json);
    let parts: Vec<&[u8]> = compressed.chunks(PART_BYTES).collect();
    let api = api(client, set);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    // Further parts first: once part 0 names them, they are there.
    for (index, bytes) in parts.iter().enumerate().rev() {
        let name = secret_name(set, slot, index);
        let mut labels = std::collections::BTreeMap::from([
            (REVISION_OF_LABEL.to_owned(), set.id.clone()),
            (NUMBER_LABEL.to_owned(), record.number.to_string()),
        ]);
        let mut annotations = std::collections::BTreeMap::new();
        if index == 0 {
            labels.insert(OUTCOME_LABEL.to_owned(), record.outcome.as_str().to_owned());
            annotations.extend([
                (PARTS_ANNOTATION.to_owned(), parts.len().to_string()),
                (TIME_ANNOTATION.to_owned(), record.time.clone()),
                (WHO_ANNOTATION.to_owned(), record.who.clone()),
                (OBJECTS_ANNOTATION.to_owned(), record.object_count.to_string()),
                (VERSION_ANNOTATION.to_owned(), record.kdeploy_version.clone()),
            ]);
            if let Some(target) = &record.target {
                annotations.insert(TARGET_ANNOTATION.to_owned(), target.clone());
            }
        } else {
            labels.insert(PART_LABEL.to_owned(), index.to_string());
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(set.namespace.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.to_owned()),
            data: Some(std::collections::BTreeMap::from([(
                DATA_KEY.to_owned(),
                ByteString(bytes.to_vec()),
            )])),
            ..Default::default()
        };
        let mut value = serde_json::to_value(&secret).unwrap_or(Json::Null);
        value["apiVersion"] = json!("v1");
        value["kind"] = json!("Secret");
        let patch = Patch::Apply(&value);
        with_retries(|| api.patch(&name, &params, &patch)).await.map_err(|e| {
            ClusterError::api(
                format!(
                    "recording revision {} in Secret/{name} in {}",
                    record.number, set.namespace
                ),
                e,
            )
        })?;
    }
    if let Some(previous) = previous_max
        && previous > history_max
    {
        for slot in u64::from(history_max)..u64::from(previous) {
            let name = secret_name(set, slot, 0);
            let delete = DeleteParams::default();
            match with_retries(|| api.delete(&name, &delete)).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => {
                    return Err(ClusterError::api(
                        format!("deleting Secret/{name} past --history-max"),
                        e,
                    ));
                }
            }
        }
    }
    Ok(compressed.len())
}

/// Sets a stored revision's outcome (one small patch of its label).
pub async fn set_outcome(
    client: &kube::Client,
    set: &ApplySet,
    number: u64,
    history_max: u32,
    outcome: Outcome,
) -> Result<(), ClusterError> {
    let slot = (number - 1) % u64::from(history_max.max(1));
    let name = secret_name(set, slot, 0);
    let patch = json!({"metadata": {"labels": {OUTCOME_LABEL: outcome.as_str()}}});
    let (api, params, patch) = (api(client, set), PatchParams::default(), Patch::Merge(&patch));
    with_retries(|| api.patch(&name, &params, &patch))
        .await
        .map_err(|e| ClusterError::api(format!("marking revision {number} {}", outcome.as_str()), e))?;
    Ok(())
}

/// Every stored revision, newest first (one LIST). Parts that do not belong to their revision (a
/// write cut short) make that revision unreadable, and it is left out with a warning in `skipped`.
pub async fn read_all(client: &kube::Client, set: &ApplySet) -> Result<History, ClusterError> {
    let api = api(client, set);
    let params = selector(set);
    let list = with_retries(|| api.list(&params)).await.map_err(|e| {
        ClusterError::api(
            format!("listing the revisions of Secret/{} in {}", set.name, set.namespace),
            e,
        )
    })?;
    let mut heads = Vec::new();
    let mut parts = std::collections::HashMap::new();
    for secret in list.items {
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        let Some(number) = labels.get(NUMBER_LABEL).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        match labels.get(PART_LABEL).and_then(|p| p.parse::<usize>().ok()) {
            Some(part) => {
                parts.insert((number, part), secret);
            }
            None => heads.push((number, secret)),
        }
    }
    heads.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
    let mut history = History::default();
    let mut newer = false;
    for (number, head) in heads {
        let count: usize = head
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PARTS_ANNOTATION))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let mut bytes = data_of(&head);
        let mut complete = true;
        for part in 1..count {
            match parts.get(&(number, part)) {
                Some(secret) => bytes.extend(data_of(secret)),
                None => complete = false,
            }
        }
        if !complete {
            history.skipped.push(format!(
                "revision {number}: a part is missing (its write was cut short)"
            ));
            continue;
        }
        let record = decompress(&bytes, MAX_RECORD_BYTES)
            .and_then(|json| serde_json::from_slice::<Record>(&json).map_err(|e| e.to_string()));
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                history.skipped.push(format!("revision {number}: unreadable ({error})"));
                continue;
            }
        };
        let labelled = head
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(OUTCOME_LABEL))
            .and_then(|o| Outcome::parse(o))
            .unwrap_or(record.outcome);
        let outcome = match labelled {
            Outcome::Deployed if newer => Outcome::Superseded,
            other => other,
        };
        newer = true;
        history.revisions.push(Stored {
            record,
            outcome,
            stored_bytes: bytes.len(),
        });
    }
    Ok(history)
}

fn data_of(secret: &Secret) -> Vec<u8> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .map(|b| b.0.clone())
        .unwrap_or_default()
}

/// The revisions of a set, newest first.
#[derive(Debug, Default)]
pub struct History {
    pub revisions: Vec<Stored>,
    /// Revisions that could not be read, and why.
    pub skipped: Vec<String>,
}

impl History {
    pub fn get(&self, number: u64) -> Option<&Stored> {
        self.revisions.iter().find(|r| r.record.number == number)
    }

    pub fn latest(&self) -> Option<&Stored> {
        self.revisions.first()
    }

    /// The revision a rollback goes back to by default: the newest one that deployed, before the
    /// newest revision.
    pub fn last_good_before_latest(&self) -> Option<&Stored> {
        self.revisions.iter().skip(1).find(|r| r.outcome.is_deployed())
    }
}

/// The headlines of every kdeploy revision in `namespace` (all namespaces when none), from metadata
/// only: one LIST, whatever the revisions weigh. Keyed by set ID, newest first.
pub async fn headlines(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<std::collections::BTreeMap<String, Vec<Headline>>, ClusterError> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let params = ListParams::default().labels(&format!("{REVISION_OF_LABEL},!{PART_LABEL}"));
    let list = with_retries(|| api.list_metadata(&params))
        .await
        .map_err(|e| ClusterError::api("listing kdeploy revisions", e))?;
    let mut by_set: std::collections::BTreeMap<String, Vec<Headline>> = Default::default();
    for item in list.items {
        let labels = item.metadata.labels.unwrap_or_default();
        let annotations = item.metadata.annotations.unwrap_or_default();
        let (Some(id), Some(number)) = (
            labels.get(REVISION_OF_LABEL),
            labels.get(NUMBER_LABEL).and_then(|n| n.parse().ok()),
        ) else {
            continue;
        };
        let text = |key: &str| annotations.get(key).cloned().unwrap_or_default();
        by_set.entry(id.clone()).or_default().push(Headline {
            number,
            outcome: labels.get(OUTCOME_LABEL).cloned().unwrap_or_default(),
            time: text(TIME_ANNOTATION),
            who: text(WHO_ANNOTATION),
            target: annotations.get(TARGET_ANNOTATION).cloned(),
            objects: text(OBJECTS_ANNOTATION).parse().unwrap_or(0),
        });
    }
    for list in by_set.values_mut() {
        list.sort_by_key(|h| std::cmp::Reverse(h.number));
    }
    Ok(by_set)
}

/// Deletes every revision of the set (one request).
pub async fn delete_all(client: &kube::Client, set: &ApplySet) -> Result<(), ClusterError> {
    let api = api(client, set);
    let (params, delete) = (selector(set), DeleteParams::default());
    with_retries(|| api.delete_collection(&delete, &params))
        .await
        .map_err(|e| ClusterError::api(format!("deleting the revisions of Secret/{}", set.name), e))?;
    Ok(())
}

/// Who is applying: the CI's job and actor when a CI says so, else `user@host`.
pub fn who(env: &dyn Fn(&str) -> Option<String>) -> String {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    if get("GITHUB_ACTIONS").is_some() {
        return format!(
            "{} (GitHub Actions: {} run {})",
            get("GITHUB_ACTOR").unwrap_or_else(|| "?".into()),
            get("GITHUB_WORKFLOW").unwrap_or_else(|| "?".into()),
            get("GITHUB_RUN_ID").unwrap_or_else(|| "?".into())
        );
    }
    if get("GITLAB_CI").is_some() {
        return format!(
            "{} (GitLab CI: job {})",
            get("GITLAB_USER_LOGIN").unwrap_or_else(|| "?".into()),
            get("CI_JOB_URL")
                .or_else(|| get("CI_JOB_ID"))
                .unwrap_or_else(|| "?".into())
        );
    }
    if let Some(tag) = get("BUILD_TAG").filter(|_| get("JENKINS_URL").is_some()) {
        return format!("Jenkins: {tag}");
    }
    if let Some(url) = get("BUILDKITE_BUILD_URL") {
        return format!(
            "{} (Buildkite: {url})",
            get("BUILDKITE_BUILD_CREATOR").unwrap_or_else(|| "?".into())
        );
    }
    let user = get("USER")
        .or_else(|| get("USERNAME"))
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| get("HOSTNAME"))
        .unwrap_or_else(|| "unknown-host".into());
    if get("CI").is_some() {
        return format!("{user}@{host} (CI)");
    }
    format!("{user}@{host}")
}

/// The commit of the work tree at `dir` and whether it has uncommitted changes, as git says (none
/// outside a git work tree, or without git). Apply runs only on trusted repositories, but git is still
/// told not to run the repository's fsmonitor hook.
pub fn commit(dir: &std::path::Path) -> (Option<String>, Option<bool>) {
    let git = |args: &[&str]| crate::util::git(dir, args);
    let Some(head) = git(&["rev-parse", "HEAD"]).filter(|h| h.len() >= 40) else {
        return (None, None);
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    (Some(head), dirty)
}

/// Whether `version` (a kdeploy version a revision was written by) is newer than this kdeploy.
pub fn is_newer_version(version: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .take(3)
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parse(version) > parse(env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_objects_with_vault_values_are_stubs_and_the_rest_stays() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain"}, "data": {"a": "b"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"x": "y"}}, "type": "Opaque", "stringData": {"token": "hunter2"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "leaky"}, "data": {"url": "db://hunter2@x"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2", "annotations": {"n": "hunter2"}}, "data": {"k": "aHVudGVyMg=="}}),
        ];
        let carries = |text: &str| text.contains("hunter2") || text.contains("aHVudGVyMg==");
        let (kept, sealed) = split_sealed(objects.clone(), &carries);
        assert_eq!(kept[0], objects[0]);
        assert_eq!(sealed.len(), 3);
        let text = serde_json::to_string(&kept).unwrap();
        assert!(!carries(&text), "no stub carries the value: {text}");
        assert_eq!(kept[1]["stringData"]["token"], MASK);
        assert_eq!(kept[1]["metadata"]["labels"]["x"], "y");
        assert_eq!(kept[1]["type"], "Opaque");
        assert_eq!(stub_index(&kept[2]), Some(1));
        assert_eq!(kept[3]["metadata"], json!({"name": "s2", "namespace": null}));
        let record = Record {
            format: FORMAT,
            number: 1,
            time: String::new(),
            who: String::new(),
            kdeploy_version: String::new(),
            commit: None,
            dirty: None,
            project: None,
            target: None,
            context: String::new(),
            namespace: String::new(),
            outcome: Outcome::Deployed,
            rollback_of: None,
            message: None,
            changes: Vec::new(),
            objects: kept,
            sealed: None,
            unsealed: Vec::new(),
            health: Vec::new(),
            object_count: 4,
        };
        assert_eq!(record.objects_unsealed(Some(&sealed)), objects);
        assert_eq!(stubs(&record.objects).len(), 3);
    }

    #[test]
    fn compression_round_trips_and_refuses_a_bomb() {
        let text = "kind: ConfigMap\n".repeat(10_000);
        let packed = compress(text.as_bytes());
        assert!(packed.len() < text.len() / 20);
        assert_eq!(decompress(&packed, 1 << 20).unwrap(), text.as_bytes());
        assert!(decompress(&packed, 1000).unwrap_err().contains("larger than"));
        assert!(decompress(b"not gzip", 1000).is_err());
    }

    #[test]
    fn ci_jobs_name_their_actor_and_people_their_host() {
        let github = |name: &str| {
            match name {
                "GITHUB_ACTIONS" => Some("true"),
                "GITHUB_ACTOR" => Some("octocat"),
                "GITHUB_WORKFLOW" => Some("deploy"),
                "GITHUB_RUN_ID" => Some("42"),
                _ => None,
            }
            .map(str::to_owned)
        };
        assert_eq!(who(&github), "octocat (GitHub Actions: deploy run 42)");
        let person = |name: &str| (name == "USER").then(|| "ana".to_owned());
        assert!(who(&person).starts_with("ana@"));
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(is_newer_version("999.0.0"));
        assert!(!is_newer_version("0.0.1"));
        assert!(!is_newer_version(env!("CARGO_PKG_VERSION")));
    }
}
