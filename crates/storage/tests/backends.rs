//! The same conformance checks against every backend: sled in a temporary directory, Redis on
//! the test server, memory; then what is particular to each (sled reopen and lock, Redis prefix
//! isolation and escaping).
//!
//! Redis: `MOCO_TEST_REDIS_URL` names a server to use (as `cargo xtask test` does); without it
//! the tests start one through `scripts/redis-test-server.sh`, which installs Debian's
//! `redis-server` when missing and stops the server when this test process exits. Only if
//! redis-server cannot be installed are the Redis tests skipped, loudly (and never under CI).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use moco_storage::{
    decode_value, encode_value, Backend, Batch, MemoryBackend, RedisBackend, RedisConfig,
    SledBackend, StoreError, FORMAT_VERSION,
};

/// Puts, gets, deletes, ordered prefix scans, `DeletePrefix`, byte-exact values, batches.
async fn conformance(b: &dyn Backend) {
    // Empty store.
    assert_eq!(b.get(b"k").await.unwrap(), None, "{}", b.name());
    assert!(b.scan_prefix(b"").await.unwrap().is_empty());
    b.write(Batch::new()).await.unwrap();

    // Put and get; values come back byte for byte, including empty and binary ones.
    let binary: Bytes = (0..=255u8).collect::<Vec<_>>().into();
    let big: Bytes = vec![0xa5; 1 << 20].into();
    let mut batch = Batch::new();
    batch
        .put("s/b", binary.clone())
        .put("s/a", Bytes::new())
        .put("s/c", big.clone())
        .put(b"s/\x00\xff".to_vec(), "nul")
        .put("t/x", "other")
        .put("s", "exactly the prefix");
    b.write(batch).await.unwrap();
    assert_eq!(b.get(b"s/b").await.unwrap(), Some(binary.clone()));
    assert_eq!(b.get(b"s/a").await.unwrap(), Some(Bytes::new()));
    assert_eq!(b.get(b"s/c").await.unwrap(), Some(big.clone()));
    assert_eq!(b.get(b"s/").await.unwrap(), None);

    // Scans are sorted bytewise and stay within the prefix.
    let scan = b.scan_prefix(b"s/").await.unwrap();
    let keys: Vec<&[u8]> = scan.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        keys,
        vec![&b"s/\x00\xff"[..], b"s/a", b"s/b", b"s/c"],
        "{}",
        b.name()
    );
    assert_eq!(scan[2].1, binary);
    assert_eq!(b.scan_prefix(b"s").await.unwrap().len(), 5);
    assert_eq!(b.scan_prefix(b"").await.unwrap().len(), 6);
    assert!(b.scan_prefix(b"u").await.unwrap().is_empty());

    // Overwrite and delete (deleting an absent key is fine).
    let mut batch = Batch::new();
    batch.put("s/a", "new").delete("s/b").delete("absent");
    b.write(batch).await.unwrap();
    assert_eq!(b.get(b"s/a").await.unwrap(), Some(Bytes::from("new")));
    assert_eq!(b.get(b"s/b").await.unwrap(), None);

    // DeletePrefix removes stored keys and keys put earlier in the batch, not later ones, and
    // nothing outside the prefix.
    let mut batch = Batch::new();
    batch
        .put("s/d", "put before")
        .delete_prefix("s/")
        .put("s/e", "put after");
    assert_eq!(batch.len(), 3);
    b.write(batch).await.unwrap();
    let scan = b.scan_prefix(b"s/").await.unwrap();
    assert_eq!(scan, vec![(b"s/e".to_vec(), Bytes::from("put after"))]);
    assert_eq!(
        b.get(b"s").await.unwrap(),
        Some(Bytes::from("exactly the prefix"))
    );
    assert_eq!(b.get(b"t/x").await.unwrap(), Some(Bytes::from("other")));

    // A prefix with many keys (more than one SCAN / MGET / DEL chunk for Redis).
    let mut batch = Batch::new();
    for i in 0..1500u32 {
        batch.put(format!("m/{i:05}"), i.to_be_bytes().to_vec());
    }
    b.write(batch).await.unwrap();
    let scan = b.scan_prefix(b"m/").await.unwrap();
    assert_eq!(scan.len(), 1500);
    assert!(scan.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(scan[1499].1, Bytes::from(1499u32.to_be_bytes().to_vec()));
    let mut batch = Batch::new();
    batch.delete_prefix("m/");
    b.write(batch).await.unwrap();
    assert!(b.scan_prefix(b"m/").await.unwrap().is_empty());

    // Records written through the format header read back; another version is refused.
    let mut batch = Batch::new();
    batch.put("r/1", encode_value(&("client", 7u16)).unwrap());
    let mut future = encode_value(&("client", 7u16)).unwrap().to_vec();
    future[1] = FORMAT_VERSION + 1;
    batch.put("r/2", future);
    b.write(batch).await.unwrap();
    let v = b.get(b"r/1").await.unwrap().unwrap();
    assert_eq!(
        decode_value::<(String, u16)>(&v).unwrap(),
        ("client".into(), 7)
    );
    let v = b.get(b"r/2").await.unwrap().unwrap();
    let err = decode_value::<(String, u16)>(&v).unwrap_err();
    assert!(matches!(err, StoreError::Format { .. }), "{err:?}");
    assert!(err.to_string().contains("format version"), "{err}");

    // Concurrent writers all land (and, for sled, share flushes).
    let mut writes = Vec::new();
    for i in 0..32u32 {
        writes.push(async move {
            let mut batch = Batch::new();
            batch.put(format!("c/{i:02}"), i.to_string());
            b.write(batch).await
        });
    }
    for r in futures_join_all(writes).await {
        r.unwrap();
    }
    assert_eq!(b.scan_prefix(b"c/").await.unwrap().len(), 32);
}

