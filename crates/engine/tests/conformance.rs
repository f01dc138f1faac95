//! What third-party client test suites rely on, driven the way they drive a broker: blocking
//! sockets from plain threads against a server on its own multi-threaded runtime.
//!
//! - A SUBSCRIBE written before another client's PUBLISH is in effect for it, also when both
//!   connections were quiet (issue 16.1; see `order.rs` in the engine).
//! - A server DISCONNECT, or a refusing CONNACK, reaches a client that is still writing
//!   (issue 16.2; see `linger` in the driver).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use moco_codec::{
    Packet, ProtocolVersion, QoS, ReasonCode, RetainHandling, Subscribe, SubscriptionOptions,
};
use moco_engine::{Capabilities, Options, Server};
use moco_test_support::blocking::{Client, End};
use moco_test_support::{connect_packet, publish, start, WAIT};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A server on a runtime of its own with two workers, as the `moco` binary runs on a 2-core
/// machine; the clients are plain threads.
struct Broker {
    rt: tokio::runtime::Runtime,
    server: Option<Server>,
    addr: SocketAddr,
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// One broker at a time: the ordering test needs a quiet machine, not one that another test
/// of this file floods.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Broker {
    fn start(options: Options) -> Broker {
        let serial = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (server, addr) = rt.block_on(start(options));
        Broker {
            rt,
            server: Some(server),
            addr,
            _serial: serial,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

fn no_local_subscribe(pid: u16, filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid,
        filters: vec![(
            filter.into(),
            SubscriptionOptions {
                qos,
                no_local: true,
                retain_as_published: false,
                retain_handling: RetainHandling::SendAtSubscribe,
            },
        )],
        properties: Default::default(),
    })
}

/// Issue 16.1: B writes SUBSCRIBE and does not wait for the SUBACK; A, quiet as well,
/// publishes 1 ms later. Both connections were quiet for 0.6 s first, so the broker's
/// workers are asleep: the case where a later PUBLISH used to be routed first.
#[test]
fn a_subscribe_written_first_is_in_effect_for_a_later_publish_from_a_quiet_connection() {
    const ROUNDS: usize = 5;
    const PAIRS: usize = 40;
    let broker = Broker::start(Options::default());
    let addr = broker.addr;
    let mut missed = Vec::new();
    for round in 0..ROUNDS {
        let quiet = Arc::new(Barrier::new(PAIRS));
        let tries: Vec<_> = (0..PAIRS)
            .map(|i| {
                let quiet = quiet.clone();
                std::thread::spawn(move || {
                    let topic = format!("order/{round}/{i}");
                    let mut a = Client::connect(addr, &format!("a-{round}-{i}"));
                    let mut b = Client::connect(addr, &format!("b-{round}-{i}"));
                    // A is subscribed itself (no-local), as in a request/response exchange.
                    a.send(&no_local_subscribe(1, &topic, QoS::AtLeastOnce));
                    assert!(matches!(a.recv(WAIT), Ok(Packet::SubAck(_))));
                    quiet.wait();
                    std::thread::sleep(Duration::from_millis(600));
                    b.send(&no_local_subscribe(1, &topic, QoS::ExactlyOnce));
                    std::thread::sleep(Duration::from_millis(1));
                    a.send(&Packet::Publish(publish(&topic, 1, Some(7), b"request")));
                    let got =
                        b.recv_until(Duration::from_secs(5), |p| matches!(p, Packet::Publish(_)));
                    (topic, got.is_ok())
                })
            })
            .collect();
        for t in tries {
            let (topic, ok) = t.join().unwrap();
            if !ok {
                missed.push(topic);
            }
        }
    }
    assert!(
        missed.is_empty(),
        "{} of {} messages published after a SUBSCRIBE were not delivered: {missed:?}",
        missed.len(),
        ROUNDS * PAIRS
    );
}

/// Runs `tries` connections, ten at a time. Each writes `first`, then `flood` packets one
/// after the other without waiting for anything, looking (without blocking) between two writes
/// for what the broker sent, as a single-threaded client library does. A write that fails
/// ends the try, as it ends such a library's connection: the broker must keep the connection
/// writable until the client has read the packet `want` accepts. Returns how each try ended:
/// that packet, followed by the end of the stream, or what came instead.
fn flood_until(
    addr: SocketAddr,
    version: ProtocolVersion,
    tries: usize,
    first: impl Fn(usize) -> Vec<Packet> + Sync,
    flood: impl Fn(u16) -> Packet + Sync,
    want: impl Fn(&Packet) -> bool + Sync,
) -> Vec<Result<Packet, End>> {
    const PARALLEL: usize = 10;
    let mut ends = Vec::new();
    for batch in (0..tries).collect::<Vec<_>>().chunks(PARALLEL) {
        std::thread::scope(|scope| {
            let runs: Vec<_> = batch
                .iter()
                .map(|&i| {
                    let (first, flood, want) = (&first, &flood, &want);
                    scope.spawn(move || {
                        let mut c = Client::open(addr, version);
                        let mut out = BytesMut::new();
                        for p in first(i) {
                            out.extend_from_slice(&c.bytes(&p));
                        }
                        c.s.set_nonblocking(true).unwrap();
                        let got = flood_and_look(&mut c, out, flood, want);
                        c.s.set_nonblocking(false).unwrap();
                        // The packet, then the end of the stream (not a reset).
                        got.and_then(|p| match c.recv_until(WAIT, |_| false) {
                            Err(End::Closed) => Ok(p),
                            Err(other) => Err(other),
                            Ok(_) => unreachable!("nothing is wanted"),
                        })
                    })
                })
                .collect();
            ends.extend(runs.into_iter().map(|r| r.join().unwrap()));
        });
    }
    ends
}

/// The loop of [`flood_until`] on a non-blocking socket, bounded by [`WAIT`].
fn flood_and_look(
    c: &mut Client,
    mut out: BytesMut,
    flood: impl Fn(u16) -> Packet,
    want: impl Fn(&Packet) -> bool,
) -> Result<Packet, End> {
    let deadline = Instant::now() + WAIT;
    let mut chunk = [0u8; 16 * 1024];
    let mut n = 0u16;
    while Instant::now() < deadline {
        if out.is_empty() {
            n = n.wrapping_add(1).max(1);
            out = c.bytes(&flood(n));
        }
        match c.s.write(&out) {
            Ok(k) => {
                let _ = out.split_to(k);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Err(e) => return Err(End::Reset(e.kind())),
        }
        match c.s.read(&mut chunk) {
            Ok(0) => return Err(End::Closed),
            Ok(k) => c.buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(End::Reset(e.kind())),
        }
        while let Some(p) = c.dec.decode(&mut c.buf).unwrap() {
            if want(&p) {
                return Ok(p);
            }
        }
    }
    Err(End::Timeout)
}

fn assert_all(ends: &[Result<Packet, End>], what: &str, check: impl Fn(&Packet) -> bool) {
    let bad: Vec<_> = ends
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.as_ref().is_ok_and(&check))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} tries did not read it: {bad:?}",
        bad.len(),
        ends.len()
    );
}

