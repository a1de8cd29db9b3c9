//! The vault end to end: interop with the real sops and age CLIs, tamper detection, identities, the
//! vault commands, and secrets in rendering.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{VaultHome, run, run_with_stdin, yaml12_documents};

const CANARY: &str = "canary-7f3a9c-hunter2";

fn plaintext_yaml() -> String {
    format!(
        "db:\n  user: app\n  password: \"{CANARY}: #1\"\n  port: 5432\n  tls: true\n  ratio: 0.25\nhosts: [a, \"yes\"]\nempty: \"\"\nnote_unencrypted: in the clear\n"
    )
}

fn as_json(text: &str) -> Value {
    yaml12_documents(text).remove(0)
}

fn dotenv_map(text: &str) -> Value {
    Value::Object(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect(),
    )
}

#[test]
fn files_kdeploy_writes_decrypt_with_sops() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    for (name, plain, parse) in [
        ("s.yaml", plaintext_yaml(), as_json as fn(&str) -> Value),
        (
            "s.json",
            r#"{"a": {"b": [1, "two", true, 1.5]}, "c": "x"}"#.to_owned(),
            as_json,
        ),
        ("s.env", format!("A=1\nPASSWORD={CANARY}\nMULTI=l1\\nl2\n"), dotenv_map),
    ] {
        home.write(name, &plain);
        run(home.kdeploy().args(["vault", "encrypt", name, "-r", &recipient])).ok();
        let encrypted = std::fs::read_to_string(home.path().join(name)).unwrap();
        assert!(!encrypted.contains(CANARY), "{name} holds plaintext:\n{encrypted}");
        let decrypted = run(home.sops(&identity).args(["-d", name])).ok().stdout;
        assert_eq!(parse(&decrypted), parse(&plain), "sops reads {name} differently");
    }
}

#[test]
fn files_sops_writes_decrypt_with_kdeploy() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    for (name, plain, parse) in [
        ("p.yaml", plaintext_yaml(), as_json as fn(&str) -> Value),
        ("p.json", r#"{"a": {"b": [1, "two", false, 2.5]}}"#.to_owned(), as_json),
        ("p.env", format!("A=1\nPASSWORD={CANARY}\n"), dotenv_map),
    ] {
        home.write(name, &plain);
        let encrypted = run(home.sops(&identity).args(["-e", "--age", &recipient, name]))
            .ok()
            .stdout;
        let encrypted_name = format!("enc.{name}");
        home.write(&encrypted_name, &encrypted);
        let decrypted = run(home
            .kdeploy()
            .args(["vault", "decrypt", &encrypted_name, "--identity"])
            .arg(&identity))
        .ok()
        .stdout;
        assert_eq!(
            parse(&decrypted),
            parse(&plain),
            "kdeploy reads sops' {name} differently"
        );
    }
}

