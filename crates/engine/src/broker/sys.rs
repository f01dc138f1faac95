//! `$SYS` topics: the snapshot of the broker's counters and its periodic publication.

use super::*;

impl Broker {
    /// The `$SYS` values at `now`.
    pub fn sys_snapshot(&self, now: Instant) -> crate::sys::SysSnapshot {
        let (clients_total, inflight) = {
            let clients = self.clients.read();
            let inflight = clients
                .values()
                .map(|h| h.state.lock().session.inflight.len() as u64)
                .sum();
            (clients.len() as u64, inflight)
        };
        let gauges = crate::sys::Gauges {
            clients_total,
            retained: self.retained_count() as u64,
            inflight,
            subscriptions: self.subscription_count() as u64,
        };
        crate::sys::snapshot(&self.info, gauges, now)
    }

    pub(super) fn sys_publish(value: (&'static str, String)) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: ByteString::from_static(value.0),
            packet_id: None,
            payload: Bytes::from(value.1),
            properties: Default::default(),
        }
    }

    /// Publishes the `$SYS/broker/...` topics (retained) to their subscribers, then calls
    /// `OnSysInfoTick`.
    pub fn publish_sys_info(&self, now: Instant) {
        let snap = self.sys_snapshot(now);
        for v in snap.topics() {
            self.publish_internal(now, &Self::sys_publish(v));
        }
        self.hooks.on_sys_info_tick(&snap);
    }

    /// Refreshes the retained `$SYS` values without publishing them (before a client
    /// subscribes to `$SYS`).
    pub(super) fn refresh_sys_info(&self, now: Instant) {
        for v in self.sys_snapshot(now).topics() {
            let msg = Arc::new(Message::from_publish(&Self::sys_publish(v), None, now, 0));
            self.retain(&msg);
        }
    }
}
