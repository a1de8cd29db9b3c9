//! The YAML reader under every kdeploy input: whatever the bytes, it must return (no panic, no hang, no
//! stack overflow), and what it reads must survive kdeploy's emitter: the emitted text reads back, with
//! kubectl's rules, as the same values. Its two paths must agree: the JSON path (rendered templates and
//! plain manifests) reads exactly what the full path reads, or leaves the text to it; and the fast
//! emitter writes exactly serde-saphyr's bytes.
#![no_main]

use kdeploy::yaml::emit::{json_to_yaml, to_yaml, to_yaml_stream};
use kdeploy::yaml::{parse_stream, parse_stream_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let fast = parse_stream_json(text, &mut |_| Ok(None));
    let Ok(documents) = parse_stream(text, &mut |_| Ok(None)) else {
        assert!(fast.is_none(), "the JSON path reads what the full path refuses");
        return;
    };
    let marks: Vec<_> = documents.iter().map(|d| d.mark).collect();
    let Ok(values) = documents
        .into_iter()
        .map(|d| d.root.to_json())
        .collect::<Result<Vec<serde_json::Value>, _>>()
    else {
        assert!(fast.is_none(), "the JSON path reads a float JSON cannot carry");
        return; // a float JSON cannot carry (.inf, .nan): refused with a position, by design
    };
    if let Some(fast) = fast {
        let fast_values: Vec<&serde_json::Value> = fast.iter().map(|d| &d.root).collect();
        let fast_marks: Vec<_> = fast.iter().map(|d| d.mark).collect();
        assert_eq!(fast_values, values.iter().collect::<Vec<_>>(), "the JSON path reads differently");
        assert_eq!(fast_marks, marks, "the JSON path places documents differently");
    }
    for value in &values {
        assert_eq!(
            json_to_yaml(value).expect("every parsed value can be emitted"),
            to_yaml(value).expect("every parsed value can be emitted"),
            "the emitters differ on {value}"
        );
    }
    let emitted = to_yaml_stream(&values).expect("every parsed value can be emitted");
    let again: Vec<serde_json::Value> = parse_stream(&emitted, &mut |_| Ok(None))
        .unwrap_or_else(|e| panic!("emitted YAML does not parse: {e}\n{emitted}"))
        .into_iter()
        .map(|d| d.root.to_json().expect("emitted values are finite"))
        .collect();
    let non_empty: Vec<&serde_json::Value> = values.iter().filter(|v| !v.is_null()).collect();
    let again: Vec<&serde_json::Value> = again.iter().filter(|v| !v.is_null()).collect();
    assert_eq!(non_empty, again, "the emitted YAML reads back differently:\n{emitted}");
});
