//! Declarative policy tests, the files `mandate policy test` runs: each case
//! is a hypothetical call and the decision it should get. Cases run through
//! [`explain`], so a test sees exactly what the guard would decide, approval
//! counterfactual and reviewer check included.
//!
//! ```json
//! {
//!   "policies": "..",
//!   "session": "../session.json",
//!   "now": "2026-12-01T10:00:00Z",
//!   "cases": [
//!     {
//!       "name": "carol, a reviewer, approves an email",
//!       "tool": "send_email",
//!       "arguments": { "to": "bob@example.com", "subject": "hi", "body": "..." },
//!       "reviewer": "carol",
//!       "expect": {
//!         "decision": "allow",
//!         "approval_required": true,
//!         "determining_policies": ["scope-email-send"],
//!         "approval_demanded_by": ["email-requires-approval"]
//!       }
//!     }
//!   ]
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use cedar_policy::{Entities, EntityUid};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::explain::{ExplainError, Explanation, HypotheticalCall, explain};
use super::session::{Session, SessionError};
use super::tools::ToolRegistry;
use crate::policy::{ENTITIES_FILE, Effect, Policies, PolicyLoadError};

/// Why a test file or its policies cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyTestError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The test file is not valid JSON or a field has the wrong shape.
    #[error("test file `{path}` line {line} column {column}: {message}")]
    Malformed {
        /// The test file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The test file parses but says something that cannot be run.
    #[error("test file `{path}`: {message}")]
    Invalid {
        /// The test file.
        path: PathBuf,
        /// What is wrong, naming the case and field.
        message: String,
    },
    /// The policy directory under test does not load.
    #[error("cannot load policies from `{dir}`: {error}")]
    Policies {
        /// The policy directory.
        dir: PathBuf,
        /// Why it does not load.
        error: PolicyLoadError,
    },
    /// The policy directory's `entities.json` is not a JSON list.
    #[error("`{path}`: {message}")]
    Entities {
        /// The entities file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One test file, parsed, with its sessions read.
#[derive(Debug, Clone)]
pub struct PolicyTestFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The policy directory it tests (`policies`, relative to the file;
    /// default: the directory that holds the file's directory).
    pub policies: PathBuf,
    /// Its cases, in file order.
    pub cases: Vec<PolicyTestCase>,
}

/// One hypothetical call and what it should get.
#[derive(Debug, Clone)]
pub struct PolicyTestCase {
    /// Unique within the file.
    pub name: String,
    /// The tool called.
    pub tool: String,
    /// Its arguments.
    pub arguments: Value,
    /// Cedar entities (JSON) that replace those of `entities.json` with the
    /// same uid, or add to them, for this case only.
    pub entities: Vec<Value>,
    /// The session: the case's own, else the file's.
    pub session: Session,
    /// A user who approves the call if it is held.
    pub reviewer: Option<String>,
    /// When the call is made: the case's `now`, else the file's, else the
    /// time the test runs.
    pub now: Option<Timestamp>,
    /// What it should get.
    pub expect: Expectation,
}

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// A decision; `None` fields are not checked.
    Decision {
        /// The final effect.
        effect: Effect,
        /// Whether policy holds the call for a human.
        approval_required: Option<bool>,
        /// Ids of the final decision's determining policies, as a set.
        determining_policies: Option<BTreeSet<String>>,
        /// Ids of the policies that demand approval, as a set.
        approval_demanded_by: Option<BTreeSet<String>>,
        /// Ids of the policies that failed to evaluate in the final
        /// decision, as a set.
        evaluation_errors: Option<BTreeSet<String>>,
    },
    /// The call cannot be evaluated, with an error containing this text.
    Error(String),
}

impl Expectation {
    /// The policy ids the expectation names, for coverage.
    pub fn named_policies(&self) -> impl Iterator<Item = &str> {
        let sets = match self {
            Expectation::Decision {
                determining_policies,
                approval_demanded_by,
                ..
            } => [determining_policies.as_ref(), approval_demanded_by.as_ref()],
            Expectation::Error(_) => [None, None],
        };
        sets.into_iter().flatten().flatten().map(String::as_str)
    }
}

/// What a case actually got, in the terms of [`Expectation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actual {
    /// The final effect.
    pub decision: Effect,
    /// Whether policy holds the call for a human.
    pub approval_required: bool,
    /// The final decision's determining policies, sorted.
    pub determining_policies: Vec<String>,
    /// The policies that demand approval, sorted.
    pub approval_demanded_by: Vec<String>,
    /// The policies that failed to evaluate in the final decision, sorted.
    pub evaluation_errors: Vec<String>,
}

