//! The level trie shared by the subscription trie and the retained index.
//!
//! Nodes live in one arena (`Vec`) and name each other by `u32` index; level strings are
//! interned once per tree, so an edge is a pair of integers and following it never touches a
//! string. A node's exact children are held as nothing, one inline edge, or a hash map from level
//! id to child (the map only from two children on, so the long single-child chains of real topic
//! trees cost no map); the `+` and `#` children are held apart in their own fields.

use std::collections::HashMap;

use crate::hash::{IdState, SeededState};

/// Index of a node in the arena. The root is 0, which therefore also means "no node" in the
/// child fields.
pub(crate) type NodeId = u32;
pub(crate) const ROOT: NodeId = 0;
pub(crate) const NONE: NodeId = 0;

/// Interned level id. Two values are reserved for the wildcard edges.
pub(crate) type LevelId = u32;
const PLUS_LEVEL: LevelId = u32::MAX;
const HASH_LEVEL: LevelId = u32::MAX - 1;

/// One level of a path being inserted, looked up or removed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Seg<'a> {
    Exact(&'a str),
    Plus,
    Hash,
}

impl<'a> Seg<'a> {
    /// A filter level: `+` and `#` are wildcards.
    #[inline]
    pub(crate) fn filter(level: &'a str) -> Self {
        match level {
            "+" => Seg::Plus,
            "#" => Seg::Hash,
            s => Seg::Exact(s),
        }
    }
}

/// What a node stores besides its edges.
pub(crate) trait Payload: Default {
    /// Whether the node could be dropped as far as its payload goes.
    fn is_empty(&self) -> bool;
}

#[derive(Debug, Default)]
pub(crate) enum Children {
    #[default]
    Empty,
    One(LevelId, NodeId),
    Map(Box<HashMap<LevelId, NodeId, IdState>>),
}

impl Children {
    #[inline]
    pub(crate) fn get(&self, level: LevelId) -> NodeId {
        match self {
            Children::Empty => NONE,
            Children::One(l, c) => {
                if *l == level {
                    *c
                } else {
                    NONE
                }
            }
            Children::Map(m) => m.get(&level).copied().unwrap_or(NONE),
        }
    }

    fn insert(&mut self, level: LevelId, child: NodeId) {
        match self {
            Children::Empty => *self = Children::One(level, child),
            Children::One(l, c) => {
                let mut m = HashMap::with_capacity_and_hasher(3, IdState);
                m.insert(*l, *c);
                m.insert(level, child);
                *self = Children::Map(Box::new(m));
            }
            Children::Map(m) => {
                m.insert(level, child);
            }
        }
    }

