//! Redaction end to end: the scripted guest sends sensitive arguments, the
//! log holds only salted commitments (the chain still verifies), reviewers
//! see the same, and the holder of the salt key proves what was sent.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Env, FixedReviewer, copy_policies, email_call};
use mandate::audit::{AuditLog, RecordReader};
use mandate::pipeline::{
    DenyAll, Guard, ProveError, RedactionKey, RegistryError, ResourceBinding, Reviewer, Tool,
    ToolContext, ToolFailure, ToolRegistry, ToolSpec, prove,
};
use mandate::policy::Policies;
use mandate::tools::{Workspace, example_registry};
use serde_json::{Value, json};

const SECRET: &str = "the merger closes on Friday; tell nobody";

/// A tool with nested and array-item sensitive paths. Its arguments are
/// checked by the Cedar schema below.
struct ShareFiles;

/// The arguments of `share_files`, closed at every level.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ShareArgs {
    attachments: Vec<Attachment>,
    meta: Meta,
    recipients: Vec<String>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Attachment {
    #[allow(dead_code)]
    name: String,
    #[allow(dead_code)]
    content: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Meta {
    #[allow(dead_code)]
    token: String,
    #[allow(dead_code)]
    label: String,
}

impl Tool for ShareFiles {
    type Args = ShareArgs;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "share_files".into(),
            description: "Shares files with recipients.".into(),
            scope: "documents:write".into(),
            resource: ResourceBinding::Tool,
            sensitive: vec![
                "attachments[].content".into(),
                "meta.token".into(),
                "recipients[]".into(),
            ],
        }
    }

    async fn run(&self, _ctx: ToolContext, args: ShareArgs) -> Result<Value, ToolFailure> {
        let _ = (&args.meta, &args.recipients);
        Ok(json!({"shared": args.attachments.len()}))
    }
}

const SHARE_FILES_SCHEMA: &str = r#"
action share_files in ["documents:write"] appliesTo {
  principal: [Agent],
  resource: [Tool],
  context: {
    session: Session, user: User, delegation: Delegation, approval: Approval, now: datetime,
    arguments: {
      attachments: Set<{ name: String, content: String }>,
      meta: { token: String, label: String },
      recipients: Set<String>,
    },
  },
};
"#;

/// An [`Env`] whose guard redacts with `key` (none: the guard's one-time
/// key), with `share_files` registered next to the example tools.
fn env_with(key: Option<RedactionKey>, reviewer: Arc<dyn Reviewer>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let policies_dir = dir.path().join("policies");
    copy_policies(&policies_dir);
    let schema = policies_dir.join("schema.cedarschema");
    let mut text = std::fs::read_to_string(&schema).unwrap();
    text.push_str(SHARE_FILES_SCHEMA);
    std::fs::write(&schema, text).unwrap();

    let root = dir.path().join("workspace");
    std::fs::create_dir_all(&root).unwrap();
    let workspace = Workspace::new(&root);
    let audit_path = dir.path().join("audit.jsonl");
    let policies = Policies::load_dir(&policies_dir).unwrap();
    let policy_digest = policies.digest().to_string();
    let mut tools = example_registry(&workspace).unwrap();
    tools.register(ShareFiles).unwrap();
    let mut builder = Guard::builder(policies, AuditLog::open(&audit_path).unwrap())
        .tools(tools)
        .reviewer_arc(reviewer);
    if let Some(key) = key {
        builder = builder.redaction_key(key);
    }
    Env {
        dir,
        workspace,
        audit_path,
        policy_digest,
        guard: builder.build().unwrap(),
    }
}

/// Every byte the log holds on disk, whether it is one file or a directory
/// of segments and side files.
fn raw_log_bytes(path: &Path) -> Vec<u8> {
    if path.is_file() {
        return std::fs::read(path).unwrap();
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        bytes.extend(raw_log_bytes(&entry.unwrap().path()));
    }
    bytes
}

