//! From a field path in an object to the place its author wrote it: the template's line (traced
//! through the marks of [`crate::template::TemplateSet::place`]), the plain manifest's own line, or
//! for a Helm chart the line of the chart template's output below its `# Source:` comment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::openapi::Step;
use crate::diagnostic::{Location, SourceError};
use crate::template::TemplateLine;
use crate::yaml::{Mark, Node, NodeValue};

/// A document with positions, and what its lines count.
#[derive(Debug)]
pub struct Placed {
    pub root: Node,
    pub lines: Lines,
}

#[derive(Debug)]
pub enum Lines {
    /// A template's render: each line of it traced to the template line that wrote it.
    Templates(Vec<Option<TemplateLine>>),
    /// A file as written (a plain manifest): its lines are the marks' own.
    File { path: PathBuf, text: Arc<str> },
    /// A program's output (helm, kustomize), read from `label`: lines count from the last
    /// `# Source: …` comment before them, as the chart template rendered them.
    Output { label: PathBuf, text: Arc<str> },
}

/// What supplies the placed document of an object's source; the command that rendered it knows.
pub trait Origins {
    fn place(&self, source: &crate::manifest::Source) -> Option<Placed>;
}

/// The node at `path`, and the mark of what to point at: the key itself when the key is the mistake.
fn follow<'n>(root: &'n Node, path: &'n [Step], at_key: bool) -> (Mark, Option<&'n str>, bool) {
    let mut node = root;
    let mut mark = root.mark;
    let mut key: Option<&str> = None;
    let mut pointing_at_key = false;
    for (i, step) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match (step, &node.value) {
            (Step::Key(name), NodeValue::Map(map)) => match map.get(name.as_str()) {
                Some(entry) => {
                    key = Some(name.as_str());
                    if last && at_key {
                        mark = entry.key_mark;
                        pointing_at_key = true;
                    } else {
                        mark = entry.value.mark;
                        // A block value starts on the next line; its key's line says more.
                        if !matches!(entry.value.value, NodeValue::Scalar(_)) {
                            mark = if last { entry.key_mark } else { entry.value.mark };
                            pointing_at_key = last;
                        }
                    }
                    node = &entry.value;
                }
                None => break,
            },
            (Step::Index(index), NodeValue::Seq(items)) => match items.get(*index) {
                Some(item) => {
                    mark = item.mark;
                    key = None;
                    node = item;
                }
                None => break,
            },
            _ => break,
        }
    }
    (mark, key, pointing_at_key)
}

/// The 1-based character column of `needle` in `line`, if it is there.
fn column_of(line: &str, needle: &str) -> Option<usize> {
    let at = line.find(needle)?;
    Some(line[..at].chars().count() + 1)
}

/// Where the author wrote the field at `path` (with `list_item`, the object's place in a List), and
/// the line to quote (none when the line may hold a secret: a Secret's, or a program's output).
pub fn locate(
    placed: &Placed,
    list_item: Option<usize>,
    path: &[Step],
    at_key: bool,
    quote: bool,
) -> Option<(Location, Option<String>)> {
    let mut full = Vec::with_capacity(path.len() + 2);
    if let Some(item) = list_item {
        full.push(Step::Key("items".into()));
        full.push(Step::Index(item));
    }
    full.extend_from_slice(path);
    let (mark, key, pointing_at_key) = follow(&placed.root, &full, at_key);
    match &placed.lines {
        Lines::Templates(lines) => {
            // Lines the render wrote without a mark (a value's own lines) point back at the nearest
            // marked line above them.
            let origin = lines[..mark.line.min(lines.len())].iter().rev().flatten().next()?;
            let column = match key {
                Some(key) if pointing_at_key => column_of(&origin.text, key),
                Some(key) => column_of(&origin.text, &format!("{key}:")).map(|c| {
                    let after = origin
                        .text
                        .chars()
                        .skip(c + key.chars().count())
                        .take_while(|c| *c == ' ')
                        .count();
                    c + key.chars().count() + 1 + after
                }),
                None => None,
            }
            .unwrap_or_else(|| origin.text.chars().take_while(|c| *c == ' ' || *c == '-').count() + 1);
            let text = quote.then(|| origin.text.clone());
            Some((Location::new(origin.path.clone(), origin.line, column), text))
        }
        Lines::File { path, text } => {
            let line_text = quote
                .then(|| text.lines().nth(mark.line.saturating_sub(1)).map(str::to_owned))
                .flatten();
            Some((Location::new(path.clone(), mark.line, mark.column), line_text))
        }
        Lines::Output { label, text } => {
            let source_line = text
                .lines()
                .take(mark.line.saturating_sub(1))
                .enumerate()
                .filter(|(_, l)| l.starts_with("# Source: "))
                .map(|(i, _)| i + 1)
                .last()
                .unwrap_or(0);
            Some((Location::new(label.clone(), mark.line - source_line, mark.column), None))
        }
    }
}

