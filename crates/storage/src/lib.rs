//! moco's persistence layer: one storage layer over a small [`Backend`] trait, with the
//! embedded [`SledBackend`] (the default) and the [`RedisBackend`], plus a [`MemoryBackend`]
//! for tests.
//!
//! A backend stores byte keys and [`bytes::Bytes`] values. It reads one key
//! ([`Backend::get`]), scans the keys under a prefix in key order ([`Backend::scan_prefix`]),
//! and applies a [`Batch`] of puts and deletes atomically, returning once the batch is durable
//! ([`Backend::write`]). Everything above — which engine event becomes which record, when an
//! acknowledgement may go out, restoring a broker — is written once, over this trait.
//!
//! ```
//! use moco_storage::{Backend, Batch, MemoryBackend};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryBackend::new();
//! let mut batch = Batch::new();
//! batch.put("session/a", "one").put("session/b", "two");
//! store.write(batch).await?;
//! let sessions = store.scan_prefix(b"session/").await?;
//! assert_eq!(sessions.len(), 2);
//! # Ok::<(), moco_storage::StoreError>(())
//! # }).unwrap();
//! ```
//!
//! Values carry a format header ([`MAGIC`], [`FORMAT_VERSION`]) through [`encode_value`] /
//! [`decode_value`]; see the [`format` module](crate::format) for why the bodies are postcard.
//!
//! # Durability per backend
//!
//! - **sled**: [`Backend::write`] returns after `apply_batch` and a flush of sled's log
//!   (`Db::flush`); concurrent writes share flushes. A batch is atomic across a crash. On
//!   Linux sled 0.34 flushes with `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`, not
//!   `fsync`/`fdatasync` (counted with `strace` on the `flush_coalescing` example): a write
//!   survives `kill -9` and a kernel crash once on the device, but on power loss a device's
//!   volatile write cache (or file metadata not yet synced) may lose the last writes.
//! - **Redis**: [`Backend::write`] returns once the server has executed the `MULTI`/`EXEC`
//!   transaction. It is on disk only as far as the server's own persistence says
//!   (`appendonly yes` + `appendfsync always` for every write, `everysec` for up to a second of
//!   loss on a server crash), and a failover to a replica that had not received it loses it.
//! - **memory**: nothing survives the process.

mod backend;
pub mod format;
mod memory;
mod persist;
mod records;
mod redis_backend;
mod sled_backend;

pub use backend::{Backend, Batch, Op, StoreError, StoreFuture};
pub use format::{decode_raw, decode_value, encode_raw, encode_value, FORMAT_VERSION, MAGIC};
pub use memory::MemoryBackend;
pub use persist::{Durability, Persistence};
pub use redis_backend::{escape_glob, RedisBackend, RedisConfig, DEFAULT_PREFIX};
pub use sled_backend::SledBackend;
