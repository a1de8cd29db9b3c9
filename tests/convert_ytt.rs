//! `kdeploy convert ytt` end to end, on fixtures written by hand from ytt's documentation (each
//! names its page): every construct that converts renders, through `kdeploy render` of the converted
//! project, the objects the page says ytt prints; every construct that cannot is refused with its
//! `file:line`, nothing written and exit 2, or marked in place with `--partial` and exit 1.
//!
//! kdeploy orders objects for apply (Namespaces and CRDs first, then a fixed kind order), where ytt
//! keeps its template order; objects are compared as typed YAML trees, kind by kind in their order.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{kdeploy, repo_root, run, yaml12_documents};

fn fixtures(group: &str) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(repo_root().join("tests/ytt").join(group))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

/// The arguments of a case's `flags` file, one per line.
fn flags(case: &Path) -> Vec<String> {
    std::fs::read_to_string(case.join("flags"))
        .map(|t| t.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn convert(case: &Path, out: &Path, extra: &[String]) -> support::Run {
    run(kdeploy()
        .args(["convert", "ytt", "-f"])
        .arg(case.join("config"))
        .arg("--out")
        .arg(out)
        .args(extra))
}

fn render(project: &Path, extra: &[String]) -> support::Run {
    run(kdeploy().arg("render").arg(project).args(extra))
}

/// Objects grouped by kind, each group in its order.
fn by_kind(objects: &[Value]) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut groups: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for o in objects {
        groups
            .entry(o["kind"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(o.clone());
    }
    groups
}

fn expected(case: &Path) -> Vec<Value> {
    yaml12_documents(&std::fs::read_to_string(case.join("expected.yaml")).unwrap())
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn every_fixture_converts_and_renders_what_ytt_documents() {
    let cases = fixtures("converts");
    assert!(cases.len() >= 10, "fixtures: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("project");
        let converted = convert(case, &out, &flags(case));
        if converted.code != 0 {
            failures.push(format!(
                "{name}: convert exited {}:\n{}{}",
                converted.code, converted.stdout, converted.stderr
            ));
            continue;
        }
        assert!(
            converted.stdout.contains("config.yml"),
            "{name}: the report names the files:\n{}",
            converted.stdout
        );
        let rendered = render(&out, &[]);
        if rendered.code != 0 {
            failures.push(format!("{name}: render exited {}:\n{}", rendered.code, rendered.stderr));
            continue;
        }
        let actual = yaml12_documents(&rendered.stdout);
        if by_kind(&actual) != by_kind(&expected(case)) {
            failures.push(format!(
                "{name}: rendered\n{}\nexpected\n{}",
                rendered.stdout,
                std::fs::read_to_string(case.join("expected.yaml")).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn data_value_flags_at_render_time_mean_what_they_mean_to_ytt() {
    let case = repo_root().join("tests/ytt/converts/data-values-flags");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("project");
    convert(&case, &out, &[]).ok();
    // Without the flags, the values file's own values.
    let plain = yaml12_documents(&render(&out, &[]).ok().stdout);
    assert_eq!(plain[0]["spec"]["key1"], "val1");
    assert_eq!(plain[0]["spec"]["count"], 1);
    let with_flags = yaml12_documents(&render(&out, &flags(&case)).ok().stdout);
    assert_eq!(by_kind(&with_flags), by_kind(&expected(&case)));
}

#[test]
fn the_schema_refuses_a_value_of_the_wrong_type_at_render_time_as_ytt_does() {
    let case = repo_root().join("tests/ytt/converts/schema");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("project");
    convert(&case, &out, &[]).ok();
    let wrong = render(&out, &["-v".into(), "load_balancer.enabled=yes".into()]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stdout.is_empty());
    assert!(wrong.stderr.contains("load_balancer"), "{}", wrong.stderr);
    // An array item without a key ytt would fill from the schema is an error, not a different value.
    let item = render(&out, &["--data-value-yaml".into(), "databases=[{name: x}]".into()]);
    assert_eq!(item.code, 2, "{}", item.stderr);
    assert!(item.stderr.contains("adapter"), "{}", item.stderr);
    let right = render(
        &out,
        &["--data-value-yaml".into(), "load_balancer.enabled=false".into()],
    );
    assert_eq!(
        yaml12_documents(&right.ok().stdout)[0]["spec"]["load_balancer"]["enabled"],
        false
    );
}

#[test]
fn every_refused_construct_writes_nothing_and_names_its_line() {
    let cases = fixtures("refused");
    assert!(cases.len() >= 10, "fixtures: {cases:?}");
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let refusal = std::fs::read_to_string(case.join("refusal")).unwrap();
        let mut lines = refusal.lines();
        let (place, why) = (lines.next().unwrap(), lines.next().unwrap());
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("project");
        let refused = convert(case, &out, &[]);
        assert_eq!(refused.code, 2, "{name}:\n{}{}", refused.stdout, refused.stderr);
        assert!(!out.exists(), "{name}: nothing is written");
        let line = refused
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{place}:")))
            .unwrap_or_else(|| panic!("{name}: no refusal at {place}:\n{}", refused.stdout));
        assert!(line.contains(why), "{name}: {line}");
        assert!(
            refused.stderr.contains("nothing was written"),
            "{name}: {}",
            refused.stderr
        );
        let leftovers: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "{name}: no staging folder is left behind");
    }
}

#[test]
fn partial_writes_the_rest_and_marks_each_refusal_where_it_stood() {
    for case in fixtures("refused") {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("project");
        let partial = convert(&case, &out, &["--partial".into()]);
        assert_eq!(partial.code, 1, "{name}:\n{}{}", partial.stdout, partial.stderr);
        let mut written = String::new();
        for entry in walk(&out) {
            written.push_str(&std::fs::read_to_string(entry).unwrap());
        }
        assert!(written.contains("{# TODO(ytt): "), "{name}: {written}");
        assert!(out.join("kdeploy.yaml").exists(), "{name}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_folder_with_files_in_it_is_never_written_into() {
    let case = repo_root().join("tests/ytt/converts/if");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("keep.txt"), "mine").unwrap();
    let refused = convert(&case, work.path(), &[]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("not empty"), "{}", refused.stderr);
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1);
}

#[test]
fn the_ytt_migration_example_converts_to_its_hand_written_version() {
    let example = repo_root().join("examples/ytt-migration");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("project");
    run(kdeploy()
        .args(["convert", "ytt", "-f"])
        .arg(example.join("config"))
        .arg("--out")
        .arg(&out))
    .ok();
    let value = ["-v".to_owned(), "some.value=hello: world # not a comment".to_owned()];
    let converted = yaml12_documents(&render(&out, &value).ok().stdout);
    let by_hand = yaml12_documents(
        &run(kdeploy()
            .arg("render")
            .arg(example.join("do_something.yaml"))
            .args(&value))
        .ok()
        .stdout,
    );
    assert_eq!(converted, by_hand);
    assert_eq!(
        converted[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][2],
        "echo hello: world # not a comment"
    );
}

#[test]
fn each_environment_becomes_a_target_with_the_values_ytt_would_merge_for_it() {
    let case = repo_root().join("tests/ytt/targets");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("project");
    let mut command = kdeploy();
    command
        .args(["convert", "ytt", "-f"])
        .arg(case.join("config"))
        .arg("--out")
        .arg(&out);
    for target in ["prod", "dev"] {
        command.arg("--target").arg(format!(
            "{target}={}",
            case.join("envs").join(format!("{target}.yml")).display()
        ));
    }
    run(&mut command).ok();
    for target in ["prod", "dev"] {
        let rendered = yaml12_documents(&render(&out, &["--target".into(), target.into()]).ok().stdout);
        let expected =
            yaml12_documents(&std::fs::read_to_string(case.join(format!("expected-{target}.yaml"))).unwrap());
        assert_eq!(rendered, expected, "{target}");
    }
    // Without a target, the configuration's own values: version "" fails the assert, as in ytt.
    let plain = render(&out, &[]);
    assert_eq!(plain.code, 2);
    assert!(plain.stderr.contains("missing version"), "{}", plain.stderr);
    // A target's file may only hold data values.
    let refused = run(kdeploy()
        .args(["convert", "ytt", "-f"])
        .arg(case.join("config"))
        .arg("--out")
        .arg(work.path().join("other"))
        .arg("--target")
        .arg(format!("bad={}", case.join("config/config.yml").display())));
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(
        refused.stdout.contains("only #@data/values documents"),
        "{}",
        refused.stdout
    );
    let traversal = run(kdeploy()
        .args(["convert", "ytt", "-f"])
        .arg(case.join("config"))
        .arg("--out")
        .arg(work.path().join("third"))
        .arg("--target")
        .arg("../x=envs/dev.yml"));
    assert_eq!(traversal.code, 2);
    assert!(!work.path().join("third").exists());
}

#[test]
fn an_overlay_keeps_ytts_count_of_matches() {
    // carvel.dev/ytt/docs/latest/lang-ref-ytt-overlay: without `expects`, an overlay must match exactly
    // one document; `missing_ok=True` allows none.
    let config = support::project(&[
        (
            "config.yml",
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        ),
        (
            "overlay.yml",
            "#@ load(\"@ytt:overlay\", \"overlay\")\n#@overlay/match by=overlay.subset({\"kind\": \"ConfigMap\"})\n---\n#@overlay/match missing_ok=True\ndata:\n  #@overlay/match missing_ok=True\n  k: v\n#@overlay/match by=overlay.subset({\"kind\": \"Secret\"}), missing_ok=True\n---\n#@overlay/match missing_ok=True\ndata:\n  #@overlay/match missing_ok=True\n  k: dg==\n",
        ),
    ]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("project");
    run(kdeploy()
        .args(["convert", "ytt", "-f"])
        .arg(config.path())
        .arg("--out")
        .arg(&out))
    .ok();
    let rendered = render(&out, &[]);
    assert_eq!(rendered.code, 2, "{}", rendered.stdout);
    assert!(
        rendered.stderr.contains("matches 2 objects") && rendered.stderr.contains("expects exactly 1"),
        "{}",
        rendered.stderr
    );
    // The Secret overlay matched nothing, which missing_ok allows: only the ConfigMap one is reported.
    assert!(!rendered.stderr.contains("Secret"), "{}", rendered.stderr);
}