impl Actual {
    /// Reduces an explanation to what a case can expect.
    pub fn of(explanation: &Explanation) -> Actual {
        let ids = |policies: &[crate::policy::DeterminingPolicy]| {
            sorted(policies.iter().map(|p| p.id.clone()))
        };
        Actual {
            decision: explanation.effect,
            approval_required: explanation.approval_required,
            determining_policies: ids(&explanation.decision.determining_policies),
            approval_demanded_by: ids(&explanation.approval_demanded_by),
            evaluation_errors: sorted(explanation.decision.errors.iter().map(|e| e.policy.clone())),
        }
    }
}

fn sorted(ids: impl Iterator<Item = String>) -> Vec<String> {
    ids.collect::<BTreeSet<_>>().into_iter().collect()
}

/// One field where a case got something other than it expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The field of `expect`: `decision`, `approval_required`,
    /// `determining_policies`, `approval_demanded_by`, `evaluation_errors`
    /// or `error`.
    pub field: &'static str,
    /// What the case expects (`null` under `error`: no error).
    pub expected: Value,
    /// What it got (`null` under `error`: no error).
    pub actual: Value,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = self.field;
        match (&self.expected, &self.actual) {
            (Value::Array(expected), Value::Array(actual)) => {
                write!(
                    f,
                    "{field}: expected {}, got {}",
                    list(expected),
                    list(actual)
                )?;
                let missing: Vec<&Value> =
                    expected.iter().filter(|e| !actual.contains(e)).collect();
                let extra: Vec<&Value> = actual.iter().filter(|a| !expected.contains(a)).collect();
                let mut notes = Vec::new();
                if !missing.is_empty() {
                    notes.push(format!("missing {}", plain(missing)));
                }
                if !extra.is_empty() {
                    notes.push(format!("unexpected {}", plain(extra)));
                }
                if !notes.is_empty() {
                    write!(f, " ({})", notes.join("; "))?;
                }
                Ok(())
            }
            (Value::Null, actual) => write!(
                f,
                "{field}: {} (expected a decision; the call could not be evaluated)",
                text(actual)
            ),
            (expected, Value::Null) => write!(
                f,
                "{field}: expected an error containing \"{}\", but the call was evaluated",
                text(expected)
            ),
            (expected, actual) if field == "error" => write!(
                f,
                "{field}: expected an error containing \"{}\", got: {}",
                text(expected),
                text(actual)
            ),
            (expected, actual) => {
                write!(
                    f,
                    "{field}: expected {}, got {}",
                    text(expected),
                    text(actual)
                )
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn plain(items: Vec<&Value>) -> String {
    items.into_iter().map(text).collect::<Vec<_>>().join(", ")
}

fn list(items: &[Value]) -> String {
    format!("[{}]", plain(items.iter().collect()))
}

/// How one case went.
#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// Whether everything expected was so.
    pub passed: bool,
    /// Each field that differs.
    pub mismatches: Vec<Mismatch>,
    /// What the call got, when it could be evaluated.
    pub actual: Option<Actual>,
    /// Why it could not be evaluated.
    pub error: Option<String>,
}

/// Compares what a case got with what it expects. `result` is the
/// explanation, or the error that stopped the evaluation.
pub fn compare(expect: &Expectation, result: &Result<Explanation, CaseError>) -> Vec<Mismatch> {
    let set = |ids: &BTreeSet<String>| Value::from(ids.iter().cloned().collect::<Vec<_>>());
    let result = result.as_ref().map_err(ToString::to_string);
    match (expect, &result) {
        (Expectation::Error(want), Err(got)) if got.contains(want.as_str()) => Vec::new(),
        (Expectation::Error(want), Err(got)) => vec![Mismatch {
            field: "error",
            expected: Value::from(want.as_str()),
            actual: Value::from(got.as_str()),
        }],
        (Expectation::Error(want), Ok(_)) => vec![Mismatch {
            field: "error",
            expected: Value::from(want.as_str()),
            actual: Value::Null,
        }],
        (Expectation::Decision { .. }, Err(got)) => vec![Mismatch {
            field: "error",
            expected: Value::Null,
            actual: Value::from(got.as_str()),
        }],
        (
            Expectation::Decision {
                effect,
                approval_required,
                determining_policies,
                approval_demanded_by,
                evaluation_errors,
            },
            Ok(explanation),
        ) => {
            let actual = Actual::of(explanation);
            let mut out = Vec::new();
            if *effect != actual.decision {
                out.push(Mismatch {
                    field: "decision",
                    expected: effect_json(*effect),
                    actual: effect_json(actual.decision),
                });
            }
            if let Some(want) = approval_required
                && *want != actual.approval_required
            {
                out.push(Mismatch {
                    field: "approval_required",
                    expected: Value::from(*want),
                    actual: Value::from(actual.approval_required),
                });
            }
            let sets = [
                (
                    "determining_policies",
                    determining_policies,
                    &actual.determining_policies,
                ),
                (
                    "approval_demanded_by",
                    approval_demanded_by,
                    &actual.approval_demanded_by,
                ),
                (
                    "evaluation_errors",
                    evaluation_errors,
                    &actual.evaluation_errors,
                ),
            ];
            for (field, want, got) in sets {
                if let Some(want) = want
                    && !want.iter().eq(got.iter())
                {
                    out.push(Mismatch {
                        field,
                        expected: set(want),
                        actual: Value::from(got.clone()),
                    });
                }
            }
            out
        }
    }
}

fn effect_json(effect: Effect) -> Value {
    Value::from(match effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    })
}

