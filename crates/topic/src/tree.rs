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

/// Interned level id.
pub(crate) type LevelId = u32;

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
    // Boxed on purpose: 8 bytes in the node instead of 32 keeps a node in one cache line.
    #[allow(clippy::box_collection)]
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

/// A zero-sized marker that aligns each node to a 64-byte cache line (`[Align64; 0]` field):
/// a node is then read with one cache-line fill instead of two. Used by the subscription trie,
/// whose nodes are 64 bytes or less for 8- and 16-byte client keys.
#[derive(Debug, Default, Clone, Copy)]
#[repr(align(64))]
pub(crate) struct Align64;

#[derive(Debug)]
pub(crate) struct Node<P, A = ()> {
    _align: [A; 0],
    pub(crate) plus: NodeId,
    pub(crate) hash: NodeId,
    pub(crate) children: Children,
    pub(crate) payload: P,
}

impl<P: Default, A> Default for Node<P, A> {
    fn default() -> Self {
        Node {
            _align: [],
            plus: NONE,
            hash: NONE,
            children: Children::Empty,
            payload: P::default(),
        }
    }
}

impl<P: Payload, A> Node<P, A> {
    fn is_empty(&self) -> bool {
        self.plus == NONE
            && self.hash == NONE
            && self.children.is_empty()
            && self.payload.is_empty()
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
                assert!(
                    id < LevelId::MAX,
                    "more than 2^32 - 1 distinct topic levels"
                );
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

/// An arena trie over topic levels with payload `P` on each node (`A`: node alignment marker).
#[derive(Debug)]
pub(crate) struct Tree<P, A = ()> {
    nodes: Vec<Node<P, A>>,
    free: Vec<NodeId>,
    levels: Interner,
    /// Scratch: the node ids along the path last looked up by `find_path`.
    path: Vec<NodeId>,
}

impl<P: Payload, A> Default for Tree<P, A> {
    fn default() -> Self {
        Tree {
            nodes: vec![Node::default()],
            free: Vec::new(),
            levels: Interner::default(),
            path: Vec::new(),
        }
    }
}

impl<P: Payload, A> Tree<P, A> {
    #[inline]
    pub(crate) fn node(&self, id: NodeId) -> &Node<P, A> {
        &self.nodes[id as usize]
    }

    #[inline]
    pub(crate) fn node_mut(&mut self, id: NodeId) -> &mut Node<P, A> {
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

    #[inline]
    fn step(&self, cur: NodeId, seg: Seg<'_>) -> NodeId {
        let n = self.node(cur);
        match seg {
            Seg::Plus => n.plus,
            Seg::Hash => n.hash,
            Seg::Exact(s) => match self.levels.get(s) {
                Some(l) => n.children.get(l),
                None => NONE,
            },
        }
    }

    /// The node at the end of `path`, if it exists.
    pub(crate) fn find<'a>(&self, path: impl IntoIterator<Item = Seg<'a>>) -> Option<NodeId> {
        let mut cur = ROOT;
        for seg in path {
            cur = self.step(cur, seg);
            if cur == NONE {
                return None;
            }
        }
        Some(cur)
    }

    /// Like [`Tree::find`], and remembers the nodes along the way for [`Tree::prune_path`].
    pub(crate) fn find_path<'a>(
        &mut self,
        path: impl IntoIterator<Item = Seg<'a>>,
    ) -> Option<NodeId> {
        let mut ids = std::mem::take(&mut self.path);
        ids.clear();
        let mut cur = ROOT;
        for seg in path {
            ids.push(cur);
            cur = self.step(cur, seg);
            if cur == NONE {
                self.path = ids;
                return None;
            }
        }
        ids.push(cur);
        self.path = ids;
        Some(cur)
    }

    /// The node at the end of `path`, created with its missing ancestors.
    pub(crate) fn find_or_create<'a>(&mut self, path: impl IntoIterator<Item = Seg<'a>>) -> NodeId {
        let mut cur = ROOT;
        for seg in path {
            let next = self.step(cur, seg);
            cur = if next != NONE {
                next
            } else {
                let child = self.alloc();
                match seg {
                    Seg::Plus => self.node_mut(cur).plus = child,
                    Seg::Hash => self.node_mut(cur).hash = child,
                    Seg::Exact(s) => {
                        let level = self.levels.acquire(s);
                        self.node_mut(cur).children.insert(level, child);
                    }
                }
                child
            };
        }
        cur
    }

    fn alloc(&mut self) -> NodeId {
        match self.free.pop() {
            Some(id) => id,
            None => {
                let id = self.nodes.len();
                assert!(id < u32::MAX as usize, "more than 2^32 - 1 trie nodes");
                self.nodes.push(Node::default());
                id as NodeId
            }
        }
    }

    /// After a removal at the end of the path last found by [`Tree::find_path`], drops the
    /// nodes of that path that hold nothing any more, deepest first. `rev_segs` yields the
    /// path's levels from the last one back (e.g. `filter.rsplit('/').map(Seg::filter)`).
    pub(crate) fn prune_path<'a>(&mut self, rev_segs: impl Iterator<Item = Seg<'a>>) {
        let ids = std::mem::take(&mut self.path);
        // ids[0] is the root, ids[i] the node reached by the i-th level.
        for (depth, seg) in (1..ids.len()).rev().zip(rev_segs) {
            let node = ids[depth];
            if !self.node(node).is_empty() {
                break;
            }
            let parent = ids[depth - 1];
            match seg {
                Seg::Plus => self.node_mut(parent).plus = NONE,
                Seg::Hash => self.node_mut(parent).hash = NONE,
                Seg::Exact(s) => {
                    if let Some(l) = self.levels.get(s) {
                        self.node_mut(parent).children.remove(l);
                        self.levels.release(s, l);
                    }
                }
            }
            self.nodes[node as usize] = Node::default();
            self.free.push(node);
        }
        self.path = ids;
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

impl<P: Payload, A> Tree<P, A> {
    /// The payloads of every arena slot (free slots hold empty payloads).
    pub(crate) fn payloads(&self) -> impl Iterator<Item = &P> + '_ {
        self.nodes.iter().map(|n| &n.payload)
    }
}
