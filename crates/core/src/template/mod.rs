//! Rendering templates into YAML documents.
//!
//! Templates are YAML files with Tera expressions and tags (loops, conditionals, includes,
//! components). The context has three names: `values` (merged data values), `env` (environment and env
//! files) and `secrets` (decrypted vault values).
//!
//! Rendering is YAML-aware: every `{{ expression }}` prints a typed placeholder ([`rewrite`],
//! [`placeholder`]); the rendered text is parsed as YAML with the placeholders in it, and only then
//! are the values put into the tree. A value cannot break or reshape the YAML it lands in, and it keeps
//! its type. Errors point at the template as written: file, line, column and the line itself.

mod filters;
mod placeholder;
mod rewrite;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::diagnostic::{SourceError, line_column};
use crate::yaml;

pub use placeholder::value_text;
pub use rewrite::tag_texts;

/// Template files are `.yaml` and `.yml`; a file whose name starts with `_`, and any `.tera` or `.tpl`
/// file, is a partial: available to `include` and components, not rendered on its own.
const TEMPLATE_EXTENSIONS: &[&str] = &["yaml", "yml"];
const PARTIAL_EXTENSIONS: &[&str] = &["tera", "tpl"];
/// Never templates, even inside a template folder.
const PROJECT_FILE: &str = "kdeploy.yaml";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    At(#[from] SourceError),
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no template files (*.yaml, *.yml) found in {}", .0.display())]
    NoTemplates(PathBuf),
    #[error("templates {first} and {second} have the same name `{name}`; include paths must be unique")]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{0}")]
    Tera(String),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
}

/// What templates see.
#[derive(Debug, Default, Clone)]
pub struct TemplateContext {
    pub values: Json,
    pub env: BTreeMap<String, String>,
    pub secrets: Json,
}

/// One document of a source's output: a rendered template's, or a plain file's as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderedDocument {
    /// The template or file it came from.
    pub template: PathBuf,
    /// Its position among the documents that template rendered, from 1.
    pub index: usize,
    /// The line where the document starts: in the rendered output of a template, or in the file.
    pub line: usize,
    /// True when `line` counts lines of rendered output rather than of the file as written.
    pub rendered: bool,
    /// Which of the project's sources produced it (its position in the list).
    pub source: usize,
    /// The namespace its source gives namespaced objects that set none (before the project's).
    pub namespace: Option<String>,
    pub value: Json,
    /// The whole text the document was read from (a file, a program's output), where its fields are
    /// placed when one is wrong; none for templates, which render again for that.
    pub text: Option<std::sync::Arc<str>>,
}

/// The documents of a render, and what looked like a mistake on the way.
#[derive(Debug, Default)]
pub struct Rendered {
    pub documents: Vec<RenderedDocument>,
    pub warnings: Vec<String>,
}

impl Rendered {
    fn extend(&mut self, other: Rendered) {
        self.documents.extend(other.documents);
        self.warnings.extend(other.warnings);
    }
}

