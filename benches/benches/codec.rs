//! Criterion benches of moco-codec against the codec of the `rumqttc` crate, on the same bytes.
//!
//! Groups are named `decode/<packet>_<version>` and `encode/<packet>_<version>`, each with a
//! `moco` and a `rumqttc` function, so the pair sits side by side in the report. Before timing,
//! each case checks that both codecs understand the other's bytes (and, where the encodings
//! are canonical, that they produce identical bytes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, Bencher, Criterion, Throughput};
use moco_codec as moco;
use moco_codec::ProtocolVersion;
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes::v5 as r5;

const TOPIC: &str = "sensors/building-7/floor-3/room-12/temperature";
const MAX: usize = 1 << 20;

/// One benchmark case: the same packet in both models, and moco's encoding of it.
struct Case {
    name: String,
    version: ProtocolVersion,
    moco: moco::Packet,
    rumqttc: Rumqttc,
    bytes: Bytes,
}

#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // a bench fixture, built once
enum Rumqttc {
    V4(r4::Packet),
    V5(r5::Packet),
}

impl Rumqttc {
    fn read(&self, buf: &mut BytesMut) -> Rumqttc {
        match self {
            Rumqttc::V4(_) => Rumqttc::V4(r4::Packet::read(buf, MAX).expect("rumqttc v4 decode")),
            Rumqttc::V5(_) => {
                Rumqttc::V5(r5::Packet::read(buf, Some(MAX as u32)).expect("rumqttc v5 decode"))
            }
        }
    }

    fn write(&self, buf: &mut BytesMut) -> usize {
        match self {
            Rumqttc::V4(p) => p.write(buf, MAX).expect("rumqttc v4 encode"),
            Rumqttc::V5(p) => p.write(buf, Some(MAX as u32)).expect("rumqttc v5 encode"),
        }
    }

    fn eq(&self, other: &Rumqttc) -> bool {
        match (self, other) {
            (Rumqttc::V4(a), Rumqttc::V4(b)) => a == b,
            (Rumqttc::V5(a), Rumqttc::V5(b)) => a == b,
            _ => false,
        }
    }
}

fn publish(version: ProtocolVersion, size: usize) -> Case {
    let payload = Bytes::from(vec![0xA5; size]);
    let m = moco::Packet::Publish(moco::Publish {
        qos: moco::QoS::AtLeastOnce,
        packet_id: Some(10),
        ..moco::Publish::new(TOPIC, payload.clone())
    });
    let r = match version {
        ProtocolVersion::V5 => {
            let mut p = r5::Publish::new(
                TOPIC,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                payload,
                None,
            );
            p.pkid = 10;
            Rumqttc::V5(r5::Packet::Publish(p))
        }
        _ => {
            let mut p = r4::Publish::new(TOPIC, rumqttc::QoS::AtLeastOnce, payload.to_vec());
            p.pkid = 10;
            Rumqttc::V4(r4::Packet::Publish(p))
        }
    };
    let label = if size >= 1024 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    };
    case(format!("publish_{label}"), version, m, r, true)
}

fn connect(version: ProtocolVersion) -> Case {
    let mut c = moco::Connect::new(version, "moco-bench-client-000123");
    c.keep_alive = 30;
    c.username = Some("bench-user".into());
    c.password = Some(Bytes::from_static(b"correct horse battery staple"));
    c.will = Some(moco::LastWill {
        topic: "clients/moco-bench-client-000123/status".into(),
        payload: Bytes::from_static(b"offline"),
        qos: moco::QoS::AtLeastOnce,
        retain: true,
        properties: Default::default(),
    });
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(3600);
        c.properties.receive_maximum = Some(100);
    }
    let r = match version {
        ProtocolVersion::V5 => {
            let props = r5::ConnectProperties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(100),
                ..r5::ConnectProperties::new()
            };
            let conn = r5::Connect {
                keep_alive: 30,
                client_id: "moco-bench-client-000123".into(),
                clean_start: true,
                properties: Some(props),
            };
            let will = r5::LastWill::new(
                "clients/moco-bench-client-000123/status",
                "offline",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                true,
                None,
            );
            let login = r5::Login::new("bench-user", "correct horse battery staple");
            Rumqttc::V5(r5::Packet::Connect(conn, Some(will), Some(login)))
        }
        _ => {
            let mut conn = r4::Connect::new("moco-bench-client-000123");
            conn.keep_alive = 30;
            conn.clean_session = true;
            conn.last_will = Some(r4::LastWill::new(
                "clients/moco-bench-client-000123/status",
                "offline",
                rumqttc::QoS::AtLeastOnce,
                true,
            ));
            conn.login = Some(r4::Login::new("bench-user", "correct horse battery staple"));
            Rumqttc::V4(r4::Packet::Connect(conn))
        }
    };
    // Property order may differ between the two encoders in v5; v3.1.1 is canonical.
    case(
        "connect".into(),
        version,
        moco::Packet::from(c),
        r,
        !version.is_v5(),
    )
}

