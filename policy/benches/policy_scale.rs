//! How the decision scales with the number of policies: generated sets of 10, 1,000, 10,000 and
//! 100,000 policies (`mandate_policy::synthetic`: per-agent, per-team, per-tool, per-folder and
//! per-document permits and forbids over an entity hierarchy), each request evaluated through the
//! policy index (`PolicyIndex::is_authorized`), against Cedar's full evaluation of the same set.
//!
//! The requests are 2,000 random ones per size, built before timing; each is timed on its own
//! and the summary prints p50 and p99 per size, and the ratio of p50 at 10,000 policies to p50
//! at 10. Full evaluation is timed on fewer requests at the large sizes (it takes milliseconds).
//!
//! Run: `cargo bench -p mandate-policy --bench policy_scale`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Request};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mandate_policy::PolicyIndex;
use mandate_policy::synthetic::{SyntheticPolicies, TOOLS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];
const REQUESTS: usize = 2_000;
/// Rounds over the requests in the summary.
const ROUNDS: usize = 5;

fn requests(generated: &SyntheticPolicies, seed: u64) -> Vec<Request> {
    let p = generated.population;
    let mut rng = StdRng::seed_from_u64(seed);
    (0..REQUESTS)
        .map(|_| {
            generated
                .request(
                    rng.random_range(0..p.agents),
                    rng.random_range(0..TOOLS),
                    rng.random_range(0..p.documents),
                    rng.random_range(0..p.users),
                    rng.random_range(0..100),
                )
                .unwrap()
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let sets: Vec<(usize, SyntheticPolicies, PolicyIndex, Vec<Request>)> = SIZES
        .iter()
        .map(|&n| {
            let generated = SyntheticPolicies::generate(n).unwrap();
            let index = PolicyIndex::new(&generated.set).unwrap();
            let requests = requests(&generated, n as u64);
            (n, generated, index, requests)
        })
        .collect();
    let authorizer = Authorizer::new();

    let mut group = c.benchmark_group("policy_scale");
    for (n, generated, index, requests) in &sets {
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("indexed", n), n, |b, _| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                index.is_authorized(&requests[i], &generated.entities)
            })
        });
        if *n <= 1_000 {
            let mut i = 0;
            group.bench_with_input(BenchmarkId::new("full", n), n, |b, _| {
                b.iter(|| {
                    i = (i + 1) % requests.len();
                    authorizer.is_authorized(&requests[i], &generated.set, &generated.entities)
                })
            });
        }
    }
    group.finish();

    // Single requests timed one by one, the sizes alternating in each round.
    let mut indexed: Vec<Vec<Duration>> = vec![Vec::new(); sets.len()];
    let mut full: Vec<Vec<Duration>> = vec![Vec::new(); sets.len()];
    for round in 0..ROUNDS {
        for (k, (n, generated, index, requests)) in sets.iter().enumerate() {
            for request in requests {
                let started = Instant::now();
                let response = index.is_authorized(request, &generated.entities);
                indexed[k].push(started.elapsed());
                std::hint::black_box(response);
            }
            // Full evaluation of the large sets takes long: fewer requests, first round only.
            let sample = match n {
                0..=1_000 => requests.len(),
                1_001..=10_000 => 200,
                _ => 20,
            };
            if round == 0 || *n <= 1_000 {
                for request in requests.iter().take(sample) {
                    let started = Instant::now();
                    let response =
                        authorizer.is_authorized(request, &generated.set, &generated.entities);
                    full[k].push(started.elapsed());
                    std::hint::black_box(response);
                }
            }
        }
    }
    println!("\npolicy_scale: p50 (p99) of single requests, indexed against full evaluation");
    let mut p50s = Vec::new();
    for (k, (n, _, index, _)) in sets.iter().enumerate() {
        indexed[k].sort();
        full[k].sort();
        let p50 = percentile(&indexed[k], 0.5);
        p50s.push(p50);
        println!(
            "  {n:>7} policies ({:>6} buckets): indexed {:>7.1} µs ({:>7.1}), full {:>9.1} µs ({:>9.1}), {} and {} requests",
            index.buckets(),
            micros(p50),
            micros(percentile(&indexed[k], 0.99)),
            micros(percentile(&full[k], 0.5)),
            micros(percentile(&full[k], 0.99)),
            indexed[k].len(),
            full[k].len(),
        );
    }
    println!(
        "  p50 at 10,000 policies / p50 at 10: {:.2}; at 100,000 / 10: {:.2}",
        p50s[2].as_secs_f64() / p50s[0].as_secs_f64(),
        p50s[3].as_secs_f64() / p50s[0].as_secs_f64(),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