/// Words that YAML 1.1 (kubectl) reads as booleans but that look like strings (`y`, `yes`, `on`, `off`,
/// ...), written plainly in a template: almost always a mistake (`app: y`). Returns the meaning.
/// What rendered text's scalars go through: placeholders become their values, and YAML 1.1-only
/// booleans in the template's own text are warned about.
fn scalar_hook<'w>(
    path: &'w Path,
    warnings: &'w mut Vec<String>,
) -> impl FnMut(&yaml::ScalarEvent<'_>) -> Result<Option<yaml::Node>, String> + 'w {
    move |event| {
        if let Some(node) = placeholder::substitute(event)? {
            return Ok(Some(node));
        }
        if let Some(meaning) = yaml_1_1_only_boolean(event) {
            warnings.push(format!(
                "{} (rendered line {}): `{}` is read as the boolean {meaning}, as kubectl reads YAML; quote it if you meant the string",
                path.display(),
                event.mark.line,
                event.text
            ));
        }
        Ok(None)
    }
}

fn yaml_1_1_only_boolean(event: &yaml::ScalarEvent<'_>) -> Option<bool> {
    if event.style != yaml::ScalarStyle::Plain || event.is_key || event.tagged {
        return None;
    }
    match event.text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// How much text the templates of this render have written together, counted as each finishes.
static RENDERED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A template's output, refused once all templates together pass the output budget.
#[derive(Default)]
struct BoundedOutput {
    bytes: Vec<u8>,
    over: bool,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The templates finished before, and this one so far: one shared read, no shared write.
        let finished = RENDERED_BYTES.load(std::sync::atomic::Ordering::Relaxed);
        if finished + (self.bytes.len() + buf.len()) as u64 > crate::trust::policy().limits.max_output_bytes {
            self.over = true;
            return Err(std::io::Error::other("the render's output budget is spent"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn new_tera() -> tera::Tera {
    let mut tera = tera::Tera::new();
    tera.autoescape_on(Vec::<&str>::new());
    filters::register(&mut tera);
    tera.register_filter(placeholder::FILTER_NAME, placeholder::placeholder_filter);
    tera.register_filter(placeholder::INDENT_FILTER_NAME, placeholder::indent_filter);
    tera
}

fn tera_context(context: &TemplateContext) -> tera::Context {
    let mut tera_context = tera::Context::new();
    tera_context.insert("values", &context.values);
    tera_context.insert("env", &context.env);
    tera_context.insert("secrets", &context.secrets);
    tera_context
}

/// The `values…` paths named in one tag's text (see [`TemplateSet::value_paths_read`]).
pub fn value_paths_in(tag: &str, read: &mut std::collections::BTreeSet<String>) {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(found) = tag[from..].find("values") {
        let start = from + found;
        let mut i = start + "values".len();
        from = i;
        if start > 0 && (word(bytes[start - 1]) || bytes[start - 1] == b'.') || bytes.get(i).is_some_and(|&b| word(b)) {
            continue;
        }
        let mut path = String::new();
        loop {
            match bytes.get(i) {
                Some(b'.') => {
                    let key_start = i + 1;
                    let mut end = key_start;
                    while bytes.get(end).is_some_and(|&b| word(b) || b == b'-') {
                        end += 1;
                    }
                    if end == key_start {
                        break;
                    }
                    crate::yaml::push_path_key(&mut path, &tag[key_start..end]);
                    i = end;
                }
                Some(b'[') => {
                    let inner_start = i + 1;
                    let Some(close) = tag[inner_start..].find(']') else {
                        break;
                    };
                    let inner = tag[inner_start..inner_start + close].trim();
                    let quoted = inner.len() >= 2
                        && (inner.starts_with('"') && inner.ends_with('"')
                            || inner.starts_with('\'') && inner.ends_with('\''));
                    if quoted {
                        crate::yaml::push_path_key(&mut path, &inner[1..inner.len() - 1]);
                    } else if let Ok(index) = inner.parse::<usize>() {
                        path.push_str(&format!("[{index}]"));
                    } else {
                        break;
                    }
                    i = inner_start + close + 1;
                }
                _ => break,
            }
        }
        from = i;
        read.insert(path);
    }
}

/// A rendered line's text without the line marks in it.
fn strip_marks(line: &str) -> impl Iterator<Item = char> + '_ {
    let mut inside = false;
    line.chars().filter(move |&c| match c {
        placeholder::MARK_OPEN => {
            inside = true;
            false
        }
        placeholder::MARK_CLOSE => {
            inside = false;
            false
        }
        _ => !inside,
    })
}

/// A line of a template as its author wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateLine {
    pub path: PathBuf,
    pub line: usize,
    pub text: String,
}

/// A rendered document with positions, and for each line of the text its marks count (index
/// `line - 1`) the template line that wrote it, when one did.
#[derive(Debug)]
pub struct PlacedDocument {
    pub root: yaml::Node,
    pub lines: Vec<Option<TemplateLine>>,
}

/// One template's text and where it came from.
pub struct TemplateSource {
    /// The name includes and components refer to it by.
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    /// False for partials (`_name.yaml`, `*.tera`), which only other templates use.
    pub renderable: bool,
}

struct TemplateFile {
    name: String,
    path: PathBuf,
    original: String,
    rewritten: rewrite::Rewritten,
    renderable: bool,
}

/// A loaded, parsed set of templates, ready to render with any context.
pub struct TemplateSet {
    tera: tera::Tera,
    files: Vec<TemplateFile>,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.files.iter().map(|file| &file.path))
            .finish()
    }
}

impl TemplateSet {
    /// Loads the template files and folders in `paths` (folders recursively, in name order),
    /// leaving out `data_files`: files the project reads as values, env files or secrets are data,
    /// never templates, even inside a template folder.
    pub fn load(paths: &[PathBuf], data_files: &[PathBuf]) -> Result<Self, TemplateError> {
        let data_files: Vec<PathBuf> = data_files.iter().filter_map(|p| p.canonicalize().ok()).collect();
        let is_data = |path: &Path| path.canonicalize().is_ok_and(|p| data_files.contains(&p));
        let mut sources: Vec<TemplateSource> = Vec::new();
        let mut by_name: HashMap<String, PathBuf> = HashMap::new();
        for root in paths {
            let mut found = discover(root)?;
            found.retain(|(_, path, _)| !is_data(path));
            if found.iter().all(|(_, _, renderable)| !renderable) && root.is_dir() {
                return Err(TemplateError::NoTemplates(root.clone()));
            }
            for (name, path, renderable) in found {
                if let Some(first) = by_name.insert(name.clone(), path.clone()) {
                    return Err(TemplateError::DuplicateName {
                        name,
                        first,
                        second: path,
                    });
                }
                let text =
                    crate::trust::read_text(&path, "template", crate::trust::policy().limits.max_text_file_bytes)?;
                sources.push(TemplateSource {
                    name,
                    path,
                    text,
                    renderable,
                });
            }
        }
        TemplateSet::from_sources(sources)
    }

    /// Builds a set from template texts already in memory (what [`TemplateSet::load`] read from disk).
    pub fn from_sources(sources: Vec<TemplateSource>) -> Result<Self, TemplateError> {
        let mut files: Vec<TemplateFile> = Vec::new();
        for TemplateSource {
            name,
            path,
            text: original,
            renderable,
        } in sources
        {
            if let Some(offset) = original.find(placeholder::is_reserved) {
                let (line, column) = line_column(&original, offset);
                return Err(SourceError::new(
                    "templates may not contain the private-use characters U+E000 to U+E003 (kdeploy uses them for value placeholders and line marks)",
                    &path,
                    Some(&original),
                    line,
                    column,
                )
                .into());
            }
            let rewritten = rewrite::rewrite(&original);
            files.push(TemplateFile {
                name,
                path,
                original,
                rewritten,
                renderable,
            });
        }
        let set = TemplateSet {
            tera: new_tera(),
            files,
        };
        let mut tera = set.tera.clone();
        let sources = set.files.iter().map(|f| (f.name.as_str(), f.rewritten.source.as_str()));
        if let Err(e) = tera.add_raw_templates(sources) {
            return Err(set.syntax_error(e));
        }
        Ok(TemplateSet { tera, files: set.files })
    }

    /// Renders `template` again with every line of template text marked, and returns its document
    /// `index` (from 1) with positions: each line of it traced to the template line that wrote it. Only
    /// asked for when something is wrong with an object, so a render pays nothing for it.
    pub fn place(&self, context: &TemplateContext, template: &Path, index: usize) -> Option<PlacedDocument> {
        let file = self.files.iter().find(|f| f.renderable && f.path == template)?;
        let mut tera = new_tera();
        let marked: Vec<(String, String)> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), rewrite::rewrite_marked(&f.original, i)))
            .collect();
        tera.add_raw_templates(marked.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .ok()?;
        let mut output = BoundedOutput::default();
        tera.render_to(&file.name, &tera_context(context), &mut output).ok()?;
        let text = String::from_utf8(output.bytes).ok()?;
        let mut stripped = String::with_capacity(text.len());
        let mut lines = Vec::new();
        for line in text.split('\n') {
            lines.push(self.first_mark(line));
            stripped.extend(strip_marks(line));
            stripped.push('\n');
        }
        let documents = yaml::parse_stream(&stripped, &mut |event| placeholder::substitute(event)).ok()?;
        let document = documents.into_iter().nth(index.checked_sub(1)?)?;
        Some(PlacedDocument {
            root: document.root,
            lines,
        })
    }

    /// The template line named by the first mark on a rendered line.
    fn first_mark(&self, line: &str) -> Option<TemplateLine> {
        let start = line.find(placeholder::MARK_OPEN)? + placeholder::MARK_OPEN.len_utf8();
        let end = start + line[start..].find(placeholder::MARK_CLOSE)?;
        let (file, number) = line[start..end].split_once(':')?;
        let file = self.files.get(file.parse::<usize>().ok()?)?;
        let number: usize = number.parse().ok()?;
        Some(TemplateLine {
            path: file.path.clone(),
            line: number,
            text: file.original.lines().nth(number.checked_sub(1)?)?.to_owned(),
        })
    }

    /// Every path below `values` that some template (or partial) names inside a tag, as written:
    /// `values.db.host` gives `db.host`; `values` alone, or read with a key that is itself an
    /// expression, gives the part before it (`""` for all of them). A path read is read whole, with
    /// everything below it: what a loop, a filter or a component takes.
    pub fn value_paths_read(&self) -> std::collections::BTreeSet<String> {
        let mut read = std::collections::BTreeSet::new();
        for file in &self.files {
            for tag in rewrite::tag_texts(&file.original) {
                value_paths_in(tag, &mut read);
            }
        }
        read
    }

    /// The template files that render on their own (partials excluded).
    pub fn template_paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().filter(|f| f.renderable).map(|f| f.path.as_path())
    }

    /// Renders every template, in order, into YAML documents (empty ones included).
    pub fn render(&self, context: &TemplateContext) -> Result<Rendered, TemplateError> {
        RENDERED_BYTES.store(0, std::sync::atomic::Ordering::Relaxed);
        let tera_context = tera_context(context);
        let renderable: Vec<&TemplateFile> = self.files.iter().filter(|f| f.renderable).collect();
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(renderable.len())
            .max(1);
        let chunk = renderable.len().div_ceil(workers).max(1);
        let results: Vec<Result<Rendered, TemplateError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = renderable
                .chunks(chunk)
                .map(|files| {
                    let tera_context = &tera_context;
                    scope.spawn(move || {
                        let mut rendered = Rendered::default();
                        for file in files {
                            rendered.extend(self.render_file(file, tera_context)?);
                        }
                        Ok(rendered)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(TemplateError::Tera("a render thread panicked".into())))
                })
                .collect()
        });
        let mut rendered = Rendered::default();
        for result in results {
            rendered.extend(result?);
        }
        Ok(rendered)
    }

    fn render_file(&self, file: &TemplateFile, context: &tera::Context) -> Result<Rendered, TemplateError> {
        let mut output = BoundedOutput::default();
        let rendered = self.tera.render_to(&file.name, context, &mut output);
        RENDERED_BYTES.fetch_add(output.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if output.over {
            return Err(TemplateError::Tera(format!(
                "{}: the templates rendered more than {} MiB of text, the render's budget",
                file.path.display(),
                crate::trust::policy().limits.max_output_bytes / (1024 * 1024)
            )));
        }
        rendered.map_err(|e| self.render_error(e, Some(context)))?;
        let text = String::from_utf8(output.bytes)
            .map_err(|_| TemplateError::Tera(format!("{}: rendered text that is not UTF-8", file.path.display())))?;
        let mut warnings = Vec::new();
        let fast = yaml::parse_stream_json(&text, &mut scalar_hook(&file.path, &mut warnings));
        let parsed = match fast {
            Some(parsed) => parsed,
            // The full path reads what the JSON path leaves to it, with the same hook: the warnings
            // start again.
            None => {
                warnings.clear();
                yaml::parse_stream_to_json(&text, &mut scalar_hook(&file.path, &mut warnings))
                    .map_err(|e| output_error(&file.path, &text, e.mark, &e.message))?
            }
        };
        let documents = parsed
            .into_iter()
            .enumerate()
            .map(|(i, document)| RenderedDocument {
                template: file.path.clone(),
                index: i + 1,
                line: document.mark.line,
                rendered: true,
                value: document.root,
                ..RenderedDocument::default()
            })
            .collect();
        Ok(Rendered { documents, warnings })
    }

    fn file_named(&self, name: &str) -> Option<&TemplateFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// A syntax error in the rewritten source is reported from the original, so that the message can
    /// never mention what the rewrite inserted.
    fn syntax_error(&self, error: tera::Error) -> TemplateError {
        if let tera::ErrorKind::SyntaxError(report) = error.kind()
            && let Some(file) = self.file_named(report.filename())
        {
            let mut scratch = tera::Tera::new();
            for other in &self.files {
                let source = if other.name == file.name {
                    &other.original
                } else {
                    &other.rewritten.source
                };
                if let Err(e) = scratch.add_raw_template(&other.name, source)
                    && other.name == file.name
                    && let tera::ErrorKind::SyntaxError(original) = e.kind()
                {
                    let span = original.span();
                    let (line, column) = line_column(&file.original, span.range.start);
                    let width = file.original[span.range.clone()].chars().count();
                    return SourceError::new(
                        format!("template syntax error: {}", original.message()),
                        &file.path,
                        Some(&file.original),
                        line,
                        column,
                    )
                    .with_width(width)
                    .into();
                }
            }
        }
        self.render_error(error, None)
    }

    fn render_error(&self, error: tera::Error, context: Option<&tera::Context>) -> TemplateError {
        let report = match error.kind() {
            tera::ErrorKind::SyntaxError(report) | tera::ErrorKind::RenderingError(report) => report,
            tera::ErrorKind::Msg(text) => {
                return self
                    .prerendered_report(text)
                    .unwrap_or_else(|| TemplateError::Tera(error_chain(&error)));
            }
            _ => return TemplateError::Tera(error_chain(&error)),
        };
        let Some(file) = self.file_named(report.filename()) else {
            return TemplateError::Tera(error_chain(&error));
        };
        let span = report.span();
        if report.message() == placeholder::UNDEFINED
            && let Some(expression) = file.rewritten.expression_at(span.range.start)
        {
            let text = &file.original[expression.clone()];
            let (line, column) = line_column(&file.original, expression.start);
            let message = describe_undefined(text, context);
            return SourceError::new(message, &file.path, Some(&file.original), line, column)
                .with_width(text.chars().count())
                .into();
        }
        let start = file.rewritten.original_offset(span.range.start);
        let end = file.rewritten.original_offset(span.range.end).max(start);
        let (line, column) = line_column(&file.original, start);
        let width = file.original.get(start..end).map_or(1, |s| s.chars().count());
        let mut message = report.message().to_owned();
        if let Some(cause) = std::error::Error::source(&error) {
            message = format!("{message}: {cause}");
        }
        let line_text = file.original.lines().nth(line.saturating_sub(1)).unwrap_or_default();
        if let Some(why) = refused_env_read(line_text) {
            message = format!("{message} ({why})");
        }
        SourceError::new(message, &file.path, Some(&file.original), line, column)
            .with_width(width)
            .into()
    }
}