fn subscribe(version: ProtocolVersion) -> Case {
    let filters = [
        ("sensors/+/floor-3/+/temperature", 1u8),
        ("alerts/#", 2),
        ("clients/moco-bench-client-000123/commands", 0),
    ];
    let qos = |q: u8| moco::QoS::try_from(q).unwrap();
    let m = moco::Packet::Subscribe(moco::Subscribe {
        packet_id: 7,
        filters: filters
            .iter()
            .map(|&(f, q)| (f.into(), moco::SubscriptionOptions::new(qos(q))))
            .collect(),
        properties: Default::default(),
    });
    let r = match version {
        ProtocolVersion::V5 => {
            let q5 = |q: u8| match q {
                0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
            };
            let mut s = r5::Subscribe::new_many(
                filters.iter().map(|&(f, q)| r5::Filter::new(f, q5(q))),
                None,
            );
            s.pkid = 7;
            Rumqttc::V5(r5::Packet::Subscribe(s))
        }
        _ => {
            let q4 = |q: u8| match q {
                0 => rumqttc::QoS::AtMostOnce,
                1 => rumqttc::QoS::AtLeastOnce,
                _ => rumqttc::QoS::ExactlyOnce,
            };
            let mut s = r4::Subscribe::new_many(
                filters
                    .iter()
                    .map(|&(f, q)| r4::SubscribeFilter::new(f.to_string(), q4(q))),
            );
            s.pkid = 7;
            Rumqttc::V4(r4::Packet::Subscribe(s))
        }
    };
    case("subscribe".into(), version, m, r, true)
}

fn case(name: String, version: ProtocolVersion, m: moco::Packet, r: Rumqttc, same: bool) -> Case {
    let bytes = m.to_bytes(version).expect("moco encode");
    // rumqttc understands moco's bytes ...
    let decoded = r.read(&mut BytesMut::from(&bytes[..]));
    assert!(
        decoded.eq(&r),
        "{name}: rumqttc decodes moco's bytes to another packet"
    );
    // ... and moco understands rumqttc's.
    let mut theirs = BytesMut::new();
    r.write(&mut theirs);
    let back = moco::decode_packet(theirs.clone().freeze(), version).expect("moco decode");
    assert_eq!(
        back, m,
        "{name}: moco decodes rumqttc's bytes to another packet"
    );
    if same {
        assert_eq!(&theirs[..], &bytes[..], "{name}: encodings differ");
    }
    let v = match version {
        ProtocolVersion::V5 => "v5",
        _ => "v311",
    };
    Case {
        name: format!("{name}_{v}"),
        version,
        moco: m,
        rumqttc: r,
        bytes,
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        out.push(publish(v, 16));
        out.push(publish(v, 4096));
        out.push(connect(v));
        out.push(subscribe(v));
    }
    out
}

/// Times decoding one packet at a time from a read buffer that holds up to [`BATCH`] packets
/// back to back, as a broker's read buffer does; building the buffer is not timed, dropping the
/// decoded packet is. Reported times are per packet.
fn decode_from_stream(
    b: &mut Bencher<'_>,
    bytes: &Bytes,
    mut decode_one: impl FnMut(&mut BytesMut),
) {
    let stream = bytes.repeat(BATCH);
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(BATCH as u64);
            let mut buf = BytesMut::from(&stream[..n as usize * bytes.len()]);
            let start = Instant::now();
            for _ in 0..n {
                decode_one(&mut buf);
            }
            total += start.elapsed();
            left -= n;
        }
        total
    })
}

const BATCH: usize = 32;

