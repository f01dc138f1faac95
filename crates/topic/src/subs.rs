//! The subscribers at one trie node: none, one held inline (the common case: a device's own
//! topic), or a vector with a hash index once it grows.

use std::collections::HashMap;
use std::hash::Hash;

use crate::hash::SeededState;
use crate::options::SubscriptionOptions;

/// From this many entries on, a node keeps an index from client to position.
const INDEX_FROM: usize = 16;

/// One subscription stored at a node.
#[derive(Debug, Clone)]
pub(crate) struct Entry<C> {
    pub(crate) client: C,
    pub(crate) options: SubscriptionOptions,
}

/// A large set: the entries and an index from client to position.
#[derive(Debug)]
pub(crate) struct Indexed<C> {
    list: Vec<Entry<C>>,
    index: HashMap<C, u32, SeededState>,
}

/// A set of entries keyed by client: each client at most once.
///
/// The single entry is held inline so that a leaf with one subscriber costs no extra cache
/// line to read; a few entries are one vector (one more line); many get an index too.
#[derive(Debug, Default)]
pub(crate) enum Subs<C> {
    #[default]
    Empty,
    One(Entry<C>),
    Few(Vec<Entry<C>>),
    Many(Box<Indexed<C>>),
}

impl<C: Clone + Eq + Hash> Subs<C> {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Entry<C>] {
        match self {
            Subs::Empty => &[],
            Subs::One(e) => std::slice::from_ref(e),
            Subs::Few(v) => v,
            Subs::Many(m) => &m.list,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Subs::Empty)
    }

    fn position(&self, client: &C) -> Option<usize> {
        match self {
            Subs::Many(m) => m.index.get(client).map(|&i| i as usize),
            _ => self.as_slice().iter().position(|e| e.client == *client),
        }
    }

    /// Adds or replaces the client's entry; true if it was not there before.
    pub(crate) fn upsert(&mut self, client: C, options: SubscriptionOptions) -> bool {
        if let Some(i) = self.position(&client) {
            match self {
                Subs::Empty => unreachable!("position found in an empty set"),
                Subs::One(e) => e.options = options,
                Subs::Few(v) => v[i].options = options,
                Subs::Many(m) => m.list[i].options = options,
            }
            return false;
        }
        let entry = Entry { client, options };
        *self = match std::mem::take(self) {
            Subs::Empty => Subs::One(entry),
            Subs::One(first) => Subs::Few(vec![first, entry]),
            Subs::Few(mut v) => {
                v.push(entry);
                if v.len() >= INDEX_FROM {
                    let index = v
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (e.client.clone(), i as u32))
                        .collect();
                    Subs::Many(Box::new(Indexed { list: v, index }))
                } else {
                    Subs::Few(v)
                }
            }
            Subs::Many(mut m) => {
                let pos = m.list.len();
                assert!(
                    pos < u32::MAX as usize,
                    "too many subscribers on one filter"
                );
                m.index.insert(entry.client.clone(), pos as u32);
                m.list.push(entry);
                Subs::Many(m)
            }
        };
        true
    }

    /// Removes the client's entry and returns its options.
    pub(crate) fn remove(&mut self, client: &C) -> Option<SubscriptionOptions> {
        let i = self.position(client)?;
        let (gone, rest) = match std::mem::take(self) {
            Subs::Empty => return None,
            Subs::One(e) => (e, Subs::Empty),
            Subs::Few(mut v) => {
                let gone = v.swap_remove(i);
                (gone, Self::from_vec(v))
            }
            Subs::Many(mut m) => {
                let gone = m.list.swap_remove(i);
                m.index.remove(client);
                if let Some(moved) = m.list.get(i) {
                    m.index.insert(moved.client.clone(), i as u32);
                }
                if m.list.len() < INDEX_FROM / 2 {
                    (gone, Self::from_vec(m.list))
                } else {
                    if m.list.len() * 4 < m.list.capacity() {
                        let want = m.list.len() * 2;
                        m.list.shrink_to(want);
                        m.index.shrink_to(want);
                    }
                    (gone, Subs::Many(m))
                }
            }
        };
        *self = rest;
        Some(gone.options)
    }

    fn from_vec(mut v: Vec<Entry<C>>) -> Self {
        match v.len() {
            0 => Subs::Empty,
            1 => v.pop().map_or(Subs::Empty, Subs::One),
            _ => {
                if v.len() * 4 < v.capacity() {
                    let want = v.len() * 2;
                    v.shrink_to(want);
                }
                Subs::Few(v)
            }
        }
    }

    /// The options of the client's entry, if any.
    pub(crate) fn get(&self, client: &C) -> Option<&SubscriptionOptions> {
        self.position(client).map(|i| &self.as_slice()[i].options)
    }
}
