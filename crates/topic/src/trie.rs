//! The subscription trie: plain and shared subscriptions, matched by topic name.

use std::fmt;
use std::hash::Hash;
use std::mem;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::TopicError;
use crate::hash::{hash_one, mix64, random_u64};
use crate::options::SubscriptionOptions;
use crate::subs::{Entry, Subs};
use crate::tree::{Align64, NodeId, Payload, Seg, Tree, NONE, ROOT};
use crate::validate::parse_filter;

/// How a shared subscription group picks the one member that gets a message (MQTT 5 §4.8.2
/// leaves the choice to the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum ShareStrategy {
    /// Members in turn; each group has its own atomic cursor.
    #[default]
    RoundRobin,
    /// A pseudo-random member per message (a lock-free SplitMix64 sequence).
    Random,
    /// The publisher's id hashed to a member, so one publisher's messages keep going to the
    /// same member while the group is unchanged. Publishes without a publisher id (server or
    /// inline publishes) fall back to round robin.
    StickyByPublisher,
}

struct ShareGroup<C> {
    name: Box<str>,
    members: Subs<C>,
    cursor: AtomicU32,
}

impl<C: fmt::Debug> fmt::Debug for ShareGroup<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareGroup")
            .field("name", &self.name)
            .field("members", &self.members)
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct SubNode<C> {
    subs: Subs<C>,
    // Boxed on purpose: shared groups are rare, and 8 bytes instead of 24 keep a node in one
    // cache line.
    #[allow(clippy::box_collection)]
    shared: Option<Box<Vec<ShareGroup<C>>>>,
}

impl<C> Default for SubNode<C> {
    fn default() -> Self {
        SubNode {
            subs: Subs::default(),
            shared: None,
        }
    }
}

impl<C: Clone + Eq + Hash> Payload for SubNode<C> {
    fn is_empty(&self) -> bool {
        self.subs.is_empty() && self.shared.is_none()
    }
}

/// The subscription trie: topic filters with the clients subscribed to them, plain and shared.
///
/// `C` is the engine's client key (e.g. `u64` or `Arc<str>`). Insert, remove and match cost
/// O(levels of the topic + matches), whatever the number of subscriptions. See the crate docs
/// for the intended locking (`matches` needs `&self` only).
pub struct SubscriptionTrie<C> {
    tree: Tree<SubNode<C>, Align64>,
    len: usize,
    strategy: ShareStrategy,
    rng: AtomicU64,
}

impl<C: fmt::Debug> fmt::Debug for SubscriptionTrie<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTrie")
            .field("len", &self.len)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl<C: Clone + Eq + Hash> Default for SubscriptionTrie<C> {
    fn default() -> Self {
        Self::new()
    }
}

/// One plain delivery: a client gets the message once, however many of its subscriptions match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<C> {
    /// The subscriber.
    pub client: C,
    /// The highest QoS among the client's matching subscriptions (MQTT 5 §3.3.4); the engine
    /// sends at `min(this, publish QoS)`.
    pub qos: u8,
    /// True if any matching subscription has Retain As Published: the client asked to see the
    /// RETAIN flag through at least one of them, and one copy is sent, so the flag is kept.
    pub retain_as_published: bool,
    ids_start: u32,
    ids_len: u32,
}

/// One shared-subscription delivery: the member a group picked for this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDelivery<C> {
    /// The chosen member.
    pub client: C,
    /// That member's options for this shared subscription (QoS, identifier, retain as
    /// published).
    pub options: SubscriptionOptions,
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    key: u64,
    node: NodeId,
    idx: u32,
    slot: u32,
}

/// Aggregation of up to this many raw hits is done by pairwise comparison; above it, by sorting
/// on the client's hash.
const SMALL_HITS: usize = 16;

/// The reusable output of [`SubscriptionTrie::matches`]: plain deliveries aggregated per
/// client, with their subscription identifiers, and shared deliveries.
///
/// Keep one per routing task and pass it to every call: its buffers are cleared and reused, so
/// a warmed-up `Matches` makes matching allocation-free apart from cloning client keys.
pub struct Matches<C> {
    deliveries: Vec<Delivery<C>>,
    identifiers: Vec<NonZeroU32>,
    shared: Vec<SharedDelivery<C>>,
    hits: Vec<Hit>,
    active: Vec<NodeId>,
    next: Vec<NodeId>,
}

impl<C: fmt::Debug> fmt::Debug for Matches<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matches")
            .field("deliveries", &self.deliveries)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<C> Default for Matches<C> {
    fn default() -> Self {
        Self::new()
    }
}

/// The identifiers of `delivery` in a match's shared identifier buffer.
fn identifiers_of<'a, C>(ids: &'a [NonZeroU32], delivery: &Delivery<C>) -> &'a [NonZeroU32] {
    let s = delivery.ids_start as usize;
    &ids[s..s + delivery.ids_len as usize]
}

