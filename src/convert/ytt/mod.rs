//! `kdeploy convert ytt`: a ytt configuration read as ytt reads it, written out as a kdeploy project
//! that renders the same objects, or refused construct by construct.
//!
//! The stages: [`inputs`] reads the `-f` files as ytt does, [`lines`] classifies each line of a
//! YAML file, [`starlark`] parses the code on them, [`template`] finds each file's loads, functions
//! and constants and translates its lines, with [`translate`] turning each expression into Tera;
//! [`values`] works out the data values and their schema, and [`overlay`] turns overlays into patches. This module resolves `load()`s between the
//! files and assembles the project in six steps; writing it and checking that it renders is the
//! command's.

pub mod inputs;
pub mod lines;
pub mod overlay;
pub mod starlark;
pub mod template;
pub mod translate;
pub mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value as Json, json};

use inputs::{FileKind, InputFile, kind_of, read_inputs, resolve_load};
pub use template::Mode;
use template::{Converted, Translator};
use translate::{Binding, Helper, Module, Modules, Scope};

/// What to convert.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-f` files and folders, in order.
    pub files: Vec<PathBuf>,
    /// The data values the flags of `convert` gave, merged as kdeploy merges them (ytt's meaning).
    pub flag_values: Option<Json>,
    pub mode: Mode,
    /// The project's name in kdeploy.yaml.
    pub name: String,
    /// Targets: a name and the data values files ytt would be given after the configuration for it
    /// (`ytt -f config/ -f envs/prod.yml`), in order.
    pub targets: Vec<(String, Vec<PathBuf>)>,
}

/// A refused construct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub file: String,
    pub line: usize,
    pub why: String,
}

/// What each input file became.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub file: String,
    pub became: String,
    pub constructs: BTreeMap<&'static str, usize>,
}

/// The project to write, and the report.
#[derive(Debug, Default)]
pub struct Conversion {
    /// (path inside the output folder, content)
    pub files: Vec<(PathBuf, String)>,
    pub report: Vec<FileReport>,
    pub refusals: Vec<Refusal>,
}

/// Why nothing could be read.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {message}")]
    Input { path: String, message: String },
}

/// A component name for `def` `name` of file `file`.
fn component_name(file: &str, name: &str) -> String {
    let stem: String = file
        .trim_end_matches(".lib.yml")
        .trim_end_matches(".lib.yaml")
        .trim_end_matches(".yml")
        .trim_end_matches(".yaml")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ytt_{stem}_{name}")
}

/// Everything known of one file while converting.
struct Prepared<'a> {
    lines: Vec<lines::Line<'a>>,
    outline: template::Outline,
}

/// Converts the configuration; refusals are in the result, errors only for unreadable input.
pub fn convert(options: &Options) -> Result<Conversion, ConvertError> {
    let mut report = Vec::new();
    let inputs = read_inputs(&options.files, &mut report)?;
    let mut targets = Vec::new();
    for (name, paths) in &options.targets {
        targets.push((name.clone(), read_inputs(paths, &mut report)?));
    }
    let mut conversion = convert_inputs(inputs, targets, options);
    report.append(&mut conversion.report);
    conversion.report = report;
    Ok(conversion)
}

/// Converts files given as (name as ytt names it, text), without reading anything: what the
/// fuzz target drives.
pub fn convert_texts(files: Vec<(String, String)>, options: &Options) -> Conversion {
    let inputs = files
        .into_iter()
        .map(|(name, text)| InputFile {
            kind: kind_of(&name),
            name,
            text,
        })
        .collect();
    convert_inputs(inputs, Vec::new(), options)
}

