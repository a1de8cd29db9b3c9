//! Every upstream manifest of the real-world corpus (`../shared/realworld`: kube-prometheus, Argo CD,
//! Argo Workflows, Knative, metallb, ingress-nginx, gateway-api, doks-monitoring) through
//! `kdeploy render -m FILE`: the objects must be exactly those the real kubectl decodes from the
//! original file. The only files kdeploy may refuse are those kubectl could not apply either (objects
//! without a name: `generateName` only, or a name lost in an annotation), and each refusal must say
//! why and where.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use support::{k8s_bin, kdeploy, realworld, run};

const PROBE_LABEL: &str = "kdeploy-test-probe";

fn manifest_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            manifest_files(&path, found);
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            found.push(path);
        }
    }
}

/// The items of a `List` as kubectl prints it, or the one object.
fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
            map["items"].as_array().cloned().unwrap_or_default()
        }
        other => vec![other],
    }
}

/// kubectl's decode of FILE: `kubectl label --local` reads a stream as `kubectl apply -f` does; the
/// probe label it had to add is taken out again (with the labels map, if it made one).
fn kubectl_objects(file: &Path) -> Vec<Value> {
    let out = run(std::process::Command::new(k8s_bin("kubectl"))
        .args(["label", "--local", "-o", "json", &format!("{PROBE_LABEL}=x"), "-f"])
        .arg(file));
    assert_eq!(out.code, 0, "kubectl cannot decode {}: {}", file.display(), out.stderr);
    let mut objects = Vec::new();
    for document in serde_json::Deserializer::from_str(&out.stdout).into_iter::<Value>() {
        objects.extend(items(document.unwrap()));
    }
    for object in &mut objects {
        normalise(object);
    }
    objects
}

fn normalise(object: &mut Value) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
        labels.remove(PROBE_LABEL);
        if labels.is_empty() {
            metadata.remove("labels");
        }
    }
}

/// Objects as canonical JSON (keys sorted at every level: kubectl prints them sorted, kdeploy keeps
/// the file's order), sorted, so that two decodes compare as multisets of values.
fn sorted(objects: Vec<Value>) -> Vec<String> {
    fn canonical(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by_key(|(k, _)| *k);
                let inner: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
            other => other.to_string(),
        }
    }
    let mut texts: Vec<String> = objects.iter().map(canonical).collect();
    texts.sort();
    texts
}

#[derive(Default)]
struct Tally {
    identical_files: usize,
    objects: usize,
    refused: Vec<String>,
    mismatches: Vec<String>,
}

#[test]
fn every_corpus_file_renders_to_exactly_what_kubectl_decodes() {
    let root = realworld();
    let mut files = Vec::new();
    manifest_files(&root, &mut files);
    assert!(
        files.len() >= 383,
        "only {} manifest files under {}",
        files.len(),
        root.display()
    );
    let tally = Mutex::new(Tally::default());
    let queue = Mutex::new(files.clone());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                loop {
                    let Some(file) = queue.lock().unwrap().pop() else { return };
                    let expected = kubectl_objects(&file);
                    // What is compared is reading: kdeploy's one addition to objects (checksums of the
                    // configs a pod template uses) is turned off, and so is validation against the
                    // schemas (its own test below), as kubectl's decoding knows nothing of them.
                    let out = run(kdeploy()
                        .current_dir(std::env::temp_dir())
                        .args(["render", "--no-config-checksums", "--no-validate", "-o", "json", "-m"])
                        .arg(&file));
                    let shown = file.strip_prefix(&root).unwrap().display().to_string();
                    let mut tally = tally.lock().unwrap();
                    if out.code != 0 {
                        // Refused: kubectl could not apply this file either, as an object in it has no
                        // name (generateName only, or none at all: "resource name may not be empty").
                        let unnamed = expected.iter().any(|o| o.pointer("/metadata/name").is_none());
                        let says_why = out.stderr.contains("has no metadata.name") || out.stderr.contains("duplicate key");
                        if unnamed && says_why && out.stderr.contains(&shown) {
                            tally.refused.push(shown);
                        } else {
                            tally.mismatches.push(format!("{shown}: refused without reason:\n{}", out.stderr));
                        }
                        continue;
                    }
                    let actual: Vec<Value> = items(serde_json::from_str(&out.stdout).unwrap());
                    let count = actual.len();
                    let (actual, expected_sorted) = (sorted(actual), sorted(expected.clone()));
                    if actual == expected_sorted {
                        tally.identical_files += 1;
                        tally.objects += count;
                    } else {
                        let first = actual.iter().zip(&expected_sorted).find(|(a, b)| a != b);
                        tally.mismatches.push(format!(
                            "{shown}: kdeploy's {count} objects differ from kubectl's {}; first difference:\n  kdeploy {}\n  kubectl {}",
                            expected.len(),
                            first.map_or("-", |(a, _)| a.as_str()),
                            first.map_or("-", |(_, b)| b.as_str()),
                        ));
                    }
                }
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    assert!(tally.mismatches.is_empty(), "{}", tally.mismatches.join("\n"));
    assert_eq!(tally.identical_files + tally.refused.len(), files.len());
    // The corpus README: 193 Argo Workflows name themselves with generateName only; nothing else is refused.
    assert!(tally.refused.len() >= 193, "{} refused", tally.refused.len());
    assert!(
        tally.refused.iter().all(|f| f.starts_with("argo-workflows/")),
        "refused outside Argo Workflows: {:?}",
        tally.refused
    );
    assert!(
        tally.identical_files >= 150,
        "only {} files compared",
        tally.identical_files
    );
    assert!(tally.objects >= 350, "only {} objects compared", tally.objects);
}

