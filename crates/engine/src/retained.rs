//! The [`RetainedStore`] seam: where retained messages live. [`LocalRetained`] keeps
//! moco-topic's retained index behind a read-mostly lock; a persistent or clustered store can
//! replace it (persistence writes through, a cluster shares one store between nodes).
//!
//! The broker decides what is retained (an empty payload clears, a retained message is copied
//! out of its publisher's read buffer, expiry deadlines are the broker's housekeeping); the
//! store only keeps the messages by topic and finds those a filter matches.

use std::sync::Arc;
use std::time::Instant;

use moco_topic::RetainedIndex;
use parking_lot::RwLock;

use crate::message::Message;

/// Keeps the retained messages by topic. Implementations must be cheap to call concurrently:
/// every SUBSCRIBE matches against it, every retained PUBLISH writes to it.
pub trait RetainedStore: Send + Sync + 'static {
    /// Makes `msg` the retained message of its topic (replacing any).
    fn set(&self, msg: Arc<Message>);

    /// Clears the retained message of `topic`; returns whether there was one.
    fn remove(&self, topic: &str) -> bool;

    /// Clears the retained message of `topic` if it is still the one that expires at
    /// `deadline` (a newer one may have replaced it); returns whether it was cleared.
    fn remove_expired(&self, topic: &str, deadline: Instant) -> bool;

    /// Calls `f` with every retained message whose topic `filter` matches (MQTT rules: `+`
    /// and `#` do not match topics starting with `$` at the first level).
    fn for_each_match(&self, filter: &str, f: &mut dyn FnMut(&Arc<Message>));

    /// Number of retained messages.
    fn len(&self) -> usize;

    /// Whether no message is retained.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The in-memory store: moco-topic's retained index behind a read-write lock.
#[derive(Default)]
pub struct LocalRetained {
    index: RwLock<RetainedIndex<Arc<Message>>>,
}

impl LocalRetained {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for LocalRetained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRetained")
            .field("len", &self.len())
            .finish()
    }
}

impl RetainedStore for LocalRetained {
    fn set(&self, msg: Arc<Message>) {
        let topic = msg.topic.clone();
        self.index.write().set(&topic, msg);
    }

    fn remove(&self, topic: &str) -> bool {
        self.index.write().remove(topic).is_some()
    }

    fn remove_expired(&self, topic: &str, deadline: Instant) -> bool {
        let mut index = self.index.write();
        if index
            .get(topic)
            .is_some_and(|m| m.expires_at == Some(deadline))
        {
            index.remove(topic);
            return true;
        }
        false
    }

    fn for_each_match(&self, filter: &str, f: &mut dyn FnMut(&Arc<Message>)) {
        self.index.read().for_each_match(filter, f);
    }

    fn len(&self) -> usize {
        self.index.read().len()
    }
}