fn decode(c: &mut Criterion) {
    for case in cases() {
        let mut g = c.benchmark_group(format!("decode/{}", case.name));
        g.throughput(Throughput::Bytes(case.bytes.len() as u64));
        let v = case.version;
        g.bench_function("moco", |b| {
            let mut d = moco::Decoder::with_version(MAX as u32, v);
            decode_from_stream(b, &case.bytes, |buf| {
                black_box(d.decode(buf).unwrap().unwrap());
            })
        });
        g.bench_function("rumqttc", |b| {
            decode_from_stream(b, &case.bytes, |buf| {
                black_box(case.rumqttc.read(buf));
            })
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    for case in cases() {
        let mut g = c.benchmark_group(format!("encode/{}", case.name));
        g.throughput(Throughput::Bytes(case.bytes.len() as u64));
        let v = case.version;
        let mut buf = BytesMut::with_capacity(8192);
        g.bench_function("moco", |b| {
            b.iter(|| {
                buf.clear();
                black_box(case.moco.encode(v, &mut buf).unwrap())
            })
        });
        g.bench_function("rumqttc", |b| {
            b.iter(|| {
                buf.clear();
                black_box(case.rumqttc.write(&mut buf))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, decode, encode);

/// `CODEC_COUNT=<iterations> CODEC_CASE=<group>/<impl>` runs one case that many times without
/// criterion, for an instruction count that a busy machine cannot disturb:
/// `valgrind --tool=callgrind --toggle-collect='*measured*' target/.../codec-<hash>`
/// (the total Ir divided by the iterations is the per-packet figure).
fn main() {
    if let (Ok(n), Ok(name)) = (std::env::var("CODEC_COUNT"), std::env::var("CODEC_CASE")) {
        count(n.parse().expect("CODEC_COUNT is a number"), &name);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

fn count(iters: usize, name: &str) {
    let (op, rest) = name
        .split_once('/')
        .expect("CODEC_CASE is <op>/<case>/<impl>");
    let (case_name, implementation) = rest
        .rsplit_once('/')
        .expect("CODEC_CASE is <op>/<case>/<impl>");
    let case = cases()
        .into_iter()
        .find(|c| c.name == case_name)
        .expect("no such case");
    let moco = implementation == "moco";
    match op {
        "decode" => {
            let stream = case.bytes.repeat(BATCH);
            let mut d = moco::Decoder::with_version(MAX as u32, case.version);
            for _ in 0..iters.div_ceil(BATCH) {
                let mut buf = BytesMut::from(&stream[..]);
                if moco {
                    measured_moco_decode(&mut d, &mut buf);
                } else {
                    measured_rumqttc_decode(&case.rumqttc, &mut buf);
                }
            }
        }
        _ => {
            let mut buf = BytesMut::with_capacity(8192);
            for _ in 0..iters {
                buf.clear();
                if moco {
                    measured_moco_encode(&case.moco, case.version, &mut buf);
                } else {
                    measured_rumqttc_encode(&case.rumqttc, &mut buf);
                }
            }
        }
    }
}

#[inline(never)]
fn measured_moco_decode(d: &mut moco::Decoder, buf: &mut BytesMut) {
    // Both harnesses inspect the result in place (no `unwrap` moves of the packet), so only
    // the codecs' own work is counted.
    loop {
        match d.decode(buf) {
            Ok(Some(p)) => {
                black_box(&p);
            }
            Ok(None) => break,
            Err(e) => panic!("moco decode: {e}"),
        }
    }
}

#[inline(never)]
fn measured_rumqttc_decode(r: &Rumqttc, buf: &mut BytesMut) {
    while !buf.is_empty() {
        match r {
            Rumqttc::V4(_) => match r4::Packet::read(buf, MAX) {
                Ok(p) => {
                    black_box(&p);
                }
                Err(e) => panic!("rumqttc v4 decode: {e}"),
            },
            Rumqttc::V5(_) => match r5::Packet::read(buf, Some(MAX as u32)) {
                Ok(p) => {
                    black_box(&p);
                }
                Err(e) => panic!("rumqttc v5 decode: {e}"),
            },
        }
    }
}

#[inline(never)]
fn measured_moco_encode(p: &moco::Packet, v: ProtocolVersion, buf: &mut BytesMut) {
    black_box(p.encode(v, buf).unwrap());
}

#[inline(never)]
fn measured_rumqttc_encode(r: &Rumqttc, buf: &mut BytesMut) {
    black_box(r.write(buf));
}
