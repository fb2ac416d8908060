//! A bounded YAML loader that keeps the source position of every node.
//!
//! We do not deserialize pipelines with serde: serde stops at the first error,
//! and a data engineer deserves every problem at once. Instead the file is
//! parsed into a small tree of [`Node`]s (each with its line and column) under
//! hard limits, and [`crate::decode`] walks that tree collecting diagnostics.
//!
//! # Guarantees
//! - Input larger than [`Limits::max_bytes`] is refused before parsing.
//! - Nesting deeper than [`Limits::max_depth`] is refused as soon as it is seen,
//!   so 20,000 levels of `[` fail fast with no deep recursion.
//! - Alias expansion is counted against [`Limits::max_nodes`], so an alias bomb
//!   ("billion laughs") fails fast with bounded memory.
//! - Duplicate mapping keys are reported, never silently overwritten.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostic::{Diagnostic, Location};

/// Resource limits for loading one YAML document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes the document may hold after alias expansion.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_depth: 64,
            max_nodes: 100_000,
        }
    }
}

/// How a scalar was written, which decides how it may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: `value`. Subject to type resolution (`true`, `12`, `~`).
    Plain,
    /// Quoted or block: always a string.
    Quoted,
}

/// The shape of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar with its text and style.
    Scalar {
        /// The scalar's text.
        value: String,
        /// How it was written.
        style: Style,
    },
    /// A sequence of nodes.
    Seq(Vec<Node>),
    /// A mapping, in source order. Keys are scalar nodes.
    Map(Vec<(Node, Node)>),
}

/// A YAML node and where it starts in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node is.
    pub kind: NodeKind,
    /// Where it starts.
    pub loc: Location,
}

impl Node {
    /// Count of nodes in this subtree, itself included.
    fn size(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar { .. } => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            NodeKind::Map(pairs) => {
                1 + pairs
                    .iter()
                    .map(|(k, v)| k.size() + v.size())
                    .sum::<usize>()
            }
        }
    }

    /// A short human name for the node's type, used in messages.
    pub fn type_name(&self) -> String {
        match &self.kind {
            NodeKind::Seq(_) => "a list".to_owned(),
            NodeKind::Map(_) => "a mapping".to_owned(),
            NodeKind::Scalar { value, style } => describe_scalar(value, *style),
        }
    }
}

/// Describes a scalar the way a YAML 1.2 reader would type it.
fn describe_scalar(value: &str, style: Style) -> String {
    if style == Style::Quoted {
        return format!("the string `{}`", truncate(value));
    }
    if is_null(value) {
        return "null".to_owned();
    }
    if matches!(
        value,
        "true" | "false" | "True" | "False" | "TRUE" | "FALSE"
    ) {
        return format!("the boolean `{value}`");
    }
    if value.parse::<i64>().is_ok() {
        return format!("the integer `{value}`");
    }
    if value.parse::<f64>().is_ok() {
        return format!("the number `{value}`");
    }
    format!("the string `{}`", truncate(value))
}

/// Whether a plain scalar is YAML null.
pub fn is_null(value: &str) -> bool {
    matches!(value, "" | "~" | "null" | "Null" | "NULL")
}

/// Shortens long values in messages.
pub fn truncate(value: &str) -> String {
    const MAX: usize = 40;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head}...")
    }
}

/// A container being built while events stream in.
enum Frame {
    Seq {
        loc: Location,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        loc: Location,
        anchor: usize,
        pairs: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        seen: HashMap<String, Location>,
    },
}

/// Loads one YAML document from `source` under `limits`.
///
/// Returns the root node (if the document could be read at all) and every
/// diagnostic found. A syntax error or a broken limit stops loading; a
/// duplicate key is reported and loading continues.
pub fn load(file: &str, source: &str, limits: Limits) -> (Option<Node>, Vec<Diagnostic>) {
    if source.len() > limits.max_bytes {
        let diag = Diagnostic::error(
            Location::new(file, 1, 1),
            format!(
                "file is {} bytes; the limit is {} bytes",
                source.len(),
                limits.max_bytes
            ),
        )
        .with_hint("a pipeline file this large is almost certainly not a pipeline");
        return (None, vec![diag]);
    }
    let mut loader = Loader {
        file,
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
        documents: 0,
        end: end_of_text(source),
        diags: Vec::new(),
    };
    match loader.run(source) {
        Ok(()) => {}
        Err(diag) => {
            loader.diags.push(diag);
            return (None, loader.diags);
        }
    }
    let root = loader.root.take();
    if root.is_none() && loader.diags.is_empty() {
        let message = if source.trim().is_empty() {
            "the file is empty"
        } else {
            "the file holds no YAML document, only comments"
        };
        loader.diags.push(
            Diagnostic::error(Location::new(file, 1, 1), message).with_hint(
                "a pipeline needs at least `name`, `principal`, `stores`, `datasets` and `stages`",
            ),
        );
    }
    (root, loader.diags)
}

