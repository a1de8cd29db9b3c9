//! A corpus of bad input, over 300 cases across templates, values, env files, vault files, kubeconfigs,
//! kdeploy.yaml, flags and rendered objects. Every case must exit 2, print nothing on stdout, never
//! panic, say where the problem is (`FILE:LINE`, or the object, flag or file it concerns), and leave
//! every file it was given byte for byte as it was.
//!
//! YAML syntax errors are written once and placed in every kind of YAML input kdeploy reads, each after
//! a header of a known number of lines, so that the line each error must name is known by construction.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::{kdeploy, run_with_stdin};

/// One bad input: files to write, the command line, and what stderr must contain.
struct Case {
    name: String,
    files: Vec<(String, String)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Each group must have one of its fragments in stderr: a place (`file:line:`), an object or a flag.
    expect: Vec<Vec<String>>,
}

impl Case {
    fn new(name: impl Into<String>, args: &[&str]) -> Case {
        Case {
            name: name.into(),
            files: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            expect: Vec::new(),
        }
    }

    fn file(mut self, path: &str, text: impl Into<String>) -> Case {
        self.files.push((path.to_owned(), text.into()));
        self
    }

    fn env(mut self, name: &str, value: impl Into<String>) -> Case {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    fn expect(mut self, fragment: impl Into<String>) -> Case {
        self.expect.push(vec![fragment.into()]);
        self
    }

    fn expect_any(mut self, fragments: Vec<String>) -> Case {
        self.expect.push(fragments);
        self
    }
}

/// Runs a case; returns what is wrong with the outcome, if anything.
fn check(case: &Case, shared: &Path) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in &case.files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    for entry in std::fs::read_dir(shared).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let before = snapshot(dir.path());
    let mut command = kdeploy();
    command
        .current_dir(dir.path())
        .args(&case.args)
        .env("HOME", dir.path())
        .env("KDEPLOY_NO_KEYRING", "1")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE");
    for (name, value) in &case.env {
        command.env(name, value);
    }
    let out = run_with_stdin(&mut command, None);
    let mut problems = Vec::new();
    if out.code != 2 {
        problems.push(format!("exit code {} instead of 2", out.code));
    }
    if !out.stdout.is_empty() {
        problems.push(format!("stdout is not empty: {:?}", truncate(&out.stdout)));
    }
    if out.stderr.contains("panicked at") {
        problems.push("it panicked".to_owned());
    }
    for group in &case.expect {
        if !group.iter().any(|fragment| out.stderr.contains(fragment.as_str())) {
            problems.push(format!("stderr lacks {}", group.join(" or ")));
        }
    }
    let after = snapshot(dir.path());
    if before != after {
        problems.push("files changed, appeared or disappeared".to_owned());
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{}: {}\n    stderr: {}",
            case.name,
            problems.join("; "),
            truncate(&out.stderr)
        )
    })
}

fn truncate(text: &str) -> String {
    let text = text.replace('\n', "⏎");
    if text.chars().count() > 600 {
        format!("{}…", text.chars().take(600).collect::<String>())
    } else {
        text
    }
}

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// A YAML error and the lines (1-based, within the snippet) a reader may rightly point at.
struct Snippet {
    name: &'static str,
    text: String,
    lines: std::ops::RangeInclusive<usize>,
}

fn snippet(name: &'static str, text: impl Into<String>, lines: std::ops::RangeInclusive<usize>) -> Snippet {
    Snippet {
        name,
        text: text.into(),
        lines,
    }
}

fn yaml_snippets() -> Vec<Snippet> {
    let mut laughs = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9 {
        laughs.push_str(&format!(
            "l{level}: &l{level} [{}]\n",
            vec![format!("*l{}", level - 1); 10].join(", ")
        ));
    }
    vec![
        snippet("a sequence item in a mapping", "- item\n", 1..=1),
        snippet("an unclosed flow sequence", "k: [1, 2\nz: 3\n", 1..=3),
        snippet("an unclosed flow mapping", "k: {a: 1\nz: 3\n", 1..=3),
        snippet("an unclosed double quote", "k: \"abc\nz: 3\n", 1..=3),
        snippet("an unclosed single quote", "k: 'abc\n", 1..=2),
        snippet("tab indentation", "k:\n\tz: 1\n", 2..=2),
        snippet("a duplicate key", "k: 1\nk: 2\n", 2..=2),
        snippet("a null key", "~: 1\n", 1..=1),
        snippet("an empty key", ": 1\n", 1..=1),
        snippet("an alias to an unknown anchor", "k: *nope\n", 1..=1),
        snippet("an unsupported tag", "k: !secret x\n", 1..=1),
        snippet("an indentation that ends too early", "k:\n    a: 1\n  b: 2\n", 3..=3),
        snippet("a value that is a mapping on one line", "k: v: x\n", 1..=1),
        snippet("a billion laughs", laughs, 2..=9),
        snippet(
            "nesting 300 deep",
            format!("k: {}{}\n", "[".repeat(300), "]".repeat(300)),
            1..=1,
        ),
        snippet("an !!int that is not one", "k: !!int abc\n", 1..=1),
        snippet("a merge key with a number", "k:\n  <<: 3\n", 2..=2),
        snippet("a block scalar with indentation 0", "k: |0\n  x\n", 1..=1),
        snippet("a sequence as a key", "[a, b]: 1\n", 1..=1),
        snippet("a mapping as a key", "{a: 1}: 1\n", 1..=1),
    ]
}

