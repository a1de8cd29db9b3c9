//! Flags and subcommands. Each flag is defined once here; its doc comment is its `--help` text, and
//! feeds the man page and shell completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::vault::keys::Recipient;

#[derive(Debug, Parser)]
#[command(
    name = "kdeploy",
    version,
    about = "Render, diff and apply Kubernetes manifest templates",
    long_about = "kdeploy renders a folder of Kubernetes manifest templates (YAML with Tera expressions) with values \
from values files, flags, environment variables, env files and encrypted secrets, into a YAML stream that \
`kubectl apply -f -` reads.\n\nExit codes: 0 success (and, for diff, no changes), 1 diff found changes, 2 error.",
    after_help = "Run `kdeploy render` in a folder with kdeploy.yaml or manifests/ to see the result."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render templates to a YAML stream on stdout
    Render(RenderArgs),
    /// Render, then check every object against the Kubernetes schemas and the CRDs, offline: every
    /// mistake at the template line that wrote it, exit 2 if there is any
    Validate(ValidateArgs),
    /// Show what applying would change in the cluster (server-side dry run); exit 1 if anything would
    Diff(DiffArgs),
    /// Apply the rendered objects with server-side apply, prune what left, and wait until ready
    Apply(ApplyArgs),
    /// Every object of the deployed project with its health, and whether it still is what the last
    /// revision applied; exit 0 when all are, 1 when any is not, 2 on errors
    Status(StatusArgs),
    /// Every kdeploy project on the cluster: identity, target, revision, when and by whom, health
    List(ListArgs),
    /// The project's revisions, newest first: what each changed, who, when, which commit, the outcome
    History(HistoryArgs),
    /// Apply a stored revision again (default: the last deployed one before the current), with the
    /// same plan, diff, confirmation, lock, prune and wait as apply
    Rollback(RollbackArgs),
    /// Delete every object of the deployed project (only what is provably its own), then its history
    /// and its ApplySet
    Delete(DeleteArgs),
    /// Show the merged data values and where each one came from
    Values(ValuesArgs),
    /// List the project's sources with their object counts and digests
    Sources(SourcesArgs),
    /// Download every remote source (Helm charts, URLs) into the project's vendor/ folder, for offline renders
    Vendor(VendorArgs),
    /// Encrypted secrets: SOPS files wrapped to age (identities in the OS keyring), OpenBao/Vault
    /// transit and AWS KMS keys
    #[command(subcommand)]
    Vault(VaultCommand),
    /// kdeploy as an Argo CD config management plugin (run by argocd-cmp-server; see deploy/argocd)
    #[command(subcommand)]
    Argocd(ArgocdCommand),
    /// Turn another tool's configuration into a kdeploy project
    #[command(subcommand)]
    Convert(ConvertCommand),
    /// Render, then push the result to an OCI registry as a Flux artifact (the layout `flux push
    /// artifact` writes): one file per object, every Secret a SOPS document for the cluster's
    /// recipients (`flux: recipients:` in kdeploy.yaml), reproducible, so an unchanged render keeps
    /// its digest. Prints REPOSITORY@sha256:DIGEST
    Push(PushArgs),
    /// Flux's side of a pushed artifact
    #[command(subcommand)]
    Flux(FluxCommand),
    /// Print shell completions
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
    /// Print the JSON Schema of kdeploy.yaml, for editors that check and complete YAML
    Schema,
}

