//! Readiness for any kind, phases, immutable changes and config-triggered rollouts, against the real
//! local control plane (kwok nodes: pods are scheduled and become ready or complete without a runtime).
//! Each test works in its own namespace, with CRDs of its own group.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{DeleteOnDrop, Run, TestProject as Project, VaultHome, crd, run, unique_group, wait_until};

/// The project helpers these tests share.
trait Deploys {
    fn apply(&self, extra: &[&str]) -> Run;
    fn diff(&self, extra: &[&str]) -> Run;
}

impl Deploys for Project {
    fn apply(&self, extra: &[&str]) -> Run {
        run(self.command(&["apply", "--yes", "--timeout", "60s"]).args(extra))
    }

    fn diff(&self, extra: &[&str]) -> Run {
        run(self.command(&["diff"]).args(extra))
    }
}

/// Starts `command` in the background; the thread's result is its run.
fn spawn(mut command: Command) -> std::thread::JoinHandle<(Run, Instant)> {
    std::thread::spawn(move || {
        command.stdin(Stdio::null());
        let out = run(&mut command);
        (out, Instant::now())
    })
}

const CONDITION_READY: &str =
    r#"{"conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned", "message": "all good"}]}"#;

#[test]
fn custom_resources_are_awaited_until_ready_and_a_stalled_one_fails_by_name() {
    let group = unique_group("h");
    // Widgets follow the project's rule (condition Ready); Gadgets follow kstatus.
    let p = Project::new(
        "health-cr",
        &format!("health:\n  - {{kind: Widget, group: {group}, condition: Ready}}\n"),
    );
    let gadget =
        |size: u32| format!("apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: {size}\n");
    p.write(
        "manifests/crds.yaml",
        &format!("{}---\n{}", crd(&group, "Widget"), crd(&group, "Gadget")),
    );
    // Resources by their full names: other tests' CRDs may have the same kinds.
    let (widgets, gadgets) = (format!("widgets.{group}"), format!("gadgets.{group}"));
    let _cleanup = DeleteOnDrop(p.cluster, "crd", vec![widgets.clone(), gadgets.clone()]);
    p.write(
        "manifests/objects.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\nspec: {{}}\n---\n{}",
            gadget(1)
        ),
    );

    // The Widget has no Ready condition until the test writes one, seconds after it exists.
    let started = Instant::now();
    let apply = spawn(p.command(&["apply", "--yes", "--timeout", "60s"]));
    let created = wait_until(Duration::from_secs(30), || {
        p.get(&widgets, "w").is_some() || apply.is_finished()
    });
    if !created || apply.is_finished() {
        let out = apply.join().unwrap().0;
        panic!(
            "the Widget was not created while apply ran: {}{}",
            out.stdout, out.stderr
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(!apply.is_finished(), "apply should still be waiting for the Widget");
    let status_set = Instant::now();
    p.set_status(&widgets, "w", CONDITION_READY);
    let (out, finished) = apply.join().unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(finished >= status_set, "apply finished before the Widget was ready");
    assert!(out.stderr.contains("waiting for condition Ready"), "{}", out.stderr);
    assert!(started.elapsed() >= Duration::from_secs(3));

    // A Gadget with nothing in its status is ready (kstatus); once its controller reports having seen
    // generation 1, a change to generation 2 is awaited until the status catches up.
    p.set_status(
        &gadgets,
        "g",
        r#"{"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Ok"}]}"#,
    );
    p.write(
        "manifests/objects.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\nspec: {{}}\n---\n{}",
            gadget(2)
        ),
    );
    let apply = spawn(p.command(&["apply", "--yes", "--timeout", "60s"]));
    assert!(wait_until(Duration::from_secs(30), || {
        p.get(&gadgets, "g").is_some_and(|g| g["metadata"]["generation"] == 2)
    }));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !apply.is_finished(),
        "apply should wait for generation 2 to be observed"
    );
    p.set_status(&gadgets, "g", r#"{"observedGeneration": 2}"#);
    let (out, _) = apply.join().unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("generation 2"), "{}", out.stderr);

    // Stalled: the apply fails, naming the reason and the message.
    p.set_status(
        &gadgets,
        "g",
        r#"{"conditions": [{"type": "Stalled", "status": "True", "reason": "QuotaExceeded", "message": "no room for size 2"}]}"#,
    );
    let out = p.apply(&[]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let printed = format!("{}{}", out.stdout, out.stderr);
    assert!(
        printed.contains("Gadget/g") && printed.contains("QuotaExceeded: no room for size 2"),
        "{printed}"
    );
    // Opting the object out of waiting lets the apply through.
    p.write(
        "manifests/objects.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\nspec: {{}}\n---\n{}",
            gadget(2).replace(
                "  name: g\n",
                "  name: g\n  annotations: {kdeploy.dev/wait: \"false\"}\n"
            )
        ),
    );
    let out = p.apply(&[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

fn job(name: &str, phase: &str, extra_spec: &str, image: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    kdeploy.dev/phase: {phase}\nspec:\n  backoffLimit: 0\n{extra_spec}  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: run\n          image: {image}\n"
    )
}

fn deployment(name: &str, pod_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: app\n          image: registry.example/{name}:1\n{pod_extra}"
    )
}

