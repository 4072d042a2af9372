//! Generated policy sets of any size, for the policy index's differential
//! test and the scaling benchmark: per-agent, per-team, per-tool,
//! per-folder and per-document permits and forbids over an entity hierarchy
//! (agents in teams, documents in folders in folders, tools in scope groups
//! in one group of all tools), the way an organisation's rules grow.
//!
//! Every set starts with the same eight organisation-wide rules (what a
//! small deployment's whole set looks like); the rest name agents, teams,
//! folders and documents. The entity population grows with the set, so each
//! agent or document is named by a handful of policies whatever the size;
//! policies that apply to every agent stay few, as they do in practice.
//! Some conditions fail to evaluate on purpose: an arithmetic overflow for a
//! high risk, and a document attribute read on a document the entities do
//! not hold. Everything is deterministic in the size.

use std::fmt::Write;
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, EntityUid, PolicySet, Request, RestrictedExpression, Schema,
};
use serde_json::{Value, json};

/// Tools (actions) in every generated set.
pub const TOOLS: usize = 12;
/// Scope groups the tools are in.
pub const GROUPS: usize = 4;

/// A generated policy set with its schema and entities.
#[derive(Debug)]
pub struct SyntheticPolicies {
    /// The schema, Cedar text.
    pub schema_text: String,
    /// The policies, Cedar text, one `@id` each.
    pub policies_text: String,
    /// The entities, Cedar JSON.
    pub entities_json: Value,
    /// The parsed schema.
    pub schema: Schema,
    /// The parsed policies.
    pub set: PolicySet,
    /// The entities, with the schema's action hierarchy.
    pub entities: Entities,
    /// How many of each entity there are.
    pub population: Population,
}

/// The sizes of the generated entity population.
#[derive(Debug, Clone, Copy)]
pub struct Population {
    /// Teams (`Team::"team<i>"`).
    pub teams: usize,
    /// Agents (`Agent::"a<i>"`), each in one team.
    pub agents: usize,
    /// Users (`User::"u<i>"`).
    pub users: usize,
    /// Top folders (`Folder::"root<i>"`).
    pub roots: usize,
    /// Folders in the top folders (`Folder::"f<i>"`).
    pub folders: usize,
    /// Documents (`Document::"d<i>"`), each in one folder.
    pub documents: usize,
}

impl Population {
    fn for_policies(n: usize) -> Population {
        Population {
            teams: (n / 100).max(2),
            agents: (n / 25).max(4),
            users: (n / 100).max(4),
            roots: (n / 400).max(2),
            folders: (n / 50).max(4),
            documents: (n / 8).max(8),
        }
    }
}

/// What went wrong generating a set: Cedar refused what was generated.
#[derive(Debug, thiserror::Error)]
#[error("generated {what} do not parse: {message}")]
pub struct SyntheticError {
    /// Schema, policies, entities or request.
    pub what: &'static str,
    /// Cedar's message.
    pub message: String,
}

fn failed(what: &'static str) -> impl Fn(String) -> SyntheticError {
    move |message| SyntheticError { what, message }
}

/// Spreads `i` over `0..n` so that neighbouring policies name different
/// entities (Knuth's multiplicative hash).
fn spread(i: usize, salt: usize, n: usize) -> usize {
    let x = (i as u64)
        .wrapping_add(salt as u64)
        .wrapping_mul(2_654_435_761)
        .rotate_left(17);
    (x % n.max(1) as u64) as usize
}

impl SyntheticPolicies {
    /// Generates a set of exactly `n` policies.
    pub fn generate(n: usize) -> Result<SyntheticPolicies, SyntheticError> {
        let population = Population::for_policies(n);
        let schema_text = schema_text();
        let (schema, _) = Schema::from_cedarschema_str(&schema_text)
            .map_err(|e| failed("schema")(e.to_string()))?;
        let policies_text = policies_text(n, &population);
        let set =
            PolicySet::from_str(&policies_text).map_err(|e| failed("policies")(e.to_string()))?;
        let entities_json = entities_json(&population);
        let entities = Entities::from_json_value(entities_json.clone(), Some(&schema))
            .map_err(|e| failed("entities")(e.to_string()))?;
        Ok(SyntheticPolicies {
            schema_text,
            policies_text,
            entities_json,
            schema,
            set,
            entities,
            population,
        })
    }

