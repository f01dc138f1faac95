//! Property tests: the trie and the retained index against brute-force models written here,
//! independently of the crate (level-by-level filter matching over plain lists).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;

use moco_topic::{Matches, RetainedIndex, SubscriptionOptions, SubscriptionTrie};
use proptest::prelude::*;

/// Level-by-level matching of one filter against one topic name, with the `$` rule.
fn brute_match(filter: &str, topic: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if t[0].starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    fn rec(f: &[&str], t: &[&str]) -> bool {
        match f.split_first() {
            None => t.is_empty(),
            Some((&"#", _)) => true,
            Some((&"+", rest)) => !t.is_empty() && rec(rest, &t[1..]),
            Some((lvl, rest)) => !t.is_empty() && t[0] == *lvl && rec(rest, &t[1..]),
        }
    }
    rec(&f, &t)
}

const LEVELS: &[&str] = &["a", "b", "c", "", "$x", "$SYS", "long-level-name"];

fn level() -> impl Strategy<Value = String> {
    prop::sample::select(LEVELS).prop_map(str::to_string)
}

fn topic() -> impl Strategy<Value = String> {
    // A lone empty level would be the empty string, which is no topic: use "/" instead.
    prop::collection::vec(level(), 1..=4).prop_map(|v| non_empty(v.join("/")))
}

fn filter() -> impl Strategy<Value = String> {
    let lvl = prop_oneof![4 => level(), 1 => Just("+".to_string())];
    (prop::collection::vec(lvl, 0..=4), any::<bool>()).prop_map(|(mut v, hash)| {
        if hash || v.is_empty() {
            v.push("#".into());
        }
        non_empty(v.join("/"))
    })
}

fn non_empty(s: String) -> String {
    if s.is_empty() {
        "/".into()
    } else {
        s
    }
}

fn options() -> impl Strategy<Value = SubscriptionOptions> {
    (
        0u8..=2,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1u32..6),
    )
        .prop_map(|(qos, no_local, rap, id)| SubscriptionOptions {
            qos,
            no_local,
            retain_as_published: rap,
            identifier: id.and_then(NonZeroU32::new),
            ..Default::default()
        })
}

/// A subscription: filter, optional share group, client, options.
fn sub() -> impl Strategy<Value = (String, Option<u8>, u64, SubscriptionOptions)> {
    (
        filter(),
        prop_oneof![4 => Just(None), 1 => (0u8..2).prop_map(Some)],
        0u64..6,
        options(),
    )
}

