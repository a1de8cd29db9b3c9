//! Which objects a project may change and prune, against the real local control plane: a project's
//! identity names its ApplySet, an unnamed project never prunes, another project's objects and
//! ApplySet parent are refused, and the parent is checked before anything is written.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{Cluster, Run, TestNamespace, cluster, kdeploy, run};

/// A folder on disk that kdeploy is run in, applying to one test namespace.
struct Folder {
    cluster: &'static Cluster,
    dir: tempfile::TempDir,
}

impl Folder {
    fn new() -> Folder {
        Folder {
            cluster: cluster(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) -> &Folder {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).unwrap();
    }

    fn kdeploy(&self, command: &str, args: &[&str]) -> Command {
        let mut c = kdeploy();
        c.current_dir(self.path())
            .arg(command)
            .arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .args(args);
        if command == "apply" {
            c.arg("--yes");
        }
        c
    }

    fn run(&self, command: &str, args: &[&str]) -> Run {
        run(&mut self.kdeploy(command, args))
    }
}

fn config_map(name: &str, namespace: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata: {{k: v}}\n")
}

fn get(cluster: &Cluster, kind: &str, name: &str, namespace: &str) -> Option<Value> {
    let out = run(cluster
        .kubectl()
        .args(["get", kind, name, "-n", namespace, "-o", "json"]));
    (out.code == 0).then(|| serde_json::from_str(&out.stdout).unwrap())
}

fn project_file(name: Option<&str>, namespace: &str) -> String {
    let name = name.map_or_else(String::new, |n| format!("name: {n}\n"));
    format!("{name}namespace: {namespace}\n")
}

#[test]
fn two_unnamed_folders_never_prune_each_other() {
    let ns: TestNamespace = cluster().namespace("own-unnamed");
    let a = Folder::new();
    a.write("a.yaml", &config_map("from-a", &ns.name));
    let b = Folder::new();
    b.write("b.yaml", &config_map("from-b", &ns.name));
    let first = a.run("apply", &["-f", "a.yaml", "-n", &ns.name]).ok();
    assert!(
        first.stderr.contains("not pruning") && first.stderr.contains("no ApplySet"),
        "an unnamed project says it does not prune, and why:\n{}",
        first.stderr
    );
    b.run("apply", &["-f", "b.yaml", "-n", &ns.name]).ok();
    assert!(
        get(a.cluster, "configmap", "from-a", &ns.name).is_some(),
        "b's apply left a's object alone"
    );
    assert!(get(a.cluster, "configmap", "from-b", &ns.name).is_some());
    // Even an object removed from the unnamed folder stays: nothing proves it was this folder's alone.
    a.write("a.yaml", &config_map("from-a-2", &ns.name));
    let again = a.run("apply", &["-f", "a.yaml", "-n", &ns.name]).ok();
    assert!(!again.stdout.contains("prune   "), "{}", again.stdout);
    assert!(get(a.cluster, "configmap", "from-a", &ns.name).is_some());
}

#[test]
fn named_projects_in_one_namespace_prune_only_their_own() {
    let ns = cluster().namespace("own-named");
    let a = Folder::new();
    a.write("kdeploy.yaml", &project_file(Some("proj-a"), &ns.name))
        .write("manifests/one.yaml", &config_map("a-one", &ns.name))
        .write("manifests/two.yaml", &config_map("a-two", &ns.name));
    let b = Folder::new();
    b.write("kdeploy.yaml", &project_file(Some("proj-b"), &ns.name))
        .write("manifests/one.yaml", &config_map("b-one", &ns.name));
    let applied = a.run("apply", &[]).ok();
    assert!(
        applied.stderr.contains("ApplySet Secret/kdeploy-proj-a in ")
            && applied.stderr.contains("(project proj-a)")
            && applied.stderr.contains("kdeploy.yaml (found in the working directory)"),
        "apply says which project and ApplySet it uses:\n{}",
        applied.stderr
    );
    b.run("apply", &[]).ok();
    let parent = get(a.cluster, "secret", "kdeploy-proj-a", &ns.name).expect("a's parent");
    assert_eq!(parent["metadata"]["annotations"]["kdeploy.dev/project"], "proj-a");

    a.remove("manifests/two.yaml");
    let diff = a.run("diff", &[]);
    assert_eq!(diff.code, 1, "{}", diff.stderr);
    assert!(
        diff.stdout.contains("a-two") && !diff.stdout.contains("b-one"),
        "{}",
        diff.stdout
    );
    let pruned = a.run("apply", &[]).ok();
    assert!(pruned.stdout.contains("1 pruned"), "{}", pruned.stdout);
    assert!(get(a.cluster, "configmap", "a-two", &ns.name).is_none());
    assert!(get(a.cluster, "configmap", "a-one", &ns.name).is_some());
    assert!(
        get(a.cluster, "configmap", "b-one", &ns.name).is_some(),
        "b's object survives a's prune"
    );
}

#[test]
fn another_projects_object_is_refused_until_taken_over() {
    let ns = cluster().namespace("own-claim");
    let a = Folder::new();
    a.write("kdeploy.yaml", &project_file(Some("owner-a"), &ns.name))
        .write("manifests/shared.yaml", &config_map("shared", &ns.name));
    a.run("apply", &[]).ok();
    let b = Folder::new();
    b.write("kdeploy.yaml", &project_file(Some("owner-b"), &ns.name))
        .write("manifests/shared.yaml", &config_map("shared", &ns.name))
        .write("manifests/own.yaml", &config_map("b-own", &ns.name));
    for command in ["diff", "apply"] {
        let refused = b.run(command, &[]);
        assert_eq!(refused.code, 2, "{command}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("ConfigMap/shared")
                && refused.stderr.contains("project `owner-a`")
                && refused.stderr.contains("--force-conflicts"),
            "{command} names the object, its owner and the way out:\n{}",
            refused.stderr
        );
    }
    assert!(
        get(a.cluster, "configmap", "b-own", &ns.name).is_none(),
        "nothing of b was applied"
    );
    let a_id = get(a.cluster, "configmap", "shared", &ns.name).unwrap()["metadata"]["labels"]
        ["applyset.kubernetes.io/part-of"]
        .clone();

    let taken = b.run("apply", &["--force-conflicts"]).ok();
    assert!(
        taken.stderr.contains("taking over ConfigMap/shared"),
        "{}",
        taken.stderr
    );
    let shared = get(a.cluster, "configmap", "shared", &ns.name).unwrap();
    assert_ne!(shared["metadata"]["labels"]["applyset.kubernetes.io/part-of"], a_id);
    // Now it is b's: a's next apply is refused in turn, and a's prune never deletes it.
    let back = a.run("apply", &[]);
    assert_eq!(back.code, 2, "{}", back.stderr);
    assert!(back.stderr.contains("project `owner-b`"), "{}", back.stderr);
    a.remove("manifests/shared.yaml");
    a.write("manifests/other.yaml", &config_map("a-other", &ns.name));
    a.run("apply", &[]).ok();
    assert!(
        get(a.cluster, "configmap", "shared", &ns.name).is_some(),
        "a never prunes b's object"
    );
}

#[test]
fn a_parent_recorded_for_another_project_is_never_adopted() {
    let ns = cluster().namespace("own-parent");
    let a = Folder::new();
    a.write("kdeploy.yaml", &project_file(Some("first"), &ns.name))
        .write("manifests/x.yaml", &config_map("first-x", &ns.name));
    a.run("apply", &[]).ok();
    let b = Folder::new();
    b.write("kdeploy.yaml", &project_file(Some("second"), &ns.name))
        .write("manifests/y.yaml", &config_map("second-y", &ns.name));
    let refused = b.run("apply", &["--applyset", "kdeploy-first"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("belongs to project `first`") && refused.stderr.contains("this is project `second`"),
        "{}",
        refused.stderr
    );
    assert!(get(a.cluster, "configmap", "second-y", &ns.name).is_none());
    assert!(get(a.cluster, "configmap", "first-x", &ns.name).is_some());
}

#[test]
fn a_parent_namespace_that_will_not_exist_fails_before_anything_is_written() {
    let ns = cluster().namespace("own-nons");
    let missing = format!("{}-missing", ns.name);
    let created = format!("{}-made", ns.name);
    let folder = Folder::new();
    folder
        .write("kdeploy.yaml", &project_file(Some("nons"), &missing))
        .write(
            "manifests/ns.yaml",
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {created}\n"),
        )
        .write("manifests/cm.yaml", &config_map("in-made", &created));
    let out = folder.run("apply", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("kdeploy-nons (the ApplySet parent)")
            && out.stderr.contains(&format!("namespace `{missing}` does not exist"))
            && out.stderr.contains("nothing was applied"),
        "{}",
        out.stderr
    );
    let namespace = run(folder.cluster.kubectl().args(["get", "namespace", &created]));
    assert_ne!(namespace.code, 0, "the Namespace was not created: {}", namespace.stdout);

    // When the apply itself creates the parent's namespace, the parent is written after it.
    folder.write("kdeploy.yaml", &project_file(Some("nons"), &created));
    folder.run("apply", &[]).ok();
    assert!(get(folder.cluster, "secret", "kdeploy-nons", &created).is_some());
    run(folder
        .cluster
        .kubectl()
        .args(["delete", "namespace", &created, "--wait=false"]));
}

#[test]
fn two_targets_in_one_namespace_are_two_sets() {
    let ns = cluster().namespace("own-targets");
    let folder = Folder::new();
    folder
        .write(
            "kdeploy.yaml",
            &format!(
                "name: shop\nnamespace: {}\ntargets:\n  blue: {{}}\n  green: {{}}\n",
                ns.name
            ),
        )
        .write(
            "manifests/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ env.COLOUR }}\ndata: {k: v}\n",
        );
    for colour in ["blue", "green"] {
        run(folder.kdeploy("apply", &["--target", colour]).env("COLOUR", colour)).ok();
        assert!(get(folder.cluster, "secret", &format!("kdeploy-shop-{colour}"), &ns.name).is_some());
    }
    // blue's object changes name: blue prunes its old one, and green's stays.
    let out = run(folder.kdeploy("apply", &["--target", "blue"]).env("COLOUR", "blue2")).ok();
    assert!(out.stdout.contains("1 pruned"), "{}", out.stdout);
    assert!(get(folder.cluster, "configmap", "cm-blue", &ns.name).is_none());
    assert!(get(folder.cluster, "configmap", "cm-green", &ns.name).is_some());
}

#[test]
fn templates_named_on_the_command_line_in_a_project_never_prune_its_other_objects() {
    let ns = cluster().namespace("own-partial");
    let folder = Folder::new();
    folder
        .write("kdeploy.yaml", &project_file(Some("partial"), &ns.name))
        .write("manifests/one.yaml", &config_map("one", &ns.name))
        .write("manifests/two.yaml", &config_map("two", &ns.name))
        .write("elsewhere/three.yaml", &config_map("three", &ns.name));
    folder.run("apply", &[]).ok();
    let out = folder.run("apply", &["-f", "elsewhere/three.yaml"]).ok();
    assert!(
        out.stderr
            .contains("settings apply to the sources named on the command line")
            && out.stderr.contains("not pruning"),
        "{}",
        out.stderr
    );
    for name in ["one", "two", "three"] {
        assert!(
            get(folder.cluster, "configmap", name, &ns.name).is_some(),
            "{name} is still there"
        );
    }
    // The parent still spans what the project's members may be.
    let parent = get(folder.cluster, "secret", "kdeploy-partial", &ns.name).unwrap();
    assert_eq!(
        parent["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"],
        "ConfigMap"
    );
}

#[test]
fn a_renamed_project_takes_its_objects_over_explicitly() {
    let ns = cluster().namespace("own-rename");
    let folder = Folder::new();
    folder
        .write("kdeploy.yaml", &project_file(Some("old-name"), &ns.name))
        .write("manifests/cm.yaml", &config_map("kept", &ns.name));
    folder.run("apply", &[]).ok();
    folder.write("kdeploy.yaml", &project_file(Some("new-name"), &ns.name));
    let refused = folder.run("apply", &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("project `old-name`") && refused.stderr.contains("renaming"),
        "{}",
        refused.stderr
    );
    folder.run("apply", &["--force-conflicts"]).ok();
    folder.remove("manifests/cm.yaml");
    folder.write("manifests/other.yaml", &config_map("other", &ns.name));
    let pruned = folder.run("apply", &[]).ok();
    assert!(
        pruned.stdout.contains("1 pruned"),
        "the new name prunes what it took over:\n{}",
        pruned.stdout
    );
    assert!(get(folder.cluster, "configmap", "kept", &ns.name).is_none());
}
