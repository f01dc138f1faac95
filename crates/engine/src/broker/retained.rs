//! Retained messages: what the broker keeps in its [`RetainedStore`](crate::RetainedStore).

use super::*;

impl Broker {
    pub(super) fn retain(&self, msg: &Arc<Message>) {
        self.keep_retained(msg, true);
    }

    /// Sets or clears the retained message of `msg`'s topic; `record`: tell the session sink
    /// (not for what it handed back itself at start-up).
    fn keep_retained(&self, msg: &Arc<Message>, record: bool) {
        let sink = self.sink.as_deref().filter(|_| record);
        if msg.payload.is_empty() {
            if self.retained.remove(&msg.topic) {
                if let Some(sink) = sink {
                    sink.record(SessionEvent::RetainedCleared { topic: &msg.topic });
                }
            }
        } else {
            // A retained message may live for days: copy it out of the publisher's read
            // buffer so it does not pin that whole buffer.
            let kept = Arc::new(msg.detached());
            if let Some(sink) = sink {
                sink.record(SessionEvent::RetainedSet { message: &kept });
            }
            self.retained.set(kept);
            if let Some(t) = msg.expires_at {
                self.retained_deadlines
                    .lock()
                    .insert((t, msg.topic.clone()));
            }
        }
    }

    /// Restores a retained message (from storage, before serving).
    pub fn restore_retained(&self, now: Instant, publish: &Publish) {
        let msg = Arc::new(Message::from_publish(
            publish,
            None,
            now,
            self.options.capabilities.maximum_message_expiry_interval,
        ));
        self.keep_retained(&msg, false);
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }
}
