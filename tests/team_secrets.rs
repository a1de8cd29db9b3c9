//! examples/team-secrets, played through with two teammates: first setup, adding Bob, removing him, and
//! rotating, with the checks a team relies on at each step.

mod support;

use support::{VaultHome, run, run_with_stdin, yaml12_documents};

fn copy_example(home: &VaultHome) {
    let example = support::repo_root().join("examples/team-secrets");
    for name in ["kdeploy.yaml", "manifests/db.yaml"] {
        home.write(name, &std::fs::read_to_string(example.join(name)).unwrap());
    }
}

#[test]
fn first_setup_new_teammate_removal_and_rotation() {
    let home = VaultHome::new();
    copy_example(&home);
    let alice_key = home.path().join("alice.agekey");
    let bob_key = home.path().join("bob.agekey");
    let kdeploy_as = |key: &std::path::Path, args: &[&str]| {
        let mut command = home.kdeploy();
        command.args(args).arg("--identity").arg(key);
        command
    };

    // Alice: identity, recipient into kdeploy.yaml, the two values.
    let alice = run(home.kdeploy().args(["vault", "init", "--file"]).arg(&alice_key))
        .ok()
        .stdout
        .trim()
        .to_owned();
    let project = std::fs::read_to_string(home.path().join("kdeploy.yaml")).unwrap();
    assert!(
        project.contains(&alice) && project.contains("# A team project"),
        "init adds Alice and keeps the comments:\n{project}"
    );
    run_with_stdin(
        home.kdeploy().args(["vault", "set", "secrets.sops.yaml", "db.user"]),
        Some("shop"),
    )
    .ok();
    run_with_stdin(
        &mut kdeploy_as(&alice_key, &["vault", "set", "secrets.sops.yaml", "db.password"]),
        Some("first-password"),
    )
    .ok();
    let rendered = run(&mut kdeploy_as(&alice_key, &["render"])).ok();
    assert_eq!(
        yaml12_documents(&rendered.stdout)[0]["stringData"]["password"],
        "first-password"
    );

    // Bob cannot read it until Alice adds him.
    let bob_laptop = home.path().join("bob-laptop");
    std::fs::create_dir_all(&bob_laptop).unwrap();
    let bob = run(home
        .kdeploy()
        .current_dir(&bob_laptop)
        .args(["vault", "init", "--file"])
        .arg(&bob_key))
    .ok()
    .stdout
    .trim()
    .to_owned();
    assert!(bob.starts_with("age1"), "{bob}");
    assert_eq!(run(&mut kdeploy_as(&bob_key, &["render"])).code, 2);
    let before = std::fs::read_to_string(home.path().join("secrets.sops.yaml")).unwrap();
    run(&mut kdeploy_as(&alice_key, &["vault", "recipients", "add", &bob])).ok();
    let after = std::fs::read_to_string(home.path().join("secrets.sops.yaml")).unwrap();
    let values = |t: &str| {
        t.lines()
            .filter(|l| l.contains("ENC[") && !l.contains("mac:"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        values(&before),
        values(&after),
        "adding a recipient leaves the values' ciphertext alone"
    );
    let rendered = run(&mut kdeploy_as(&bob_key, &["render"])).ok();
    assert_eq!(
        yaml12_documents(&rendered.stdout)[0]["stringData"]["password"],
        "first-password"
    );
    let listed = run(home.kdeploy().args(["vault", "recipients", "list"])).ok();
    assert_eq!(listed.stdout, format!("{alice}\n{bob}\n"));
    assert!(
        listed.stderr.contains("secrets.sops.yaml: up to date"),
        "{}",
        listed.stderr
    );

    // Bob leaves: removed, warned about, then the password is rotated at its source and re-encrypted.
    let old_copy = home.write("old-secrets.sops.yaml", &after);
    let removed = run(&mut kdeploy_as(&alice_key, &["vault", "recipients", "remove", &bob])).ok();
    assert!(
        removed
            .stderr
            .contains("rotate the secrets they could read at their source"),
        "{}",
        removed.stderr
    );
    run_with_stdin(
        &mut kdeploy_as(&alice_key, &["vault", "set", "secrets.sops.yaml", "db.password"]),
        Some("second-password"),
    )
    .ok();
    run(&mut kdeploy_as(&alice_key, &["vault", "rotate"])).ok();
    let bob_now = run(&mut kdeploy_as(&bob_key, &["render"]));
    assert_eq!(bob_now.code, 2, "Bob can no longer open the current file");
    assert!(bob_now.stderr.contains("no key can open"), "{}", bob_now.stderr);
    let old_copy = old_copy.display().to_string();
    let bob_old = run(&mut kdeploy_as(&bob_key, &["vault", "get", &old_copy, "db.password"]));
    assert_eq!(
        bob_old.stdout, "first-password",
        "the old file still opens for Bob: that is why the source must rotate"
    );
    let rendered = run(&mut kdeploy_as(&alice_key, &["render"])).ok();
    assert_eq!(
        yaml12_documents(&rendered.stdout)[0]["stringData"]["password"],
        "second-password"
    );

    // The last recipient cannot be removed.
    let last = run(&mut kdeploy_as(&alice_key, &["vault", "recipients", "remove", &alice]));
    assert_eq!(last.code, 2);
    assert!(last.stderr.contains("last recipient"), "{}", last.stderr);
}
