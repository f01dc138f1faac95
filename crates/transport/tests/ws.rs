//! WebSocket and secure WebSocket over real loopback sockets, with tokio-tungstenite as the
//! client: MQTT split across and packed into binary frames, subprotocols, paths, origins,
//! ping/pong, and the refusals (text frames, plain HTTP, wrong path, origin or subprotocol).

use std::net::SocketAddr;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use moco_codec::{Connect, Decoder, Packet, ReasonCode};
use moco_engine::{AllowAll, Server};
use moco_test_support::pki::Pki;
use moco_test_support::WAIT;
use moco_transport::{AnyListener, Bound, Spec, TlsSettings, WsSettings};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const V5: moco_codec::ProtocolVersion = moco_codec::ProtocolVersion::V5;

async fn serve(ws: WsSettings, tls: Option<TlsSettings>) -> (Server, SocketAddr) {
    let mut server = Server::builder().hook(AllowAll).build();
    let spec = Spec::Ws("127.0.0.1:0".parse().unwrap(), tls, ws);
    let l = AnyListener::bind("web", &spec).await.unwrap();
    let Bound::Ip(addr) = l.bound().unwrap() else {
        panic!("not an IP listener")
    };
    l.add_to(&mut server, "web");
    server.serve();
    (server, addr)
}

/// Opens a WebSocket on `stream` for `path`, offering `protocols`, with `origin`.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    addr: SocketAddr,
    path: &str,
    protocols: &str,
    origin: Option<&str>,
) -> Result<WebSocketStream<S>, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if !protocols.is_empty() {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, stream))
        .await
        .expect("upgrade timed out")?;
    let proto = resp.headers().get("Sec-WebSocket-Protocol").unwrap();
    assert!(protocols.contains(proto.to_str().unwrap()), "{proto:?}");
    Ok(ws)
}

async fn ws(addr: SocketAddr, path: &str) -> WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    open(tcp, addr, path, "mqtt", None).await.unwrap()
}

fn encode(p: impl Into<Packet>) -> Vec<u8> {
    let mut out = BytesMut::new();
    p.into().encode(V5, &mut out).unwrap();
    out.to_vec()
}

/// The MQTT packets arriving in binary messages, however they are split.
struct Packets {
    dec: Decoder,
    buf: BytesMut,
    /// Binary messages received.
    messages: usize,
}

impl Packets {
    fn new() -> Self {
        Self {
            dec: Decoder::with_version(0, V5),
            buf: BytesMut::new(),
            messages: 0,
        }
    }

    async fn next<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
    ) -> Packet {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(p) = self.dec.decode(&mut self.buf).unwrap() {
                    return p;
                }
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        self.messages += 1;
                        self.buf.extend_from_slice(&b);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    other => panic!("expected a binary message, got {other:?}"),
                }
            }
        })
        .await
        .expect("nothing from the server")
    }
}

fn subscribe(pid: u16, filter: &str, qos: u8) -> Packet {
    Packet::Subscribe(moco_test_support::subscribe(pid, filter, qos))
}

fn publish(topic: &str, qos: u8, pid: Option<u16>, payload: &'static [u8]) -> Packet {
    Packet::Publish(moco_test_support::publish(topic, qos, pid, payload))
}

fn connect(id: &str) -> Vec<u8> {
    let mut c = Connect::new(V5, id);
    c.keep_alive = 0;
    encode(c)
}