fn disconnect_reason(p: &Packet) -> Option<ReasonCode> {
    match p {
        Packet::Disconnect(d) => Some(d.reason_code),
        _ => None,
    }
}

/// [`flood_until`] with 100 v5 clients that connect and then flood `flood` packets until they
/// read a DISCONNECT, which must carry `code`.
fn flood_until_disconnect(
    options: Options,
    flood: impl Fn(u16) -> Packet + Sync,
    code: ReasonCode,
) {
    let broker = Broker::start(options);
    let ends = flood_until(
        broker.addr,
        V5,
        100,
        |i| {
            vec![Packet::from(connect_packet(
                &format!("flood-{i}"),
                V5,
                30,
                true,
            ))]
        },
        flood,
        |p| matches!(p, Packet::Disconnect(_)),
    );
    assert_all(&ends, &format!("DISCONNECT {code:?}"), |p| {
        disconnect_reason(p) == Some(code)
    });
}

/// Issue 16.2: a client floods QoS 2 PUBLISHes past the receive maximum without reading (so
/// without PUBREL): it reads DISCONNECT 0x93, then the end of the stream, never a reset.
#[test]
fn receive_maximum_exceeded_reaches_a_client_that_keeps_writing() {
    flood_until_disconnect(
        Options {
            capabilities: Capabilities {
                receive_maximum: 10,
                ..Default::default()
            },
            ..Default::default()
        },
        |n| Packet::Publish(publish("flood", 2, Some(n), &[0u8; 64])),
        ReasonCode::ReceiveMaximumExceeded,
    );
}

/// Issue 16.2: a client keeps writing PUBLISHes over the maximum packet size: it reads
/// DISCONNECT 0x95 (packet too large).
#[test]
fn packet_too_large_reaches_a_client_that_keeps_writing() {
    flood_until_disconnect(
        Options {
            capabilities: Capabilities {
                maximum_packet_size: 1000,
                ..Default::default()
            },
            ..Default::default()
        },
        |_| Packet::Publish(publish("large", 0, None, &[7u8; 2000])),
        ReasonCode::PacketTooLarge,
    );
}

/// Issue 16.2: a CONNECT that is refused, followed at once by more packets (the client does
/// not wait for CONNACK): the refusing CONNACK is read, v5 and v3.1.1 alike.
#[test]
fn a_refusing_connack_reaches_a_client_that_keeps_writing() {
    let broker = Broker::start(Options::default());
    for (version, code) in [
        // An authentication method without an enhanced-auth hook: 0x8C.
        (V5, ReasonCode::BadAuthenticationMethod),
        // v3.1.1, an empty client id without clean session: return code 2.
        (ProtocolVersion::V311, ReasonCode::ClientIdentifierNotValid),
    ] {
        let ends = flood_until(
            broker.addr,
            version,
            100,
            |_| {
                let mut c = connect_packet("", version, 30, version == V5);
                if version == V5 {
                    c.properties.authentication_method = Some("nobody-knows".into());
                }
                vec![Packet::from(c)]
            },
            |n| Packet::Publish(publish("refused", 1, Some(n), &[1u8; 64])),
            |p| matches!(p, Packet::ConnAck(_)),
        );
        assert_all(
            &ends,
            &format!("{version:?} CONNACK {code:?}"),
            |p| matches!(p, Packet::ConnAck(a) if a.reason_code == code),
        );
    }
}