impl<C> Matches<C> {
    /// An empty set of matches.
    pub fn new() -> Self {
        Matches {
            deliveries: Vec::new(),
            identifiers: Vec::new(),
            shared: Vec::new(),
            hits: Vec::new(),
            active: Vec::new(),
            next: Vec::new(),
        }
    }

    /// Forgets the last results, keeping the buffers.
    pub fn clear(&mut self) {
        self.deliveries.clear();
        self.identifiers.clear();
        self.shared.clear();
        self.hits.clear();
        self.active.clear();
        self.next.clear();
    }

    /// Plain deliveries, one per client (in no particular order).
    pub fn deliveries(&self) -> &[Delivery<C>] {
        &self.deliveries
    }

    /// The distinct subscription identifiers of the client's matching subscriptions (MQTT 5
    /// §3.3.4: all of them go in the one PUBLISH), in no particular order.
    pub fn identifiers(&self, delivery: &Delivery<C>) -> &[NonZeroU32] {
        identifiers_of(&self.identifiers, delivery)
    }

    /// Plain deliveries with their identifiers.
    pub fn iter(&self) -> impl Iterator<Item = (&Delivery<C>, &[NonZeroU32])> + '_ {
        self.deliveries.iter().map(|d| (d, self.identifiers(d)))
    }

    /// Takes the plain deliveries out, with their identifiers (the client keys are moved, not
    /// cloned); what is not consumed is dropped. The buffers are kept for the next match.
    pub fn drain(&mut self) -> impl Iterator<Item = (Delivery<C>, &[NonZeroU32])> + '_ {
        let ids = &self.identifiers;
        self.deliveries.drain(..).map(move |d| {
            let of = identifiers_of(ids, &d);
            (d, of)
        })
    }

    /// Takes the shared deliveries out (see [`Matches::drain`]).
    pub fn drain_shared(&mut self) -> impl Iterator<Item = SharedDelivery<C>> + '_ {
        self.shared.drain(..)
    }

    /// Shared deliveries: one per matching (share name, filter) group with a member.
    pub fn shared(&self) -> &[SharedDelivery<C>] {
        &self.shared
    }

    /// Plain plus shared deliveries.
    pub fn len(&self) -> usize {
        self.deliveries.len() + self.shared.len()
    }

    /// Whether nobody gets the message.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.shared.is_empty()
    }
}

impl<C: Clone + Eq + Hash> SubscriptionTrie<C> {
    /// An empty trie with the default share strategy (round robin).
    pub fn new() -> Self {
        Self::with_strategy(ShareStrategy::default())
    }

    /// An empty trie whose shared groups pick members by `strategy`.
    pub fn with_strategy(strategy: ShareStrategy) -> Self {
        SubscriptionTrie {
            tree: Tree::default(),
            len: 0,
            strategy,
            rng: AtomicU64::new(random_u64()),
        }
    }

    /// The share strategy in use.
    pub fn strategy(&self) -> ShareStrategy {
        self.strategy
    }

    /// Number of subscriptions (plain ones plus shared-group memberships).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nodes in use, the root included: 1 when empty (memory tests and metrics).
    pub fn node_count(&self) -> usize {
        self.tree.node_count()
    }

    #[cfg(test)]
    pub(crate) fn tree_arena_len(&self) -> usize {
        self.tree.arena_len()
    }

    /// Subscribes `client` to `filter` (plain, or `$share/{group}/{filter}`), replacing the
    /// options if that client already has this exact filter. Returns whether the subscription
    /// is new (what Retain Handling 1 needs). The filter is validated ([`parse_filter`]).
    pub fn insert(
        &mut self,
        filter: &str,
        client: C,
        options: SubscriptionOptions,
    ) -> Result<bool, TopicError> {
        debug_assert!(
            options.qos <= 2,
            "QoS above 2 (the engine checks SUBSCRIBE)"
        );
        let f = parse_filter(filter)?;
        let node = self
            .tree
            .find_or_create(f.filter.split('/').map(Seg::filter));
        let p = &mut self.tree.node_mut(node).payload;
        let new = match f.share {
            None => p.subs.upsert(client, options),
            Some(name) => {
                let groups = p.shared.get_or_insert_with(Default::default);
                let i = match groups.iter().position(|g| &*g.name == name) {
                    Some(i) => i,
                    None => {
                        groups.push(ShareGroup {
                            name: name.into(),
                            members: Subs::default(),
                            cursor: AtomicU32::new(0),
                        });
                        groups.len() - 1
                    }
                };
                groups[i].members.upsert(client, options)
            }
        };
        if new {
            self.len += 1;
        }
        Ok(new)
    }

