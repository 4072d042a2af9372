//! Which arguments a policy reads, found once per candidate policy in its
//! JSON form (Cedar's EST), so that a replay knows which redacted arguments
//! would matter.
//!
//! In the EST an attribute access `e.attr` (or `e["attr"]`) is
//! `{".": {"left": e, "attr": "attr"}}`, a presence test `e has attr` is
//! `{"has": {"left": e, "attr": "attr"}}` (`e has a.b` has `"attr": ["a",
//! "b"]`) and the context variable is
//! `{"Var": "context"}`. So `context.arguments.body` reads the argument
//! `body`; `context.arguments` or `context` anywhere else (compared whole,
//! passed to a function, ...) reads every argument.

use std::collections::BTreeSet;

use cedar_policy::Policy;
use serde_json::Value;

/// What one policy reads of `context.arguments`, by top-level argument name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ArgumentReads {
    /// `context.arguments` or `context` used whole (or a policy that could
    /// not be analysed): every argument may be read.
    pub(crate) all: bool,
    /// `context.arguments.X`: the value of `X` is read.
    pub(crate) fields: BTreeSet<String>,
    /// `context.arguments has X`: only whether `X` is present, which
    /// redaction keeps (a commitment stands where the value was).
    pub(crate) presence: BTreeSet<String>,
}

/// The redacted arguments of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Redacted {
    /// The arguments themselves were committed as a whole (they were not an
    /// object), so even a presence test sees the commitment.
    pub(crate) root: bool,
    /// Top-level argument names holding a commitment somewhere inside.
    pub(crate) fields: BTreeSet<String>,
}

impl ArgumentReads {
    /// Every argument, for a policy whose reads are not known.
    fn everything() -> Self {
        ArgumentReads {
            all: true,
            ..ArgumentReads::default()
        }
    }

    /// What `policy` reads. A policy that cannot be written as JSON is taken
    /// to read everything, so that nothing redacted is ever guessed at.
    pub(crate) fn of_policy(policy: &Policy) -> Self {
        match policy.to_json() {
            Ok(est) => ArgumentReads::of_est(&est),
            Err(_) => ArgumentReads::everything(),
        }
    }

    /// What the policy with this EST reads. Only its conditions can name
    /// `context`; the scope and annotations cannot.
    pub(crate) fn of_est(est: &Value) -> Self {
        let mut reads = ArgumentReads::default();
        match est.get("conditions") {
            Some(conditions) => walk(conditions, &mut reads),
            // Not the shape this analysis knows: assume the worst.
            None if est.get("effect").is_none() => return ArgumentReads::everything(),
            None => {}
        }
        reads
    }

    /// Whether the policy reads anything `redacted` hides.
    pub(crate) fn reads_any(&self, redacted: &Redacted) -> bool {
        if self.all {
            return true;
        }
        if redacted.root {
            return !self.fields.is_empty() || !self.presence.is_empty();
        }
        self.fields.iter().any(|f| redacted.fields.contains(f))
    }
}

fn is_context(v: &Value) -> bool {
    v.get("Var").and_then(Value::as_str) == Some("context")
}

/// `context.arguments`.
fn is_context_arguments(v: &Value) -> bool {
    attribute(v, ".").is_some_and(|(left, attr)| is_context(left) && attr == "arguments")
}

/// The `left` and `attr` of `{op: {"left": .., "attr": ".."}}`.
fn attribute<'a>(v: &'a Value, op: &str) -> Option<(&'a Value, &'a str)> {
    let inner = v.get(op)?;
    Some((inner.get("left")?, inner.get("attr")?.as_str()?))
}

/// The `left` and the attribute path of `{"has": {"left": .., "attr": ..}}`,
/// where `attr` is one name or, for `e has a.b`, a list of names.
fn presence_test(v: &Value) -> Option<(&Value, Vec<&str>)> {
    let inner = v.get("has")?;
    let path = match inner.get("attr")? {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().map(Value::as_str).collect::<Option<_>>()?,
        _ => return None,
    };
    Some((inner.get("left")?, path))
}

