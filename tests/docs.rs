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
            if matches!(words[1], "vault" | "argocd")
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
