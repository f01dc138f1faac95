//! One MQTT connection of the load generator: a TCP stream with TCP_NODELAY, a reusable read
//! buffer and a reusable write buffer, and the blocking set-up exchanges (CONNECT/CONNACK,
//! SUBSCRIBE/SUBACK, PINGREQ/PINGRESP) that happen outside the measured window.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::mqtt::{self, Frame};

/// Keep-alive sent in CONNECT: longer than any bounded scenario, so no PINGREQ is due mid-run.
pub const KEEP_ALIVE_SECS: u16 = 300;

/// How much free space the read buffer keeps before each read.
const READ_CHUNK: usize = 64 * 1024;

/// One connected MQTT v3.1.1 client.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not yet parsed.
    pub rbuf: BytesMut,
    /// Bytes to write at the next [`Conn::flush`].
    pub wbuf: BytesMut,
}

impl Conn {
    /// Opens a TCP connection, sends CONNECT and waits for a successful CONNACK, all within
    /// `timeout`.
    pub async fn connect(addr: SocketAddr, client_id: &str, timeout: Duration) -> Result<Self> {
        tokio::time::timeout(timeout, Self::connect_inner(addr, client_id))
            .await
            .map_err(|_| anyhow!("no CONNACK within {timeout:?}"))?
    }

    async fn connect_inner(addr: SocketAddr, client_id: &str) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("TCP connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
        };
        mqtt::connect(&mut conn.wbuf, client_id, KEEP_ALIVE_SECS);
        conn.flush().await?;
        let (kind, body) = conn.next_frame().await?;
        if kind != mqtt::CONNACK {
            bail!("expected CONNACK, got packet type {kind}");
        }
        match body.get(1) {
            Some(0) => Ok(conn),
            Some(code) => bail!("CONNACK refused with return code {code}"),
            None => bail!("short CONNACK"),
        }
    }

    /// Subscribes to `filter` at `qos` and waits for the SUBACK (bounded by `timeout`).
    pub async fn subscribe(&mut self, filter: &str, qos: u8, timeout: Duration) -> Result<()> {
        mqtt::subscribe(&mut self.wbuf, 1, filter, qos);
        self.flush().await?;
        let (kind, body) = tokio::time::timeout(timeout, self.next_frame())
            .await
            .map_err(|_| anyhow!("no SUBACK within {timeout:?}"))??;
        if kind != mqtt::SUBACK {
            bail!("expected SUBACK, got packet type {kind}");
        }
        match body.get(2) {
            Some(&granted) if granted <= 2 => Ok(()),
            Some(&granted) => bail!("SUBACK refused {filter} with {granted:#x}"),
            None => bail!("short SUBACK"),
        }
    }

    /// Sends a PINGREQ and waits for the PINGRESP (bounded by `timeout`).
    pub async fn ping(&mut self, timeout: Duration) -> Result<()> {
        mqtt::pingreq(&mut self.wbuf);
        self.flush().await?;
        let (kind, _) = tokio::time::timeout(timeout, self.next_frame())
            .await
            .map_err(|_| anyhow!("no PINGRESP within {timeout:?}"))??;
        if kind != mqtt::PINGRESP {
            bail!("expected PINGRESP, got packet type {kind}");
        }
        Ok(())
    }

    /// Writes and clears the write buffer.
    pub async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Writes `bytes` as they are, bypassing the write buffer.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads more bytes into the read buffer; fails when the broker closed the connection.
    pub async fn read_more(&mut self) -> Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 2 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            bail!("the broker closed the connection");
        }
        Ok(n)
    }

    /// Waits for the next whole frame and returns its type and an owned copy of its body (set-up
    /// path only: the hot paths parse in place with [`Conn::drain`]).
    pub async fn next_frame(&mut self) -> Result<(u8, Vec<u8>)> {
        loop {
            if let Some((frame, used)) = mqtt::parse(&self.rbuf).map_err(|e| anyhow!("{e:?}"))? {
                let out = (frame.kind, frame.body.to_vec());
                self.rbuf.advance(used);
                return Ok(out);
            }
            self.read_more().await?;
        }
    }

    /// Hands every whole frame in the read buffer to `f` (which may queue replies in the write
    /// buffer it is given), then drops the parsed bytes. Returns how many frames were seen.
    pub fn drain(&mut self, mut f: impl FnMut(Frame<'_>, &mut BytesMut)) -> Result<usize> {
        let mut at = 0;
        let mut n = 0;
        while let Some((frame, used)) =
            mqtt::parse(&self.rbuf[at..]).map_err(|e| anyhow!("{e:?}"))?
        {
            f(frame, &mut self.wbuf);
            at += used;
            n += 1;
        }
        self.rbuf.advance(at);
        Ok(n)
    }
}
