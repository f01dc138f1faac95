//! [`RedisBackend`]: a Redis server (or a managed Redis) as the store, for brokers whose disk
//! should not hold state or that share one store.
//!
//! Every key is stored under a configurable prefix (`moco:` by default), so several brokers or
//! other applications can share a database. A write is one `MULTI`/`EXEC` transaction and
//! returns once the server has answered it; how durable that is depends on the server's own
//! persistence (`appendonly yes` with `appendfsync always` or `everysec`) and replication — see
//! the crate docs. The connection is a [`ConnectionManager`]: after a lost connection it
//! reconnects with exponential back-off, and calls made meanwhile fail (they are never
//! reported as stored).

use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo};

use crate::{Backend, Batch, StoreError, StoreFuture};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "moco:";

/// How many keys one `SCAN` step asks for, and one `MGET` / `DEL` takes.
const CHUNK: usize = 512;

/// Where and how to reach Redis (`hooks.storage.redis` in `moco.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `host:port`, or a URL (`redis://…`, `rediss://…` where the client supports it,
    /// `unix:///path`, `redis+unix:///path`).
    pub address: String,
    /// The ACL user name, if any (overrides one in the URL).
    pub username: Option<String>,
    /// The password, if any (overrides one in the URL).
    pub password: Option<String>,
    /// The database number (overrides one in the URL when not 0).
    pub database: i64,
    /// The prefix of every key moco stores ([`DEFAULT_PREFIX`] by default).
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:6379".into(),
            username: None,
            password: None,
            database: 0,
            prefix: DEFAULT_PREFIX.into(),
        }
    }
}

impl RedisConfig {
    /// A configuration for `address` with the defaults otherwise.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            ..Self::default()
        }
    }
}

/// A Redis server as a [`Backend`].
#[derive(Clone)]
pub struct RedisBackend {
    conn: ConnectionManager,
    /// The key prefix as bytes.
    prefix: Vec<u8>,
    /// The prefix with Redis glob characters escaped, for `SCAN MATCH`.
    pattern_prefix: Vec<u8>,
    address: String,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("address", &self.address)
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects, checks the server answers (`PING`, after authentication and `SELECT`), and
    /// keeps a reconnecting connection.
    ///
    /// A server that cannot be reached or refuses the credentials gives
    /// [`StoreError::RedisConnect`] naming the address (after one attempt of at most 5 s: a
    /// broker should fail to start, not wait).
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let address = config.address.clone();
        let connect_err = |source| StoreError::RedisConnect {
            address: address.clone(),
            source,
        };
        let url = if config.address.contains("://") {
            config.address.clone()
        } else {
            format!("redis://{}", config.address)
        };
        let mut info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| StoreError::Config(format!("Redis address {:?}: {e}", config.address)))?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &config.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &config.password {
            settings = settings.set_password(p);
        }
        if config.database != 0 {
            settings = settings.set_db(config.database);
        }
        info = info.set_redis_settings(settings);
        let client = Client::open(info).map_err(connect_err)?;

        // One bounded attempt first, so a wrong address fails fast and clearly.
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let mut first = client
            .get_multiplexed_async_connection_with_config(&probe)
            .await
            .map_err(connect_err)?;
        redis::cmd("PING")
            .query_async::<()>(&mut first)
            .await
            .map_err(connect_err)?;
        drop(first);

        let manager = ConnectionManagerConfig::new()
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(8)
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let conn = ConnectionManager::new_with_config(client, manager)
            .await
            .map_err(connect_err)?;
        let prefix = config.prefix.into_bytes();
        Ok(Self {
            conn,
            pattern_prefix: escape_glob(&prefix),
            prefix,
            address,
        })
    }

    /// The address as configured.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The key prefix.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// Every stored key (with the backend prefix) under `prefix` (without it), unsorted.
    async fn scan_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut pattern = self.pattern_prefix.clone();
        pattern.extend_from_slice(&escape_glob(prefix));
        pattern.push(b'*');
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(CHUNK)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
}

/// Escapes the characters Redis's glob matching treats specially, so a prefix matches itself.
pub fn escape_glob(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get<'a>(&'a self, key: &'a [u8]) -> StoreFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let v: Option<Bytes> = redis::cmd("GET")
                .arg(self.full_key(key))
                .query_async(&mut conn)
                .await?;
            Ok(v)
        })
    }

    fn scan_prefix<'a>(&'a self, prefix: &'a [u8]) -> StoreFuture<'a, Vec<(Vec<u8>, Bytes)>> {
        Box::pin(async move {
            let keys = self.scan_keys(prefix).await?;
            let mut conn = self.conn.clone();
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(CHUNK) {
                let values: Vec<Option<Bytes>> =
                    redis::cmd("MGET").arg(chunk).query_async(&mut conn).await?;
                // A key deleted between SCAN and MGET comes back as nil: it is gone.
                for (k, v) in chunk.iter().zip(values) {
                    if let Some(v) = v {
                        out.push((k[self.prefix.len()..].to_vec(), v));
                    }
                }
            }
            // Keys share the backend prefix, so their order is the order without it.
            Ok(out)
        })
    }

    fn write(&self, batch: Batch) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            // Keys under each deleted prefix are looked up before the transaction (SCAN cannot
            // run inside MULTI); a key another writer adds under the prefix meanwhile survives,
            // as if it had been written just after this batch.
            let mut existing = Vec::new();
            for p in batch.deleted_prefixes() {
                let keys = self.scan_keys(p).await?;
                existing.push((p.to_vec(), keys));
            }
            let plen = self.prefix.len();
            let net = batch.resolve(|p| {
                existing
                    .iter()
                    .find(|(q, _)| q == p)
                    .map(|(_, keys)| keys.iter().map(|k| k[plen..].to_vec()).collect())
                    .unwrap_or_default()
            });
            let mut pipe = redis::pipe();
            pipe.atomic();
            let mut deletes = Vec::new();
            for (k, v) in net {
                match v {
                    Some(v) => {
                        pipe.cmd("SET")
                            .arg(self.full_key(&k))
                            .arg(v.as_ref())
                            .ignore();
                    }
                    None => deletes.push(self.full_key(&k)),
                }
            }
            for chunk in deletes.chunks(CHUNK) {
                pipe.cmd("DEL").arg(chunk).ignore();
            }
            let mut conn = self.conn.clone();
            pipe.query_async::<()>(&mut conn).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob(b"moco:"), b"moco:".to_vec());
        assert_eq!(
            escape_glob(b"a*b?c[d]e\\f"),
            b"a\\*b\\?c\\[d\\]e\\\\f".to_vec()
        );
    }
}
