//! The policy set: every policy file in force, merged and cross-checked.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use weir_spec::decode::Ctx;
use weir_spec::yaml::{self, Limits};
use weir_spec::{Diagnostic, Location, Severity, did_you_mean};

use crate::binding::StoreBinding;
use crate::document::{self, Document, LocatedGrant};
use crate::error::{Error, Result};
use crate::grant::Grant;
use crate::principal::Principal;

/// One policy file's text, for [`PolicySet::load_sources`].
#[derive(Clone, Debug)]
pub struct PolicySource {
    /// Labels diagnostics (usually the path as displayed). Its last
    /// component is the name the [digest](PolicySet::digest) uses.
    pub label: String,
    /// The YAML text.
    pub text: String,
    /// The folder relative store urls resolve against (the file's folder).
    pub base_dir: PathBuf,
}

/// Every policy file in force, validated and merged.
///
/// # Guarantees
///
/// Grant ids and principal names are unique across files; every grant names
/// a declared principal and bound stores; a store name is bound to one
/// location across all files.
#[derive(Clone, Debug)]
pub struct PolicySet {
    stores: BTreeMap<String, StoreBinding>,
    principals: BTreeMap<String, Principal>,
    grants: Vec<Grant>,
    by_principal: HashMap<String, Vec<usize>>,
    digest: [u8; 32],
}

impl PolicySet {
    /// Loads every `*.yaml` file directly inside `dir` (sorted by name).
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if the folder or a file cannot be read,
    /// [`Error::NoPolicyFiles`] if it holds none, [`Error::Invalid`] with
    /// every diagnostic if the files are not a valid policy set.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Read { path, source }
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
            let path = entry.map_err(read_err(dir))?.path();
            if path.extension().is_some_and(|e| e == "yaml")
                && std::fs::metadata(&path).map_err(read_err(&path))?.is_file()
            {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(Error::NoPolicyFiles {
                dir: dir.to_path_buf(),
            });
        }
        files.sort();
        let base_dir = crate::binding::normalize(dir);
        let max = Limits::default().max_bytes as u64;
        let mut sources = Vec::with_capacity(files.len());
        let mut oversized = Vec::new();
        for path in files {
            let label = path.display().to_string();
            let len = std::fs::metadata(&path).map_err(read_err(&path))?.len();
            // An oversized file is refused before it is read.
            let text = if len > max {
                oversized.push(
                    Diagnostic::error(
                        Location::new(&label, 1, 1),
                        format!("file is {len} bytes; the limit is {max} bytes"),
                    )
                    .with_hint("a policy file this large is almost certainly not a policy"),
                );
                continue;
            } else {
                std::fs::read_to_string(&path).map_err(read_err(&path))?
            };
            sources.push(PolicySource {
                label,
                text,
                base_dir: base_dir.clone(),
            });
        }
        Self::load_with(sources, oversized)
    }

    /// Loads one policy file held in memory. `file_label` labels
    /// diagnostics; `base_dir` resolves relative store urls.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] with every diagnostic if the text is not a valid
    /// policy.
    pub fn load_str(file_label: &str, text: &str, base_dir: &Path) -> Result<Self> {
        Self::load_sources(vec![PolicySource {
            label: file_label.to_owned(),
            text: text.to_owned(),
            base_dir: base_dir.to_path_buf(),
        }])
    }

    /// Loads and merges several policy files.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] with every diagnostic, across all files.
    pub fn load_sources(sources: Vec<PolicySource>) -> Result<Self> {
        Self::load_with(sources, Vec::new())
    }

    fn load_with(sources: Vec<PolicySource>, mut diags: Vec<Diagnostic>) -> Result<Self> {
        let mut texts = BTreeMap::new();
        let mut named: Vec<(String, Vec<u8>)> = Vec::new();
        let mut docs = Vec::new();
        for src in sources {
            let name = digest_name(&src.label);
            if named.iter().any(|(n, _)| *n == name) {
                diags.push(
                    Diagnostic::error(
                        Location::new(&src.label, 1, 1),
                        format!("two policy files are named `{name}`"),
                    )
                    .with_hint("give every policy file its own name"),
                );
            }
            let (root, mut found) = yaml::load(&src.label, &src.text, Limits::default());
            let mut cx = Ctx::default();
            if let Some(doc) = root.and_then(|r| document::decode(&mut cx, &r, &src.base_dir)) {
                docs.push(doc);
            }
            diags.append(&mut found);
            diags.append(&mut cx.diags);
            named.push((name, src.text.as_bytes().to_vec()));
            texts.insert(src.label, src.text);
        }
        let set = merge(docs, &mut diags, digest(named));
        diags.retain(|d| d.severity == Severity::Error);
        if diags.is_empty() {
            return Ok(set);
        }
        diags.sort_by(|a, b| a.loc.cmp(&b.loc));
        diags.dedup();
        Err(Error::Invalid {
            diagnostics: diags,
            sources: texts,
        })
    }

    /// SHA-256 over the sorted (file name, bytes) of the files in force,
    /// each length-prefixed, for the audit log.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// [`digest`](Self::digest) as lowercase hex.
    #[must_use]
    pub fn digest_hex(&self) -> String {
        self.digest
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }

    /// Every grant, in file order (files sorted by name).
    #[must_use]
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The grant with this id.
    #[must_use]
    pub fn grant(&self, id: &str) -> Option<&Grant> {
        self.grants.iter().find(|g| g.id == id)
    }

    /// The grants of `principal`, in file order.
    pub fn grants_for<'a>(&'a self, principal: &str) -> impl Iterator<Item = &'a Grant> + 'a {
        let indexes = self
            .by_principal
            .get(principal)
            .map_or(&[][..], Vec::as_slice);
        indexes.iter().filter_map(|i| self.grants.get(*i))
    }

    /// The declared principal called `name`.
    #[must_use]
    pub fn principal(&self, name: &str) -> Option<&Principal> {
        self.principals.get(name)
    }

    /// Every declared principal, by name.
    #[must_use]
    pub fn principals(&self) -> &BTreeMap<String, Principal> {
        &self.principals
    }

    /// The binding of store `name`.
    #[must_use]
    pub fn store(&self, name: &str) -> Option<&StoreBinding> {
        self.stores.get(name)
    }

    /// Every store binding, by name.
    #[must_use]
    pub fn stores(&self) -> &BTreeMap<String, StoreBinding> {
        &self.stores
    }
}