    fn remove(&mut self, level: LevelId) {
        match self {
            Children::Empty => {}
            Children::One(l, _) => {
                if *l == level {
                    *self = Children::Empty;
                }
            }
            Children::Map(m) => {
                m.remove(&level);
                if m.len() == 1 {
                    let (l, c) = m.iter().next().map(|(l, c)| (*l, *c)).unwrap_or_default();
                    *self = Children::One(l, c);
                } else if m.len() * 4 < m.capacity() && m.capacity() > 16 {
                    let want = m.len() * 2;
                    m.shrink_to(want);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Children::Empty)
    }

    /// Calls `f` with every exact child (level id, node).
    #[inline]
    pub(crate) fn for_each(&self, mut f: impl FnMut(LevelId, NodeId)) {
        match self {
            Children::Empty => {}
            Children::One(l, c) => f(*l, *c),
            Children::Map(m) => m.iter().for_each(|(l, c)| f(*l, *c)),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Node<P> {
    parent: NodeId,
    level: LevelId,
    pub(crate) plus: NodeId,
    pub(crate) hash: NodeId,
    pub(crate) children: Children,
    pub(crate) payload: P,
}

impl<P: Payload> Node<P> {
    fn is_empty(&self) -> bool {
        self.plus == NONE && self.hash == NONE && self.children.is_empty() && self.payload.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
struct LevelMeta {
    refs: u32,
    dollar: bool,
}

/// Level strings, each stored once, with the number of edges that use them.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Box<str>, LevelId, SeededState>,
    meta: Vec<LevelMeta>,
    free: Vec<LevelId>,
}

impl Interner {
    #[inline]
    fn get(&self, s: &str) -> Option<LevelId> {
        self.ids.get(s).copied()
    }

    fn acquire(&mut self, s: &str) -> LevelId {
        if let Some(&id) = self.ids.get(s) {
            self.meta[id as usize].refs += 1;
            return id;
        }
        let meta = LevelMeta {
            refs: 1,
            dollar: s.starts_with('$'),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.meta[id as usize] = meta;
                id
            }
            None => {
                let id = self.meta.len() as LevelId;
                assert!(id < HASH_LEVEL, "more than 2^32 - 2 distinct topic levels");
                self.meta.push(meta);
                id
            }
        };
        self.ids.insert(s.into(), id);
        id
    }

    fn release(&mut self, s: &str, id: LevelId) {
        let m = &mut self.meta[id as usize];
        m.refs -= 1;
        if m.refs == 0 {
            self.ids.remove(s);
            self.free.push(id);
            if self.ids.is_empty() {
                *self = Interner::default();
            } else if self.ids.len() * 4 < self.ids.capacity() && self.ids.capacity() > 64 {
                let want = self.ids.len() * 2;
                self.ids.shrink_to(want);
            }
        }
    }
}

/// An arena trie over topic levels with payload `P` on each node.
#[derive(Debug)]
pub(crate) struct Tree<P> {
    nodes: Vec<Node<P>>,
    free: Vec<NodeId>,
    levels: Interner,
}

impl<P: Payload> Default for Tree<P> {
    fn default() -> Self {
        Tree {
            nodes: vec![Node::default()],
            free: Vec::new(),
            levels: Interner::default(),
        }
    }
}

impl<P: Payload> Tree<P> {
    #[inline]
    pub(crate) fn node(&self, id: NodeId) -> &Node<P> {
        &self.nodes[id as usize]
    }

    #[inline]
    pub(crate) fn node_mut(&mut self, id: NodeId) -> &mut Node<P> {
        &mut self.nodes[id as usize]
    }

    /// The id of an exact level string, if any edge uses it.
    #[inline]
    pub(crate) fn level_id(&self, s: &str) -> Option<LevelId> {
        self.levels.get(s)
    }

    /// Whether the level id names a string that starts with `$`.
    #[inline]
    pub(crate) fn level_is_dollar(&self, id: LevelId) -> bool {
        self.levels.meta[id as usize].dollar
    }

    /// Nodes in use, the root included (1 for an empty tree).
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// The node at the end of `path`, if it exists.
    pub(crate) fn find<'a>(&self, path: impl IntoIterator<Item = Seg<'a>>) -> Option<NodeId> {
        let mut cur = ROOT;
        for seg in path {
            let n = self.node(cur);
            cur = match seg {
                Seg::Plus => n.plus,
                Seg::Hash => n.hash,
                Seg::Exact(s) => n.children.get(self.levels.get(s)?),
            };
            if cur == NONE {
                return None;
            }
        }
        Some(cur)
    }

    /// The node at the end of `path`, created with its missing ancestors.
    pub(crate) fn find_or_create<'a>(&mut self, path: impl IntoIterator<Item = Seg<'a>>) -> NodeId {
        let mut cur = ROOT;
        for seg in path {
            let n = self.node(cur);
            let next = match seg {
                Seg::Plus => n.plus,
                Seg::Hash => n.hash,
                Seg::Exact(s) => match self.levels.get(s) {
                    Some(l) => n.children.get(l),
                    None => NONE,
                },
            };
            cur = if next != NONE {
                next
            } else {
                let level = match seg {
                    Seg::Plus => PLUS_LEVEL,
                    Seg::Hash => HASH_LEVEL,
                    Seg::Exact(s) => self.levels.acquire(s),
                };
                let child = self.alloc(cur, level);
                let parent = self.node_mut(cur);
                match seg {
                    Seg::Plus => parent.plus = child,
                    Seg::Hash => parent.hash = child,
                    Seg::Exact(_) => parent.children.insert(level, child),
                }
                child
            };
        }
        cur
    }

    fn alloc(&mut self, parent: NodeId, level: LevelId) -> NodeId {
        let node = Node {
            parent,
            level,
            ..Node::default()
        };
        match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                let id = self.nodes.len();
                assert!(id < u32::MAX as usize, "more than 2^32 - 1 trie nodes");
                self.nodes.push(node);
                id as NodeId
            }
        }
    }

    /// Drops `node` and then its ancestors for as long as they hold nothing. `rev_levels` yields
    /// the levels of the node's path from the last one back (`path.rsplit('/')`), to release
    /// the interned strings.
    pub(crate) fn prune<'a>(&mut self, mut node: NodeId, mut rev_levels: impl Iterator<Item = &'a str>) {
        while node != ROOT && self.node(node).is_empty() {
            let (parent, level) = {
                let n = self.node(node);
                (n.parent, n.level)
            };
            let s = rev_levels.next().unwrap_or_default();
            let p = self.node_mut(parent);
            match level {
                PLUS_LEVEL => p.plus = NONE,
                HASH_LEVEL => p.hash = NONE,
                l => {
                    p.children.remove(l);
                    self.levels.release(s, l);
                }
            }
            self.nodes[node as usize] = Node::default();
            self.free.push(node);
            node = parent;
        }
        if self.nodes.len() == self.free.len() + 1 && self.node(ROOT).is_empty() {
            // Everything is gone: give the arena's memory back. Otherwise freed slots are
            // reused by later inserts (the arena keeps its high-water length).
            *self = Tree::default();
        }
    }

    /// The raw arena length (for tests and memory reports).
    #[cfg(test)]
    pub(crate) fn arena_len(&self) -> usize {
        self.nodes.len()
    }
}

impl<P: Payload> Tree<P> {
    /// The payloads of every arena slot (free slots hold empty payloads).
    pub(crate) fn payloads(&self) -> impl Iterator<Item = &P> + '_ {
        self.nodes.iter().map(|n| &n.payload)
    }
}
