//! WebSocket and secure WebSocket (RFC 6455, MQTT 5 §6): the HTTP upgrade checked here
//! (path, origin, subprotocol), then MQTT's byte stream carried in binary messages.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use moco_engine::listener::{Connection, Establish, Established, ListenerKind, Peer, RemoteAddr};
use moco_engine::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::either::Either;

use crate::tls::Tls;
use crate::TcpListener;

/// Largest HTTP upgrade request head read before answering 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// tungstenite's read buffer per connection (see [`upgrade`]).
const READ_BUFFER: usize = 4 * 1024;

/// The subprotocols accepted, in order of preference (`mqttv3.1` is what v3.1 clients ask for).
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// What a WebSocket listener checks in an upgrade request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsSettings {
    /// The only path upgraded (e.g. `/mqtt`, what MQTT.js asks for); `None`: any path.
    pub path: Option<String>,
    /// Origins a browser may connect from (`https://example.com`); empty: any. A request
    /// without an `Origin` header (not a browser) is not checked.
    pub allowed_origins: Vec<String>,
}

/// A WebSocket (or, with TLS, secure WebSocket) listener.
#[derive(Debug)]
pub struct WsListener {
    tcp: TcpListener,
    tls: Option<Tls>,
    settings: Arc<WsSettings>,
}

impl WsListener {
    /// WebSocket over `tcp`; over TLS first when `tls` is given (`wss`).
    pub fn new(tcp: TcpListener, tls: Option<Tls>, settings: WsSettings) -> Self {
        Self {
            tcp,
            tls,
            settings: Arc::new(settings),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl Listener for WsListener {
    type Conn = WsConnection;

    fn kind(&self) -> ListenerKind {
        if self.tls.is_some() {
            ListenerKind::Wss
        } else {
            ListenerKind::Ws
        }
    }

    async fn accept(&mut self) -> io::Result<WsConnection> {
        let (stream, peer) = self.tcp.accept_stream().await?;
        Ok(WsConnection {
            stream,
            peer,
            tls: self.tls.clone(),
            settings: self.settings.clone(),
        })
    }
}

/// The stream under the WebSocket: TCP, or TLS over TCP.
pub type MaybeTls = Either<TcpStream, TlsStream<TcpStream>>;

/// An accepted WebSocket connection, before its handshakes.
#[derive(Debug)]
pub struct WsConnection {
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Tls>,
    settings: Arc<WsSettings>,
}

impl Connection for WsConnection {
    type Read = ReadHalf<WsStream<MaybeTls>>;
    type Write = WriteHalf<WsStream<MaybeTls>>;

    fn establish(self) -> Establish<Self::Read, Self::Write> {
        Establish::Handshake(Box::pin(async move {
            let (stream, identity) = match &self.tls {
                Some(tls) => {
                    let (s, id) = tls.accept(self.stream).await?;
                    (Either::Right(s), id)
                }
                None => (Either::Left(self.stream), None),
            };
            let ws = upgrade(stream, &self.settings).await?;
            let (read, write) = tokio::io::split(ws);
            Ok(Established {
                read,
                write,
                peer: Peer::new(RemoteAddr::Ip(self.peer)).with_tls(identity),
            })
        }))
    }
}

fn header<'a>(req: &'a httparse::Request<'_, '_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Why an upgrade request is refused: the HTTP status line and extra headers to answer with.
struct Refusal(&'static str, &'static str, &'static str);

/// What a request asks for: the subprotocol to answer with and the key, or a refusal.
fn judge(
    req: &httparse::Request<'_, '_>,
    settings: &WsSettings,
) -> Result<(&'static str, String), Refusal> {
    let upgrade = req.method == Some("GET")
        && has_token(header(req, "upgrade"), "websocket")
        && has_token(header(req, "connection"), "upgrade");
    let Some(key) = header(req, "sec-websocket-key").filter(|_| upgrade) else {
        return Err(Refusal(
            "400 Bad Request",
            "",
            "this port speaks MQTT over WebSocket only\n",
        ));
    };
    if header(req, "sec-websocket-version").map(str::trim) != Some("13") {
        return Err(Refusal(
            "426 Upgrade Required",
            "Sec-WebSocket-Version: 13\r\n",
            "",
        ));
    }
    if let Some(path) = &settings.path {
        let asked = req.path.unwrap_or("/");
        let asked = asked.split('?').next().unwrap_or(asked);
        if asked != path {
            return Err(Refusal("404 Not Found", "", "no MQTT on this path\n"));
        }
    }
    if !settings.allowed_origins.is_empty() {
        if let Some(origin) = header(req, "origin") {
            let origin = origin.trim().trim_end_matches('/');
            if !settings
                .allowed_origins
                .iter()
                .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
            {
                return Err(Refusal("403 Forbidden", "", "origin not allowed\n"));
            }
        }
    }
    let offered = header(req, "sec-websocket-protocol");
    let Some(proto) = SUBPROTOCOLS.into_iter().find(|p| has_token(offered, p)) else {
        return Err(Refusal(
            "400 Bad Request",
            "",
            "the WebSocket subprotocol must be `mqtt` (or `mqttv3.1`)\n",
        ));
    };
    Ok((proto, key.trim().to_owned()))
}

/// Reads the HTTP upgrade request, answers it, and returns the WebSocket; a request that is
/// not a valid upgrade gets an HTTP error status and the connection is closed.
pub async fn upgrade<S>(mut stream: S, settings: &WsSettings) -> io::Result<WsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = Vec::with_capacity(1024);
    let end = loop {
        if head.len() >= MAX_REQUEST_HEAD {
            refuse(
                &mut stream,
                Refusal("431 Request Header Fields Too Large", "", ""),
            )
            .await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(i) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            break from + i + 4;
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let judged = match req.parse(&head[..end]) {
        Ok(httparse::Status::Complete(_)) => judge(&req, settings),
        _ => Err(Refusal("400 Bad Request", "", "")),
    };
    let (proto, key) = match judged {
        Ok(j) => j,
        Err(r) => {
            let status = r.0;
            refuse(&mut stream, r).await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("WebSocket upgrade refused: {status}"),
            ));
        }
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n"
    );
    stream.write_all(reply.as_bytes()).await?;
    let rest = head.split_off(end);
    // Writes go out at once (the driver batches them itself and does not flush). The read
    // buffer is allocated per connection for its lifetime: tungstenite's default (128 KiB)
    // made an idle WebSocket client cost ~140 KB of RSS.
    let config = WebSocketConfig::default()
        .write_buffer_size(0)
        .read_buffer_size(READ_BUFFER);
    let ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config)).await;
    Ok(WsStream::new(ws))
}

async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, r: Refusal) {
    let Refusal(status, headers, body) = r;
    let reply = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Where a refusal of a text frame stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusing {
    No,
    /// The close frame (1003) is to be queued.
    Queue,
    /// Queued; flushing it.
    Flush,
}

/// MQTT's byte stream over a WebSocket: binary messages in (split or packed however the peer
/// likes), one binary message per write out.
///
/// A write that cannot be flushed at once returns `Pending` having queued its message; the
/// next call (with the same bytes first, as `write_all` and the driver do) only flushes it.
#[derive(Debug)]
pub struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// What is left of the last binary message read.
    pending: Bytes,
    /// Bytes of a written message not yet flushed (see above).
    queued: usize,
    refusing: Refusing,
}

