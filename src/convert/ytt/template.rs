//! One ytt YAML file to one kdeploy template: code lines become Tera tags, value expressions become
//! `{{ … }}`, the node sugar wraps the node it stands on, fragment functions become components, and
//! `#@data/values` and `#@data/values-schema` documents are handed to [`super::values`].
//!
//! Every line is translated on its own, so a construct that cannot be said exactly is refused where it
//! stands (with `--partial`, replaced by a `{# TODO(ytt): … #}` comment) and the rest still converts.

use std::collections::BTreeMap;

use super::lines::{Content, Kind, Line, Sugar, key_of};
use super::starlark::{Arg, Expr, Param, Stmt, SyntaxError, parse_expr, parse_stmt};
use super::translate::{Binding, Refusal, Scope, Ty, local_name, string_literal};
use crate::yaml::{Scalar, resolve::plain_scalar};

/// A document of a file that is data, not template: its text, with every other line blanked so
/// that positions are the file's own.
#[derive(Debug, Clone)]
pub struct DataDocument {
    pub text: String,
    /// The annotations on the document (`#@data/values` and its arguments, …).
    pub annotations: Vec<(String, String)>,
    pub line: usize,
}

/// What one file became.
#[derive(Debug, Default)]
pub struct Converted {
    pub template: String,
    pub values: Vec<DataDocument>,
    pub schemas: Vec<DataDocument>,
    pub patches: Vec<serde_json::Value>,
    /// How many of each construct converted.
    pub constructs: BTreeMap<&'static str, usize>,
    /// (line, what was refused and why)
    pub refusals: Vec<(usize, String)>,
}

/// Whether refused constructs stop the conversion or are marked in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Strict,
    Partial,
}

/// A `def` of a YAML file: its signature line and body.
#[derive(Debug, Clone)]
pub struct Def {
    pub name: String,
    pub params: Vec<Param>,
    pub line: usize,
    /// Indices into the file's lines, the `def` and `end` lines excluded.
    pub body: std::ops::Range<usize>,
    pub fragment: bool,
}

/// A `load()`: its line, the module, and (local name, exported name) pairs.
pub type Load = (usize, String, Vec<(String, String)>);

/// One branch of an if in a value function: its condition (none for else) and statements.
type Branch = (Option<Expr>, Vec<(usize, Stmt)>);

/// The top-level structure of a YAML file: its loads, defs and constants, found before translation
/// so that names resolve wherever they are used.
#[derive(Debug, Default)]
pub struct Outline {
    pub loads: Vec<Load>,
    pub defs: Vec<Def>,
    pub constants: Vec<(usize, String, Expr)>,
    /// Lines of code that belong to a def or were read here, not to be translated again.
    pub consumed: Vec<bool>,
    pub refusals: Vec<(usize, String)>,
}

fn opens_block(stmt: &Stmt) -> bool {
    matches!(stmt, Stmt::If(_) | Stmt::For { .. } | Stmt::Def { .. })
}

fn syntax(e: &SyntaxError) -> String {
    e.message.clone()
}

/// A syntax error in `part`, a piece of the line `whole`, with the column on that line it is at.
fn syntax_at(whole: &str, part: &str, e: &SyntaxError) -> String {
    let start = (part.as_ptr() as usize)
        .checked_sub(whole.as_ptr() as usize)
        .filter(|start| start + part.len() <= whole.len());
    match start {
        Some(start) => {
            let mut at = (start + e.offset.min(part.len())).min(whole.len());
            while !whole.is_char_boundary(at) {
                at -= 1;
            }
            format!("{} (column {})", e.message, whole[..at].chars().count() + 1)
        }
        None => e.message.clone(),
    }
}

