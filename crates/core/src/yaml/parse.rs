//! Parsing a YAML stream into [`Node`] trees.
//!
//! Built on granit-parser's event stream (the parser under serde-saphyr), because kdeploy needs what a
//! serde deserializer hides: each scalar's style (plain or quoted decides its type), tags, and the
//! position of every node. Anchors, aliases and merge keys (`<<`) are supported as in go-yaml;
//! duplicate keys and tags kdeploy cannot honour are errors.
//!
//! Every input is bounded ([`limits`]): its size, the number of documents, nesting depth, scalar length
//! and what aliases may expand to, so that no input can make kdeploy hang or run out of memory
//! ("billion laughs" fails at its first alias past the budget, in microseconds).

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle as ParserStyle, Span, Tag};

use serde_json::Value as Json;

use super::resolve::Schema;
use super::{Entry, Mapping, Mark, Node, NodeValue, Scalar, resolve, scalar_to_json};

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

/// A scalar as the parser saw it, before resolution; given to a [`ScalarHook`].
#[derive(Debug)]
pub struct ScalarEvent<'a> {
    pub text: &'a str,
    pub style: ScalarStyle,
    pub is_key: bool,
    pub tagged: bool,
    pub mark: Mark,
}

/// Lets a caller take over the resolution of some scalars (the template stage replaces placeholders
/// with values this way). `Ok(None)` leaves the scalar to the normal rules.
pub type ScalarHook<'h> = dyn FnMut(&ScalarEvent<'_>) -> Result<Option<Node>, String> + 'h;

/// One document of a stream. An empty document has a null root.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Node,
    /// Where the document's content starts.
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub mark: Mark,
}

impl ParseError {
    /// `path:line:column: message`, for a text read from `path`.
    pub fn at(&self, path: &std::path::Path) -> String {
        format!(
            "{}:{}:{}: {}",
            path.display(),
            self.mark.line,
            self.mark.column,
            self.message
        )
    }
}

impl ParseError {
    fn new(message: impl Into<String>, mark: Mark) -> Self {
        ParseError {
            message: message.into(),
            mark,
        }
    }
}

/// Parses every document in `text` with kubectl's rules, letting `hook` resolve scalars first.
pub fn parse_stream(text: &str, hook: &mut ScalarHook<'_>) -> Result<Vec<Document>, ParseError> {
    parse_stream_in(text, Schema::Kubectl, hook)
}

/// The bounds every YAML input is held to. Kubernetes itself stores at most 1.5 MiB per object, so
/// these leave room for any real manifest, values file or vault file while keeping memory and time small.
pub mod limits {
    /// The size of one YAML text (a file, a rendered template, a flag's value).
    pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;
    /// Documents in one stream.
    pub const MAX_DOCUMENTS: usize = 100_000;
    /// Nested collections (the deepest CRD schemas in real use stay under 100).
    pub const MAX_DEPTH: usize = 256;
    /// The length of one scalar.
    pub const MAX_SCALAR_BYTES: usize = 16 * 1024 * 1024;
    /// Nodes that aliases may add to one stream by expansion (go-yaml starts refusing near 400,000).
    pub const MAX_ALIAS_NODES: usize = 400_000;
}

