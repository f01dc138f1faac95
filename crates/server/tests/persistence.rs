//! Persistence through the real binary: the no-config default keeps its state in
//! `--data-dir`, and `kill -9` in the middle of a load loses no acknowledged message.
//! Loopback only, bounded in messages and time.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{moco, Moco};
use moco_engine::codec::{
    Connect, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode,
    Subscribe,
};
use moco_test_support::blocking::{Client, End};
use moco_test_support::{connect_packet, WAIT};

/// moco without a config file, keeping its state in `dir`.
fn start(dir: &std::path::Path) -> Moco {
    Moco::start_with(
        moco()
            .env_remove("MOCO_IN_MEMORY")
            .args(["--tcp", "127.0.0.1:0", "--data-dir"])
            .arg(dir),
    )
}

fn lasting(id: &str, version: ProtocolVersion) -> Connect {
    let mut c = connect_packet(id, version, 0, false);
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(3600);
    }
    c
}

fn open(addr: SocketAddr, c: Connect) -> Result<Client, End> {
    let version = c.protocol;
    let mut client = Client::open(addr, version);
    client.send(&Packet::from(c));
    match client.recv(WAIT)? {
        Packet::ConnAck(a) if a.reason_code == ReasonCode::Success => Ok(client),
        other => panic!("expected an accepting CONNACK, got {other:?}"),
    }
}

fn write(c: &mut Client, p: &Packet) -> Result<(), End> {
    use std::io::Write;
    let bytes = c.bytes(p);
    c.s.write_all(&bytes).map_err(|e| End::Reset(e.kind()))
}

/// Publishes `name:seq` to `crash/{name}` (retained), one message at a time, from `*next`
/// on, until the broker goes away or `stop` is set; the sequence numbers acknowledged
/// (PUBACK, or PUBCOMP for QoS 2) go to `acked`.
fn publish_until_gone(
    addr: SocketAddr,
    name: &str,
    version: ProtocolVersion,
    qos: QoS,
    next: &mut u32,
    acked: &Mutex<Vec<u32>>,
    stop: &AtomicBool,
) {
    let Ok(mut c) = open(addr, connect_packet(name, version, 0, true)) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let seq = *next;
        *next += 1;
        let pid = (seq % 60_000) as u16 + 1;
        let p = Publish {
            dup: false,
            qos,
            retain: true,
            topic: format!("crash/{name}").into(),
            packet_id: Some(pid),
            payload: format!("{name}:{seq}").into_bytes().into(),
            properties: Default::default(),
        };
        if write(&mut c, &Packet::Publish(p)).is_err() {
            return;
        }
        let done = match qos {
            QoS::AtLeastOnce => c
                .recv_until(WAIT, |p| matches!(p, Packet::PubAck(_)))
                .is_ok(),
            _ => {
                let rec = c.recv_until(WAIT, |p| matches!(p, Packet::PubRec(_)));
                let rel = Packet::PubRel(PubRel {
                    packet_id: pid,
                    reason_code: ReasonCode::Success,
                    properties: Default::default(),
                });
                rec.is_ok()
                    && write(&mut c, &rel).is_ok()
                    && c.recv_until(WAIT, |p| matches!(p, Packet::PubComp(_)))
                        .is_ok()
            }
        };
        if !done {
            return;
        }
        acked.lock().unwrap().push(seq);
    }
}

/// Reads everything `c` is sent until it is quiet for a while, acknowledging each message;
/// returns the payloads in the order received.
fn drain(c: &mut Client) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match c.recv(Duration::from_millis(1500)) {
            Ok(Packet::Publish(p)) => {
                if !p.topic.starts_with("crash/") {
                    continue;
                }
                got.push(String::from_utf8(p.payload.to_vec()).unwrap());
                let pid = p.packet_id.unwrap_or(0);
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => c.send(&Packet::PubAck(PubAck::new(pid))),
                    QoS::ExactlyOnce => c.send(&Packet::PubRec(PubRec {
                        packet_id: pid,
                        reason_code: ReasonCode::Success,
                        properties: Default::default(),
                    })),
                }
            }
            Ok(Packet::PubRel(r)) => c.send(&Packet::PubComp(PubComp {
                packet_id: r.packet_id,
                reason_code: ReasonCode::Success,
                properties: Default::default(),
            })),
            Ok(_) => {}
            Err(End::Timeout) => return got,
            Err(e) => panic!("subscriber lost: {e:?}"),
        }
    }
    got
}