#[test]
fn a_file_sops_rewrote_still_opens_and_keeps_its_other_values() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    home.write("s.yaml", &plaintext_yaml());
    run(home.kdeploy().args(["vault", "encrypt", "s.yaml", "-r", &recipient])).ok();
    run(home
        .sops(&identity)
        .args(["set", "s.yaml", r#"["db"]["user"]"#, r#""changed-by-sops""#]))
    .ok();
    let get = |key: &str| {
        run(home
            .kdeploy()
            .args(["vault", "get", "s.yaml", key, "--identity"])
            .arg(&identity))
        .ok()
        .stdout
    };
    assert_eq!(get("db.user"), "changed-by-sops");
    assert_eq!(get("db.password"), format!("{CANARY}: #1"));
}

#[test]
fn env_age_files_interoperate_with_the_age_cli() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    home.write(".env", &format!("TOKEN={CANARY}\nREGION=eu\n"));
    run(home
        .kdeploy()
        .args(["vault", "encrypt", ".env", "-o", "ours.env.age", "-r", &recipient]))
    .ok();
    let decrypted = run(Command::new("age")
        .args(["-d", "-i"])
        .arg(&identity)
        .arg(home.path().join("ours.env.age")))
    .ok()
    .stdout;
    assert_eq!(decrypted, format!("TOKEN={CANARY}\nREGION=eu\n"));

    run(Command::new("age")
        .args(["-e", "-a", "-r", &recipient, "-o"])
        .arg(home.path().join("theirs.env.age"))
        .arg(home.path().join(".env")))
    .ok();
    home.write(
        "manifests/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata:\n  region: {{ env.REGION }}\n",
    );
    let out = run(home
        .kdeploy()
        .args(["render", "--env-file", "theirs.env.age", "--identity"])
        .arg(&identity))
    .ok();
    assert_eq!(yaml12_documents(&out.stdout)[0]["data"]["region"], "eu");
}

/// Writes the file, applies `change` to its text, and expects decryption to be refused.
fn assert_refused(change: &dyn Fn(&str) -> String, expected: &str) {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    home.write("s.yaml", "a: first-value\nb: second-value\n");
    run(home.kdeploy().args(["vault", "encrypt", "s.yaml", "-r", &recipient])).ok();
    let path = home.path().join("s.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    let changed = change(&original);
    assert_ne!(changed, original, "the tamper case changed nothing");
    std::fs::write(&path, changed).unwrap();
    let out = run(home
        .kdeploy()
        .args(["vault", "decrypt", "s.yaml", "--identity"])
        .arg(&identity));
    assert_eq!(out.code, 2, "tampered file was accepted:\n{}", out.stdout);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains(expected),
        "expected `{expected}` in:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("first-value") && !out.stderr.contains("second-value"),
        "{}",
        out.stderr
    );
}

fn line_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}: ")))
        .unwrap()
}

#[test]
fn a_changed_ciphertext_is_refused() {
    assert_refused(&|t| t.replacen("data:", "data:AAAA", 1), "does not decrypt");
}

#[test]
fn values_swapped_between_keys_are_refused() {
    assert_refused(
        &|t| {
            let (a, b) = (line_value(t, "a").to_owned(), line_value(t, "b").to_owned());
            t.replace(&a, "@A@").replace(&b, &a).replace("@A@", &b)
        },
        "does not decrypt",
    );
}

#[test]
fn an_edited_mac_is_refused() {
    assert_refused(
        &|t| {
            let mac = line_value(t, "mac").to_owned();
            let data_start = mac.find("data:").unwrap() + 5;
            let mut edited = mac.clone();
            let flipped = if &mac[data_start..data_start + 1] == "A" {
                "B"
            } else {
                "A"
            };
            edited.replace_range(data_start..data_start + 1, flipped);
            t.replace(&mac, &edited)
        },
        "MAC does not match",
    );
}

#[test]
fn an_edited_lastmodified_is_refused() {
    assert_refused(
        &|t| t.replace(line_value(t, "lastmodified"), "2020-01-01T00:00:00Z"),
        "MAC does not match",
    );
}

#[test]
fn a_removed_value_is_refused() {
    assert_refused(
        &|t| {
            t.lines()
                .filter(|l| !l.starts_with("b: "))
                .map(|l| format!("{l}\n"))
                .collect()
        },
        "MAC does not match",
    );
}

#[test]
fn an_edited_recipient_list_is_refused() {
    assert_refused(
        &|t| {
            let recipient = line_value(t, "- recipient").to_owned();
            t.replace(
                &recipient,
                "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
            )
        },
        "recipient list was changed",
    );
}

#[test]
fn the_wrong_identity_gets_a_clear_error() {
    let home = VaultHome::new();
    let (_, recipient) = home.identity("alice.txt");
    let (bob, _) = home.identity("bob.txt");
    home.write("s.yaml", "a: 1\n");
    run(home.kdeploy().args(["vault", "encrypt", "s.yaml", "-r", &recipient])).ok();
    let out = run(home
        .kdeploy()
        .args(["vault", "decrypt", "s.yaml", "--identity"])
        .arg(&bob));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no key can open s.yaml"), "{}", out.stderr);
    assert!(
        out.stderr.contains("bob.txt: 1 identity found, none is a recipient"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("OS keyring") || out.stderr.contains("keys.txt"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&recipient),
        "the error names the file's recipients: {}",
        out.stderr
    );
    let malformed = home.write("bad.yaml", "a: 1\nsops: {mac: x}\n");
    let out = run(home.kdeploy().args(["vault", "decrypt"]).arg(&malformed));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("lastmodified"), "{}", out.stderr);
}

