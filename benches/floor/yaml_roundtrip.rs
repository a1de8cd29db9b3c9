//! The floor for rendering: parse a YAML stream and write it out again with the same YAML code kdeploy
//! uses (granit-parser events into kdeploy's node tree, serde-saphyr to emit), and nothing else. No
//! templates, values or validation. `benches/compare.sh` times it next to `kdeploy render` on the same
//! output.
//!
//! Usage: yaml-floor FILE > out.yaml

use kdeploy::yaml::{emit::to_yaml_stream, parse_stream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: yaml-floor FILE")?;
    let text = std::fs::read_to_string(path)?;
    let documents = parse_stream(&text, &mut |_| Ok(None))?;
    let values = documents
        .iter()
        .filter(|d| !d.root.is_null())
        .map(|d| d.root.to_json())
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", to_yaml_stream(&values)?);
    Ok(())
}