/// Joins futures without a futures-util dependency: polls them on this task in turn.
async fn futures_join_all<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut fs: Vec<_> = fs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = fs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in fs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}

// ---- memory ----

#[tokio::test]
async fn memory_conformance() {
    conformance(&MemoryBackend::new()).await;
}

// ---- sled ----

#[tokio::test]
async fn sled_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let b = SledBackend::open(dir.path().join("db")).unwrap();
    conformance(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_conformance_multi_thread() {
    let dir = tempfile::tempdir().unwrap();
    let b = SledBackend::open(dir.path()).unwrap();
    conformance(&b).await;
}

#[tokio::test]
async fn sled_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = SledBackend::open(dir.path()).unwrap();
        let mut batch = Batch::new();
        batch.put("a", "1").put("b/1", "2").put("b/2", "3");
        b.write(batch).await.unwrap();
        let mut batch = Batch::new();
        batch.delete("a");
        b.write(batch).await.unwrap();
    }
    let b = SledBackend::open(dir.path()).unwrap();
    assert_eq!(b.get(b"a").await.unwrap(), None);
    assert_eq!(
        b.scan_prefix(b"b/").await.unwrap(),
        vec![
            (b"b/1".to_vec(), Bytes::from("2")),
            (b"b/2".to_vec(), Bytes::from("3"))
        ]
    );
}

#[tokio::test]
async fn sled_second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledBackend::open(dir.path()).unwrap();
    let err = SledBackend::open(dir.path()).unwrap_err();
    match &err {
        StoreError::Locked { path } => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("in use"), "{msg}");
    drop(first);
    SledBackend::open(dir.path()).expect("free again once the first is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_concurrent_writes_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(SledBackend::open(dir.path()).unwrap());
    let writers = 64;
    let per_writer = 10;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let mut batch = Batch::new();
                batch.put(format!("w/{w:03}/{i:03}"), vec![0u8; 100]);
                b.write(batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let writes = (writers * per_writer) as u64;
    assert_eq!(b.scan_prefix(b"w/").await.unwrap().len() as u64, writes);
    let flushes = b.flushes();
    eprintln!("sled: {writes} concurrent writes took {flushes} flushes");
    assert!(
        flushes < writes / 2,
        "{flushes} flushes for {writes} writes: no group commit"
    );
}

#[tokio::test]
async fn sled_batch_is_atomic_across_reopen() {
    // What sled can show: a batch is applied as one (a reader never sees half of it) and its
    // keys all survive a reopen.
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Arc::new(SledBackend::open(dir.path()).unwrap());
        let reader = {
            let b = b.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    let n = b.scan_prefix(b"x/").await.unwrap().len();
                    assert!(n % 50 == 0, "saw {n} keys: half a batch");
                    tokio::task::yield_now().await;
                }
            })
        };
        for round in 0..20 {
            let mut batch = Batch::new();
            for i in 0..50 {
                batch.put(format!("x/{round:02}/{i:02}"), "v");
            }
            b.write(batch).await.unwrap();
        }
        reader.await.unwrap();
    }
    let b = SledBackend::open(dir.path()).unwrap();
    assert_eq!(b.scan_prefix(b"x/").await.unwrap().len(), 1000);
}