#[tokio::test]
async fn mqtt_split_across_and_packed_into_binary_frames() {
    let (server, addr) = serve(WsSettings::default(), None).await;
    let mut ws = ws(addr, "/any/path").await;
    let mut packets = Packets::new();
    // CONNECT split across three frames, one of a single byte.
    let c = connect("ws-1");
    ws.send(Message::binary(c[..1].to_vec())).await.unwrap();
    ws.send(Message::binary(c[1..5].to_vec())).await.unwrap();
    ws.send(Message::binary(c[5..].to_vec())).await.unwrap();
    match packets.next(&mut ws).await {
        Packet::ConnAck(a) => assert_eq!(a.reason_code, ReasonCode::Success),
        other => panic!("{other:?}"),
    }
    // SUBSCRIBE and a PUBLISH packed into one frame, the PUBLISH's end in the next.
    let mut both = encode(subscribe(1, "w/#", 0));
    let publish = encode(publish("w/1", 0, None, b"hello ws"));
    both.extend_from_slice(&publish[..publish.len() - 3]);
    ws.send(Message::binary(both)).await.unwrap();
    ws.send(Message::binary(publish[publish.len() - 3..].to_vec()))
        .await
        .unwrap();
    assert!(matches!(packets.next(&mut ws).await, Packet::SubAck(_)));
    match packets.next(&mut ws).await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"hello ws"),
        other => panic!("{other:?}"),
    }
    // Pings are answered.
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        matches!(&pong, Some(Ok(Message::Pong(p))) if &p[..] == b"are you there"),
        "{pong:?}"
    );
    let info = server.client("ws-1").unwrap();
    assert!(info.remote.starts_with("127.0.0.1:"), "{}", info.remote);
    ws.close(None).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_write_batch_goes_out_as_one_message() {
    let (server, addr) = serve(WsSettings::default(), None).await;
    let mut sub = ws(addr, "/").await;
    let mut packets = Packets::new();
    sub.send(Message::binary(connect("sub"))).await.unwrap();
    assert!(matches!(packets.next(&mut sub).await, Packet::ConnAck(_)));
    sub.send(Message::binary(encode(subscribe(1, "b", 0))))
        .await
        .unwrap();
    assert!(matches!(packets.next(&mut sub).await, Packet::SubAck(_)));
    let before = packets.messages;
    // 200 messages published in one frame: the subscriber's writer batches them, and each
    // batch is one WebSocket message, so far fewer messages than packets arrive.
    let mut publisher = ws(addr, "/").await;
    let mut burst = connect("pub");
    for _ in 0..200 {
        burst.extend(encode(publish("b", 0, None, b"x")));
    }
    publisher.send(Message::binary(burst)).await.unwrap();
    for _ in 0..200 {
        assert!(matches!(packets.next(&mut sub).await, Packet::Publish(_)));
    }
    let messages = packets.messages - before;
    assert!(messages < 100, "200 packets came in {messages} messages");
    server.shutdown().await;
}

#[tokio::test]
async fn a_text_frame_is_closed_with_1003() {
    let (server, addr) = serve(WsSettings::default(), None).await;
    let mut ws = ws(addr, "/").await;
    ws.send(Message::binary(connect("texter"))).await.unwrap();
    let mut packets = Packets::new();
    assert!(matches!(packets.next(&mut ws).await, Packet::ConnAck(_)));
    ws.send(Message::text("{\"hello\": 1}")).await.unwrap();
    let close = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    match close {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, CloseCode::Unsupported),
        other => panic!("expected close 1003, got {other:?}"),
    }
    server.shutdown().await;
}

/// Sends `request` over plain TCP and returns the status line of the answer.
async fn http(addr: SocketAddr, request: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server kept the connection open")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn upgrades_are_checked_for_path_origin_and_subprotocol() {
    let settings = WsSettings {
        path: Some("/mqtt".into()),
        allowed_origins: vec!["https://good.example".into()],
    };
    let (server, addr) = serve(settings, None).await;
    // Not an upgrade at all.
    let plain = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_eq!(http(addr, plain).await, "HTTP/1.1 400 Bad Request");
    // Garbage, and MQTT itself, on the WebSocket port.
    let mut garbage = connect("lost")
        .iter()
        .map(|&b| b as char)
        .collect::<String>();
    garbage.push_str("\r\n\r\n");
    assert_eq!(http(addr, &garbage).await, "HTTP/1.1 400 Bad Request");
    let ok = "Sec-WebSocket-Protocol: mqtt\r\n";
    assert_eq!(
        http(addr, &upgrade_request("/other", ok)).await,
        "HTTP/1.1 404 Not Found"
    );
    let evil = format!("{ok}Origin: https://evil.example\r\n");
    assert_eq!(
        http(addr, &upgrade_request("/mqtt", &evil)).await,
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        http(addr, &upgrade_request("/mqtt", "")).await,
        "HTTP/1.1 400 Bad Request",
        "no subprotocol"
    );
    let old = upgrade_request("/mqtt", ok).replace("Version: 13", "Version: 8");
    assert_eq!(http(addr, &old).await, "HTTP/1.1 426 Upgrade Required");

    // What passes: the path with a query, an allowed origin or none, mqttv3.1.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let good = Some("https://good.example");
    let mut a = open(tcp, addr, "/mqtt?client=1", "mqtt", good)
        .await
        .unwrap();
    a.send(Message::binary(connect("a"))).await.unwrap();
    assert!(matches!(
        Packets::new().next(&mut a).await,
        Packet::ConnAck(_)
    ));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut b = open(tcp, addr, "/mqtt", "mqttv3.1", None).await.unwrap();
    b.send(Message::binary(connect("b"))).await.unwrap();
    assert!(matches!(
        Packets::new().next(&mut b).await,
        Packet::ConnAck(_)
    ));
    assert_eq!(server.client("b").unwrap().listener.as_ref(), "web");
    server.shutdown().await;
}

