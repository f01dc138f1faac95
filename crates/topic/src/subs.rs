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

#[derive(Debug)]
pub(crate) struct Many<C> {
    list: Vec<Entry<C>>,
    index: Option<HashMap<C, u32, SeededState>>,
}

/// A set of entries keyed by client: each client at most once.
///
/// The single entry is held inline so that a leaf with one subscriber costs no extra cache
/// line to read.
#[derive(Debug, Default)]
pub(crate) enum Subs<C> {
    #[default]
    Empty,
    One(Entry<C>),
    Many(Box<Many<C>>),
}

impl<C: Clone + Eq + Hash> Subs<C> {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Entry<C>] {
        match self {
            Subs::Empty => &[],
            Subs::One(e) => std::slice::from_ref(e),
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
            Subs::Many(m) => match &m.index {
                Some(ix) => ix.get(client).map(|&i| i as usize),
                None => m.list.iter().position(|e| e.client == *client),
            },
            _ => self.as_slice().iter().position(|e| e.client == *client),
        }
    }

    /// Adds or replaces the client's entry; true if it was not there before.
    pub(crate) fn upsert(&mut self, client: C, options: SubscriptionOptions) -> bool {
        if let Some(i) = self.position(&client) {
            match self {
                Subs::Empty => unreachable!("position found in an empty set"),
                Subs::One(e) => e.options = options,
                Subs::Many(m) => m.list[i].options = options,
            }
            return false;
        }
        let entry = Entry { client, options };
        match std::mem::take(self) {
            Subs::Empty => *self = Subs::One(entry),
            Subs::One(first) => {
                *self = Subs::Many(Box::new(Many {
                    list: vec![first, entry],
                    index: None,
                }))
            }
            Subs::Many(mut m) => {
                let pos = m.list.len();
                assert!(pos < u32::MAX as usize, "too many subscribers on one filter");
                if let Some(ix) = &mut m.index {
                    ix.insert(entry.client.clone(), pos as u32);
                }
                m.list.push(entry);
                if m.index.is_none() && m.list.len() >= INDEX_FROM {
                    let ix = m
                        .list
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (e.client.clone(), i as u32))
                        .collect();
                    m.index = Some(ix);
                }
                *self = Subs::Many(m);
            }
        }
        true
    }

    /// Removes the client's entry and returns its options.
    pub(crate) fn remove(&mut self, client: &C) -> Option<SubscriptionOptions> {
        let i = self.position(client)?;
        match std::mem::take(self) {
            Subs::Empty => None,
            Subs::One(e) => Some(e.options),
            Subs::Many(mut m) => {
                let gone = m.list.swap_remove(i);
                if let Some(ix) = &mut m.index {
                    ix.remove(client);
                    if let Some(moved) = m.list.get(i) {
                        ix.insert(moved.client.clone(), i as u32);
                    }
                    if m.list.len() < INDEX_FROM / 2 {
                        m.index = None;
                    }
                }
                if m.list.len() == 1 {
                    if let Some(last) = m.list.pop() {
                        *self = Subs::One(last);
                    }
                } else {
                    if m.list.len() * 4 < m.list.capacity() {
                        let want = m.list.len() * 2;
                        m.list.shrink_to(want);
                    }
                    *self = Subs::Many(m);
                }
                Some(gone.options)
            }
        }
    }

    /// The options of the client's entry, if any.
    pub(crate) fn get(&self, client: &C) -> Option<&SubscriptionOptions> {
        self.position(client).map(|i| &self.as_slice()[i].options)
    }
}