// ---- Redis ----

/// The test server's URL, or `None` (after a loud message) when Redis cannot be had here.
fn redis_url() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("MOCO_TEST_REDIS_URL") {
            return Some(url);
        }
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/redis-test-server.sh"
        );
        let out = Command::new("bash")
            .arg(script)
            .args(["start", "--until-pid", &std::process::id().to_string()])
            .output()
            .expect("run scripts/redis-test-server.sh");
        if out.status.success() {
            return Some(String::from_utf8(out.stdout).unwrap().trim().to_string());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(3) && std::env::var_os("CI").is_none() {
            eprintln!(
                "\n!!!!! SKIPPING THE REDIS TESTS: redis-server is not installed and could not \
                 be installed ({}) !!!!!\n",
                stderr.trim()
            );
            return None;
        }
        panic!("could not start the Redis test server: {stderr}");
    })
    .as_deref()
}

/// A backend on the test server under a prefix no other test uses.
async fn redis(name: &str) -> Option<RedisBackend> {
    static N: AtomicU32 = AtomicU32::new(0);
    let url = redis_url()?;
    let prefix = format!(
        "moco-test:{}:{}:{name}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    Some(redis_with_prefix(url, &prefix).await)
}

async fn redis_with_prefix(url: &str, prefix: &str) -> RedisBackend {
    RedisBackend::connect(RedisConfig {
        prefix: prefix.into(),
        ..RedisConfig::new(url)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn redis_conformance() {
    let Some(b) = redis("conformance").await else {
        return;
    };
    conformance(&b).await;
}

#[tokio::test]
async fn redis_prefixes_are_isolated() {
    let Some(url) = redis_url() else { return };
    let tag = format!("moco-test:{}:iso", std::process::id());
    let a = redis_with_prefix(url, &format!("{tag}:a:")).await;
    let b = redis_with_prefix(url, &format!("{tag}:b:")).await;
    let mut batch = Batch::new();
    batch.put("k", "from a").put("s/1", "a1");
    a.write(batch).await.unwrap();
    assert_eq!(b.get(b"k").await.unwrap(), None);
    assert!(b.scan_prefix(b"").await.unwrap().is_empty());
    let mut batch = Batch::new();
    batch.put("k", "from b").delete_prefix("");
    b.write(batch).await.unwrap();
    assert_eq!(a.get(b"k").await.unwrap(), Some(Bytes::from("from a")));
    assert_eq!(a.scan_prefix(b"").await.unwrap().len(), 2);

    // Glob characters in the backend prefix and in a scanned prefix match only themselves:
    // without escaping, `x*` would see `x-other`'s keys and `q?` would see `qz`'s.
    let star = redis_with_prefix(url, &format!("{tag}:x*")).await;
    let other = redis_with_prefix(url, &format!("{tag}:x-other:")).await;
    let mut batch = Batch::new();
    batch.put("k", "other");
    other.write(batch).await.unwrap();
    assert!(star.scan_prefix(b"").await.unwrap().is_empty());
    let mut batch = Batch::new();
    batch.delete_prefix("");
    star.write(batch).await.unwrap();
    assert_eq!(other.get(b"k").await.unwrap(), Some(Bytes::from("other")));

    for p in ["q?", "[ab]", "br]", "back\\"] {
        let odd = redis_with_prefix(url, &format!("{tag}:{p}")).await;
        let mut batch = Batch::new();
        batch
            .put("k", p)
            .put("q?/1", "1")
            .put("qz/1", "2")
            .put("[ab]/1", "3")
            .put("a/1", "4");
        odd.write(batch).await.unwrap();
        assert_eq!(odd.scan_prefix(b"").await.unwrap().len(), 5, "{p}");
        let keys: Vec<_> = odd
            .scan_prefix(b"q?")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"q?/1".to_vec()], "{p}");
        let keys: Vec<_> = odd
            .scan_prefix(b"[ab]")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"[ab]/1".to_vec()], "{p}");
        let mut batch = Batch::new();
        batch.delete_prefix("q?");
        odd.write(batch).await.unwrap();
        assert_eq!(
            odd.get(b"qz/1").await.unwrap(),
            Some(Bytes::from("2")),
            "{p}"
        );
        let mut batch = Batch::new();
        batch.delete_prefix("");
        odd.write(batch).await.unwrap();
        assert!(odd.scan_prefix(b"").await.unwrap().is_empty(), "{p}");
    }
    assert_eq!(other.get(b"k").await.unwrap(), Some(Bytes::from("other")));
    let mut batch = Batch::new();
    batch.delete_prefix("");
    a.write(batch.clone()).await.unwrap();
    other.write(batch).await.unwrap();
}

