//! What an idle hook costs the hot path: one PUBLISH routed to 100 subscribers (each
//! delivery drained from the subscriber's state and encoded, as the writer does), with
//!
//! * `zero_hooks` vs `noop_hook`: no hook at all vs one hook that provides only `OnStarted`,
//!   publishing through the inline client (no ACL, so no hook is needed);
//! * `allow_all` vs `allow_all_noop`: the client path (`Broker::publish`, ACL checked by
//!   [`AllowAll`]) without and with the same no-op hook.
//!
//! The hook stack skips an event nobody provides with one bit test, so each pair must be
//! within noise. `HOOKS_COUNT=<rounds> HOOKS_CASE=<case>` runs one case without criterion, for
//! an instruction count a busy machine cannot disturb:
//! `valgrind --tool=callgrind --toggle-collect='*measured*' target/release/deps/hooks-<hash>`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use moco_codec::{ProtocolVersion, QoS};
use moco_engine::{AllowAll, Broker, ClientHandle, ClientInfo, ConnectOutcome, Event, Hook};
use moco_engine::{Hooks, Options};

mod common;

const SUBSCRIBERS: usize = 100;

/// Provides only `OnStarted`.
struct NoOp;

impl Hook for NoOp {
    fn id(&self) -> &str {
        "noop"
    }
    fn provides(&self, e: Event) -> bool {
        e == Event::OnStarted
    }
}

struct Setup {
    broker: Arc<Broker>,
    subs: Vec<Arc<ClientHandle>>,
    publisher: ClientInfo,
    inline: bool,
}

fn setup(case: &str) -> Setup {
    let (allow, noop) = match case {
        "zero_hooks" => (false, false),
        "noop_hook" => (false, true),
        "allow_all" => (true, false),
        "allow_all_noop" => (true, true),
        other => panic!("no case {other}"),
    };
    let mut hooks = Hooks::new();
    if allow {
        hooks.add(Arc::new(AllowAll));
    }
    if noop {
        hooks.add(Arc::new(NoOp));
    }
    let broker = Arc::new(Broker::new(
        Options {
            inline_client: true,
            ..Default::default()
        },
        hooks,
    ));
    let now = Instant::now();
    let mut subs = Vec::new();
    for i in 0..=SUBSCRIBERS {
        let c = common::connect(format!("c{i}"));
        let h = match broker.connect(now, &c, Arc::from("bench"), Arc::from("bench")) {
            ConnectOutcome::Accepted(h) => h,
            ConnectOutcome::Refused(_) => {
                // The hook-less broker refuses every CONNECT; restore a session instead
                // (what a storage hook does), which needs no authentication.
                broker
                    .restore_session(
                        now,
                        &c.client_id,
                        u32::MAX,
                        &[(
                            "bench/+/t".into(),
                            moco_engine::topic::SubscriptionOptions::with_qos(0),
                        )],
                        &[],
                    )
                    .unwrap();
                let h = broker.client(&c.client_id).unwrap();
                // Attached: a connected client, as far as delivery goes.
                let session = std::mem::take(&mut h.state.lock().session);
                *h.state.lock() = moco_engine::state::ClientState::new(
                    c.client_id.clone(),
                    limits(),
                    session,
                    now,
                );
                subs.push(h);
                continue;
            }
        };
        common::drain(&h, now);
        if i < SUBSCRIBERS {
            common::subscribe(&broker, now, &h);
        }
        subs.push(h);
    }
    let publisher = subs.pop().unwrap().info.clone();
    Setup {
        broker,
        subs,
        publisher,
        inline: !allow,
    }
}

fn limits() -> moco_engine::state::ConnLimits {
    moco_engine::state::ConnLimits {
        version: ProtocolVersion::V5,
        keep_alive: 0,
        send_quota: 1024,
        receive_maximum: 1024,
        topic_alias_maximum: 0,
        client_maximum_packet_size: 0,
        maximum_qos: QoS::ExactlyOnce,
        retain_available: true,
        max_pending: 8192,
        connect_expiry_zero: false,
        client_topic_alias_maximum: 0,
    }
}

#[inline(never)]
fn measured_round(s: &Setup, payload: &Bytes, out: &mut BytesMut) -> usize {
    let now = Instant::now();
    if s.inline {
        s.broker
            .inline_publish("bench/x/t", payload.clone(), QoS::AtMostOnce, false)
            .unwrap();
    } else {
        s.broker
            .publish(now, &s.publisher, common::publish(payload));
    }
    common::drain_and_encode(&s.subs, now, out)
}

const CASES: [&str; 4] = ["zero_hooks", "noop_hook", "allow_all", "allow_all_noop"];

fn hooks(c: &mut Criterion) {
    let payload = Bytes::from(vec![0u8; 64]);
    let mut group = c.benchmark_group("publish_route_100");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    let setups: Vec<_> = CASES.iter().map(|c| (c, setup(c))).collect();
    let mut out = BytesMut::with_capacity(4096);
    for (name, s) in &setups {
        assert_eq!(measured_round(s, &payload, &mut out), SUBSCRIBERS, "{name}");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(measured_round(s, &payload, &mut out)))
        });
    }
    group.finish();
}

criterion_group!(benches, hooks);

fn main() {
    if let (Ok(n), Ok(case)) = (std::env::var("HOOKS_COUNT"), std::env::var("HOOKS_CASE")) {
        let s = setup(&case);
        let payload = Bytes::from(vec![0u8; 64]);
        let mut out = BytesMut::with_capacity(4096);
        let n: usize = n.parse().expect("HOOKS_COUNT is a number");
        for _ in 0..n {
            black_box(measured_round(&s, &payload, &mut out));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
