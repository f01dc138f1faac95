//! Retained messages: what the broker keeps in its [`RetainedStore`](crate::RetainedStore).

use super::*;

impl Broker {
    pub(super) fn retain(&self, msg: &Arc<Message>) {
        if msg.payload.is_empty() {
            self.retained.remove(&msg.topic);
        } else {
            // A retained message may live for days: copy it out of the publisher's read
            // buffer so it does not pin that whole buffer.
            self.retained.set(Arc::new(msg.detached()));
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
        self.retain(&msg);
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }
}
