//! An idle connection costs a few KiB, not mochi's ~150 KiB of preallocated channels.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::*;
use moco_codec::{Packet, ProtocolVersion};
use moco_engine::Options;

struct Tracking;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_costs_a_few_kib() {
    const N: usize = 200;
    let (server, addr) = start(Options::default()).await;
    // Warm up: one connection, so lazily built runtime structures are not counted.
    let (mut w, _) = Raw::connect(addr, connect_packet("warm", ProtocolVersion::V5, 0, true)).await;
    w.send(Packet::Subscribe(subscribe(1, "warm", 0))).await;
    assert!(matches!(w.recv().await, Some(Packet::SubAck(_))));
    let before = LIVE.load(Ordering::Relaxed);
    let mut clients = Vec::with_capacity(N);
    for i in 0..N {
        let (mut c, _) = Raw::connect(
            addr,
            connect_packet(&format!("idle{i}"), ProtocolVersion::V5, 60, true),
        )
        .await;
        c.send(Packet::Subscribe(subscribe(1, &format!("idle/{i}"), 1)))
            .await;
        assert!(matches!(c.recv().await, Some(Packet::SubAck(_))));
        clients.push(c);
    }
    let after = LIVE.load(Ordering::Relaxed);
    // Includes the test's own client side (socket, buffers) and one subscription each.
    let per_connection = (after - before) / N as isize;
    eprintln!("bytes per idle connection (both ends): {per_connection}");
    assert!(
        per_connection < 16 * 1024,
        "an idle connection costs {per_connection} bytes"
    );
    drop(clients);
    server.shutdown().await;
}
