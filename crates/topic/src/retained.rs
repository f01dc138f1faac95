//! The retained-message index: one value per topic name, found by topic filter.

use std::fmt;

use crate::tree::{NodeId, Payload, Seg, Tree, ROOT};

struct Slot<V>(Option<V>);

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Slot(None)
    }
}

impl<V> Payload for Slot<V> {
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// Retained messages by topic name, in a trie over topic levels so that a filter finds its
/// matches by walking only the branches it can match (`+` visits the children of one node, `#`
/// one subtree), never every retained topic.
///
/// `V` is whatever the engine keeps for a retained message (typically the publish itself with
/// its topic). Setting an empty payload means "delete": the caller calls [`RetainedIndex::remove`].
pub struct RetainedIndex<V> {
    tree: Tree<Slot<V>>,
    len: usize,
}

impl<V> fmt::Debug for RetainedIndex<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedIndex")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<V> Default for RetainedIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> RetainedIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        RetainedIndex {
            tree: Tree::default(),
            len: 0,
        }
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nodes in use, the root included: 1 when empty.
    pub fn node_count(&self) -> usize {
        self.tree.node_count()
    }

    /// Retains `value` for `topic` (a valid topic name), returning the one it replaces.
    pub fn set(&mut self, topic: &str, value: V) -> Option<V> {
        let node = self.tree.find_or_create(topic.split('/').map(Seg::Exact));
        let old = self.tree.node_mut(node).payload.0.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Drops the retained message of `topic`, returning it.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let node = self.tree.find_path(topic.split('/').map(Seg::Exact))?;
        let old = self.tree.node_mut(node).payload.0.take()?;
        self.len -= 1;
        self.tree.prune_path(topic.rsplit('/').map(Seg::Exact));
        Some(old)
    }

    /// The retained message of exactly `topic`.
    pub fn get(&self, topic: &str) -> Option<&V> {
        let node = self.tree.find(topic.split('/').map(Seg::Exact))?;
        self.tree.node(node).payload.0.as_ref()
    }

    /// Calls `f` with every retained message whose topic matches `filter`, a valid plain filter
    /// (no `$share/` prefix: a new shared subscription gets no retained messages, MQTT 5
    /// §4.8.2). Topics starting with `$` are not matched by a filter starting with `+` or `#`.
    pub fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a V)) {
        let mut frontier: Vec<NodeId> = vec![ROOT];
        let mut next: Vec<NodeId> = Vec::new();
        for (depth, level) in filter.split('/').enumerate() {
            next.clear();
            match Seg::filter(level) {
                Seg::Exact(s) => {
                    let Some(l) = self.tree.level_id(s) else {
                        return;
                    };
                    for &id in &frontier {
                        let c = self.tree.node(id).children.get(l);
                        if c != crate::tree::NONE {
                            next.push(c);
                        }
                    }
                }
                Seg::Plus => {
                    for &id in &frontier {
                        self.tree.node(id).children.for_each(|l, c| {
                            if depth > 0 || !self.tree.level_is_dollar(l) {
                                next.push(c);
                            }
                        });
                    }
                }
                Seg::Hash => {
                    // `a/#` matches `a` itself and everything below it.
                    let mut stack = mem_take(&mut next);
                    for &id in &frontier {
                        if let Some(v) = &self.tree.node(id).payload.0 {
                            f(v);
                        }
                        self.tree.node(id).children.for_each(|l, c| {
                            if depth > 0 || !self.tree.level_is_dollar(l) {
                                stack.push(c);
                            }
                        });
                    }
                    while let Some(id) = stack.pop() {
                        let n = self.tree.node(id);
                        if let Some(v) = &n.payload.0 {
                            f(v);
                        }
                        n.children.for_each(|_, c| stack.push(c));
                    }
                    return;
                }
            }
            std::mem::swap(&mut frontier, &mut next);
            if frontier.is_empty() {
                return;
            }
        }
        for &id in &frontier {
            if let Some(v) = &self.tree.node(id).payload.0 {
                f(v);
            }
        }
    }

    /// Appends every retained message matching `filter` to `out` (see
    /// [`RetainedIndex::for_each_match`]).
    pub fn matches<'a>(&'a self, filter: &str, out: &mut Vec<&'a V>) {
        self.for_each_match(filter, |v| out.push(v));
    }

    /// Every retained message, in no particular order (for persistence and `$SYS` counts).
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.tree.payloads().filter_map(|s| s.0.as_ref())
    }
}

fn mem_take(v: &mut Vec<NodeId>) -> Vec<NodeId> {
    std::mem::take(v)
}