fn digest_name(label: &str) -> String {
    Path::new(label)
        .file_name()
        .map_or_else(|| label.to_owned(), |n| n.to_string_lossy().into_owned())
}

fn digest(mut files: Vec<(String, Vec<u8>)>) -> [u8; 32] {
    files.sort();
    let mut h = Sha256::new();
    h.update(b"weir-policy-set-v1");
    for (name, bytes) in &files {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    h.finalize().into()
}

fn first_at(loc: &Location) -> String {
    format!("first declared at {loc}")
}

/// Merges the documents, reporting cross-file problems into `diags`.
fn merge(docs: Vec<Document>, diags: &mut Vec<Diagnostic>, digest: [u8; 32]) -> PolicySet {
    let mut stores: BTreeMap<String, StoreBinding> = BTreeMap::new();
    let mut principals: BTreeMap<String, Principal> = BTreeMap::new();
    let mut located: Vec<LocatedGrant> = Vec::new();
    for doc in docs {
        for b in doc.stores {
            match stores.get(&b.name) {
                Some(first) if first.location != b.location => diags.push(
                    Diagnostic::error(
                        b.origin.clone(),
                        format!(
                            "store `{}` is bound to {:?} here but to {:?} at {}",
                            b.name, b.location, first.location, first.origin
                        ),
                    )
                    .with_hint("a store name means one location across all policy files"),
                ),
                Some(_) => {}
                None => {
                    stores.insert(b.name.clone(), b);
                }
            }
        }
        for p in doc.principals {
            match principals.get(&p.name) {
                Some(first) => diags.push(
                    Diagnostic::error(
                        p.origin.clone(),
                        format!("principal `{}` is declared twice", p.name),
                    )
                    .with_hint(first_at(&first.origin)),
                ),
                None => {
                    principals.insert(p.name.clone(), p);
                }
            }
        }
        located.extend(doc.grants);
    }
    let mut grants: Vec<Grant> = Vec::with_capacity(located.len());
    for g in located {
        if let Some(first) = grants.iter().find(|f| f.id == g.grant.id) {
            diags.push(
                Diagnostic::error(g.id_loc, format!("grant id `{}` is used twice", g.grant.id))
                    .with_hint(first_at(&first.origin)),
            );
            continue;
        }
        check_names(&g, &principals, &stores, diags);
        grants.push(g.grant);
    }
    let mut by_principal: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, g) in grants.iter().enumerate() {
        by_principal.entry(g.principal.clone()).or_default().push(i);
    }
    PolicySet {
        stores,
        principals,
        grants,
        by_principal,
        digest,
    }
}