/// The sequence numbers of `name`'s messages among `got`, in order.
fn seqs(got: &[String], name: &str) -> Vec<u32> {
    got.iter()
        .filter_map(|s| s.strip_prefix(&format!("{name}:")))
        .map(|n| n.parse().unwrap())
        .collect()
}

/// A pseudo-random pause in 150..450 ms (the moment of the crash).
fn crash_after(round: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Duration::from_millis(150 + u64::from((nanos / 7 + round * 97) % 300))
}

/// Two publishers (v5 QoS 1, v3.1.1 QoS 2, each message retained) and two persistent
/// subscribers that are away (QoS 1 and QoS 2); moco is killed with SIGKILL at three random
/// moments and restarted each time. In the end every acknowledged message reached both
/// subscribers, in order per publisher, the QoS 2 ones exactly once to the QoS 2 subscriber,
/// and the retained message of each topic is the last acknowledged one or a later one.
#[test]
fn kill_9_in_the_middle_of_a_load_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let m = start(dir.path());
    for (id, qos) in [("away1", 1u8), ("away2", 2)] {
        let mut c = open(m.addr, lasting(id, ProtocolVersion::V5)).unwrap();
        let mut sub = Subscribe {
            packet_id: 1,
            filters: vec![("crash/#".into(), Default::default())],
            properties: Default::default(),
        };
        sub.filters[0].1.qos = QoS::try_from(qos).unwrap();
        c.send(&Packet::Subscribe(sub));
        c.recv_until(WAIT, |p| matches!(p, Packet::SubAck(_)))
            .unwrap();
        c.send(&Packet::Disconnect(Default::default()));
    }
    drop(m);

    let acked: HashMap<&str, Arc<Mutex<Vec<u32>>>> =
        [("p1", Default::default()), ("p2", Default::default())]
            .into_iter()
            .collect();
    let mut next = HashMap::from([("p1", 0u32), ("p2", 0u32)]);
    for round in 0..3 {
        let m = start(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (name, version, qos) in [
            ("p1", ProtocolVersion::V5, QoS::AtLeastOnce),
            ("p2", ProtocolVersion::V311, QoS::ExactlyOnce),
        ] {
            let (addr, acked, stop) = (m.addr, acked[name].clone(), stop.clone());
            let mut from = next[name];
            threads.push(std::thread::spawn(move || {
                publish_until_gone(addr, name, version, qos, &mut from, &acked, &stop);
                (name, from)
            }));
        }
        std::thread::sleep(crash_after(round));
        m.signal("KILL");
        drop(m);
        for t in threads {
            let (name, from) = t.join().unwrap();
            next.insert(name, from);
        }
        stop.store(true, Ordering::Relaxed);
    }

    let m = start(dir.path());
    let mut got = HashMap::new();
    for id in ["away1", "away2"] {
        let mut c = open(m.addr, lasting(id, ProtocolVersion::V5)).unwrap();
        got.insert(id, drain(&mut c));
    }
    for (name, acked) in &acked {
        let acked = acked.lock().unwrap().clone();
        assert!(!acked.is_empty(), "{name} got nothing acknowledged");
        for (id, received) in &got {
            let mine = seqs(received, name);
            for seq in &acked {
                assert!(
                    mine.contains(seq),
                    "{id} lacks acknowledged {name}:{seq} ({} acknowledged, {} received)",
                    acked.len(),
                    mine.len()
                );
            }
            assert!(
                mine.windows(2).all(|w| w[0] <= w[1]),
                "{id}: {name}'s messages out of order"
            );
            if *id == "away2" && *name == "p2" {
                assert!(
                    mine.windows(2).all(|w| w[0] < w[1]),
                    "{id}: a QoS 2 message of {name} delivered twice"
                );
            }
        }
        // The retained message of the topic is the last acknowledged or a later one.
        let mut r = open(
            m.addr,
            connect_packet("reader", ProtocolVersion::V5, 0, true),
        )
        .unwrap();
        let mut sub = Subscribe {
            packet_id: 1,
            filters: vec![(format!("crash/{name}").into(), Default::default())],
            properties: Default::default(),
        };
        sub.filters[0].1.qos = QoS::AtMostOnce;
        r.send(&Packet::Subscribe(sub));
        let Ok(Packet::Publish(p)) = r.recv_until(WAIT, |p| matches!(p, Packet::Publish(_))) else {
            panic!("no retained message on crash/{name}");
        };
        let kept: u32 = String::from_utf8(p.payload.to_vec()).unwrap()[3..]
            .parse()
            .unwrap();
        assert!(
            kept >= *acked.last().unwrap(),
            "retained {name}:{kept} is older than the last acknowledged"
        );
    }
    eprintln!(
        "acknowledged before the crashes: p1 {}, p2 {}; received: away1 {}, away2 {}",
        acked["p1"].lock().unwrap().len(),
        acked["p2"].lock().unwrap().len(),
        got["away1"].len(),
        got["away2"].len()
    );
}