/// A policy directory loaded for testing: the validated policies and the
/// raw `entities.json`, which cases extend or override.
#[derive(Debug)]
pub struct TestPolicies {
    dir: PathBuf,
    policies: Policies,
    /// `entities.json` as written, keyed by uid, in file order.
    entities: Vec<(EntityUid, Value)>,
}

impl TestPolicies {
    /// Loads and validates the policy directory `dir`.
    pub fn load(dir: &Path) -> Result<TestPolicies, PolicyTestError> {
        let policies = Policies::load_dir(dir).map_err(|error| PolicyTestError::Policies {
            dir: dir.to_path_buf(),
            error,
        })?;
        let path = dir.join(ENTITIES_FILE);
        let entities = if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|error| PolicyTestError::Io {
                path: path.clone(),
                error,
            })?;
            // Policies::load_dir has validated the file, so only the shape
            // needed to key it by uid is checked here.
            let invalid = |message: String| PolicyTestError::Entities {
                path: path.clone(),
                message,
            };
            let list: Vec<Value> = serde_json::from_str(&text)
                .map_err(|e| invalid(format!("expected a json list of entities: {e}")))?;
            keyed(list).map_err(|e| invalid(e.to_string()))?
        } else {
            Vec::new()
        };
        Ok(TestPolicies {
            dir: dir.to_path_buf(),
            policies,
            entities,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The validated policies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Every policy id, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        sorted(
            self.policies
                .policy_set()
                .policies()
                .map(|p| p.id().to_string()),
        )
    }

    /// `entities.json` with `overrides` put in: an entity with the uid of
    /// one in the file replaces it, any other is added.
    pub fn entities_with(&self, overrides: &[Value]) -> Result<Entities, CaseError> {
        if overrides.is_empty() {
            return Ok(self.policies.entities().clone());
        }
        let overrides = keyed(overrides.to_vec()).map_err(CaseError::Keys)?;
        let replaced: HashSet<&EntityUid> = overrides.iter().map(|(uid, _)| uid).collect();
        let mut merged: Vec<Value> = self
            .entities
            .iter()
            .filter(|(uid, _)| !replaced.contains(uid))
            .map(|(_, v)| v.clone())
            .collect();
        merged.extend(overrides.into_iter().map(|(_, v)| v));
        Entities::from_json_value(Value::Array(merged), Some(self.policies.schema()))
            .map_err(|e| CaseError::Entities(Box::new(e)))
    }

    /// Runs one case with `tools`; `now` is used when the case has none.
    pub fn run(&self, tools: &ToolRegistry, case: &PolicyTestCase, now: Timestamp) -> CaseOutcome {
        let result = self.entities_with(&case.entities).and_then(|entities| {
            explain(
                &self.policies,
                tools,
                &entities,
                &HypotheticalCall {
                    session: &case.session,
                    tool: &case.tool,
                    arguments: &case.arguments,
                    reviewer: case.reviewer.as_deref(),
                    now: case.now.unwrap_or(now),
                },
            )
            .map_err(CaseError::Explain)
        });
        let mismatches = compare(&case.expect, &result);
        let (actual, error) = match &result {
            Ok(explanation) => (Some(Actual::of(explanation)), None),
            Err(e) => (None, Some(e.to_string())),
        };
        CaseOutcome {
            name: case.name.clone(),
            passed: mismatches.is_empty(),
            mismatches,
            actual,
            error,
        }
    }
}