/// The YAML syntax family: every snippet in every YAML input kdeploy reads.
fn yaml_cases() -> Vec<Case> {
    const CM: &str = "apiVersion: v1\nkind: ConfigMap\n";
    let mut cases = Vec::new();
    for s in yaml_snippets() {
        let at = |file: &str, header_lines: usize| -> Vec<String> {
            s.lines
                .clone()
                .map(|line| format!("{file}:{}:", line + header_lines))
                .collect()
        };
        // Each context: a case whose stderr must name one of the allowed lines.
        let contexts: Vec<(String, Case, Vec<String>)> = vec![
            (
                "template".into(),
                Case::new("", &["render"]).file("manifests/bad.yaml", format!("{CM}{}", s.text)),
                at("manifests/bad.yaml", 2),
            ),
            (
                "values file flag".into(),
                Case::new("", &["render", "--data-values-file", "v.yaml"])
                    .file("v.yaml", format!("a: 1\nb: 2\n{}", s.text))
                    .file("manifests/ok.yaml", format!("{CM}metadata: {{name: ok}}\n")),
                at("v.yaml", 2),
            ),
            (
                "project values file".into(),
                Case::new("", &["render"])
                    .file("kdeploy.yaml", "values: [v.yaml]\n")
                    .file("v.yaml", format!("a: 1\n{}", s.text))
                    .file("manifests/ok.yaml", format!("{CM}metadata: {{name: ok}}\n")),
                at("v.yaml", 1),
            ),
            (
                "kdeploy.yaml".into(),
                Case::new("", &["render"])
                    .file(
                        "kdeploy.yaml",
                        format!("templates: [manifests]\nnamespace: x\n{}", s.text),
                    )
                    .file("manifests/ok.yaml", format!("{CM}metadata: {{name: ok}}\n")),
                // The snippet's first key (`k`, `l0`, ...) is itself an unknown field: a real error there.
                (1..=*s.lines.end())
                    .map(|line| format!("kdeploy.yaml:{}:", line + 2))
                    .collect(),
            ),
            (
                "vault plaintext".into(),
                Case::new("", &["vault", "encrypt", "plain.yaml", "--recipient", RECIPIENT])
                    .file("plain.yaml", format!("a: 1\n{}", s.text)),
                at("plain.yaml", 1),
            ),
        ];
        for (context, mut case, places) in contexts {
            case.name = format!("YAML: {} in a {context}", s.name);
            cases.push(case.expect_any(places));
        }
        if s.name == "a sequence item in a mapping" {
            continue; // on its own, `- item` is a valid YAML list
        }
        cases.push(
            Case::new(
                format!("YAML: {} in --data-values-env-yaml", s.name),
                &["render", "--data-values-env-yaml", "DV"],
            )
            .file("manifests/ok.yaml", format!("{CM}metadata: {{name: ok}}\n"))
            .env("DV_broken", s.text.clone())
            .expect("--data-values-env-yaml DV_broken"),
        );
        cases.push(
            Case::new(
                format!("YAML: {} in --data-value-yaml", s.name),
                &["render", "--data-value-yaml", &format!("key={}", s.text)],
            )
            .file("manifests/ok.yaml", format!("{CM}metadata: {{name: ok}}\n"))
            .expect("--data-value-yaml key"),
        );
    }
    cases
}

