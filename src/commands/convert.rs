//! `kdeploy convert ytt`: convert, check that the result renders, then write it in one step (a
//! temporary folder renamed into place), or write nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;

use super::{EXIT_CHANGES, EXIT_ERROR, Inputs};
use crate::cli::{ConvertCommand, ConvertReport, ConvertYttArgs, InputArgs};
use crate::convert::ytt::{self, Conversion, Mode, Options, Refusal};
use crate::values::load_values;

pub fn run(command: &ConvertCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConvertCommand::Ytt(args) => ytt_command(args),
    }
}

fn ytt_command(args: &ConvertYttArgs) -> anyhow::Result<ExitCode> {
    let out = &args.out;
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("{}: not a folder kdeploy can write into", out.display()))?
            .next()
            .is_none();
        if !empty {
            anyhow::bail!(
                "{}: the folder exists and is not empty (convert writes a new project)",
                out.display()
            );
        }
    }
    let flags = super::inputs::value_flags(&args.data_values);
    let given = !(flags.files.is_empty()
        && flags.env_prefixes.is_empty()
        && flags.env_yaml_prefixes.is_empty()
        && flags.strings.is_empty()
        && flags.yamls.is_empty()
        && flags.file_contents.is_empty());
    let flag_values = if given {
        let process_env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        Some(load_values(&flags, &process_env)?.to_json()?)
    } else {
        None
    };
    let name = args.name.clone().unwrap_or_else(|| {
        absolute(out)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "converted".into())
    });
    let mut targets: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for spec in &args.targets {
        let Some((target, path)) = spec.split_once('=') else {
            anyhow::bail!("--target {spec}: expected NAME=PATH");
        };
        let valid = target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && target.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            anyhow::bail!("--target {spec}: a target's name is letters, digits, - and _ (it names a values file)");
        }
        match targets.iter_mut().find(|(n, _)| n == target) {
            Some((_, paths)) => paths.push(PathBuf::from(path)),
            None => targets.push((target.to_owned(), vec![PathBuf::from(path)])),
        }
    }
    let options = Options {
        targets,
        files: args.files.clone(),
        flag_values,
        mode: if args.partial { Mode::Partial } else { Mode::Strict },
        name,
    };
    let mut conversion = ytt::convert(&options)?;

    if !conversion.refusals.is_empty() && !args.partial {
        print_report(args, &conversion, false)?;
        return Ok(refuse_exit(conversion.refusals.len()));
    }
    // Written beside the destination, then renamed into place in one step.
    let parent = absolute(out)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&parent).with_context(|| format!("{}: cannot create it", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".kdeploy-convert-")
        .tempdir_in(&parent)
        .with_context(|| format!("{}: cannot write there", parent.display()))?;
    write_files(staging.path(), &conversion)?;
    let existed = out.exists();
    if existed {
        std::fs::remove_dir(out).with_context(|| format!("{}: cannot replace it", out.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, out).with_context(|| format!("{}: cannot move the project there", out.display()))?;

    // Rendered once where it now stands, so its warnings name its own files. A template Tera cannot
    // read is a conversion gone wrong, and takes the project back out; a render that stops on a
    // missing value only means the configuration needs data values, as ytt does.
    let mut note = None;
    if let Err(e) = renders(out) {
        let shown = format!("{e:#}");
        if shown.contains("template syntax error") {
            conversion.refusals.push(Refusal {
                file: "(the converted project)".into(),
                line: 0,
                why: format!("it is not a valid kdeploy template: {shown}"),
            });
            if !args.partial {
                std::fs::remove_dir_all(out).with_context(|| format!("{}: cannot remove it", out.display()))?;
                if existed {
                    std::fs::create_dir(out).with_context(|| format!("{}: cannot restore it", out.display()))?;
                }
                print_report(args, &conversion, false)?;
                return Ok(refuse_exit(conversion.refusals.len()));
            }
        } else {
            note = Some(shown);
        }
    }
    let refused = !conversion.refusals.is_empty();
    print_report(args, &conversion, true)?;
    if let Some(note) = note {
        crate::ui::note(&format!(
            "the converted project does not render with the data values it has (ytt would need them too): {note}"
        ));
    }
    if !refused {
        return Ok(ExitCode::SUCCESS);
    }
    let n = conversion.refusals.len();
    crate::ui::warn(&format!(
        "{n} construct{} could not be converted exactly; each is marked with a TODO(ytt) comment in {}",
        if n == 1 { "" } else { "s" },
        out.display()
    ));
    Ok(ExitCode::from(EXIT_CHANGES))
}

/// Nothing was written: says so, exit 2.
fn refuse_exit(n: usize) -> ExitCode {
    eprintln!(
        "error: {n} construct{} cannot be converted exactly, so nothing was written (--partial writes the rest, marked)",
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_ERROR)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn write_files(dir: &Path, conversion: &Conversion) -> anyhow::Result<()> {
    for (path, text) in &conversion.files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create it", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("{}: cannot write it", target.display()))?;
    }
    Ok(())
}

/// Renders the converted project as `kdeploy render` would (validation aside: that checks the
/// objects, which are ytt's, not the conversion).
fn renders(dir: &Path) -> anyhow::Result<()> {
    let mut input = InputArgs {
        project: Some(dir.join("kdeploy.yaml")),
        ..Default::default()
    };
    input.validation.no_validate = true;
    let rendered = Inputs::gather(&input)?.render()?;
    drop(rendered);
    Ok(())
}

fn print_report(args: &ConvertYttArgs, conversion: &Conversion, written: bool) -> anyhow::Result<()> {
    if args.output == ConvertReport::Json {
        let report = json!({
            "files": conversion.report.iter().map(|f| json!({
                "file": f.file,
                "became": f.became,
                "constructs": f.constructs,
            })).collect::<Vec<_>>(),
            "refusals": conversion.refusals.iter().map(|r| json!({
                "file": r.file,
                "line": r.line,
                "why": r.why,
            })).collect::<Vec<_>>(),
            "written": written,
            "out": args.out,
        });
        return super::write_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    }
    let mut text = String::new();
    for file in &conversion.report {
        let constructs: Vec<String> = file.constructs.iter().map(|(what, n)| format!("{what}: {n}")).collect();
        text.push_str(&format!("{}: {}", file.file, file.became));
        if !constructs.is_empty() {
            text.push_str(&format!(" ({})", constructs.join(", ")));
        }
        text.push('\n');
    }
    if !conversion.refusals.is_empty() {
        text.push_str(&format!("\nrefused ({}):\n", conversion.refusals.len()));
        for r in &conversion.refusals {
            if r.line == 0 {
                text.push_str(&format!("  {}: {}\n", r.file, r.why));
            } else {
                text.push_str(&format!("  {}:{}: {}\n", r.file, r.line, r.why));
            }
        }
    }
    if written {
        let files: Vec<String> = conversion.files.iter().map(|(p, _)| p.display().to_string()).collect();
        text.push_str(&format!("\nwrote {}: {}\n", args.out.display(), files.join(", ")));
    }
    super::write_stdout(&text)
}