impl TemplateSet {
    /// Some load-time errors (unknown include or component) arrive as text already laid out as
    /// `error: MESSAGE` / ` --> NAME:LINE:COLUMN`; this re-points them at the template as written.
    fn prerendered_report(&self, text: &str) -> Option<TemplateError> {
        let mut lines = text.lines();
        let message = lines.next()?.strip_prefix("error: ")?;
        let location = lines.next()?.trim().strip_prefix("--> ")?;
        let mut parts = location.rsplitn(3, ':');
        let column: usize = parts.next()?.parse().ok()?;
        let line: usize = parts.next()?.parse().ok()?;
        let file = self.file_named(parts.next()?)?;
        let rewritten = &file.rewritten.source;
        let line_start = rewritten
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum::<usize>();
        let in_line = rewritten[line_start..]
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf8)
            .sum::<usize>();
        let original = file.rewritten.original_offset(line_start + in_line);
        let (line, column) = line_column(&file.original, original);
        Some(SourceError::new(message, &file.path, Some(&file.original), line, column).into())
    }
}

/// Why an `env.NAME` that `line` reads is not there, if it is one templates may not see.
fn refused_env_read(line: &str) -> Option<String> {
    line.match_indices("env.").find_map(|(at, _)| {
        let name: String = line[at + 4..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        crate::trust::env_refusal(&name)
    })
}

/// "`values.db.hots` is not defined", with the keys that do exist where the path stops matching.
fn describe_undefined(expression: &str, context: Option<&tera::Context>) -> String {
    let hint = "give a default with `| default(value=...)` if it is optional";
    let path: Vec<&str> = expression.split('.').map(str::trim).collect();
    // The environment's names are many and not all the user's: none are listed.
    if path.len() == 2 && path[0] == "env" {
        if let Some(why) = crate::trust::env_refusal(path[1]) {
            return format!("`{expression}` cannot be read: {why}");
        }
        return format!("`{expression}` is not set in the environment or the env files; {hint}, or set it");
    }
    let is_plain_path = path
        .iter()
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
    let Some(context) = context.filter(|_| is_plain_path) else {
        return format!("`{expression}` is not defined; {hint}");
    };
    let mut current = context.get(path[0]);
    for (depth, segment) in path.iter().enumerate().skip(1) {
        let Some(map) = current.and_then(|v| v.as_map()) else {
            break;
        };
        let next = map.iter().find(|(k, _)| k.as_str() == Some(*segment)).map(|(_, v)| v);
        if next.is_none() {
            let mut keys: Vec<String> = map.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect();
            keys.sort();
            let parent = path[..depth].join(".");
            let available = if keys.is_empty() {
                format!("`{parent}` is empty")
            } else {
                format!("keys under `{parent}`: {}", keys.join(", "))
            };
            return format!("`{expression}` is not defined ({available}); {hint}");
        }
        current = next;
    }
    format!("`{expression}` is not defined; {hint}")
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// An error in the rendered output, shown on the rendered line with values hidden.
fn output_error(path: &Path, rendered: &str, mark: yaml::Mark, message: &str) -> TemplateError {
    let raw_line = rendered.lines().nth(mark.line.saturating_sub(1)).unwrap_or("");
    let before: String = raw_line.chars().take(mark.column.saturating_sub(1)).collect();
    let column = placeholder::redact_placeholders(&before).chars().count() + 1;
    let shown = placeholder::redact_placeholders(raw_line);
    // The line is the rendered output's (shown, with values hidden): the template's own line when no
    // expression above it rendered to more or fewer lines.
    let mut error = SourceError::new(
        format!("the rendered template is not valid YAML: {message} (at this line of the rendered output)"),
        path,
        None,
        mark.line,
        column,
    );
    error.line_text = Some(shown);
    error.into()
}

/// The template files under `root`: (include name, path, renders on its own).
fn discover(root: &Path) -> Result<Vec<(String, PathBuf, bool)>, TemplateError> {
    crate::trust::confine(root, "templates")?;
    let metadata = std::fs::metadata(root).map_err(|source| TemplateError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    if metadata.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let renderable = !name.starts_with('_') && !has_extension(root, PARTIAL_EXTENSIONS);
        return Ok(vec![(name, root.to_path_buf(), renderable)]);
    }
    let mut found = Vec::new();
    walk(root, root, &mut crate::trust::Walk::default(), &mut found)?;
    Ok(found)
}

fn walk(
    root: &Path,
    dir: &Path,
    seen: &mut crate::trust::Walk,
    found: &mut Vec<(String, PathBuf, bool)>,
) -> Result<(), TemplateError> {
    if !seen.enter(dir, "template folder")? {
        return Ok(());
    }
    let read_error = |source| TemplateError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') || file_name == PROJECT_FILE {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, seen, found)?;
            continue;
        }
        let is_template = has_extension(&path, TEMPLATE_EXTENSIONS);
        if !is_template && !has_extension(&path, PARTIAL_EXTENSIONS) {
            continue;
        }
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        found.push((name, path, is_template && !file_name.starts_with('_')));
    }
    Ok(())
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.contains(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(files: &[(&str, &str)], values: Json) -> Result<Vec<Json>, TemplateError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let set = TemplateSet::load(&[dir.path().to_path_buf()], &[dir.path().join("values.yaml")])?;
        let context = TemplateContext {
            values,
            ..Default::default()
        };
        Ok(set.render(&context)?.documents.into_iter().map(|d| d.value).collect())
    }

    #[test]
    fn values_keep_their_types_and_cannot_change_structure() {
        let template = "a: {{ values.s }}\nb: {{ values.n }}\nc: \"{{ values.n }}\"\nd: x-{{ values.s }}\ne: {{ values.list }}\nf: |\n  {{ values.s }}\n";
        let docs = render(
            &[("t.yaml", template)],
            json!({"s": "p: w\n# x\n- y", "n": 1.10, "list": [1, "on"]}),
        )
        .unwrap();
        assert_eq!(
            docs[0],
            json!({"a": "p: w\n# x\n- y", "b": 1.1, "c": "1.1", "d": "x-p: w\n# x\n- y", "e": [1, "on"], "f": "p: w\n# x\n- y\n"})
        );
    }

    #[test]
    fn loops_components_includes_and_safe() {
        let files = [
            (
                "_labels.tera",
                "{% component labels(app) %}app: {{ app }}\ntier: web{% endcomponent labels %}",
            ),
            ("_note.yaml", "note: {{ values.note }}"),
            (
                "t.yaml",
                "{% for name in values.names %}---\nname: {{ name }}\nlabels:\n  {{<labels app={name}/>}}\n{% include \"_note.yaml\" %}\nraw: {{ values.raw | safe }}\n{% endfor %}",
            ),
        ];
        let docs = render(&files, json!({"names": ["a", "yes"], "note": "n: 1", "raw": "[1, 2]"})).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[1],
            json!({"name": "yes", "labels": {"app": "yes", "tier": "web"}, "note": "n: 1", "raw": [1, 2]})
        );
    }

    #[test]
    fn undefined_values_name_file_line_and_column() {
        let err = render(&[("t.yaml", "a: 1\nb: {{ values.missing }}\n")], json!({})).unwrap_err();
        let TemplateError::At(e) = err else { panic!("{err}") };
        assert_eq!((e.location.line, e.location.column), (2, 7));
        assert_eq!(e.width, "values.missing".len());
        assert!(e.location.path.ends_with("t.yaml"));
        assert!(
            e.message.starts_with("`values.missing` is not defined"),
            "{}",
            e.message
        );
        assert_eq!(e.line_text.as_deref(), Some("b: {{ values.missing }}"));
    }

    #[test]
    fn undefined_nested_values_list_what_is_there() {
        let err = render(
            &[("t.yaml", "a: {{ values.db.hots }}\n")],
            json!({"db": {"host": "h", "port": 1}}),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("keys under `values.db`: host, port"), "{message}");
    }

    #[test]
    fn syntax_errors_are_reported_against_the_original_text() {
        let err = render(&[("t.yaml", "a: {{ values.x + }}\n")], json!({"x": 1})).unwrap_err();
        let TemplateError::At(e) = err else { panic!("{err}") };
        assert_eq!(e.location.line, 1);
        assert!(!e.to_string().contains("__kdeploy"), "{e}");
    }

    #[test]
    fn invalid_rendered_yaml_is_an_error_without_values_in_it() {
        let err = render(&[("t.yaml", "a: {{ values.s }}\n b: [\n")], json!({"s": "hunter2"})).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("not valid YAML"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn data_files_in_a_template_folder_are_not_templates() {
        let docs = render(
            &[("values.yaml", "not: {{ a template"), ("t.yaml", "a: 1\n")],
            json!({}),
        )
        .unwrap();
        assert_eq!(docs, [json!({"a": 1})]);
    }

    #[test]
    fn unknown_includes_point_at_the_template_as_written() {
        let err = render(
            &[(
                "t.yaml",
                "a: {{ values.x | default(value=1) }}\n{% include \"nope.yaml\" %}\n",
            )],
            json!({}),
        )
        .unwrap_err();
        let TemplateError::At(e) = err else { panic!("{err}") };
        assert!(
            e.location.path.ends_with("t.yaml") && e.location.path.is_absolute(),
            "{}",
            e.location
        );
        assert_eq!((e.location.line, e.location.column), (2, 12));
        assert!(e.message.contains("Unknown template `nope.yaml`"), "{}", e.message);
    }

    #[test]
    fn reserved_characters_in_templates_are_refused() {
        let err = render(&[("t.yaml", "a: x\u{E000}\n")], json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("U+E000") && err.contains(":1:5"), "{err}");
    }

    #[test]
    fn yaml_1_1_only_booleans_in_template_text_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.yaml"),
            "labels: {app: y}\nenabled: true\nquoted: 'yes'\nvalue: {{ values.v }}\n",
        )
        .unwrap();
        let set = TemplateSet::load(&[dir.path().to_path_buf()], &[]).unwrap();
        let context = TemplateContext {
            values: json!({"v": "on"}),
            ..Default::default()
        };
        let rendered = set.render(&context).unwrap();
        assert_eq!(rendered.warnings.len(), 1, "{:?}", rendered.warnings);
        assert!(
            rendered.warnings[0].contains("`y` is read as the boolean true"),
            "{:?}",
            rendered.warnings
        );
        assert_eq!(
            rendered.documents[0].value["value"], "on",
            "values are strings whatever they say"
        );
    }

    #[test]
    fn default_filter_allows_missing_values() {
        let docs = render(&[("t.yaml", "a: {{ values.x | default(value=3) }}\n")], json!({})).unwrap();
        assert_eq!(docs[0], json!({"a": 3}));
    }
}
