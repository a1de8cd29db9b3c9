//! `kdeploy vault …`: creating identities, encrypting, reading, editing and re-keying vault files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use zeroize::Zeroizing;

use crate::cli::{IdentityArgs, ProjectArgs, RecipientsCommand, VaultCommand};
use crate::project::Project;
use crate::ui;
use crate::vault::cipher::DataKey;
use crate::vault::identity::{self, IdentityChain};
use crate::vault::keys::Recipient;
use crate::vault::sops::{self, EncryptionRules, Format, Leaf, Tree};
use crate::vault::{
    self as vault_mod, VaultError, VaultFile, configured_recipients, wrap_keys, write_atomically, write_encrypted,
};
use crate::yaml::{self, Schema};

pub fn run(command: &VaultCommand) -> anyhow::Result<ExitCode> {
    match command {
        VaultCommand::Init { file, force, project } => init(file.as_deref(), *force, project),
        VaultCommand::Encrypt {
            file,
            output,
            recipients,
            project,
        } => encrypt(file, output.as_deref(), recipients, project),
        VaultCommand::Decrypt { file, identity } => decrypt(file, identity),
        VaultCommand::Edit {
            file,
            identity,
            project,
        } => edit(file, identity, project),
        VaultCommand::Set {
            file,
            key,
            yaml,
            identity,
            project,
        } => set(file, key, *yaml, identity, project),
        VaultCommand::Get { file, key, identity } => get(file, key, identity),
        VaultCommand::Keys { file } => keys(file),
        VaultCommand::Bind {
            files,
            repositories,
            unbind: _,
            identity,
        } => bind(files, repositories, identity),
        VaultCommand::Recipients(command) => recipients(command),
        VaultCommand::Updatekeys {
            files,
            identity,
            project,
        } => rewrap(files, identity, project, false),
        VaultCommand::Rotate {
            files,
            identity,
            project,
        } => rewrap(files, identity, project, true),
    }
}

fn load_project(args: &ProjectArgs) -> anyhow::Result<Option<Project>> {
    let file = args.project.clone().or_else(|| Project::find_in(Path::new(".")));
    file.map(|f| Project::load(&f)).transpose().map_err(Into::into)
}

fn project_recipients(project: &Option<Project>) -> Vec<Recipient> {
    project
        .as_ref()
        .map(|p| p.config.recipients.clone())
        .unwrap_or_default()
}

fn chain(args: &IdentityArgs) -> IdentityChain {
    IdentityChain::from_process(args.identity.as_deref())
}

fn recipients_for(project: &Option<Project>, file: &Path) -> anyhow::Result<Vec<Recipient>> {
    let recipients = configured_recipients(&project_recipients(project), file)?;
    if recipients.is_empty() {
        bail!(
            "no recipients for {}: add `recipients:` to kdeploy.yaml (`kdeploy vault init` does), give --recipient, or add a .sops.yaml creation rule",
            file.display()
        );
    }
    Ok(recipients)
}

fn key_path(key: &str) -> anyhow::Result<Vec<String>> {
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        bail!("`{key}` is not a key path (expected dotted keys such as db.password)");
    }
    Ok(path)
}