/// Where templates, values and the environment come from; shared by every command that renders.
#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// Template files or folders (default: the project's templates, else ./manifests). A folder or
    /// kdeploy.yaml given here selects that project.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Template file or folder, as in ytt (same as a PATH argument)
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// Plain manifest file or folder (YAML or JSON, read as kubectl reads it, never templated); repeatable
    #[arg(short = 'm', long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,

    /// Kustomization folder, built with `kustomize build` or `kubectl kustomize`; repeatable
    #[arg(short = 'k', long = "kustomize", value_name = "DIR")]
    pub kustomize: Vec<PathBuf>,

    /// The project file (default: ./kdeploy.yaml if there is one)
    #[arg(short = 'p', long, value_name = "FILE", env = "KDEPLOY_PROJECT")]
    pub project: Option<PathBuf>,

    /// Use the settings of this target from kdeploy.yaml (values, env files, namespace, context)
    #[arg(short = 't', long, value_name = "NAME", env = "KDEPLOY_TARGET")]
    pub target: Option<String>,

    /// Default namespace for namespaced objects that set none (overrides the project's)
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub data_values: DataValueArgs,

    /// Env file (.env syntax, .envrc in direnv's common subset, or an age-encrypted .env.age) for
    /// `env` in templates; repeatable
    #[arg(long = "env-file", value_name = "PATH")]
    pub env_files: Vec<PathBuf>,

    /// Vault file (SOPS, age) whose values appear under `secrets.` in templates; repeatable
    #[arg(long = "secrets-file", value_name = "PATH")]
    pub secrets_files: Vec<PathBuf>,

    /// Do not annotate pod templates with checksums of the ConfigMaps and Secrets they use (which roll
    /// the pods when those change); also `config_checksums: false` in kdeploy.yaml
    #[arg(long)]
    pub no_config_checksums: bool,

    /// Treat the repository as untrusted input (pull requests from forks; `kdeploy argocd` always
    /// does): nothing it names is run, no path it names leaves it, templates see no credentials and
    /// only its own env files, tokens go only to the operator's addresses. Also KDEPLOY_UNTRUSTED=1
    #[arg(long)]
    pub untrusted: bool,

    /// Stop a render that takes longer than this many seconds (default 600; 60 when untrusted); also
    /// KDEPLOY_RENDER_TIMEOUT
    #[arg(long, value_name = "SECONDS")]
    pub render_timeout: Option<u64>,

    #[command(flatten)]
    pub identity: IdentityArgs,

    #[command(flatten)]
    pub validation: ValidationArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["reference", "dir"])))]
pub struct PushArgs {
    /// Where to push: oci://HOST[:PORT]/REPOSITORY:TAG
    #[arg(value_name = "oci://HOST/REPOSITORY:TAG")]
    pub reference: Option<String>,

    /// Write the same tree into this folder instead of pushing (the rendered-manifests branch
    /// pattern); files of objects that left are removed, unchanged Secrets are kept as they are
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// The artifact's source annotation (default: the git remote `origin`, without credentials)
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,

    /// The artifact's revision annotation (default: BRANCH@sha1:COMMIT of the project's git checkout)
    #[arg(long, value_name = "REVISION")]
    pub revision: Option<String>,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

/// How a registry is reached.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Speak plain HTTP to the registry (credentials are then sent to a loopback registry only)
    #[arg(long)]
    pub plain_http: bool,

    /// Trust this CA bundle (PEM) for the registry's TLS certificate, instead of the platform's roots
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum FluxCommand {
    /// Print the OCIRepository and the Kustomization that deploy the target's artifact (prune, wait,
    /// SOPS decryption, no post-build substitution), and on stderr the command that creates the
    /// decryption Secret
    Generate(FluxGenerateArgs),
    /// The target's Kustomization and OCIRepository as Flux reports them: Ready, the revision last
    /// applied and the one the source holds; exit 0 when the newest artifact is applied and ready, 1
    /// when not (yet), 2 on errors
    Status(FluxStatusArgs),
}

#[derive(Debug, Args)]
pub struct FluxStatusArgs {
    #[command(flatten)]
    pub project: FluxProjectArgs,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

/// Which project and target the Flux objects are for.
#[derive(Debug, Args)]
pub struct FluxProjectArgs {
    /// The project file or its folder (default: ./kdeploy.yaml)
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub project: PathBuf,

    /// Use the settings of this target from kdeploy.yaml
    #[arg(short = 't', long, env = "KDEPLOY_TARGET")]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("follow").args(["digest", "tag", "semver"])))]
pub struct FluxGenerateArgs {
    /// The artifact's repository, oci://HOST/REPOSITORY[:TAG] (default: `flux: repository:` in
    /// kdeploy.yaml)
    #[arg(value_name = "oci://HOST/REPOSITORY")]
    pub reference: Option<String>,

    #[command(flatten)]
    pub project: FluxProjectArgs,

    /// Follow exactly this artifact (what `kdeploy push -o json` printed)
    #[arg(long, value_name = "sha256:DIGEST")]
    pub digest: Option<String>,