#[test]
fn a_pre_phase_job_completes_before_the_main_phase_is_created() {
    let p = Project::new("health-phase", "");
    p.write(
        "manifests/migrate.yaml",
        &job("migrate", "pre", "", "registry.example/migrate:1"),
    );
    p.write("manifests/web.yaml", &deployment("web", ""));
    // The diff shows the phases.
    let diff = p.diff(&[]);
    assert_eq!(diff.code, 1, "{}", diff.stderr);
    let row = |name: &str| {
        diff.stdout
            .lines()
            .find(|l| l.starts_with("create ") && l.ends_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(diff.stdout.contains("PHASE"), "{}", diff.stdout);
    assert!(row("migrate").contains(" pre "), "{}", diff.stdout);
    assert!(row(" web").contains(" main "), "{}", diff.stdout);

    let out = p.apply(&[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let migrate = p.get("job", "migrate").expect("the migration Job");
    let web = p.get("deployment", "web").expect("the Deployment");
    assert_eq!(migrate["status"]["succeeded"], 1, "{migrate}");
    // RFC 3339 in UTC to the second, fixed width: the text order is the time order.
    let completed = migrate["status"]["completionTime"].as_str().unwrap();
    let created = web["metadata"]["creationTimestamp"].as_str().unwrap();
    assert_eq!(completed.len(), created.len());
    assert!(
        completed <= created,
        "the Deployment ({created}) was created before the Job completed ({completed})"
    );
}

#[test]
fn a_failing_pre_phase_stops_the_apply_before_main() {
    let p = Project::new("health-fail", "");
    // No node matches, so the pod never runs and the Job fails at its deadline.
    let failing = job(
        "migrate",
        "pre",
        "  activeDeadlineSeconds: 3\n",
        "registry.example/migrate:1",
    )
    .replace(
        "      restartPolicy: Never\n",
        "      restartPolicy: Never\n      nodeSelector: {no-such-node: \"true\"}\n",
    );
    p.write("manifests/migrate.yaml", &failing);
    p.write("manifests/web.yaml", &deployment("web", ""));
    p.write(
        "manifests/after.yaml",
        &job("notify", "post", "", "registry.example/notify:1"),
    );
    let out = p.apply(&[]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let printed = format!("{}{}", out.stdout, out.stderr);
    assert!(printed.contains("Job/migrate"), "{printed}");
    assert!(printed.contains("DeadlineExceeded"), "{printed}");
    assert!(printed.contains("phase pre did not become ready"), "{printed}");
    assert!(
        printed.contains("Deployment/web") && printed.contains("Job/notify"),
        "the objects of later phases are listed as not applied: {printed}"
    );
    assert!(p.get("deployment", "web").is_none(), "main was applied");
    assert!(p.get("job", "notify").is_none(), "post was applied");
}

#[test]
fn an_immutable_change_is_refused_and_replaced_when_annotated() {
    let p = Project::new("health-immutable", "");
    p.write(
        "manifests/job.yaml",
        &job("once", "main", "", "registry.example/once:1"),
    );
    let out = p.apply(&[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let first_uid = p.get("job", "once").unwrap()["metadata"]["uid"].clone();

    // A new image changes the Job's template, which the server refuses in place.
    p.write(
        "manifests/job.yaml",
        &job("once", "main", "", "registry.example/once:2"),
    );
    let diff = p.diff(&[]);
    assert_eq!(diff.code, 2, "{}{}", diff.stdout, diff.stderr);
    assert!(
        diff.stderr.contains("Job/once") && diff.stderr.contains("the server will refuse this change"),
        "{}",
        diff.stderr
    );
    assert!(
        diff.stderr.contains("kdeploy.dev/replace-on-immutable"),
        "{}",
        diff.stderr
    );
    let out = p.apply(&[]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("nothing was applied"), "{}", out.stderr);
    let unchanged = p.get("job", "once").unwrap();
    assert_eq!(unchanged["metadata"]["uid"], first_uid);
    assert_eq!(
        unchanged["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/once:1"
    );

    // Annotated, the diff says it will be replaced, and apply deletes and re-creates it.
    let annotated = job("once", "main", "", "registry.example/once:2").replace(
        "    kdeploy.dev/phase: main\n",
        "    kdeploy.dev/phase: main\n    kdeploy.dev/replace-on-immutable: \"true\"\n",
    );
    p.write("manifests/job.yaml", &annotated);
    let diff = p.diff(&[]);
    assert_eq!(diff.code, 1, "{}{}", diff.stdout, diff.stderr);
    assert!(diff.stdout.contains("(replace)"), "{}", diff.stdout);
    assert!(diff.stdout.contains("1 to replace"), "{}", diff.stdout);
    let out = p.apply(&[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("1 replaced"), "{}", out.stdout);
    let replaced = p.get("job", "once").unwrap();
    assert_ne!(replaced["metadata"]["uid"], first_uid);
    assert_eq!(
        replaced["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/once:2"
    );
    assert_eq!(
        replaced["status"]["succeeded"], 1,
        "apply waited for the new Job to complete"
    );
    let again = p.diff(&[]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
}

#[test]
fn a_changed_config_rolls_its_workload_and_an_unchanged_one_does_not() {
    const CANARY: &str = "rollout-canary-9b1f";
    let home = VaultHome::new();
    let (identity, recipient) = home.identity("key.txt");
    let p = Project::new(
        "health-rollout",
        &format!("secrets: [secrets.sops.yaml]\nrecipients: [{recipient}]\n"),
    );
    let set_secret = |value: &str| home.vault_set(p.dir.path(), &identity, "secrets.sops.yaml", "token", value);
    set_secret(CANARY);
    p.write(
        "manifests/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: {{ values.mode }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: steady\ndata:\n  k: v\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  token: {{ secrets.token }}\n",
    );
    p.write(
        "manifests/web.yaml",
        &deployment(
            "web",
            "          envFrom: [{configMapRef: {name: settings}}]\n          env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: api, key: token}}}]\n",
        ),
    );
    p.write(
        "manifests/other.yaml",
        &deployment(
            "other",
            "          volumeMounts: [{name: c, mountPath: /c}]\n      volumes: [{name: c, configMap: {name: steady}}]\n",
        ),
    );
    let with = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--identity".to_owned(), identity.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let args = with(&["-v", "mode=fast"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = p.apply(&args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let template_annotations =
        |name: &str| p.get("deployment", name).unwrap()["spec"]["template"]["metadata"]["annotations"].clone();
    let generation = |name: &str| p.get("deployment", name).unwrap()["metadata"]["generation"].clone();
    let web_before = template_annotations("web");
    assert!(
        web_before["checksum.kdeploy.dev/configmap-settings"].is_string(),
        "{web_before}"
    );
    assert!(
        web_before["checksum.kdeploy.dev/secret-api"].is_string(),
        "{web_before}"
    );
    assert!(!web_before.to_string().contains(CANARY));
    assert!(template_annotations("other")["checksum.kdeploy.dev/configmap-steady"].is_string());
    let (web_generation, other_generation) = (generation("web"), generation("other"));

    // The ConfigMap changes: the diff shows which checksum moved, and only `web` rolls.
    let args = with(&["-v", "mode=slow"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let diff = p.diff(&args);
    assert_eq!(diff.code, 1, "{}", diff.stderr);
    assert!(
        diff.stdout
            .lines()
            .any(|l| l.starts_with('+') && l.contains("checksum.kdeploy.dev/configmap-settings")),
        "{}",
        diff.stdout
    );
    assert!(!diff.stdout.contains("Deployment/other"), "{}", diff.stdout);
    let out = p.apply(&args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_ne!(generation("web"), web_generation, "web did not roll");
    assert_eq!(generation("other"), other_generation, "other rolled without a change");
    let web_after = template_annotations("web");
    assert_ne!(
        web_after["checksum.kdeploy.dev/configmap-settings"],
        web_before["checksum.kdeploy.dev/configmap-settings"]
    );
    assert_eq!(
        web_after["checksum.kdeploy.dev/secret-api"],
        web_before["checksum.kdeploy.dev/secret-api"]
    );

    // The secret changes: web rolls again, and its checksum (keyed) never shows the value.
    set_secret("rotated-canary-77c2");
    let out = p.apply(&args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let rolled = template_annotations("web");
    assert_ne!(
        rolled["checksum.kdeploy.dev/secret-api"],
        web_after["checksum.kdeploy.dev/secret-api"]
    );
    assert_eq!(generation("other"), other_generation);
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains(CANARY) && !text.contains("rotated-canary-77c2"),
            "{text}"
        );
    }
}

/// The requests of a run with `KDEPLOY_TRACE=requests` that read one Deployment by name.
fn deployment_reads(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("kdeploy: request at") && l.contains(": GET /apis/apps/v1/namespaces/"))
        .filter(|l| l.contains("/deployments/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_no_op_apply_takes_readiness_from_the_listing_and_still_waits_for_what_is_not_ready() {
    let p = Project::new("health-listed", "");
    p.write("manifests/web.yaml", &deployment("web", ""));
    let first = p.apply(&[]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);

    // Nothing changed, and web was ready when its set was listed: no read of it one by one.
    let again = run(p
        .command(&["apply", "--yes", "--timeout", "60s"])
        .env("KDEPLOY_TRACE", "requests"));
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stderr.contains("labelSelector&limit"),
        "the members were listed: {}",
        again.stderr
    );
    assert_eq!(deployment_reads(&again), Vec::<String>::new(), "{}", again.stderr);

    // A Deployment whose pod no node takes is never available. Once it is in the set, a no-op apply
    // still waits for it, and reads it, and fails on it, while web is taken from the listing.
    p.write(
        "manifests/stuck.yaml",
        &deployment("stuck", "      nodeSelector: {no-such-node: \"true\"}\n"),
    );
    let added = run(&mut p.command(&["apply", "--yes", "--timeout", "2s"]));
    assert_ne!(
        added.code, 0,
        "stuck never becomes ready: {}{}",
        added.stdout, added.stderr
    );
    assert!(p.get("deployment", "stuck").is_some(), "{}", added.stderr);
    let waiting = run(p
        .command(&["apply", "--yes", "--timeout", "2s"])
        .env("KDEPLOY_TRACE", "requests"));
    let printed = format!("{}{}", waiting.stdout, waiting.stderr);
    assert_ne!(waiting.code, 0, "{printed}");
    assert!(printed.contains("Deployment/stuck"), "{printed}");
    let reads = deployment_reads(&waiting);
    assert!(reads.iter().any(|l| l.contains("/deployments/stuck ")), "{printed}");
    assert!(!reads.iter().any(|l| l.contains("/deployments/web ")), "{printed}");
}