#[test]
fn set_get_and_keys() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    home.write("kdeploy.yaml", &format!("recipients: [{recipient}]\n"));
    run_with_stdin(
        home.kdeploy().args(["vault", "set", "s.yaml", "db.password"]),
        Some(&format!("{CANARY}\n")),
    )
    .ok();
    // The file exists now: changing it means opening it, which takes the identity.
    run_with_stdin(
        home.kdeploy()
            .args(["vault", "set", "s.yaml", "db.port", "--yaml", "--identity"])
            .arg(&identity),
        Some("5432"),
    )
    .ok();
    let text = std::fs::read_to_string(home.path().join("s.yaml")).unwrap();
    assert!(!text.contains(CANARY) && text.contains("type:int"), "{text}");
    let keys = run(home.kdeploy().args(["vault", "keys", "s.yaml"])).ok().stdout;
    assert_eq!(keys, "db.password\ndb.port\n");
    let value = run(home
        .kdeploy()
        .args(["vault", "get", "s.yaml", "db.password", "--identity"])
        .arg(&identity))
    .ok()
    .stdout;
    assert_eq!(value, CANARY);
    let missing = run(home
        .kdeploy()
        .args(["vault", "get", "s.yaml", "db.nope", "--identity"])
        .arg(&identity));
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("no value at `db.nope`"), "{}", missing.stderr);
}

#[test]
fn edit_keeps_unchanged_ciphertext_and_leaves_no_plaintext_behind() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    home.write("s.yaml", "keep: same-value\nchange: old-value\n");
    run(home.kdeploy().args(["vault", "encrypt", "s.yaml", "-r", &recipient])).ok();
    let before = std::fs::read_to_string(home.path().join("s.yaml")).unwrap();
    let editor = home.write(
        "editor.sh",
        "#!/bin/sh\necho \"$1\" > \"$(dirname \"$0\")/edited-path\"\nsed -i 's/old-value/new-value/' \"$1\"\n",
    );
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    run(home
        .kdeploy()
        .args(["vault", "edit", "s.yaml", "--identity"])
        .arg(&identity)
        .env("EDITOR", &editor)
        .env_remove("VISUAL"))
    .ok();
    let after = std::fs::read_to_string(home.path().join("s.yaml")).unwrap();
    assert_eq!(
        line_value(&after, "keep"),
        line_value(&before, "keep"),
        "an unchanged value keeps its ciphertext"
    );
    assert_ne!(line_value(&after, "change"), line_value(&before, "change"));
    let value = run(home
        .kdeploy()
        .args(["vault", "get", "s.yaml", "change", "--identity"])
        .arg(&identity))
    .ok()
    .stdout;
    assert_eq!(value, "new-value");
    let temp = std::fs::read_to_string(home.path().join("edited-path")).unwrap();
    let temp = std::path::Path::new(temp.trim());
    assert!(
        temp.starts_with("/dev/shm") || !std::path::Path::new("/dev/shm").is_dir(),
        "{}",
        temp.display()
    );
    assert!(
        !temp.exists() && !temp.parent().unwrap().exists(),
        "the plaintext copy was left at {}",
        temp.display()
    );
}