    /// Follow a tag (default: the reference's tag, else `latest`)
    #[arg(long)]
    pub tag: Option<String>,

    /// Follow the newest tag in a semver range (`>=1.0.0`)
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,

    /// The registry speaks plain HTTP (`insecure: true`)
    #[arg(long)]
    pub plain_http: bool,

    /// A Secret in the Flux namespace holding the registry's CA as `ca.crt` (`certSecretRef`)
    #[arg(long, value_name = "NAME")]
    pub ca_secret: Option<String>,

    /// How often Flux looks for a new artifact and reconciles
    #[arg(long, default_value = "1m")]
    pub interval: String,
}

#[derive(Debug, Subcommand)]
pub enum ConvertCommand {
    /// Convert a ytt configuration (what `ytt -f …` reads) into a kdeploy project in --out that
    /// renders the same objects. What cannot be converted exactly is refused: nothing is written, every
    /// refusal is listed with file:line, exit 2. With --partial, what converts is written, each refusal is
    /// marked in place with a {# TODO(ytt): … #} comment, exit 1. The data-value flags are merged into
    /// the project's values.yaml, in plain text: give secrets to `kdeploy render` instead
    Ytt(ConvertYttArgs),
}

#[derive(Debug, Args)]
pub struct ConvertYttArgs {
    /// A ytt file or folder, as `ytt -f` takes it (folders recursively, _ytt_lib left out); repeatable
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,

    /// The folder to write the kdeploy project into (created; it must be empty if it exists)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Write what converts and mark each refused construct with a TODO comment (exit 1)
    #[arg(long)]
    pub partial: bool,

    /// The project's name in kdeploy.yaml (default: the name of the --out folder)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// A target of the converted project, with the data values files ytt is given for it after the
    /// configuration (`ytt -f config/ -f envs/prod.yml` is `--target prod=envs/prod.yml`); repeatable,
    /// also for more files of one target
    #[arg(long = "target", value_name = "NAME=PATH")]
    pub targets: Vec<String>,

    /// How the report is printed
    #[arg(short = 'o', long, value_enum, default_value_t = ConvertReport::Text)]
    pub output: ConvertReport,

    /// Data values to bake into the converted project's values.yaml, with ytt's meaning
    #[command(flatten)]
    pub data_values: DataValueArgs,
}

/// How `convert` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConvertReport {
    /// A line per file, then the refusals with file:line
    Text,
    /// One JSON document: files, refusals, whether anything was written
    Json,
}

/// The data-value flags, with ytt's names and meaning (shared by the commands that render and by
/// `convert ytt`).
#[derive(Debug, Args, Clone, Default)]
pub struct DataValueArgs {
    /// Data values file (YAML; maps merge deeply, lists replace); repeatable
    #[arg(long = "data-values-file", value_name = "PATH")]
    pub data_values_files: Vec<PathBuf>,

    /// Take data values from environment variables PREFIX_key__subkey=value (strings)
    #[arg(long = "data-values-env", value_name = "PREFIX")]
    pub data_values_env: Vec<String>,

    /// Like --data-values-env, with each value read as YAML
    #[arg(long = "data-values-env-yaml", value_name = "PREFIX")]
    pub data_values_env_yaml: Vec<String>,

    /// Set a data value to a string: key.path=value
    #[arg(short = 'v', long = "data-value", value_name = "KEY=VALUE")]
    pub strings: Vec<String>,

    /// Set a data value from YAML: key.path=yaml
    #[arg(long = "data-value-yaml", value_name = "KEY=YAML")]
    pub data_values_yaml: Vec<String>,

    /// Set a data value to the content of a file: key.path=file
    #[arg(long = "data-value-file", value_name = "KEY=FILE")]
    pub data_value_files: Vec<String>,
}

/// How the rendered objects and the values are checked before anything else sees them.
#[derive(Debug, Args, Clone, Default)]
pub struct ValidationArgs {
    /// Skip validation against the Kubernetes schemas, the CRDs and the values schema
    #[arg(long)]
    pub no_validate: bool,