/// Without a config file moco keeps what it acknowledged in --data-dir; --in-memory keeps
/// nothing.
#[test]
fn the_default_keeps_state_in_the_data_dir_and_in_memory_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let retained = |addr: SocketAddr| -> Option<Vec<u8>> {
        let mut r = open(addr, connect_packet("r", ProtocolVersion::V5, 0, true)).unwrap();
        r.send(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![("keep/me".into(), Default::default())],
            properties: Default::default(),
        }));
        r.recv_until(WAIT, |p| matches!(p, Packet::SubAck(_)))
            .unwrap();
        match r.recv(Duration::from_millis(300)) {
            Ok(Packet::Publish(p)) => Some(p.payload.to_vec()),
            _ => None,
        }
    };
    let mut m = start(dir.path());
    m.wait_for_log("kept across restarts");
    let mut c = open(m.addr, connect_packet("w", ProtocolVersion::V5, 0, true)).unwrap();
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "keep/me".into(),
        packet_id: Some(1),
        payload: moco_engine::codec::Bytes::from_static(b"kept"),
        properties: Default::default(),
    }));
    c.recv_until(WAIT, |p| matches!(p, Packet::PubAck(_)))
        .unwrap();
    m.signal("TERM");
    assert!(m.wait_exit(WAIT).success());
    let m = start(dir.path());
    assert_eq!(retained(m.addr).as_deref(), Some(&b"kept"[..]));
    drop(m);
    // A second moco on the same directory is refused, naming it.
    let first = start(dir.path());
    let out = moco()
        .env_remove("MOCO_IN_MEMORY")
        .args(["--tcp", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&*dir.path().to_string_lossy()), "{err}");
    drop(first);
    let m = Moco::start(&["--tcp", "127.0.0.1:0", "--in-memory"]);
    assert_eq!(retained(m.addr), None);
}

/// A crash cuts connections without DISCONNECT: the will of a client connected at that
/// moment goes out when moco starts again (here a v3.1.1 clean session, whose will a
/// persistent subscriber that is away receives on its return).
#[test]
fn the_will_of_a_client_cut_off_by_a_crash_is_sent_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let m = start(dir.path());
    let mut watcher = open(m.addr, lasting("watcher", ProtocolVersion::V5)).unwrap();
    let mut sub = Subscribe {
        packet_id: 1,
        filters: vec![("status/#".into(), Default::default())],
        properties: Default::default(),
    };
    sub.filters[0].1.qos = QoS::AtLeastOnce;
    watcher.send(&Packet::Subscribe(sub));
    watcher
        .recv_until(WAIT, |p| matches!(p, Packet::SubAck(_)))
        .unwrap();
    watcher.send(&Packet::Disconnect(Default::default()));

    let mut c = connect_packet("dying", ProtocolVersion::V311, 0, true);
    c.will = Some(moco_engine::codec::LastWill {
        topic: "status/dying".into(),
        payload: moco_engine::codec::Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    let mut dying = open(m.addr, c).unwrap();
    // Its PUBACK says that everything recorded before it, its will among it, is stored.
    dying.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "elsewhere".into(),
        packet_id: Some(1),
        payload: moco_engine::codec::Bytes::from_static(b"x"),
        properties: Default::default(),
    }));
    dying
        .recv_until(WAIT, |p| matches!(p, Packet::PubAck(_)))
        .unwrap();
    m.signal("KILL");
    drop(m);

    let m = start(dir.path());
    let mut watcher = open(m.addr, lasting("watcher", ProtocolVersion::V5)).unwrap();
    match watcher.recv_until(WAIT, |p| matches!(p, Packet::Publish(_))) {
        Ok(Packet::Publish(p)) => {
            assert_eq!((&*p.topic, &p.payload[..]), ("status/dying", &b"gone"[..]))
        }
        other => panic!("no will after the restart: {other:?}"),
    }
    drop(m);
}
