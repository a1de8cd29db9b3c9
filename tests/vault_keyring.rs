//! The OS keyring, for real: each test starts gnome-keyring in a private D-Bus session
//! (`dbus-run-session`) with its own HOME, and runs kdeploy inside it. Nothing here can reach the
//! developer's own keyring.

mod support;

use std::path::Path;
use std::process::Command;

use support::{VaultHome, kdeploy, run};

/// Runs `script` (sh) inside a private session bus with an unlocked (or, if `unlock` is false, a
/// locked) gnome-keyring; `$KDEPLOY` is the binary under test.
fn in_keyring_session(home: &VaultHome, unlock: bool, script: &str) -> support::Run {
    let mut command = Command::new("dbus-run-session");
    home.isolate(&mut command);
    command
        .env_remove("KDEPLOY_NO_KEYRING")
        .env("KDEPLOY", kdeploy().get_program())
        .env("NO_COLOR", "1")
        .current_dir(home.path())
        .args([
            "--",
            "sh",
            "-c",
            &format!("set -e\n{}\n{script}", support::keyring_prelude(unlock)),
        ]);
    run(&mut command)
}

#[test]
fn init_stores_the_identity_in_the_keyring_and_render_uses_it() {
    let home = VaultHome::new();
    home.write("kdeploy.yaml", "secrets: [secrets.sops.yaml]\n");
    home.write(
        "manifests/s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  token: {{ secrets.token }}\n",
    );
    let out = in_keyring_session(
        &home,
        true,
        r#"
        "$KDEPLOY" vault init > recipient.txt
        printf 'from-the-keyring' | "$KDEPLOY" vault set secrets.sops.yaml token
        "$KDEPLOY" render
        "#,
    )
    .ok();
    let recipient = std::fs::read_to_string(home.path().join("recipient.txt")).unwrap();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let project = std::fs::read_to_string(home.path().join("kdeploy.yaml")).unwrap();
    assert!(
        project.contains(recipient.trim()),
        "init adds the recipient to kdeploy.yaml:\n{project}"
    );
    assert!(out.stdout.contains("token: from-the-keyring"), "{}", out.stdout);
    assert!(
        !Path::new(&home.path().join(".config/sops/age/keys.txt")).exists(),
        "no identity file was written"
    );
}

