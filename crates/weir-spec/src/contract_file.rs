//! A dataset's `contract:`: a mapping written inline, or the path of a
//! contract file relative to the pipeline file's folder.
//!
//! # Security
//! A contract file is read under the same [`Limits`] as a pipeline, and
//! only from inside the pipeline file's folder: absolute paths and `..` are
//! refused, and a path whose symbolic links lead out of the folder too. A
//! pipeline uploaded to the server therefore cannot make weir read, or echo
//! in a diagnostic, a file it was not meant to.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::contract_spec::{self, Decoded, Origin};
use crate::decode::{self, Ctx};
use crate::diagnostic::{Diagnostic, Location};
use crate::yaml::{self, Limits, Node, NodeKind, truncate};

/// Reads the contracts of one pipeline, each contract file once.
pub(crate) struct ContractFiles<'a> {
    base_dir: &'a Path,
    /// The pipeline file's folder as its label shows it, so a contract
    /// file's diagnostics name it the way the user would open it.
    label_dir: PathBuf,
    limits: Limits,
    /// Contract files read so far, by canonical path.
    cache: HashMap<PathBuf, Option<Decoded>>,
    /// The text of each contract file read, by label.
    texts: HashMap<String, String>,
    /// Bytes of contract files read so far.
    total_bytes: usize,
}

/// How many times [`Limits::max_bytes`] the contract files of one pipeline
/// may hold together, so that many files cannot add up to unbounded memory.
const MAX_FILES_BYTES_FACTOR: usize = 16;

impl<'a> ContractFiles<'a> {
    /// `source` is the pipeline file (as labelled); `base_dir` its folder.
    pub(crate) fn new(source: &Path, base_dir: &'a Path, limits: Limits) -> Self {
        Self {
            base_dir,
            label_dir: source.parent().map(Path::to_path_buf).unwrap_or_default(),
            limits,
            cache: HashMap::new(),
            texts: HashMap::new(),
            total_bytes: 0,
        }
    }

    /// Gives each diagnostic in a contract file the line it points at: the
    /// caller holds only the pipeline's text to render diagnostics with.
    pub(crate) fn attach_source_lines(&self, diags: &mut [Diagnostic]) {
        for d in diags {
            if let Some(text) = self.texts.get(&d.loc.file) {
                d.source_line = text
                    .lines()
                    .nth(d.loc.line.saturating_sub(1))
                    .map(str::to_owned);
            }
        }
    }

    /// Reads `contract:`'s value `node` for dataset `dataset`.
    pub(crate) fn contract(&mut self, cx: &mut Ctx, node: &Node, dataset: &str) -> Option<Decoded> {
        match &node.kind {
            NodeKind::Map(_) => contract_spec::decode(
                cx,
                node,
                &format!("the contract of dataset `{dataset}`"),
                Origin::Inline,
            ),
            NodeKind::Scalar { .. } => {
                let path = decode::string(cx, node, "`contract`")?;
                self.file(cx, &node.loc, &path)
            }
            NodeKind::Seq(_) => {
                cx.error(
                    &node.loc,
                    format!(
                        "`contract` of dataset `{dataset}` must be a mapping or the path of a contract file, found a list"
                    ),
                )
                .hint("write the contract inline (`contract: { columns: { ... } }`) or name its file (`contract: contracts/customers.yaml`)");
                None
            }
        }
    }