/// A recipient whose identity no test has: files encrypted to it cannot be opened here.
const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn template_cases() -> Vec<Case> {
    const HEAD: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n";
    // (name, the line at line 6 of the template, extra args)
    let lines: Vec<(&str, &str, Vec<&str>)> = vec![
        ("an unclosed expression", "  a: {{ values.x", vec!["-v", "x=1"]),
        ("a dangling operator", "  a: {{ values.x + }}", vec!["-v", "x=1"]),
        (
            "an unknown filter",
            "  a: {{ values.x | nosuchfilter }}",
            vec!["-v", "x=1"],
        ),
        ("an undefined value", "  a: {{ values.missing }}", vec![]),
        ("a mistyped key", "  a: {{ values.db.hots }}", vec!["-v", "db.host=h"]),
        (
            "an undefined env variable",
            "  a: {{ env.KDEPLOY_SURELY_UNSET_VAR }}",
            vec![],
        ),
        ("an undefined secret", "  a: {{ secrets.nothing }}", vec![]),
        ("an unclosed if", "{% if values.x %}", vec!["-v", "x=1"]),
        ("an endif without if", "{% endif %}", vec![]),
        (
            "an unclosed for",
            "{% for x in values.l %}",
            vec!["--data-value-yaml", "l=[1]"],
        ),
        (
            "a for over a number",
            "{% for x in values.n %}\n{% endfor %}",
            vec!["--data-value-yaml", "n=3"],
        ),
        (
            "an include of a missing file",
            "{% include \"_missing.yaml\" %}",
            vec![],
        ),
        ("an unknown component", "  {{<nosuch/>}}", vec![]),
        ("int of a word", "  a: {{ values.x | int }}", vec!["-v", "x=abc"]),
        ("float of a word", "  a: {{ values.x | float }}", vec!["-v", "x=abc"]),
        (
            "b64decode of junk",
            "  a: {{ values.x | b64decode }}",
            vec!["-v", "x=!!!"],
        ),
        (
            "a division by zero",
            "  a: {{ 1 / values.z }}",
            vec!["--data-value-yaml", "z=0"],
        ),
        ("a math on a string", "  a: {{ values.x * 2 }}", vec!["-v", "x=abc"]),
        ("an unknown function", "  a: {{ nosuchfn() }}", vec![]),
        ("an unclosed comment", "  {# never closed", vec![]),
        ("an unclosed string", "  a: {{ \"open }}", vec![]),
        ("a set without a value", "{% set x = %}", vec![]),
        ("an unknown tag", "{% frobnicate %}", vec![]),
        ("a raw block never closed", "{% raw %}", vec![]),
        ("an integer too big for Kubernetes", "  a: 99999999999999999999", vec![]),
        ("an infinite float", "  a: .inf", vec![]),
        ("a duplicate key after render", "  x: {k: 1, k: 2}", vec![]),
        (
            "a value that renders a duplicate key",
            "  x: {'{{ values.k }}': 1, b: 2}",
            vec!["-v", "k=b"],
        ),
        ("a private-use placeholder character", "  a: \u{E000}", vec![]),
        (
            "a filter argument missing",
            "  a: {{ values.x | default }}",
            vec!["-v", "x=1"],
        ),
        (
            "a wrong filter argument name",
            "  a: {{ values.x | to_json(pretty=3) }}",
            vec!["-v", "x=1"],
        ),
        (
            "an index out of range",
            "  a: {{ values.l[5] }}",
            vec!["--data-value-yaml", "l=[1]"],
        ),
        (
            "a safe fragment that is not YAML",
            "  a: {{ values.x | safe }}",
            vec!["-v", "x=[1, 2"],
        ),
        ("an else without if", "{% else %}", vec![]),
        ("a macro (Tera 1) tag", "{% macro m() %}{% endmacro m %}", vec![]),
    ];
    let mut cases: Vec<Case> = lines
        .into_iter()
        .map(|(name, line, args)| {
            let mut argv = vec!["render"];
            argv.extend(args);
            Case::new(format!("template: {name}"), &argv)
                .file("manifests/t.yaml", format!("{HEAD}{line}\n"))
                .expect("manifests/t.yaml:6:")
        })
        .collect();
    cases.push(
        Case::new("template: two templates with one name", &["render", "a", "b"])
            .file("a/t.yaml", format!("{HEAD}  a: x\n"))
            .file("b/t.yaml", format!("{HEAD}  b: x\n"))
            .expect("t.yaml"),
    );
    cases.push(
        Case::new("template: a folder without templates", &["render", "empty"])
            .file("empty/readme.txt", "x")
            .expect("empty"),
    );
    cases.push(Case::new("template: a missing template path", &["render", "nothere.yaml"]).expect("nothere.yaml"));
    cases
}

fn manifest_cases() -> Vec<Case> {
    // (name, document, what the error must name)
    let documents: Vec<(&str, &str, &str)> = vec![
        ("no apiVersion", "kind: ConfigMap\nmetadata: {name: a}\n", "apiVersion"),
        ("no kind", "apiVersion: v1\nmetadata: {name: a}\n", "kind"),
        ("no metadata", "apiVersion: v1\nkind: ConfigMap\n", "has no metadata"),
        (
            "no name",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\n",
            "metadata.name",
        ),
        (
            "an empty name",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ''}\n",
            "metadata.name",
        ),
        (
            "a numeric name",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 12}\n",
            "metadata.name",
        ),
        (
            "a list name",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [a]}\n",
            "metadata.name",
        ),
        (
            "only generateName",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n",
            "generateName",
        ),
        (
            "a numeric kind",
            "apiVersion: v1\nkind: 3\nmetadata: {name: a}\n",
            "kind",
        ),
        (
            "a numeric apiVersion",
            "apiVersion: 1\nkind: ConfigMap\nmetadata: {name: a}\n",
            "apiVersion",
        ),
        ("a list at the top", "- apiVersion: v1\n  kind: ConfigMap\n", "bad.yaml"),
        ("a string at the top", "just text\n", "bad.yaml"),
        ("a number at the top", "42\n", "bad.yaml"),
        (
            "metadata as a list",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: [a]\n",
            "metadata",
        ),
        (
            "a numeric namespace",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: 3}\n",
            "namespace",
        ),
        (
            "the same object twice",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
            "ConfigMap",
        ),
        (
            "a List whose items are not objects",
            "apiVersion: v1\nkind: List\nitems: [1, 2]\n",
            "bad.yaml",
        ),
        (
            "a List item without a name",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n",
            "has no metadata",
        ),
        (
            "labels as a list",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: [x]}\n",
            "labels",
        ),
        (
            "a numeric label value",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {x: 1}}\n",
            "labels",
        ),
        (
            "an annotation that is a map",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, annotations: {x: {y: 1}}}\n",
            "annotations",
        ),
        (
            "a kind with a space",
            "apiVersion: v1\nkind: Config Map\nmetadata: {name: a}\n",
            "kind",
        ),
        (
            "an apiVersion with two slashes",
            "apiVersion: a/b/c\nkind: X\nmetadata: {name: a}\n",
            "apiVersion",
        ),
    ];
    documents
        .into_iter()
        .map(|(name, document, must_name)| {
            Case::new(format!("object: {name}"), &["render"])
                .file("manifests/bad.yaml", document)
                .expect("manifests/bad.yaml")
                .expect(must_name)
        })
        .collect()
}

