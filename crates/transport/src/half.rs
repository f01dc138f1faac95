//! The write half of a socket split into owned halves, kept open when dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// An owned write half that can be dropped without shutting its socket down.
pub trait ForgetHalf: AsyncWrite + Unpin {
    /// Drops the half, leaving the socket's write side open.
    fn forget(self);
}

impl ForgetHalf for tokio::net::tcp::OwnedWriteHalf {
    fn forget(self) {
        tokio::net::tcp::OwnedWriteHalf::forget(self)
    }
}

impl ForgetHalf for tokio::net::unix::OwnedWriteHalf {
    fn forget(self) {
        tokio::net::unix::OwnedWriteHalf::forget(self)
    }
}

/// The write half of a stream that, like the halves of `tokio::io::split`, leaves the
/// socket open when dropped: closing is `poll_shutdown`'s job, or the read half's (a passive
/// disconnect waits for the client to close first). Tokio's owned halves shut the write side
/// down on drop.
#[derive(Debug)]
pub struct OpenOnDrop<W: ForgetHalf>(Option<W>);

impl<W: ForgetHalf> OpenOnDrop<W> {
    pub(crate) fn new(half: W) -> Self {
        Self(Some(half))
    }

    fn half(self: Pin<&mut Self>) -> Pin<&mut W> {
        Pin::new(self.get_mut().0.as_mut().expect("taken only on drop"))
    }
}

impl<W: ForgetHalf> Drop for OpenOnDrop<W> {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.forget();
        }
    }
}

impl<W: ForgetHalf> AsyncWrite for OpenOnDrop<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.half().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.half().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.half().poll_shutdown(cx)
    }
}
