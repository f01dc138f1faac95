//! Restoring what a storage hook kept: the broker side of the `Stored*` loader events.
//!
//! A storage hook records state through the ordinary events (sessions through
//! `OnSessionEstablished` / `OnDisconnect` / `OnClientExpired`, subscriptions through
//! `OnSubscribed` / `OnUnsubscribed`, inflight messages through `OnQosPublish` /
//! `OnQosComplete` / `OnQosDropped`, retained messages through `OnRetainMessage` /
//! `OnRetainedExpired`, counters through `OnSysInfoTick`) and hands it back through the
//! loaders when the server starts; [`Broker::load_stored`] puts it back in place.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytestring::ByteString;
use moco_codec::QoS;
use tracing::debug;

use crate::broker::Broker;
use crate::error::Error;
use crate::hooks::Event;
use crate::message::{Delivery, Message};
use crate::state::{Inflight, Stage};

/// What [`Broker::load_stored`] restored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Client sessions.
    pub clients: usize,
    /// Subscriptions (of restored clients).
    pub subscriptions: usize,
    /// Inflight messages (of restored clients).
    pub inflight: usize,
    /// Messages queued for restored clients.
    pub queued: usize,
    /// Wills of clients cut off by the stop, published now or after their delay.
    pub wills: usize,
    /// Retained messages.
    pub retained: usize,
    /// Whether `$SYS` counters were restored.
    pub sys_info: bool,
}

impl Broker {
    /// Asks the hooks' loaders for stored state and restores it (mochi's `readStore`); the
    /// server calls it before it accepts connections. Sessions whose expiry has passed are
    /// skipped; subscriptions and inflight messages of clients that were not restored are
    /// ignored. Inflight messages keep their packet ids and are resent with DUP when their
    /// client resumes its session.
    pub fn load_stored(&self, now: Instant) -> Result<Restored, Error> {
        let hooks = self.hooks();
        let mut done = Restored::default();
        // The restored clients: only they have notes to report at the end.
        let mut restored: Vec<ByteString> = Vec::new();
        let mut subs: HashMap<ByteString, Vec<_>> = HashMap::new();
        if hooks.provides(Event::StoredSubscriptions) {
            for s in hooks.stored_subscriptions()? {
                subs.entry(s.client_id)
                    .or_default()
                    .push((s.filter, s.options));
            }
        }
        let mut queued: HashMap<ByteString, Vec<(moco_codec::Publish, QoS)>> = HashMap::new();
        if hooks.provides(Event::StoredQueuedMessages) {
            for q in hooks.stored_queued_messages()? {
                let qos = q.publish.qos;
                queued
                    .entry(q.client_id)
                    .or_default()
                    .push((q.publish, qos));
            }
        }
        if hooks.provides(Event::StoredClients) {
            let wall = SystemTime::now();
            for c in hooks.stored_clients()? {
                let gone = c
                    .disconnected_at
                    .and_then(|t| wall.duration_since(t).ok())
                    .map_or(0, |d| d.as_secs());
                let left = u64::from(c.session_expiry_interval).saturating_sub(gone);
                if c.session_expiry_interval == 0 || (gone > 0 && left == 0) {
                    debug!(client = %c.id, "stored session expired");
                    continue;
                }
                let left = u32::try_from(left).unwrap_or(u32::MAX);
                let mine = subs.remove(&c.id).unwrap_or_default();
                let pending = queued.remove(&c.id).unwrap_or_default();
                self.restore_session(now, &c.id, left, &mine, &pending)?;
                if let (false, Some(h)) = (c.inbound_qos2.is_empty(), self.client(&c.id)) {
                    h.state.lock().session.inbound_qos2.extend(c.inbound_qos2);
                }
                restored.push(c.id.clone());
                done.clients += 1;
                done.subscriptions += mine.len();
                done.queued += pending.len();
            }
        }
        if !subs.is_empty() {
            debug!(
                clients = subs.len(),
                "stored subscriptions of unknown clients ignored"
            );
        }
        if hooks.provides(Event::StoredInflightMessages) {
            let max_expiry = self.options().capabilities.maximum_message_expiry_interval;
            let mut seen: HashSet<(ByteString, u16)> = HashSet::new();
            for m in hooks.stored_inflight_messages()? {
                let (Some(pid), Some(handle)) = (m.publish.packet_id, self.client(&m.client_id))
                else {
                    continue;
                };
                let stage = match m.publish.qos {
                    QoS::AtMostOnce => continue,
                    QoS::AtLeastOnce => Stage::AwaitPubAck,
                    QoS::ExactlyOnce => Stage::AwaitPubRec,
                };
                let msg = Arc::new(Message::from_publish(&m.publish, None, now, max_expiry));
                let delivery = Delivery {
                    msg,
                    qos: m.publish.qos,
                    retain: m.publish.retain,
                    sub_ids: m.publish.properties.subscription_identifiers.clone(),
                };
                if !seen.insert((m.client_id.clone(), pid)) {
                    continue;
                }
                let mut st = handle.state.lock();
                st.restore_inflight(Inflight {
                    packet_id: pid,
                    delivery,
                    stage,
                    resends: 0,
                });
                done.inflight += 1;
            }
        }
        if hooks.provides(Event::StoredRetainedMessages) {
            for p in hooks.stored_retained_messages()? {
                if p.payload.is_empty() || moco_topic::validate_topic_name(&p.topic).is_err() {
                    continue;
                }
                self.restore_retained(now, &p);
                done.retained += 1;
            }
        }
        // What the restored sessions noted (their queues and inflight messages, recorded
        // again for a session sink).
        for id in &restored {
            if let Some(h) = self.client(id) {
                let notes = h.state.lock().take_notes();
                if !notes.is_empty() {
                    crate::broker::report_notes(self, id, notes);
                }
            }
        }
        if hooks.provides(Event::StoredWills) {
            for w in hooks.stored_wills()? {
                // The connection was lost without DISCONNECT: the will goes out, after its
                // delay, capped by the session expiry as at any disconnection.
                let delay = w.will.delay().min(w.session_expiry_interval);
                if delay == 0 {
                    self.publish_will(now, &w.client_id, w.will);
                } else {
                    self.delay_will(now, w.client_id, w.will, delay);
                }
                done.wills += 1;
            }
        }
        if hooks.provides(Event::StoredSysInfo) {
            if let Some(s) = hooks.stored_sys_info()? {
                if self
                    .options()
                    .capabilities
                    .compatibilities
                    .restore_sys_info_on_restart
                {
                    self.info.restore(&s);
                    done.sys_info = true;
                }
            }
        }
        Ok(done)
    }
}
