//! In-process routing: one PUBLISH to 1, 100 and 10 000 subscribers, each delivery drained
//! from the subscriber's state and encoded as the writer does. Prints the allocations per
//! delivered message (counted by a wrapping global allocator).
#![allow(unsafe_code, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use moco_engine::{AllowAll, Broker, ClientHandle, ConnectOutcome, Hooks, Options};

mod common;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn setup(n: usize) -> (Arc<Broker>, Vec<Arc<ClientHandle>>, moco_engine::ClientInfo) {
    let mut hooks = Hooks::new();
    hooks.add(Arc::new(AllowAll));
    let broker = Arc::new(Broker::new(Options::default(), hooks));
    let now = Instant::now();
    let mut subs = Vec::with_capacity(n);
    for i in 0..=n {
        let c = common::connect(format!("c{i}"));
        let h = match broker.connect(now, &c, Arc::from("bench"), Arc::from("bench")) {
            ConnectOutcome::Accepted(h) => h,
            ConnectOutcome::Refused(a) => panic!("{a:?}"),
        };
        // Drop the CONNACK.
        common::drain(&h, now);
        if i < n {
            common::subscribe(&broker, now, &h);
        }
        subs.push(h);
    }
    let publisher = subs.pop().unwrap().info.clone();
    (broker, subs, publisher)
}

fn round(
    broker: &Broker,
    subs: &[Arc<ClientHandle>],
    publisher: &moco_engine::ClientInfo,
    payload: &Bytes,
    out: &mut BytesMut,
) -> usize {
    let now = Instant::now();
    broker.publish(now, publisher, common::publish(payload));
    common::drain_and_encode(subs, now, out)
}

fn routing(c: &mut Criterion) {
    let payload = Bytes::from(vec![0u8; 64]);
    let mut group = c.benchmark_group("route_one_publish");
    for n in [1usize, 100, 10_000] {
        let (broker, subs, publisher) = setup(n);
        let mut out = BytesMut::with_capacity(4096);
        // Warm up, then count allocations over a fixed number of rounds.
        round(&broker, &subs, &publisher, &payload, &mut out);
        let rounds = 20u64;
        let before = ALLOCS.load(Ordering::Relaxed);
        let mut delivered = 0u64;
        for _ in 0..rounds {
            delivered += round(&broker, &subs, &publisher, &payload, &mut out) as u64;
        }
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(delivered, rounds * n as u64);
        println!(
            "route_one_publish/{n}: {:.2} allocations per delivered message",
            allocs as f64 / delivered as f64
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(round(&broker, &subs, &publisher, &payload, &mut out)))
        });
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
