//! The subscribers at one trie node: a small vector, with a hash index once it grows.

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

/// A set of entries keyed by client: each client at most once.
#[derive(Debug)]
pub(crate) struct Subs<C> {
    list: Vec<Entry<C>>,
    index: Option<Box<HashMap<C, u32, SeededState>>>,
}

impl<C> Default for Subs<C> {
    fn default() -> Self {
        Subs {
            list: Vec::new(),
            index: None,
        }
    }
}

impl<C: Clone + Eq + Hash> Subs<C> {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Entry<C>] {
        &self.list
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn position(&self, client: &C) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(client).map(|&i| i as usize),
            None => self.list.iter().position(|e| e.client == *client),
        }
    }

    /// Adds or replaces the client's entry; true if it was not there before.
    pub(crate) fn upsert(&mut self, client: C, options: SubscriptionOptions) -> bool {
        if let Some(i) = self.position(&client) {
            self.list[i].options = options;
            return false;
        }
        let pos = self.list.len();
        assert!(pos < u32::MAX as usize, "too many subscribers on one filter");
        if let Some(ix) = &mut self.index {
            ix.insert(client.clone(), pos as u32);
        }
        self.list.push(Entry { client, options });
        if self.index.is_none() && self.list.len() >= INDEX_FROM {
            let ix = self
                .list
                .iter()
                .enumerate()
                .map(|(i, e)| (e.client.clone(), i as u32))
                .collect();
            self.index = Some(Box::new(ix));
        }
        true
    }

    /// Removes the client's entry and returns its options.
    pub(crate) fn remove(&mut self, client: &C) -> Option<SubscriptionOptions> {
        let i = self.position(client)?;
        let gone = self.list.swap_remove(i);
        if let Some(ix) = &mut self.index {
            ix.remove(client);
            if let Some(moved) = self.list.get(i) {
                ix.insert(moved.client.clone(), i as u32);
            }
            if self.list.len() < INDEX_FROM / 2 {
                self.index = None;
            }
        }
        if self.list.is_empty() {
            self.list = Vec::new();
        } else if self.list.len() * 4 < self.list.capacity() {
            self.list.shrink_to(self.list.len() * 2);
        }
        Some(gone.options)
    }

    /// The options of the client's entry, if any.
    pub(crate) fn get(&self, client: &C) -> Option<&SubscriptionOptions> {
        self.position(client).map(|i| &self.list[i].options)
    }
}
