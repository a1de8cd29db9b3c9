//! The template stage: the Tera expression rewrite, typed placeholders and their substitution into the
//! parsed tree. The first byte chooses what the rest is:
//! - even: a whole template, rendered with a fixed context; any outcome but a panic or hang is fine;
//! - odd: a string value, put into a fixed template in every position a value can stand; the value must
//!   come back exactly, as a string, wherever the README promises a string, and never change the
//!   document's structure.
#![no_main]

use std::path::PathBuf;

use kdeploy::template::{TemplateContext, TemplateSet, TemplateSource};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const POSITIONS: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm
data:
  plain: {{ values.s }}
  single: '{{ values.s }}'
  double: \"{{ values.s }}\"
  mixed: x-{{ values.s }}-y
  keyed:
    {{ values.s }}: k
  list: [{{ values.s }}, '{{ values.s }}']
  after: end
";

fn render(template: &str, context: &TemplateContext) -> Result<Vec<serde_json::Value>, String> {
    let set = TemplateSet::from_sources(vec![TemplateSource {
        name: "fuzz.yaml".into(),
        path: PathBuf::from("fuzz.yaml"),
        text: template.to_owned(),
        renderable: true,
    }])
    .map_err(|e| e.to_string())?;
    let rendered = set.render(context).map_err(|e| e.to_string())?;
    Ok(rendered.documents.into_iter().map(|d| d.value).collect())
}

/// Renders under untrusted mode's limits, with the expression budget at a million: nested loops (found
/// by the fuzzer: three of 300 each) end at the budget in under a second, where the trusted budget (100
/// million) takes longer than the fuzzer's timeout to reach. The budget is what is tested, not its size.
fn untrusted_limits() {
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        let mut policy = kdeploy::trust::policy_from_env(true, None, None);
        policy.limits.max_expressions = 1_000_000;
        kdeploy::trust::set(policy);
    });
}

fuzz_target!(|data: &[u8]| {
    untrusted_limits();
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if mode % 2 == 0 {
        let context = TemplateContext {
            values: json!({"s": "a: b", "n": 3, "list": [1, "x"], "map": {"k": "v"}, "t": true}),
            ..Default::default()
        };
        let _ = render(text, &context);
        return;
    }
    let context = TemplateContext {
        values: json!({ "s": text }),
        ..Default::default()
    };
    let documents = match render(POSITIONS, &context) {
        Ok(documents) => documents,
        // A value may be refused (a key that repeats another, a control character YAML cannot hold),
        // but only with an error, never by changing the document.
        Err(_) => return,
    };
    assert_eq!(documents.len(), 1, "a value changed the number of documents");
    let data = &documents[0]["data"];
    for key in ["single", "double", "mixed"] {
        let expected = if key == "mixed" { format!("x-{text}-y") } else { text.to_owned() };
        assert_eq!(data[key], json!(expected), "{key}: the value did not come back as itself");
    }
    assert_eq!(data["keyed"], json!({ text: "k" }), "as a key, the value stays one string key");
    assert_eq!(data["list"][1], json!(text));
    assert_eq!(data["list"].as_array().map(Vec::len), Some(2), "a value changed the list");
    assert_eq!(data["after"], json!("end"), "a value swallowed what follows it");
    // A lone plain value keeps its own type: here it is a string, so it stays that string.
    assert_eq!(data["plain"], json!(text));
});