#[tokio::test]
async fn a_frame_that_ends_mid_packet_then_close_ends_cleanly() {
    let (server, addr) = serve(WsSettings::default(), None).await;
    let mut bystander = ws(addr, "/").await;
    let mut packets = Packets::new();
    bystander
        .send(Message::binary(connect("bystander")))
        .await
        .unwrap();
    assert!(matches!(
        packets.next(&mut bystander).await,
        Packet::ConnAck(_)
    ));

    let mut cut = ws(addr, "/").await;
    let c = connect("cut");
    cut.send(Message::binary(c[..c.len() / 2].to_vec()))
        .await
        .unwrap();
    cut.close(None).await.unwrap();
    let end =
        tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = cut.next().await {} }).await;
    assert!(
        end.is_ok(),
        "the server did not end the half-sent connection"
    );
    assert!(server.client("cut").is_none());

    bystander
        .send(Message::binary(encode(moco_codec::Packet::PingReq)))
        .await
        .unwrap();
    assert!(matches!(
        packets.next(&mut bystander).await,
        Packet::PingResp
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_upgrade_is_closed_at_the_connect_timeout() {
    let mut server = Server::builder()
        .options(moco_engine::Options {
            connect_timeout: std::time::Duration::from_millis(500),
            ..Default::default()
        })
        .hook(AllowAll)
        .build();
    let spec = Spec::Ws("127.0.0.1:0".parse().unwrap(), None, WsSettings::default());
    let l = AnyListener::bind("web", &spec).await.unwrap();
    let Bound::Ip(addr) = l.bound().unwrap() else {
        panic!("not an IP listener")
    };
    l.add_to(&mut server, "web");
    server.serve();
    // Half a request head, then nothing (slowloris); another client upgrades meanwhile.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut ok = ws(addr, "/").await;
    ok.send(Message::binary(connect("prompt"))).await.unwrap();
    assert!(matches!(
        Packets::new().next(&mut ok).await,
        Packet::ConnAck(_)
    ));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, stalled.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn secure_websocket() {
    let pki = Pki::new();
    let (server, addr) = serve(WsSettings::default(), Some(pki.settings())).await;
    let tls = pki.connect(addr, None, &[b"http/1.1"]).await.unwrap();
    let mut ws = open(tls, addr, "/mqtt", "mqtt", None).await.unwrap();
    ws.send(Message::binary(connect("wss-1"))).await.unwrap();
    let mut packets = Packets::new();
    assert!(matches!(packets.next(&mut ws).await, Packet::ConnAck(_)));
    ws.send(Message::binary(encode(subscribe(1, "s", 0))))
        .await
        .unwrap();
    assert!(matches!(packets.next(&mut ws).await, Packet::SubAck(_)));
    ws.send(Message::binary(encode(publish("s", 0, None, b"secure"))))
        .await
        .unwrap();
    match packets.next(&mut ws).await {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"secure"),
        other => panic!("{other:?}"),
    }
    assert!(server.client("wss-1").is_some());
    // Plain WebSocket to the secure port fails.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(open(tcp, addr, "/", "mqtt", None).await.is_err());
    server.shutdown().await;
}
