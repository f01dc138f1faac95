//! Time-driven work: wills (with their delay), session expiry and retained-message expiry.

use super::*;

/// Removes and returns the entries of `set` due at `now`.
pub(super) fn take_due(
    set: &Mutex<BTreeSet<(Instant, ByteString)>>,
    now: Instant,
) -> Vec<(Instant, ByteString)> {
    let mut set = set.lock();
    let mut due = Vec::new();
    while let Some(first) = set.first() {
        if first.0 > now {
            break;
        }
        if let Some(e) = set.pop_first() {
            due.push(e);
        }
    }
    due
}

pub(super) struct PendingWill {
    pub(super) due: Instant,
    pub(super) client_id: ByteString,
    pub(super) will: Will,
}

impl Broker {
    pub(crate) fn publish_will(&self, now: Instant, client_id: &str, mut will: Will) {
        self.hooks.on_will(client_id, &mut will);
        let p = will.to_publish();
        let publisher = self.client(client_id).map(|h| h.info.clone());
        if let Some(info) = &publisher {
            if !self.hooks.on_acl_check(info, &p.topic, Access::Write) {
                return;
            }
        }
        if p.topic.starts_with("$SYS") {
            return;
        }
        let msg = Arc::new(Message::from_publish(
            &p,
            Some(ByteString::from(client_id)),
            now,
            self.options.capabilities.maximum_message_expiry_interval,
        ));
        if p.retain {
            self.retain(&msg);
        }
        self.route(now, &msg);
        self.hooks.on_will_sent(client_id, &will);
    }

    /// Publishes `will` of `client_id` `delay` seconds after `now` (unless the client's
    /// session resumes first).
    pub(crate) fn delay_will(&self, now: Instant, client_id: ByteString, will: Will, delay: u32) {
        self.wills.lock().push(PendingWill {
            due: now + Duration::from_secs(u64::from(delay)),
            client_id,
            will,
        });
    }

    /// Time-driven work: due wills, expired sessions, expired retained messages.
    pub fn handle_timeout(&self, now: Instant) {
        let due: Vec<PendingWill> = {
            let mut wills = self.wills.lock();
            let (due, keep) = std::mem::take(&mut *wills)
                .into_iter()
                .partition(|w| w.due <= now);
            *wills = keep;
            due
        };
        for w in due {
            self.publish_will(now, &w.client_id, w.will);
        }
        // Sessions and retained messages whose deadline passed: only the due entries of the
        // deadline indexes are looked at, never every client or retained message.
        let due_sessions = take_due(&self.session_deadlines, now);
        for (deadline, id) in due_sessions {
            let mut clients = self.clients.write();
            self.routes_changed();
            let Some(h) = clients.get(&id).cloned() else {
                continue;
            };
            // Still the same offline session with this deadline (not resumed since)?
            if *h.expires_at.lock() != Some(deadline) || h.state.lock().is_connected() {
                continue;
            }
            clients.remove(&id);
            drop(clients);
            let session = std::mem::take(&mut h.state.lock().session);
            self.drop_session(&id, session);
            self.registry.release(&id);
            self.hooks.on_client_expired(&id);
        }
        let due_retained = take_due(&self.retained_deadlines, now);
        if !due_retained.is_empty() {
            let gone: Vec<_> = due_retained
                .into_iter()
                .filter(|(deadline, topic)| self.retained.remove_expired(topic, *deadline))
                .map(|(_, topic)| topic)
                .collect();
            for topic in gone {
                if let Some(sink) = &self.sink {
                    sink.record(SessionEvent::RetainedCleared { topic: &topic });
                }
                self.hooks.on_retained_expired(&topic);
            }
        }
    }
}