fn init(file: Option<&Path>, force: bool, project_args: &ProjectArgs) -> anyhow::Result<ExitCode> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    match file {
        Some(path) => append_identity(path, &identity)?,
        None => match identity::store_in_keyring(&identity, force) {
            Ok(()) => ui::note(&format!(
                "identity stored in the OS keyring ({}/{})",
                identity::KEYRING_SERVICE,
                identity::KEYRING_ACCOUNT
            )),
            // No keyring here (a server, CI, WSL, a container, SSH): sops' key file is the way that works.
            Err(identity::IdentityError::Keyring(reason)) => {
                let env = |name: &str| std::env::var(name).ok();
                let Some(key_file) = identity::sops_key_file(&env) else {
                    bail!(
                        "tried the OS keyring: {reason}; and neither HOME nor XDG_CONFIG_HOME is set: pass --file FILE"
                    );
                };
                let asked = ui::stdin_is_terminal() && ui::stderr_is_terminal();
                let question = format!(
                    "tried the OS keyring: {reason}.\nappend the identity to sops' key file {} instead (kdeploy and sops read it)?",
                    key_file.display()
                );
                if !(asked && ui::confirm(&question, true)?) {
                    bail!(
                        "tried the OS keyring: {reason}.\n  Without a keyring (a server, CI, WSL, a container, an SSH session), keep the identity in sops' key file, \
                         which kdeploy and sops both read:\n    kdeploy vault init --file {}\n  (appended to what is there, never overwriting it; mode 0600)",
                        key_file.display()
                    );
                }
                append_identity(&key_file, &identity)?;
            }
            Err(other) => return Err(other.into()),
        },
    }
    if let Some(project) = load_project(project_args)? {
        let mut recipients = project.config.recipients.clone();
        let recipient = Recipient::Age(recipient.clone());
        if !recipients.contains(&recipient) {
            recipients.push(recipient);
            project.write_recipients(&recipients)?;
            ui::note(&format!(
                "added your recipient to {}; someone who can already decrypt runs `kdeploy vault updatekeys` to let you in",
                project.file.display()
            ));
        }
    }
    super::write_stdout(&format!("{recipient}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Adds `identity` to an identity file (created 0600 in a 0700 folder), keeping every identity already
/// in it: a key file may hold other keys that open other files.
fn append_identity(path: &Path, identity: &age::x25519::Identity) -> anyhow::Result<()> {
    use age::secrecy::ExposeSecret;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Zeroizing::new(String::new()),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    let separator = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let text = Zeroizing::new(format!(
        "{}{separator}# created by kdeploy vault init\n# public key: {}\n{}\n",
        existing.as_str(),
        identity.to_public(),
        identity.to_string().expose_secret()
    ));
    write_atomically(path, text.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    let kept = if existing.trim().is_empty() {
        String::new()
    } else {
        " (the identities already in it are kept)".to_owned()
    };
    ui::note(&format!(
        "identity written to {} (mode 0600){kept}; keep a copy somewhere safe",
        path.display()
    ));
    Ok(())
}

fn encrypt(
    file: &Path,
    output: Option<&Path>,
    flag_recipients: &[Recipient],
    project_args: &ProjectArgs,
) -> anyhow::Result<ExitCode> {
    let target = output.unwrap_or(file);
    let text =
        Zeroizing::new(std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?);
    let project = load_project(project_args)?;
    let recipients = if flag_recipients.is_empty() {
        recipients_for(&project, target)?
    } else {
        flag_recipients.to_vec()
    };
    if target.extension().is_some_and(|e| e == "age") {
        let age: Vec<String> = recipients
            .iter()
            .map(|r| match r {
                Recipient::Age(key) => Ok(key.clone()),
                other => Err(anyhow!(
                    "{}: a whole-file .age file can only be encrypted to age recipients, not to {} key {other}; use a SOPS file (.env, .yaml, .json) for those",
                    target.display(),
                    other.kind()
                )),
            })
            .collect::<anyhow::Result<_>>()?;
        let armored = vault_mod::encrypt_age_file(text.as_bytes(), &age)?;
        write_atomically(target, armored.as_bytes())?;
        ui::note(&format!(
            "encrypted {} with age to {} recipient(s)",
            target.display(),
            recipients.len()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let plain = sops::parse_plaintext(&text, Format::of(target)).map_err(|source| VaultError::Format {
        path: file.to_path_buf(),
        source,
    })?;
    let key = DataKey::generate().map_err(|e| anyhow!("cannot generate a data key: {e}"))?;
    let services = chain(&IdentityArgs::default());
    let keys = wrap_keys(target, services.services(), &key, &recipients, &[])?;
    write_encrypted(target, &plain, &key, keys, EncryptionRules::sops_default(), None)?;
    ui::note(&format!(
        "encrypted {} to {} recipient(s)",
        target.display(),
        recipients.len()
    ));
    Ok(ExitCode::SUCCESS)
}

fn decrypt(file: &Path, identity: &IdentityArgs) -> anyhow::Result<ExitCode> {
    let vault = VaultFile::read(file)?;
    let (_, tree) = vault.open(&mut chain(identity))?;
    let text =
        Zeroizing::new(
            sops::write(&tree, None, vault.encrypted.format).map_err(|source| VaultError::Format {
                path: file.to_path_buf(),
                source,
            })?,
        );
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn get(file: &Path, key: &str, identity: &IdentityArgs) -> anyhow::Result<ExitCode> {
    let path = key_path(key)?;
    let vault = VaultFile::read(file)?;
    let (_, tree) = vault.open(&mut chain(identity))?;
    let value = tree.get(&path).ok_or_else(|| {
        anyhow!(
            "{}: no value at `{key}` (see `kdeploy vault keys {}`)",
            file.display(),
            file.display()
        )
    })?;
    let text = Zeroizing::new(match value {
        Tree::Leaf(Leaf::Str(s)) => s.clone(),
        other => format!("{}\n", other.to_json()),
    });
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Binds (or with no repositories, unbinds) each file: only its metadata changes, under its data key.
fn bind(files: &[PathBuf], repositories: &[String], identity: &IdentityArgs) -> anyhow::Result<ExitCode> {
    if let Some(bad) = repositories.iter().find(|r| r.split_whitespace().count() != 1) {
        anyhow::bail!("--repo `{bad}` is not one URL");
    }
    let mut identities = chain(identity);
    for file in files {
        let mut vault = VaultFile::read(file)?;
        let (key, _) = vault.open(&mut identities)?;
        sops::bind(&mut vault.encrypted.metadata, &key, repositories);
        let format_error = |source| VaultError::Format {
            path: file.to_path_buf(),
            source,
        };
        let text = sops::write(
            &vault.encrypted.tree,
            Some(&vault.encrypted.metadata),
            vault.encrypted.format,
        )
        .map_err(format_error)?;
        vault_mod::write_atomically(file, text.as_bytes())?;
        crate::ui::note(&match repositories {
            [] => format!("{}: bound to no repository", file.display()),
            _ => format!("{}: bound to {}", file.display(), repositories.join(", ")),
        });
    }
    Ok(ExitCode::SUCCESS)
}

fn keys(file: &Path) -> anyhow::Result<ExitCode> {
    let vault = VaultFile::read(file)?;
    let mut text = String::new();
    for path in vault.encrypted.tree.leaf_paths() {
        text.push_str(&path);
        text.push('\n');
    }
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a new value: stdin when it is not a terminal, else a prompt without echo.
fn read_value(key: &str) -> anyhow::Result<Zeroizing<String>> {
    if ui::stdin_is_terminal() {
        let first = ui::prompt_hidden(&format!("value for {key}: "))?;
        let second = ui::prompt_hidden("again: ")?;
        if *first != *second {
            bail!("the two values differ; nothing was changed");
        }
        Ok(first)
    } else {
        let mut value = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut value)
            .context("cannot read the value from stdin")?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        Ok(value)
    }
}

fn parse_yaml_value(text: &str) -> anyhow::Result<Tree> {
    let mut documents = yaml::parse_stream_in(text, Schema::Sops, &mut |_| Ok(None))
        .map_err(|e| anyhow!("the value is not valid YAML: {}", e.message))?;
    if documents.len() != 1 {
        bail!("the value must be one YAML document");
    }
    let json = documents.remove(0).root.into_json().map_err(|e| anyhow!("{e}"))?;
    Tree::from_json(&json).map_err(|e| anyhow!("{e}"))
}

fn set(
    file: &Path,
    key: &str,
    as_yaml: bool,
    identity: &IdentityArgs,
    project_args: &ProjectArgs,
) -> anyhow::Result<ExitCode> {
    let path = key_path(key)?;
    let value = read_value(key)?;
    let new_value = if as_yaml {
        parse_yaml_value(&value)?
    } else {
        Tree::Leaf(Leaf::Str(value.to_string()))
    };
    let project = load_project(project_args)?;
    if file.exists() {
        let vault = VaultFile::read(file)?;
        vault.check_rewritable()?;
        let mut identities = chain(identity);
        let (data_key, old_plain) = vault.open(&mut identities)?;
        let mut plain = old_plain.clone();
        plain.set(&path, new_value).map_err(|source| VaultError::Format {
            path: file.to_path_buf(),
            source,
        })?;
        let recipients = vault.recipients();
        vault.save(&data_key, &plain, &old_plain, &recipients, identities.services())?;
    } else {
        let mut plain = Tree::Map(Vec::new());
        plain.set(&path, new_value).map_err(|e| anyhow!("{e}"))?;
        let recipients = recipients_for(&project, file)?;
        let data_key = DataKey::generate().map_err(|e| anyhow!("cannot generate a data key: {e}"))?;
        let keys = wrap_keys(file, chain(identity).services(), &data_key, &recipients, &[])?;
        write_encrypted(file, &plain, &data_key, keys, EncryptionRules::sops_default(), None)?;
        ui::note(&format!(
            "created {} encrypted to {} recipient(s)",
            file.display(),
            recipients.len()
        ));
    }
    ui::note(&format!("set {key} in {}", file.display()));
    Ok(ExitCode::SUCCESS)
}

/// A private folder for plaintext: on memory-backed storage where there is some, 0700, emptied and
/// removed when dropped (on errors too).
struct PrivateDir {
    dir: Option<tempfile::TempDir>,
}

impl PrivateDir {
    fn new() -> anyhow::Result<PrivateDir> {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("kdeploy-edit-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&base)?;
        Ok(PrivateDir { dir: Some(dir) })
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until dropped").path()
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if let Ok(entries) = std::fs::read_dir(dir.path()) {
                for entry in entries.flatten() {
                    if let Ok(len) = entry.metadata().map(|m| m.len()) {
                        let _ = std::fs::write(entry.path(), vec![0u8; len as usize]);
                    }
                }
            }
            let _ = dir.close();
        }
    }
}

fn edit(file: &Path, identity: &IdentityArgs, project_args: &ProjectArgs) -> anyhow::Result<ExitCode> {
    let format = Format::of(file);
    let existing = if file.exists() {
        Some(VaultFile::read(file)?)
    } else {
        None
    };
    if let Some(vault) = &existing {
        vault.check_rewritable()?;
    }
    let mut identities = chain(identity);
    let (data_key, old_plain) = match &existing {
        Some(vault) => {
            let (key, tree) = vault.open(&mut identities)?;
            (key, Some(tree))
        }
        None => (
            DataKey::generate().map_err(|e| anyhow!("cannot generate a data key: {e}"))?,
            None,
        ),
    };
    let original = Zeroizing::new(match &old_plain {
        Some(tree) => sops::write(tree, None, format).map_err(|e| anyhow!("{e}"))?,
        None => String::new(),
    });

    // Signals while the editor runs must not kill kdeploy before it removes the plaintext.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut signal_ids = Vec::new();
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_ids.push(signal_hook::flag::register(signal, interrupted.clone())?);
    }
    let result = edit_loop(file, format, &original, &interrupted);
    for id in signal_ids {
        signal_hook::low_level::unregister(id);
    }
    let Some(edited) = result? else {
        ui::note(&format!("{}: no changes", file.display()));
        return Ok(ExitCode::SUCCESS);
    };
    match (&existing, &old_plain) {
        (Some(vault), Some(old_plain)) => {
            vault.save(
                &data_key,
                &edited,
                old_plain,
                &vault.recipients(),
                identities.services(),
            )?;
        }
        _ => {
            let recipients = recipients_for(&load_project(project_args)?, file)?;
            let keys = wrap_keys(file, identities.services(), &data_key, &recipients, &[])?;
            write_encrypted(file, &edited, &data_key, keys, EncryptionRules::sops_default(), None)?;
        }
    }
    ui::note(&format!("{}: saved", file.display()));
    Ok(ExitCode::SUCCESS)
}

/// Runs the editor until the result parses (or the user gives up); `None` when nothing changed.
fn edit_loop(
    file: &Path,
    format: Format,
    original: &str,
    interrupted: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<Option<Tree>> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = PrivateDir::new()?;
    let name = file
        .file_name()
        .map_or_else(|| "vault.yaml".into(), |n| n.to_os_string());
    let temp = dir.path().join(name);
    {
        use std::io::Write;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        out.write_all(original.as_bytes())?;
    }
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    loop {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("kdeploy-editor")
            .arg(&temp)
            .status()
            .with_context(|| format!("cannot start the editor `{editor}`"))?;
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            bail!("interrupted; nothing was changed and the temporary plaintext was removed");
        }
        if !status.success() {
            bail!("the editor `{editor}` exited with {status}; nothing was changed");
        }
        let edited = Zeroizing::new(std::fs::read_to_string(&temp)?);
        if *edited == original {
            return Ok(None);
        }
        match sops::parse_plaintext(&edited, format) {
            Ok(tree) => return Ok(Some(tree)),
            Err(e) if ui::stdin_is_terminal() && ui::stderr_is_terminal() => {
                ui::warn(&format!("the edited file does not parse: {e}"));
                if !ui::confirm("edit it again?", true)? {
                    bail!("nothing was changed");
                }
            }
            Err(e) => bail!("the edited file does not parse: {e}; nothing was changed"),
        }
    }
}

fn recipients(command: &RecipientsCommand) -> anyhow::Result<ExitCode> {
    match command {
        RecipientsCommand::List { project } => {
            let project = load_project(project)?;
            let configured = project_recipients(&project);
            let mut text = String::new();
            for recipient in &configured {
                text.push_str(&format!("{recipient}\n"));
            }
            if let Some(project) = &project {
                for file in project.all_secrets_files().iter().filter(|f| f.exists()) {
                    let vault = VaultFile::read(file)?;
                    let configured = configured_recipients(&configured, file)?;
                    match vault_mod::check_recipients(&vault, &configured) {
                        Ok(None) => ui::note(&format!("{}: up to date", file.display())),
                        Ok(Some(stale)) => ui::warn(&stale),
                        Err(e) => ui::warn(&e.to_string()),
                    }
                }
            }
            super::write_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        RecipientsCommand::Add {
            recipient,
            identity,
            project,
        } => change_recipients(recipient, true, identity, project),
        RecipientsCommand::Remove {
            recipient,
            identity,
            project,
        } => change_recipients(recipient, false, identity, project),
    }
}

fn change_recipients(
    recipient: &Recipient,
    add: bool,
    identity: &IdentityArgs,
    project_args: &ProjectArgs,
) -> anyhow::Result<ExitCode> {
    let project = load_project(project_args)?
        .ok_or_else(|| anyhow!("no kdeploy.yaml here; recipients are kept in the project file (or pass --project)"))?;
    let mut recipients = project.config.recipients.clone();
    if recipients.is_empty()
        && project
            .all_secrets_files()
            .iter()
            .any(|f| !configured_recipients(&[], f).unwrap_or_default().is_empty())
    {
        bail!(
            "this project takes its recipients from .sops.yaml; edit its creation rules (`age`, `hc_vault_transit_uri`, `kms`), then run `kdeploy vault updatekeys`"
        );
    }
    if add {
        if recipients.contains(recipient) {
            ui::note(&format!("{recipient} is already a recipient"));
            return Ok(ExitCode::SUCCESS);
        }
        recipients.push(recipient.clone());
    } else {
        if !recipients.contains(recipient) {
            bail!("{recipient} is not one of the project's recipients");
        }
        recipients.retain(|r| r != recipient);
        if recipients.is_empty() {
            bail!("refusing to remove the last recipient: nobody could open the vault files any more");
        }
    }
    let project = project.write_recipients(&recipients)?;
    ui::note(&format!("{}: recipients updated", project.file.display()));
    if project.all_secrets_files().iter().any(|f| f.exists()) {
        let project_args = ProjectArgs {
            project: Some(project.file.clone()),
        };
        rewrap(&[], identity, &project_args, false)?;
    } else {
        ui::note("no vault files yet; new ones will be encrypted to these recipients");
    }
    if !add {
        ui::warn(&format!(
            "{recipient} can no longer open the new versions of these files, but still has the old ones from git history: rotate the secrets they could read at their source (database passwords, API tokens), then `kdeploy vault set` the new values and run `kdeploy vault rotate`"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `updatekeys` (rotate_data_key false): the same data key wrapped for the configured recipients, values
/// untouched. `rotate`: a new data key and every value re-encrypted.
fn rewrap(
    files: &[PathBuf],
    identity: &IdentityArgs,
    project_args: &ProjectArgs,
    rotate_data_key: bool,
) -> anyhow::Result<ExitCode> {
    let project = load_project(project_args)?;
    let files: Vec<PathBuf> = if files.is_empty() {
        project
            .as_ref()
            .map(Project::all_secrets_files)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.exists())
            .collect()
    } else {
        files.to_vec()
    };
    if files.is_empty() {
        bail!("no vault files: name them, or list them under `secrets:` in kdeploy.yaml");
    }
    let mut identities = chain(identity);
    for file in &files {
        let vault = VaultFile::read(file)?;
        vault.check_rewritable()?;
        let recipients = recipients_for(&project, file)?;
        let (data_key, plain) = vault.open(&mut identities)?;
        if rotate_data_key {
            let new_key = DataKey::generate().map_err(|e| anyhow!("cannot generate a data key: {e}"))?;
            let keys = wrap_keys(file, identities.services(), &new_key, &recipients, &[])?;
            write_encrypted(
                file,
                &plain,
                &new_key,
                keys,
                vault.encrypted.metadata.rules.clone(),
                None,
            )?;
            ui::note(&format!(
                "{}: new data key, {} value(s) re-encrypted, {} recipient(s)",
                file.display(),
                plain.leaf_paths().len(),
                recipients.len()
            ));
        } else {
            vault.save(&data_key, &plain, &plain, &recipients, identities.services())?;
            ui::note(&format!(
                "{}: data key wrapped for {} recipient(s)",
                file.display(),
                recipients.len()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
