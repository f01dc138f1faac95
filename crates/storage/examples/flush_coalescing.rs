//! Measures whether sled's `flush_async` coalesces concurrent flushes, and what
//! [`SledBackend`]'s group commit adds: `cargo run --release -p moco-storage --example
//! flush_coalescing [WRITERS] [WRITES_PER_WRITER]` in a temporary directory on the disk under
//! test (`TMPDIR`).

use std::sync::Arc;
use std::time::Instant;

use moco_storage::{Backend, Batch, SledBackend};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let writers: usize = args.next().map_or(64, |a| a.parse().unwrap());
    let per: usize = args.next().map_or(20, |a| a.parse().unwrap());
    let total = writers * per;
    // CASE=1..4 runs one case only (to count its fsyncs with `strace -f -c`).
    let only: Option<u32> = std::env::var("CASE").ok().map(|c| c.parse().unwrap());
    let run = |case: u32| only.is_none_or(|o| o == case);

    if run(1) {
        // 1. One writer: apply + flush_async per write (the fsync rate of this disk).
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let t = Instant::now();
        for i in 0..total {
            db.insert(format!("k{i}"), vec![0u8; 100]).unwrap();
            db.flush_async().await.unwrap();
        }
        report("sequential, raw sled flush_async per write", total, t);
        drop(db);
    }
    if run(2) {
        // 2. Many writers, each apply + its own blocking flush on tokio's blocking pool.
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    db.insert(format!("w{w}/{i}"), vec![0u8; 100]).unwrap();
                    let db = db.clone();
                    tokio::task::spawn_blocking(move || db.flush().unwrap())
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        report(
            &format!("{writers} writers, raw sled flush (blocking pool) per write"),
            total,
            t,
        );
        drop(db);
    }
    if run(3) {
        // 3. Many writers through SledBackend::write (group commit).
        let dir = tempfile::tempdir().unwrap();
        let b = Arc::new(SledBackend::open(dir.path()).unwrap());
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    let mut batch = Batch::new();
                    batch.put(format!("w{w}/{i}"), vec![0u8; 100]);
                    b.write(batch).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        report(
            &format!(
                "{writers} writers, SledBackend::write ({} flushes)",
                b.flushes()
            ),
            total,
            t,
        );
    }
    if run(4) {
        // 4. Many writers, each apply + its own flush_async (sled alone): deadlocks in sled 0.34
        //    (sled#1308); given 10 s.
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    db.insert(format!("w{w}/{i}"), vec![0u8; 100]).unwrap();
                    db.flush_async().await.unwrap();
                }
            }));
        }
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        match tokio::time::timeout(std::time::Duration::from_secs(10), all).await {
            Ok(()) => report(
                &format!("{writers} writers, raw sled flush_async per write"),
                total,
                t,
            ),
            Err(_) => println!(
                "{writers} writers, raw sled flush_async per write: HUNG (no progress in 10 s)"
            ),
        }
    }
    std::process::exit(0);
}

fn report(what: &str, writes: usize, started: Instant) {
    let s = started.elapsed().as_secs_f64();
    println!(
        "{what}: {writes} writes in {s:.2}s = {:.0} writes/s",
        writes as f64 / s
    );
}
