//! The backend trait: the few operations every store offers (get, scan by key prefix, atomic
//! batched writes that return once durable), and the one error type of the crate.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;

/// The future a [`Backend`] returns: boxed, `Send`, borrowing the backend for `'a`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One write of a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets a key to a value (replacing any value it had).
    Put(Vec<u8>, Bytes),
    /// Removes a key (nothing happens if it is absent).
    Delete(Vec<u8>),
    /// Removes every key that starts with the given bytes, including keys put earlier in the
    /// same batch; later ops of the batch may put keys under the prefix again.
    DeletePrefix(Vec<u8>),
}

/// One atomic group of writes, applied in order: after [`Backend::write`] returns `Ok`, all of
/// them are durable; if it fails, none of them or (where the backend cannot tell, see its
/// docs) all of them were applied — never a part.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The writes, in the order they apply.
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds [`Op::Put`].
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Bytes>) -> &mut Self {
        self.ops.push(Op::Put(key.into(), value.into()));
        self
    }

    /// Adds [`Op::Delete`].
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete(key.into()));
        self
    }

    /// Adds [`Op::DeletePrefix`].
    pub fn delete_prefix(&mut self, prefix: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::DeletePrefix(prefix.into()));
        self
    }

    /// Whether the batch has no op.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// How many ops the batch has.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Appends the ops of `other` after this batch's own.
    pub fn extend(&mut self, other: Batch) -> &mut Self {
        self.ops.extend(other.ops);
        self
    }

    /// The prefixes the batch deletes, for a backend that must look up their keys first.
    pub(crate) fn deleted_prefixes(&self) -> impl Iterator<Item = &[u8]> {
        self.ops.iter().filter_map(|op| match op {
            Op::DeletePrefix(p) => Some(p.as_slice()),
            _ => None,
        })
    }

    /// The batch's net effect: each key it touches, with its final value (`None`: deleted).
    ///
    /// `existing` gives the stored keys under a prefix (for [`Op::DeletePrefix`]); keys put
    /// earlier in the batch are taken into account here.
    pub(crate) fn resolve(
        self,
        mut existing: impl FnMut(&[u8]) -> Vec<Vec<u8>>,
    ) -> BTreeMap<Vec<u8>, Option<Bytes>> {
        let mut net: BTreeMap<Vec<u8>, Option<Bytes>> = BTreeMap::new();
        for op in self.ops {
            match op {
                Op::Put(k, v) => {
                    net.insert(k, Some(v));
                }
                Op::Delete(k) => {
                    net.insert(k, None);
                }
                Op::DeletePrefix(p) => {
                    for k in existing(&p) {
                        net.insert(k, None);
                    }
                    for (_, v) in net
                        .range_mut(p.clone()..)
                        .take_while(|(k, _)| k.starts_with(&p))
                    {
                        *v = None;
                    }
                }
            }
        }
        net
    }
}

/// A key-value store under moco's persistence layer: byte keys, [`Bytes`] values, ordered
/// scans by key prefix, atomic batches.
///
/// Methods return boxed futures so the trait is object safe (`Arc<dyn Backend>`); no method
/// blocks the async runtime.
pub trait Backend: Send + Sync + 'static {
    /// The backend's short name for logs: `"sled"`, `"redis"`, `"memory"`.
    fn name(&self) -> &'static str;

    /// The value of `key`, if any.
    fn get<'a>(&'a self, key: &'a [u8]) -> StoreFuture<'a, Option<Bytes>>;

    /// Every key starting with `prefix`, with its value, sorted by key (bytewise).
    fn scan_prefix<'a>(&'a self, prefix: &'a [u8]) -> StoreFuture<'a, Vec<(Vec<u8>, Bytes)>>;

    /// Applies the batch atomically and returns once it is durable (sled: applied and flushed
    /// to disk; Redis: answered by the server, in one MULTI/EXEC transaction). Concurrent calls
    /// may share one flush (group commit).
    fn write(&self, batch: Batch) -> StoreFuture<'_, ()>;
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file-system operation failed (creating the data directory, …).
    #[error("storage I/O failed on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// sled failed (I/O error, corruption, …).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// Another process (or another open in this one) holds the sled database.
    #[error(
        "the data directory {path} is in use by another moco (sled holds a lock on it); \
         stop that one or choose another directory"
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// Redis could not be reached (or refused the credentials) when connecting.
    #[error("cannot connect to Redis at {address}: {source}")]
    RedisConnect {
        /// The address as configured.
        address: String,
        /// What the client said.
        #[source]
        source: redis::RedisError,
    },
    /// A Redis command failed (connection lost, timeout, server error, …).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A configuration value is unusable (e.g. a malformed Redis address).
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// A stored value is not in a format this build reads: another format version, not a moco
    /// record, or a body that does not decode.
    #[error("stored {what} cannot be read: found {found}, expected {expected}")]
    Format {
        /// What was being read, e.g. "record format version".
        what: String,
        /// What the store holds.
        found: String,
        /// What this build reads.
        expected: String,
    },
    /// A record could not be encoded.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being written.
        what: &'static str,
        /// What the encoder said.
        #[source]
        source: postcard::Error,
    },
    /// A blocking store operation's task failed (panicked or was cancelled at shutdown).
    #[error("storage task failed: {0}")]
    Task(String),
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Task(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_applies_ops_in_order() {
        let mut b = Batch::new();
        b.put("a/1", "x")
            .put("b/1", "y")
            .delete_prefix("a/")
            .put("a/2", "z")
            .delete("b/1");
        let net = b.resolve(|p| {
            assert_eq!(p, b"a/");
            vec![b"a/0".to_vec()]
        });
        let net: Vec<_> = net.into_iter().collect();
        assert_eq!(
            net,
            vec![
                (b"a/0".to_vec(), None),
                (b"a/1".to_vec(), None),
                (b"a/2".to_vec(), Some(Bytes::from("z"))),
                (b"b/1".to_vec(), None),
            ]
        );
    }
}
