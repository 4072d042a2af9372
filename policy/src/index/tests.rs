use std::str::FromStr;

use cedar_policy::{Context, Entities, EntityUid, PolicySet, Request, RestrictedExpression};
use serde_json::json;

use super::{IndexedResponse, PolicyIndex, evaluate_whole};

/// Every scope form Cedar has, over a hierarchy two levels deep, with
/// conditions that hold, fail, and fail to evaluate.
const POLICIES: &str = r#"
@id("any") permit (principal, action, resource) when { context.n == 1 };
@id("p-eq") permit (principal == A::"a1", action, resource);
@id("p-in") forbid (principal in G::"g1", action, resource) when { context.n == 2 };
@id("p-in-top") permit (principal in G::"top", action == Action::"read", resource);
@id("p-is") permit (principal is A, action == Action::"write", resource) when { context.n > 3 };
@id("p-is-in") forbid (principal is A in G::"top", action in Action::"writes", resource) when { context.n == 4 };
@id("a-eq") permit (principal, action == Action::"read", resource == D::"d1");
@id("a-in-group") permit (principal, action in Action::"writes", resource is D);
@id("a-in-list") forbid (principal, action in [Action::"read", Action::"writes"], resource in F::"f1") when { context.n == 5 };
@id("a-in-list-overlap") permit (principal, action in [Action::"write", Action::"writes"], resource) when { context.n == 6 };
@id("r-in") permit (principal, action, resource in F::"root");
@id("r-is-in") forbid (principal, action, resource is D in F::"f2") when { resource.secret };
@id("r-eq-error") forbid (principal, action, resource == D::"missing") when { resource.secret };
@id("overflow") forbid (principal is A, action, resource is D) when { context.n * 9223372036854775807 > 0 && context.n > 7 };
@id("type-other") permit (principal is G, action, resource);
"#;

fn entities() -> Entities {
    Entities::from_json_value(
        json!([
            { "uid": { "type": "G", "id": "top" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "G", "id": "g1" }, "attrs": {}, "parents": [{ "type": "G", "id": "top" }] },
            { "uid": { "type": "A", "id": "a1" }, "attrs": {}, "parents": [{ "type": "G", "id": "g1" }] },
            { "uid": { "type": "A", "id": "a2" }, "attrs": {}, "parents": [{ "type": "G", "id": "top" }] },
            { "uid": { "type": "A", "id": "a3" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "F", "id": "root" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "F", "id": "f1" }, "attrs": {}, "parents": [{ "type": "F", "id": "root" }] },
            { "uid": { "type": "F", "id": "f2" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "D", "id": "d1" }, "attrs": { "secret": false }, "parents": [{ "type": "F", "id": "f1" }] },
            { "uid": { "type": "D", "id": "d2" }, "attrs": { "secret": true }, "parents": [{ "type": "F", "id": "f2" }] },
            { "uid": { "type": "D", "id": "d3" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "Action", "id": "all" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "Action", "id": "writes" }, "attrs": {}, "parents": [{ "type": "Action", "id": "all" }] },
            { "uid": { "type": "Action", "id": "write" }, "attrs": {}, "parents": [{ "type": "Action", "id": "writes" }] },
            { "uid": { "type": "Action", "id": "read" }, "attrs": {}, "parents": [{ "type": "Action", "id": "all" }] },
        ]),
        None,
    )
    .unwrap()
}

fn uid(text: &str) -> EntityUid {
    EntityUid::from_str(text).unwrap()
}

fn request(principal: &str, action: &str, resource: &str, n: i64) -> Request {
    let context =
        Context::from_pairs([("n".to_string(), RestrictedExpression::new_long(n))]).unwrap();
    Request::new(uid(principal), uid(action), uid(resource), context, None).unwrap()
}

/// What must be equal: decision, determining policies, and each error's
/// policy and message (in any order).
fn comparable(r: &IndexedResponse) -> (String, Vec<String>, Vec<String>) {
    let mut errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
    errors.sort();
    (
        format!("{:?}", r.decision),
        r.reasons.iter().map(ToString::to_string).collect(),
        errors,
    )
}

