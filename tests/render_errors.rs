//! Bad input: every case exits with code 2, prints nothing on stdout, and says what is wrong and where.

mod support;

use support::{Run, kdeploy, project, run};

fn render_fails(files: &[(&str, &str)], args: &[&str]) -> Run {
    let dir = project(files);
    let out = run(kdeploy().current_dir(dir.path()).arg("render").args(args));
    assert_eq!(out.code, 2, "expected exit code 2; stderr:\n{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "nothing may reach stdout on error, got:\n{}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

const CM_HEAD: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n";

#[test]
fn template_syntax_error_names_file_line_and_column() {
    let out = render_fails(
        &[(
            "manifests/cm.yaml",
            &format!("{CM_HEAD}data:\n  a: {{{{ values.x + }}}}\n"),
        )],
        &["-v", "x=1"],
    );
    assert!(out.stderr.contains("manifests/cm.yaml:5:"), "{}", out.stderr);
    assert!(out.stderr.contains("template syntax error"), "{}", out.stderr);
    assert!(
        out.stderr.contains("  a: {{ values.x + }}"),
        "the line is shown: {}",
        out.stderr
    );
}

#[test]
fn undefined_value_names_the_expression_and_the_keys_that_exist() {
    let out = render_fails(
        &[(
            "manifests/cm.yaml",
            &format!("{CM_HEAD}data:\n  a: {{{{ values.db.hots }}}}\n"),
        )],
        &["-v", "db.host=h"],
    );
    assert!(out.stderr.contains("manifests/cm.yaml:5:9"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`values.db.hots` is not defined (keys under `values.db`: host)"),
        "{}",
        out.stderr
    );
}

#[test]
fn undefined_env_variable_is_an_error_unless_defaulted() {
    let template = format!("{CM_HEAD}data:\n  a: {{{{ env.KDEPLOY_TEST_SURELY_UNSET }}}}\n");
    let out = render_fails(&[("manifests/cm.yaml", &template)], &[]);
    assert!(out.stderr.contains("env.KDEPLOY_TEST_SURELY_UNSET"), "{}", out.stderr);
    let dir = project(&[(
        "manifests/cm.yaml",
        &format!("{CM_HEAD}data:\n  a: {{{{ env.KDEPLOY_TEST_SURELY_UNSET | default(value=\"d\") }}}}\n"),
    )]);
    run(kdeploy().current_dir(dir.path()).arg("render")).ok();
}

#[test]
fn rendered_output_that_is_not_yaml_is_reported_without_values() {
    let template = format!("{CM_HEAD}data:\n  a: {{{{ values.secret }}}}\n   b: c\n");
    let out = render_fails(&[("manifests/cm.yaml", &template)], &["-v", "secret=hunter2-canary"]);
    assert!(out.stderr.contains("not valid YAML"), "{}", out.stderr);
    assert!(
        out.stderr.contains("manifests/cm.yaml:6:5") && out.stderr.contains("of the rendered output"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2-canary"), "{}", out.stderr);
}

#[test]
fn malformed_values_file_names_file_line_and_column() {
    let out = render_fails(
        &[("manifests/cm.yaml", CM_HEAD), ("v.yaml", "a: 1\nb: [1, 2\nc: 3\n")],
        &["--data-values-file", "v.yaml"],
    );
    assert!(out.stderr.contains("v.yaml:"), "{}", out.stderr);
    assert!(out.stderr.contains("invalid YAML in values file"), "{}", out.stderr);
    let out = render_fails(
        &[("manifests/cm.yaml", CM_HEAD), ("v.yaml", "a: 1\na: 2\n")],
        &["--data-values-file", "v.yaml"],
    );
    assert!(
        out.stderr.contains("v.yaml:2:1") && out.stderr.contains("duplicate key `a`"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_values_file_is_named() {
    let out = render_fails(&[("manifests/cm.yaml", CM_HEAD)], &["--data-values-file", "nope.yaml"]);
    assert!(out.stderr.contains("nope.yaml"), "{}", out.stderr);
}

#[test]
fn malformed_env_files_name_the_line() {
    let out = render_fails(
        &[
            ("manifests/cm.yaml", CM_HEAD),
            ("bad.env", "A=1\nthis line is broken\n"),
        ],
        &["--env-file", "bad.env"],
    );
    assert!(out.stderr.contains("bad.env:2:"), "{}", out.stderr);
    let out = render_fails(
        &[
            ("manifests/cm.yaml", CM_HEAD),
            (".envrc", "export A=1\nexport B=$(vault read x)\n"),
        ],
        &["--env-file", ".envrc"],
    );
    assert!(out.stderr.contains(".envrc:2:"), "{}", out.stderr);
    assert!(out.stderr.contains("direnv exec"), "{}", out.stderr);
}

#[test]
fn bad_flags_exit_with_code_2() {
    let out = render_fails(&[("manifests/cm.yaml", CM_HEAD)], &["--no-such-flag"]);
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.stderr);
    let out = render_fails(&[("manifests/cm.yaml", CM_HEAD)], &["-v", "novalue"]);
    assert!(out.stderr.contains("expected key.path=value"), "{}", out.stderr);
    let out = render_fails(
        &[("manifests/cm.yaml", CM_HEAD)],
        &["--data-value-yaml", "k=[1, hunter2-canary"],
    );
    assert!(
        !out.stderr.contains("hunter2-canary"),
        "values from flags are never echoed: {}",
        out.stderr
    );
}

#[test]
fn project_file_problems_are_located() {
    let out = render_fails(
        &[
            ("kdeploy.yaml", "templates: [manifests]\nvalus: [v.yaml]\n"),
            ("manifests/cm.yaml", CM_HEAD),
        ],
        &[],
    );
    assert!(
        out.stderr.contains("kdeploy.yaml:2:") && out.stderr.contains("valus"),
        "{}",
        out.stderr
    );
    let out = render_fails(
        &[("kdeploy.yaml", "targets: {dev: {}}\n"), ("manifests/cm.yaml", CM_HEAD)],
        &["--target", "prod"],
    );
    assert!(
        out.stderr.contains("unknown target `prod`") && out.stderr.contains("defined targets: dev"),
        "{}",
        out.stderr
    );
}

#[test]
fn invalid_objects_are_all_listed() {
    let template = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: Secret\nmetadata: {name: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n- just a list\n";
    let out = render_fails(&[("manifests/all.yaml", template)], &[]);
    assert!(out.stderr.contains("3 problems"), "{}", out.stderr);
    assert!(out.stderr.contains("Secret/b has no apiVersion"), "{}", out.stderr);
    assert!(out.stderr.contains("ConfigMap/a is defined twice"), "{}", out.stderr);
    assert!(out.stderr.contains("manifests/all.yaml (document 4"), "{}", out.stderr);
}

#[test]
fn no_templates_is_a_clear_error() {
    let out = render_fails(&[("README.md", "nothing")], &[]);
    assert!(out.stderr.contains("no templates"), "{}", out.stderr);
}

/// Odd and broken inputs must end in a clean error or a render, never a crash.
#[test]
fn hostile_templates_never_crash() {
    let cases = [
        "{{",
        "}}",
        "{% for %}",
        "{{ values | safe }}",
        "a: {{ values.x | b64decode }}",
        "\u{E000}abc\u{E001}",
        "a: \u{E000}",
        "{{ 1 / 0 }}",
        "{% include \"missing.yaml\" %}",
        "*alias",
        "&a [*a]",
        "? [a]\n: b",
        "a: !!binary x",
        "---\n...\n---",
        "\t- tab",
        "a: {{ values.list }}: x",
        "{{<nope/>}}",
        "\u{FEFF}a: 1",
        "a: 'unterminated",
        "{{ values.x | to_yaml | safe }}",
        "{% raw %}{{ not parsed }}",
        "%YAML 1.1\n---\na: 1",
    ];
    for case in cases {
        let dir = project(&[("manifests/x.yaml", case)]);
        let out = run(kdeploy()
            .current_dir(dir.path())
            .args(["render", "-v", "x=1", "--data-value-yaml", "list=[1]"]));
        assert!(
            out.code == 0 || out.code == 2,
            "{case:?}: exit {} stderr {}",
            out.code,
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{case:?}: {}", out.stderr);
        if out.code == 2 {
            assert!(out.stdout.is_empty(), "{case:?}");
            assert!(
                out.stderr.lines().any(|l| l.starts_with("error: ")),
                "{case:?}: {}",
                out.stderr
            );
        }
    }
}