fn convert_inputs(inputs: Vec<InputFile>, targets: Vec<(String, Vec<InputFile>)>, options: &Options) -> Conversion {
    let mut conversion = Conversion::default();
    let index: BTreeMap<&str, usize> = inputs.iter().enumerate().map(|(i, f)| (f.name.as_str(), i)).collect();
    let mut refusals: Vec<Refusal> = Vec::new();

    // 1. Each file's lines and outline (star modules: their statements).
    let mut prepared: Vec<Option<Prepared<'_>>> = Vec::new();
    let mut stars: Vec<Option<starlark::StarModule>> = Vec::new();
    for file in &inputs {
        match file.kind {
            FileKind::Template | FileKind::Library => {
                let lines = lines::classify(&file.text);
                let outline = template::outline(&lines);
                for (line, why) in &outline.refusals {
                    push(&mut refusals, &file.name, *line, why.clone());
                }
                prepared.push(Some(Prepared { lines, outline }));
                stars.push(None);
            }
            FileKind::Star => {
                prepared.push(None);
                match starlark::parse_star(&file.text) {
                    Ok(m) => stars.push(Some(m)),
                    Err((line, e)) => {
                        push(&mut refusals, &file.name, line, e.message);
                        stars.push(None);
                    }
                }
            }
            FileKind::Other => {
                prepared.push(None);
                stars.push(None);
            }
        }
    }

    // 2. The names of every module, loaded ones first.
    let mut modules = Modules {
        modules: vec![Module::default(); inputs.len()],
    };
    let mut state = vec![0u8; inputs.len()]; // 0 new, 1 in progress, 2 done
    let mut components: Vec<(usize, usize)> = Vec::new(); // (file, def index)
    for i in 0..inputs.len() {
        register(
            i,
            &inputs,
            &index,
            &prepared,
            &stars,
            &mut modules,
            &mut state,
            &mut components,
            &mut |file: &str, line: usize, why: String| push(&mut refusals, file, line, why),
        );
    }

    // 3. Templates, in ytt's order.
    let mut values_documents = Vec::new();
    let mut schema_documents = Vec::new();
    let mut patches = Vec::new();
    let mut outputs: Vec<(String, String)> = Vec::new();
    for (i, file) in inputs.iter().enumerate() {
        let mut report = FileReport {
            file: file.name.clone(),
            became: String::new(),
            constructs: BTreeMap::new(),
        };
        match (file.kind, &prepared[i]) {
            (FileKind::Template, Some(p)) => {
                let mut scope = Scope::new(&modules, i);
                let mut t = Translator::new(&mut scope, options.mode, true);
                t.premarked = refusals
                    .iter()
                    .filter(|r| r.file == file.name)
                    .map(|r| (r.line, r.why.clone()))
                    .collect();
                t.lines(&p.lines, &p.outline.consumed);
                let converted = Converted {
                    template: std::mem::take(&mut t.out),
                    values: std::mem::take(&mut t.values),
                    schemas: std::mem::take(&mut t.schemas),
                    patches: std::mem::take(&mut t.patches),
                    constructs: std::mem::take(&mut t.constructs),
                    refusals: std::mem::take(&mut t.refusals),
                };
                for (line, why) in converted.refusals {
                    push(&mut refusals, &file.name, line, why);
                }
                report.constructs = converted.constructs;
                for load in &p.outline.loads {
                    *report.constructs.entry("load").or_default() += load.2.len();
                }
                let has_template = renders_something(&converted.template);
                let mut became = Vec::new();
                if has_template {
                    let out = format!("templates/{}", file.name);
                    became.push(format!("template {out}"));
                    outputs.push((out, converted.template));
                }
                if !converted.values.is_empty() {
                    became.push("data values (in values.yaml)".into());
                }
                if !converted.schemas.is_empty() {
                    became.push("data values schema (defaults in values.yaml, types in values.schema.json)".into());
                }
                if !converted.patches.is_empty() {
                    became.push("overlays (patches in kdeploy.yaml)".into());
                }
                if became.is_empty() {
                    became.push("nothing to render".into());
                }
                report.became = became.join("; ");
                values_documents.extend(converted.values.into_iter().map(|d| (file.name.clone(), d)));
                patches.extend(converted.patches);
                schema_documents.extend(converted.schemas.into_iter().map(|d| (file.name.clone(), d)));
            }
            (FileKind::Library, Some(_)) => {
                report.became = "library: its functions became components in templates/_ytt_functions.tera".into();
            }
            (FileKind::Star, _) => {
                report.became = "Starlark module: its functions and constants are inlined where they are used".into();
            }
            (FileKind::Other, _) if file.name.ends_with(".txt") => {
                report.became = "left out: ytt writes text files only with --output-files, never to stdout".into();
            }
            _ => {
                report.became = "left out: not a YAML, Starlark or text file, so ytt does not render it".into();
            }
        }
        conversion.report.push(report);
    }

    // 4. Components of every fragment function.
    let partial = component_definitions(
        &inputs,
        &prepared,
        &modules,
        &components,
        options.mode,
        &mut refusals,
        &mut conversion.report,
    );

    // 5. Data values.
    let values = data_values(&schema_documents, &values_documents, &targets, options, &mut refusals);

    // 6. The project.
    if outputs.is_empty() && refusals.is_empty() {
        refusals.push(Refusal {
            file: "(the configuration)".into(),
            line: 0,
            why: "no template renders anything: there is nothing to convert".into(),
        });
    }
    conversion.files = project_files(options, &values, &patches, outputs, &partial);
    refusals.sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
    refusals.dedup();
    conversion.refusals = refusals;
    conversion
}