/// The decision records of the log, read with the library's own reader
/// (the log may be one file or a directory of segments).
fn decisions(env: &Env) -> Vec<Value> {
    RecordReader::open(&env.audit_path)
        .unwrap()
        .map(|r| serde_json::from_slice::<Value>(&r.unwrap().bytes).unwrap())
        .filter(|r| r["kind"] == "decision")
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Checks that `value` is a v2 commitment object made with `key`: a
/// digest, the key id and a nonce of 32 lowercase hex.
fn assert_commitment(value: &Value, key: &RedactionKey) {
    let map = value.as_object().unwrap_or_else(|| panic!("{value}"));
    assert_eq!(map.len(), 3, "{value}");
    let nonce = value["nonce"].as_str().unwrap_or_else(|| panic!("{value}"));
    assert!(
        nonce.len() == 32
            && nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{value}"
    );
    let hex = value["redacted"]
        .as_str()
        .and_then(|c| c.strip_prefix("sha256:"))
        .unwrap_or_else(|| panic!("{value}"));
    assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(value["key_id"], key.key_id());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approved_email_body_is_logged_as_a_commitment_that_the_salt_key_proves() {
    let key = RedactionKey::generate().unwrap();
    let reviewer = FixedReviewer::approves_as("carol");
    let env = env_with(Some(key.clone()), Arc::new(reviewer.clone()));
    let results = env.script(json!([email_call(SECRET)])).await;
    assert!(results[0]["ok"]["queued"] == true, "{results:?}");
    // The tool itself got the body in clear.
    assert_eq!(env.outbox()[0]["body"], SECRET);

    let decision = decisions(&env).remove(0);
    let seq = decision["seq"].as_u64().unwrap();
    let arguments = &decision["action"]["arguments"];
    assert_eq!(arguments["to"], "bob@example.com");
    assert_eq!(arguments["subject"], "Q3 notes");
    assert_commitment(&arguments["body"], &key);

    // Not in clear anywhere on disk, and the chain verifies with the
    // commitment in place.
    let raw = raw_log_bytes(&env.audit_path);
    assert!(contains(
        &raw,
        arguments["body"]["redacted"].as_str().unwrap()
    ));
    assert!(!contains(&raw, SECRET));
    assert!(!contains(&raw, "merger closes"));
    env.assert_verifies(6);

    // The reviewer was shown exactly what the log holds.
    assert_eq!(&reviewer.seen()[0].arguments, arguments);

    let proof = prove(&env.audit_path, seq, "arguments.body", &json!(SECRET), &key).unwrap();
    assert!(proof.matches, "{proof:?}");
    assert_eq!(proof.call_id, "sess_example_01:1");
    assert_eq!(proof.recorded, arguments["body"]["redacted"]);

    let wrong = prove(
        &env.audit_path,
        seq,
        "arguments.body",
        &json!("the merger closes on Monday; tell nobody"),
        &key,
    )
    .unwrap();
    assert!(!wrong.matches);

    let other = RedactionKey::generate().unwrap();
    let err = prove(
        &env.audit_path,
        seq,
        "arguments.body",
        &json!(SECRET),
        &other,
    )
    .unwrap_err();
    assert!(matches!(err, ProveError::WrongKey { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_fields_and_every_array_item_are_committed_and_each_proven() {
    let key = RedactionKey::generate().unwrap();
    let env = env_with(Some(key.clone()), Arc::new(DenyAll));
    let sent = json!({
        "attachments": [
            {"name": "plan.txt", "content": "alpha-secret-content"},
            {"name": "notes.txt", "content": "beta-secret-content"},
        ],
        "meta": {"token": "tok-secret-123", "label": "q3"},
        "recipients": ["hidden-one@example.com", "hidden-two@example.com"],
    });
    let results = env
        .script(json!([{"tool": "share_files", "arguments": sent}]))
        .await;
    assert_eq!(results[0]["ok"], json!({"shared": 2}), "{results:?}");

    let decision = decisions(&env).remove(0);
    let seq = decision["seq"].as_u64().unwrap();
    let logged = &decision["action"]["arguments"];
    assert_eq!(logged["attachments"][0]["name"], "plan.txt");
    assert_eq!(logged["meta"]["label"], "q3");
    let raw = raw_log_bytes(&env.audit_path);
    let cases = [
        ("arguments.attachments[0].content", "alpha-secret-content"),
        ("arguments.attachments[1].content", "beta-secret-content"),
        ("arguments.meta.token", "tok-secret-123"),
        ("arguments.recipients[0]", "hidden-one@example.com"),
        ("arguments.recipients[1]", "hidden-two@example.com"),
    ];
    for (path, secret) in cases {
        assert!(!contains(&raw, secret), "{secret} is in the log");
        let proof = prove(&env.audit_path, seq, path, &json!(secret), &key).unwrap();
        assert!(proof.matches, "{path}: {proof:?}");
    }
    // Each commitment is bound to its own path.
    let swapped = prove(
        &env.audit_path,
        seq,
        "arguments.attachments[0].content",
        &json!("beta-secret-content"),
        &key,
    )
    .unwrap();
    assert!(!swapped.matches);
    for a in logged["attachments"].as_array().unwrap() {
        assert_commitment(&a["content"], &key);
    }
    env.assert_verifies(5);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_body_in_two_calls_gives_unrelated_commitments() {
    let key = RedactionKey::generate().unwrap();
    let env = env_with(Some(key.clone()), Arc::new(DenyAll));
    // Both are held for a reviewer and denied; their decisions are logged.
    env.script(json!([email_call(SECRET), email_call(SECRET)]))
        .await;
    let decisions = decisions(&env);
    assert_eq!(decisions.len(), 2);
    let bodies: Vec<&Value> = decisions
        .iter()
        .map(|d| &d["action"]["arguments"]["body"])
        .collect();
    assert_ne!(bodies[0]["redacted"], bodies[1]["redacted"]);
    for d in &decisions {
        let seq = d["seq"].as_u64().unwrap();
        let proof = prove(&env.audit_path, seq, "arguments.body", &json!(SECRET), &key).unwrap();
        assert!(proof.matches);
    }
    assert!(!contains(&raw_log_bytes(&env.audit_path), SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_salt_key_values_are_still_never_in_clear_but_cannot_be_proven() {
    let env = env_with(None, Arc::new(DenyAll));
    env.script(json!([email_call(SECRET)])).await;

    let decision = decisions(&env).remove(0);
    let body = &decision["action"]["arguments"]["body"];
    assert!(
        body["redacted"].as_str().unwrap().starts_with("sha256:"),
        "{body}"
    );
    assert!(!contains(&raw_log_bytes(&env.audit_path), SECRET));
    env.assert_verifies(5);

    // Whatever key one tries, it is not the guard's one-time key.
    let guess = RedactionKey::generate().unwrap();
    assert_ne!(body["key_id"], guess.key_id());
    let seq = decision["seq"].as_u64().unwrap();
    let err = prove(
        &env.audit_path,
        seq,
        "arguments.body",
        &json!(SECRET),
        &guess,
    )
    .unwrap_err();
    assert!(matches!(err, ProveError::WrongKey { .. }), "{err}");
}

#[test]
fn a_malformed_sensitive_path_is_refused_at_registration_naming_tool_and_path() {
    struct Bad;
    impl Tool for Bad {
        type Args = Value;
        fn spec(&self) -> ToolSpec {
            ToolSpec {
                name: "bad_tool".into(),
                description: String::new(),
                scope: "documents:read".into(),
                resource: ResourceBinding::Tool,
                sensitive: vec!["body".into(), "attachments[0].content".into()],
            }
        }
        async fn run(&self, _ctx: ToolContext, _args: Value) -> Result<Value, ToolFailure> {
            Ok(Value::Null)
        }
    }
    let err = ToolRegistry::new().register(Bad).err().unwrap();
    assert!(matches!(err, RegistryError::SensitivePath { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("tool `bad_tool`: sensitive path `attachments[0].content` is malformed"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_body_in_two_runs_with_the_same_session_id_gives_unrelated_commitments() {
    let key = RedactionKey::generate().unwrap();
    // Two guards (two runs) with the same salt key and the same session id:
    // call ids restart at 1, so only a nonce keeps the salts apart.
    let runs = [
        env_with(Some(key.clone()), Arc::new(DenyAll)),
        env_with(Some(key.clone()), Arc::new(DenyAll)),
    ];
    let mut bodies = Vec::new();
    for env in &runs {
        env.script(json!([email_call(SECRET)])).await;
        let decisions = decisions(env);
        assert_eq!(decisions.len(), 1);
        let decision = decisions.into_iter().next().unwrap();
        bodies.push((
            decision["call_id"].clone(),
            decision["seq"].as_u64().unwrap(),
            decision["action"]["arguments"]["body"].clone(),
        ));
    }
    let [(call_a, _, a), (call_b, _, b)] = [&bodies[0], &bodies[1]].map(Clone::clone);
    assert_eq!(call_a, call_b, "both runs use the same call id");
    assert_ne!(
        a["redacted"], b["redacted"],
        "the same body gave the same commitment in two runs: {a} {b}"
    );
    assert_ne!(a["nonce"], b["nonce"], "{a} {b}");
    // Each is still proven by the salt key against its own record.
    for (env, (_, seq, _)) in runs.iter().zip(&bodies) {
        let proof = prove(
            &env.audit_path,
            *seq,
            "arguments.body",
            &json!(SECRET),
            &key,
        )
        .unwrap();
        assert!(proof.matches, "{proof:?}");
    }
}

/// The commitment vector of `docs/test-vectors/` (checked with the Python
/// second verifier by `second_verifier.rs`) is what the host computes: the
/// same RFC 8785 bytes and the same v2 commitment.
#[test]
fn the_v2_commitment_vector_is_what_the_host_computes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/test-vectors");
    let vector: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("commitment-v2.json")).unwrap())
            .unwrap();
    let key = RedactionKey::load(&dir.join(vector["salt_key_file"].as_str().unwrap())).unwrap();
    let value = &vector["value"];
    let jcs = String::from_utf8(mandate::pipeline::jcs(value).unwrap()).unwrap();
    assert_eq!(jcs, vector["jcs"].as_str().unwrap());
    assert!(
        jcs.contains(r#""amount":100000000000000000000"#) && jcs.contains("[1e+21,0,"),
        "{jcs}"
    );
    let commitment = &vector["commitment"];
    assert_eq!(commitment["key_id"], key.key_id());
    let computed = mandate::pipeline::commitment_v2(
        &key,
        commitment["nonce"].as_str().unwrap(),
        vector["call_id"].as_str().unwrap(),
        vector["path"].as_str().unwrap(),
        value,
    )
    .unwrap();
    assert_eq!(computed, commitment["redacted"].as_str().unwrap());
}
