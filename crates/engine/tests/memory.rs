//! An idle connection costs the broker about 2.5 KiB of heap (one subscription included), not
//! mochi's ~150 KiB of preallocated channels: no read or write buffer is held while idle, no
//! writer task runs while there are only replies to send (the reader writes those and gives
//! the control queue back once they are out), and the connection's task holds no handshake
//! state. And messages waiting for a subscriber that does not read do not keep the publisher's
//! read buffers alive.
//!
//! The tests count the whole process's heap, so they run one at a time (`SERIAL`).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::BytesMut;
use moco_codec::{Packet, ProtocolVersion};
use moco_engine::Options;
use moco_test_support::blocking::read_until;
use moco_test_support::*;

struct Tracking;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One blocking client: CONNECT (v5, keep-alive 60), SUBSCRIBE to one filter, PINGREQ; each
/// answered. A std socket holds no heap, so what the test counts is the broker's.
fn idle_client(addr: std::net::SocketAddr, id: &str, filter: &str) -> std::net::TcpStream {
    let mut out = BytesMut::new();
    Packet::from(connect_packet(id, ProtocolVersion::V5, 60, true))
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    Packet::Subscribe(subscribe(1, filter, 1))
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    Packet::PingReq
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&out).unwrap();
    // CONNACK, SUBACK and PINGRESP, whatever their sizes: read until the PINGRESP (0xD0 0x00)
    // ends the stream so far.
    let mut got = Vec::new();
    let mut chunk = [0u8; 256];
    while !got.ends_with(&[0xD0, 0x00]) {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "broker closed the connection");
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got[0], 0x20, "first answer is a CONNACK");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_costs_under_2700_bytes() {
    let _serial = SERIAL.lock().await;
    const N: usize = 200;
    let (server, addr) = start(Options::default()).await;
    // Warm up: one connection, so lazily built runtime structures are not counted.
    let warm = tokio::task::spawn_blocking(move || idle_client(addr, "warm", "warm"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut clients = Vec::with_capacity(N);
    let before = LIVE.load(Ordering::Relaxed);
    let mut clients = tokio::task::spawn_blocking(move || {
        for i in 0..N {
            clients.push(idle_client(addr, &format!("idle{i}"), &format!("idle/{i}")));
        }
        clients
    })
    .await
    .unwrap();
    // Let the connections go idle: buffers and the control queue are given back as soon as
    // the replies are out (a writer task, which none of these has, would keep its batch until
    // the connection has been quiet for 100-200 ms).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let after = LIVE.load(Ordering::Relaxed);
    // The broker's side only (plus the test's Vec, allocated before): tasks, client state,
    // registry entry, socket registration and one subscription each.
    let per_connection = (after - before) / N as isize;
    eprintln!("broker heap per idle connection: {per_connection} bytes");
    assert!(
        per_connection < 2700,
        "an idle connection costs {per_connection} bytes"
    );
    // Still alive and served: each answers a PINGREQ.
    for c in clients.iter_mut().take(3) {
        c.write_all(&[0xC0, 0x00]).unwrap();
        let mut b = [0u8; 2];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b, [0xD0, 0x00]);
    }
    drop(clients);
    drop(warm);
    server.shutdown().await;
}

/// Connects `id` (v5, receive maximum `receive_max`) and subscribes it to `filter` at `qos`;
/// returns the stream after SUBACK.
fn subscriber(
    addr: std::net::SocketAddr,
    id: &str,
    filter: &str,
    qos: u8,
    receive_max: u16,
) -> std::net::TcpStream {
    let mut out = BytesMut::new();
    let mut c = connect_packet(id, ProtocolVersion::V5, 0, true);
    c.properties.receive_maximum = Some(receive_max);
    Packet::from(c)
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    Packet::Subscribe(subscribe(1, filter, qos))
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&out).unwrap();
    read_until(&mut s, ProtocolVersion::V5, |p| {
        matches!(p, Packet::SubAck(_))
    });
    s
}

fn is_publish_of(p: &Packet, payload: &[u8]) -> bool {
    matches!(p, Packet::Publish(m) if &m.payload[..] == payload)
}

fn encoded(topic: &str, qos: u8, payload: Vec<u8>) -> BytesMut {
    let mut m = publish(topic, qos, (qos > 0).then_some(1), b"");
    m.payload = payload.into();
    let mut out = BytesMut::new();
    Packet::Publish(m)
        .encode(ProtocolVersion::V5, &mut out)
        .unwrap();
    out
}

/// A subscriber that stops acknowledging gets one small QoS 1 message out of every 64 KiB a
/// busy publisher sends: the broker holds them (inflight up to its receive maximum, then
/// queued). Each would keep the publisher's whole read buffer alive (~64 KiB for ~40 bytes);
/// past a bound they are copied out of it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_held_for_a_stuck_subscriber_do_not_pin_read_buffers() {
    let _serial = SERIAL.lock().await;
    const BATCHES: usize = 200;
    let (server, addr) = start(Options::default()).await;
    let (grown, published) = tokio::task::spawn_blocking(move || {
        let stuck = subscriber(addr, "stuck", "pin/a", 1, 10);
        let mut all = subscriber(addr, "all", "pin/#", 0, 100);
        let mut p = std::net::TcpStream::connect(addr).unwrap();
        let mut out = BytesMut::new();
        Packet::from(connect_packet("pub", ProtocolVersion::V5, 0, true))
            .encode(ProtocolVersion::V5, &mut out)
            .unwrap();
        p.write_all(&out).unwrap();
        p.write_all(&encoded("pin/b", 0, b"ready".to_vec()))
            .unwrap();
        read_until(&mut all, ProtocolVersion::V5, |p| {
            is_publish_of(p, b"ready")
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        let before = LIVE.load(Ordering::Relaxed);
        // Each ~64 KiB write: 63 messages for the reader of everything, 1 for the stuck one.
        let mut batch = BytesMut::new();
        for _ in 0..63 {
            batch.extend_from_slice(&encoded("pin/b", 0, vec![2; 1000]));
        }
        batch.extend_from_slice(&encoded("pin/a", 1, b"tiny".to_vec()));
        for _ in 0..BATCHES {
            p.write_all(&batch).unwrap();
        }
        p.write_all(&encoded("pin/b", 0, b"done".to_vec())).unwrap();
        read_until(&mut all, ProtocolVersion::V5, |p| is_publish_of(p, b"done"));
        std::thread::sleep(std::time::Duration::from_millis(200));
        let grown = LIVE.load(Ordering::Relaxed) - before;
        drop((stuck, all, p));
        (grown, BATCHES * batch.len())
    })
    .await
    .unwrap();
    eprintln!("heap grown by {grown} bytes after {published} bytes published");
    // What stays is 200 small held messages and the queues' growth; the buffers they came in
    // would be ~13 MB.
    assert!(
        grown < 1 << 20,
        "{grown} bytes still allocated for {BATCHES} held small messages"
    );
    server.shutdown().await;
}