/// A finding as an error at its place, or at the object's document when the path cannot be followed
/// there (a field a patch added).
pub fn error_at(message: String, location: Location, line_text: Option<String>) -> SourceError {
    let quoted = line_text.filter(|_| crate::trust::may_quote(&location.path));
    // Underline an expression whole, else the word: a key up to its colon, a value up to a space.
    let width = quoted
        .as_deref()
        .and_then(|l| {
            let rest: String = l.chars().skip(location.column.saturating_sub(1)).collect();
            if rest.starts_with("{{") {
                rest.find("}}").map(|end| rest[..end + 2].chars().count())
            } else {
                rest.chars()
                    .position(|c| c == ':' || c == ' ')
                    .or(Some(rest.chars().count()))
            }
        })
        .filter(|w| *w > 0)
        .unwrap_or(1);
    SourceError {
        message,
        location,
        line_text: quoted,
        width,
    }
}

/// Whether `path` belongs to a program's output rather than a file: helm and kustomize label their
/// documents so.
pub fn is_program_output(label: &Path) -> bool {
    let text = label.to_string_lossy();
    text.starts_with("helm ") || text.starts_with("kustomize ") || text.starts_with("kubectl kustomize ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed_file(text: &str) -> Placed {
        let documents = crate::yaml::parse_stream(text, &mut |_| Ok(None)).unwrap();
        Placed {
            root: documents.into_iter().next().unwrap().root,
            lines: Lines::File {
                path: PathBuf::from("app.yaml"),
                text: Arc::from(text),
            },
        }
    }

    #[test]
    fn keys_values_and_items_are_found_where_they_were_written() {
        let placed = placed_file(
            "kind: Deployment\nspec:\n  replicas: \"3\"\n  template:\n    spec:\n      contianers: []\n      containers:\n        - image: x\n",
        );
        let at = |path: Vec<Step>, key: bool| locate(&placed, None, &path, key, true).unwrap().0.to_string();
        let k = |s: &str| Step::Key(s.to_owned());
        assert_eq!(at(vec![k("spec"), k("replicas")], false), "app.yaml:3:13");
        assert_eq!(
            at(vec![k("spec"), k("template"), k("spec"), k("contianers")], true),
            "app.yaml:6:7"
        );
        assert_eq!(
            at(
                vec![k("spec"), k("template"), k("spec"), k("containers"), Step::Index(0)],
                false
            ),
            "app.yaml:8:11"
        );
        // A path that leaves the text (a field a patch added) stops at the last node there is.
        assert_eq!(at(vec![k("spec"), k("paused")], false), "app.yaml:3:3");
    }

    #[test]
    fn program_output_counts_lines_from_its_source_comment() {
        let text = "---\n# Source: web/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\ndata:\n  x: [1]\n";
        let documents = crate::yaml::parse_stream(text, &mut |_| Ok(None)).unwrap();
        let placed = Placed {
            root: documents.into_iter().next().unwrap().root,
            lines: Lines::Output {
                label: PathBuf::from("helm web: web/templates/a.yaml"),
                text: Arc::from(text),
            },
        };
        let (location, quoted) = locate(
            &placed,
            None,
            &[Step::Key("data".into()), Step::Key("x".into())],
            false,
            true,
        )
        .unwrap();
        // A list or map value is pointed at by its key.
        assert_eq!(location.to_string(), "helm web: web/templates/a.yaml:4:3");
        assert_eq!(quoted, None);
    }
}
