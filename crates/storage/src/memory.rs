//! [`MemoryBackend`]: a `BTreeMap` behind a mutex, for tests and `--in-memory` runs.

use std::collections::BTreeMap;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::{Backend, Batch, StoreFuture};

/// A backend that keeps everything in memory (nothing survives the process). Writes are atomic
/// (one lock for the whole batch) and "durable" at once.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: Mutex<BTreeMap<Vec<u8>, Bytes>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.lock().is_empty()
    }

    /// A copy of everything stored, sorted by key: for tests.
    pub fn dump(&self) -> Vec<(Vec<u8>, Bytes)> {
        self.map
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn prefixed<'m>(
    map: &'m BTreeMap<Vec<u8>, Bytes>,
    prefix: &'m [u8],
) -> impl Iterator<Item = (&'m Vec<u8>, &'m Bytes)> + 'm {
    map.range(prefix.to_vec()..)
        .take_while(move |(k, _)| k.starts_with(prefix))
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get<'a>(&'a self, key: &'a [u8]) -> StoreFuture<'a, Option<Bytes>> {
        let v = self.map.lock().get(key).cloned();
        Box::pin(async move { Ok(v) })
    }

    fn scan_prefix<'a>(&'a self, prefix: &'a [u8]) -> StoreFuture<'a, Vec<(Vec<u8>, Bytes)>> {
        let v = prefixed(&self.map.lock(), prefix)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Box::pin(async move { Ok(v) })
    }

    fn write(&self, batch: Batch) -> StoreFuture<'_, ()> {
        let mut map = self.map.lock();
        let net = batch.resolve(|p| prefixed(&map, p).map(|(k, _)| k.clone()).collect());
        for (k, v) in net {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Box::pin(async { Ok(()) })
    }
}