fn walk(node: &Value, reads: &mut ArgumentReads) {
    if let Some((left, attr)) = attribute(node, ".") {
        if is_context_arguments(left) {
            reads.fields.insert(attr.to_string());
        } else if is_context(left) {
            // `context.session`, `context.now`, ...; `context.arguments`
            // itself is reached here only when nothing reads a field of it.
            if attr == "arguments" {
                reads.all = true;
            }
        } else {
            walk(left, reads);
        }
        return;
    }
    if let Some((left, path)) = presence_test(node) {
        // `e has a.b.c` tests `a` on `e`, then `b` and `c` inside `e.a`.
        let path = if is_context(left) {
            match path.split_first() {
                Some((&"arguments", rest)) => rest,
                // `context has session`, ...: always the same answer.
                _ => return,
            }
        } else if is_context_arguments(left) {
            &path[..]
        } else {
            walk(left, reads);
            return;
        };
        if let Some((first, rest)) = path.split_first() {
            reads.presence.insert((*first).to_string());
            if !rest.is_empty() {
                reads.fields.insert((*first).to_string());
            }
        }
        return;
    }
    if is_context(node) {
        reads.all = true;
        return;
    }
    match node {
        Value::Object(map) => map.values().for_each(|v| walk(v, reads)),
        Value::Array(items) => items.iter().for_each(|v| walk(v, reads)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::Policy;

    use super::*;

    fn reads(src: &str) -> ArgumentReads {
        ArgumentReads::of_policy(&Policy::from_str(src).unwrap())
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn redacted(names: &[&str]) -> Redacted {
        Redacted {
            root: false,
            fields: set(names),
        }
    }

    /// Pins the EST shapes the analysis relies on, so a Cedar upgrade that
    /// changes them fails here rather than silently reading nothing.
    #[test]
    fn the_est_of_an_argument_read_has_the_expected_shape() {
        let policy = Policy::from_str(
            r#"forbid (principal, action, resource) when { context.arguments.body like "*x*" && context.arguments has to };"#,
        )
        .unwrap();
        let est = policy.to_json().unwrap();
        let body = &est["conditions"][0]["body"]["&&"];
        assert_eq!(
            body["left"]["like"]["left"],
            serde_json::json!({".": {
                "left": {".": {"left": {"Var": "context"}, "attr": "arguments"}},
                "attr": "body",
            }}),
            "{est}"
        );
        assert_eq!(
            body["right"],
            serde_json::json!({"has": {
                "left": {".": {"left": {"Var": "context"}, "attr": "arguments"}},
                "attr": "to",
            }}),
            "{est}"
        );
        let nested = Policy::from_str(
            r#"forbid (principal, action, resource) when { context.arguments has meta.token };"#,
        )
        .unwrap()
        .to_json()
        .unwrap();
        assert_eq!(
            nested["conditions"][0]["body"],
            serde_json::json!({"has": {
                "left": {".": {"left": {"Var": "context"}, "attr": "arguments"}},
                "attr": ["meta", "token"],
            }}),
            "{nested}"
        );
    }

    #[test]
    fn a_field_access_reads_that_argument_only() {
        let r = reads(
            r#"forbid (principal, action, resource) when { context.arguments.body like "*merger*" };"#,
        );
        assert_eq!(r.fields, set(&["body"]));
        assert!(!r.all);
        assert!(r.reads_any(&redacted(&["body"])));
        assert!(!r.reads_any(&redacted(&["subject"])));
    }

    #[test]
    fn index_syntax_and_nested_fields_read_the_top_level_argument() {
        let r = reads(
            r#"permit (principal, action, resource) when { context["arguments"]["meta"].token == "x" };"#,
        );
        assert_eq!(r.fields, set(&["meta"]));
        assert!(!r.all);
    }

    #[test]
    fn a_presence_test_does_not_read_the_value() {
        let r =
            reads(r#"forbid (principal, action, resource) when { context.arguments has body };"#);
        assert_eq!(r.presence, set(&["body"]));
        assert!(r.fields.is_empty() && !r.all);
        assert!(!r.reads_any(&redacted(&["body"])));
        // Unless the arguments themselves were committed as a whole.
        let root = Redacted {
            root: true,
            fields: BTreeSet::new(),
        };
        assert!(r.reads_any(&root));
        // A presence test inside a redacted value reads the value.
        let r = reads(
            r#"forbid (principal, action, resource) when { context.arguments has meta && context.arguments.meta has token };"#,
        );
        assert_eq!(r.fields, set(&["meta"]));
    }

    #[test]
    fn a_nested_presence_test_reads_the_outer_argument() {
        // `has meta.token` looks inside the value of `meta`.
        let r = reads(
            r#"forbid (principal, action, resource) when { context.arguments has meta.token };"#,
        );
        assert_eq!(r.fields, set(&["meta"]), "{r:?}");
        assert_eq!(r.presence, set(&["meta"]));
        assert!(r.reads_any(&redacted(&["meta"])));
        // The same tests written from `context`.
        let r =
            reads(r#"forbid (principal, action, resource) when { context has arguments.body };"#);
        assert_eq!(r.presence, set(&["body"]), "{r:?}");
        assert!(r.fields.is_empty() && !r.all);
        let r = reads(
            r#"forbid (principal, action, resource) when { context has arguments.meta.token };"#,
        );
        assert_eq!(r.fields, set(&["meta"]), "{r:?}");
        let r = reads(r#"forbid (principal, action, resource) when { context has session.id };"#);
        assert_eq!(r, ArgumentReads::default());
    }

    #[test]
    fn the_arguments_or_the_context_used_whole_read_everything() {
        let whole = reads(
            r#"forbid (principal, action, resource) when { context.arguments == {"body": "x"} };"#,
        );
        assert!(whole.all);
        assert!(whole.reads_any(&redacted(&["body"])));
        let context = reads(
            r#"forbid (principal, action, resource) when { context == {"arguments": {"body": "x"}} };"#,
        );
        assert!(context.all);
    }

    #[test]
    fn other_context_attributes_and_policies_without_conditions_read_no_argument() {
        let r = reads(
            r#"permit (principal, action == Action::"send_email", resource) when { context.approval.granted && context.session.scopes.contains("email:send") && context has approval };"#,
        );
        assert_eq!(r, ArgumentReads::default());
        let r = reads(r#"permit (principal, action, resource);"#);
        assert_eq!(r, ArgumentReads::default());
        assert!(!r.reads_any(&Redacted {
            root: true,
            fields: set(&["body"]),
        }));
    }

    #[test]
    fn a_string_that_says_context_is_not_the_context() {
        let r = reads(
            r#"@reason("reads context.arguments.body") forbid (principal, action, resource) when { "context" == "context.arguments" };"#,
        );
        assert_eq!(r, ArgumentReads::default());
    }

    #[test]
    fn an_unknown_shape_reads_everything() {
        assert!(ArgumentReads::of_est(&serde_json::json!({"what": 1})).all);
    }
}
