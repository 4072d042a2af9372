//! A session's sandbox on its own (`AgentComponent::sandbox`, then
//! `Sandbox::run`): what `AgentComponent::run` does between the guard's
//! records, with the pooling allocator behind it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, read_call, report_results, session_with_id};
use mandate::limits::SessionLimits;
use mandate::pipeline::{ResourceBinding, Tool, ToolContext, ToolFailure, ToolSpec};
use mandate::runtime::{RunOutcome, Runtime, SandboxError};
use serde_json::json;

#[tokio::test]
async fn a_sandbox_over_the_session_limit_is_refused_with_the_limit_and_its_place_is_reused() {
    let runtime = Runtime::with_limits(SessionLimits {
        concurrent_sessions: 1,
        ..SessionLimits::default()
    })
    .unwrap();
    let agent = runtime
        .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
        .unwrap();
    let env = Env::example();
    let started = |id: &str| {
        let session = session_with_id(id);
        let guard = &env.guard;
        async move { Arc::new(guard.start_session(session, None).await.unwrap()) }
    };

    let first = agent.sandbox(started("sess_first").await).await.unwrap();
    let refused = agent
        .sandbox(started("sess_second").await)
        .await
        .err()
        .unwrap();
    assert!(matches!(refused, SandboxError::Busy(_)), "{refused:?}");
    assert_eq!(
        refused.to_string(),
        "host limit reached: 1 concurrent sessions; the session was not run"
    );

    // The first sandbox still runs, with a call through the guard.
    let task = json!({ "calls": [read_call("doc_88pk3r")] }).to_string();
    let report = first.run(&task).await;
    let results = report_results(&report);
    assert!(results[0].get("ok").is_some(), "{results:?}");

    // Its place and its pool slots are free again, many times over.
    for n in 0..5 {
        let sandbox = agent
            .sandbox(started(&format!("sess_again_{n}")).await)
            .await
            .unwrap();
        let report = sandbox.run(&task).await;
        assert!(
            matches!(report.outcome, RunOutcome::Finished(Ok(_))),
            "{:?}",
            report.outcome
        );
    }
}

/// A tool that holds every caller until `parties` calls are inside it at
/// once: the calls (and so their sessions) provably overlap, or it fails
/// after a timeout saying how many got in.
struct Rendezvous {
    barrier: Arc<tokio::sync::Barrier>,
    inside: Arc<AtomicUsize>,
    most_inside: Arc<AtomicUsize>,
}

/// No arguments, and no field the type does not declare.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

impl Tool for Rendezvous {
    type Args = NoArguments;

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "rendezvous".into(),
            description: "Waits until every session is inside it.".into(),
            scope: "documents:read".into(),
            resource: ResourceBinding::Tool,
            sensitive: Vec::new(),
        }
    }

    async fn run(
        &self,
        _ctx: ToolContext,
        _args: Self::Args,
    ) -> Result<serde_json::Value, ToolFailure> {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_inside.fetch_max(now, Ordering::SeqCst);
        let met = tokio::time::timeout(Duration::from_secs(60), self.barrier.wait()).await;
        self.inside.fetch_sub(1, Ordering::SeqCst);
        match met {
            Ok(_) => Ok(json!({"met": true})),
            Err(_) => Err(ToolFailure(format!(
                "only {} sessions were inside at once",
                self.most_inside.load(Ordering::SeqCst)
            ))),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_up_to_the_limit_run_side_by_side_in_the_pool() {
    const SESSIONS: usize = 4;
    let runtime = Runtime::with_limits(SessionLimits {
        concurrent_sessions: SESSIONS,
        ..SessionLimits::default()
    })
    .unwrap();
    let agent = runtime
        .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
        .unwrap();
    let policies = tempfile::tempdir().unwrap();
    common::copy_policies(policies.path());
    let schema = policies.path().join("schema.cedarschema");
    let mut text = std::fs::read_to_string(&schema).unwrap();
    text.push_str(
        "\naction rendezvous in [\"documents:read\"] appliesTo {\n  principal: [Agent],\n  resource: [Tool],\n  context: { session: Session, user: User, delegation: Delegation, approval: Approval, now: datetime, arguments: {} },\n};\n",
    );
    std::fs::write(&schema, text).unwrap();
    let most_inside = Arc::new(AtomicUsize::new(0));
    let tool = Rendezvous {
        barrier: Arc::new(tokio::sync::Barrier::new(SESSIONS)),
        inside: Arc::new(AtomicUsize::new(0)),
        most_inside: most_inside.clone(),
    };
    let env = Env::builder()
        .policies(policies.path())
        .tools(move |tools| {
            tools.register(tool).unwrap();
        })
        .build();
    let mut sandboxes = Vec::new();
    for n in 0..SESSIONS {
        let session = env
            .guard
            .start_session(session_with_id(&format!("sess_pool_{n}")), None)
            .await
            .unwrap();
        sandboxes.push(agent.sandbox(Arc::new(session)).await.unwrap());
    }
    let task = json!({
        "calls": [read_call("doc_88pk3r"), {"tool": "rendezvous"}],
        "allocate_bytes": 8_000_000,
    })
    .to_string();
    // All four run at once, each on its own task: every one must be inside
    // the rendezvous tool before any can leave it.
    let runs: Vec<_> = sandboxes
        .into_iter()
        .map(|sandbox| {
            let task = task.clone();
            tokio::spawn(async move { sandbox.run(&task).await })
        })
        .collect();
    for run in runs {
        let report = run.await.unwrap();
        assert!(
            matches!(report.outcome, RunOutcome::Finished(Ok(_))),
            "{:?}",
            report.outcome
        );
        let results = report_results(&report);
        assert!(results[0].get("ok").is_some(), "{results:?}");
        assert_eq!(
            results[1],
            json!({"tool": "rendezvous", "ok": {"met": true}}),
            "{results:?}"
        );
    }
    assert_eq!(most_inside.load(Ordering::SeqCst), SESSIONS);
}