/// An error and what caused it, `: `-separated: Cedar keeps the detail
/// (which attribute of which entity) in the causes.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Why a case could not be evaluated: its entities, or the call itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaseError {
    /// An entity the case gives cannot be keyed by its uid.
    #[error("field `entities`: {0}")]
    Keys(EntityKeyError),
    /// The entities, merged with the file's, do not fit the schema.
    #[error("field `entities`: {}", with_causes(.0))]
    Entities(Box<cedar_policy::entities_errors::EntitiesError>),
    /// The call cannot be evaluated, as the guard would refuse it.
    #[error(transparent)]
    Explain(ExplainError),
}

/// Why a list of entities cannot be keyed by uid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntityKeyError {
    /// An entity has no `uid`.
    #[error("entity {index}: missing field `uid`")]
    MissingUid {
        /// Its place in the list.
        index: usize,
    },
    /// An entity's `uid` is not an entity reference.
    #[error("entity {index}: field `uid`: {error}")]
    BadUid {
        /// Its place in the list.
        index: usize,
        /// Cedar's reason.
        error: Box<cedar_policy::entities_json_errors::JsonDeserializationError>,
    },
    /// Two entities have one uid.
    #[error("entity {index}: uid `{uid}` is given twice")]
    DuplicateUid {
        /// The second one's place in the list.
        index: usize,
        /// The uid.
        uid: Box<EntityUid>,
    },
}