/// Parses every document in `text` with the plain-scalar rules of `schema`.
pub fn parse_stream_in(text: &str, schema: Schema, hook: &mut ScalarHook<'_>) -> Result<Vec<Document>, ParseError> {
    if text.len() > limits::MAX_INPUT_BYTES {
        return Err(size_error(
            "YAML text",
            text.len(),
            limits::MAX_INPUT_BYTES,
            Mark { line: 1, column: 1 },
        ));
    }
    let mut builder = Builder {
        schema,
        tab_indented: tab_indented_lines(text),
        hook,
        stack: Vec::new(),
        anchors: HashMap::new(),
        documents: Vec::new(),
        document_mark: None,
        alias_nodes: 0,
    };
    for event in Parser::new_from_str_with_options(text, parser_options()) {
        let (event, span) = event.map_err(|e| {
            let marker = e.marker();
            let message = match e.kind() {
                granit_parser::ErrorKind::RecursionLimitExceeded => depth_error(Mark::default()).message,
                _ => e.info().to_owned(),
            };
            ParseError::new(
                message,
                Mark {
                    line: marker.line(),
                    column: marker.col() + 1,
                },
            )
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.documents)
}

/// The parser's own nesting limits sit just past kdeploy's, so kdeploy's error is the one reported.
fn parser_options() -> granit_parser::Options {
    granit_parser::options! {
        flow_nesting_limit: limits::MAX_DEPTH + 1,
        block_nesting_limit: limits::MAX_DEPTH + 1,
    }
}

fn style_of(style: ParserStyle) -> ScalarStyle {
    match style {
        ParserStyle::Plain => ScalarStyle::Plain,
        ParserStyle::SingleQuoted => ScalarStyle::SingleQuoted,
        ParserStyle::DoubleQuoted => ScalarStyle::DoubleQuoted,
        ParserStyle::Literal => ScalarStyle::Literal,
        ParserStyle::Folded => ScalarStyle::Folded,
    }
}

/// What a tab before a key is told: YAML indents with spaces only.
pub const TAB_INDENT_MESSAGE: &str = "a tab indents this key: YAML indents with spaces only (kubectl refuses it too)";

/// A line whose indentation holds a tab: its number, the characters of indentation, and the column
/// of the first tab.
struct TabIndent {
    line: usize,
    indent: usize,
    tab_column: usize,
}

/// The lines indented with a tab before content (blank and comment lines aside). The parser refuses
/// such indentation inside a block, but reads a tab before a top-level key as separation, where
/// kubectl's reader (go-yaml) and PyYAML refuse it: kdeploy refuses it everywhere. Almost every text has
/// no tab at all, and then this costs one scan for the byte.
fn tab_indented_lines(text: &str) -> Vec<TabIndent> {
    if !text.as_bytes().contains(&b'\t') {
        return Vec::new();
    }
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let rest = line.trim_start_matches([' ', '\t']);
            let indentation = &line[..line.len() - rest.len()];
            let tab = indentation.find('\t')?;
            (!rest.is_empty() && !rest.starts_with('#')).then(|| TabIndent {
                line: i + 1,
                indent: indentation.chars().count(),
                tab_column: tab + 1,
            })
        })
        .collect()
}

/// Where the tab is, if the scalar at `mark` is the first thing on a tab-indented line.
fn tab_before(lines: &[TabIndent], mark: Mark) -> Option<Mark> {
    let found = lines.binary_search_by_key(&mark.line, |t| t.line).ok()?;
    let line = &lines[found];
    (line.indent + 1 == mark.column).then_some(Mark {
        line: line.line,
        column: line.tab_column,
    })
}

fn mark_of(span: &Span) -> Mark {
    Mark {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        mark: Mark,
        anchor: usize,
        /// Nodes in this collection so far, itself included (aliases count what they expand to).
        size: usize,
        /// Levels of collections in it so far, itself included.
        height: usize,
    },
    Map {
        entries: Mapping,
        mark: Mark,
        anchor: usize,
        size: usize,
        height: usize,
        pending_key: Option<PendingKey>,
        /// Keys that came from a merge (`<<`): explicit keys may override them.
        merged: Vec<String>,
    },
}

/// A key waiting for its value. Only a plain, untagged `<<` written in the source is a merge key; a
/// value that happens to be the string "<<" is an ordinary key.
struct PendingKey {
    text: String,
    mark: Mark,
    is_merge: bool,
}

/// How many nodes a tree holds and how many levels of collections deep it is.
#[derive(Debug, Clone, Copy)]
struct Extent {
    size: usize,
    height: usize,
}

const SCALAR: Extent = Extent { size: 1, height: 0 };

struct Builder<'h, 'a> {
    schema: Schema,
    /// Lines indented with a tab (see [`tab_indented_lines`]).
    tab_indented: Vec<TabIndent>,
    hook: &'h mut ScalarHook<'a>,
    stack: Vec<Frame>,
    /// Anchored nodes with their size and height.
    anchors: HashMap<usize, (Node, Extent)>,
    documents: Vec<Document>,
    document_mark: Option<Mark>,
    /// Nodes added to the stream by alias expansion so far.
    alias_nodes: usize,
}

const MERGE_KEY: &str = "<<";