    /// The request of agent `agent` calling tool `tool` on document
    /// `document` for user `user` at `risk`. An agent, document or user
    /// number past the population names one the entities do not hold.
    pub fn request(
        &self,
        agent: usize,
        tool: usize,
        document: usize,
        user: usize,
        risk: i64,
    ) -> Result<Request, SyntheticError> {
        let uid = |ty: &str, id: String| {
            EntityUid::from_str(&format!("{ty}::{}", json!(id)))
                .map_err(|e| failed("request")(e.to_string()))
        };
        let context = Context::from_pairs([
            ("risk".to_string(), RestrictedExpression::new_long(risk)),
            (
                "user".to_string(),
                RestrictedExpression::new_entity_uid(uid("User", format!("u{user}"))?),
            ),
        ])
        .map_err(|e| failed("request")(e.to_string()))?;
        Request::new(
            uid("Agent", format!("a{agent}"))?,
            uid("Action", format!("t{}", tool % TOOLS))?,
            uid("Document", format!("d{document}"))?,
            context,
            None,
        )
        .map_err(|e| failed("request")(e.to_string()))
    }
}

fn schema_text() -> String {
    let mut s = String::from(
        "entity Team;\n\
         entity Agent in [Team];\n\
         entity User;\n\
         entity Folder in [Folder];\n\
         entity Document in [Folder] = { owner: User, level: Long };\n\
         action \"all\";\n",
    );
    for g in 0..GROUPS {
        let _ = writeln!(s, "action \"g{g}\" in [\"all\"];");
    }
    for t in 0..TOOLS {
        let _ = writeln!(
            s,
            "action \"t{t}\" in [\"g{}\"] appliesTo {{ principal: [Agent], resource: [Document], context: {{ risk: Long, user: User }} }};",
            t % GROUPS
        );
    }
    s
}

fn entities_json(p: &Population) -> Value {
    let entity = |ty: &str, id: String, parents: Vec<Value>, attrs: Value| json!({ "uid": { "type": ty, "id": id }, "attrs": attrs, "parents": parents });
    let parent = |ty: &str, id: String| json!({ "type": ty, "id": id });
    let mut all = Vec::new();
    all.extend((0..p.teams).map(|i| entity("Team", format!("team{i}"), vec![], json!({}))));
    all.extend((0..p.agents).map(|i| {
        let team = parent("Team", format!("team{}", i % p.teams));
        entity("Agent", format!("a{i}"), vec![team], json!({}))
    }));
    all.extend((0..p.users).map(|i| entity("User", format!("u{i}"), vec![], json!({}))));
    all.extend((0..p.roots).map(|i| entity("Folder", format!("root{i}"), vec![], json!({}))));
    all.extend((0..p.folders).map(|i| {
        let root = parent("Folder", format!("root{}", i % p.roots));
        entity("Folder", format!("f{i}"), vec![root], json!({}))
    }));
    all.extend((0..p.documents).map(|i| {
        let folder = parent("Folder", format!("f{}", spread(i, 7, p.folders)));
        let owner = json!({ "__entity": { "type": "User", "id": format!("u{}", i % p.users) } });
        entity(
            "Document",
            format!("d{i}"),
            vec![folder],
            json!({ "owner": owner, "level": (i % 10) as i64 }),
        )
    }));
    Value::Array(all)
}

/// The organisation-wide rules every generated set starts with, as a small
/// deployment's whole policy set looks: a permit per scope group, forbids
/// for a high risk and for sensitive documents, a rule that reads a
/// document's owner, and one whose arithmetic overflows for tool `t0`.
fn baseline() -> Vec<String> {
    let mut rules: Vec<String> = (0..GROUPS)
        .map(|g| {
            format!(
                "permit (principal, action in Action::\"g{g}\", resource) when {{ context.risk < {} }};",
                60 + 5 * g
            )
        })
        .collect();
    rules.push("forbid (principal, action, resource) when { context.risk >= 95 };".into());
    rules.push(
        "forbid (principal, action, resource is Document) when { resource.level > 8 && context.risk > 40 };"
            .into(),
    );
    rules.push(
        "permit (principal is Agent, action in Action::\"all\", resource is Document) when { resource.owner == context.user && context.risk < 30 };"
            .into(),
    );
    // Overflows, and so fails to evaluate, from a risk of 10 up.
    rules.push(
        "forbid (principal, action == Action::\"t0\", resource) when { context.risk * 1000000000000000000 > 50 };"
            .into(),
    );
    rules
}