/// Keys entities by their `uid`; a uid given twice is an error.
fn keyed(list: Vec<Value>) -> Result<Vec<(EntityUid, Value)>, EntityKeyError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (index, entity) in list.into_iter().enumerate() {
        let uid = entity
            .get("uid")
            .ok_or(EntityKeyError::MissingUid { index })?;
        let uid = EntityUid::from_json(uid.clone()).map_err(|error| EntityKeyError::BadUid {
            index,
            error: Box::new(error),
        })?;
        if !seen.insert(uid.clone()) {
            return Err(EntityKeyError::DuplicateUid {
                index,
                uid: Box::new(uid),
            });
        }
        out.push((uid, entity));
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    policies: Option<PathBuf>,
    session: Option<Value>,
    now: Option<Timestamp>,
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    tool: String,
    arguments: Value,
    #[serde(default)]
    entities: Vec<Value>,
    session: Option<Value>,
    reviewer: Option<String>,
    now: Option<Timestamp>,
    expect: RawExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    decision: Option<RawEffect>,
    approval_required: Option<bool>,
    determining_policies: Option<Vec<String>>,
    approval_demanded_by: Option<Vec<String>>,
    evaluation_errors: Option<Vec<String>>,
    error: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawEffect {
    Allow,
    Deny,
}

/// Reads a test file. Sessions given as paths are read relative to the
/// file; so is `policies`.
pub fn load_test_file(path: &Path) -> Result<PolicyTestFile, PolicyTestError> {
    let text = std::fs::read_to_string(path).map_err(|error| PolicyTestError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let mut de = serde_json::Deserializer::from_str(&text);
    let raw: RawFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let what = inner.to_string();
        let what = what.split(" at line ").next().unwrap_or("").to_string();
        PolicyTestError::Malformed {
            path: path.to_path_buf(),
            line: inner.line(),
            column: inner.column(),
            message: if field == "." {
                what
            } else {
                format!("field `{field}`: {what}")
            },
        }
    })?;
    let invalid = |message: String| PolicyTestError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let policies = match (&raw.policies, base.parent()) {
        (Some(dir), _) => base.join(dir),
        (None, Some(up)) if up.as_os_str().is_empty() => PathBuf::from("."),
        (None, Some(up)) => up.to_path_buf(),
        (None, None) => base.join(".."),
    };
    let file_session = raw
        .session
        .as_ref()
        .map(|s| read_session(base, s).map_err(|e| invalid(format!("field `session`: {e}"))))
        .transpose()?;
    let mut names = BTreeMap::new();
    let mut cases = Vec::with_capacity(raw.cases.len());
    for (n, case) in raw.cases.into_iter().enumerate() {
        let at = format!("case {n} (`{}`)", case.name);
        if case.name.trim().is_empty() {
            return Err(invalid(format!("case {n}: field `name` must not be empty")));
        }
        if let Some(first) = names.insert(case.name.clone(), n) {
            return Err(invalid(format!(
                "{at}: the name is already used by case {first}"
            )));
        }
        let session = match &case.session {
            Some(s) => {
                read_session(base, s).map_err(|e| invalid(format!("{at}: field `session`: {e}")))?
            }
            None => file_session.clone().ok_or_else(|| {
                invalid(format!(
                    "{at}: no session; give `session` in the file or in the case"
                ))
            })?,
        };
        let expect = expectation(case.expect).map_err(|e| invalid(format!("{at}: {e}")))?;
        cases.push(PolicyTestCase {
            name: case.name,
            tool: case.tool,
            arguments: case.arguments,
            entities: case.entities,
            session,
            reviewer: case.reviewer,
            now: case.now.or(raw.now),
            expect,
        });
    }
    if cases.is_empty() {
        return Err(invalid("field `cases`: no cases".to_string()));
    }
    Ok(PolicyTestFile {
        path: path.to_path_buf(),
        policies,
        cases,
    })
}

/// Why a test file's `session` gives no session.
#[derive(Debug, thiserror::Error)]
enum SessionSourceError {
    /// A session file that does not load, or an inline session that does
    /// not pass the guard's checks.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// An inline session of the wrong shape: serde's message, after the
    /// path it stopped at when the message does not name it.
    #[error("{}", match .at { Some(at) => format!("field `{at}`: {message}"), None => message.clone() })]
    Inline { at: Option<String>, message: String },
    /// Neither a path nor an object.
    #[error("expected a path to a session file or a session object")]
    NotASession,
}

/// A session given as a path (relative to `base`) or inline.
fn read_session(base: &Path, value: &Value) -> Result<Session, SessionSourceError> {
    match value {
        Value::String(path) => Ok(Session::from_file(&base.join(path))?),
        Value::Object(_) => {
            let session: Session = serde_path_to_error::deserialize(value).map_err(|e| {
                let field = e.path().to_string();
                let message = e.into_inner().to_string();
                let named = field == "." || message.contains(&format!("`{field}`"));
                SessionSourceError::Inline {
                    at: (!named).then_some(field),
                    message,
                }
            })?;
            session.check("inline")?;
            Ok(session)
        }
        _ => Err(SessionSourceError::NotASession),
    }
}