fn env_file_cases() -> Vec<Case> {
    const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
    let dotenv: Vec<(&str, &str, usize)> = vec![
        ("a line without =", "OK=1\nJUSTAWORD\n", 2),
        ("an unterminated double quote", "OK=1\nA=\"open\n", 2),
        ("an unterminated single quote", "OK=1\nA='open\n", 2),
        ("a name with a space", "OK=1\nMY VAR=1\n", 2),
        ("a name starting with a digit", "OK=1\n1A=1\n", 2),
        ("a name with a dash", "OK=1\nA-B=1\n", 2),
        ("an export without a value", "OK=1\nexport\n", 2),
        ("a bad escape in double quotes", "OK=1\nA=\"x\\qy\"\n", 2),
    ];
    let envrc: Vec<(&str, &str, usize)> = vec![
        ("command substitution", "export OK=1\nexport A=$(date)\n", 2),
        ("backticks", "export OK=1\nexport A=`date`\n", 2),
        ("an if block", "export OK=1\nif true; then\n", 2),
        ("a function call", "export OK=1\nuse nix\n", 2),
        ("layout", "export OK=1\nlayout python\n", 2),
        ("eval", "export OK=1\neval \"$(x)\"\n", 2),
        ("a pipe", "export OK=1\necho a | cat\n", 2),
        ("source of an arbitrary script", "export OK=1\nsource ./setup.sh\n", 2),
        ("an unterminated quote", "export OK=1\nexport A=\"open\n", 2),
        ("arithmetic", "export OK=1\nexport A=$((1+2))\n", 2),
        ("a redirect", "export OK=1\necho x > f\n", 2),
        ("a for loop", "export OK=1\nfor x in a b; do\n", 2),
        ("a missing dotenv file", "export OK=1\ndotenv missing.env\n", 2),
        (
            "a missing source_env file",
            "export OK=1\nsource_env missing.envrc\n",
            2,
        ),
        (
            "an unset required variable",
            "export OK=1\nexport A=${NOPE:?required}\n",
            2,
        ),
    ];
    let mut cases = Vec::new();
    for (name, text, line) in dotenv {
        cases.push(
            Case::new(format!(".env: {name}"), &["render", "--env-file", "x.env"])
                .file("x.env", text)
                .file("manifests/a.yaml", TEMPLATE)
                .expect(format!("x.env:{line}:")),
        );
    }
    for (name, text, line) in envrc {
        cases.push(
            Case::new(format!(".envrc: {name}"), &["render", "--env-file", ".envrc"])
                .file(".envrc", text)
                .file("manifests/a.yaml", TEMPLATE)
                .expect(format!(".envrc:{line}:")),
        );
    }
    cases.push(
        Case::new(".env: a missing env file", &["render", "--env-file", "missing.env"])
            .file("manifests/a.yaml", TEMPLATE)
            .expect("missing.env"),
    );
    cases.push(
        Case::new(".env.age: not an age file", &["render", "--env-file", "x.env.age"])
            .file("x.env.age", "A=1\n")
            .file("manifests/a.yaml", TEMPLATE)
            .expect("x.env.age"),
    );
    cases.push(
        Case::new(
            ".env.age: encrypted to someone else",
            &["render", "--env-file", "other.env.age"],
        )
        .file("manifests/a.yaml", TEMPLATE)
        .expect("other.env.age"),
    );
    cases
}

