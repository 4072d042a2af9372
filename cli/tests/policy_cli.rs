//! `mandate policy schema | validate | fmt`, run as the real binary: the
//! exact text a policy author sees for typical mistakes, and the checked-in
//! schema and policies kept in step with the tools and the formatter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use mandate::tools::{Workspace, example_registry};

/// Runs `mandate <args>` in `dir`.
fn mandate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mandate"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A temporary directory holding `policies/` with the example schema and
/// one policy file `p.cedar` with `policy`.
fn policies_with(policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(
        common::policies_dir().join("schema.cedarschema"),
        policies.join("schema.cedarschema"),
    )
    .unwrap();
    std::fs::write(policies.join("p.cedar"), policy).unwrap();
    dir
}

/// `mandate policy validate policies` on `policy`: exit code 1 and exactly
/// `expected` on stderr.
fn assert_invalid(policy: &str, expected: &str) {
    let dir = policies_with(policy);
    let out = mandate(dir.path(), &["policy", "validate", "policies"]);
    assert_eq!(text(&out.stderr), expected);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_example_policies_validate() {
    let out = mandate(
        &common::policies_dir().join(".."),
        &["policy", "validate", "policies"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: 9 policies valid against policies/schema.cedarschema"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_misspelled_context_attribute_is_underlined_with_a_suggestion() {
    assert_invalid(
        r#"@id("read-with-scope")
permit (principal, action == Action::"read_document", resource)
when { context.sesion.scopes.contains("documents:read") };
"#,
        r#"error: policies/p.cedar:3:8: for policy `read-with-scope`, attribute `sesion` in context for Action::"read_document" not found
  |
3 | when { context.sesion.scopes.contains("documents:read") };
  |        ^^^^^^^^^^^^^^
  = help: did you mean `session`?

1 error(s) in `policies`
"#,
    );
}

#[test]
fn an_unknown_attribute_with_no_close_name_lists_the_ones_there_are() {
    assert_invalid(
        r#"@id("titled")
permit (principal, action, resource is Document)
when { resource.name == "Q3 planning notes" };
"#,
        r#"error: policies/p.cedar:3:8: for policy `titled`, attribute `name` on entity type `Document` not found
  |
3 | when { resource.name == "Q3 planning notes" };
  |        ^^^^^^^^^^^^^
  = help: `Document` has `owner` and `title`

1 error(s) in `policies`
"#,
    );
}

#[test]
fn comparing_a_long_with_a_quoted_number_says_to_drop_the_quotes() {
    assert_invalid(
        r#"@id("shallow-delegation")
permit (principal, action, resource)
when { context.delegation.depth > "2" };
"#,
        r#"error: policies/p.cedar:3:35: for policy `shallow-delegation`, unexpected type: expected Long but saw String
  |
3 | when { context.delegation.depth > "2" };
  |                                   ^^^
  = help: `"2"` is a String; write `2` for a Long

1 error(s) in `policies`
"#,
    );
}

#[test]
fn comparing_an_entity_with_its_id_says_to_write_the_entity() {
    assert_invalid(
        r#"@id("alice-only")
permit (principal, action, resource)
when { context.user == "alice" };
"#,
        r#"error: policies/p.cedar:3:8: for policy `alice-only`, the types String and User are not compatible
  |
3 | when { context.user == "alice" };
  |        ^^^^^^^^^^^^^^^^^^^^^^^
  = help: both operands to a `==` expression must have compatible types; types must be exactly equal to be compatible
  = help: `"alice"` is a String; write `User::"alice"` for the User entity

1 error(s) in `policies`
"#,
    );
}

#[test]
fn a_policy_without_its_semicolon_is_pointed_out() {
    assert_invalid(
        r#"@id("a")
permit (principal, action in Action::"documents:read", resource)
when { context.session.scopes.contains("documents:read") }

@id("b")
forbid (principal, action, resource)
when { context.now >= context.session.expires_at };
"#,
        r#"error: policies/p.cedar:5:1: unexpected token `@`
  |
5 | @id("b")
  | ^
  = help: a policy ends with `;`: add one at the end of line 3

1 error(s) in `policies`
"#,
    );
}

#[test]
fn an_unknown_action_lists_the_schemas_actions_and_scopes() {
    assert_invalid(
        r#"@id("x")
permit (principal, action == Action::"delete_everything", resource);
"#,
        r#"error: policies/p.cedar:2:30: for policy `x`, unrecognized action `Action::"delete_everything"`
  |
2 | permit (principal, action == Action::"delete_everything", resource);
  |                              ^^^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: the schema's actions are Action::"http_request", Action::"read_document", Action::"send_email" and Action::"write_summary"; its scopes are Action::"documents:read", Action::"documents:write", Action::"email:send" and Action::"http:request"

1 error(s) in `policies`
"#,
    );
}

#[test]
fn fmt_check_fails_on_an_unformatted_file_and_passes_after_fmt() {
    let messy = "// Reads need the scope.\n@id(\"read\")\npermit(principal,action in Action::\"documents:read\",resource) when { context.session.scopes.contains(\"documents:read\") } ;\n";
    let dir = policies_with(messy);
    let file = dir.path().join("policies/p.cedar");

    let check = mandate(dir.path(), &["policy", "fmt", "policies", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(text(&check.stdout), "policies/p.cedar\n");
    assert_eq!(
        text(&check.stderr),
        "1 file(s) not formatted; run `mandate policy fmt policies`\n"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        messy,
        "--check rewrote the file"
    );

    let fmt = mandate(dir.path(), &["policy", "fmt", "policies"]);
    assert_eq!(fmt.status.code(), Some(0), "{}", text(&fmt.stderr));
    assert_eq!(text(&fmt.stdout), "formatted policies/p.cedar\n");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        r#"// Reads need the scope.
@id("read")
permit (
  principal,
  action in Action::"documents:read",
  resource
)
when { context.session.scopes.contains("documents:read") };
"#
    );

    let again = mandate(dir.path(), &["policy", "fmt", "policies", "--check"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(again.stdout.is_empty() && again.stderr.is_empty());
    let valid = mandate(dir.path(), &["policy", "validate", "policies"]);
    assert_eq!(valid.status.code(), Some(0), "{}", text(&valid.stderr));
}

#[test]
fn fmt_leaves_a_file_with_a_syntax_error_alone_and_says_where() {
    let broken = "permit(principal action, resource);\n";
    let dir = policies_with(broken);
    let out = mandate(dir.path(), &["policy", "fmt", "policies"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: policies/p.cedar:1:18: unexpected token `action`
  |
1 | permit(principal action, resource);
  |                  ^^^^^^

1 error(s) in `policies`; files with errors were left as they are
"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("policies/p.cedar")).unwrap(),
        broken
    );
}

#[test]
fn the_example_policies_are_formatted() {
    let out = mandate(
        &common::policies_dir().join(".."),
        &["policy", "fmt", "policies", "--check"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "run `mandate policy fmt policies`:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn policy_schema_prints_the_checked_in_schema() {
    let out = mandate(&common::policies_dir(), &["policy", "schema"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let checked_in =
        std::fs::read_to_string(common::policies_dir().join("schema.cedarschema")).unwrap();
    assert!(
        text(&out.stdout) == checked_in,
        "`mandate policy schema` differs from policies/schema.cedarschema; run `mandate policy schema > policies/schema.cedarschema`"
    );
}

#[test]
fn the_checked_in_schema_is_the_one_the_built_in_tools_generate() {
    let generated = example_registry(&Workspace::new("."))
        .unwrap()
        .cedar_schema()
        .unwrap();
    let checked_in =
        std::fs::read_to_string(common::policies_dir().join("schema.cedarschema")).unwrap();
    assert!(
        generated == checked_in,
        "policies/schema.cedarschema is stale: the built-in tools generate a different schema; run `mandate policy schema > policies/schema.cedarschema`\n--- generated ---\n{generated}"
    );
}
