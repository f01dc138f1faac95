//! MQTT topic names and filters, the subscription trie and the retained-message index.
//!
//! - [`validate_topic_name`], [`validate_topic_filter`] and [`parse_filter`] check strings
//!   against MQTT 5 §4.7 and split `$share/{group}/{filter}` (§4.8.2); errors are one
//!   [`TopicError`] enum with the reason code that goes on the wire.
//! - [`SubscriptionTrie`] holds plain and shared subscriptions with their
//!   [`SubscriptionOptions`] and answers "who gets a message published to this topic" into a
//!   reusable [`Matches`]: one [`Delivery`] per client (highest QoS, all subscription
//!   identifiers, MQTT 5 §3.3.4) and one [`SharedDelivery`] per matching shared group, the
//!   member picked by a [`ShareStrategy`].
//! - [`RetainedIndex`] holds retained messages by topic and finds those a filter matches.
//!
//! Nothing here does I/O or needs a runtime; topics are `&str` and the client key is generic.
//!
//! # Cost
//!
//! Both structures are tries over topic levels. Level strings are interned once per structure;
//! nodes sit in an arena and point at each other with `u32` indices; a node's exact children are
//! looked up in a hash map by level id (a single child is held inline), and the `+` and `#`
//! children are held apart. Insert, remove and match therefore cost O(levels + matches),
//! independent of the number of subscriptions. Removing the last subscription under a branch
//! prunes its nodes; freed arena slots are reused, and when a structure becomes empty all its
//! memory is returned.
//!
//! A node of the subscription trie is one 64-byte cache line (for 8- or 16-byte client keys):
//! the `+` and `#` child ids, the exact children (none, one inline, or a boxed map), the
//! subscribers (none, one inline, a vector, or a vector with an index from 16 on) and a boxed
//! list of shared groups. About 150 bytes per subscription at 1M IoT-shaped subscriptions.
//!
//! Matching cost does not grow with the number of subscriptions, but at a million
//! subscriptions the trie is ~150 MB and a publish to a random device reads a handful of nodes
//! that are in no cache: the time is then dominated by those memory reads, each an order of
//! magnitude slower than one within a few MB. The benches (`benches/benches/topic.rs`) show both: publishes spread over all devices,
//! and publishes over 1024 topics where the 1M trie matches within ~2x of the 10k one.
//!
//! # Locking
//!
//! The structures are plain data, `Send + Sync`, meant to sit behind a read-mostly lock such as
//! `parking_lot::RwLock` in the engine:
//!
//! - [`SubscriptionTrie::matches`], [`RetainedIndex::for_each_match`] and the other lookups take
//!   `&self`, so publishes route in parallel under the read lock. The only state a match changes
//!   is the round-robin cursors and the random-strategy counter, which are atomics.
//! - [`SubscriptionTrie::insert`] / [`SubscriptionTrie::remove`] and [`RetainedIndex::set`] /
//!   [`RetainedIndex::remove`] take `&mut self`, so they run under the write lock; each is
//!   O(levels) and holds the lock for microseconds. (Emptying a structure frees its arena in
//!   one go, which is O(size of the arena) once.)
//! - Each routing task keeps its own [`Matches`] buffer and reuses it.
//!
//! ```
//! use moco_topic::{Matches, SubscriptionOptions, SubscriptionTrie};
//!
//! let mut trie = SubscriptionTrie::new();
//! trie.insert("site/+/temp", 1u64, SubscriptionOptions::with_qos(1)).unwrap();
//! trie.insert("site/#", 1u64, SubscriptionOptions::with_qos(2)).unwrap();
//! trie.insert("$share/g/site/7/temp", 2u64, SubscriptionOptions::with_qos(0)).unwrap();
//!
//! let mut m = Matches::new();
//! trie.matches("site/7/temp", None, &mut m);
//! assert_eq!(m.deliveries().len(), 1); // client 1 once, at QoS 2
//! assert_eq!(m.deliveries()[0].qos, 2);
//! assert_eq!(m.shared()[0].client, 2);
//! ```
#![forbid(unsafe_code)]

mod error;
mod hash;
mod options;
mod retained;
mod subs;
mod tree;
mod trie;
mod validate;

pub use error::{TopicError, TopicKind};
pub use hash::{SeededHasher, SeededState};
pub use options::{RetainHandling, SubscriptionOptions};
pub use retained::RetainedIndex;
pub use trie::{Delivery, Matches, ShareStrategy, SharedDelivery, SubscriptionTrie};
pub use validate::{
    filter_matches, parse_filter, validate_topic_filter, validate_topic_name, FilterRef,
    MAX_TOPIC_LEN, SHARE_PREFIX,
};

#[cfg(test)]
mod tests;