/// Why a case's `expect` cannot be checked.
#[derive(Debug, thiserror::Error)]
enum ExpectError {
    /// A decision's detail given with an expected error.
    #[error("field `expect`: `{field}` cannot be checked when the case expects an `error`")]
    DetailWithError { field: &'static str },
    /// Both a decision and an error.
    #[error("field `expect`: give either `decision` or `error`, not both")]
    Both,
    /// Neither.
    #[error("field `expect`: missing `decision` (or `error`)")]
    Neither,
}

fn expectation(raw: RawExpect) -> Result<Expectation, ExpectError> {
    let set = |ids: Option<Vec<String>>| ids.map(|ids| ids.into_iter().collect::<BTreeSet<_>>());
    match (raw.error, raw.decision) {
        (Some(error), None) => {
            let others = [
                raw.approval_required.map(|_| "approval_required"),
                raw.determining_policies
                    .as_ref()
                    .map(|_| "determining_policies"),
                raw.approval_demanded_by
                    .as_ref()
                    .map(|_| "approval_demanded_by"),
                raw.evaluation_errors.as_ref().map(|_| "evaluation_errors"),
            ];
            if let Some(field) = others.into_iter().flatten().next() {
                return Err(ExpectError::DetailWithError { field });
            }
            Ok(Expectation::Error(error))
        }
        (Some(_), Some(_)) => Err(ExpectError::Both),
        (None, None) => Err(ExpectError::Neither),
        (None, Some(decision)) => Ok(Expectation::Decision {
            effect: match decision {
                RawEffect::Allow => Effect::Allow,
                RawEffect::Deny => Effect::Deny,
            },
            approval_required: raw.approval_required,
            determining_policies: set(raw.determining_policies),
            approval_demanded_by: set(raw.approval_demanded_by),
            evaluation_errors: set(raw.evaluation_errors),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{Workspace, example_registry};

    fn example_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    fn tools() -> ToolRegistry {
        example_registry(&Workspace::new(".")).unwrap()
    }

    /// Writes `text` as `tests/t.json` under a temp dir holding a copy of
    /// the example policies; returns the dir and the file.
    fn test_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(example_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        let file = dir.path().join("tests/t.json");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    fn one_case(case: &str) -> String {
        format!(r#"{{ "session": "../session.json", "cases": [ {case} ] }}"#)
    }

    const EMAIL: &str = r#""tool": "send_email",
        "arguments": { "to": "bob@example.com", "subject": "s", "body": "b" }"#;

    fn run_only_case(text: &str) -> CaseOutcome {
        let (_dir, file) = test_file(text);
        let file = load_test_file(&file).unwrap();
        let set = TestPolicies::load(&file.policies).unwrap();
        set.run(&tools(), &file.cases[0], Timestamp::now())
    }

    #[test]
    fn every_example_test_file_passes() {
        let mut ran = 0;
        for entry in std::fs::read_dir(example_dir().join("tests")).unwrap() {
            let file = load_test_file(&entry.unwrap().path()).unwrap();
            let set = TestPolicies::load(&file.policies).unwrap();
            for case in &file.cases {
                let outcome = set.run(&tools(), case, Timestamp::now());
                assert!(outcome.passed, "{}: {outcome:?}", file.path.display());
                ran += 1;
            }
        }
        assert!(ran > 10, "only {ran} cases");
    }

    #[test]
    fn the_policies_default_to_the_directory_holding_the_tests_directory() {
        let (dir, file) = test_file(&one_case(&format!(
            r#"{{ "name": "held", {EMAIL}, "expect": {{ "decision": "deny" }} }}"#
        )));
        let file = load_test_file(&file).unwrap();
        assert_eq!(file.policies, dir.path());
    }

    #[test]
    fn policy_sets_compare_in_any_order_and_name_what_differs() {
        let outcome = run_only_case(&one_case(&format!(
            r#"{{ "name": "carol", {EMAIL}, "reviewer": "carol",
                 "expect": {{ "decision": "deny", "approval_required": true,
                             "determining_policies": ["approver-must-be-reviewer"],
                             "approval_demanded_by": ["email-requires-approval"] }} }}"#
        )));
        assert!(!outcome.passed);
        let shown: Vec<String> = outcome.mismatches.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            shown,
            [
                "decision: expected deny, got allow",
                "determining_policies: expected [approver-must-be-reviewer], got [scope-email-send] \
                 (missing approver-must-be-reviewer; unexpected scope-email-send)",
            ]
        );
    }

    #[test]
    fn an_entity_given_by_a_case_replaces_the_one_with_its_uid() {
        let set = TestPolicies::load(&example_dir()).unwrap();
        let bob = serde_json::json!({
            "uid": { "type": "User", "id": "bob" },
            "attrs": { "email": "bob@example.com" },
            "parents": [{ "type": "Group", "id": "reviewers" }],
        });
        let entities = set.entities_with(&[bob]).unwrap();
        let uid = |ty: &str, id: &str| super::super::request::entity_uid(ty, id).unwrap();
        assert!(entities.is_ancestor_of(&uid("Group", "reviewers"), &uid("User", "bob")));
        assert_eq!(
            entities.iter().count(),
            set.policies().entities().iter().count()
        );
    }

    #[test]
    fn a_case_entity_that_does_not_fit_the_schema_says_which_attribute() {
        let set = TestPolicies::load(&example_dir()).unwrap();
        let doc = serde_json::json!({
            "uid": { "type": "Document", "id": "doc_88pk3r" }, "attrs": {}, "parents": [],
        });
        let err = set.entities_with(&[doc]).unwrap_err().to_string();
        assert!(err.starts_with("field `entities`: "), "{err}");
        assert!(err.contains("attribute `owner`"), "{err}");
    }

    #[test]
    fn an_error_the_case_does_not_expect_fails_it_with_the_error() {
        let outcome = run_only_case(&one_case(
            r#"{ "name": "typo", "tool": "send_mail", "arguments": {},
                 "expect": { "decision": "deny" } }"#,
        ));
        assert_eq!(outcome.error.as_deref(), Some("unknown tool `send_mail`"));
        assert_eq!(
            outcome.mismatches[0].to_string(),
            "error: unknown tool `send_mail` (expected a decision; the call could not be evaluated)"
        );
    }

    #[test]
    fn an_expected_error_passes_on_a_substring_and_fails_when_the_call_is_evaluated() {
        let expired = run_only_case(&one_case(
            r#"{ "name": "late", "tool": "read_document", "now": "2100-01-01T00:00:00Z",
                 "arguments": { "document_id": "doc_88pk3r" },
                 "expect": { "error": "session expired" } }"#,
        ));
        assert!(expired.passed, "{expired:?}");
        let evaluated = run_only_case(&one_case(
            r#"{ "name": "fine", "tool": "read_document",
                 "arguments": { "document_id": "doc_88pk3r" },
                 "expect": { "error": "session expired" } }"#,
        ));
        assert_eq!(
            evaluated.mismatches[0].to_string(),
            "error: expected an error containing \"session expired\", but the call was evaluated"
        );
    }