impl Builder<'_, '_> {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), ParseError> {
        let mark = mark_of(&span);
        match event {
            Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart(..) => {
                self.anchors.clear();
                self.document_mark = None;
                if self.documents.len() >= limits::MAX_DOCUMENTS {
                    return Err(ParseError::new(
                        format!("more than {} documents in one stream", limits::MAX_DOCUMENTS),
                        mark,
                    ));
                }
            }
            Event::DocumentEnd => {
                if self.document_mark.is_none() {
                    self.documents.push(Document {
                        root: Node::new(NodeValue::Scalar(Scalar::Null), mark),
                        mark,
                    });
                }
                self.document_mark = None;
            }
            Event::Alias(id) => {
                let (node, extent) = self
                    .anchors
                    .get(&id)
                    .ok_or_else(|| ParseError::new("alias to an unknown anchor", mark))?;
                // Checked before the copy is made, so an expansion past the budget costs nothing.
                self.alias_nodes += extent.size;
                if self.alias_nodes > limits::MAX_ALIAS_NODES {
                    return Err(ParseError::new(
                        format!(
                            "excessive aliasing: aliases here expand to more than {} nodes (a \"billion laughs\" input?)",
                            limits::MAX_ALIAS_NODES
                        ),
                        mark,
                    ));
                }
                let (node, extent) = (node.clone(), *extent);
                if self.stack.len() + extent.height > limits::MAX_DEPTH {
                    return Err(depth_error(mark));
                }
                self.add(node, extent, true)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                if text.len() > limits::MAX_SCALAR_BYTES {
                    return Err(size_error("scalar", text.len(), limits::MAX_SCALAR_BYTES, mark));
                }
                if self.is_key_position()
                    && let Some(tab) = tab_before(&self.tab_indented, mark)
                {
                    return Err(ParseError::new(TAB_INDENT_MESSAGE, tab));
                }
                let node = self.scalar(&text, style, tag.as_deref(), mark)?;
                if anchor != 0 {
                    self.anchors.insert(anchor, (node.clone(), SCALAR));
                }
                self.add(
                    node,
                    SCALAR,
                    style == ParserStyle::Plain && tag.is_none() && text == MERGE_KEY,
                )?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", mark)?;
                self.check_depth(mark)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    mark,
                    anchor,
                    size: 1,
                    height: 1,
                });
            }
            Event::MappingStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", mark)?;
                self.check_depth(mark)?;
                self.stack.push(Frame::Map {
                    entries: Mapping::default(),
                    mark,
                    anchor,
                    size: 1,
                    height: 1,
                    pending_key: None,
                    merged: Vec::new(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, extent) = match self.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        mark,
                        anchor,
                        size,
                        height,
                    }) => (Node::new(NodeValue::Seq(items), mark), anchor, Extent { size, height }),
                    Some(Frame::Map {
                        entries,
                        mark,
                        anchor,
                        size,
                        height,
                        ..
                    }) => (
                        Node::new(NodeValue::Map(entries), mark),
                        anchor,
                        Extent { size, height },
                    ),
                    None => return Err(ParseError::new("unbalanced collection end", mark)),
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, (node.clone(), extent));
                }
                self.add(node, extent, false)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Aliases can nest a tree deeper than the text does; the parser's own limit covers the text.
    fn check_depth(&self, mark: Mark) -> Result<(), ParseError> {
        if self.stack.len() >= limits::MAX_DEPTH {
            return Err(depth_error(mark));
        }
        Ok(())
    }

    fn is_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { pending_key: None, .. }))
    }

    fn scalar(&mut self, text: &str, style: ParserStyle, tag: Option<&Tag>, mark: Mark) -> Result<Node, ParseError> {
        let style = style_of(style);
        let event = ScalarEvent {
            text,
            style,
            is_key: self.is_key_position(),
            tagged: tag.is_some(),
            mark,
        };
        if let Some(node) = (self.hook)(&event).map_err(|message| ParseError::new(message, mark))? {
            return Ok(node);
        }
        // kubectl refuses null keys ("Unsupported map key"); a quoted "null" is an ordinary key.
        if event.is_key
            && style == ScalarStyle::Plain
            && tag.is_none()
            && resolve::plain_scalar_in(text, self.schema) == Scalar::Null
        {
            return Err(ParseError::new(
                "a mapping key is empty or null; write the key, or quote it (\"null\") if you mean the word",
                mark,
            ));
        }
        if style == ScalarStyle::Plain
            && tag.is_none()
            && !event.is_key
            && self.schema == Schema::Kubectl
            && resolve::is_oversized_integer(text)
        {
            return Err(ParseError::new(
                format!(
                    "the integer {text} does not fit in 64 bits (kubectl would turn it into a float, losing digits); quote it to keep it as a string"
                ),
                mark,
            ));
        }
        // A key is always meant as a string: `on:` stays "on" instead of go-yaml's "true".
        let scalar = match tag {
            Some(tag) => tagged_scalar(text, tag, mark)?,
            None if style == ScalarStyle::Plain && !event.is_key => resolve::plain_scalar_in(text, self.schema),
            None => Scalar::String(text.to_owned()),
        };
        Ok(Node::new(NodeValue::Scalar(scalar), mark))
    }

    /// Adds a finished node to the collection being built, or ends the document with it.
    fn add(&mut self, node: Node, extent: Extent, is_merge_key: bool) -> Result<(), ParseError> {
        if let Some(Frame::Seq { size, height, .. } | Frame::Map { size, height, .. }) = self.stack.last_mut() {
            *size += extent.size;
            *height = (*height).max(extent.height + 1);
        }
        let Some(frame) = self.stack.last_mut() else {
            self.document_mark = Some(node.mark);
            self.documents.push(Document {
                mark: node.mark,
                root: node,
            });
            return Ok(());
        };
        match frame {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map {
                entries,
                pending_key,
                merged,
                ..
            } => match pending_key.take() {
                None => {
                    let mark = node.mark;
                    *pending_key = Some(PendingKey {
                        text: key_text(node)?,
                        mark,
                        is_merge: is_merge_key,
                    });
                }
                Some(PendingKey {
                    mark, is_merge: true, ..
                }) => merge_into(entries, merged, node, mark)?,
                Some(PendingKey {
                    text: key,
                    mark: key_mark,
                    ..
                }) => {
                    let entry = Entry { key_mark, value: node };
                    if let Some(position) = merged.iter().position(|k| *k == key) {
                        merged.remove(position);
                        entries.insert(key, entry);
                    } else {
                        match entries.entry(key) {
                            indexmap::map::Entry::Vacant(vacant) => {
                                vacant.insert(entry);
                            }
                            indexmap::map::Entry::Occupied(previous) => {
                                let first = previous.get().key_mark;
                                return Err(ParseError::new(
                                    format!(
                                        "duplicate key `{}` (first defined at line {}, column {})",
                                        previous.key(),
                                        first.line,
                                        first.column
                                    ),
                                    key_mark,
                                ));
                            }
                        }
                    }
                }
            },
        }
        Ok(())
    }
}

