//! The YAML reader under every kdeploy input: whatever the bytes, it must return (no panic, no hang, no
//! stack overflow), and what it reads must survive kdeploy's emitter: the emitted text reads back, with
//! kubectl's rules, as the same values.
#![no_main]

use kdeploy::yaml::emit::to_yaml_stream;
use kdeploy::yaml::parse_stream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(documents) = parse_stream(text, &mut |_| Ok(None)) else { return };
    let Ok(values) = documents
        .into_iter()
        .map(|d| d.root.to_json())
        .collect::<Result<Vec<serde_json::Value>, _>>()
    else {
        return; // a float JSON cannot carry (.inf, .nan): refused with a position, by design
    };
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
