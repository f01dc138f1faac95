//! [`SledBackend`]: the embedded default, a sled database in a directory.
//!
//! sled's calls block (they may read from disk), so each runs on tokio's blocking pool. A write
//! applies its batch with `apply_batch` (atomic, also against a crash) and then waits for a
//! flush (`Db::flush`, an fsync of sled's log) that started after the batch was applied: concurrent writers share one flush (group
//! commit, see [`GroupCommit`]), so throughput does not fall to one fsync per write and a
//! writer waiting on the disk blocks nobody else.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::{Backend, Batch, StoreError, StoreFuture};

/// A sled database as a [`Backend`].
#[derive(Clone)]
pub struct SledBackend {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    /// Serialises (look up prefix keys, apply) so a `DeletePrefix` sees a stable key set; held
    /// only while sled applies a batch in memory, never across a flush.
    apply: Mutex<()>,
    commit: GroupCommit,
}

impl std::fmt::Debug for SledBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledBackend")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SledBackend {
    /// Opens (creating it if needed) the database in directory `path`.
    ///
    /// A directory that another process — or another open in this process — holds gives
    /// [`StoreError::Locked`] naming it. This blocks (sled reads its log); call it before
    /// serving, or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let db = sled::Config::new()
            .path(&path)
            .open()
            .map_err(|e| map_open_error(e, &path))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                db,
                apply: Mutex::new(()),
                commit: GroupCommit::new(),
            }),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many flushes [`Backend::write`] calls have started so far (for tests and metrics:
    /// with group commit it grows slower than the number of writes).
    pub fn flushes(&self) -> u64 {
        self.inner.commit.flushes.load(Ordering::Relaxed)
    }

    /// Flushes everything applied so far to disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.inner.commit.applied.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.wait_durable(ticket).await
    }
}

/// sled reports a held lock as an `io::Error` whose text says so ("could not acquire lock");
/// fs2 gives `WouldBlock` underneath on Linux.
fn map_open_error(e: sled::Error, path: &Path) -> StoreError {
    if let sled::Error::Io(io) = &e {
        let text = io.to_string();
        if io.kind() == std::io::ErrorKind::WouldBlock || text.contains("could not acquire lock") {
            return StoreError::Locked {
                path: path.to_path_buf(),
            };
        }
    }
    StoreError::Sled(e)
}

impl Backend for SledBackend {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn get<'a>(&'a self, key: &'a [u8]) -> StoreFuture<'a, Option<Bytes>> {
        let inner = self.inner.clone();
        let key = key.to_vec();
        Box::pin(async move {
            let v = tokio::task::spawn_blocking(move || inner.db.get(key)).await??;
            Ok(v.map(Bytes::from_owner))
        })
    }

    fn scan_prefix<'a>(&'a self, prefix: &'a [u8]) -> StoreFuture<'a, Vec<(Vec<u8>, Bytes)>> {
        let inner = self.inner.clone();
        let prefix = prefix.to_vec();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                inner
                    .db
                    .scan_prefix(prefix)
                    .map(|kv| kv.map(|(k, v)| (k.to_vec(), Bytes::from_owner(v))))
                    .collect::<Result<Vec<_>, sled::Error>>()
            })
            .await?
            .map_err(StoreError::from)
        })
    }

    fn write(&self, batch: Batch) -> StoreFuture<'_, ()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let apply = inner.clone();
            let ticket = tokio::task::spawn_blocking(move || -> Result<u64, StoreError> {
                let _serial = apply.apply.lock();
                let mut scan_err = None;
                let net = batch.resolve(|p| {
                    apply
                        .db
                        .scan_prefix(p)
                        .keys()
                        .filter_map(|k| match k {
                            Ok(k) => Some(k.to_vec()),
                            Err(e) => {
                                scan_err.get_or_insert(e);
                                None
                            }
                        })
                        .collect()
                });
                if let Some(e) = scan_err {
                    return Err(e.into());
                }
                let mut sb = sled::Batch::default();
                for (k, v) in net {
                    match v {
                        Some(v) => sb.insert(k, v.as_ref()),
                        None => sb.remove(k),
                    }
                }
                apply.db.apply_batch(sb)?;
                Ok(apply.commit.applied.fetch_add(1, Ordering::SeqCst) + 1)
            })
            .await??;
            inner.wait_durable(ticket).await
        })
    }
}

/// Group commit: each applied batch takes a ticket (a sequence number); a writer waits until a
/// flush that started after its ticket was taken has finished. At most one flush runs at a
/// time; the writers that arrive during it share the next one.
///
/// The flush runs in a spawned task that records its own outcome, so a writer whose future is
/// dropped mid-flush leaves no one waiting for ever.
struct GroupCommit {
    /// The last ticket handed out.
    applied: AtomicU64,
    state: Mutex<CommitState>,
    /// Announces the generation of each flush that ends, failed or not.
    done: watch::Sender<u64>,
    /// How many flushes were started.
    flushes: AtomicU64,
}

#[derive(Default)]
struct CommitState {
    /// Every ticket up to this one is on disk.
    durable: u64,
    /// A flush is running.
    flushing: bool,
    /// How many flushes have ended.
    generation: u64,
    /// The last failed flush: the tickets it covered (up to) and its error.
    last_error: Option<(u64, String)>,
}

impl GroupCommit {
    fn new() -> Self {
        Self {
            applied: AtomicU64::new(0),
            state: Mutex::new(CommitState::default()),
            done: watch::channel(0).0,
            flushes: AtomicU64::new(0),
        }
    }
}

impl Inner {
    /// Waits until every batch up to `ticket` is on disk, starting a flush if none is running.
    async fn wait_durable(self: &Arc<Self>, ticket: u64) -> Result<(), StoreError> {
        let mut rx = self.commit.done.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let mut st = self.commit.state.lock();
                if st.durable >= ticket {
                    return Ok(());
                }
                // A flush that started after this batch was applied failed (and none has
                // succeeded since): report it, the caller refuses what it could not store.
                if let Some((covered, msg)) = &st.last_error {
                    if *covered >= ticket {
                        return Err(StoreError::Sled(sled::Error::Io(std::io::Error::other(
                            msg.clone(),
                        ))));
                    }
                }
                if !st.flushing {
                    st.flushing = true;
                    let target = self.commit.applied.load(Ordering::SeqCst);
                    self.commit.flushes.fetch_add(1, Ordering::Relaxed);
                    let inner = self.clone();
                    tokio::spawn(async move {
                        // The blocking flush on tokio's pool, not `flush_async`: concurrent
                        // `flush_async` calls deadlock in sled 0.34 (sled#1308, fixed only in
                        // its unreleased main; the flush_coalescing example shows it here).
                        let db = inner.db.clone();
                        let result = match tokio::task::spawn_blocking(move || db.flush()).await {
                            Ok(r) => r.map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        let mut st = inner.commit.state.lock();
                        st.flushing = false;
                        st.generation += 1;
                        match result {
                            Ok(_) => st.durable = st.durable.max(target),
                            Err(e) => {
                                tracing::warn!(path = %inner.path.display(), error = %e, "sled flush failed");
                                st.last_error = Some((target, e));
                            }
                        }
                        let generation = st.generation;
                        drop(st);
                        inner.commit.done.send_replace(generation);
                    });
                }
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Task("the group commit was dropped".into()));
            }
        }
    }
}