fn policies_text(n: usize, p: &Population) -> String {
    let mut s = String::with_capacity(n * 160);
    let baseline = baseline();
    let mut per_tool = 0;
    for i in 0..n {
        let _ = writeln!(s, "@id(\"p{i}\")");
        if let Some(rule) = baseline.get(i) {
            let _ = writeln!(s, "{rule}");
            continue;
        }
        let agent = spread(i, 1, p.agents);
        let tool = spread(i, 2, TOOLS);
        let other_tool = (tool + 1 + spread(i, 3, TOOLS - 1)) % TOOLS;
        let group = spread(i, 4, GROUPS);
        let team = spread(i, 5, p.teams);
        let folder = spread(i, 6, p.folders);
        let root = spread(i, 8, p.roots);
        let document = spread(i, 9, p.documents);
        let risk = 20 + spread(i, 10, 70);
        let level = spread(i, 11, 10);
        let mut kind = i % 11;
        // A rule for every agent on one tool is rare: one per tool at most.
        if kind == 3 {
            if per_tool < TOOLS {
                per_tool += 1;
            } else {
                kind = 4;
            }
        }
        let effect = if i % 3 == 0 { "forbid" } else { "permit" };
        let _ = match kind {
            0 => writeln!(
                s,
                "permit (principal == Agent::\"a{agent}\", action == Action::\"t{tool}\", resource) when {{ context.risk < {risk} }};"
            ),
            1 => writeln!(
                s,
                "forbid (principal == Agent::\"a{agent}\", action in Action::\"g{group}\", resource in Folder::\"f{folder}\");"
            ),
            2 => writeln!(
                s,
                "permit (principal in Team::\"team{team}\", action in Action::\"g{group}\", resource is Document) when {{ resource.level <= {level} }};"
            ),
            3 => writeln!(
                s,
                "forbid (principal, action == Action::\"t{tool}\", resource) when {{ context.risk > {} }};",
                risk + 10
            ),
            4 => writeln!(
                s,
                "{effect} (principal, action == Action::\"t{tool}\", resource == Document::\"d{document}\") when {{ context.risk < {risk} }};"
            ),
            // Overflows from a risk of 10 up.
            5 => writeln!(
                s,
                "forbid (principal is Agent, action, resource == Document::\"d{document}\") when {{ context.risk * 1000000000000000000 > {risk} }};"
            ),
            6 => writeln!(
                s,
                "permit (principal is Agent in Team::\"team{team}\", action in [Action::\"t{tool}\", Action::\"t{other_tool}\"], resource in Folder::\"root{root}\");"
            ),
            7 => writeln!(
                s,
                "permit (principal == Agent::\"a{agent}\", action in Action::\"all\", resource == Document::\"d{document}\") when {{ resource.owner == context.user }};"
            ),
            8 => writeln!(
                s,
                "forbid (principal, action in Action::\"g{group}\", resource is Document in Folder::\"f{folder}\") when {{ context.risk > 70 && resource.owner != context.user }};"
            ),
            9 => writeln!(
                s,
                "{effect} (principal == Agent::\"a{agent}\", action in Action::\"g{group}\", resource) when {{ context.risk < {risk} }};"
            ),
            _ => writeln!(
                s,
                "permit (principal is Agent, action == Action::\"t{tool}\", resource is Document in Folder::\"root{root}\") when {{ resource.level < {level} && context.risk < {risk} }};"
            ),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sets_have_the_size_asked_for_and_validate_against_their_schema() {
        for n in [10, 1_000] {
            let s = SyntheticPolicies::generate(n).unwrap();
            assert_eq!(s.set.policies().count(), n);
            let result = cedar_policy::Validator::new(s.schema.clone())
                .validate(&s.set, cedar_policy::ValidationMode::Strict);
            assert!(
                result.validation_passed(),
                "{:?}",
                result.validation_errors().next()
            );
        }
    }

    #[test]
    fn broad_policies_stay_few_as_the_set_grows() {
        let s = SyntheticPolicies::generate(10_000).unwrap();
        let broad = s
            .set
            .policies()
            .filter(|p| p.principal_constraint() == cedar_policy::PrincipalConstraint::Any)
            .filter(|p| p.resource_constraint() == cedar_policy::ResourceConstraint::Any)
            .count();
        // Six baseline rules and one per tool.
        assert_eq!(broad, 6 + TOOLS);
    }
}
