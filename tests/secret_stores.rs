//! Secrets where teams keep them, against the real servers on loopback: SOPS data keys wrapped by
//! OpenBao transit and AWS KMS (moto), compatible both ways with the real sops; and `ref+vault://`,
//! `ref+awssecrets://`, `ref+awsssm://` references resolved at render, diff and apply time.

mod support;

use std::process::Command;

use support::stores::{self, Moto, OpenBao};
use support::{VaultHome, cluster, run, run_with_stdin, yaml12_documents};

/// Gives `command` OpenBao's address and `token`.
fn with_bao(command: &mut Command, bao: &OpenBao, token: &str) {
    command.env("VAULT_ADDR", &bao.address).env("VAULT_TOKEN", token);
}

fn with_aws(command: &mut Command, moto: &Moto) {
    for (name, value) in moto.env() {
        command.env(name, value);
    }
}

fn decrypted(out: &support::Run) -> serde_json::Value {
    yaml12_documents(&out.stdout).remove(0)
}

#[test]
fn files_sops_wraps_to_transit_and_kms_open_in_kdeploy_with_either_key() {
    let (bao, moto, home) = (stores::openbao(), stores::moto(), VaultHome::new());
    let arn = moto.fixture(&["create-key"]);
    let (age_key, age_recipient) = home.identity("age.key");
    home.write("plain.yaml", "db:\n  password: transit-kms-canary\nport: 5432\n");
    let mut sops = home.sops(&age_key);
    with_bao(&mut sops, bao, &bao.root_token);
    with_aws(&mut sops, moto);
    let encrypted = run(sops.args([
        "-e",
        "--hc-vault-transit",
        &bao.transit_uri("sops"),
        "--kms",
        &arn,
        "--encryption-context",
        "app:shop,env:test",
        "--age",
        &age_recipient,
        "plain.yaml",
    ]))
    .ok()
    .stdout;
    home.write("s.sops.yaml", &encrypted);
    assert!(encrypted.contains("hc_vault:") && encrypted.contains("kms:") && encrypted.contains("age:"));

    // Only the OpenBao token: transit opens it.
    let mut only_bao = home.kdeploy();
    with_bao(&mut only_bao, bao, &bao.root_token);
    let out = run(only_bao.args(["vault", "decrypt", "s.sops.yaml"])).ok();
    assert_eq!(decrypted(&out)["db"]["password"], "transit-kms-canary");
    assert_eq!(decrypted(&out)["port"], 5432);

    // Only AWS credentials: KMS opens it (with the encryption context sops recorded).
    let mut only_aws = home.kdeploy();
    with_aws(&mut only_aws, moto);
    let out = run(only_aws.args(["vault", "get", "s.sops.yaml", "db.password"])).ok();
    assert_eq!(out.stdout, "transit-kms-canary");

    // kdeploy writes a change; sops opens the result with each key on its own.
    let mut set = home.kdeploy();
    with_aws(&mut set, moto);
    run_with_stdin(set.args(["vault", "set", "s.sops.yaml", "db.user"]), Some("shop")).ok();
    for (label, token, aws) in [
        ("transit", bao.root_token.as_str(), false),
        ("kms", "wrong-token", true),
    ] {
        let mut sops = home.sops(&home.path().join("no-such-key"));
        with_bao(&mut sops, bao, token);
        if aws {
            with_aws(&mut sops, moto);
        }
        let out = run(sops.args(["-d", "s.sops.yaml"]));
        assert_eq!(out.code, 0, "sops -d with {label} only: {}", out.stderr);
        let tree = decrypted(&out);
        assert_eq!(
            (tree["db"]["user"].as_str(), tree["db"]["password"].as_str()),
            (Some("shop"), Some("transit-kms-canary"))
        );
    }
}