/// One document read straight into JSON, and where its content starts.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonDocument {
    pub root: Json,
    pub mark: Mark,
}

/// The common case of [`parse_stream`], straight into JSON without the marked tree in between (a
/// tenth of a large render went into building that tree and converting it).
///
/// `None` when the text holds anything this path leaves to the full one: anchors, aliases, merge keys,
/// tags, null keys or keys that are not scalars, a float JSON cannot carry, a repeated key, a limit
/// reached, or any syntax error. The caller then reads the text with [`parse_stream`], which gives the
/// same values (a test checks this on the real-world corpus) or the error with its position. So `hook`
/// may be asked about the same scalars twice and must answer the same way.
pub fn parse_stream_json(text: &str, hook: &mut ScalarHook<'_>) -> Option<Vec<JsonDocument>> {
    if text.len() > limits::MAX_INPUT_BYTES {
        return None;
    }
    let mut builder = JsonBuilder {
        tab_indented: tab_indented_lines(text),
        hook,
        stack: Vec::new(),
        documents: Vec::new(),
        has_root: false,
    };
    for event in Parser::new_from_str_with_options(text, parser_options()) {
        let (event, span) = event.ok()?;
        builder.event(event, &span)?;
    }
    Some(builder.documents)
}

enum JsonFrame {
    Seq {
        items: Vec<Json>,
        mark: Mark,
    },
    Map {
        entries: serde_json::Map<String, Json>,
        mark: Mark,
        pending_key: Option<String>,
    },
}

struct JsonBuilder<'h, 'a> {
    tab_indented: Vec<TabIndent>,
    hook: &'h mut ScalarHook<'a>,
    stack: Vec<JsonFrame>,
    documents: Vec<JsonDocument>,
    /// Whether the current document has its root.
    has_root: bool,
}

