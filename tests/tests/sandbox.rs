//! A session's sandbox on its own (`AgentComponent::sandbox`, then
//! `Sandbox::run`): what `AgentComponent::run` does between the guard's
//! records, with the pooling allocator behind it.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Env, read_call, report_results, session_with_id};
use mandate::limits::SessionLimits;
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

#[tokio::test]
async fn sessions_up_to_the_limit_run_side_by_side_in_the_pool() {
    let runtime = Runtime::with_limits(SessionLimits {
        concurrent_sessions: 4,
        ..SessionLimits::default()
    })
    .unwrap();
    let agent = runtime
        .load_agent(Path::new(mandate_tests::SCRIPTED_AGENT))
        .unwrap();
    let env = Env::example();
    let mut sandboxes = Vec::new();
    for n in 0..4 {
        let session = env
            .guard
            .start_session(session_with_id(&format!("sess_pool_{n}")), None)
            .await
            .unwrap();
        sandboxes.push(agent.sandbox(Arc::new(session)).await.unwrap());
    }
    let task = json!({ "calls": [read_call("doc_88pk3r")], "allocate_bytes": 8_000_000 });
    let task = task.to_string();
    // All four are instantiated at once; each runs and frees its slots.
    for sandbox in sandboxes {
        let report = sandbox.run(&task).await;
        assert!(
            matches!(report.outcome, RunOutcome::Finished(Ok(_))),
            "{:?}",
            report.outcome
        );
    }
}