    /// Validate against the schemas of this Kubernetes version (default: the cluster's own when diff or
    /// apply are connected, else the version kdeploy is built for); an unknown version lists the known
    /// ones. Also KDEPLOY_KUBE_VERSION
    #[arg(long, value_name = "VERSION", env = "KDEPLOY_KUBE_VERSION")]
    pub kube_version: Option<String>,

    /// An object whose kind has no schema anywhere (no CRD in the stream, the cluster or the schema
    /// folders) is an error, not a warning
    #[arg(long)]
    pub strict: bool,

    /// A value that no template reads is an error, not a warning (also `strict_values: true` in
    /// kdeploy.yaml)
    #[arg(long)]
    pub strict_values: bool,
}

/// Which age identity opens vault files.
#[derive(Debug, Args, Clone, Default)]
pub struct IdentityArgs {
    /// Age identity file to decrypt with (tried before SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, the OS keyring
    /// and ~/.config/sops/age/keys.txt)
    #[arg(long, value_name = "FILE", global = true)]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ArgocdCommand {
    /// Render the Application's project to stdout, from Argo CD's environment: the target from the
    /// `target` parameter or ARGOCD_ENV_KDEPLOY_TARGET, data values from the `values` parameter, the
    /// namespace from ARGOCD_APP_NAMESPACE when the project sets none, KUBE_VERSION and
    /// KUBE_API_VERSIONS for Helm charts
    Generate,
    /// Print the parameters the plugin takes (Argo CD's dynamic parameter announcement), with the
    /// project's targets
    Parameters,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Create your age identity, keep it in the OS keyring, and add its recipient to the project
    Init {
        /// Append the identity to this file (0600; keys already in it are kept) instead of the OS keyring,
        /// e.g. sops' ~/.config/sops/age/keys.txt on a machine without one
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Replace an identity already in the keyring
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Encrypt a plaintext file (YAML, JSON or .env) in place, or to --output
    Encrypt {
        file: PathBuf,
        /// Write the encrypted file here instead of replacing FILE
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Encrypt to this recipient (default: the project's recipients): an age key (age1…), an
        /// OpenBao/Vault transit key URI or an AWS KMS key ARN; repeatable
        #[arg(short, long = "recipient", value_name = "RECIPIENT")]
        recipients: Vec<Recipient>,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Print the decrypted file on stdout (the only way plaintext leaves the vault)
    Decrypt {
        file: PathBuf,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Edit the decrypted file in $EDITOR (private temporary file on memory-backed storage)
    Edit {
        file: PathBuf,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Set one value (read from stdin, or asked for without echo); creates the file if needed
    Set {
        file: PathBuf,
        /// Dotted key path, e.g. db.password
        key: String,
        /// Read the value as YAML (numbers, booleans, lists) instead of as a string
        #[arg(long)]
        yaml: bool,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Print one decrypted value on stdout
    Get {
        file: PathBuf,
        key: String,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// List the key paths of a vault file (no values, no identity needed)
    Keys { file: PathBuf },
    /// Bind vault files to the repositories they belong to: Argo CD's sidecar then opens them only for
    /// Applications of those repositories (needs a key that opens them)
    Bind {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A repository URL the files belong to, as Argo CD's Applications name it; repeatable
        #[arg(long = "repo", value_name = "URL", required_unless_present = "unbind")]
        repositories: Vec<String>,
        /// Remove the binding instead
        #[arg(long, conflicts_with = "repositories")]
        unbind: bool,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// List, add or remove the project's recipients
    #[command(subcommand)]
    Recipients(RecipientsCommand),
    /// Re-wrap the data key of vault files for the current recipients (default: the project's files)
    Updatekeys {
        files: Vec<PathBuf>,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Re-encrypt vault files under a new data key (default: the project's files)
    Rotate {
        files: Vec<PathBuf>,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        project: ProjectArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// The project's recipients, and whether each vault file is encrypted to exactly them
    List {
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Add a recipient to kdeploy.yaml and re-wrap the project's vault files for it
    Add {
        /// An age key (age1…), an OpenBao/Vault transit key URI
        /// (https://HOST:PORT/v1/transit/keys/NAME) or an AWS KMS key ARN (arn:aws:kms:…, with
        /// `+ROLE_ARN`, `|context=k:v,…`, `|profile=NAME` as needed)
        recipient: Recipient,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Remove a recipient from kdeploy.yaml and re-wrap the project's vault files without it
    Remove {
        recipient: Recipient,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        project: ProjectArgs,
    },
}

/// Which project a vault command works on.
#[derive(Debug, Args, Clone, Default)]
pub struct ProjectArgs {
    /// The project file (default: ./kdeploy.yaml if there is one)
    #[arg(short = 'p', long, value_name = "FILE", env = "KDEPLOY_PROJECT")]
    pub project: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Output format: a YAML stream, or a JSON v1 List
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct SourcesArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Output format: a table, or JSON
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, Args)]
pub struct VendorArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct ValuesArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Output format: YAML with the origin of each value as a comment, or JSON
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,

    /// Print a starting JSON Schema for the values instead (their keys and types, never a value), to
    /// save as the project's `values_schema:`
    #[arg(long)]
    pub schema: bool,
}

/// Which cluster, and how hard to push it.
#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// How many objects each LIST of the ApplySet's members returns at a time, as kubectl's
    /// --chunk-size: one page per LIST is held while the members are read
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_size: u32,

    /// The ApplySet (the set of objects kdeploy manages and prunes): the name of its parent Secret in
    /// the default namespace (default: kdeploy-NAME from the project's `name:`, or kdeploy-NAME-TARGET;
    /// an unnamed project has none and never prunes)
    #[arg(long, value_name = "NAME")]
    pub applyset: Option<String>,

    /// Take ownership of fields another field manager owns, instead of failing on the conflict
    #[arg(long)]
    pub force_conflicts: bool,

    /// Dry-run every object with the server, also those the last apply proves unchanged (its recorded
    /// digest matches and kdeploy still owns every field it set); use it to hear what a newly added
    /// admission policy or webhook says about objects that did not change
    #[arg(long)]
    pub full_dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReportFormat {
    /// Diffs and a summary table (coloured on a terminal; NO_COLOR turns colour off)
    #[default]
    Text,
    /// One JSON document, for CI
    Json,
}

/// How `diff` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DiffFormat {
    /// Diffs and a summary table (coloured on a terminal; NO_COLOR turns colour off)
    #[default]
    Text,
    /// One JSON document, for programs (its schema is in the README)
    Json,
    /// A table and collapsed diffs for a pull-request comment, cut to fit one; also appended to
    /// $GITHUB_STEP_SUMMARY when that is set
    Markdown,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Compare a stored revision (see `kdeploy history`) with the live state instead of the rendered
    /// project; needs no project files with --applyset and -n
    #[arg(long, value_name = "N")]
    pub revision: Option<u64>,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Apply without asking (needed when there is no terminal to ask on)
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Show the diff and stop
    #[arg(long)]
    pub dry_run: bool,

    /// Do not delete objects that left the manifest (they are listed instead)
    #[arg(long)]
    pub no_prune: bool,

    /// Also delete Namespaces that left the manifest (with everything in them)
    #[arg(long)]
    pub prune_namespaces: bool,

    /// Do not wait for objects to become ready
    #[arg(long)]
    pub no_wait: bool,

    /// How long to wait while another apply of the same project holds the deploy lock (e.g. 0s, 10m)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,

    /// Do not take the deploy lock (a Lease next to the ApplySet parent) that keeps two applies of one
    /// project apart
    #[arg(long)]
    pub no_lock: bool,

    /// How long to wait for objects to become ready (e.g. 90s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// If the apply fails after writing anything (a refusal part-way, an object not ready within
    /// --timeout, SIGINT/SIGTERM, a lost server), put back the last deployed revision under the same
    /// lock (on a first apply: delete what it created), and exit non-zero
    #[arg(long, visible_alias = "atomic")]
    pub rollback_on_failure: bool,

    /// How long the rollback of --rollback-on-failure may wait for readiness (its own time, not what is
    /// left of --timeout)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub rollback_timeout: std::time::Duration,

    /// How many revisions to keep in the cluster (each in a Secret next to the ApplySet parent)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub history_max: u32,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

/// Which deployed project a day-two command (status, history, rollback, delete) works on: the
/// project's (from kdeploy.yaml: its name, target, namespace and context; nothing is rendered), or the
/// ApplySet named with --applyset and -n, from any folder.
#[derive(Debug, Args, Clone, Default)]
pub struct SetArgs {
    /// The project file (default: ./kdeploy.yaml if there is one)
    #[arg(short = 'p', long, value_name = "FILE", env = "KDEPLOY_PROJECT")]
    pub project: Option<PathBuf>,

    /// The project's target (its namespace and context)
    #[arg(short = 't', long, value_name = "NAME", env = "KDEPLOY_TARGET")]
    pub target: Option<String>,

    /// The namespace of the ApplySet parent (default: the project's, else the context's)
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// The ApplySet parent Secret's name (kdeploy-NAME for project NAME; NAME alone is also found),
    /// instead of the project file's
    #[arg(long, value_name = "NAME")]
    pub applyset: Option<String>,

    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// How to reach the cluster.
#[derive(Debug, Args, Clone)]
pub struct ConnectionArgs {
    /// Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kube context (default: the target's, else the kubeconfig's current context)
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// How many requests to the API server at once (default: adaptive, from 8 up to 64 while the
    /// server's round trips hold, fewer when they rise or it throttles); a number fixes the most
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,

    /// How long one request may wait for the API server's answer before it is retried (e.g. 30s, 2m)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
}

impl Default for ConnectionArgs {
    fn default() -> Self {
        ConnectionArgs {
            kubeconfig: None,
            context: None,
            concurrency: None,
            request_timeout: std::time::Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub set: SetArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Projects in every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Projects whose ApplySet parent is in this namespace (default: the context's)
    #[arg(short = 'n', long, value_name = "NAMESPACE", conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,

    #[command(flatten)]
    pub set: SetArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Print a revision's manifest (Secrets masked) as YAML, or its whole record with -o json
    Show {
        /// The revision's number
        revision: u64,

        #[command(flatten)]
        set: SetArgs,

        /// Output format
        #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
    },
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The revision to go back to (default: the last deployed one before the current)
    #[arg(value_name = "REVISION")]
    pub revision: Option<u64>,

    #[command(flatten)]
    pub set: SetArgs,

    /// Roll back without asking (needed when there is no terminal to ask on)
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Show the diff and stop
    #[arg(long)]
    pub dry_run: bool,

    /// Do not wait for objects to become ready
    #[arg(long)]
    pub no_wait: bool,

    /// How long to wait for objects to become ready
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// How long to wait while another apply of the same project holds the deploy lock
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,

    /// How many revisions to keep
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub history_max: u32,

    /// Take ownership of fields another field manager owns, instead of failing on the conflict
    #[arg(long)]
    pub force_conflicts: bool,

    /// Also delete Namespaces the revision does not hold
    #[arg(long)]
    pub prune_namespaces: bool,

    /// Roll back even when a CustomResourceDefinition would lose a version the cluster serves or stores
    #[arg(long)]
    pub allow_crd_version_loss: bool,

    /// Roll back even when the revision's Secrets cannot be restored (no key opens them, or the project
    /// had no vault to seal them to); those Secrets are left as they are
    #[arg(long)]
    pub allow_unrestored_secrets: bool,

    /// Roll back to a revision written by a newer kdeploy
    #[arg(long)]
    pub allow_newer: bool,

    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub set: SetArgs,

    /// Delete without asking (needed when there is no terminal to ask on)
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Show what would be deleted and kept, and stop
    #[arg(long)]
    pub dry_run: bool,

    /// Also delete the project's Namespaces (never default or kube-*, never one that holds objects of
    /// others)
    #[arg(long)]
    pub delete_namespaces: bool,

    /// Also delete the project's CustomResourceDefinitions (never while others' custom resources exist)
    #[arg(long)]
    pub delete_crds: bool,

    /// Also delete the project's PersistentVolumeClaims (and with them, usually, the volumes' data)
    #[arg(long)]
    pub delete_volumes: bool,

    /// Also delete objects the project adopted (they existed before its first apply)
    #[arg(long)]
    pub include_adopted: bool,

    /// How long to wait until the deleted objects are gone
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// How long to wait while another apply of the same project holds the deploy lock
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

/// `90s`, `5m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 5m, 1h)"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("`{text}` is not a duration (e.g. 90s, 5m, 1h)")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}