impl JsonBuilder<'_, '_> {
    /// `None` hands the whole text to the full path.
    fn event(&mut self, event: Event<'_>, span: &Span) -> Option<()> {
        let mark = mark_of(span);
        match event {
            Event::DocumentStart(..) => {
                self.has_root = false;
                if self.documents.len() >= limits::MAX_DOCUMENTS {
                    return None;
                }
            }
            Event::DocumentEnd => {
                if !self.has_root {
                    self.documents.push(JsonDocument { root: Json::Null, mark });
                }
                self.has_root = false;
            }
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() || text.len() > limits::MAX_SCALAR_BYTES {
                    return None;
                }
                if self.is_key_position() && tab_before(&self.tab_indented, mark).is_some() {
                    return None;
                }
                if self.is_key_position() {
                    let key = self.key(&text, style, mark)?;
                    let Some(JsonFrame::Map { pending_key, .. }) = self.stack.last_mut() else {
                        return None;
                    };
                    *pending_key = Some(key);
                } else {
                    let value = self.value(&text, style, mark)?;
                    self.add(value, mark)?;
                }
            }
            Event::SequenceStart(_, anchor, ref tag) | Event::MappingStart(_, anchor, ref tag) => {
                // A collection as a key is an error the full path words.
                if anchor != 0 || tag.is_some() || self.stack.len() >= limits::MAX_DEPTH || self.is_key_position() {
                    return None;
                }
                self.stack.push(if matches!(event, Event::SequenceStart(..)) {
                    JsonFrame::Seq {
                        items: Vec::new(),
                        mark,
                    }
                } else {
                    JsonFrame::Map {
                        entries: serde_json::Map::new(),
                        mark,
                        pending_key: None,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, mark) = match self.stack.pop()? {
                    JsonFrame::Seq { items, mark } => (Json::Array(items), mark),
                    JsonFrame::Map { entries, mark, .. } => (Json::Object(entries), mark),
                };
                self.add(value, mark)?;
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) => return None,
            _ => {}
        }
        Some(())
    }

    fn is_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(JsonFrame::Map { pending_key: None, .. }))
    }

    /// A key, as [`Builder::scalar`] and [`key_text`] make it; merge keys and null keys go to the full path.
    fn key(&mut self, text: &str, style: ParserStyle, mark: Mark) -> Option<String> {
        let style = style_of(style);
        if style == ScalarStyle::Plain && text == MERGE_KEY {
            return None;
        }
        let event = ScalarEvent {
            text,
            style,
            is_key: true,
            tagged: false,
            mark,
        };
        if let Some(node) = (self.hook)(&event).ok()? {
            return key_text(node).ok();
        }
        if style == ScalarStyle::Plain && resolve::plain_scalar(text) == Scalar::Null {
            return None;
        }
        Some(text.to_owned())
    }

    /// A value, as [`Builder::scalar`] and [`Node::into_json`] make it.
    fn value(&mut self, text: &str, style: ParserStyle, mark: Mark) -> Option<Json> {
        let style = style_of(style);
        let event = ScalarEvent {
            text,
            style,
            is_key: false,
            tagged: false,
            mark,
        };
        if let Some(node) = (self.hook)(&event).ok()? {
            return node.into_json().ok();
        }
        if style != ScalarStyle::Plain {
            return Some(Json::String(text.to_owned()));
        }
        if resolve::is_oversized_integer(text) {
            return None;
        }
        match resolve::plain_scalar(text) {
            Scalar::String(s) => Some(Json::String(s)),
            scalar => scalar_to_json(&scalar, mark).ok(),
        }
    }

    fn add(&mut self, value: Json, mark: Mark) -> Option<()> {
        match self.stack.last_mut() {
            None => {
                self.has_root = true;
                self.documents.push(JsonDocument { root: value, mark });
            }
            Some(JsonFrame::Seq { items, .. }) => items.push(value),
            Some(JsonFrame::Map {
                entries, pending_key, ..
            }) => match entries.entry(pending_key.take()?) {
                serde_json::map::Entry::Vacant(vacant) => {
                    vacant.insert(value);
                }
                serde_json::map::Entry::Occupied(_) => return None,
            },
        }
        Some(())
    }
}

