//! Reading a policy directory: schema, policies and entities are parsed and
//! validated once, here, and never on the call path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use cedar_policy::{Entities, Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use sha2::{Digest, Sha256};

use super::error::{Hints, PolicyLoadError, Problem, merge_per_action};
use super::index::PolicyIndex;
use super::source::{SourceFile, SourcePos};

/// Name of the schema file in a policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// Name of the optional entities file in a policy directory.
pub const ENTITIES_FILE: &str = "entities.json";

/// What is known about one policy beyond Cedar's view of it.
#[derive(Debug, Clone)]
pub struct PolicyInfo {
    /// Where the policy starts.
    pub pos: SourcePos,
    /// Its `@reason` annotation, shown to reviewers and written in records.
    pub reason: Option<String>,
}

/// A validated policy set with its schema and entities, ready to decide.
///
/// Built once by [`Policies::load_dir`]; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Policies {
    pub(crate) set: PolicySet,
    pub(crate) schema: Schema,
    pub(crate) entities: Arc<Entities>,
    /// The set split by scope, so a request evaluates only the policies
    /// that can apply to it.
    pub(crate) index: PolicyIndex,
    /// Shapes of requests that passed the schema check (see
    /// [`Policies::check_request`]).
    pub(crate) validated: RwLock<rustc_hash::FxHashSet<String>>,
    info: HashMap<PolicyId, PolicyInfo>,
    digest: String,
    warnings: Vec<Problem>,
}

impl Policies {
    /// Loads `dir`: `schema.cedarschema`, every `*.cedar` file (in name
    /// order) and, if present, `entities.json`. Every policy is validated
    /// strictly against the schema and the entities against the schema.
    ///
    /// All problems found are returned together, each with its file and line.
    pub fn load_dir(dir: &Path) -> Result<Policies, PolicyLoadError> {
        let schema_path = dir.join(SCHEMA_FILE);
        if !schema_path.is_file() {
            if !dir.is_dir() {
                return Err(PolicyLoadError::Io {
                    path: dir.to_path_buf(),
                    error: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not a directory or does not exist",
                    ),
                });
            }
            return Err(PolicyLoadError::MissingSchema {
                dir: dir.to_path_buf(),
            });
        }
        let policy_paths = policy_files(dir)?;
        if policy_paths.is_empty() {
            return Err(PolicyLoadError::NoPolicies {
                dir: dir.to_path_buf(),
            });
        }
        let mut hasher = Sha256::new();
        hasher.update(b"mandate-policy-set/1\n");

        let schema_src = SourceFile::new(&schema_path, read(&schema_path)?);
        digest_file(&mut hasher, "schema", &schema_src);
        let mut problems = Vec::new();
        let schema = match Schema::from_cedarschema_str(schema_src.text()) {
            Ok((schema, _warnings)) => Some(schema),
            Err(e) => {
                problems.push(Problem::from_diagnostic(&schema_src, &e));
                None
            }
        };

        let mut set = PolicySet::new();
        let mut info: HashMap<PolicyId, PolicyInfo> = HashMap::new();
        let mut sources: HashMap<PolicyId, SourceFile> = HashMap::new();
        for path in &policy_paths {
            let file = SourceFile::new(path, read(path)?);
            digest_file(&mut hasher, "policy", &file);
            match parse_file(&file) {
                Ok(policies) => {
                    for (policy, pos) in policies {
                        let id = policy.id().clone();
                        if let Some(first) = info.get(&id) {
                            problems.push(
                                Problem::at_policy(
                                    &file,
                                    pos.clone(),
                                    format!("duplicate policy id `{id}`"),
                                )
                                .with_hint(Some(format!(
                                    "`{id}` is already used at {}; give each policy its own @id",
                                    first.pos
                                ))),
                            );
                            continue;
                        }
                        let reason = policy.annotation("reason").map(str::to_string);
                        if let Err(e) = set.add(policy) {
                            problems.push(Problem::at_policy(&file, pos, e.to_string()));
                            continue;
                        }
                        sources.insert(id.clone(), file.clone());
                        info.insert(id, PolicyInfo { pos, reason });
                    }
                }
                Err(mut errs) => problems.append(&mut errs),
            }
        }

        let entities_path = dir.join(ENTITIES_FILE);
        let entities_src = if entities_path.is_file() {
            let file = SourceFile::new(&entities_path, read(&entities_path)?);
            digest_file(&mut hasher, "entities", &file);
            Some(file)
        } else {
            None
        };