/// CRC-32 (IEEE), as Go's hash/crc32.ChecksumIEEE.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// knative.dev/pkg/configmap: the checksum of `_example` with surrounding space trimmed and every run
/// of newlines turned into the two characters `\n`.
fn knative_checksum(example: &str) -> String {
    let trimmed = example.trim();
    let mut text = String::new();
    let mut chars = trimmed.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || (c == '\r' && chars.peek() == Some(&'\n')) {
            while matches!(chars.peek(), Some('\n') | Some('\r')) {
                chars.next();
            }
            text.push_str("\\n");
        } else {
            text.push(c);
        }
    }
    format!("{:08x}", crc32(text.as_bytes()))
}

#[test]
fn knative_example_checksums_still_match_after_rendering() {
    assert_eq!(format!("{:08x}", crc32(b"123456789")), "cbf43926");
    let dir = realworld().join("knative-serving/config/core/configmaps");
    let out = run(kdeploy()
        .current_dir(std::env::temp_dir())
        .args(["render", "--no-config-checksums", "-o", "json", "-m"])
        .arg(&dir))
    .ok();
    let objects = items(serde_json::from_str(&out.stdout).unwrap());
    let mut checked = 0;
    for object in &objects {
        let Some(expected) = object
            .pointer("/metadata/annotations/knative.dev~1example-checksum")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let example = object.pointer("/data/_example").and_then(Value::as_str).unwrap();
        assert_eq!(
            knative_checksum(example),
            expected,
            "{} no longer matches its checksum",
            object["metadata"]["name"]
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} checksummed ConfigMaps");
}

/// `render` writes objects with kdeploy's own emitter for structure and plain words, and serde-saphyr
/// for every other scalar; on every document of the corpus that must be the very bytes serde-saphyr
/// writes for the whole document, so the output kubectl reads is the one shared/NOTES.md measured.
#[test]
fn the_fast_emitter_writes_what_serde_saphyr_writes_for_every_corpus_document() {
    use kdeploy::yaml::{emit, parse_stream};
    let mut files = Vec::new();
    manifest_files(&realworld(), &mut files);
    let mut documents = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // A file kdeploy refuses to read (a repeated key, say; the test above checks each refusal)
        // never reaches the emitter.
        let Ok(parsed) = parse_stream(&text, &mut |_| Ok(None)) else {
            continue;
        };
        for document in parsed {
            let value = document.root.to_json().unwrap();
            let expected = emit::to_yaml(&value).unwrap();
            let written = emit::json_to_yaml(&value).unwrap();
            assert!(
                written == expected,
                "{} (document at line {}): the emitters differ\n{}",
                file.display(),
                document.mark.line,
                similar::TextDiff::from_lines(&expected, &written).unified_diff()
            );
            documents += 1;
        }
    }
    assert!(documents >= 500, "only {documents} documents read from the corpus");
}

/// Rendered templates are read straight into JSON where the text allows it, and by the full path
/// (marked trees, anchors, merge keys, tags) otherwise. On the corpus the JSON path must give exactly
/// the full path's documents and positions, and must be the one taken for nearly every file.
#[test]
fn the_json_path_reads_every_corpus_file_as_the_full_path_does() {
    use kdeploy::yaml::{parse_stream_json, parse_stream_to_json};
    let mut files = Vec::new();
    manifest_files(&realworld(), &mut files);
    let (mut read, mut fast) = (0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let Ok(full) = parse_stream_to_json(&text, &mut |_| Ok(None)) else {
            assert!(
                parse_stream_json(&text, &mut |_| Ok(None)).is_none(),
                "{}: the JSON path reads what the full path refuses",
                file.display()
            );
            continue;
        };
        read += 1;
        let Some(documents) = parse_stream_json(&text, &mut |_| Ok(None)) else {
            continue;
        };
        fast += 1;
        assert!(
            documents == full,
            "{}: the JSON path reads it differently",
            file.display()
        );
    }
    assert!(read >= 370, "only {read} corpus files read");
    assert!(fast * 10 >= read * 9, "the JSON path read only {fast} of {read} files");
}