fn project_cases() -> Vec<Case> {
    const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
    // (name, kdeploy.yaml, the line the error is on, extra args)
    let projects: Vec<(&str, &str, usize, Vec<&str>)> = vec![
        ("an unknown key", "templates: [manifests]\ntemplatez: [x]\n", 2, vec![]),
        (
            "an unknown key in a target",
            "targets:\n  dev:\n    contxt: x\n",
            3,
            vec!["--target", "dev"],
        ),
        ("templates as a number", "templates: 3\n", 1, vec![]),
        ("values as a map", "values: {a: 1}\n", 1, vec![]),
        ("namespace as a list", "namespace: [a]\n", 1, vec![]),
        ("targets as a list", "targets: [dev]\n", 1, vec![]),
        (
            "a target as a string",
            "targets:\n  dev: prod\n",
            2,
            vec!["--target", "dev"],
        ),
        ("recipients as a string", "recipients: age1x\n", 1, vec![]),
        ("env_files as a number", "env_files: 1\n", 1, vec![]),
        ("secrets as a map", "secrets: {a: b}\n", 1, vec![]),
        ("a duplicate key", "namespace: a\nnamespace: b\n", 2, vec![]),
        ("name as a list", "name: [a]\n", 1, vec![]),
        (
            "context as a map",
            "targets:\n  dev:\n    context: {a: 1}\n",
            3,
            vec!["--target", "dev"],
        ),
    ];
    let mut cases: Vec<Case> = projects
        .into_iter()
        .map(|(name, text, line, args)| {
            let mut argv = vec!["render"];
            argv.extend(args);
            Case::new(format!("kdeploy.yaml: {name}"), &argv)
                .file("kdeploy.yaml", text)
                .file("manifests/a.yaml", TEMPLATE)
                .expect(format!("kdeploy.yaml:{line}:"))
        })
        .collect();
    // Errors about a file as a whole or a setting's meaning: they name the file and the setting.
    let unlocated: Vec<(&str, &str, Vec<&str>, &str)> = vec![
        (
            "an unknown target",
            "targets:\n  dev: {}\n",
            vec!["--target", "prod"],
            "unknown target `prod`",
        ),
        (
            "a target without a project",
            "",
            vec!["--target", "prod"],
            "--target prod",
        ),
        (
            "a bad target name",
            "targets:\n  'a b': {}\n",
            vec![],
            "target name `a b`",
        ),
        (
            "an invalid project name",
            "name: Shop_1\n",
            vec![],
            "`Shop_1` is not a valid project name",
        ),
        ("a name ending in a dash", "name: shop-\n", vec![], "`shop-`"),
        (
            "a long name",
            "name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
            vec![],
            "longer than 55",
        ),
        (
            "a derived identity that is not a name",
            "name: shop\ntargets:\n  EU: {}\n",
            vec!["--target", "EU"],
            "shop-EU",
        ),
        (
            "a missing values file",
            "values: [nothere.yaml]\n",
            vec![],
            "nothere.yaml",
        ),
        (
            "a missing env file",
            "env_files: [nothere.env]\n",
            vec![],
            "nothere.env",
        ),
        (
            "a missing secrets file",
            "secrets: [nothere.sops.yaml]\n",
            vec![],
            "nothere.sops.yaml",
        ),
        ("a missing template folder", "templates: [nothere]\n", vec![], "nothere"),
        (
            "a missing target values file",
            "targets:\n  dev: {values: [dev.yaml]}\n",
            vec!["--target", "dev"],
            "dev.yaml",
        ),
    ];
    for (name, text, args, must_name) in unlocated {
        let mut argv = vec!["render"];
        argv.extend(args);
        let mut case = Case::new(format!("kdeploy.yaml: {name}"), &argv)
            .file("manifests/a.yaml", TEMPLATE)
            .expect(must_name);
        if !text.is_empty() {
            case = case.file("kdeploy.yaml", text);
        }
        cases.push(case);
    }
    cases.push(
        Case::new(
            "kdeploy.yaml: --project naming a missing file",
            &["render", "--project", "nothere.yaml"],
        )
        .file("manifests/a.yaml", TEMPLATE)
        .expect("nothere.yaml"),
    );
    cases.push(
        Case::new("kdeploy.yaml: a values file that is a list", &["render"])
            .file("kdeploy.yaml", "values: [v.yaml]\n")
            .file("v.yaml", "- a\n- b\n")
            .file("manifests/a.yaml", TEMPLATE)
            .expect("v.yaml:1:"),
    );
    cases.push(
        Case::new("kdeploy.yaml: an empty key in a values file", &["render"])
            .file("kdeploy.yaml", "values: [v.yaml]\n")
            .file("v.yaml", "a:\n  '': 1\n")
            .file("manifests/a.yaml", TEMPLATE)
            .expect("v.yaml:2:"),
    );
    cases
}