/// Where the text ends: just after the last character of its last non-blank
/// line. Positions past it are clamped there, since the parser reports the
/// end of input one line beyond the file, which no editor can show.
fn end_of_text(source: &str) -> (usize, usize) {
    let text = source.trim_end_matches(['\n', '\r']);
    // YAML 1.2 line breaks: `\r\n`, `\r` or `\n`.
    let mut lines = 1;
    let mut last_len = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines += 1;
                last_len = 0;
            }
            _ => last_len += 1,
        }
    }
    (lines, last_len + 1)
}

struct Loader<'f> {
    file: &'f str,
    limits: Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    root: Option<Node>,
    documents: usize,
    /// See [`end_of_text`].
    end: (usize, usize),
    diags: Vec<Diagnostic>,
}

impl Loader<'_> {
    fn loc(&self, span: &Span) -> Location {
        self.at(span.start.line(), span.start.col() + 1)
    }

    /// A location, clamped to the end of the text.
    fn at(&self, line: usize, column: usize) -> Location {
        let (end_line, end_column) = self.end;
        if line > end_line || (line == end_line && column > end_column) {
            Location::new(self.file, end_line, end_column)
        } else {
            Location::new(self.file, line.max(1), column.max(1))
        }
    }

    fn run(&mut self, source: &str) -> Result<(), Diagnostic> {
        for item in Parser::new_from_str(source) {
            let (event, span) = item.map_err(|e| {
                let m = e.marker();
                let loc = self.at(m.line(), m.col() + 1);
                if e.info().contains("recursion limit") {
                    // The scanner's own guard can fire before ours.
                    return Diagnostic::error(
                        loc,
                        format!("nesting is deeper than {} levels", self.limits.max_depth),
                    );
                }
                let hint = if e.info().contains("tab") {
                    "indent with spaces; YAML does not allow tabs in indentation"
                } else {
                    "the parser stopped here; the mistake is often here or on the line above \
                     (an unclosed `[`, `{` or quote, a missing space after `:`, or uneven indentation)"
                };
                Diagnostic::error(loc, format!("invalid YAML: {}", e.info())).with_hint(hint)
            })?;
            self.event(event, &span)?;
        }
        Ok(())
    }

    fn count(&mut self, n: usize, loc: &Location) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return Err(Diagnostic::error(
                loc.clone(),
                format!(
                    "the document expands to more than {} nodes",
                    self.limits.max_nodes
                ),
            )
            .with_hint("aliases (`*name`) are expanded; an alias bomb is refused"));
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), Diagnostic> {
        let loc = self.loc(span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        loc,
                        "a pipeline file holds exactly one YAML document",
                    )
                    .with_hint("remove the second `---` or split the file"));
                }
                Ok(())
            }
            Event::Scalar(value, style, anchor, _tag) => {
                self.count(1, &loc)?;
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    _ => Style::Quoted,
                };
                let node = Node {
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        style,
                    },
                    loc,
                };
                self.finish(node, anchor)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.count(1, &loc)?;
                if self.stack.len() >= self.limits.max_depth {
                    return Err(Diagnostic::error(
                        loc,
                        format!("nesting is deeper than {} levels", self.limits.max_depth),
                    ));
                }
                let frame = if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        loc,
                        anchor,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        loc,
                        anchor,
                        pairs: Vec::new(),
                        pending_key: None,
                        seen: HashMap::new(),
                    }
                };
                self.stack.push(frame);
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Err(Diagnostic::error(loc, "invalid YAML: unbalanced end"));
                };
                let (node, anchor) = match frame {
                    Frame::Seq { loc, anchor, items } => (
                        Node {
                            kind: NodeKind::Seq(items),
                            loc,
                        },
                        anchor,
                    ),
                    Frame::Map {
                        loc, anchor, pairs, ..
                    } => (
                        Node {
                            kind: NodeKind::Map(pairs),
                            loc,
                        },
                        anchor,
                    ),
                };
                self.finish(node, anchor)
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(
                        Diagnostic::error(loc, "alias to an unknown anchor").with_hint(
                            "define the anchor (`&name`) before the alias (`*name`) that uses it",
                        ),
                    );
                };
                // Count before cloning, so a bomb is refused without building it.
                let size = target.size();
                self.count(size, &loc)?;
                let Some(mut node) = self.anchors.get(&id).cloned() else {
                    return Err(Diagnostic::error(loc, "alias to an unknown anchor"));
                };
                node.loc = loc;
                self.finish(node, 0)
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
        }
    }

    /// Places a finished node into its parent (or as the root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match top {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map {
                pairs,
                pending_key,
                seen,
                ..
            } => match pending_key.take() {
                None => {
                    let NodeKind::Scalar { value, .. } = &node.kind else {
                        return Err(Diagnostic::error(
                            node.loc.clone(),
                            "mapping keys must be plain strings",
                        ));
                    };
                    if let Some(first) = seen.get(value) {
                        self.diags.push(
                            Diagnostic::error(
                                node.loc.clone(),
                                format!("duplicate key `{}`", truncate(value)),
                            )
                            .with_hint(format!(
                                "`{}` is already defined at line {}, column {}; a key may appear once",
                                truncate(value),
                                first.line,
                                first.column
                            )),
                        );
                    } else {
                        seen.insert(value.clone(), node.loc.clone());
                    }
                    *pending_key = Some(node);
                }
                Some(key) => pairs.push((key, node)),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_ok(src: &str) -> Node {
        let (node, diags) = load("t.yaml", src, Limits::default());
        assert!(diags.is_empty(), "{diags:?}");
        node.unwrap()
    }

    #[test]
    fn positions_are_one_based() {
        let node = load_ok("a: 1\nb:\n  - x\n");
        let NodeKind::Map(pairs) = node.kind else {
            panic!("map")
        };
        assert_eq!(pairs[1].0.loc.line, 2);
        assert_eq!(pairs[1].0.loc.column, 1);
        let NodeKind::Seq(items) = &pairs[1].1.kind else {
            panic!("seq")
        };
        assert_eq!((items[0].loc.line, items[0].loc.column), (3, 5));
    }

    #[test]
    fn duplicate_key_is_reported_with_first_location() {
        let (_, diags) = load("t.yaml", "a: 1\nb: 2\na: 3\n", Limits::default());
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].loc.line, 3);
        assert!(diags[0].hint.as_deref().unwrap().contains("line 1"));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let (node, diags) = load("t.yaml", &src, Limits::default());
        assert!(node.is_none());
        assert!(diags[0].message.contains("expands to more than"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = "[".repeat(20_000);
        let (node, diags) = load("t.yaml", &src, Limits::default());
        assert!(node.is_none());
        assert!(diags[0].message.contains("deeper than 64"), "{diags:?}");
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let (node, diags) = load("t.yaml", "a: 12345678901", limits);
        assert!(node.is_none());
        assert!(diags[0].message.contains("limit is 10 bytes"));
    }

    #[test]
    fn end_of_input_errors_point_into_the_file() {
        for (src, at) in [
            ("[", (1, 2)),
            ("a: [b,\n", (1, 7)),
            ("a:\r\n  - [x\r\n\r\n", (2, 7)),
        ] {
            let (_, diags) = load("t.yaml", src, Limits::default());
            assert_eq!(
                (diags[0].loc.line, diags[0].loc.column),
                at,
                "{src:?}: {diags:?}"
            );
        }
    }

    #[test]
    fn second_document_is_refused() {
        let (_, diags) = load("t.yaml", "a: 1\n---\nb: 2\n", Limits::default());
        assert!(diags[0].message.contains("exactly one YAML document"));
    }

    #[test]
    fn quoted_scalars_keep_their_style() {
        let node = load_ok("a: 'no'\nb: no\n");
        let NodeKind::Map(pairs) = node.kind else {
            panic!("map")
        };
        assert!(matches!(
            pairs[0].1.kind,
            NodeKind::Scalar {
                style: Style::Quoted,
                ..
            }
        ));
        assert!(matches!(
            pairs[1].1.kind,
            NodeKind::Scalar {
                style: Style::Plain,
                ..
            }
        ));
    }
}
