//! Unix domain sockets: a stale socket file is replaced, a live one refused, the file's mode
//! set, and the file removed when the listener goes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use moco_engine::listener::{Connection, Establish, Established, ListenerKind, Peer, RemoteAddr};
use moco_engine::Listener;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use crate::Error;

/// A Unix socket listener; dropping it removes the socket file.
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
    path: Arc<Path>,
}

impl UnixListener {
    /// Binds `path` for listener `listener`: a socket file nobody listens on (left by a crashed
    /// run) is removed first; one that answers is an error, as is any other file there.
    /// `mode` (e.g. `0o660`) sets the file's permissions.
    pub async fn bind(listener: &str, path: &Path, mode: Option<u32>) -> Result<Self, Error> {
        let err = |reason: String| Error::Unix {
            listener: listener.to_owned(),
            path: path.to_owned(),
            reason,
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(err("exists and is not a socket; not replacing it".into()));
            }
            if UnixStream::connect(path).await.is_ok() {
                return Err(err("another process is listening on it".into()));
            }
            std::fs::remove_file(path)
                .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
        }
        let inner = tokio::net::UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
        if let Some(mode) = mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| err(format!("cannot set mode {mode:o}: {e}")))?;
        }
        Ok(Self {
            inner,
            path: Arc::from(path),
        })
    }

    /// The socket file.
    pub fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Listener for UnixListener {
    type Conn = UnixConnection;

    fn kind(&self) -> ListenerKind {
        ListenerKind::Unix
    }

    async fn accept(&mut self) -> std::io::Result<UnixConnection> {
        let (stream, _) = self.inner.accept().await?;
        Ok(UnixConnection {
            stream,
            path: self.path.clone(),
        })
    }
}

/// An accepted Unix socket connection.
#[derive(Debug)]
pub struct UnixConnection {
    stream: UnixStream,
    path: Arc<Path>,
}

impl Connection for UnixConnection {
    type Read = OwnedReadHalf;
    type Write = UnixWriter;

    fn establish(self) -> Establish<OwnedReadHalf, UnixWriter> {
        let (read, write) = self.stream.into_split();
        Establish::Ready(Established {
            read,
            write: UnixWriter::new(write),
            peer: Peer::new(RemoteAddr::Unix(self.path)),
        })
    }
}

/// The write half of a Unix stream, kept open when dropped.
pub type UnixWriter = crate::half::OpenOnDrop<OwnedWriteHalf>;