/// Step 4: every fragment function as a Tera component, for `templates/_ytt_functions.tera`.
fn component_definitions(
    inputs: &[InputFile],
    prepared: &[Option<Prepared<'_>>],
    modules: &Modules,
    components: &[(usize, usize)],
    mode: Mode,
    refusals: &mut Vec<Refusal>,
    report: &mut [FileReport],
) -> String {
    let mut partial = String::new();
    for &(file_index, def_index) in components {
        let p = prepared[file_index].as_ref().expect("a YAML file");
        let def = &p.outline.defs[def_index];
        let Some(Binding::Component { component, params, .. }) =
            modules.modules[file_index].names.get(&def.name).cloned()
        else {
            continue;
        };
        let mut scope = Scope::new(modules, file_index);
        scope.frames.push(Default::default());
        for param in &params {
            scope.bind(&param.name, Binding::Local(translate::Ty::Unknown));
        }
        // Defaults are given by every call (see Translator::component_call).
        let mut signature: Vec<String> = params.iter().map(|p| translate::local_name(&p.name)).collect();
        signature.push("@values".into());
        let body = &p.lines[def.body.clone()];
        let mut t = Translator::new(&mut scope, mode, false);
        t.lines(body, &vec![false; body.len()]);
        for (line, why) in std::mem::take(&mut t.refusals) {
            push(refusals, &inputs[file_index].name, line, why);
        }
        let indent = body
            .iter()
            .filter_map(|l| match &l.kind {
                lines::Kind::Content(c) => Some(c.indent),
                _ => None,
            })
            .min()
            .unwrap_or(0);
        let text = dedent(&t.out, indent);
        partial.push_str(&format!(
            "{{# def {} in {}, line {} #}}\n{{% component {component}({}) %}}\n{text}{{% endcomponent {component} %}}\n\n",
            def.name,
            inputs[file_index].name,
            def.line,
            signature.join(", ")
        ));
        if let Some(report) = report.iter_mut().find(|r| r.file == inputs[file_index].name) {
            *report.constructs.entry("fragment function (component)").or_default() += 1;
        }
    }
    partial
}

/// The data values worked out at conversion: the project's, and each target's complete ones.
struct DataValues {
    defaults: Json,
    declared: Option<values::Declared>,
    targets: Vec<(String, Json)>,
}

/// Step 5: the schema's defaults, every `#@data/values` document in order, each target's files, then
/// the flags; what ytt would refuse is refused.
fn data_values(
    schema_documents: &[(String, template::DataDocument)],
    values_documents: &[(String, template::DataDocument)],
    targets: &[(String, Vec<InputFile>)],
    options: &Options,
    refusals: &mut Vec<Refusal>,
) -> DataValues {
    let mut defaults = json!({});
    let mut declared = None;
    match schema_documents {
        [] => {}
        [(label, document)] => match values::read_schema(label, document) {
            Ok(d) => {
                defaults = d.default.clone();
                declared = Some(d);
            }
            Err((file, line, why)) => push(refusals, &file, line, why),
        },
        [_, (label, document), ..] => push(
            refusals,
            label,
            document.line,
            "a second data values schema document (schema overlays do not convert)".into(),
        ),
    }
    for (n, (label, document)) in values_documents.iter().enumerate() {
        if let Err((file, line, why)) =
            values::overlay_document(&mut defaults, label, document, declared.as_ref(), n == 0)
        {
            push(refusals, &file, line, why);
        }
    }
    // Each target: the configuration's data values, then its own files' documents, as ytt reads
    // `-f config/ -f envs/NAME.yml`; the flags come after both.
    let mut target_values = Vec::new();
    for (name, files) in targets {
        let mut merged = defaults.clone();
        for file in files {
            for (label, document) in target_documents(file, refusals) {
                if let Err((f, line, why)) =
                    values::overlay_document(&mut merged, &label, &document, declared.as_ref(), false)
                {
                    push(refusals, &f, line, why);
                }
            }
        }
        finish_values(
            &mut merged,
            options,
            declared.as_ref(),
            &format!("target {name}"),
            refusals,
        );
        target_values.push((name.clone(), merged));
    }
    finish_values(&mut defaults, options, declared.as_ref(), "data values", refusals);
    // kdeploy merges a target's values file onto the project's: a key the target's files removed
    // would come back.
    for (name, merged) in &target_values {
        if let Some(key) = removed_key(&defaults, merged, "") {
            push(
                refusals,
                &format!("target {name}"),
                0,
                format!(
                    "its data values remove {key}, which kdeploy's target values (merged onto the project's) cannot"
                ),
            );
        }
    }

    DataValues {
        defaults,
        declared,
        targets: target_values,
    }
}

/// Step 6: kdeploy.yaml, the values files and schema, and the templates in ytt's order.
fn project_files(
    options: &Options,
    values: &DataValues,
    patches: &[Json],
    outputs: Vec<(String, String)>,
    partial: &str,
) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut project = format!(
        "# Converted from ytt by `kdeploy convert ytt`.\nname: {}\ntemplates: [templates]\nvalues: [values.yaml]\n",
        crate::yaml::emit::to_yaml(&options.name)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default()
    );
    if values.declared.is_some() {
        project.push_str("values_schema: values.schema.json\n");
    }
    if !values.targets.is_empty() {
        project.push_str("# Each target's values are complete: the configuration's with the target's files overlaid as ytt does.\ntargets:\n");
        for (name, _) in &values.targets {
            let key = crate::yaml::emit::to_yaml(name)
                .map(|s| s.trim_end().to_owned())
                .unwrap_or_default();
            project.push_str(&format!("  {key}:\n    values: [values/{name}.yaml]\n"));
        }
    }
    if !patches.is_empty() {
        let text = crate::yaml::emit::json_to_yaml(&json!({ "patches": patches })).unwrap_or_default();
        project.push_str("# ytt's overlays, in their order: applied after every template has rendered.\n");
        project.push_str(&text);
        if !text.ends_with('\n') {
            project.push('\n');
        }
    }
    project.push_str(
        "# ytt adds no checksum annotations to pods; kdeploy would (docs/deploying.md), which changes the objects.\nconfig_checksums: false\n",
    );
    files.push(("kdeploy.yaml".into(), project));
    let values_text = if values.defaults.as_object().is_some_and(|m| m.is_empty()) {
        "{}\n".to_owned()
    } else {
        let mut text = crate::yaml::emit::json_to_yaml(&values.defaults).unwrap_or_else(|_| "{}".into());
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    };
    files.push((
        "values.yaml".into(),
        format!("# The data values of the ytt configuration, merged as ytt merges them.\n{values_text}"),
    ));
    for (name, merged) in &values.targets {
        let mut text = crate::yaml::emit::json_to_yaml(merged).unwrap_or_else(|_| "{}".into());
        if !text.ends_with('\n') {
            text.push('\n');
        }
        files.push((
            PathBuf::from(format!("values/{name}.yaml")),
            format!("# The data values of target {name}, merged as ytt merges them.\n{text}"),
        ));
    }
    if let Some(d) = &values.declared {
        let schema = serde_json::to_string_pretty(&values::json_schema(d)).expect("JSON");
        files.push(("values.schema.json".into(), format!("{schema}\n")));
    }
    // kdeploy reads templates in name order; ytt's order is the order of its -f arguments.
    let ordered = outputs.windows(2).all(|w| w[0].0 < w[1].0);
    let width = outputs.len().to_string().len();
    for (n, (path, text)) in outputs.into_iter().enumerate() {
        let path = if ordered {
            PathBuf::from(path)
        } else {
            let file = path.trim_start_matches("templates/").replace('/', "-");
            PathBuf::from(format!("templates/{:0width$}-{file}", n + 1))
        };
        files.push((path, text));
    }
    if !partial.is_empty() {
        files.push((
            "templates/_ytt_functions.tera".into(),
            format!("{{# The fragment functions (def) of the ytt configuration, as components. #}}\n{partial}"),
        ));
    }
    files
}

