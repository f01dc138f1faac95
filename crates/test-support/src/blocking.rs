//! Blocking clients over std sockets, for tests that drive a broker from plain threads the way
//! third-party client suites do, or that must not allocate while the broker's heap is counted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use moco_codec::{Decoder, Packet, ProtocolVersion, ReasonCode};

use crate::{connect_packet, WAIT};

/// A blocking client that encodes and decodes with moco-codec.
pub struct Client {
    /// The socket (blocking; reads set their own timeout).
    pub s: TcpStream,
    /// Decodes what the server sends.
    pub dec: Decoder,
    /// Bytes read but not decoded yet.
    pub buf: BytesMut,
    /// The protocol version packets are encoded and decoded for.
    pub version: ProtocolVersion,
}

/// How a read ended when it brought no packet.
#[derive(Debug, PartialEq)]
pub enum End {
    /// Nothing complete arrived in time.
    Timeout,
    /// The server closed the connection.
    Closed,
    /// The read failed (typically a reset).
    Reset(std::io::ErrorKind),
}

impl Client {
    /// Opens a socket (no delay) without sending anything.
    pub fn open(addr: SocketAddr, version: ProtocolVersion) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            s,
            dec: Decoder::with_version(0, version),
            buf: BytesMut::new(),
            version,
        }
    }

    /// Connects `id` (v5, keep-alive 30, clean start) and asserts the CONNACK accepts it
    /// within [`WAIT`].
    pub fn connect(addr: SocketAddr, id: &str) -> Client {
        let mut c = Client::open(addr, ProtocolVersion::V5);
        c.send(&Packet::from(connect_packet(
            id,
            ProtocolVersion::V5,
            30,
            true,
        )));
        match c.recv(WAIT) {
            Ok(Packet::ConnAck(a)) => assert_eq!(a.reason_code, ReasonCode::Success),
            other => panic!("{id}: expected CONNACK, got {other:?}"),
        }
        c
    }

    /// `p` encoded for this client's version.
    pub fn bytes(&self, p: &Packet) -> BytesMut {
        let mut out = BytesMut::new();
        p.encode(self.version, &mut out).unwrap();
        out
    }

    /// Encodes and writes `p`.
    pub fn send(&mut self, p: &Packet) {
        let out = self.bytes(p);
        self.s.write_all(&out).unwrap();
    }

    /// The next packet within `timeout`, or how the read ended.
    pub fn recv(&mut self, timeout: Duration) -> Result<Packet, End> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(p) = self.dec.decode(&mut self.buf).unwrap() {
                return Ok(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::Timeout);
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            match self.s.read(&mut chunk) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(End::Reset(e.kind())),
            }
        }
    }

    /// Reads until a packet `want` accepts; the packets before it are skipped.
    pub fn recv_until(
        &mut self,
        timeout: Duration,
        want: impl Fn(&Packet) -> bool,
    ) -> Result<Packet, End> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.recv(deadline.saturating_duration_since(Instant::now()))?;
            if want(&p) {
                return Ok(p);
            }
        }
    }
}

/// Reads packets (decoded for `version`) from a bare socket until one that `done` accepts;
/// what follows it in the last read is dropped. Bounded by the socket's read timeout; panics
/// if the broker closes the connection.
pub fn read_until(s: &mut TcpStream, version: ProtocolVersion, done: impl Fn(&Packet) -> bool) {
    let mut dec = Decoder::with_version(0, version);
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        while let Some(p) = dec.decode(&mut buf).unwrap() {
            if done(&p) {
                return;
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "broker closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}