#[tokio::test]
async fn redis_batch_is_one_transaction() {
    // What Redis can show from outside: readers never see half a batch (each is one
    // MULTI/EXEC, which the server runs without interleaving other clients' commands).
    let Some(b) = redis("atomic").await else {
        return;
    };
    let b = Arc::new(b);
    let reader = {
        let b = b.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                let n = b.get(b"x/count").await.unwrap();
                let keys = b.scan_prefix(b"x/item/").await.unwrap().len();
                if let Some(n) = n {
                    let n: usize = std::str::from_utf8(&n).unwrap().parse().unwrap();
                    assert!(keys >= n, "count {n} but only {keys} items");
                }
            }
        })
    };
    for round in 1..=20 {
        let mut batch = Batch::new();
        for i in 0..25 {
            batch.put(format!("x/item/{round:02}/{i:02}"), "v");
        }
        batch.put("x/count", (round * 25).to_string());
        b.write(batch).await.unwrap();
    }
    reader.await.unwrap();
    let mut batch = Batch::new();
    batch.delete_prefix("");
    b.write(batch).await.unwrap();
}

#[tokio::test]
async fn redis_unreachable_names_the_address() {
    // A loopback port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let address = format!("127.0.0.1:{port}");
    let err = RedisBackend::connect(RedisConfig::new(&address))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RedisConnect { .. }), "{err:?}");
    assert!(err.to_string().contains(&address), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reconnects_after_a_restart() {
    // Our own redis-server on a fixed free port, stopped and started again under the backend.
    if redis_url().is_none() {
        return; // redis-server cannot be had here (said loudly above)
    }
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        // MOCO_TEST_REDIS_URL names a server elsewhere and there is none to restart here.
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is not installed"
        );
        eprintln!(
            "\n!!!!! SKIPPING redis_reconnects_after_a_restart: no local redis-server !!!!!\n"
        );
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child
    };
    let mut server = start();
    let b = redis_with_prefix(&format!("127.0.0.1:{port}"), "moco:").await;
    let mut batch = Batch::new();
    batch.put("before", "1");
    b.write(batch).await.unwrap();

    server.kill().unwrap();
    server.wait().unwrap();
    let mut batch = Batch::new();
    batch.put("while down", "1");
    let t = std::time::Instant::now();
    let err = b.write(batch).await.unwrap_err();
    eprintln!(
        "write while Redis is down failed after {:?}: {err}",
        t.elapsed()
    );
    assert!(matches!(err, StoreError::Redis(_)), "{err:?}");

    let mut server = start();
    let t = std::time::Instant::now();
    loop {
        let mut batch = Batch::new();
        batch.put("after", "1");
        match b.write(batch).await {
            Ok(()) => break,
            Err(e) if t.elapsed() < std::time::Duration::from_secs(30) => {
                eprintln!("not yet back: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no reconnect within 30 s: {e}"),
        }
    }
    eprintln!("writes succeed again {:?} after the restart", t.elapsed());
    assert_eq!(b.get(b"after").await.unwrap(), Some(Bytes::from("1")));
    server.kill().unwrap();
    server.wait().unwrap();
}
