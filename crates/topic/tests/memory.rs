//! Subscribe then unsubscribe a million filters (and retain then clear a million topics): the
//! node count goes back to 1 and a counting allocator shows every byte returned.
//!
//! This file is its own test binary with a single test so that no other test allocates while
//! the counter is read.
#![allow(unsafe_code)] // the counting allocator below; the library itself forbids unsafe code

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use moco_topic::{Matches, RetainedIndex, SubscriptionOptions, SubscriptionTrie};

struct Counting;

thread_local! {
    /// Bytes live, counted per thread: the test harness's own threads allocate concurrently,
    /// and everything measured here is allocated and freed on the test's thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same layout as given to us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: as for GlobalAlloc::realloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// The IoT-shaped filter number `i`: mostly exact, some `+` and `#`, a few shared.
fn filter(i: u32, buf: &mut String) {
    use std::fmt::Write;
    buf.clear();
    let (site, dev) = (i % 1000, i / 1000);
    let _ = match i % 20 {
        0 => write!(buf, "site/{site}/+/{dev}/#"),
        1 => write!(buf, "$share/g{}/site/{site}/device/{dev}/#", dev % 4),
        2 => write!(buf, "site/{site}/device/{dev}/+"),
        _ => write!(buf, "site/{site}/device/{dev}/temp"),
    };
}

/// A million, in debug builds too (a few seconds).
const N: u32 = 1_000_000;

#[test]
fn memory_returns_after_million_subscribe_unsubscribe() {
    let start = Instant::now();
    let mut buf = String::with_capacity(128);
    let mut trie: SubscriptionTrie<u64> = SubscriptionTrie::new();
    let empty = live();
    for i in 0..N {
        filter(i, &mut buf);
        assert!(trie
            .insert(&buf, u64::from(i), SubscriptionOptions::with_qos(1))
            .unwrap());
    }
    assert_eq!(trie.len(), N as usize);
    let full = live();
    let mut m = Matches::new();
    trie.matches("site/7/device/3/temp", Some(&1), &mut m);
    assert_eq!(m.len(), 1);
    drop(m);
    // Unsubscribe in a different order than subscribed.
    for i in (0..N).rev() {
        filter(i, &mut buf);
        assert!(trie.remove(&buf, &u64::from(i)).is_some(), "{buf}");
    }
    assert_eq!(trie.len(), 0);
    assert_eq!(trie.node_count(), 1);
    assert_eq!(live(), empty, "trie memory back to an empty trie's");
    eprintln!(
        "{N} subscriptions: {} bytes/subscription while full, {:?}",
        (full - empty) / N as isize,
        start.elapsed()
    );

    // The retained index, the same way.
    let mut idx: RetainedIndex<u32> = RetainedIndex::new();
    let before = live();
    for i in 0..N {
        buf.clear();
        use std::fmt::Write;
        let _ = write!(buf, "site/{}/device/{}/temp", i % 1000, i / 1000);
        idx.set(&buf, i);
    }
    assert_eq!(idx.len(), N as usize);
    for i in 0..N {
        buf.clear();
        use std::fmt::Write;
        let _ = write!(buf, "site/{}/device/{}/temp", i % 1000, i / 1000);
        assert_eq!(idx.remove(&buf), Some(i));
    }
    assert_eq!(idx.node_count(), 1);
    assert_eq!(
        live(),
        before,
        "retained index memory back to an empty index's"
    );
    eprintln!("done in {:?}", start.elapsed());
}
