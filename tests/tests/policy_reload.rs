//! Hot reload: a running guard swaps its policy set atomically, records
//! each reload, rejects a candidate that does not load, and never decides one
//! call with two sets.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, copy_policies, policy_ids, session_with_id};
use mandate::pipeline::{
    BoxFuture, PendingApproval, ReloadError, ReviewDecision, ReviewError, Reviewer, Verdict,
};
use serde_json::{Value, json};

/// Approves as carol (a member of `Group::"reviewers"`) after a short delay
/// that varies from call to call, so that reloads land between a call's
/// first evaluation and its reviewer evaluation.
struct SlowApprover {
    calls: AtomicU64,
}

impl Reviewer for SlowApprover {
    fn name(&self) -> &str {
        "slow"
    }

    fn review<'a>(
        &'a self,
        _pending: &'a PendingApproval,
    ) -> BoxFuture<'a, Result<ReviewDecision, ReviewError>> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_micros(200 + (n * 7919) % 2000)).await;
            Ok(ReviewDecision {
                decision: Verdict::Approve,
                reviewer: "carol".into(),
                reason: None,
                scope: Default::default(),
            })
        })
    }
}

/// The example policies with every `@id("x")` renamed `@id("<prefix>x")`:
/// the same rules under ids that tell which set decided.
fn renamed_policies(dest: &Path, prefix: &str) {
    copy_policies(dest);
    for entry in std::fs::read_dir(dest).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace("@id(\"", &format!("@id(\"{prefix}"))).unwrap();
        }
    }
}