fn size_error(what: &str, size: usize, limit: usize, mark: Mark) -> ParseError {
    const MIB: usize = 1024 * 1024;
    ParseError::new(
        format!(
            "a {what} of {} MiB; kdeploy reads a {what} of at most {} MiB",
            size.div_ceil(MIB),
            limit / MIB
        ),
        mark,
    )
}

fn depth_error(mark: Mark) -> ParseError {
    ParseError::new(
        format!(
            "collections nested more than {} deep; kdeploy refuses such input",
            limits::MAX_DEPTH
        ),
        mark,
    )
}

/// Merge keys: `<<: *base` or `<<: [*a, *b]`; keys already present win, earlier merges win.
fn merge_into(entries: &mut Mapping, merged: &mut Vec<String>, node: Node, mark: Mark) -> Result<(), ParseError> {
    let sources = match node.value {
        NodeValue::Map(map) => vec![map],
        NodeValue::Seq(items) => items
            .into_iter()
            .map(|item| match item.value {
                NodeValue::Map(map) => Ok(map),
                _ => Err(ParseError::new(
                    "a merge key (<<) takes a mapping or a list of mappings",
                    item.mark,
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ParseError::new(
                "a merge key (<<) takes a mapping or a list of mappings",
                mark,
            ));
        }
    };
    for map in sources {
        for (key, entry) in map {
            if !entries.contains_key(&key) {
                merged.push(key.clone());
                entries.insert(key, entry);
            }
        }
    }
    Ok(())
}

fn key_text(node: Node) -> Result<String, ParseError> {
    match node.value {
        NodeValue::Scalar(Scalar::String(s)) => Ok(s),
        NodeValue::Scalar(Scalar::Null) => Err(ParseError::new(
            "a mapping key is empty or null; write the key, or quote it (\"null\") if you mean the word",
            node.mark,
        )),
        NodeValue::Scalar(Scalar::Bool(b)) => Ok(b.to_string()),
        NodeValue::Scalar(Scalar::Int(i)) => Ok(i.to_string()),
        NodeValue::Scalar(Scalar::UInt(u)) => Ok(u.to_string()),
        NodeValue::Scalar(Scalar::Float(f)) => Ok(f.to_string()),
        _ => Err(ParseError::new(
            "a mapping key must be a scalar; lists and maps as keys are not supported",
            node.mark,
        )),
    }
}

fn core_tag_suffix(tag: &Tag) -> Option<&str> {
    tag.is_yaml_core_schema().then(|| tag.suffix())
}

fn tagged_scalar(text: &str, tag: &Tag, mark: Mark) -> Result<Scalar, ParseError> {
    let expect = |scalar: Scalar, kind: &str, ok: bool| {
        if ok {
            Ok(scalar)
        } else {
            Err(ParseError::new(format!("`{text}` is not a valid !!{kind}"), mark))
        }
    };
    match core_tag_suffix(tag) {
        Some("str" | "binary" | "timestamp") => Ok(Scalar::String(text.to_owned())),
        Some("null") => Ok(Scalar::Null),
        Some("bool") => {
            let resolved = resolve::plain_scalar(text);
            let ok = matches!(resolved, Scalar::Bool(_));
            expect(resolved, "bool", ok)
        }
        Some("int") => {
            let resolved = resolve::plain_scalar(text);
            let ok = matches!(resolved, Scalar::Int(_) | Scalar::UInt(_));
            expect(resolved, "int", ok)
        }
        Some("float") => match resolve::plain_scalar(text) {
            Scalar::Int(i) => Ok(Scalar::Float(i as f64)),
            Scalar::UInt(u) => Ok(Scalar::Float(u as f64)),
            resolved @ Scalar::Float(_) => Ok(resolved),
            _ => expect(Scalar::Null, "float", false),
        },
        _ => Err(ParseError::new(
            format!(
                "unsupported YAML tag `{}{}` (only the core tags such as !!str and !!int are)",
                tag.handle(),
                tag.suffix()
            ),
            mark,
        )),
    }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, mark: Mark) -> Result<(), ParseError> {
    match tag {
        None => Ok(()),
        Some(tag) if core_tag_suffix(tag) == Some(expected) => Ok(()),
        Some(tag) => Err(ParseError::new(
            format!(
                "unsupported YAML tag `{}{}` on a collection",
                tag.handle(),
                tag.suffix()
            ),
            mark,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<serde_json::Value>, ParseError> {
        let docs = parse_stream(text, &mut |_| Ok(None))?;
        Ok(docs.into_iter().map(|d| d.root.into_json().unwrap()).collect())
    }

    /// The JSON path against the full one: the same documents and marks, or `None`.
    fn json_path(text: &str) -> Option<Vec<JsonDocument>> {
        let fast = parse_stream_json(text, &mut |_| Ok(None));
        if let Some(fast) = &fast {
            let full = crate::yaml::parse_stream_to_json(text, &mut |_| Ok(None))
                .unwrap_or_else(|e| panic!("the JSON path read what the full one refuses ({e}):\n{text}"));
            assert_eq!(fast, &full, "the paths differ on:\n{text}");
        }
        fast
    }

    #[test]
    fn the_json_path_reads_what_the_full_path_reads_and_leaves_the_rest_to_it() {
        let common = [
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {app: web}}\ndata:\n  k: v\n",
            "a: 1\n---\n# only a comment\n---\nb: [1, 2.5, 'x', \"y\", null, ~, true, on, 0x1f, 0644, 1e3]\n",
            "---\n---\n",
            "",
            "- a\n- {b: c}\n- [d, [e]]\n- k: |\n    block\n  f: >-\n    folded\n    text\n",
            "on: yes\n'null': 1\n\"~\": 2\n12: twelve\ntrue: t\n",
            "plain scalar at the root\n",
            "deep: {a: {b: {c: {d: [[[[1]]]]}}}}\n",
        ];
        for text in common {
            assert!(json_path(text).is_some(), "the JSON path should read:\n{text}");
        }
        let left_to_the_full_path = [
            "base: &b {x: 1}\nd:\n  <<: *b\n",
            "a: &a 1\nb: *a\n",
            "t: !!str 12\n",
            "a: 1\na: 2\n",
            "~: null key\n",
            ": empty key\n",
            "? [a]\n: collection key\n",
            "f: .inf\n",
            "big: 123456789012345678901234567890\n",
            "a: [unclosed\n",
            "a: b: c\n",
        ];
        for text in left_to_the_full_path {
            assert!(json_path(text).is_none(), "the full path should read:\n{text}");
        }
    }

    #[test]
    fn the_json_path_asks_the_hook_as_the_full_path_does() {
        let text = "k: SUB\nSUB: v\nlist: [SUB, 'SUB']\n";
        let asked = std::cell::RefCell::new(Vec::new());
        let mut hook = |event: &ScalarEvent<'_>| {
            asked
                .borrow_mut()
                .push((event.text.to_owned(), event.is_key, event.style));
            Ok((event.text == "SUB" && !event.is_key)
                .then(|| Node::from_json(&serde_json::json!({"n": 1}), event.mark)))
        };
        let fast = parse_stream_json(text, &mut hook).unwrap();
        let fast_asked = asked.take();
        let full = parse_stream(text, &mut hook).unwrap();
        assert_eq!(fast_asked, asked.take());
        assert_eq!(fast_asked.len(), 7, "every scalar, keys included: {fast_asked:?}");
        assert_eq!(fast[0].root, full[0].root.clone().into_json().unwrap());
        assert_eq!(
            fast[0].root,
            serde_json::json!({"k": {"n": 1}, "SUB": "v", "list": [{"n": 1}, {"n": 1}]})
        );
        let failing = parse_stream_json(text, &mut |event| {
            if event.text == "SUB" {
                Err("no".to_owned())
            } else {
                Ok(None)
            }
        });
        assert!(failing.is_none(), "a hook's error is the full path's to report");
    }

    #[test]
    fn plain_scalars_resolve_as_kubectl_reads_them_and_quoted_ones_stay_strings() {
        let docs = parse("mode: 0644\nq: '0644'\non: yes\nv: 1.10\nt: !!str 12\nblock: |\n  a\n  b\n").unwrap();
        assert_eq!(
            docs[0],
            serde_json::json!({"mode": 420, "q": "0644", "on": true, "v": 1.1, "t": "12", "block": "a\nb\n"})
        );
    }

    #[test]
    fn streams_anchors_and_merge_keys() {
        let text = "a: 1\n---\n# only a comment\n---\nbase: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\nlist: [*b]\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1], serde_json::Value::Null);
        assert_eq!(docs[2]["derived"], serde_json::json!({"x": 1, "y": 3}));
        assert_eq!(docs[2]["list"][0]["y"], 2);
    }

    #[test]
    fn only_a_literal_plain_merge_key_merges() {
        let docs = parse("a: &a {x: 1}\nquoted:\n  '<<': *a\n").unwrap();
        assert_eq!(docs[0]["quoted"], serde_json::json!({"<<": {"x": 1}}));
    }

    #[test]
    fn duplicate_keys_are_errors_with_both_positions() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.mark, Mark { line: 3, column: 1 });
        assert!(
            err.message.contains("first defined at line 1, column 1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn syntax_errors_and_unknown_tags_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.mark.line >= 1);
        let err = parse("a: !custom x\n").unwrap_err();
        assert!(err.message.contains("unsupported YAML tag"), "{}", err.message);
        assert_eq!(err.mark.line, 1);
        let err = parse("a: !!int abc\n").unwrap_err();
        assert!(err.message.contains("not a valid !!int"));
    }

    #[test]
    fn a_billion_laughs_fails_fast_at_the_alias_past_the_budget() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let refs = vec![format!("*a{}", level - 1); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("excessive aliasing"), "{}", err.message);
        assert!(err.mark.line > 1 && err.mark.line <= 10, "{:?}", err.mark);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Ordinary anchors are untouched by the budget.
        assert!(parse("a: &a {x: 1}\nb: *a\nc: *a\n").is_ok());
    }

    #[test]
    fn nesting_is_bounded_in_the_text_and_through_aliases() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&deep(limits::MAX_DEPTH)).is_ok());
        let err = parse(&deep(limits::MAX_DEPTH + 1)).unwrap_err();
        assert!(err.message.contains("nested more than"), "{}", err.message);
        let block: String = (0..limits::MAX_DEPTH + 2)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        assert!(parse(&block).unwrap_err().message.contains("nested more than"));
        // Each alias level adds the anchor's height: 200 + 200 levels through one alias is too deep.
        let half = deep(200);
        let err = parse(&format!("a: &a {half}\nb: {}*a{}\n", "[".repeat(200), "]".repeat(200))).unwrap_err();
        assert!(err.message.contains("nested more than"), "{}", err.message);
    }

    #[test]
    fn sizes_are_bounded() {
        let long = "x".repeat(limits::MAX_SCALAR_BYTES + 1);
        let err = parse(&format!("a: {long}\n")).unwrap_err();
        assert!(err.message.contains("scalar of at most 16 MiB"), "{}", err.message);
        let many = "---\na: 1\n".repeat(limits::MAX_DOCUMENTS + 1);
        assert!(parse(&many).unwrap_err().message.contains("documents in one stream"));
    }

    #[test]
    fn null_and_empty_keys_and_tab_indentation_are_errors() {
        for text in ["~: 1\n", "null: 1\n", ": 1\n", "a:\n  ? \n  : 1\n"] {
            let err = parse(text).unwrap_err();
            assert!(
                err.message.contains("key is empty or null"),
                "{text:?}: {}",
                err.message
            );
        }
        assert_eq!(parse("'null': 1\n").unwrap()[0], serde_json::json!({"null": 1}));
        let err = parse("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(err.mark.line, 2, "{}", err.message);
        assert!(parse("x: 1\n\ty: 2\n").is_err());
        for text in ["\tab: 1\n", "---\n\ta: 1\n", "\t\"a\": 1\n"] {
            let err = parse(text).unwrap_err();
            assert!(
                err.message.contains("a tab indents this key"),
                "{text:?}: {}",
                err.message
            );
            assert!(parse_stream_json(text, &mut |_| Ok(None)).is_none(), "{text:?}");
        }
        // Tabs inside values, after a key, in comments and in block scalars are text, not indentation.
        for text in ["a: \tb\n", "a:\t1\n", "\t# c\na: 1\n", "a: |\n  x\n  \ty\n"] {
            assert!(parse(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn hook_sees_keys_and_styles() {
        let mut seen = Vec::new();
        parse_stream("k: 'v'\n- x\n", &mut |e| {
            seen.push((e.text.to_owned(), e.is_key, e.style));
            Ok(None)
        })
        .ok();
        assert_eq!(seen[0], ("k".to_owned(), true, ScalarStyle::Plain));
        assert_eq!(seen[1], ("v".to_owned(), false, ScalarStyle::SingleQuoted));
    }
}