    fn load_error(text: &str) -> String {
        let (_dir, file) = test_file(text);
        load_test_file(&file).unwrap_err().to_string()
    }

    #[test]
    fn an_unknown_field_is_named_with_line_and_column() {
        let err = load_error(&one_case(&format!(
            "{{ \"name\": \"x\", {EMAIL},\n \"expect\": {{ \"decison\": \"deny\" }} }}"
        )));
        assert!(err.contains("t.json` line 3 column"), "{err}");
        assert!(
            err.contains("field `cases[0].expect.decison`: unknown field `decison`"),
            "{err}"
        );
    }

    #[test]
    fn an_expectation_needs_a_decision_or_an_error_but_not_both() {
        let err = load_error(&one_case(&format!(
            r#"{{ "name": "x", {EMAIL}, "expect": {{ "approval_required": true }} }}"#
        )));
        assert!(
            err.ends_with("case 0 (`x`): field `expect`: missing `decision` (or `error`)"),
            "{err}"
        );
        let err = load_error(&one_case(&format!(
            r#"{{ "name": "x", {EMAIL}, "expect": {{ "error": "e", "determining_policies": [] }} }}"#
        )));
        assert!(
            err.contains("`determining_policies` cannot be checked"),
            "{err}"
        );
    }

    #[test]
    fn case_names_are_unique_within_a_file() {
        let case = format!(r#"{{ "name": "x", {EMAIL}, "expect": {{ "decision": "deny" }} }}"#);
        let err = load_error(&one_case(&format!("{case}, {case}")));
        assert!(
            err.ends_with("case 1 (`x`): the name is already used by case 0"),
            "{err}"
        );
    }

    #[test]
    fn an_inline_session_is_checked_like_a_session_file() {
        let err = load_error(r#"{ "session": { "session_id": "s" }, "cases": [] }"#);
        assert!(
            err.ends_with("field `session`: missing field `trace_id`"),
            "{err}"
        );
    }
}