fn digest_of(dir: &Path) -> String {
    mandate::policy::Policies::load_dir(dir)
        .unwrap()
        .digest()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloading_while_calls_run_never_mixes_two_policy_sets_in_one_decision() {
    let sets = tempfile::tempdir().unwrap();
    let a = sets.path().join("a");
    let b = sets.path().join("b");
    renamed_policies(&a, "a-");
    renamed_policies(&b, "b-");
    let (digest_a, digest_b) = (digest_of(&a), digest_of(&b));
    let env = Env::builder()
        .policies(&a)
        .reviewer(SlowApprover {
            calls: AtomicU64::new(0),
        })
        .build();

    const SESSIONS: usize = 8;
    const CALLS: usize = 24;
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let guard = env.guard.clone();
        tasks.push(tokio::spawn(async move {
            let session = guard
                .start_session(session_with_id(&format!("sess_reload_{s}")), None)
                .await
                .unwrap();
            for n in 0..CALLS {
                // Emails need approval: three evaluations, a reviewer wait
                // between the second and the third.
                let (tool, args) = if n % 2 == 0 {
                    (
                        "send_email",
                        json!({"to": "bob@example.com", "subject": "s", "body": "b"}),
                    )
                } else {
                    ("read_document", json!({"document_id": "doc_88pk3r"}))
                };
                session.call(tool, &args.to_string()).await.unwrap();
            }
            session.end(&Ok(String::new())).await.unwrap();
        }));
    }
    let reloader = {
        let guard = env.guard.clone();
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            let mut reloads = 0u64;
            loop {
                let dir = if reloads.is_multiple_of(2) { &b } else { &a };
                guard.reload_dir(dir).await.unwrap();
                reloads += 1;
                tokio::time::sleep(Duration::from_micros(700)).await;
                if reloads >= 400 {
                    return reloads;
                }
            }
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    reloader.abort();

    let mut decided_by_digest: BTreeMap<String, usize> = BTreeMap::new();
    for record in env.records_of("decision") {
        let digest = record["decision"]["policy_digest"].as_str().unwrap();
        let prefix = if digest == digest_a {
            "a-"
        } else if digest == digest_b {
            "b-"
        } else {
            panic!("unknown digest {digest}")
        };
        let mut ids = policy_ids(&record["decision"]["determining_policies"]);
        if let Some(demanded) = record["approval"].get("demanded_by") {
            ids.extend(policy_ids(demanded));
        }
        assert!(!ids.is_empty(), "{record}");
        for id in &ids {
            assert!(
                id.starts_with(prefix),
                "decision {} names `{id}` but was decided by the `{prefix}` set: {record}",
                record["seq"]
            );
        }
        assert_eq!(record["decision"]["effect"], "allow", "{record}");
        *decided_by_digest.entry(prefix.to_string()).or_default() += 1;
    }
    assert_eq!(
        decided_by_digest.values().sum::<usize>(),
        SESSIONS * CALLS,
        "{decided_by_digest:?}"
    );
    assert!(
        decided_by_digest.len() == 2,
        "both sets decided some calls: {decided_by_digest:?}"
    );
    let reloads = env.records_of("policy_reload");
    assert!(reloads.len() > 2);
    for r in &reloads {
        assert_eq!(r["status"], "applied");
    }
    env.assert_verifies(env.records().len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_is_recorded_before_the_new_set_decides_and_later_calls_use_it() {
    let sets = tempfile::tempdir().unwrap();
    let b = sets.path().join("b");
    renamed_policies(&b, "b-");
    let env = Env::example();
    let session = env
        .guard
        .start_session(session_with_id("sess_reload_order"), None)
        .await
        .unwrap();
    let read = json!({"document_id": "doc_88pk3r"}).to_string();
    session.call("read_document", &read).await.unwrap();
    let reloaded = env.guard.reload_dir(&b).await.unwrap();
    assert_eq!(reloaded.previous_digest, env.policy_digest);
    assert_eq!(reloaded.digest, digest_of(&b));
    assert_eq!(env.guard.policies().digest(), reloaded.digest);
    session.call("read_document", &read).await.unwrap();

    let records = env.records();
    let reload = records
        .iter()
        .find(|r| r["kind"] == "policy_reload")
        .unwrap();
    assert_eq!(reload["seq"], reloaded.seq);
    assert_eq!(reload["status"], "applied");
    assert_eq!(reload["previous_digest"], json!(env.policy_digest));
    assert_eq!(reload["digest"], json!(reloaded.digest));
    assert_eq!(reload["policies"], 9);
    assert_eq!(reload["source"], json!(b.display().to_string()));
    let decisions: Vec<&Value> = records.iter().filter(|r| r["kind"] == "decision").collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!(
        decisions[0]["decision"]["policy_digest"],
        json!(env.policy_digest)
    );
    assert!(decisions[0]["seq"].as_u64() < Some(reloaded.seq));
    assert_eq!(
        decisions[1]["decision"]["policy_digest"],
        json!(reloaded.digest)
    );
    assert_eq!(
        policy_ids(&decisions[1]["decision"]["determining_policies"]),
        ["b-scope-documents-read"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_candidate_that_does_not_load_is_rejected_with_its_errors_and_the_old_set_stays() {
    let sets = tempfile::tempdir().unwrap();
    let bad = sets.path().join("bad");
    copy_policies(&bad);
    std::fs::write(
        bad.join("typo.cedar"),
        "permit(principal, action, resource)\nwhen { context.sesion.scopes.contains(\"x\") };\n",
    )
    .unwrap();
    let env = Env::example();
    let err = env.guard.reload_dir(&bad).await.unwrap_err();
    let ReloadError::Invalid { .. } = &err else {
        panic!("{err:?}")
    };
    let text = err.to_string();
    assert!(
        text.contains("rejected, the previous set stays in force"),
        "{text}"
    );
    assert!(text.contains("typo.cedar:2:"), "{text}");
    assert_eq!(env.guard.policies().digest(), env.policy_digest);

    // Calls still decide under the old set.
    let session = env
        .guard
        .start_session(session_with_id("sess_reload_bad"), None)
        .await
        .unwrap();
    session
        .call(
            "read_document",
            &json!({"document_id": "doc_88pk3r"}).to_string(),
        )
        .await
        .unwrap();
    let reload = &env.records_of("policy_reload")[0];
    assert_eq!(reload["status"], "rejected");
    assert_eq!(reload["previous_digest"], json!(env.policy_digest));
    let errors = reload["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("typo.cedar:2:")),
        "{errors:?}"
    );
    let decision = &env.records_of("decision")[0];
    assert_eq!(
        decision["decision"]["policy_digest"],
        json!(env.policy_digest)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_candidate_whose_schema_lacks_a_tool_is_rejected() {
    let sets = tempfile::tempdir().unwrap();
    let dir = sets.path().join("no_email");
    copy_policies(&dir);
    // Drop send_email from the schema and the policies that name it.
    let schema = std::fs::read_to_string(dir.join("schema.cedarschema")).unwrap();
    let start = schema.find("action send_email").unwrap();
    let end = start + schema[start..].find("};").unwrap() + 2;
    let without = format!("{}{}", &schema[..start], &schema[end..]);
    std::fs::write(dir.join("schema.cedarschema"), without).unwrap();
    std::fs::remove_file(dir.join("approval.cedar")).unwrap();
    let env = Env::example();
    let err = env.guard.reload_dir(&dir).await.unwrap_err();
    assert!(matches!(err, ReloadError::Tools { .. }), "{err:?}");
    assert!(err.to_string().contains("tool `send_email`"), "{err}");
    assert_eq!(env.guard.policies().digest(), env.policy_digest);
    assert_eq!(env.records_of("policy_reload")[0]["status"], "rejected");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_policy_directory_and_rejects_a_broken_one() {
    let sets = tempfile::tempdir().unwrap();
    let dir = sets.path().join("live");
    copy_policies(&dir);
    let env = Env::builder().policies(&dir).build();
    let results = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&results);
    let listener = env
        .guard
        .reload_on_sighup(dir.clone(), move |_, result| {
            seen.lock().unwrap().push(result.map(|r| r.digest));
        })
        .unwrap();
    let hangup = |expected: usize| {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while results.lock().unwrap().len() < expected {
            assert!(
                std::time::Instant::now() < deadline,
                "no reload after SIGHUP"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    // Edit the live directory, then signal: the new set is in force.
    renamed_policies(&dir, "b-");
    hangup(1);
    let new_digest = digest_of(&dir);
    assert_ne!(new_digest, env.policy_digest);
    assert_eq!(results.lock().unwrap()[0].as_ref().unwrap(), &new_digest);
    assert_eq!(env.guard.policies().digest(), new_digest);

    // A broken edit is rejected and the set in force stays.
    std::fs::write(
        dir.join("broken.cedar"),
        "permit(principal, action resource);\n",
    )
    .unwrap();
    hangup(2);
    let second = results.lock().unwrap().remove(1);
    let err = second.unwrap_err();
    assert!(err.to_string().contains("broken.cedar:1:"), "{err}");
    assert_eq!(env.guard.policies().digest(), new_digest);
    listener.abort();

    let statuses: Vec<Value> = env
        .records_of("policy_reload")
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("applied"), json!("rejected")]);
}

/// Copies the example policies to `dir` with `write_summary`'s `summary`
/// declared a `Long`: a schema left behind by a change to the tool.
fn stale_policies(dir: &Path) {
    copy_policies(dir);
    let schema = dir.join("schema.cedarschema");
    let text = std::fs::read_to_string(&schema).unwrap();
    let stale = text.replace(
        "arguments: { document_id: String, summary: String }",
        "arguments: { document_id: String, summary: Long }",
    );
    assert_ne!(stale, text, "the example schema changed; update this test");
    std::fs::write(&schema, stale).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_schema_is_refused_at_reload_naming_the_tool_and_the_attribute() {
    let sets = tempfile::tempdir().unwrap();
    let stale = sets.path().join("stale");
    stale_policies(&stale);
    let env = Env::example();
    let err = env.guard.reload_dir(&stale).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("rejected, the previous set stays in force"),
        "{text}"
    );
    assert!(text.contains("`write_summary`"), "{text}");
    assert!(text.contains("`arguments.summary`"), "{text}");
    assert_eq!(env.guard.policies().digest(), env.policy_digest);
    let rejected = env.records_of("policy_reload");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["status"], "rejected");
}