    /// Unsubscribes `client` from `filter` (plain or shared) and returns the options it had;
    /// `None` if there was no such subscription (or the filter is invalid). Nodes left empty
    /// are pruned.
    pub fn remove(&mut self, filter: &str, client: &C) -> Option<SubscriptionOptions> {
        let f = parse_filter(filter).ok()?;
        let node = self.tree.find_path(f.filter.split('/').map(Seg::filter))?;
        let p = &mut self.tree.node_mut(node).payload;
        let gone = match f.share {
            None => p.subs.remove(client)?,
            Some(name) => {
                let groups = p.shared.as_mut()?;
                let i = groups.iter().position(|g| &*g.name == name)?;
                let gone = groups[i].members.remove(client)?;
                if groups[i].members.is_empty() {
                    groups.swap_remove(i);
                    if groups.is_empty() {
                        p.shared = None;
                    }
                }
                gone
            }
        };
        self.len -= 1;
        self.tree.prune_path(f.filter.rsplit('/').map(Seg::filter));
        Some(gone)
    }

    /// Removes every subscription of `client` among `filters` (the engine's own list of the
    /// client's filters); returns how many were removed.
    pub fn remove_client<'f>(
        &mut self,
        client: &C,
        filters: impl IntoIterator<Item = &'f str>,
    ) -> usize {
        filters
            .into_iter()
            .filter(|f| self.remove(f, client).is_some())
            .count()
    }

    /// The options of `client`'s subscription to `filter`, if it has one.
    pub fn get(&self, filter: &str, client: &C) -> Option<&SubscriptionOptions> {
        let f = parse_filter(filter).ok()?;
        let node = self.tree.find(f.filter.split('/').map(Seg::filter))?;
        let p = &self.tree.node(node).payload;
        match f.share {
            None => p.subs.get(client),
            Some(name) => p
                .shared
                .as_ref()?
                .iter()
                .find(|g| &*g.name == name)?
                .members
                .get(client),
        }
    }

    /// Number of members of the shared group `$share/{group}/{filter}`, as given by `filter`.
    pub fn share_group_len(&self, filter: &str) -> usize {
        let Ok(f) = parse_filter(filter) else {
            return 0;
        };
        let Some(name) = f.share else { return 0 };
        let Some(node) = self.tree.find(f.filter.split('/').map(Seg::filter)) else {
            return 0;
        };
        self.tree
            .node(node)
            .payload
            .shared
            .as_ref()
            .and_then(|gs| gs.iter().find(|g| &*g.name == name))
            .map_or(0, |g| g.members.len())
    }

    /// Finds who gets a message published to `topic` (a valid topic name) by `publisher`
    /// (`None` for server-originated messages) and writes it to `out`, which is cleared first.
    ///
    /// Plain subscriptions give one [`Delivery`] per client with the highest QoS, every distinct
    /// subscription identifier and Retain As Published if any matching subscription has it;
    /// subscriptions with No Local are skipped when the client is the publisher. Each matching
    /// shared group (share name and filter) gives one [`SharedDelivery`] to the member its
    /// [`ShareStrategy`] picks; a client that is also a plain subscriber gets both. Filters
    /// starting with a wildcard do not match topics starting with `$`.
    pub fn matches(&self, topic: &str, publisher: Option<&C>, out: &mut Matches<C>) {
        out.clear();
        let mut active = mem::take(&mut out.active);
        let mut next = mem::take(&mut out.next);
        active.push(ROOT);
        let dollar = topic.starts_with('$');
        for (depth, level) in topic.split('/').enumerate() {
            let wild = depth > 0 || !dollar;
            let exact = self.tree.level_id(level);
            next.clear();
            for &id in &active {
                let n = self.tree.node(id);
                if wild {
                    if n.hash != NONE {
                        self.collect(n.hash, publisher, out);
                    }
                    if n.plus != NONE {
                        next.push(n.plus);
                    }
                }
                if let Some(l) = exact {
                    let c = n.children.get(l);
                    if c != NONE {
                        next.push(c);
                    }
                }
            }
            mem::swap(&mut active, &mut next);
            if active.is_empty() {
                break;
            }
        }
        for &id in &active {
            self.collect(id, publisher, out);
            let h = self.tree.node(id).hash;
            if h != NONE {
                self.collect(h, publisher, out);
            }
        }
        active.clear();
        next.clear();
        out.active = active;
        out.next = next;
        self.aggregate(out);
    }

    #[inline]
    fn collect(&self, node: NodeId, publisher: Option<&C>, out: &mut Matches<C>) {
        let p = &self.tree.node(node).payload;
        for (i, e) in p.subs.as_slice().iter().enumerate() {
            if e.options.no_local && publisher == Some(&e.client) {
                continue;
            }
            out.hits.push(Hit {
                key: 0,
                node,
                idx: i as u32,
                slot: 0,
            });
        }
        if let Some(groups) = &p.shared {
            for g in groups.iter() {
                if let Some(e) = self.pick(g, publisher) {
                    out.shared.push(SharedDelivery {
                        client: e.client.clone(),
                        options: e.options,
                    });
                }
            }
        }
    }

    fn pick<'a>(&self, g: &'a ShareGroup<C>, publisher: Option<&C>) -> Option<&'a Entry<C>> {
        let m = g.members.as_slice();
        let n = m.len();
        if n == 0 {
            return None;
        }
        let rr = || g.cursor.fetch_add(1, Ordering::Relaxed) as usize % n;
        let i = match self.strategy {
            ShareStrategy::RoundRobin => rr(),
            ShareStrategy::Random => {
                let s = self
                    .rng
                    .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
                    .wrapping_add(0x9e37_79b9_7f4a_7c15);
                (mix64(s) % n as u64) as usize
            }
            ShareStrategy::StickyByPublisher => match publisher {
                Some(p) => (hash_one(p) % n as u64) as usize,
                None => rr(),
            },
        };
        m.get(i)
    }

    #[inline]
    fn entry(&self, h: &Hit) -> &Entry<C> {
        &self.tree.node(h.node).payload.subs.as_slice()[h.idx as usize]
    }

    /// Folds the raw hits into one delivery per client.
    fn aggregate(&self, out: &mut Matches<C>) {
        let mut hits = mem::take(&mut out.hits);
        if hits.is_empty() {
            out.hits = hits;
            return;
        }
        let deliveries = &mut out.deliveries;
        let node = hits[0].node;
        if hits.iter().all(|h| h.node == node) {
            // One node holds each client at most once (the common case: one filter matched),
            // so every hit is its own delivery and nothing needs comparing.
            for h in hits.iter_mut() {
                let e = self.entry(h);
                h.slot = deliveries.len() as u32;
                deliveries.push(Delivery {
                    client: e.client.clone(),
                    qos: e.options.qos,
                    retain_as_published: e.options.retain_as_published,
                    ids_start: 0,
                    ids_len: u32::from(e.options.identifier.is_some()),
                });
            }
        } else if hits.len() <= SMALL_HITS {
            for h in hits.iter_mut() {
                let e = self.entry(h);
                h.slot = self.slot_for(e, deliveries, 0);
            }
        } else {
            for h in hits.iter_mut() {
                h.key = hash_one(&self.entry(h).client);
            }
            hits.sort_unstable_by_key(|h| h.key);
            let mut run_key = hits[0].key;
            let mut run_first = 0;
            for h in hits.iter_mut() {
                if h.key != run_key {
                    run_key = h.key;
                    run_first = deliveries.len();
                }
                let e = self.entry(h);
                h.slot = self.slot_for(e, deliveries, run_first);
            }
        }
        // Lay the identifiers of each delivery out contiguously, skipping duplicates.
        let mut total = 0u32;
        for d in deliveries.iter_mut() {
            d.ids_start = total;
            total += d.ids_len;
            d.ids_len = 0;
        }
        if total > 0 {
            out.identifiers.resize(total as usize, NonZeroU32::MIN);
            for h in &hits {
                if let Some(id) = self.entry(h).options.identifier {
                    let d = &mut deliveries[h.slot as usize];
                    let s = d.ids_start as usize;
                    let ids = &mut out.identifiers[s..];
                    if !ids[..d.ids_len as usize].contains(&id) {
                        ids[d.ids_len as usize] = id;
                        d.ids_len += 1;
                    }
                }
            }
        }
        hits.clear();
        out.hits = hits;
    }

    /// The delivery for `e`'s client among `deliveries[from..]`, created if missing, with `e`
    /// folded in (identifiers are only counted here).
    #[inline]
    fn slot_for(&self, e: &Entry<C>, deliveries: &mut Vec<Delivery<C>>, from: usize) -> u32 {
        let has_id = u32::from(e.options.identifier.is_some());
        match deliveries[from..]
            .iter_mut()
            .position(|d| d.client == e.client)
        {
            Some(i) => {
                let d = &mut deliveries[from + i];
                d.qos = d.qos.max(e.options.qos);
                d.retain_as_published |= e.options.retain_as_published;
                d.ids_len += has_id;
                (from + i) as u32
            }
            None => {
                deliveries.push(Delivery {
                    client: e.client.clone(),
                    qos: e.options.qos,
                    retain_as_published: e.options.retain_as_published,
                    ids_start: 0,
                    ids_len: has_id,
                });
                (deliveries.len() - 1) as u32
            }
        }
    }
}

#[cfg(test)]
pub(crate) type SubNodeForTests<C> = SubNode<C>;