fn full_filter(f: &str, share: Option<u8>) -> String {
    match share {
        Some(g) => format!("$share/g{g}/{f}"),
        None => f.to_string(),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Agg {
    qos: u8,
    rap: bool,
    ids: BTreeSet<u32>,
}

type Model = HashMap<(String, Option<u8>, u64), SubscriptionOptions>;

fn check(trie: &SubscriptionTrie<u64>, model: &Model, topic: &str, publisher: Option<u64>) {
    let mut want: BTreeMap<u64, Agg> = BTreeMap::new();
    // (group, filter) -> members with their options
    let mut groups: BTreeMap<(u8, &str), Vec<(u64, SubscriptionOptions)>> = BTreeMap::new();
    for ((f, share, client), o) in model {
        if !brute_match(f, topic) {
            continue;
        }
        match share {
            Some(g) => groups.entry((*g, f)).or_default().push((*client, *o)),
            None => {
                if o.no_local && publisher == Some(*client) {
                    continue;
                }
                let a = want.entry(*client).or_insert(Agg {
                    qos: 0,
                    rap: false,
                    ids: BTreeSet::new(),
                });
                a.qos = a.qos.max(o.qos);
                a.rap |= o.retain_as_published;
                a.ids.extend(o.identifier.map(NonZeroU32::get));
            }
        }
    }
    let mut m = Matches::new();
    trie.matches(topic, publisher.as_ref(), &mut m);
    let mut got: BTreeMap<u64, Agg> = BTreeMap::new();
    for (d, ids) in m.iter() {
        let ids_vec: Vec<u32> = ids.iter().map(|i| i.get()).collect();
        let set: BTreeSet<u32> = ids_vec.iter().copied().collect();
        assert_eq!(set.len(), ids_vec.len(), "duplicate identifiers");
        let prev = got.insert(
            d.client,
            Agg {
                qos: d.qos,
                rap: d.retain_as_published,
                ids: set,
            },
        );
        assert!(prev.is_none(), "client {} delivered twice", d.client);
    }
    assert_eq!(got, want, "plain deliveries for {topic:?}");
    assert_eq!(
        m.shared().len(),
        groups.len(),
        "one per shared group for {topic:?}"
    );
    let members: Vec<(u64, SubscriptionOptions)> = groups.values().flatten().copied().collect();
    for s in m.shared() {
        assert!(
            members.contains(&(s.client, s.options)),
            "shared delivery to a non-member"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn trie_matches_brute_force(
        subs in prop::collection::vec(sub(), 0..40),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        topics in prop::collection::vec((topic(), prop::option::of(0u64..6)), 1..12),
    ) {
        let mut trie = SubscriptionTrie::new();
        let mut model: Model = HashMap::new();
        for (f, share, client, o) in &subs {
            let new = trie.insert(&full_filter(f, *share), *client, *o).unwrap();
            let was = model.insert((f.clone(), *share, *client), *o);
            prop_assert_eq!(new, was.is_none());
        }
        prop_assert_eq!(trie.len(), model.len());
        for (t, p) in &topics {
            check(&trie, &model, t, *p);
        }
        // Remove some, check again.
        let mut keys: Vec<_> = model.keys().cloned().collect();
        keys.sort();
        for ix in &removals {
            if keys.is_empty() {
                break;
            }
            let k = keys.remove(ix.index(keys.len()));
            let o = model.remove(&k).unwrap();
            prop_assert_eq!(trie.remove(&full_filter(&k.0, k.1), &k.2), Some(o));
            prop_assert_eq!(trie.remove(&full_filter(&k.0, k.1), &k.2), None);
        }
        prop_assert_eq!(trie.len(), model.len());
        for (t, p) in &topics {
            check(&trie, &model, t, *p);
        }
        // Remove the rest: the trie is empty again, down to its root.
        for k in keys {
            prop_assert!(trie.remove(&full_filter(&k.0, k.1), &k.2).is_some());
        }
        prop_assert_eq!(trie.len(), 0);
        prop_assert_eq!(trie.node_count(), 1);
        let mut m = Matches::new();
        for (t, p) in &topics {
            trie.matches(t, p.as_ref(), &mut m);
            prop_assert!(m.is_empty());
        }
    }

    #[test]
    fn retained_matches_brute_force(
        topics in prop::collection::vec(topic(), 0..40),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..15),
        filters in prop::collection::vec(filter(), 1..12),
    ) {
        let mut idx = RetainedIndex::new();
        let mut model: BTreeMap<String, usize> = BTreeMap::new();
        for (i, t) in topics.iter().enumerate() {
            prop_assert_eq!(idx.set(t, (t.clone(), i)).map(|v| v.1), model.insert(t.clone(), i));
        }
        let check = |idx: &RetainedIndex<(String, usize)>, model: &BTreeMap<String, usize>| {
            prop_assert_eq!(idx.len(), model.len());
            for f in &filters {
                let mut got: Vec<(String, usize)> = vec![];
                idx.for_each_match(f, |v| got.push(v.clone()));
                got.sort();
                let want: Vec<(String, usize)> = model
                    .iter()
                    .filter(|(t, _)| brute_match(f, t))
                    .map(|(t, i)| (t.clone(), *i))
                    .collect();
                prop_assert_eq!(got, want, "filter {:?}", f);
            }
            Ok(())
        };
        check(&idx, &model)?;
        let mut keys: Vec<String> = model.keys().cloned().collect();
        for ix in &removals {
            if keys.is_empty() {
                break;
            }
            let k = keys.remove(ix.index(keys.len()));
            prop_assert_eq!(idx.remove(&k).map(|v| v.1), model.remove(&k));
        }
        check(&idx, &model)?;
        for k in keys {
            prop_assert!(idx.remove(&k).is_some());
        }
        prop_assert!(idx.is_empty());
        prop_assert_eq!(idx.node_count(), 1);
    }

    #[test]
    fn reference_matcher_agrees(f in filter(), t in topic()) {
        prop_assert_eq!(moco_topic::filter_matches(&f, &t), brute_match(&f, &t));
        prop_assert!(moco_topic::validate_topic_filter(&f).is_ok());
        prop_assert!(moco_topic::validate_topic_name(&t).is_ok());
    }
}