    fn file(&mut self, cx: &mut Ctx, at: &Location, path: &str) -> Option<Decoded> {
        let shown = truncate(path);
        if let Some(problem) = path_problem(path) {
            cx.error(at, format!("invalid contract path `{shown}`: {problem}"))
                .hint("write a path relative to the pipeline file's folder, e.g. `contracts/customers.yaml`");
            return None;
        }
        let mut resolved = self.base_dir.to_path_buf();
        let mut label = self.label_dir.clone();
        for segment in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
            resolved.push(segment);
            label.push(segment);
        }
        let canonical = match resolved.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cx.error(at, format!("contract file `{shown}` does not exist"))
                    .hint("the path is relative to the folder of the pipeline file");
                return None;
            }
            Err(e) => {
                cx.error(
                    at,
                    format!("cannot open contract file `{shown}`: {}", e.kind()),
                )
                .hint("check the file's permissions");
                return None;
            }
        };
        let inside = self
            .base_dir
            .canonicalize()
            .is_ok_and(|base| canonical.starts_with(base));
        if !inside {
            cx.error(
                at,
                format!("contract file `{shown}` lies outside the pipeline's folder"),
            )
            .hint("a symbolic link may not lead out of the pipeline's folder; put the contract file inside it");
            return None;
        }
        if let Some(done) = self.cache.get(&canonical) {
            return done.clone();
        }
        let budget = self.limits.max_bytes.saturating_mul(MAX_FILES_BYTES_FACTOR);
        let left = budget.saturating_sub(self.total_bytes);
        let text = match read(&canonical, self.limits.max_bytes) {
            Ok(text) if text.len() > left => {
                cx.error(
                    at,
                    format!(
                        "contract file `{shown}` takes the pipeline's contract files past {budget} bytes together"
                    ),
                )
                .hint("share contract files between datasets, or keep contracts shorter");
                return None;
            }
            Ok(text) => text,
            Err((problem, hint)) => {
                cx.error(at, format!("contract file `{shown}` {problem}"))
                    .hint(hint);
                return None;
            }
        };
        let label = label.display().to_string();
        let (root, mut diags) = yaml::load(&label, &text, self.limits);
        for d in &mut diags {
            d.message = d.message.replace("a pipeline file", "a contract file");
            if d.hint
                .as_deref()
                .is_some_and(|h| h.starts_with("a pipeline needs"))
            {
                d.hint = Some("a contract needs at least `columns`".to_owned());
            }
        }
        cx.diags.append(&mut diags);
        let decoded = root
            .and_then(|root| contract_spec::decode(cx, &root, "the contract", Origin::File(path)));
        self.total_bytes = self.total_bytes.saturating_add(text.len());
        self.texts.insert(label, text);
        self.cache.insert(canonical, decoded.clone());
        decoded
    }
}

/// Why `path` cannot name a contract file, if it cannot.
fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("it is empty")
    } else if path.starts_with('/') {
        Some("it is absolute")
    } else if path.contains('\\') || path.chars().any(char::is_control) {
        Some("it contains a backslash or a control character")
    } else if path.split('/').any(|s| s == "..") {
        Some("it leaves the pipeline's folder through `..`")
    } else {
        None
    }
}

/// Reads a regular file of at most `max_bytes` as UTF-8. The size is
/// checked before reading, and the read is capped whatever the size said.
fn read(path: &Path, max_bytes: usize) -> Result<String, (String, &'static str)> {
    let io = |e: std::io::Error| {
        (
            format!("cannot be read: {}", e.kind()),
            "check the file's permissions",
        )
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err((
            "is a folder, not a file".to_owned(),
            "name the contract's YAML file, e.g. `contracts/customers.yaml`",
        ));
    }
    if !meta.is_file() {
        return Err(("is not a regular file".to_owned(), "name a plain YAML file"));
    }
    let too_large = |size: String| {
        (
            format!("is {size} bytes; the limit is {max_bytes} bytes"),
            "a contract file this large is almost certainly not a contract",
        )
    };
    if meta.len() > max_bytes as u64 {
        return Err(too_large(meta.len().to_string()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > max_bytes {
        return Err(too_large(format!("more than {max_bytes}")));
    }
    String::from_utf8(bytes).map_err(|_| {
        (
            "is not UTF-8 text".to_owned(),
            "save the contract file as UTF-8",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::path_problem;

    #[test]
    fn contract_paths_stay_in_the_pipeline_folder() {
        assert_eq!(path_problem("contracts/c.yaml"), None);
        assert_eq!(path_problem("./c.yaml"), None);
        for bad in [
            "",
            "/etc/passwd",
            "../c.yaml",
            "a/../../c.yaml",
            "a\\b",
            "a\u{0}",
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
    }
}
