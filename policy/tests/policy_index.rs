//! The policy index against full evaluation: random requests over generated
//! policy sets of 10, 1,000, 10,000 and 100,000 policies must get exactly
//! the same decision, determining policies and errors both ways.
//!
//! Full evaluation of 100,000 policies takes milliseconds per request, so
//! the number of requests per size is `MANDATE_INDEX_DIFF_REQUESTS` (a
//! number, or `size=count,...`); the default checks 100,000 requests at
//! 10 policies, 20,000 at 1,000 and fewer at the large sizes. The full run, 100,000
//! requests at every size, is
//! `MANDATE_INDEX_DIFF_REQUESTS=100000 cargo test --release -p mandate-policy --test policy_index -- --nocapture`.
//!
//! Unoptimized, Cedar takes minutes for the default run, so these tests run
//! only in release builds: `scripts/test` runs
//! `cargo test --release -p mandate-policy --test policy_index` after the
//! workspace's tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use cedar_policy::Decision;
use mandate_policy::synthetic::SyntheticPolicies;
use mandate_policy::{IndexedResponse, PolicyIndex, evaluate_whole};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Requests per size when the environment does not say.
fn default_requests(size: usize) -> usize {
    match size {
        0..=100 => 100_000,
        101..=1_000 => 20_000,
        1_001..=10_000 => 2_000,
        _ => 100,
    }
}

fn requests_for(size: usize) -> usize {
    let Ok(spec) = std::env::var("MANDATE_INDEX_DIFF_REQUESTS") else {
        return default_requests(size);
    };
    if let Ok(n) = spec.trim().parse() {
        return n;
    }
    spec.split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(s, _)| s.trim().parse() == Ok(size))
        .map_or_else(
            || default_requests(size),
            |(_, n)| {
                n.trim()
                    .parse()
                    .expect("MANDATE_INDEX_DIFF_REQUESTS: size=count,...")
            },
        )
}

fn comparable(r: &IndexedResponse) -> (Decision, Vec<String>, Vec<String>) {
    let mut errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
    errors.sort();
    (
        r.decision,
        r.reasons.iter().map(ToString::to_string).collect(),
        errors,
    )
}

#[derive(Default, Debug)]
struct Tally {
    compared: usize,
    allowed: usize,
    forbidden: usize,
    default_denied: usize,
    with_errors: usize,
    differences: Vec<String>,
}

fn differential(size: usize) {
    let requests = requests_for(size);
    let generated = SyntheticPolicies::generate(size).unwrap();
    let index = PolicyIndex::new(&generated.set).unwrap();
    let started = Instant::now();
    let threads = 2;
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (generated, index) = (&generated, &index);
                scope.spawn(move || {
                    let p = generated.population;
                    let mut rng = StdRng::seed_from_u64((size * 31 + t) as u64);
                    let mut tally = Tally::default();
                    for _ in (t..requests).step_by(threads) {
                        // About one in twenty agents and documents is one
                        // the entities do not hold.
                        let request = generated
                            .request(
                                rng.random_range(0..p.agents + p.agents / 20 + 1),
                                rng.random_range(0..mandate_policy::synthetic::TOOLS),
                                rng.random_range(0..p.documents + p.documents / 20 + 1),
                                rng.random_range(0..p.users + 1),
                                rng.random_range(0..100),
                            )
                            .unwrap();
                        let whole = evaluate_whole(&generated.set, &request, &generated.entities);
                        let indexed = index.is_authorized(&request, &generated.entities);
                        let expected = comparable(&whole);
                        if comparable(&indexed) != expected && tally.differences.len() < 5 {
                            tally.differences.push(format!(
                                "{request}: whole {expected:?}, indexed {:?}",
                                comparable(&indexed)
                            ));
                        }
                        tally.compared += 1;
                        match (whole.decision, whole.reasons.is_empty()) {
                            (Decision::Allow, _) => tally.allowed += 1,
                            (Decision::Deny, false) => tally.forbidden += 1,
                            (Decision::Deny, true) => tally.default_denied += 1,
                        }
                        tally.with_errors += usize::from(!whole.errors.is_empty());
                    }
                    tally
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut total = Tally::default();
    for t in tallies {
        total.compared += t.compared;
        total.allowed += t.allowed;
        total.forbidden += t.forbidden;
        total.default_denied += t.default_denied;
        total.with_errors += t.with_errors;
        total.differences.extend(t.differences);
    }
    println!(
        "{size} policies in {} buckets: {} requests compared in {:.1} s, {} differences \
         ({} allowed, {} denied by a forbid, {} denied by default, {} with evaluation errors)",
        index.buckets(),
        total.compared,
        started.elapsed().as_secs_f64(),
        total.differences.len(),
        total.allowed,
        total.forbidden,
        total.default_denied,
        total.with_errors,
    );
    assert!(total.differences.is_empty(), "{:#?}", total.differences);
    assert_eq!(total.compared, requests);
    // Every kind of answer is exercised, or the comparison proves little.
    if requests >= 100 {
        for (what, n) in [
            ("allowed", total.allowed),
            ("forbidden", total.forbidden),
            ("default denied", total.default_denied),
            ("with errors", total.with_errors),
        ] {
            assert!(
                n * 100 >= requests,
                "only {n} of {requests} requests {what}"
            );
        }
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimized: scripts/test runs it with --release"
)]
fn index_answers_as_full_evaluation_at_10_policies() {
    differential(10);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimized: scripts/test runs it with --release"
)]
fn index_answers_as_full_evaluation_at_1_000_policies() {
    differential(1_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimized: scripts/test runs it with --release"
)]
fn index_answers_as_full_evaluation_at_10_000_policies() {
    differential(10_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimized: scripts/test runs it with --release"
)]
fn index_answers_as_full_evaluation_at_100_000_policies() {
    differential(100_000);
}
