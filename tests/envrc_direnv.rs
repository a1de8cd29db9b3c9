//! The `.envrc` reader against the real direnv: for each supported form, the variables kdeploy reads
//! must be exactly the ones `direnv exec` exports.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use support::{project, run};

/// What `direnv exec DIR env` exports beyond the environment it was given.
fn direnv_exports(dir: &Path, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let home = Path::new(&base["HOME"]);
    let direnv = || {
        let mut command = Command::new("direnv");
        command
            .env_clear()
            .envs(base)
            .env("XDG_CONFIG_HOME", home.join("config"));
        command
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CACHE_HOME", home.join("cache"));
        command
    };
    let allowed = run(direnv().arg("allow").arg(dir));
    assert_eq!(
        allowed.code, 0,
        "direnv allow failed (is direnv installed? scripts/install-test-deps installs it): {}",
        allowed.stderr
    );
    let out = run(direnv().arg("exec").arg(dir).args(["env", "-0"])).ok();
    let mut exported = BTreeMap::new();
    for entry in out.stdout.split('\0').filter(|e| !e.is_empty()) {
        let (name, value) = entry.split_once('=').unwrap();
        let ignored = name.starts_with("DIRENV_")
            || [
                "PWD",
                "OLDPWD",
                "SHLVL",
                "_",
                "HOME",
                "XDG_CONFIG_HOME",
                "XDG_DATA_HOME",
                "XDG_CACHE_HOME",
            ]
            .contains(&name);
        if !ignored && base.get(name).map(String::as_str) != Some(value) {
            exported.insert(name.to_owned(), value.to_owned());
        }
    }
    exported
}

fn kdeploy_exports(dir: &Path, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let loaded =
        kdeploy::values::load_env_file(&dir.join(".envrc"), &BTreeMap::new(), base).expect("kdeploy reads the .envrc");
    loaded
        .into_iter()
        .filter(|(name, value, _)| base.get(name) != Some(value))
        .map(|(name, value, _)| (name, value))
        .collect()
}

/// A small, fixed environment; HOME is private so direnv's allow list stays out of the real one.
fn base_env(home: &Path) -> BTreeMap<String, String> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", &home.display().to_string()),
        ("PRESET", "from-outside"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn assert_same(files: &[(&str, &str)]) {
    let dir = project(files);
    let dir_path = dir.path().canonicalize().unwrap();
    let home = tempfile::tempdir().unwrap();
    let base = base_env(home.path());
    let theirs = direnv_exports(&dir_path, &base);
    let ours = kdeploy_exports(&dir_path, &base);
    assert!(!theirs.is_empty(), "the case exports nothing; it tests nothing");
    assert_eq!(ours, theirs, "kdeploy and direnv disagree on {files:?}");
}

#[test]
fn exports_with_quoting_and_expansion() {
    assert_same(&[(
        ".envrc",
        "# a comment\n\nexport A=1\nexport B=\"two words\"\nexport C='single $HOME'\nexport D=\"${A}-x\" E=$A\nLOCAL=l\nexport F=\"$LOCAL and $PRESET\"\nexport G=${UNSET:-fallback}\nexport H=\"q\\\"uote\" I=a\\ b\nexport J=1 # trailing comment\nexport K=~/dir\n",
    )]);
}

#[test]
fn exporting_a_shell_variable_later() {
    assert_same(&[(".envrc", "LOCAL=value\nexport LOCAL\nexport PRESET=changed\n")]);
}

#[test]
fn dotenv_and_dotenv_if_exists() {
    assert_same(&[
        (
            ".envrc",
            "dotenv\ndotenv_if_exists missing.env\ndotenv_if_exists extra.env\n",
        ),
        (
            ".env",
            "L=from-dotenv\nM=\"quoted value\"\nN='single'\n# comment\nexport O=exported\n",
        ),
        ("extra.env", "P=extra\n"),
    ]);
}

#[test]
fn source_env_and_path_add() {
    assert_same(&[
        (
            ".envrc",
            "source_env sub\nsource_env_if_exists nowhere/.envrc\nexport Q=\"$FROM_SUB+\"\nPATH_add bin\n",
        ),
        ("sub/.envrc", "export FROM_SUB=sub\n"),
    ]);
}