/// Whether a translated file holds anything but blank lines, comments and document starts.
fn renders_something(template: &str) -> bool {
    template.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && l != "---" && !l.starts_with('#')
    })
}

fn dedent(text: &str, indent: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let spaces = line.len() - line.trim_start_matches(' ').len();
        out.push_str(&line[spaces.min(indent)..]);
        out.push('\n');
    }
    out
}

/// The flags given to `convert`, then the schema's defaults and types.
fn finish_values(
    values: &mut Json,
    options: &Options,
    declared: Option<&values::Declared>,
    label: &str,
    refusals: &mut Vec<Refusal>,
) {
    if let Some(flags) = &options.flag_values {
        values::merge_flags(values, flags);
        if let Some(d) = declared {
            values::fill_defaults(values, d);
        }
    }
    if let Some(d) = declared
        && let Err(why) = values::check(values, d, "")
    {
        push(refusals, label, 0, format!("{why} (ytt refuses it)"));
    }
}

/// A key of `base` that `target` lacks, if any.
fn removed_key(base: &Json, target: &Json, path: &str) -> Option<String> {
    let (Json::Object(b), Json::Object(t)) = (base, target) else {
        return None;
    };
    for (key, value) in b {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match t.get(key) {
            None => return Some(here),
            Some(other) => {
                if let Some(found) = removed_key(value, other, &here) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// The data values documents of a target's file; anything else in it is refused.
fn target_documents(file: &InputFile, refusals: &mut Vec<Refusal>) -> Vec<(String, template::DataDocument)> {
    if !matches!(file.kind, FileKind::Template) {
        push(
            refusals,
            &file.name,
            0,
            "a target's file that is not a YAML data values file".into(),
        );
        return Vec::new();
    }
    let lines = lines::classify(&file.text);
    let outline = template::outline(&lines);
    for (line, why) in &outline.refusals {
        push(refusals, &file.name, *line, why.clone());
    }
    for (line, module, _) in &outline.loads {
        if module != "@ytt:overlay" {
            push(
                refusals,
                &file.name,
                *line,
                format!("load of {module} in a target's data values file"),
            );
        }
    }
    let modules = Modules::default();
    let mut scope = Scope::new(&modules, usize::MAX);
    let mut t = Translator::new(&mut scope, Mode::Strict, true);
    t.lines(&lines, &outline.consumed);
    for (line, why) in std::mem::take(&mut t.refusals) {
        push(refusals, &file.name, line, why);
    }
    let has_template = renders_something(&t.out);
    if has_template || !t.schemas.is_empty() || !t.patches.is_empty() {
        push(
            refusals,
            &file.name,
            0,
            "a target's file with templates, a schema or overlays (only #@data/values documents)".into(),
        );
    }
    let name = file.name.clone();
    t.values.into_iter().map(|d| (name.clone(), d)).collect()
}

/// Records a refusal.
fn push(refusals: &mut Vec<Refusal>, file: &str, line: usize, why: String) {
    refusals.push(Refusal {
        file: file.to_owned(),
        line,
        why,
    });
}

/// A `def` of a `.star` module: line, name, parameters, body.
type StarDef = (usize, String, Vec<starlark::Param>, Vec<(usize, starlark::Stmt)>);

#[allow(clippy::too_many_arguments)]
fn register(
    i: usize,
    inputs: &[InputFile],
    index: &BTreeMap<&str, usize>,
    prepared: &[Option<Prepared<'_>>],
    stars: &[Option<starlark::StarModule>],
    modules: &mut Modules,
    state: &mut [u8],
    components: &mut Vec<(usize, usize)>,
    refuse: &mut dyn FnMut(&str, usize, String),
) {
    if state[i] != 0 {
        return;
    }
    state[i] = 1;
    let file = &inputs[i];
    // (line, module, names) of every load, then defs and constants.
    let mut loads: Vec<template::Load> = Vec::new();
    let mut star_defs: Vec<StarDef> = Vec::new();
    let mut constants: Vec<(usize, String, starlark::Expr)> = Vec::new();
    if let Some(p) = &prepared[i] {
        loads = p.outline.loads.clone();
        constants = p.outline.constants.clone();
    }
    if let Some(m) = &stars[i] {
        for (line, item) in &m.statements {
            match item {
                starlark::StarItem::Stmt(starlark::Stmt::Load { module, names }) => {
                    loads.push((*line, module.clone(), names.clone()));
                }
                starlark::StarItem::Stmt(starlark::Stmt::Assign { target, value }) => {
                    constants.push((*line, target.clone(), value.clone()));
                }
                starlark::StarItem::Stmt(starlark::Stmt::Pass) => {}
                starlark::StarItem::Stmt(_) => refuse(
                    &file.name,
                    *line,
                    "a statement at the top of a module (only load, assignments and def convert)".into(),
                ),
                starlark::StarItem::Def { name, params, body } => {
                    star_defs.push((*line, name.clone(), params.clone(), body.clone()));
                }
            }
        }
    }
    let mut names: std::collections::HashMap<String, Binding> = Default::default();
    for (line, module, symbols) in loads {
        if let Some(helper) = Helper::from_module(&module) {
            for (local, exported) in symbols {
                let expected = module.trim_start_matches("@ytt:");
                if exported != expected {
                    refuse(
                        &file.name,
                        line,
                        format!("load of {exported} from {module}, which exports {expected}"),
                    );
                    continue;
                }
                if helper == Helper::Other {
                    refuse(
                        &file.name,
                        line,
                        format!("the module {module} (not among the helper modules that convert)"),
                    );
                }
                names.insert(local, Binding::Helper(helper, module.clone()));
            }
            continue;
        }
        if module.starts_with('@') {
            refuse(
                &file.name,
                line,
                format!("load of {module} (ytt libraries do not convert)"),
            );
            continue;
        }
        let Some(target) = resolve_load(&file.name, &module).and_then(|n| index.get(n.as_str()).copied()) else {
            refuse(
                &file.name,
                line,
                format!("load of {module}, which is not among the -f files"),
            );
            continue;
        };
        if state[target] == 1 {
            refuse(
                &file.name,
                line,
                format!("load of {module}, which loads this file back"),
            );
            continue;
        }
        register(
            target, inputs, index, prepared, stars, modules, state, components, refuse,
        );
        for (local, exported) in symbols {
            match modules.modules[target].names.get(&exported) {
                Some(b) if !matches!(b, Binding::Helper(..)) => {
                    names.insert(local, b.clone());
                }
                _ => refuse(
                    &file.name,
                    line,
                    format!("load of {exported} from {module}, which does not define it"),
                ),
            }
        }
    }
    if let Some(p) = &prepared[i] {
        for (d, def) in p.outline.defs.iter().enumerate() {
            if def.fragment {
                names.insert(
                    def.name.clone(),
                    Binding::Component {
                        component: component_name(&file.name, &def.name),
                        params: def.params.clone(),
                        module: i,
                    },
                );
                components.push((i, d));
            } else {
                let mut body = Vec::new();
                for line in &p.lines[def.body.clone()] {
                    match &line.kind {
                        lines::Kind::Code(code) => match starlark::parse_stmt(code) {
                            Ok(s) => body.push((line.number, s)),
                            Err(e) => refuse(&file.name, line.number, e.message),
                        },
                        lines::Kind::Blank | lines::Kind::YttComment | lines::Kind::Comment => {}
                        _ => refuse(&file.name, line.number, "this line in a function".into()),
                    }
                }
                match template::fold_value_function(&body) {
                    Ok(expr) => {
                        names.insert(
                            def.name.clone(),
                            Binding::Inline {
                                params: def.params.clone(),
                                body: expr,
                                module: i,
                            },
                        );
                    }
                    Err((line, why)) => refuse(&file.name, line, why),
                }
            }
        }
    }
    for (line, name, params, body) in star_defs {
        match template::fold_value_function(&body) {
            Ok(expr) => {
                names.insert(
                    name,
                    Binding::Inline {
                        params,
                        body: expr,
                        module: i,
                    },
                );
            }
            Err((l, why)) => refuse(&file.name, l.max(line), why),
        }
    }
    for (_, name, value) in constants {
        names.insert(name, Binding::Const { value, module: i });
    }
    modules.modules[i].names = names;
    state[i] = 2;
}
