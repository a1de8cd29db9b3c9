//! The hostile-value corpus: strings that YAML 1.1 or 1.2 would misread, in every scalar context, plus
//! typed values, rendered by kdeploy and read back by the real kubectl (`kubectl label --local`, which
//! decodes a stream as `kubectl apply -f` does) and by an independent YAML 1.2 parser. Both must see
//! exactly the intended values. (Integers stay within int64: that is all Kubernetes stores, and kdeploy
//! refuses larger ones, see `manifest`.)

mod support;

use serde_json::{Map, Value, json};
use support::{k8s_bin, kdeploy, project, run, run_with_stdin, yaml12_documents};

const CORPUS: &[&str] = &[
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "Y",
    "NO",
    "True",
    "~",
    "null",
    "",
    "1.10",
    "0755",
    "0o17",
    "0x1F",
    "1e3",
    "1_000",
    ".inf",
    "-.inf",
    ".nan",
    "12345678901234567890",
    "+1",
    "2024-01-02",
    "12:30:45",
    "a: b",
    "# c",
    "- x",
    "=",
    "<<",
    "'single'",
    "\"double\"",
    "new\nline",
    " leading",
    "trailing ",
    "*a",
    "&b",
    "!t",
    "%Y",
    "@x",
    "`tick`",
    "[1]",
    "{a: 1}",
    "ünïcødé ☃ 😀",
    "tab\there",
    "crlf\r\nend",
    "x #not a comment",
    "colon:inside",
    "? key",
    "| block",
    "> folded",
    "---",
    "...",
    "C:\\path\\to",
    "bell\u{7}",
    "\n",
    "x\n\n",
    "  indented\nlines\n  mixed\n",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n",
    "a long line that is well over eighty characters wide, with spaces, so an emitter might fold it into several lines",
    "no-space-long-token-0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890",
    "\u{2028}line separator",
    "nbsp\u{a0}here",
    "0",
    "-0",
    "00",
    "1.",
    ".5",
    "+.5",
    "1e-3",
    "0b101",
    "TRUE",
    "Null",
];

const TEMPLATE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: corpus
data:
{%- for v in values.corpus %}
  plain{{ loop.index }}: {{ v }}
  quoted{{ loop.index }}: "{{ v }}"
  single{{ loop.index }}: '{{ v }}'
  mixed{{ loop.index }}: pre {{ v }} post
  literal{{ loop.index }}: |
    {{ v }}
  folded{{ loop.index }}: >
    {{ v }}
{%- endfor %}
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: typed
spec:
  typed: {{ values.typed }}
  each:
{%- for k, v in values.typed %}
    {{ k }}: {{ v }}
{%- endfor %}
  keys:
{%- for v in values.corpus %}
    {{ v }}: {{ loop.index }}
{%- endfor %}
"#;

fn typed() -> Value {
    json!({
        "int": 42, "negative": -7, "zero": 0, "i64max": i64::MAX, "i64min": i64::MIN, "float": 1.5, "onepointten": 1.10,
        "small": 1e-7, "true": true, "false": false, "null": null, "string_one": "1", "string_true": "true",
        "string_null": "null", "list": [1, "two", [3], {"four": 4}], "map": {"nested": {"deep": ["yes", 0.25]}},
        "empty_list": [], "empty_map": {}
    })
}

fn expected_data() -> Map<String, Value> {
    let mut data = Map::new();
    for (i, v) in CORPUS.iter().enumerate() {
        let n = i + 1;
        data.insert(format!("plain{n}"), json!(v));
        data.insert(format!("quoted{n}"), json!(v));
        data.insert(format!("single{n}"), json!(v));
        data.insert(format!("mixed{n}"), json!(format!("pre {v} post")));
        data.insert(format!("literal{n}"), json!(format!("{v}\n")));
        data.insert(format!("folded{n}"), json!(format!("{v}\n")));
    }
    data
}

fn expected_keys() -> Map<String, Value> {
    CORPUS
        .iter()
        .enumerate()
        .map(|(i, v)| (v.to_string(), json!(i + 1)))
        .collect()
}

fn rendered() -> String {
    let values = json!({"corpus": CORPUS, "typed": typed()});
    let dir = project(&[
        ("manifests/corpus.yaml", TEMPLATE),
        ("values.yaml", &values.to_string()),
    ]);
    run(kdeploy()
        .current_dir(dir.path())
        .args(["render", "--data-values-file", "values.yaml"]))
    .ok()
    .stdout
}

fn check(objects: &[Value], reader: &str) {
    let config_map = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    let widget = objects.iter().find(|o| o["kind"] == "Widget").unwrap();
    let data = config_map["data"].as_object().unwrap();
    for (key, want) in expected_data() {
        assert_eq!(data.get(&key), Some(&want), "{reader} read {key} differently");
    }
    assert_eq!(data.len(), CORPUS.len() * 6, "{reader}: unexpected extra keys");
    assert_eq!(widget["spec"]["typed"], typed(), "{reader}: typed values as structure");
    assert_eq!(widget["spec"]["each"], typed(), "{reader}: typed values one by one");
    assert_eq!(
        widget["spec"]["keys"].as_object().unwrap(),
        &expected_keys(),
        "{reader}: strings as keys"
    );
}

#[test]
fn kubectl_reads_every_hostile_value_exactly() {
    let stream = rendered();
    let out = run_with_stdin(
        std::process::Command::new(k8s_bin("kubectl"))
            .args(["label", "--local", "-f", "-", "kdeploy-test=decoded", "-o", "json"])
            .env("KUBECONFIG", "/dev/null"),
        Some(&stream),
    )
    .ok();
    let objects: Vec<Value> = serde_json::Deserializer::from_str(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("kubectl prints one JSON object per input object");
    assert_eq!(objects.len(), 2, "{}", out.stdout);
    check(&objects, "kubectl");
}

#[test]
fn a_yaml_1_2_parser_reads_every_hostile_value_exactly() {
    check(&yaml12_documents(&rendered()), "serde-saphyr (YAML 1.2)");
}