/// Reads the loads, defs and top-level constants of a YAML file.
pub fn outline(lines: &[Line<'_>]) -> Outline {
    let mut out = Outline {
        consumed: vec![false; lines.len()],
        ..Outline::default()
    };
    let mut depth = 0usize;
    let mut assigned: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Kind::Code(code) = lines[i].kind else {
            i += 1;
            continue;
        };
        let number = lines[i].number;
        let stmt = match parse_stmt(code) {
            Ok(s) => s,
            Err(_) => {
                i += 1;
                continue; // reported where the line is translated
            }
        };
        match stmt {
            Stmt::Load { module, names } => {
                if depth > 0 {
                    out.refusals.push((number, "a load() inside a block".into()));
                }
                out.loads.push((number, module, names));
                out.consumed[i] = true;
            }
            Stmt::Def { name, params } => {
                if depth > 0 {
                    out.refusals
                        .push((number, format!("def {name} inside an if or for block")));
                    depth += 1;
                    i += 1;
                    continue;
                }
                // The body runs to the `end` that matches.
                let mut inner = 0usize;
                let mut j = i + 1;
                let mut fragment = false;
                let mut end = None;
                while j < lines.len() {
                    match &lines[j].kind {
                        Kind::Code(c) => match parse_stmt(c) {
                            Ok(Stmt::End) if inner == 0 => {
                                end = Some(j);
                                break;
                            }
                            Ok(Stmt::End) => inner -= 1,
                            Ok(s) if opens_block(&s) => inner += 1,
                            _ => {}
                        },
                        Kind::Content(_) | Kind::Sugar { .. } => fragment = true,
                        Kind::DocStart | Kind::DocEnd => {
                            break;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let Some(end) = end else {
                    out.refusals.push((number, format!("def {name} without its end")));
                    i += 1;
                    continue;
                };
                for c in &mut out.consumed[i..=end] {
                    *c = true;
                }
                out.defs.push(Def {
                    name,
                    params,
                    line: number,
                    body: i + 1..end,
                    fragment,
                });
                i = end + 1;
                continue;
            }
            Stmt::Assign { target, value } if depth == 0 => {
                if assigned.contains(&target) {
                    out.refusals.push((
                        number,
                        format!("{target} assigned a second time at the top level (kdeploy's values do not change)"),
                    ));
                } else {
                    assigned.push(target.clone());
                    out.constants.push((number, target, value));
                }
                out.consumed[i] = true;
            }
            Stmt::If(_) | Stmt::For { .. } => depth += 1,
            Stmt::End => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    out
}

/// Folds the statements of a value function (assignments, `if … return`, `return`) into one
/// expression.
pub fn fold_value_function(body: &[(usize, Stmt)]) -> Result<Expr, (usize, String)> {
    let Some(((line, first), rest)) = body.split_first() else {
        return Ok(Expr::None);
    };
    match first {
        Stmt::Return(Some(e)) => Ok(e.clone()),
        Stmt::Return(None) => Ok(Expr::None),
        Stmt::Pass => fold_value_function(rest),
        Stmt::Assign { target, value } => {
            let folded = fold_value_function(rest)?;
            Ok(substitute(&folded, target, value))
        }
        Stmt::If(cond) => {
            // if … [elif …] [else …] end, each branch ending in return.
            let mut branches: Vec<Branch> = vec![(Some(cond.clone()), Vec::new())];
            let mut depth = 0;
            let mut k = 0;
            while k < rest.len() {
                let (l, s) = &rest[k];
                match s {
                    Stmt::If(_) | Stmt::For { .. } | Stmt::Def { .. } => {
                        depth += 1;
                        branches.last_mut().expect("a branch").1.push((*l, s.clone()));
                    }
                    Stmt::End if depth == 0 => break,
                    Stmt::End => {
                        depth -= 1;
                        branches.last_mut().expect("a branch").1.push((*l, s.clone()));
                    }
                    Stmt::Elif(c) if depth == 0 => branches.push((Some(c.clone()), Vec::new())),
                    Stmt::Else if depth == 0 => branches.push((None, Vec::new())),
                    _ => branches.last_mut().expect("a branch").1.push((*l, s.clone())),
                }
                k += 1;
            }
            if k == rest.len() {
                return Err((*line, "an if without its end in a function".into()));
            }
            let after = &rest[k + 1..];
            let mut otherwise = if branches.last().is_some_and(|b| b.0.is_none()) {
                let (_, body) = branches.pop().expect("else");
                branch_value(&body, *line)?
            } else {
                fold_value_function(after)?
            };
            for (cond, body) in branches.into_iter().rev() {
                let then = branch_value(&body, *line)?;
                otherwise = Expr::Cond {
                    then: Box::new(then),
                    cond: Box::new(cond.expect("if or elif")),
                    otherwise: Box::new(otherwise),
                };
            }
            Ok(otherwise)
        }
        Stmt::For { .. } => Err((*line, "a for loop in a function that returns a value".into())),
        other => Err((
            *line,
            format!("the statement {other:?} in a function that returns a value"),
        )),
    }
}

/// A branch of an if in a value function must end in a return.
fn branch_value(body: &[(usize, Stmt)], line: usize) -> Result<Expr, (usize, String)> {
    if !body.iter().any(|(_, s)| matches!(s, Stmt::Return(_))) {
        return Err((
            line,
            "an if branch in a function that does not return (kdeploy cannot carry its assignments out of it)".into(),
        ));
    }
    fold_value_function(body)
}

/// `e` with every `name` replaced by `value`.
fn substitute(e: &Expr, name: &str, value: &Expr) -> Expr {
    let s = |x: &Expr| Box::new(substitute(x, name, value));
    match e {
        Expr::Name(n) if n == name => value.clone(),
        Expr::List(items) => Expr::List(items.iter().map(|i| substitute(i, name, value)).collect()),
        Expr::Tuple(items) => Expr::Tuple(items.iter().map(|i| substitute(i, name, value)).collect()),
        Expr::Dict(entries) => Expr::Dict(
            entries
                .iter()
                .map(|(k, v)| (substitute(k, name, value), substitute(v, name, value)))
                .collect(),
        ),
        Expr::Attr(b, a) => Expr::Attr(s(b), a.clone()),
        Expr::Index(b, i) => Expr::Index(s(b), s(i)),
        Expr::Call(c, args) => Expr::Call(
            s(c),
            args.iter()
                .map(|a| Arg {
                    name: a.name.clone(),
                    value: substitute(&a.value, name, value),
                })
                .collect(),
        ),
        Expr::Not(x) => Expr::Not(s(x)),
        Expr::Neg(x) => Expr::Neg(s(x)),
        Expr::Binary(op, a, b) => Expr::Binary(*op, s(a), s(b)),
        Expr::Cond { then, cond, otherwise } => Expr::Cond {
            then: s(then),
            cond: s(cond),
            otherwise: s(otherwise),
        },
        other => other.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    If,
    For,
    /// A block whose opening line was refused: its end is marked too.
    Refused,
}

/// Translates the lines of a file or a fragment function's body.
pub struct Translator<'s, 'm> {
    pub scope: &'s mut Scope<'m>,
    pub mode: Mode,
    pub out: String,
    pub constructs: BTreeMap<&'static str, usize>,
    pub refusals: Vec<(usize, String)>,
    pub values: Vec<DataDocument>,
    pub schemas: Vec<DataDocument>,
    /// The `patches:` entries of the file's overlay documents.
    pub patches: Vec<serde_json::Value>,
    /// Whether documents are allowed (a fragment function's body has none).
    pub documents: bool,
    /// Refusals found before translation (loads, defs), by line: marked where the line stood.
    pub premarked: BTreeMap<usize, String>,
}

impl<'s, 'm> Translator<'s, 'm> {
    pub fn new(scope: &'s mut Scope<'m>, mode: Mode, documents: bool) -> Self {
        Translator {
            scope,
            mode,
            out: String::new(),
            constructs: BTreeMap::new(),
            refusals: Vec::new(),
            values: Vec::new(),
            schemas: Vec::new(),
            patches: Vec::new(),
            documents,
            premarked: BTreeMap::new(),
        }
    }

    fn count(&mut self, construct: &'static str) {
        *self.constructs.entry(construct).or_default() += 1;
    }

    /// Records a refusal and, in partial mode, marks it in the output.
    fn refuse(&mut self, line: &Line<'_>, why: String) {
        if self.mode == Mode::Partial {
            self.mark(line, &why);
        }
        self.refusals.push((line.number, why));
    }

    /// A `{# TODO(ytt): … #}` comment in place of `line`, saying what it was and why it did not convert.
    fn mark(&mut self, line: &Line<'_>, why: &str) {
        let indent = line.text.len() - line.text.trim_start().len();
        let shown = line.text.trim().replace("#}", "# }").replace("{#", "{ #");
        let reason = why.replace("#}", "# }").replace("{#", "{ #");
        self.out
            .push_str(&format!("{}{{# TODO(ytt): {reason}: {shown} #}}\n", " ".repeat(indent)));
    }

    /// Translates `lines` (with `skip` marking lines already read by the outline).
    pub fn lines(&mut self, lines: &[Line<'_>], skip: &[bool]) {
        let mut blocks: Vec<(Block, usize)> = Vec::new();
        let mut annotations: Vec<(usize, String, String)> = Vec::new();
        let mut sugars: Vec<(usize, Sugar, String)> = Vec::new();
        // (after this line index, text to write, frames to pop)
        let mut closers: Vec<(usize, String, bool)> = Vec::new();
        let mut templated_document = false;
        // Text-templated nodes: (indent, until line index)
        let mut templated_until: Option<usize> = None;
        let mut i = 0;
        while i < lines.len() {
            let line = &lines[i];
            if skip.get(i).copied().unwrap_or(false) {
                if self.mode == Mode::Partial
                    && let Some(why) = self.premarked.get(&line.number).cloned()
                {
                    self.mark(line, &why);
                }
                i += 1;
                continue;
            }
            match &line.kind {
                Kind::Blank => self.out.push('\n'),
                Kind::YttComment => {}
                Kind::Comment => {
                    self.out.push_str(comment_text(line.text).unwrap_or(""));
                    self.out.push('\n');
                }
                Kind::ScalarText => {
                    self.out.push_str(&literal_text(line.text));
                    self.out.push('\n');
                }
                Kind::DocStart | Kind::DocEnd => {
                    if !self.documents {
                        self.refuse(line, "a document start inside a function body".into());
                        i += 1;
                        continue;
                    }
                    if !sugars.is_empty() {
                        self.refuse(
                            line,
                            "if/end or for/end on a document (only on a node inside one)".into(),
                        );
                        sugars.clear();
                    }
                    templated_document = false;
                    if line.text.contains("#@") {
                        self.refuse(line, "an expression on a document start (--- #@ …)".into());
                        annotations.clear();
                        i += 1;
                        continue;
                    }
                    if matches!(line.kind, Kind::DocStart) {
                        let doc_annotations = std::mem::take(&mut annotations);
                        if let Some(next) = self.document(lines, i, &doc_annotations, &mut templated_document) {
                            i = next;
                            continue;
                        }
                    }
                    self.out.push_str(line.text);
                    self.out.push('\n');
                }
                Kind::Annotation { name, args } => {
                    annotations.push((line.number, (*name).to_owned(), (*args).to_owned()));
                }
                Kind::Sugar { kind, header } => sugars.push((line.number, *kind, (*header).to_owned())),
                Kind::Code(code) => self.code(line, code, &mut blocks),
                Kind::Content(content) => {
                    // The node's annotations and sugar.
                    let mut node_templated = false;
                    for (number, name, args) in std::mem::take(&mut annotations) {
                        match name.as_str() {
                            "yaml/text-templated-strings" if args.is_empty() => node_templated = true,
                            _ => {
                                let at = Line {
                                    number,
                                    text: line.text,
                                    kind: Kind::Blank,
                                };
                                self.refuse(&at, annotation_refusal(&name));
                            }
                        }
                    }
                    let node_sugars = std::mem::take(&mut sugars);
                    if !node_sugars.is_empty() || node_templated {
                        match extent(lines, i) {
                            Ok(end) => {
                                if node_templated {
                                    templated_until = Some(templated_until.map_or(end, |u| u.max(end)));
                                }
                                for (number, kind, header) in node_sugars {
                                    let at = Line {
                                        number,
                                        text: line.text,
                                        kind: Kind::Blank,
                                    };
                                    if let Some(closer) = self.sugar(&at, kind, &header) {
                                        closers.push((end, closer, kind == Sugar::For));
                                    }
                                }
                            }
                            Err(why) => self.refuse(line, why),
                        }
                    }
                    let templated = templated_document || templated_until.is_some_and(|u| i <= u);
                    match self.content(line, content, templated) {
                        Ok(text) => {
                            self.out.push_str(&text);
                            self.out.push('\n');
                        }
                        Err(why) => self.refuse(line, why),
                    }
                }
            }
            // Close the node sugar whose node ends here, innermost first.
            while let Some(pos) = closers.iter().rposition(|(end, _, _)| *end == i) {
                let (_, text, frame) = closers.remove(pos);
                self.out.push_str(&text);
                self.out.push('\n');
                if frame {
                    self.scope.frames.pop();
                }
            }
            if templated_until == Some(i) {
                templated_until = None;
            }
            i += 1;
        }
        for (number, name, _) in annotations {
            let at = Line {
                number,
                text: "",
                kind: Kind::Blank,
            };
            self.refuse(&at, format!("the annotation @{name} on nothing"));
        }
        for (block, number) in blocks {
            if block != Block::Refused {
                let at = Line {
                    number,
                    text: "",
                    kind: Kind::Blank,
                };
                self.refuse(&at, "a block without its end".into());
            }
        }
    }

    /// A document start: data values and schema documents are taken out whole; returns the line
    /// index to go on from when it was.
    fn document(
        &mut self,
        lines: &[Line<'_>],
        start: usize,
        annotations: &[(usize, String, String)],
        templated: &mut bool,
    ) -> Option<usize> {
        let mut data: Option<(&str, Vec<(String, String)>)> = None;
        if annotations.iter().any(|(_, name, _)| name == "overlay/match") {
            data = Some((
                "overlay",
                annotations.iter().map(|(_, n, a)| (n.clone(), a.clone())).collect(),
            ));
        }
        for (number, name, args) in annotations {
            match name.as_str() {
                _ if data.as_ref().is_some_and(|(kind, _)| *kind == "overlay") => {}
                "data/values" | "data/values-schema" => {
                    let kind = if name == "data/values" { "values" } else { "schema" };
                    data = Some((kind, vec![(name.clone(), args.clone())]));
                }
                "yaml/text-templated-strings" => *templated = true,
                _ => {
                    let at = Line {
                        number: *number,
                        text: lines[start].text,
                        kind: Kind::Blank,
                    };
                    self.refuse(&at, annotation_refusal(name));
                }
            }
        }
        let (kind, annotations) = data?;
        let mut end = (start + 1..lines.len())
            .find(|&j| matches!(lines[j].kind, Kind::DocStart))
            .unwrap_or(lines.len());
        // The annotations just before the next `---` are that document's.
        while end > start + 1
            && matches!(
                lines[end - 1].kind,
                Kind::Annotation { .. } | Kind::Blank | Kind::YttComment | Kind::Comment
            )
        {
            end -= 1;
        }
        let mut text = String::new();
        for (j, line) in lines.iter().enumerate() {
            if (start + 1..end).contains(&j) {
                text.push_str(line.text);
            }
            text.push('\n');
        }
        let document = DataDocument {
            text,
            annotations,
            line: lines[start].number,
        };
        if kind == "overlay" {
            match super::overlay::patches("", &document) {
                Ok(patches) => {
                    self.count("overlay (patches in kdeploy.yaml)");
                    self.patches.extend(patches);
                }
                Err((_, line, why)) => {
                    let at = lines.iter().find(|l| l.number == line).unwrap_or(&lines[start]);
                    self.refuse(at, why);
                }
            }
        } else if kind == "values" {
            self.count("data values document");
            self.values.push(document);
        } else {
            self.count("data values schema");
            self.schemas.push(document);
        }
        Some(end)
    }

    /// Opens the node sugar; returns the text that closes it.
    fn sugar(&mut self, at: &Line<'_>, kind: Sugar, header: &str) -> Option<String> {
        let statement = match kind {
            Sugar::If => format!("if {header}"),
            Sugar::For => format!("for {header}"),
        };
        let stmt = match parse_stmt(&statement) {
            Ok(s) => s,
            Err(e) => {
                self.refuse(at, syntax(&e));
                return None;
            }
        };
        match stmt {
            Stmt::If(cond) => match self.scope.expr(&cond) {
                Ok(t) => {
                    self.count("if/end on a node");
                    self.out.push_str(&format!("{{% if {} %}}\n", t.text));
                    Some("{% endif %}".to_owned())
                }
                Err(Refusal(why)) => {
                    self.refuse(at, why);
                    None
                }
            },
            Stmt::For { vars, iter } => match self.for_header(&vars, &iter) {
                Ok(text) => {
                    self.count("for/end on a node");
                    self.out.push_str(&text);
                    self.out.push('\n');
                    Some("{% endfor %}".to_owned())
                }
                Err(Refusal(why)) => {
                    self.refuse(at, why);
                    None
                }
            },
            _ => {
                self.refuse(at, "this if/end or for/end".into());
                None
            }
        }
    }

    /// `{% for … %}` for Starlark's `for vars in iter:`, with a new frame holding the loop variables.
    fn for_header(&mut self, vars: &[String], iter: &Expr) -> Result<String, Refusal> {
        let (text, bound): (String, Vec<(String, Ty)>) = match (vars, iter) {
            ([k, v], Expr::Call(callee, args))
                if args.is_empty() && matches!(&**callee, Expr::Attr(_, m) if m == "items") =>
            {
                let Expr::Attr(map, _) = &**callee else { unreachable!() };
                let m = self.scope.expr(map)?;
                (
                    format!("{{% for {}, {} in {} %}}", local_name(k), local_name(v), m.text),
                    vec![(k.clone(), Ty::Str), (v.clone(), Ty::Unknown)],
                )
            }
            ([i, v], Expr::Call(callee, args))
                if matches!(&**callee, Expr::Name(n) if n == "enumerate")
                    && args.len() == 1
                    && self.scope.lookup("enumerate").is_none() =>
            {
                let list = self.scope.expr(&args[0].value)?;
                (
                    format!(
                        "{{% for {} in {} | starlark_iter %}}{{% set {} = loop.index0 %}}",
                        local_name(v),
                        list.text,
                        local_name(i)
                    ),
                    vec![(i.clone(), Ty::Int), (v.clone(), Ty::Unknown)],
                )
            }
            ([v], _) => {
                let it = self.scope.expr(iter)?;
                let source = if it.ty == Ty::List {
                    it.text
                } else {
                    format!(
                        "{} | starlark_iter",
                        if it.text.contains(' ') {
                            format!("({})", it.text)
                        } else {
                            it.text
                        }
                    )
                };
                (
                    format!("{{% for {} in {} %}}", local_name(v), source),
                    vec![(v.clone(), Ty::Unknown)],
                )
            }
            _ => {
                return Err(Refusal(
                    "a for loop that unpacks anything but .items() or enumerate()".into(),
                ));
            }
        };
        self.scope.frames.push(Default::default());
        for (name, ty) in bound {
            self.scope.bind(&name, Binding::Local(ty));
        }
        Ok(text)
    }

    fn code(&mut self, line: &Line<'_>, code: &str, blocks: &mut Vec<(Block, usize)>) {
        let stmt = match parse_stmt(code) {
            Ok(s) => s,
            Err(e) => {
                if code.trim_start().starts_with("if ") || code.trim_start().starts_with("for ") {
                    blocks.push((Block::Refused, line.number));
                }
                self.refuse(line, syntax_at(line.text, code, &e));
                return;
            }
        };
        let result: Result<(), Refusal> = (|| {
            match &stmt {
                Stmt::If(cond) => {
                    let t = self.scope.expr(cond)?;
                    self.out.push_str(&format!("{{% if {} %}}\n", t.text));
                    blocks.push((Block::If, line.number));
                    self.count("if");
                }
                Stmt::Elif(cond) => {
                    if !matches!(blocks.last(), Some((Block::If, _))) {
                        return Err(Refusal("an elif outside an if".into()));
                    }
                    let t = self.scope.expr(cond)?;
                    self.out.push_str(&format!("{{% elif {} %}}\n", t.text));
                }
                Stmt::Else => {
                    if !matches!(blocks.last(), Some((Block::If, _))) {
                        return Err(Refusal("an else outside an if".into()));
                    }
                    self.out.push_str("{% else %}\n");
                }
                Stmt::For { vars, iter } => {
                    let text = self.for_header(vars, iter)?;
                    self.out.push_str(&text);
                    self.out.push('\n');
                    blocks.push((Block::For, line.number));
                    self.count("for");
                }
                Stmt::End => match blocks.pop() {
                    Some((Block::If, _)) => self.out.push_str("{% endif %}\n"),
                    Some((Block::For, _)) => {
                        self.out.push_str("{% endfor %}\n");
                        self.scope.frames.pop();
                    }
                    Some((Block::Refused, opened)) => {
                        return Err(Refusal(format!("the end of the block refused at line {opened}")));
                    }
                    None => return Err(Refusal("an end without a block".into())),
                },
                Stmt::Break | Stmt::Continue => {
                    if !blocks.iter().any(|(b, _)| *b == Block::For) {
                        return Err(Refusal("break or continue outside a for loop".into()));
                    }
                    let word = if stmt == Stmt::Break { "break" } else { "continue" };
                    self.out.push_str(&format!("{{% {word} %}}\n"));
                }
                Stmt::Pass => {}
                Stmt::Assign { target, value } => {
                    if blocks.is_empty() {
                        // A top-level constant, read by the outline and inlined where it is used.
                        return Ok(());
                    }
                    if self.scope.bound_outside_innermost(target) {
                        return Err(Refusal(format!(
                            "{target} assigned inside a block while it is also set outside it (kdeploy scopes it to the block)"
                        )));
                    }
                    let t = self.scope.expr(value)?;
                    self.out
                        .push_str(&format!("{{% set {} = {} %}}\n", local_name(target), t.text));
                    self.scope.bind(target, Binding::Local(t.ty));
                    self.count("assignment");
                }
                Stmt::Expr(e) => {
                    let is_fail = matches!(e, Expr::Call(c, _) if matches!(&**c, Expr::Attr(_, m) if m == "fail") || matches!(&**c, Expr::Name(n) if n == "fail"));
                    if !is_fail {
                        return Err(Refusal(
                            "an expression statement (only assert.fail() and fail() convert)".into(),
                        ));
                    }
                    let t = self.scope.expr(e)?;
                    self.out.push_str(&format!("{{% set ytt_unused = {} %}}\n", t.text));
                    self.count("assert.fail");
                }
                Stmt::Return(_) => return Err(Refusal("a return outside a function".into())),
                Stmt::Load { .. } | Stmt::Def { .. } => {
                    return Err(Refusal("a load() or def inside a block".into()));
                }
            }
            Ok(())
        })();
        if let Err(Refusal(why)) = result {
            if matches!(stmt, Stmt::If(_) | Stmt::For { .. }) {
                blocks.push((Block::Refused, line.number));
            }
            self.refuse(line, why);
        }
    }

    /// A line of YAML content, with its value expression if it has one.
    fn content(&mut self, line: &Line<'_>, c: &Content<'_>, templated: bool) -> Result<String, String> {
        if c.unclosed {
            return Err("a quoted scalar or flow collection that continues on the next line".into());
        }
        let after_dashes = c.body[c.indent..].trim_start_matches(['-', ' ']);
        if let Some(key) = key_of(after_dashes)
            && !key.starts_with(['"', '\''])
            && !matches!(plain_scalar(key), Scalar::String(_))
        {
            return Err(format!(
                "the key {key}, which ytt reads as a {} (kdeploy's keys are strings)",
                match plain_scalar(key) {
                    Scalar::Bool(_) => "boolean",
                    Scalar::Null => "null",
                    _ => "number",
                }
            ));
        }
        let comment = c
            .comment
            .and_then(comment_text)
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        let body = if templated && c.body.contains("(@") {
            self.count("text template");
            self.text_template(c.body)?
        } else {
            literal_text(c.body)
        };
        let Some(expr_text) = c.expr else {
            return Ok(format!("{body}{comment}"));
        };
        let _ = line;
        if !c.empty_value {
            return Err("a node with both a value and an expression".into());
        }
        let expr = parse_expr(expr_text).map_err(|e| syntax_at(line.text, expr_text, &e))?;
        // A fragment function as the node's whole value: a component, one level in.
        if let Some(call) = self.component_call(&expr)? {
            let column = child_column(c);
            self.count("fragment function call");
            return Ok(format!("{body}{comment}\n{}{call}", " ".repeat(column)));
        }
        if let Expr::Call(callee, args) = &expr
            && let Expr::Attr(base, method) = &**callee
            && method == "replace"
            && matches!(&**base, Expr::Name(n) if matches!(self.scope.lookup(n), Some(Binding::Helper(super::translate::Helper::Template, _))))
        {
            let [Arg { name: None, value }] = args.as_slice() else {
                return Err("template.replace() with these arguments".into());
            };
            let Some(call) = self.component_call(value)? else {
                return Err("template.replace() of anything but a fragment function's call".into());
            };
            self.count("template.replace");
            let column = c.body.len() - c.body[c.indent..].trim_start_matches(['-', ' ']).len();
            let column = if c.seq_item { c.indent } else { column };
            return Ok(format!("{}{call}", " ".repeat(column)));
        }
        let t = self.scope.expr(&expr).map_err(|Refusal(why)| why)?;
        self.count("expression");
        Ok(format!("{body} {{{{ {} }}}}{comment}", t.text))
    }

    /// `{{<component arg={…}/>}}` when `e` calls a fragment function.
    fn component_call(&mut self, e: &Expr) -> Result<Option<String>, String> {
        let Expr::Call(callee, args) = e else { return Ok(None) };
        let Expr::Name(name) = &**callee else { return Ok(None) };
        let Some(Binding::Component {
            component,
            params,
            module,
        }) = self.scope.lookup(name)
        else {
            return Ok(None);
        };
        let mut given: Vec<(String, String)> = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            let param = match &arg.name {
                Some(n) => params.iter().find(|p| &p.name == n),
                None => params.get(i),
            };
            let Some(param) = param else {
                return Err(format!("a call of {name}() with an argument it does not take"));
            };
            let t = self.scope.expr(&arg.value).map_err(|Refusal(why)| why)?;
            given.push((local_name(&param.name), t.text));
        }
        // Defaults are filled in at the call, so any expression converts (Tera's own take literals only).
        for p in &params {
            if given.iter().any(|(n, _)| *n == local_name(&p.name)) {
                continue;
            }
            let Some(default) = &p.default else {
                return Err(format!("a call of {name}() without its argument {}", p.name));
            };
            let t = self.scope.expr_in_module(module, default).map_err(|Refusal(why)| why)?;
            given.push((local_name(&p.name), t.text));
        }
        let args: String = given.iter().map(|(n, v)| format!(" {n}={{ {v} }}")).collect();
        Ok(Some(format!("{{{{<{component}{args}/>}}}}")))
    }

    /// `text (@= expr @) text` as kdeploy's mixed text: each piece must be a string, as in ytt.
    fn text_template(&mut self, body: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = body;
        while let Some(open) = rest.find("(@") {
            out.push_str(&literal_text(&rest[..open]));
            let after = &rest[open + 2..];
            let Some(close) = after.find("@)") else {
                return Err("a text template (@ without its @)".into());
            };
            let inner = &after[..close];
            let Some(code) = inner.strip_prefix('=') else {
                return Err(
                    "a text template directive other than (@= … @) (code and trim markers do not convert)".into(),
                );
            };
            if code.ends_with('-') || code.starts_with('-') {
                return Err("a text template trim marker".into());
            }
            let code = code.trim();
            let e = parse_expr(code).map_err(|e| syntax_at(body, code, &e))?;
            let t = self.scope.expr(&e).map_err(|Refusal(why)| why)?;
            let text = if t.ty == Ty::Str {
                t.text
            } else {
                format!(
                    "{0} if {0} is string else throw(message={1})",
                    if t.text.contains(' ') {
                        format!("({})", t.text)
                    } else {
                        t.text.clone()
                    },
                    string_literal("a text template's (@= @) must give a string, as in ytt")
                )
            };
            out.push_str(&format!("{{{{ {text} }}}}"));
            rest = &after[close + 2..];
        }
        out.push_str(&literal_text(rest));
        Ok(out)
    }
}

fn annotation_refusal(name: &str) -> String {
    if name.starts_with("overlay/") {
        format!("the overlay annotation @{name} (overlays do not convert yet: write a kdeploy patch)")
    } else if name.starts_with("library/") {
        format!("the annotation @{name} (ytt libraries do not convert)")
    } else if name.starts_with("schema/") {
        format!("the annotation @{name} outside a schema document")
    } else {
        format!("the annotation @{name}")
    }
}

/// The column a node's value starts at on the next line: two past its key or dash.
fn child_column(c: &Content<'_>) -> usize {
    let rest = &c.body[c.indent..];
    let after_dashes = rest.trim_start_matches(['-', ' ']);
    let key_column = c.body.len() - after_dashes.len();
    if after_dashes.is_empty() {
        // `-` alone, or `- -`: under the last dash.
        c.body.trim_end().len() + 1
    } else {
        key_column + 2
    }
}

/// Text written as it is: each of Tera's delimiters (`{{`, `}}`, `{%`, `%}`, `{#`, `#}`) becomes an
/// expression giving it as a string, so no text of the input is ever read as Tera (a raw block would
/// end at the first `{% endraw %}` the input itself holds).
pub fn literal_text(text: &str) -> String {
    const DELIMITERS: [&str; 6] = ["{{", "}}", "{%", "%}", "{#", "#}"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        match DELIMITERS.iter().find(|d| rest.starts_with(**d)) {
            Some(d) => {
                out.push_str(&format!("{{{{ \"{d}\" }}}}"));
                rest = &rest[2..];
            }
            None => {
                let c = rest.chars().next().expect("not empty");
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// A YAML comment as it is, or nothing when it holds Tera's delimiters (a comment changes no object,
/// and an expression in it would never be put anywhere).
fn comment_text(text: &str) -> Option<&str> {
    let tera = ["{{", "}}", "{%", "%}", "{#", "#}"].iter().any(|d| text.contains(d));
    (!tera).then_some(text)
}

/// The last line index of the node starting at `start`, code closing its inner blocks included.
pub fn extent(lines: &[Line<'_>], start: usize) -> Result<usize, String> {
    let Kind::Content(node) = &lines[start].kind else {
        return Err("if/end or for/end on something that is not a node".into());
    };
    let mut last = start;
    let mut depth = 0usize;
    let mut depth_at_last = 0usize;
    let mut seq_siblings_allowed = !node.seq_item && node.empty_value;
    for (j, line) in lines.iter().enumerate().skip(start + 1) {
        match &line.kind {
            Kind::Content(c) => {
                let belongs = c.indent > node.indent || (c.indent == node.indent && seq_siblings_allowed && c.seq_item);
                if !belongs {
                    break;
                }
                if c.indent > node.indent {
                    seq_siblings_allowed = false;
                }
                last = j;
                depth_at_last = depth;
            }
            Kind::DocStart | Kind::DocEnd => break,
            Kind::Code(code) => match parse_stmt(code) {
                Ok(Stmt::End) if depth == 0 => break,
                Ok(Stmt::End) => {
                    depth -= 1;
                    last = j;
                    depth_at_last = depth;
                }
                Ok(Stmt::Elif(_) | Stmt::Else) if depth == 0 => break,
                Ok(s) if opens_block(&s) => depth += 1,
                _ => {}
            },
            _ => {}
        }
    }
    if depth_at_last != 0 {
        return Err("a block that starts inside a node and ends outside it".into());
    }
    Ok(last)
}