#[test]
fn every_request_gets_exactly_the_answer_of_full_evaluation() {
    let set = PolicySet::from_str(POLICIES).unwrap();
    let index = PolicyIndex::new(&set).unwrap();
    let entities = entities();
    let principals = [
        r#"A::"a1""#,
        r#"A::"a2""#,
        r#"A::"a3""#,
        r#"A::"nobody""#,
        r#"G::"g1""#,
    ];
    let actions = [
        r#"Action::"read""#,
        r#"Action::"write""#,
        r#"Action::"writes""#,
        r#"Action::"unknown""#,
    ];
    let resources = [
        r#"D::"d1""#,
        r#"D::"d2""#,
        r#"D::"d3""#,
        r#"D::"missing""#,
        r#"F::"f1""#,
    ];
    let (mut compared, mut allowed, mut with_errors, mut forbidden) = (0, 0, 0, 0);
    for p in principals {
        for a in actions {
            for r in resources {
                for n in 0..9 {
                    let q = request(p, a, r, n);
                    let whole = evaluate_whole(&set, &q, &entities);
                    let indexed = index.is_authorized(&q, &entities);
                    assert_eq!(
                        comparable(&indexed),
                        comparable(&whole),
                        "{p} {a} {r} n={n}"
                    );
                    compared += 1;
                    allowed += usize::from(whole.decision == cedar_policy::Decision::Allow);
                    forbidden += usize::from(
                        whole.decision == cedar_policy::Decision::Deny && !whole.reasons.is_empty(),
                    );
                    with_errors += usize::from(!whole.errors.is_empty());
                }
            }
        }
    }
    // The cases exercise every outcome, not just one.
    assert_eq!(compared, 900);
    assert!(
        allowed > 100 && forbidden > 50 && with_errors > 50,
        "{allowed} {forbidden} {with_errors}"
    );
}

#[test]
fn a_request_evaluates_only_the_buckets_its_scope_matches() {
    let set = PolicySet::from_str(POLICIES).unwrap();
    let index = PolicyIndex::new(&set).unwrap();
    // One bucket per distinct scope; these policies all differ.
    assert_eq!(index.buckets(), 15);
    assert_eq!(index.bucket_count_by_scope(), 15);
    let entities = entities();
    let names = |q: &Request| {
        let mut out = Vec::new();
        index.candidates(q, &entities, &mut out);
        let mut ids: Vec<String> = out
            .iter()
            .flat_map(|&b| {
                index.buckets[b]
                    .policies()
                    .filter_map(|p| p.annotation("id"))
            })
            .map(ToString::to_string)
            .collect();
        ids.sort();
        ids
    };
    // a1 is in g1 in top; write is in writes in all; d1 is in f1 in root.
    assert_eq!(
        names(&request(
            r#"A::"a1""#,
            r#"Action::"write""#,
            r#"D::"d1""#,
            0
        )),
        [
            "a-in-group",
            "a-in-list",
            "a-in-list-overlap",
            "any",
            "overflow",
            "p-eq",
            "p-in",
            "p-is",
            "p-is-in",
            "r-in",
        ]
    );
    // Nothing in the hierarchy: only the unconstrained and type scopes.
    assert_eq!(
        names(&request(
            r#"A::"nobody""#,
            r#"Action::"unknown""#,
            r#"D::"missing""#,
            0
        )),
        ["any", "overflow", "r-eq-error"]
    );
}

#[test]
fn policies_with_the_same_scope_share_one_bucket() {
    let set = PolicySet::from_str(
        r#"
        @id("x") permit (principal == A::"a1", action, resource) when { context.n == 1 };
        @id("y") forbid (principal == A::"a1", action, resource) when { context.n == 2 };
        @id("z") permit (principal == A::"a2", action, resource);
        "#,
    )
    .unwrap();
    let index = PolicyIndex::new(&set).unwrap();
    assert_eq!(index.buckets(), 2);
}

#[test]
fn a_set_with_templates_is_not_indexed_and_can_be_evaluated_whole() {
    let set =
        PolicySet::from_str(r#"@id("t") permit (principal == ?principal, action, resource);"#)
            .unwrap();
    let err = PolicyIndex::new(&set).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot index policy `policy0`: templates are not indexed"
    );
    let whole = PolicyIndex::whole(&set);
    assert_eq!(whole.buckets(), 1);
}
