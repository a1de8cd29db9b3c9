//! The documentation stays true to the binary: every `kdeploy …` command line in README.md and
//! docs/ (code blocks and inline code) names a real subcommand and only flags that subcommand takes,
//! and every kdeploy.yaml shown whole loads as a project file. (The README's tour is run as written by
//! tests/readme.rs.)

mod support;

use std::path::PathBuf;

use support::{kdeploy, repo_root, run};

fn documents() -> Vec<(PathBuf, String)> {
    let mut files = vec![repo_root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 10, "docs/ holds {} pages", docs.len());
    files.extend(docs);
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

/// The fenced blocks of a page: (info string, text).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => found.push(current.take().unwrap()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    found
}

/// Every `kdeploy …` command line: from shell blocks, and from inline code.
fn command_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for (info, body) in blocks(text) {
        if info == "sh" || info.is_empty() {
            for line in body.lines() {
                let line = line.trim_start_matches("$ ").trim();
                if line.starts_with("kdeploy ") {
                    lines.push(line.to_owned());
                }
            }
        }
    }
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 && part.starts_with("kdeploy ") && !part.contains('\n') {
            lines.push(part.replace("\\|", "|"));
        }
    }
    lines
}

#[test]
fn every_documented_command_and_flag_exists() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (path, text) in documents() {
        for line in command_lines(&text) {
            let command = line.split(['|', '#', ';', '>']).next().unwrap_or_default();
            let words: Vec<&str> = command.split_whitespace().collect();
            // `kdeploy user@host (pid N)` is how the deploy lock names its holder, not a command.
            if words.get(1).is_none_or(|w| w.contains('@') || w.starts_with('[')) {
                continue;
            }
            let mut subcommand = vec![words[1]];
            if matches!(words[1], "vault" | "argocd" | "convert" | "flux")
                && let Some(next) = words.get(2)
            {
                subcommand.push(next);
                if *next == "recipients"
                    && let Some(action) = words.get(3)
                {
                    subcommand.push(action.split('|').next().unwrap_or(action));
                }
            }
            let help = run(kdeploy().args(&subcommand).arg("--help"));
            if help.code != 0 {
                problems.push(format!(
                    "{}: `{line}`: `kdeploy {}` is no command",
                    path.display(),
                    subcommand.join(" ")
                ));
                continue;
            }
            for word in &words[1..] {
                let flag = word.trim_start_matches('[').trim_end_matches([']', ',']);
                let flag = flag.split('=').next().unwrap_or(flag);
                let is_flag = flag.starts_with("--") && flag.len() > 2
                    || flag.len() == 2 && flag.starts_with('-') && flag != "--";
                if is_flag && !help.stdout.contains(flag) {
                    problems.push(format!(
                        "{}: `{line}`: `kdeploy {}` takes no {flag}",
                        path.display(),
                        subcommand.join(" ")
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} command lines found in the documentation");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_kdeploy_yaml_shown_whole_loads() {
    let mut loaded = 0;
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in documents() {
        for (info, body) in blocks(&text) {
            let is_project = info == "yaml"
                && (body.starts_with("# kdeploy.yaml") || body.starts_with("name: ") && body.contains("\ntargets:"));
            // An example with `…` in it is elided on purpose (recipients, digests): not a whole file.
            if !is_project || body.contains('…') {
                continue;
            }
            let file = dir.path().join("kdeploy.yaml");
            std::fs::write(&file, &body).unwrap();
            if let Err(error) = kdeploy::project::Project::load(&file) {
                panic!("{}: a kdeploy.yaml that does not load: {error}\n{body}", path.display());
            }
            loaded += 1;
        }
    }
    assert!(loaded >= 2, "only {loaded} project files found in the documentation");
}

/// The errors of `value` against `schema`, for the keywords kdeploy.yaml's schema uses (`type`,
/// `properties`, `additionalProperties`, `required`, `items`, `anyOf`, `oneOf`, `enum`, `const`, `$ref`).
fn schema_errors(
    value: &serde_json::Value,
    schema: &serde_json::Value,
    root: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value as Json;
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/$defs/");
        return schema_errors(value, &root["$defs"][name], root, at);
    }
    let mut errors = Vec::new();
    let type_name = match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    let allowed: Vec<&str> = match &schema["type"] {
        Json::String(t) => vec![t.as_str()],
        Json::Array(types) => types.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    };
    let fits =
        allowed.is_empty() || allowed.contains(&type_name) || (type_name == "integer" && allowed.contains(&"number"));
    if !fits {
        errors.push(format!("{at}: a {type_name}, where the schema wants {allowed:?}"));
        return errors;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is none of {options:?}"));
    }
    if schema.get("const").is_some_and(|c| c != value) {
        errors.push(format!("{at}: {value} is not {}", schema["const"]));
    }
    for keyword in ["anyOf", "oneOf"] {
        if let Some(options) = schema[keyword].as_array() {
            let each: Vec<Vec<String>> = options.iter().map(|o| schema_errors(value, o, root, at)).collect();
            let matching = each.iter().filter(|e| e.is_empty()).count();
            if matching == 0 || (keyword == "oneOf" && matching > 1) {
                errors.push(format!("{at}: {value} matches {matching} of {keyword}"));
                errors.extend(each.into_iter().flatten());
            }
        }
    }
    if let Json::Object(map) = value {
        for required in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
        {
            if !map.contains_key(required) {
                errors.push(format!("{at}: `{required}` is required"));
            }
        }
        for (key, item) in map {
            let place = format!("{at}.{key}");
            match schema["properties"].get(key) {
                Some(property) => errors.extend(schema_errors(item, property, root, &place)),
                None => match &schema["additionalProperties"] {
                    Json::Bool(false) => errors.push(format!("{place}: not a field the schema knows")),
                    Json::Object(_) => {
                        errors.extend(schema_errors(item, &schema["additionalProperties"], root, &place))
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Json::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            errors.extend(schema_errors(item, item_schema, root, &format!("{at}[{i}]")));
        }
    }
    errors
}

#[test]
fn kdeploy_schema_accepts_every_project_file_shipped_and_refuses_a_misspelled_field() {
    let out = run(kdeploy().arg("schema")).ok();
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let mut files: Vec<PathBuf> = vec![repo_root().join("kdeploy.yaml")];
    for entry in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let file = entry.unwrap().path().join("kdeploy.yaml");
        if file.exists() {
            files.push(file);
        }
    }
    let mut documented = Vec::new();
    for (path, text) in documents() {
        for (info, body) in blocks(&text) {
            if info == "yaml" && body.starts_with("# kdeploy.yaml") && !body.contains('…') {
                documented.push((path.clone(), body));
            }
        }
    }
    let mut checked = 0;
    let texts = files
        .iter()
        .map(|f| (f.clone(), std::fs::read_to_string(f).unwrap()))
        .chain(documented);
    for (path, text) in texts {
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let errors = schema_errors(&value, &schema, &schema, "kdeploy.yaml");
        assert!(
            errors.is_empty(),
            "{}: the schema refuses a project file kdeploy loads: {errors:?}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} project files");
    // What kdeploy refuses, the schema refuses too.
    let typo: serde_json::Value =
        serde_json::json!({"name": "shop", "namspace": "x", "targets": {"prod": {"contxt": "c"}}});
    let errors = schema_errors(&typo, &schema, &schema, "kdeploy.yaml");
    assert!(errors.iter().any(|e| e.contains("kdeploy.yaml.namspace")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("kdeploy.yaml.targets.prod.contxt")),
        "{errors:?}"
    );
    let helm_without_chart = serde_json::json!({"sources": [{"helm": {"version": "1.0.0"}}]});
    let errors = schema_errors(&helm_without_chart, &schema, &schema, "kdeploy.yaml");
    assert!(errors.iter().any(|e| e.contains("`chart` is required")), "{errors:?}");
}