#[test]
fn a_file_sops_split_into_shamir_key_groups_opens_with_enough_groups() {
    let (bao, moto, home) = (stores::openbao(), stores::moto(), VaultHome::new());
    let arn = moto.fixture(&["create-key"]);
    let (age_key, age_recipient) = home.identity("age.key");
    home.write(
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{age_recipient}]\n      - hc_vault: [{}]\n      - kms:\n          - arn: {arn}\n",
            bao.transit_uri("sops")
        ),
    );
    home.write("split.yaml", "token: shamir-canary\n");
    let mut sops = home.sops(&age_key);
    with_bao(&mut sops, bao, &bao.root_token);
    with_aws(&mut sops, moto);
    let out = run(sops.args(["-e", "-i", "split.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(home.path().join("split.yaml")).unwrap();
    assert!(
        text.contains("key_groups:") && text.contains("shamir_threshold: 2"),
        "{text}"
    );

    // Any two of the three groups: age and transit, then transit and KMS.
    let mut age_and_transit = home.kdeploy();
    with_bao(&mut age_and_transit, bao, &bao.root_token);
    let out = run(age_and_transit
        .args(["vault", "get", "split.yaml", "token", "--identity"])
        .arg(&age_key))
    .ok();
    assert_eq!(out.stdout, "shamir-canary");
    let mut transit_and_kms = home.kdeploy();
    with_bao(&mut transit_and_kms, bao, &bao.root_token);
    with_aws(&mut transit_and_kms, moto);
    let out = run(transit_and_kms.args(["vault", "get", "split.yaml", "token"])).ok();
    assert_eq!(out.stdout, "shamir-canary");

    // One group is not enough, and the file is not rewritten by kdeploy.
    let out = run(home
        .kdeploy()
        .args(["vault", "get", "split.yaml", "token", "--identity"])
        .arg(&age_key));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("1 of 3 groups opened, 2 needed"), "{}", out.stderr);
    let mut set = home.kdeploy();
    with_bao(&mut set, bao, &bao.root_token);
    with_aws(&mut set, moto);
    let out = run_with_stdin(set.args(["vault", "set", "split.yaml", "other"]), Some("x"));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("Shamir"), "{}", out.stderr);
}