#[test]
fn render_uses_secrets_and_never_prints_them() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    home.write(
        "kdeploy.yaml",
        &format!("secrets: [secrets.sops.yaml]\nrecipients: [{recipient}]\n"),
    );
    run_with_stdin(
        home.kdeploy()
            .args(["vault", "set", "secrets.sops.yaml", "db.password"]),
        Some(CANARY),
    )
    .ok();
    home.write(
        "manifests/app.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n  password: {{ secrets.db.password }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: leak}\ndata:\n  url: postgres://app:{{ secrets.db.password }}@db\n",
    );
    let out = run(home.kdeploy().args(["render", "--identity"]).arg(&identity)).ok();
    let docs = yaml12_documents(&out.stdout);
    assert_eq!(
        docs[0]["stringData"]["password"], CANARY,
        "render prints plaintext on stdout, as asked"
    );
    assert!(
        out.stderr.contains("a vault value lands in ConfigMap/leak at data.url"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(CANARY), "{}", out.stderr);

    let values = run(home.kdeploy().args(["values", "--identity"]).arg(&identity)).ok();
    assert_eq!(
        values.stdout,
        "# no data values\nsecrets.db.password: <redacted>  # secrets.sops.yaml\n"
    );

    home.write("manifests/bad.yaml", "x: {{ secrets.db.nope }}\n");
    let failed = run(home.kdeploy().args(["render", "--identity"]).arg(&identity));
    assert_eq!(failed.code, 2);
    assert!(
        !failed.stderr.contains(CANARY),
        "an error must not show secret values: {}",
        failed.stderr
    );
}

#[test]
fn sops_yaml_creation_rules_choose_the_recipients() {
    let home = VaultHome::new();
    let (alice, alice_recipient) = home.identity("alice.txt");
    let (bob, bob_recipient) = home.identity("bob.txt");
    home.write(
        ".sops.yaml",
        &format!("creation_rules:\n  - path_regex: prod/.*\n    age: {bob_recipient}\n  - age: >-\n      {alice_recipient},\n      {bob_recipient}\n"),
    );
    home.write("prod/s.yaml", "a: 1\n");
    home.write("dev/s.yaml", "a: 1\n");
    run(home.kdeploy().args(["vault", "encrypt", "prod/s.yaml"])).ok();
    run(home.kdeploy().args(["vault", "encrypt", "dev/s.yaml"])).ok();
    let opens = |file: &str, key: &std::path::Path| {
        run(home.kdeploy().args(["vault", "decrypt", file, "--identity"]).arg(key)).code == 0
    };
    assert!(
        !opens("prod/s.yaml", &alice) && opens("prod/s.yaml", &bob),
        "the prod rule names only Bob"
    );
    assert!(
        opens("dev/s.yaml", &alice) && opens("dev/s.yaml", &bob),
        "the catch-all rule names both"
    );
    // sops reads the same rules: a file it encrypts from the same folder opens for the same people.
    home.write("prod/t.yaml", "b: 2\n");
    let encrypted = run(home.sops(&bob).args(["-e", "prod/t.yaml"])).ok().stdout;
    home.write("prod/t.enc.yaml", &encrypted);
    assert!(opens("prod/t.enc.yaml", &bob) && !opens("prod/t.enc.yaml", &alice));
}

#[test]
fn a_signal_during_edit_aborts_and_still_removes_the_plaintext() {
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    home.write("s.yaml", "keep: same-value\n");
    run(home.kdeploy().args(["vault", "encrypt", "s.yaml", "-r", &recipient])).ok();
    let before = std::fs::read_to_string(home.path().join("s.yaml")).unwrap();
    // The editor changes the file, then sends SIGTERM to kdeploy (its grandparent: kdeploy > sh > editor).
    let editor = home.write(
        "editor.sh",
        "#!/bin/sh\necho \"$1\" > \"$(dirname \"$0\")/edited-path\"\nsed -i 's/same-value/changed/' \"$1\"\nkdeploy_pid=$(ps -o ppid= -p $PPID | tr -d ' ')\nkill -TERM \"$kdeploy_pid\"\nsleep 0.2\n",
    );
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    let out = run(home
        .kdeploy()
        .args(["vault", "edit", "s.yaml", "--identity"])
        .arg(&identity)
        .env("EDITOR", &editor)
        .env_remove("VISUAL"));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(home.path().join("s.yaml")).unwrap(),
        before,
        "nothing is written after a signal"
    );
    let temp = std::fs::read_to_string(home.path().join("edited-path")).unwrap();
    assert!(
        !std::path::Path::new(temp.trim()).exists(),
        "the plaintext copy was left at {}",
        temp.trim()
    );
}