fn check_names(
    g: &LocatedGrant,
    principals: &BTreeMap<String, Principal>,
    stores: &BTreeMap<String, StoreBinding>,
    diags: &mut Vec<Diagnostic>,
) {
    let id = &g.grant.id;
    if !principals.contains_key(&g.grant.principal) {
        let hint = match did_you_mean(&g.grant.principal, principals.keys().map(String::as_str)) {
            Some(c) => format!("did you mean `{c}`?"),
            None => "declare it under `principals:`".to_owned(),
        };
        diags.push(
            Diagnostic::error(
                g.principal_loc.clone(),
                format!(
                    "grant `{id}` names undeclared principal `{}`",
                    g.grant.principal
                ),
            )
            .with_hint(hint),
        );
    }
    for (store, loc) in &g.store_locs {
        if !stores.contains_key(store) {
            let hint = match did_you_mean(store, stores.keys().map(String::as_str)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => {
                    "bind it under `stores:` (e.g. `lake: { url: ../examples/data }`)".to_owned()
                }
            };
            diags.push(
                Diagnostic::error(
                    loc.clone(),
                    format!("grant `{id}` names unbound store `{store}`"),
                )
                .with_hint(hint),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
version: 1
stores:
  lake: { url: ../data }
principals:
  svc-a: { kind: service, description: "pipeline a" }
  alice: { kind: user, roles: [engineer, auditor] }
grants:
  - id: a-read-raw
    principal: svc-a
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw/**" }
    columns: { deny: [email] }
    expires: 2027-06-30
    description: "raw data"
"#;

    fn load(text: &str) -> Result<PolicySet> {
        PolicySet::load_str("p.yaml", text, Path::new("/w/policies"))
    }

    fn messages(err: Error) -> Vec<String> {
        match err {
            Error::Invalid { diagnostics, .. } => diagnostics
                .iter()
                .map(|d| {
                    format!(
                        "{}:{}: {} | {}",
                        d.loc.line,
                        d.loc.column,
                        d.message,
                        d.hint.clone().unwrap_or_default()
                    )
                })
                .collect(),
            other => vec![other.to_string()],
        }
    }

    #[test]
    fn run_as_is_for_users_only_and_lists_each_service_once() {
        let set = load(
            "version: 1\nprincipals:\n  svc-a: { kind: service }\n  alice: { kind: user, roles: [engineer], run_as: [svc-a] }\n",
        )
        .unwrap();
        assert_eq!(
            set.principal("alice").unwrap().run_as,
            vec!["svc-a".to_owned()]
        );
        assert!(set.principal("svc-a").unwrap().run_as.is_empty());
        let bad = [
            (
                "  svc-b: { kind: service, run_as: [svc-a] }\n",
                "only for `kind: user`",
            ),
            (
                "  bob: { kind: user, run_as: [svc-a, svc-a] }\n",
                "listed twice",
            ),
            ("  bob: { kind: user, run_as: svc-a }\n", "must be a list"),
            (
                "  bob: { kind: user, run_as: [\"Not A Name\"] }\n",
                "run_as",
            ),
        ];
        for (line, expected) in bad {
            let text = format!("version: 1\nprincipals:\n  svc-a: {{ kind: service }}\n{line}");
            let all = messages(load(&text).unwrap_err()).join("\n");
            assert!(all.contains(expected), "{line}: {all}");
        }
    }

    #[test]
    fn loads_the_documented_format() {
        let set = load(BASE).unwrap();
        let g = set.grant("a-read-raw").unwrap();
        assert_eq!(g.principal, "svc-a");
        assert_eq!(g.columns, Some(weir_auth::ColumnRule::deny(["email"])));
        assert_eq!(set.principal("alice").unwrap().roles.len(), 2);
        assert_eq!(
            set.store("lake").unwrap().location,
            crate::BoundLocation::Local("/w/data".into())
        );
        assert_eq!(set.grants_for("svc-a").count(), 1);
        assert_eq!(set.grants_for("nobody").count(), 0);
        assert_eq!(set.digest_hex().len(), 64);
    }

    #[test]
    fn unknown_field_wrong_type_and_duplicate_key_are_all_reported() {
        let text = "version: 1\nprincipals:\n  svc-a: { kind: service, role: [admin] }\n  svc-a: { kind: robot }\ngrants: 7\n";
        let m = messages(load(text).unwrap_err());
        assert!(
            m.iter().any(|m| m.starts_with("3:27: unknown field `role`")
                && m.contains("did you mean `roles`")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("4:3: duplicate key `svc-a`")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("5:9: `grants` must be a list")),
            "{m:?}"
        );
    }

    #[test]
    fn grant_errors_point_at_the_field() {
        let text = "version: 1\nstores: { lake: { url: /d } }\nprincipals: { svc: { kind: service } }\ngrants:\n  - id: Bad\n    principal: svc\n    effect: permit\n    actions: [read, reed]\n    resources: [{ store: lake, path: \"raw/../x\" }]\n    expires: 2027-13-01\n";
        let m = messages(load(text).unwrap_err());
        assert!(
            m.iter()
                .any(|m| m.starts_with("5:9: invalid grant id `Bad`")),
            "{m:?}"
        );
        let text = text.replace("id: Bad", "id: ok");
        let m = messages(load(&text).unwrap_err());
        assert!(
            m.iter()
                .any(|m| m.starts_with("7:13: unknown `effect` `permit`")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("8:21: unknown `actions` `reed`") && m.contains("`read`")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("9:38: invalid resource path")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("10:14: `expires` must be a date")),
            "{m:?}"
        );
    }

    #[test]
    fn version_is_required_and_must_be_one() {
        assert!(
            messages(load("stores: {}\n").unwrap_err())[0]
                .contains("missing required field `version`")
        );
        assert!(
            messages(load("version: 2\n").unwrap_err())[0].contains("unsupported policy `version`")
        );
        assert!(load("version: 1\n").is_ok());
    }

    #[test]
    fn unknown_principal_and_store_are_errors() {
        let text = BASE
            .replace("principal: svc-a", "principal: svc-b")
            .replace("store: lake", "store: laek");
        let m = messages(load(&text).unwrap_err());
        assert!(
            m.iter()
                .any(|m| m.contains("undeclared principal `svc-b`") && m.contains("svc-a")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|m| m.contains("unbound store `laek`") && m.contains("did you mean `lake`")),
            "{m:?}"
        );
    }

    #[test]
    fn deny_with_columns_is_refused() {
        let text = BASE.replace("effect: allow", "effect: deny");
        let m = messages(load(&text).unwrap_err());
        assert!(
            m.iter().any(|m| m.contains("only allowed on allow grants")),
            "{m:?}"
        );
    }

    fn source(label: &str, text: &str, base: &str) -> PolicySource {
        PolicySource {
            label: label.into(),
            text: text.into(),
            base_dir: base.into(),
        }
    }

    #[test]
    fn merging_refuses_duplicates_and_conflicting_bindings() {
        let other = "version: 1\nstores:\n  lake: { url: /elsewhere }\nprincipals:\n  svc-a: { kind: service }\ngrants:\n  - id: a-read-raw\n    principal: svc-a\n    effect: deny\n    actions: [read]\n    resources: [{ store: lake, path: \"**\" }]\n";
        let err = PolicySet::load_sources(vec![
            source("a.yaml", BASE, "/w/policies"),
            source("b.yaml", other, "/w/policies"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("b.yaml:3:3: error: store `lake` is bound to"),
            "{text}"
        );
        assert!(
            text.contains("b.yaml:5:3: error: principal `svc-a` is declared twice"),
            "{text}"
        );
        assert!(
            text.contains("b.yaml:7:9: error: grant id `a-read-raw` is used twice"),
            "{text}"
        );
        assert!(text.contains("first declared at a.yaml:"), "{text}");
    }

    #[test]
    fn same_binding_in_two_files_merges() {
        let other = "version: 1\nstores:\n  lake: { url: /w/policies/../data/ }\n";
        let set = PolicySet::load_sources(vec![
            source("a.yaml", BASE, "/w/policies"),
            source("b.yaml", other, "/x"),
        ])
        .unwrap();
        assert_eq!(set.stores().len(), 1);
    }

    #[test]
    fn digest_depends_on_names_and_bytes_not_order() {
        let a = source("dir/a.yaml", "version: 1\n", "/");
        let b = source("b.yaml", "version: 1 # b\n", "/");
        let one = PolicySet::load_sources(vec![a.clone(), b.clone()])
            .unwrap()
            .digest();
        let two =
            PolicySet::load_sources(vec![b.clone(), source("other/a.yaml", "version: 1\n", "/")])
                .unwrap()
                .digest();
        assert_eq!(one, two);
        let changed = PolicySet::load_sources(vec![a, source("b.yaml", "version: 1 # c\n", "/")])
            .unwrap()
            .digest();
        assert_ne!(one, changed);
    }

    #[test]
    fn load_dir_reads_yaml_files_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            PolicySet::load_dir(dir.path()),
            Err(Error::NoPolicyFiles { .. })
        ));
        std::fs::write(dir.path().join("a.yaml"), BASE).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml").unwrap();
        let set = PolicySet::load_dir(dir.path()).unwrap();
        assert_eq!(set.grants().len(), 1);
        assert_eq!(
            set.store("lake").unwrap().location,
            crate::BoundLocation::Local(crate::binding::normalize(&dir.path().join("../data")))
        );
    }

    #[test]
    fn oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let big = format!("version: 1\n#{}\n", "x".repeat(2 * 1024 * 1024));
        std::fs::write(dir.path().join("big.yaml"), big).unwrap();
        let text = PolicySet::load_dir(dir.path()).unwrap_err().to_string();
        assert!(text.contains("the limit is"), "{text}");
    }
}