#[test]
fn recipients_add_a_kms_key_then_rotate_and_remove_across_key_kinds() {
    let (bao, moto, home) = (stores::openbao(), stores::moto(), VaultHome::new());
    let arn = moto.fixture(&["create-key"]);
    let transit = bao.transit_uri("team");
    home.write(
        "kdeploy.yaml",
        &format!("templates: [t]\nsecrets: [secrets.sops.yaml]\nrecipients:\n  - {transit}\n"),
    );
    let kdeploy = || {
        let mut command = home.kdeploy();
        with_bao(&mut command, bao, &bao.root_token);
        with_aws(&mut command, moto);
        command
    };
    run_with_stdin(
        kdeploy().args(["vault", "set", "secrets.sops.yaml", "api.token"]),
        Some("rotate-me-canary"),
    )
    .ok();
    let before = std::fs::read_to_string(home.path().join("secrets.sops.yaml")).unwrap();
    assert!(before.contains("hc_vault:") && !before.contains("kms:"), "{before}");

    // A KMS key for CI: recipients add re-wraps the same data key (updatekeys), values untouched.
    let kms_recipient = format!("{arn}|context=purpose:ci");
    run(kdeploy().args(["vault", "recipients", "add", &kms_recipient])).ok();
    let added = std::fs::read_to_string(home.path().join("secrets.sops.yaml")).unwrap();
    assert!(added.contains("kms:") && added.contains("purpose: ci"), "{added}");
    let value_line = |text: &str| text.lines().find(|l| l.contains("token:")).unwrap().to_owned();
    assert_eq!(
        value_line(&before),
        value_line(&added),
        "updatekeys keeps the value's ciphertext"
    );
    let project = std::fs::read_to_string(home.path().join("kdeploy.yaml")).unwrap();
    assert!(project.contains(&kms_recipient), "{project}");

    // The real sops opens it with the KMS key alone (a CI job with no OpenBao token).
    let mut sops = home.sops(&home.path().join("no-such-key"));
    with_aws(&mut sops, moto);
    let out = run(sops.args(["-d", "secrets.sops.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(decrypted(&out)["api"]["token"], "rotate-me-canary");

    // rotate: a new data key, every value re-encrypted, both keys still open it.
    run(kdeploy().args(["vault", "rotate"])).ok();
    let rotated = std::fs::read_to_string(home.path().join("secrets.sops.yaml")).unwrap();
    assert_ne!(value_line(&added), value_line(&rotated));
    for only_kms in [false, true] {
        let mut command = home.kdeploy();
        if only_kms {
            with_aws(&mut command, moto);
        } else {
            with_bao(&mut command, bao, &bao.root_token);
        }
        let out = run(command.args(["vault", "get", "secrets.sops.yaml", "api.token"])).ok();
        assert_eq!(out.stdout, "rotate-me-canary");
    }

    // Remove the transit key: the file is then wrapped to KMS only.
    run(kdeploy().args(["vault", "recipients", "remove", &transit])).ok();
    let removed = std::fs::read_to_string(home.path().join("secrets.sops.yaml")).unwrap();
    assert!(!removed.contains("hc_vault:") && removed.contains("kms:"), "{removed}");
    let mut only_bao = home.kdeploy();
    with_bao(&mut only_bao, bao, &bao.root_token);
    let out = run(only_bao.args(["vault", "get", "secrets.sops.yaml", "api.token"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn when_no_key_opens_a_file_each_key_says_why_and_nothing_leaks() {
    let (bao, moto, home) = (stores::openbao(), stores::moto(), VaultHome::new());
    let arn = moto.fixture(&["create-key"]);
    let mut encrypt = home.kdeploy();
    with_bao(&mut encrypt, bao, &bao.root_token);
    with_aws(&mut encrypt, moto);
    home.write("s.yaml", "password: why-canary\n");
    run(encrypt.args(["vault", "encrypt", "-r", &bao.transit_uri("sops"), "-r", &arn, "s.yaml"])).ok();
    // moto does not refuse disabled keys, so the KMS key is made one this account does not have.
    let text = std::fs::read_to_string(home.path().join("s.yaml")).unwrap();
    let key_id = arn.rsplit('/').next().unwrap();
    home.write(
        "s.yaml",
        &text.replace(
            &format!("arn: {arn}"),
            &format!("arn: {}", arn.replace(key_id, "00000000-0000-0000-0000-000000000000")),
        ),
    );

    let mut denied = home.kdeploy();
    with_bao(&mut denied, bao, &bao.limited_token);
    with_aws(&mut denied, moto);
    let out = run(denied.args(["vault", "decrypt", "s.yaml"]));
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    let transit_line = out
        .stderr
        .lines()
        .find(|l| l.contains("transit http"))
        .unwrap_or_default();
    assert!(transit_line.contains("permission denied"), "{}", out.stderr);
    let kms_line = out
        .stderr
        .lines()
        .find(|l| l.contains("AWS KMS arn:"))
        .unwrap_or_default();
    assert!(kms_line.contains("not found"), "{}", out.stderr);

    let mut nothing = home.kdeploy();
    nothing.env("VAULT_ADDR", "http://127.0.0.1:9");
    let out = run(nothing.args(["vault", "decrypt", "s.yaml"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no OpenBao/Vault token"), "{}", out.stderr);
    assert!(out.stderr.contains("AWS credentials not found"), "{}", out.stderr);

    // AWS refuses a user without kms:Decrypt, and a request signed with a wrong secret.
    for (secret, expected) in [
        (moto.reader.1.as_str(), "AccessDenied"),
        ("not-the-secret", "SignatureDoesNotMatch"),
    ] {
        let mut command = home.kdeploy();
        with_aws(&mut command, moto);
        command
            .env("AWS_ACCESS_KEY_ID", &moto.reader.0)
            .env("AWS_SECRET_ACCESS_KEY", secret);
        let out = run(command.args(["vault", "decrypt", "s.yaml"]));
        assert_eq!(out.code, 2);
        let kms_line = out
            .stderr
            .lines()
            .find(|l| l.contains("AWS KMS arn:"))
            .unwrap_or_default();
        assert!(
            kms_line.contains("permission denied") && kms_line.contains(expected),
            "{}",
            out.stderr
        );
    }

    // A transit key on a server that is down.
    let down = home.write(
        "down.yaml",
        &std::fs::read_to_string(home.path().join("s.yaml"))
            .unwrap()
            .replace(&bao.address, "http://127.0.0.1:9"),
    );
    let mut unreachable = home.kdeploy();
    with_bao(&mut unreachable, bao, &bao.root_token);
    let out = run(unreachable.args(["vault", "decrypt"]).arg(&down));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("http://127.0.0.1:9 is unreachable"),
        "{}",
        out.stderr
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("why-canary"));
    }
}

#[test]
fn a_kms_key_with_a_role_is_used_through_sts_assume_role() {
    let (moto, home) = (stores::moto(), VaultHome::new());
    let arn = moto.fixture(&["create-key"]);
    let role = moto.fixture(&["create-role", "kdeploy-decrypt", "kms:Encrypt,kms:Decrypt"]);
    home.write("s.yaml", "token: role-canary\n");
    let reader = || {
        let mut command = home.kdeploy();
        with_aws(&mut command, moto);
        command
            .env("AWS_ACCESS_KEY_ID", &moto.reader.0)
            .env("AWS_SECRET_ACCESS_KEY", &moto.reader.1);
        command
    };
    // The reader may not use the key itself, only through the role.
    let out = run(reader().args(["vault", "encrypt", "-r", &arn, "s.yaml"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("AccessDenied"), "{}", out.stderr);
    run(reader().args(["vault", "encrypt", "-r", &format!("{arn}+{role}"), "s.yaml"])).ok();
    let text = std::fs::read_to_string(home.path().join("s.yaml")).unwrap();
    assert!(text.contains(&format!("role: {role}")), "{text}");
    let out = run(reader().args(["vault", "get", "s.yaml", "token"])).ok();
    assert_eq!(out.stdout, "role-canary");
    // sops assumes the same role from the file's metadata.
    let mut sops = home.sops(&home.path().join("no-such-key"));
    with_aws(&mut sops, moto);
    sops.env("AWS_ACCESS_KEY_ID", &moto.reader.0)
        .env("AWS_SECRET_ACCESS_KEY", &moto.reader.1);
    let out = run(sops.args(["-d", "s.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("role-canary"));
}

/// A project rendering one Secret from each backend.
fn reference_project(home: &VaultHome, bao: &OpenBao, moto: &Moto, prefix: &str) {
    bao.cli()
        .args([
            "kv",
            "put",
            &format!("secret/{prefix}/db"),
            "password=kv2-canary-1",
            "user=app",
        ])
        .output()
        .unwrap();
    run(bao
        .cli()
        .args(["kv", "put", &format!("kv1/{prefix}"), "token=kv1-canary"]))
    .ok();
    moto.fixture(&[
        "put-secret",
        &format!("{prefix}/api"),
        r#"{"key": "sm-canary", "n": 7}"#,
    ]);
    moto.fixture(&["put-parameter", &format!("/{prefix}/dsn"), "ssm-canary"]);
    home.write(
        "kdeploy.yaml",
        &format!("name: {prefix}\ntemplates: [templates]\nvalues: [values.yaml]\nenv_files: [.env]\n"),
    );
    home.write(
        "values.yaml",
        &format!(
            "db:\n  password: ref+vault://secret/data/{prefix}/db#/password\n  user: ref+vault://secret/{prefix}/db#/user\nkv1: ref+vault://kv1/{prefix}#/token\napi: ref+awssecrets://{prefix}/api#/key\n"
        ),
    );
    home.write(".env", &format!("DSN=ref+awsssm:///{prefix}/dsn\n"));
    home.write(
        "templates/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: {{ values.db.password }}\n  user: {{ values.db.user }}\n  kv1: {{ values.kv1 }}\n  api: {{ values.api }}\n  dsn: {{ env.DSN }}\n",
    );
}

fn reference_kdeploy(home: &VaultHome, bao: &OpenBao, moto: &Moto) -> Command {
    let mut command = home.kdeploy();
    with_bao(&mut command, bao, &bao.root_token);
    with_aws(&mut command, moto);
    command
}

#[test]
fn references_render_from_each_backend_and_values_shows_the_reference() {
    let (bao, moto, home) = (stores::openbao(), stores::moto(), VaultHome::new());
    reference_project(&home, bao, moto, "render");
    let out = run(reference_kdeploy(&home, bao, moto).arg("render")).ok();
    let secret = &yaml12_documents(&out.stdout)[0];
    assert_eq!(secret["stringData"]["password"], "kv2-canary-1");
    assert_eq!(
        secret["stringData"]["user"], "app",
        "a KV v2 path without data/ works too"
    );
    assert_eq!(secret["stringData"]["kv1"], "kv1-canary");
    assert_eq!(secret["stringData"]["api"], "sm-canary");
    assert_eq!(secret["stringData"]["dsn"], "ssm-canary");

    // BAO_ADDR and the token helper's ~/.vault-token, as the bao and vault CLIs use them.
    home.write(".vault-token", &format!("{}\n", bao.root_token));
    let mut command = home.kdeploy();
    command.env("BAO_ADDR", &bao.address);
    with_aws(&mut command, moto);
    let out = run(command.arg("render")).ok();
    assert_eq!(
        yaml12_documents(&out.stdout)[0]["stringData"]["password"],
        "kv2-canary-1"
    );

    let out = run(reference_kdeploy(&home, bao, moto).arg("values")).ok();
    assert!(
        out.stdout.contains("ref+vault://secret/data/render/db#/password"),
        "{}",
        out.stdout
    );
    for canary in ["kv2-canary-1", "kv1-canary", "sm-canary"] {
        assert!(!out.stdout.contains(canary) && !out.stderr.contains(canary), "{canary}");
    }

    // Outside a Secret, a resolved value is warned about, like a vault value.
    home.write(
        "templates/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  api: {{ values.api }}\n",
    );
    let out = run(reference_kdeploy(&home, bao, moto).arg("render")).ok();
    assert!(
        out.stderr.contains("a vault value lands in") && out.stderr.contains("leak"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("sm-canary"));
}

#[test]
fn a_failing_reference_is_named_with_why_exit_2_and_nothing_on_stdout() {
    let (bao, moto, home) = (stores::openbao(), stores::moto(), VaultHome::new());
    reference_project(&home, bao, moto, "errors");
    type Adjust<'a> = Box<dyn Fn(&mut Command) + 'a>;
    let cases: Vec<(&str, Adjust, &str)> = vec![
        (
            "a missing path",
            Box::new(|c: &mut Command| {
                c.args(["--data-value", "api=ref+awssecrets://errors/no-such-secret#/key"]);
            }),
            "ref+awssecrets://errors/no-such-secret#/key: not found",
        ),
        (
            "a missing field",
            Box::new(|c: &mut Command| {
                c.args(["--data-value", "kv1=ref+vault://kv1/errors#/tokn"]);
            }),
            "has no field /tokn (it has: token)",
        ),
        (
            "a denied token",
            Box::new(move |c: &mut Command| {
                c.env("VAULT_TOKEN", &bao.limited_token);
            }),
            "ref+vault://secret/data/errors/db#/password: permission denied",
        ),
        (
            "an AWS user without secretsmanager:GetSecretValue",
            Box::new(move |c: &mut Command| {
                c.env("AWS_ACCESS_KEY_ID", &moto.reader.0)
                    .env("AWS_SECRET_ACCESS_KEY", &moto.reader.1);
            }),
            "ref+awssecrets://errors/api#/key: permission denied: AWS Secrets Manager: AccessDenied",
        ),
        (
            "an unreachable server",
            Box::new(|c: &mut Command| {
                c.env("VAULT_ADDR", "http://127.0.0.1:9");
            }),
            "http://127.0.0.1:9 is unreachable",
        ),
    ];
    for (label, adjust, expected) in cases {
        let mut command = reference_kdeploy(&home, bao, moto);
        command.arg("render");
        adjust(&mut command);
        let out = run(&mut command);
        assert_eq!(out.code, 2, "{label}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{label}: {}", out.stdout);
        assert!(
            out.stderr.contains(expected),
            "{label}: expected `{expected}` in:\n{}",
            out.stderr
        );
        for canary in ["kv2-canary-1", "kv1-canary", "sm-canary", "ssm-canary"] {
            assert!(!out.stderr.contains(canary), "{label}: {canary} in {}", out.stderr);
        }
    }
}

#[test]
fn a_value_rotated_at_the_source_shows_as_a_masked_change_and_applies() {
    let (bao, moto, home) = (stores::openbao(), stores::moto(), VaultHome::new());
    let ns = cluster().namespace("refs");
    reference_project(&home, bao, moto, &ns.name);
    let kubeconfig = cluster().kubeconfig.clone();
    let command = |verb: &str| {
        let mut command = reference_kdeploy(&home, bao, moto);
        command.arg(verb).args(["--namespace", &ns.name]);
        if verb == "apply" {
            command.arg("--yes");
        }
        command.env("KUBECONFIG", &kubeconfig);
        command
    };
    let applied = run(&mut command("apply")).ok();
    let diff = run(&mut command("diff"));
    assert_eq!(diff.code, 0, "{}", diff.stderr);

    // The password changes in OpenBao; the cluster still has the old one.
    run(bao.cli().args([
        "kv",
        "put",
        &format!("secret/{}/db", ns.name),
        "password=kv2-canary-2",
        "user=app",
    ]))
    .ok();
    let diff = run(&mut command("diff"));
    assert_eq!(diff.code, 1, "a changed source is a change: {}", diff.stderr);
    assert!(
        diff.stdout.contains("Secret") && diff.stdout.contains("password"),
        "{}",
        diff.stdout
    );
    let reapplied = run(&mut command("apply")).ok();
    let live = cluster().kubectl_ok(&[
        "get",
        "secret",
        "creds",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(live, base64("kv2-canary-2"));
    for out in [&applied, &diff, &reapplied] {
        for canary in ["kv2-canary-1", "kv2-canary-2", "kv1-canary", "sm-canary", "ssm-canary"] {
            assert!(!out.stdout.contains(canary) && !out.stderr.contains(canary), "{canary}");
            assert!(!out.stdout.contains(&base64(canary)), "{canary} in base64");
        }
    }
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
