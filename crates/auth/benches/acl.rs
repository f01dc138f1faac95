//! Cost of one ACL check against a ledger of 10,000 rules, with the deciding rule last.
//!
//! `indexed`: every rule names an exact client id, so the check looks up that client's rules.
//! `scanned`: every rule names a client-id prefix (`dev-N-*`), which cannot be indexed, so the
//! check walks all 10,000 rules: the cost the index avoids.
//!
//! Run: `cargo bench -p moco-auth --bench acl`. On the 2-core development machine (shared,
//! noisy): indexed ≈ 50–100 ns per check, scanned ≈ 70–150 µs per check (47 ns / 68 µs with
//! `-- --warm-up-time 1 --measurement-time 3` on a quiet run).

use std::fmt::Write;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use moco_auth::{AclRequest, Ledger};

const RULES: usize = 10_000;

fn ledger(client_pattern: impl Fn(usize) -> String) -> Ledger {
    let mut yaml = String::from("acl:\n");
    for i in 0..RULES {
        let client = client_pattern(i);
        writeln!(
            yaml,
            "  - {{client: '{client}', filters: {{'devices/%c/#': readwrite, 'fleet/{i}/+/cmd': readonly, '#': deny}}}}"
        )
        .unwrap();
    }
    Ledger::from_yaml_bytes(yaml.as_bytes()).unwrap()
}

fn bench(c: &mut Criterion) {
    let last = RULES - 1;
    let indexed = ledger(|i| format!("dev-{i}"));
    let scanned = ledger(|i| format!("dev-{i}-*"));
    let indexed_client = format!("dev-{last}");
    let scanned_client = format!("dev-{last}-x");
    let indexed_topic = format!("devices/{indexed_client}/temp");
    let scanned_topic = format!("devices/{scanned_client}/temp");

    let mut group = c.benchmark_group("acl_10k_rules_match_last");
    group.bench_function("indexed", |b| {
        let req = AclRequest {
            client_id: &indexed_client,
            username: Some("user"),
            remote: "127.0.0.1:5000",
            topic: &indexed_topic,
            write: true,
        };
        assert!(indexed.acl(&req));
        b.iter(|| indexed.acl(black_box(&req)))
    });
    group.bench_function("scanned", |b| {
        let req = AclRequest {
            client_id: &scanned_client,
            username: Some("user"),
            remote: "127.0.0.1:5000",
            topic: &scanned_topic,
            write: true,
        };
        assert!(scanned.acl(&req));
        b.iter(|| scanned.acl(black_box(&req)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