#[test]
fn init_refuses_to_replace_an_identity_without_force() {
    let home = VaultHome::new();
    let out = in_keyring_session(
        &home,
        true,
        r#""$KDEPLOY" vault init > /dev/null; "$KDEPLOY" vault init"#,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("already stored") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_locked_keyring_is_a_clear_error() {
    let home = VaultHome::new();
    // Create the keyring and store an identity, then come back with the keyring locked.
    let (_, other_recipient) = home.identity("other.txt");
    home.write("s.yaml", "a: 1\n");
    run(home
        .kdeploy()
        .args(["vault", "encrypt", "s.yaml", "-r", &other_recipient]))
    .ok();
    in_keyring_session(&home, true, r#""$KDEPLOY" vault init > /dev/null"#).ok();
    let out = in_keyring_session(&home, false, r#"exec "$KDEPLOY" vault decrypt s.yaml"#);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("OS keyring (kdeploy/age-identity): locked or access denied"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn no_keyring_at_all_is_a_clear_error() {
    let home = VaultHome::new();
    let (_, recipient) = home.identity("key.txt");
    home.write("s.yaml", "a: 1\n");
    run(home.kdeploy().args(["vault", "encrypt", "s.yaml", "-r", &recipient])).ok();
    let out = run(home
        .kdeploy()
        .env_remove("KDEPLOY_NO_KEYRING")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(["vault", "decrypt", "s.yaml"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("OS keyring (kdeploy/age-identity): no keyring is available here"),
        "{}",
        out.stderr
    );
}

#[test]
fn without_a_secret_service_init_says_what_it_tried_and_sops_key_file_works() {
    let home = VaultHome::new();
    // No session bus at all, as over SSH, in CI or in a container: the keyring's real absence.
    let mut command = home.kdeploy();
    command
        .env_remove("KDEPLOY_NO_KEYRING")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", home.path().join("no-bus").display()),
        )
        .args(["vault", "init"]);
    let refused = run(&mut command);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let key_file = home.path().join(".config/sops/age/keys.txt");
    assert!(
        refused.stderr.contains("tried the OS keyring")
            && refused
                .stderr
                .contains(&format!("kdeploy vault init --file {}", key_file.display())),
        "it says what it tried and the way that works here:\n{}",
        refused.stderr
    );
    assert!(
        refused.stdout.is_empty() && !key_file.exists(),
        "nothing written without being asked"
    );

    // The way it offers: sops' key file, appended to, never overwritten.
    let (other, other_recipient) = home.identity("other.txt");
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    std::fs::copy(&other, &key_file).unwrap();
    let out = run(home.kdeploy().args(["vault", "init", "--file"]).arg(&key_file)).ok();
    let recipient = out.stdout.trim().to_owned();
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        text.contains(&format!("public key: {other_recipient}")) && text.contains(&format!("public key: {recipient}")),
        "both identities are in the key file:\n{}",
        text.lines()
            .filter(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A folder init creates is private too.
    let fresh = home.path().join("new/folder/keys.txt");
    run(home.kdeploy().args(["vault", "init", "--file"]).arg(&fresh)).ok();
    assert_eq!(
        std::fs::metadata(fresh.parent().unwrap()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // And kdeploy finds the identity there on its own (sops' default), with no keyring.
    home.write("plain.yaml", "token: t0ken\n");
    run(home
        .kdeploy()
        .args(["vault", "encrypt", "plain.yaml", "-o", "s.sops.yaml", "-r", &recipient]))
    .ok();
    let decrypted = run(home.kdeploy().args(["vault", "decrypt", "s.sops.yaml"])).ok();
    assert!(decrypted.stdout.contains("t0ken"), "{}", decrypted.stdout);
}

/// The identity line of an age key file.
fn secret_key_line(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned()
}

#[test]
fn secret_tool_and_kdeploy_read_each_others_entry() {
    // libsecret's secret-tool is the reference client: an entry it stores under kdeploy's attributes
    // is the identity kdeploy uses, and one kdeploy stores is what secret-tool finds.
    let home = VaultHome::new();
    let (key_file, recipient) = home.identity("stored-by-secret-tool.txt");
    home.write("plain.yaml", "token: from-secret-tool\n");
    run(home
        .kdeploy()
        .args(["vault", "encrypt", "plain.yaml", "-o", "s.sops.yaml", "-r", &recipient]))
    .ok();
    home.write("key-line.txt", &secret_key_line(&key_file));
    let out = in_keyring_session(
        &home,
        true,
        r#"
        secret-tool store --label='stored by secret-tool' service kdeploy username age-identity < key-line.txt
        "$KDEPLOY" vault decrypt s.sops.yaml > decrypted.yaml
        "$KDEPLOY" vault init --force > recipient.txt
        secret-tool lookup service kdeploy username age-identity > looked-up.txt
        secret-tool search --all service kdeploy username age-identity > search.txt 2>&1
        "#,
    )
    .ok();
    let decrypted = std::fs::read_to_string(home.path().join("decrypted.yaml")).unwrap();
    assert!(
        decrypted.contains("token: from-secret-tool"),
        "{decrypted}\n{}",
        out.stderr
    );

    let new_recipient = std::fs::read_to_string(home.path().join("recipient.txt")).unwrap();
    let looked_up = std::fs::read_to_string(home.path().join("looked-up.txt")).unwrap();
    let identity: age::x25519::Identity = looked_up.trim().parse().expect("secret-tool returns an age identity");
    assert_eq!(identity.to_public().to_string(), new_recipient.trim());
    assert_ne!(new_recipient.trim(), recipient, "--force replaced the entry");
    let search = std::fs::read_to_string(home.path().join("search.txt")).unwrap();
    assert_eq!(
        search.matches("attribute.service = kdeploy").count(),
        1,
        "replacing leaves one entry, not two:\n{}",
        search
            .lines()
            .filter(|l| !l.starts_with("secret"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!out.stderr.contains("AGE-SECRET-KEY"), "{}", out.stderr);
}

#[test]
fn two_matching_entries_are_refused_by_name() {
    let home = VaultHome::new();
    let (first, _) = home.identity("first.txt");
    let (second, _) = home.identity("second.txt");
    let (_, third_recipient) = home.identity("third.txt");
    home.write("s.yaml", "a: 1\n");
    run(home
        .kdeploy()
        .args(["vault", "encrypt", "s.yaml", "-r", &third_recipient]))
    .ok();
    home.write("first-line.txt", &secret_key_line(&first));
    home.write("second-line.txt", &secret_key_line(&second));
    let out = in_keyring_session(
        &home,
        true,
        r#"
        secret-tool store --label=one service kdeploy username age-identity copy 1 < first-line.txt
        secret-tool store --label=two service kdeploy username age-identity copy 2 < second-line.txt
        exec "$KDEPLOY" vault decrypt s.yaml
        "#,
    );
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("2 entries match service=kdeploy username=age-identity"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("AGE-SECRET-KEY"), "{}", out.stderr);
}

#[test]
fn a_bus_on_an_abstract_socket_is_found() {
    // dbus-daemon's `unix:tmpdir=` listens on an abstract socket on Linux; DBUS_SESSION_BUS_ADDRESS
    // then names no file.
    let home = VaultHome::new();
    let mut command = Command::new("sh");
    home.isolate(&mut command);
    let name = support::unique_name("kdeploy-test-bus");
    command
        .env_remove("KDEPLOY_NO_KEYRING")
        .env("KDEPLOY", kdeploy().get_program())
        .env("NO_COLOR", "1")
        .current_dir(home.path())
        .args([
            "-c",
            &format!(
                r#"set -e
                address=$(dbus-daemon --session --address=unix:abstract=/tmp/{name} --fork --print-address=1 --print-pid=3 3> bus.pid | head -n 1)
                trap 'kill $(cat bus.pid)' EXIT
                export DBUS_SESSION_BUS_ADDRESS="$address"
                case "$address" in unix:abstract=*) ;; *) echo "not abstract: $address" >&2; exit 99;; esac
                {}
                "$KDEPLOY" vault init > recipient.txt
                secret-tool lookup service kdeploy username age-identity > looked-up.txt"#,
                support::keyring_prelude(true)
            ),
        ]);
    let out = run(&mut command).ok();
    let recipient = std::fs::read_to_string(home.path().join("recipient.txt")).unwrap();
    let looked_up = std::fs::read_to_string(home.path().join("looked-up.txt")).unwrap();
    let identity: age::x25519::Identity = looked_up.trim().parse().expect("an age identity");
    assert_eq!(identity.to_public().to_string(), recipient.trim(), "{}", out.stderr);
}