fn flag_cases() -> Vec<Case> {
    const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
    let flags: Vec<(&str, Vec<&str>, &str)> = vec![
        ("-v without =", vec!["-v", "novalue"], "--data-value novalue"),
        (
            "-v with an empty key segment",
            vec!["-v", "a..b=1"],
            "--data-value a..b",
        ),
        ("-v with an empty key", vec!["-v", "=1"], "--data-value"),
        (
            "--data-value-yaml without =",
            vec!["--data-value-yaml", "k"],
            "--data-value-yaml k",
        ),
        (
            "--data-value-file of a missing file",
            vec!["--data-value-file", "k=nothere.pem"],
            "nothere.pem",
        ),
        (
            "--data-value-file without =",
            vec!["--data-value-file", "nothere.pem"],
            "--data-value-file",
        ),
        (
            "--data-values-file of a missing file",
            vec!["--data-values-file", "nothere.yaml"],
            "nothere.yaml",
        ),
        (
            "--data-values-file of a folder without YAML",
            vec!["--data-values-file", "empty"],
            "no *.yaml",
        ),
        (
            "--data-values-env with an empty segment",
            vec!["--data-values-env", "DVE"],
            "DVE_a____b",
        ),
        ("--output of an unknown format", vec!["-o", "toml"], "toml"),
        ("an unknown flag", vec!["--frobnicate"], "--frobnicate"),
        (
            "--secrets-file of a missing file",
            vec!["--secrets-file", "nothere.sops.yaml"],
            "nothere.sops.yaml",
        ),
        (
            "--identity of a missing file",
            vec!["--identity", "nothere.txt", "--secrets-file", "valid.sops.yaml"],
            "nothere.txt",
        ),
        ("-f of a missing file", vec!["-f", "nothere.yaml"], "nothere.yaml"),
        (
            "a values file that is a scalar",
            vec!["--data-values-file", "scalar.yaml"],
            "scalar.yaml:1:",
        ),
    ];
    flags
        .into_iter()
        .map(|(name, args, must_name)| {
            let mut argv = vec!["render"];
            argv.extend(args);
            Case::new(format!("flag: {name}"), &argv)
                .file("manifests/a.yaml", TEMPLATE)
                .file("empty/notes.txt", "x")
                .file("scalar.yaml", "42\n")
                .env("DVE_a____b", "1")
                .expect(must_name)
        })
        .collect()
}

/// Vault files: `valid` is a file kdeploy encrypted to the test identity (in the shared folder as
/// `id.txt`); each case breaks one thing in it.
fn vault_cases(valid: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let tamper = |from: &str, to: &str| valid.replacen(from, to, 1);
    let first_value = valid.lines().find(|l| l.contains("ENC[AES256_GCM")).unwrap().to_owned();
    let data_of = |line: &str| {
        line.split("data:")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_owned()
    };
    let data = data_of(&first_value);
    let flipped: String = {
        let mut chars: Vec<char> = data.chars().collect();
        chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    };
    let mac_line = valid
        .lines()
        .find(|l| l.trim_start().starts_with("mac:"))
        .unwrap()
        .to_owned();
    let broken: Vec<(&str, String)> = vec![
        ("a changed ciphertext", tamper(&data, &flipped)),
        (
            "a value moved to another key",
            valid.replacen("password:", "passwd:", 1),
        ),
        (
            "a changed mac",
            tamper(
                &mac_line,
                "    mac: ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]",
            ),
        ),
        ("a changed lastmodified", {
            let line = valid.lines().find(|l| l.contains("lastmodified:")).unwrap();
            valid.replacen(line, "    lastmodified: \"2001-01-01T00:00:00Z\"", 1)
        }),
        ("no sops metadata", valid.split("sops:").next().unwrap().to_owned()),
        ("an ENC value without data", tamper(&format!("data:{data},"), "")),
        ("an ENC value with bad base64", tamper(&data, "!!!notbase64")),
        (
            "an ENC value of an unknown type",
            valid.replacen("type:str]", "type:blob]", 1),
        ),
        (
            "an ENC value that is not closed",
            valid.replacen("type:str]", "type:str", 1),
        ),
        ("a removed recipient stanza", {
            let start = valid.find("-----BEGIN AGE ENCRYPTED FILE-----").unwrap();
            let end = valid.find("-----END AGE ENCRYPTED FILE-----").unwrap();
            format!("{}{}", &valid[..start], &valid[end..])
        }),
        ("an added plaintext value", format!("extra: plain\n{valid}")),
        (
            "a version field that is a list",
            valid.replacen("version:", "version: [1]\n    old_version:", 1),
        ),
    ];
    for (name, text) in broken {
        cases.push(
            Case::new(
                format!("vault: {name} (render)"),
                &["render", "--secrets-file", "s.sops.yaml", "--identity", "id.txt"],
            )
            .file("s.sops.yaml", text.clone())
            .file(
                "manifests/a.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n",
            )
            .expect("s.sops.yaml"),
        );
        cases.push(
            Case::new(
                format!("vault: {name} (set leaves the file as it was)"),
                &["vault", "set", "s.sops.yaml", "db.password", "--identity", "id.txt"],
            )
            .file("s.sops.yaml", text)
            .expect("s.sops.yaml"),
        );
    }
    cases.push(
        Case::new("vault: no identity opens it", &["vault", "decrypt", "s.sops.yaml"])
            .file("s.sops.yaml", valid.to_owned())
            .expect("s.sops.yaml"),
    );
    cases.push(
        Case::new(
            "vault: decrypt of a plaintext file",
            &["vault", "decrypt", "plain.yaml", "--identity", "id.txt"],
        )
        .file("plain.yaml", "a: 1\n")
        .expect("plain.yaml"),
    );
    cases.push(
        Case::new(
            "vault: get of a missing key",
            &["vault", "get", "s.sops.yaml", "db.nothere", "--identity", "id.txt"],
        )
        .file("s.sops.yaml", valid.to_owned())
        .expect("db.nothere"),
    );
    cases.push(
        Case::new(
            "vault: encrypt of an already encrypted file",
            &["vault", "encrypt", "s.sops.yaml", "--recipient", RECIPIENT],
        )
        .file("s.sops.yaml", valid.to_owned())
        .expect("s.sops.yaml"),
    );
    cases.push(
        Case::new(
            "vault: encrypt to a bad recipient",
            &["vault", "encrypt", "plain.yaml", "--recipient", "age1nope"],
        )
        .file("plain.yaml", "a: 1\n")
        .expect("age1nope"),
    );
    cases.push(
        Case::new(
            "vault: encrypt with null values",
            &["vault", "encrypt", "plain.json", "--recipient", RECIPIENT],
        )
        .file("plain.json", "{\"a\": null}\n")
        .expect("plain.json"),
    );
    cases.push(
        Case::new(
            "vault: encrypt of invalid JSON",
            &["vault", "encrypt", "plain.json", "--recipient", RECIPIENT],
        )
        .file("plain.json", "{\"a\": \n")
        .expect("plain.json"),
    );
    cases.push(
        Case::new(
            "vault: an identity file that is not one",
            &["vault", "decrypt", "s.sops.yaml", "--identity", "junk.txt"],
        )
        .file("s.sops.yaml", valid.to_owned())
        .file("junk.txt", "not a key\n")
        .expect("junk.txt"),
    );
    cases.push(
        Case::new("vault: keys of a missing file", &["vault", "keys", "nothere.sops.yaml"]).expect("nothere.sops.yaml"),
    );
    cases
}