        let Some(schema) = schema else {
            return Err(PolicyLoadError::Problems(problems));
        };
        let mut warnings = Vec::new();
        // Validate what parsed even when another file did not, so one run
        // reports every problem.
        {
            let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
            let hints = Hints::new(&schema, schema_src.text());
            for e in result.validation_errors() {
                if let Some(file) = sources.get(e.policy_id()) {
                    problems.push(hints.validation_problem(file, e));
                }
            }
            for w in result.validation_warnings() {
                if let Some(file) = sources.get(w.policy_id()) {
                    warnings.push(Problem::from_diagnostic(file, w));
                }
            }
            warnings = merge_per_action(warnings);
        }
        let entities = match &entities_src {
            Some(file) => match load_entities(file, &schema) {
                Ok(e) => e,
                Err(p) => {
                    problems.push(*p);
                    Entities::empty()
                }
            },
            None => Entities::empty(),
        };
        if !problems.is_empty() {
            problems.sort_by_key(|p| {
                let pos = p.pos.as_ref().map(|pos| (pos.line, pos.column));
                (p.file.clone(), pos)
            });
            // Cedar reports a mistake once per action a policy applies to.
            problems.dedup();
            let problems = merge_per_action(problems);
            return Err(PolicyLoadError::Problems(problems));
        }
        Ok(Policies {
            schema,
            entities: Arc::new(entities),
            // The loader adds static policies only; were a template ever
            // loaded, the whole set is evaluated instead.
            index: PolicyIndex::new(&set).unwrap_or_else(|_| PolicyIndex::whole(&set)),
            set,
            validated: RwLock::new(rustc_hash::FxHashSet::default()),
            info,
            digest: hex::encode(hasher.finalize()),
            warnings,
        })
    }

    /// SHA-256 of the exact schema, policy and entity files, written in every
    /// decision record so a decision can be traced to the set that made it.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The policies themselves, as Cedar holds them.
    pub fn policy_set(&self) -> &PolicySet {
        &self.set
    }

    /// How many request shapes passed the schema check so far (see
    /// [`Policies::check_request`]); for tests of that cache.
    #[doc(hidden)]
    pub fn checked_shapes(&self) -> usize {
        match self.validated.read() {
            Ok(shapes) => shapes.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// The schema the policies were validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The entities from `entities.json`, validated against the schema.
    pub fn entities(&self) -> &Entities {
        &self.entities
    }

    /// The same entities, shared: what a guard without its own entity
    /// provider evaluates every call against.
    pub fn entities_arc(&self) -> Arc<Entities> {
        Arc::clone(&self.entities)
    }

    /// Where a policy came from and its `@reason`.
    pub fn info(&self, id: &PolicyId) -> Option<&PolicyInfo> {
        self.info.get(id)
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// Whether there are no policies (never true for a loaded directory).
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// Validator warnings (not errors): policies that can never apply and the like.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }
}

impl Problem {
    /// A problem with the policy that starts at `pos` in `file`: the line
    /// shown is the one at `pos` (comments before a policy are not part of it),
    /// not the file's first line.
    fn at_policy(file: &SourceFile, pos: SourcePos, message: impl Into<String>) -> Self {
        Problem {
            source_line: Some(file.line_text(pos.line).to_string()),
            file: Some(file.path().to_path_buf()),
            width: 1,
            pos: Some(pos),
            message: message.into(),
            hint: None,
        }
    }
}

fn read(path: &Path) -> Result<String, PolicyLoadError> {
    std::fs::read_to_string(path).map_err(|error| PolicyLoadError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyLoadError> {
    let io = |error| PolicyLoadError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Length-prefixed so that moving bytes between files changes the digest.
fn digest_file(hasher: &mut Sha256, kind: &str, file: &SourceFile) {
    let name = file
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    hasher.update(format!("{kind} {name} {}\n", file.text().len()).as_bytes());
    hasher.update(file.text().as_bytes());
}

/// Parses one file and names its policies: the `@id` annotation, else
/// `<file name>:<line>`.
fn parse_file(file: &SourceFile) -> Result<Vec<(Policy, SourcePos)>, Vec<Problem>> {
    let parsed: PolicySet = file
        .text()
        .parse()
        .map_err(|e: cedar_policy::ParseErrors| {
            e.iter()
                .map(|err| Problem::from_parse_error(file, err))
                .collect::<Vec<_>>()
        })?;
    let starts = file.statement_starts();
    let file_name = file
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (n, start) in starts.iter().enumerate() {
        let cedar_id = PolicyId::new(format!("policy{n}"));
        let pos = file.pos(*start);
        let Some(policy) = parsed.policy(&cedar_id) else {
            problems.push(Problem::at(
                file,
                *start,
                "this statement is not a static policy",
            ).with_hint(Some("templates are not supported; write a policy with concrete principal and resource".into())));
            continue;
        };
        let id = match policy.annotation("id") {
            Some(id) if !id.trim().is_empty() => id.to_string(),
            Some(_) => {
                problems.push(Problem::at(file, *start, "empty @id annotation"));
                continue;
            }
            None => format!("{file_name}:{}", pos.line),
        };
        out.push((policy.new_id(PolicyId::new(id)), pos));
    }
    if parsed.policies().count() != out.len() + problems.len() {
        problems.push(Problem::in_file(
            file.path(),
            "could not match parsed policies to their statements",
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn load_entities(file: &SourceFile, schema: &Schema) -> Result<Entities, Box<Problem>> {
    let json: serde_json::Value = serde_json::from_str(file.text()).map_err(|e| {
        let offset = file
            .text()
            .lines()
            .take(e.line().saturating_sub(1))
            .map(|l| l.len() + 1)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        // The position is shown in front already.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        Box::new(Problem::at(
            file,
            offset,
            format!("entities are not valid json: {message}"),
        ))
    })?;
    Entities::from_json_value(json, Some(schema)).map_err(|e| {
        // Cedar's own message is generic; the cause names the entity.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            detail = cause.to_string();
            source = cause.source();
        }
        let message = format!("entities do not match the schema: {detail}");
        let problem = match locate_entity(file.text(), &detail) {
            Some((offset, len)) => Problem::spanning(file, offset, len, message),
            None => Problem::in_file(file.path(), message),
        };
        Box::new(
            problem.with_hint(Some(
                "each entity needs `uid`, `attrs` and `parents` as declared in schema.cedarschema"
                    .into(),
            )),
        )
    })
}

/// Where in the entities file an error about `Type::"id"` (and maybe its
/// attribute `name`) points: the attribute's key, else the entity's id.
fn locate_entity(text: &str, detail: &str) -> Option<(usize, usize)> {
    let id = detail.split_once("::\"")?.1.split_once('"')?.0;
    let quoted_id = format!("\"{id}\"");
    let at = text.match_indices(&quoted_id).map(|(i, _)| i).find(|&i| {
        text.get(..i)
            .map(str::trim_end)
            .and_then(|t| t.strip_suffix(':'))
            .is_some_and(|t| t.trim_end().ends_with("\"id\""))
    })?;
    let attribute = detail
        .split_once("attribute `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| format!("\"{name}\""));
    let found = attribute.as_ref().and_then(|name| {
        let rest = text.get(at..)?;
        rest.find(name.as_str()).map(|i| (at + i, name.len()))
    });
    Some(found.unwrap_or((at, quoted_id.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    #[test]
    fn example_policies_load_with_ids_and_reasons() {
        let p = Policies::load_dir(&example_dir()).unwrap();
        let info = p.info(&PolicyId::new("forbid-document-not-owned")).unwrap();
        assert_eq!(info.pos.line, 2);
        assert!(info.reason.as_deref().unwrap().contains("another user"));
        assert_eq!(p.digest().len(), 64);
        assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    }

    #[test]
    fn a_policy_without_id_is_named_by_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            example_dir().join(SCHEMA_FILE),
            dir.path().join(SCHEMA_FILE),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("p.cedar"),
            "// c\n\npermit(principal, action, resource);\n",
        )
        .unwrap();
        let p = Policies::load_dir(dir.path()).unwrap();
        assert!(p.info(&PolicyId::new("p.cedar:3")).is_some());
    }

    #[test]
    fn a_type_error_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            example_dir().join(SCHEMA_FILE),
            dir.path().join(SCHEMA_FILE),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("bad.cedar"),
            "permit(principal, action, resource)\nwhen { context.session.scopes.contains(3) };\n",
        )
        .unwrap();
        let err = Policies::load_dir(dir.path()).unwrap_err();
        let problems = err.problems();
        assert_eq!(problems.len(), 1, "{err}");
        let pos = problems[0].pos.clone().unwrap();
        assert!(pos.file.ends_with("bad.cedar"));
        assert_eq!(pos.line, 2);
        assert!(err.to_string().contains("bad.cedar:2:"), "{err}");
    }

    #[test]
    fn an_entity_attribute_the_schema_lacks_is_pointed_at() {
        let dir = tempfile::tempdir().unwrap();
        for file in [SCHEMA_FILE, "expiry.cedar", ENTITIES_FILE] {
            std::fs::copy(example_dir().join(file), dir.path().join(file)).unwrap();
        }
        let entities = dir.path().join(ENTITIES_FILE);
        let text = std::fs::read_to_string(&entities).unwrap();
        std::fs::write(&entities, text.replacen("\"title\"", "\"titel\"", 1)).unwrap();
        let err = Policies::load_dir(dir.path()).unwrap_err();
        let problems = err.problems();
        assert_eq!(problems.len(), 1, "{err}");
        assert!(
            problems[0]
                .message
                .contains("attribute `titel` on `Document::"),
            "{err}"
        );
        assert_eq!(problems[0].underlined(), Some("\"titel\""), "{err}");
    }

    #[test]
    fn a_syntax_error_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            example_dir().join(SCHEMA_FILE),
            dir.path().join(SCHEMA_FILE),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("bad.cedar"),
            "permit(principal, action, resource);\n\npermit(principal action, resource);\n",
        )
        .unwrap();
        let err = Policies::load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("bad.cedar:3:"), "{err}");
    }
}