/// Rendering upstream stacks as a folder (their Deployments mount upstream Secrets) says nothing of
/// vaults: checksums of Secrets only concern the project's own templates.
#[test]
fn rendering_the_real_world_stacks_prints_no_hint_about_vaults() {
    let root = realworld();
    let elsewhere = tempfile::tempdir().unwrap();
    for stack in [
        "kube-prometheus/manifests",
        "argo-cd/manifests",
        "ingress-nginx",
        "metallb",
        "knative-serving/config",
        "doks-monitoring",
        "gateway-api",
    ] {
        let dir = root.join(stack);
        assert!(dir.exists(), "{} is missing", dir.display());
        // doks-monitoring's RBAC is rbac.authorization.k8s.io/v1beta1, which validation refuses.
        let out = run(kdeploy()
            .current_dir(elsewhere.path())
            .args(["render", "--no-validate", "-m"])
            .arg(&dir));
        assert_eq!(out.code, 0, "{stack}: {}", out.stderr);
        assert!(!out.stderr.to_lowercase().contains("vault"), "{stack}: {}", out.stderr);
    }
}

/// Every stack kubectl applies validates clean against the embedded Kubernetes 1.36 schemas and its
/// own CRDs: no false alarm from int-or-string, quantities, preserve-unknown-fields, `*List` kinds,
/// nulls or empty maps. Custom resources whose CRD is in the stack are checked against it.
#[test]
fn the_stacks_kubectl_applies_validate_with_no_false_alarm() {
    let root = realworld();
    let elsewhere = tempfile::tempdir().unwrap();
    for (stack, objects, custom) in [
        ("kube-prometheus/manifests", 125, 23),
        ("argo-cd/manifests/install.yaml", 59, 0),
        ("argo-cd/manifests/ha/base/redis-ha/chart/upstream.yaml", 15, 0),
        ("ingress-nginx", 19, 0),
        ("metallb", 26, 0),
        ("knative-serving", 59, 2),
        ("gateway-api", 5, 0),
    ] {
        let out = run(kdeploy()
            .current_dir(elsewhere.path())
            .env("KUBECONFIG", elsewhere.path().join("none"))
            .args(["validate", "-n", "stack", "-m"])
            .arg(root.join(stack)));
        assert_eq!(out.code, 0, "{stack}: {}", out.stderr);
        let summary = format!("{objects} objects valid against Kubernetes 1.36 ({custom} custom resource");
        assert!(out.stderr.contains(&summary), "{stack}: {}", out.stderr);
        assert!(
            !out.stderr.contains("no schema"),
            "{stack}: a kind went unchecked: {}",
            out.stderr
        );
    }
    // File by file (custom resources without their CRDs only warn), every Argo Workflows example
    // that kdeploy reads at all has no error.
    let mut files = Vec::new();
    manifest_files(&root.join("argo-workflows"), &mut files);
    let mut checked = 0;
    for file in &files {
        let out = run(kdeploy()
            .current_dir(elsewhere.path())
            .args(["validate", "-n", "stack", "-m"])
            .arg(file));
        assert!(
            !out.stderr.contains("checked against"),
            "{}: {}",
            file.display(),
            out.stderr
        );
        checked += usize::from(out.code == 0);
    }
    assert!(checked >= 20, "only {checked} Argo Workflows files validated");
}

/// doks-monitoring targets a Kubernetes of 2019: its RBAC apiVersion is refused with the release that
/// removed it and its replacement, and its envsubst placeholder is no Secret data.
#[test]
fn a_stack_for_an_old_kubernetes_is_refused_with_what_replaced_its_apis() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run(kdeploy()
        .current_dir(elsewhere.path())
        .args(["validate", "-n", "stack", "-m"])
        .arg(realworld().join("doks-monitoring")));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("ClusterRole/prometheus apiVersion: rbac.authorization.k8s.io/v1beta1 ClusterRole was removed in Kubernetes 1.22; use rbac.authorization.k8s.io/v1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("data.admin-password: is not a valid base64 text"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("doks-monitoring/manifest/prometheus-0serviceaccount.yaml:8:13"),
        "{}",
        out.stderr
    );
}