fn kubeconfig_cases() -> Vec<Case> {
    const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
    let context = "contexts: [{name: x, context: {cluster: c, user: u}}]\n";
    let users = "users: [{name: u, user: {}}]\n";
    let configs: Vec<(&str, String, &str)> = vec![
        ("not YAML", "apiVersion: v1\nclusters: [\n".into(), "kc.yaml"),
        ("a list", "- a\n".into(), "kc.yaml"),
        (
            "no current context",
            format!(
                "apiVersion: v1\nkind: Config\n{context}clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:1'}}}}]\n{users}"
            ),
            "current context",
        ),
        (
            "an unknown current context",
            format!("apiVersion: v1\nkind: Config\ncurrent-context: nope\n{context}{users}"),
            "nope",
        ),
        (
            "a context naming a missing cluster",
            format!("apiVersion: v1\nkind: Config\ncurrent-context: x\n{context}{users}"),
            "kc.yaml",
        ),
        (
            "a cluster with a bad URL",
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: x\n{context}clusters: [{{name: c, cluster: {{server: 'not a url'}}}}]\n{users}"
            ),
            "kc.yaml",
        ),
        (
            "bad certificate data",
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: x\n{context}clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:1', certificate-authority-data: '!!!'}}}}]\n{users}"
            ),
            "kc.yaml",
        ),
        (
            "a missing certificate file",
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: x\n{context}clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:1', certificate-authority: /nothere/ca.crt}}}}]\n{users}"
            ),
            "ca.crt",
        ),
        (
            "an exec plugin that does not exist",
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: x\n{context}clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:1'}}}}]\nusers: [{{name: u, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1, command: /nothere/plugin}}}}}}]\n"
            ),
            "kc.yaml",
        ),
        (
            "a server that refuses connections",
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: x\n{context}clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:1'}}}}]\n{users}"
            ),
            "127.0.0.1:1",
        ),
    ];
    let mut cases = Vec::new();
    for (name, text, must_name) in configs {
        for command in ["diff", "apply"] {
            cases.push(
                Case::new(
                    format!("kubeconfig: {name} ({command})"),
                    &[command, "--kubeconfig", "kc.yaml", "--yes"][..if command == "apply" { 4 } else { 3 }],
                )
                .file("kc.yaml", text.clone())
                .file("manifests/a.yaml", TEMPLATE)
                .expect(must_name),
            );
        }
    }
    cases.push(
        Case::new(
            "kubeconfig: a missing --kubeconfig",
            &["diff", "--kubeconfig", "nothere.yaml"],
        )
        .file("manifests/a.yaml", TEMPLATE)
        .expect("nothere.yaml"),
    );
    cases.push(
        Case::new("kubeconfig: none at all", &["diff"])
            .file("manifests/a.yaml", TEMPLATE)
            .expect("KUBECONFIG")
            .expect("--kubeconfig"),
    );
    cases.push(
        Case::new("kubeconfig: KUBECONFIG naming a missing file", &["diff"])
            .file("manifests/a.yaml", TEMPLATE)
            .env("KUBECONFIG", "nothere.yaml")
            .expect("nothere.yaml"),
    );
    cases.push(
        Case::new(
            "kubeconfig: --context not in it",
            &["diff", "--kubeconfig", "kc.yaml", "--context", "zzz"],
        )
        .file(
            "kc.yaml",
            format!("apiVersion: v1\nkind: Config\ncurrent-context: x\n{context}{users}"),
        )
        .file("manifests/a.yaml", TEMPLATE)
        .expect("zzz"),
    );
    cases
}