impl<S> WsStream<S> {
    fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
            queued: 0,
            refusing: Refusing::No,
        }
    }
}

fn io_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Sends close 1003 (a text frame: MQTT travels in binary frames only), then fails.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.refusing == Refusing::Queue {
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
            let frame = CloseFrame {
                code: CloseCode::Unsupported,
                reason: "MQTT travels in binary frames".into(),
            };
            Pin::new(&mut self.ws)
                .start_send(Message::Close(Some(frame)))
                .map_err(io_error)?;
            self.refusing = Refusing::Flush;
        }
        let _ = ready!(Pin::new(&mut self.ws).poll_flush(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "text frame on an MQTT WebSocket (closed with 1003)",
        )))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.refusing != Refusing::No {
                return this.poll_refuse(cx);
            }
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(b))) => this.pending = b,
                Some(Ok(Message::Text(_))) => this.refusing = Refusing::Queue,
                // Pings are answered by tungstenite (on the next read or write), and a close
                // is answered and then ends the stream.
                Some(Ok(_)) => {}
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.queued == 0 {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(io_error)?;
            Pin::new(&mut this.ws)
                .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
                .map_err(io_error)?;
            this.queued = buf.len();
        }
        ready!(Pin::new(&mut this.ws).poll_flush(cx)).map_err(io_error)?;
        let n = std::mem::take(&mut this.queued);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().ws).poll_close(cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}
