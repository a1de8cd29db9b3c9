//! The floor for rendering: parse a YAML stream and write it out again with the same YAML code kdeploy
//! uses (granit-parser events into kdeploy's node tree, serde-saphyr to emit), and nothing else. No
//! templates, values or validation. Like `kdeploy render`, which parses templates on one thread per
//! core, it splits the parsing between the cores: the stream is cut at document boundaries into one
//! contiguous part per core. `benches/compare.sh` times it next to `kdeploy render` on the same output.
//!
//! Usage: yaml-floor FILE > out.yaml

use kdeploy::yaml::{emit::to_yaml_stream, parse_stream};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let path = std::env::args().nth(1).ok_or("usage: yaml-floor FILE")?;
    let text = std::fs::read_to_string(path)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = split_at_documents(&text, cores);
    let parsed: Vec<Result<Vec<serde_json::Value>, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts.iter().map(|part| scope.spawn(move || parse(part))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a parsing thread panicked".into())))
            .collect()
    });
    let mut values = Vec::new();
    for part in parsed {
        values.extend(part?);
    }
    print!("{}", to_yaml_stream(&values)?);
    Ok(())
}

fn parse(text: &str) -> Result<Vec<serde_json::Value>, Error> {
    let documents = parse_stream(text, &mut |_| Ok(None))?;
    Ok(documents
        .iter()
        .filter(|d| !d.root.is_null())
        .map(|d| d.root.to_json())
        .collect::<Result<Vec<_>, _>>()?)
}

/// `text` cut into at most `count` parts of about equal size, each starting at a `---` line.
fn split_at_documents(text: &str, count: usize) -> Vec<&str> {
    let target = text.len().div_ceil(count.max(1));
    let mut parts = Vec::new();
    let mut start = 0;
    while text.len() - start > target {
        match text[start + target..].find("\n---\n") {
            Some(offset) => {
                let end = start + target + offset + 1;
                parts.push(&text[start..end]);
                start = end;
            }
            None => break,
        }
    }
    parts.push(&text[start..]);
    parts
}
