//! Criterion benches of moco-topic: matching in the subscription trie at 10k, 100k and 1M
//! subscriptions, subscribe/unsubscribe throughput, and retained lookups among 1M topics.
//!
//! A counting global allocator measures the memory each structure takes; the bytes per
//! subscription (and per retained topic) are printed before the timings.
//!
//! The subscriptions are IoT-shaped and the number of matches per publish is the same at every
//! size: each site has 100 subscriptions (90 `site/{s}/device/{d}/temp`, 5
//! `site/{s}/device/+/temp`, 3 `site/{s}/device/{d}/+`, 2 `site/{s}/#`), and the number of sites
//! grows with the size. Publishes go to random `site/{s}/device/{d}/temp` topics over the whole
//! population, so the large trie is walked cold as a broker would walk it.
#![allow(unsafe_code)] // the counting allocator only

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use moco_topic::{Matches, RetainedIndex, SubscriptionOptions, SubscriptionTrie};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as given to us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for GlobalAlloc::realloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const PER_SITE: usize = 100;

/// The filters of one site, with a client id for each.
fn site_filters(site: usize, out: &mut Vec<(String, u64)>) {
    let base = (site * PER_SITE) as u64;
    for d in 0..90 {
        out.push((format!("site/{site}/device/{d}/temp"), base + d));
    }
    for k in 0..5 {
        out.push((format!("site/{site}/device/+/temp"), base + 90 + k));
    }
    for d in 0..3 {
        out.push((format!("site/{site}/device/{d}/+"), base + 95 + d));
    }
    for k in 0..2 {
        out.push((format!("site/{site}/#"), base + 98 + k));
    }
}

fn filters(n: usize) -> Vec<(String, u64)> {
    let mut v = Vec::with_capacity(n);
    for s in 0..n / PER_SITE {
        site_filters(s, &mut v);
    }
    v
}

/// A small deterministic generator (no rand needed in the bench).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn topics(sites: usize, count: usize) -> Vec<String> {
    let mut r = Lcg(42);
    (0..count)
        .map(|_| {
            let s = r.next() as usize % sites;
            let d = r.next() as usize % PER_SITE;
            format!("site/{s}/device/{d}/temp")
        })
        .collect()
}

fn build(fs: &[(String, u64)]) -> SubscriptionTrie<u64> {
    let mut t = SubscriptionTrie::new();
    for (f, c) in fs {
        t.insert(f, *c, SubscriptionOptions::with_qos(1)).unwrap();
    }
    t
}

fn bench_match(c: &mut Criterion) {
    for n in [10_000usize, 100_000, 1_000_000] {
        let fs = filters(n);
        let before = live();
        let trie = build(&fs);
        let bytes = live() - before;
        println!(
            "trie memory: {n} subscriptions, {} nodes, {} bytes, {:.1} bytes/subscription",
            trie.node_count(),
            bytes,
            bytes as f64 / n as f64
        );
        drop(fs);
        // Cold: publishes spread uniformly over every site and device, as a million devices
        // would publish; at 1M most of the nodes a match reads are not in any cache.
        // Hot: the same trie, publishes drawn from 1024 topics only, so the nodes read stay
        // cached at every size and the figure shows the trie's own cost.
        for (group, distinct) in [("topic/match", 1 << 16), ("topic/match_hot1024", 1024)] {
            let all = topics(n / PER_SITE, 1 << 16);
            let ts: Vec<&String> = all.iter().take(distinct).cycle().take(1 << 16).collect();
            let mut m = Matches::new();
            let mut i = 0usize;
            let mut total = 0usize;
            let mut g = c.benchmark_group(group);
            g.throughput(Throughput::Elements(1));
            g.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    let t = ts[i & (ts.len() - 1)];
                    i = i.wrapping_add(1);
                    trie.matches(black_box(t), Some(&u64::MAX), &mut m);
                    total += m.len();
                })
            });
            g.finish();
            black_box(total);
        }
    }
}

fn bench_sub_unsub(c: &mut Criterion) {
    let mut g = c.benchmark_group("topic/subscribe_unsubscribe");
    for n in [100_000usize, 1_000_000] {
        let mut trie = build(&filters(n));
        // A batch of new subscriptions on new sites, same shapes.
        let mut batch = Vec::new();
        for s in 0..10 {
            site_filters(n / PER_SITE + s, &mut batch);
        }
        g.throughput(Throughput::Elements(2 * batch.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                for (f, c) in &batch {
                    trie.insert(f, *c, SubscriptionOptions::with_qos(1))
                        .unwrap();
                }
                for (f, c) in &batch {
                    trie.remove(f, c).unwrap();
                }
            })
        });
    }
    g.finish();
}

fn bench_retained(c: &mut Criterion) {
    let n = 1_000_000usize;
    let sites = n / PER_SITE;
    let before = live();
    let mut idx = RetainedIndex::new();
    let mut buf = String::new();
    for s in 0..sites {
        for d in 0..PER_SITE {
            use std::fmt::Write;
            buf.clear();
            let _ = write!(buf, "site/{s}/device/{d}/temp");
            idx.set(&buf, (s * PER_SITE + d) as u32);
        }
    }
    let bytes = live() - before;
    println!(
        "retained memory: {n} topics, {} nodes, {:.1} bytes/topic",
        idx.node_count(),
        bytes as f64 / n as f64
    );
    let mut g = c.benchmark_group("topic/retained_1M");
    let mut out = Vec::with_capacity(256);
    for filter in ["site/7/device/+/temp", "site/7/#", "site/7/device/42/temp"] {
        g.bench_function(filter, |b| {
            b.iter(|| {
                out.clear();
                idx.matches(black_box(filter), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// Reference: one dependent random read in a 2 MB and in a 150 MB array (the size of the 1M
/// trie). A cold match at 1M is a chain of such reads; this shows what each one costs here.
fn bench_memory_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("reference/dependent_random_read");
    for mb in [2usize, 150] {
        let lines = mb * 1024 * 1024 / 64;
        let mut order: Vec<usize> = (0..lines).collect();
        let mut r = Lcg(7);
        for i in (1..lines).rev() {
            let j = (r.next() as usize) % (i + 1);
            order.swap(i, j);
        }
        // One u64 per cache line, forming one random cycle through all lines.
        let mut next = vec![0u64; lines * 8];
        for k in 0..lines {
            next[order[k] * 8] = (order[(k + 1) % lines] * 8) as u64;
        }
        let mut p = 0usize;
        g.bench_function(format!("{mb}MB"), |b| {
            b.iter(|| {
                p = next[p] as usize;
                p
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_match, bench_sub_unsub, bench_retained, bench_memory_latency
}
criterion_main!(benches);
