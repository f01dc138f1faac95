//! The [`Router`] seam: who gets a message. [`LocalRouter`] keeps moco-topic's subscription
//! trie behind a read-mostly lock; a cluster router can replace it later.

use std::num::NonZeroU32;
use std::sync::Arc;

use bytestring::ByteString;
use moco_topic::{Matches, SubscriptionOptions, SubscriptionTrie, TopicError};
use parking_lot::RwLock;

use crate::message::Message;

/// One client that gets a routed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The subscriber's client id.
    pub client_id: ByteString,
    /// The highest QoS among its matching subscriptions.
    pub qos: u8,
    /// Whether the RETAIN flag is kept as published.
    pub retain_as_published: bool,
    /// Subscription identifiers of the matching subscriptions.
    pub sub_ids: Vec<u32>,
}

/// Routes messages to subscribers and keeps the subscriptions. Implementations must be cheap
/// to call concurrently from every connection task.
pub trait Router: Send + Sync + 'static {
    /// Subscribes `client_id` to `filter` (plain or `$share/…`); returns whether it is new.
    fn subscribe(
        &self,
        client_id: &ByteString,
        filter: &str,
        options: SubscriptionOptions,
    ) -> Result<bool, TopicError>;

    /// Removes one subscription; returns whether it existed.
    fn unsubscribe(&self, client_id: &ByteString, filter: &str) -> bool;

    /// Removes the listed subscriptions of a client whose session ended.
    fn remove_client(&self, client_id: &ByteString, filters: &mut dyn Iterator<Item = &str>);

    /// Appends to `out` the local clients that get `msg` (no-local applied, one target per
    /// client for plain subscriptions, one member per shared group). A cluster router also
    /// forwards `msg` to the other nodes here.
    fn route(&self, msg: &Arc<Message>, out: &mut Vec<Target>);

    /// [`Router::route`], saying also whether the targets are stable: the same for every
    /// message on this topic from this publisher until a subscription changes through the
    /// broker (no shared subscription picked one of its members, nothing outside the broker
    /// decides). The broker then reuses them for the next messages on the topic without asking
    /// again. The default asks every time.
    fn route_stable(&self, msg: &Arc<Message>, out: &mut Vec<Target>) -> bool {
        self.route(msg, out);
        false
    }

    /// Number of subscriptions.
    fn len(&self) -> usize;

    /// True if there are no subscriptions.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The single-node router: moco-topic's trie behind a `RwLock` (matching takes the read lock).
#[derive(Debug, Default)]
pub struct LocalRouter {
    trie: RwLock<SubscriptionTrie<ByteString>>,
}

thread_local! {
    static MATCHES: std::cell::RefCell<Matches<ByteString>> =
        std::cell::RefCell::new(Matches::new());
}

impl LocalRouter {
    /// An empty router (round-robin shared subscriptions).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty router whose shared subscription groups pick members by `strategy`.
    pub fn with_strategy(strategy: moco_topic::ShareStrategy) -> Self {
        LocalRouter {
            trie: RwLock::new(SubscriptionTrie::with_strategy(strategy)),
        }
    }
}

fn ids(ids: &[NonZeroU32]) -> Vec<u32> {
    ids.iter().map(|i| i.get()).collect()
}

impl Router for LocalRouter {
    fn subscribe(
        &self,
        client_id: &ByteString,
        filter: &str,
        options: SubscriptionOptions,
    ) -> Result<bool, TopicError> {
        self.trie.write().insert(filter, client_id.clone(), options)
    }

    fn unsubscribe(&self, client_id: &ByteString, filter: &str) -> bool {
        self.trie.write().remove(filter, client_id).is_some()
    }

    fn remove_client(&self, client_id: &ByteString, filters: &mut dyn Iterator<Item = &str>) {
        self.trie.write().remove_client(client_id, filters);
    }

    fn route(&self, msg: &Arc<Message>, out: &mut Vec<Target>) {
        self.route_stable(msg, out);
    }

    fn route_stable(&self, msg: &Arc<Message>, out: &mut Vec<Target>) -> bool {
        MATCHES.with(|m| {
            let mut m = m.borrow_mut();
            self.trie
                .read()
                .matches(&msg.topic, msg.publisher.as_ref(), &mut m);
            // The client keys move out of the matches: no clone (an atomic increment) per
            // target, and none left behind to drop at the next match.
            out.reserve(m.len());
            for (d, sub_ids) in m.drain() {
                out.push(Target {
                    client_id: d.client,
                    qos: d.qos,
                    retain_as_published: d.retain_as_published,
                    sub_ids: ids(sub_ids),
                });
            }
            // A shared subscription's member is picked anew for each message.
            let mut stable = true;
            for s in m.drain_shared() {
                stable = false;
                out.push(Target {
                    client_id: s.client,
                    qos: s.options.qos,
                    retain_as_published: s.options.retain_as_published,
                    sub_ids: s
                        .options
                        .identifier
                        .map(|i| vec![i.get()])
                        .unwrap_or_default(),
                });
            }
            stable
        })
    }

    fn len(&self) -> usize {
        self.trie.read().len()
    }
}