/// A valid vault file, encrypted by kdeploy to a fresh identity in `dir` (`id.txt`).
/// A tab before the first key of a file: go-yaml (kubectl) and PyYAML refuse it, and the parser
/// kdeploy builds on reads it as separation. Every YAML input kdeploy reads refuses it at line 1.
fn tab_before_first_key_cases(valid_vault: &str) -> Vec<Case> {
    const OK: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n";
    let tabbed = |text: &str| format!("\t{text}");
    let manifest = tabbed(OK);
    vec![
        Case::new(
            "tab before the first key: values file",
            &["render", "--data-values-file", "v.yaml"],
        )
        .file("v.yaml", "\tab: 1\n")
        .file("manifests/ok.yaml", OK),
        Case::new("tab before the first key: project values file", &["render"])
            .file("kdeploy.yaml", "values: [v.yaml]\n")
            .file("v.yaml", "\tab: 1\n")
            .file("manifests/ok.yaml", OK),
        Case::new("tab before the first key: plain manifest", &["render", "-m", "m.yaml"])
            .file("m.yaml", manifest.clone()),
        Case::new("tab before the first key: template", &["render"]).file("manifests/bad.yaml", manifest),
        Case::new("tab before the first key: kdeploy.yaml", &["render"])
            .file("kdeploy.yaml", "\ttemplates: [manifests]\n")
            .file("manifests/ok.yaml", OK),
        Case::new(
            "tab before the first key: vault plaintext",
            &["vault", "encrypt", "plain.yaml", "--recipient", RECIPIENT],
        )
        .file("plain.yaml", "\ta: 1\n"),
        Case::new(
            "tab before the first key: vault file",
            &["render", "--secrets-file", "s.sops.yaml", "--identity", "id.txt"],
        )
        .file("s.sops.yaml", tabbed(valid_vault))
        .file("manifests/ok.yaml", OK),
    ]
    .into_iter()
    .map(|case| {
        let file = case
            .files
            .iter()
            .find(|(_, text)| text.starts_with('\t'))
            .unwrap()
            .0
            .clone();
        case.expect(format!("{file}:1:")).expect("a tab indents this key")
    })
    .collect()
}

fn make_vault(dir: &Path) -> String {
    let out = run_with_stdin(
        kdeploy()
            .current_dir(dir)
            .env("HOME", dir)
            .env("KDEPLOY_NO_KEYRING", "1")
            .args(["vault", "init", "--file", "id.txt"]),
        None,
    )
    .ok();
    let recipient = out.stdout.trim().to_owned();
    std::fs::write(dir.join("plain.yaml"), "db:\n  password: hunter2\n  user: app\n").unwrap();
    run_with_stdin(
        kdeploy()
            .current_dir(dir)
            .env("HOME", dir)
            .env("KDEPLOY_NO_KEYRING", "1")
            .args([
                "vault",
                "encrypt",
                "plain.yaml",
                "-o",
                "s.sops.yaml",
                "--recipient",
                &recipient,
            ]),
        None,
    )
    .ok();
    std::fs::remove_file(dir.join("plain.yaml")).unwrap();
    // An env file only someone else can open (shared by the cases as other.env.age).
    std::fs::write(dir.join("other.env"), "A=1\n").unwrap();
    run_with_stdin(
        kdeploy().current_dir(dir).env("HOME", dir).args([
            "vault",
            "encrypt",
            "other.env",
            "-o",
            "other.env.age",
            "--recipient",
            RECIPIENT,
        ]),
        None,
    )
    .ok();
    std::fs::remove_file(dir.join("other.env")).unwrap();
    // Kept as valid.sops.yaml for the cases that need a file that opens.
    std::fs::rename(dir.join("s.sops.yaml"), dir.join("valid.sops.yaml")).unwrap();
    std::fs::read_to_string(dir.join("valid.sops.yaml")).unwrap()
}

#[test]
fn every_bad_input_is_refused_with_its_place_and_nothing_else_happens() {
    let shared = tempfile::tempdir().unwrap();
    let valid_vault = make_vault(shared.path());
    let mut cases = yaml_cases();
    cases.extend(template_cases());
    cases.extend(manifest_cases());
    cases.extend(env_file_cases());
    cases.extend(project_cases());
    cases.extend(flag_cases());
    cases.extend(vault_cases(&valid_vault));
    cases.extend(kubeconfig_cases());
    cases.extend(tab_before_first_key_cases(&valid_vault));
    assert!(cases.len() >= 300, "the corpus has {} cases", cases.len());

    let failures: Vec<String> = cases.iter().filter_map(|case| check(case, shared.path())).collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not handled as they must be:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
