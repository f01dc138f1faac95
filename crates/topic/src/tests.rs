//! Unit tests of the trie and the retained index internals.

use std::num::NonZeroU32;

use crate::*;

fn opts(qos: u8, id: Option<u32>) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        identifier: id.and_then(NonZeroU32::new),
        ..Default::default()
    }
}

fn clients(m: &Matches<u64>) -> Vec<u64> {
    let mut v: Vec<u64> = m.deliveries().iter().map(|d| d.client).collect();
    v.sort_unstable();
    v
}

#[test]
fn exact_plus_hash_and_dollar() {
    let mut t = SubscriptionTrie::new();
    t.insert("a/b", 1, opts(0, None)).unwrap();
    t.insert("a/+", 2, opts(0, None)).unwrap();
    t.insert("a/#", 3, opts(0, None)).unwrap();
    t.insert("#", 4, opts(0, None)).unwrap();
    t.insert("+/b", 5, opts(0, None)).unwrap();
    t.insert("$SYS/#", 6, opts(0, None)).unwrap();
    t.insert("+/+", 7, opts(0, None)).unwrap();
    let mut m = Matches::new();
    t.matches("a/b", None, &mut m);
    assert_eq!(clients(&m), vec![1, 2, 3, 4, 5, 7]);
    t.matches("a", None, &mut m);
    assert_eq!(clients(&m), vec![3, 4]);
    t.matches("a/b/c", None, &mut m);
    assert_eq!(clients(&m), vec![3, 4]);
    t.matches("$SYS/b", None, &mut m);
    assert_eq!(clients(&m), vec![6]);
    t.matches("$SYS", None, &mut m);
    assert_eq!(clients(&m), vec![6]);
    t.matches("x/$SYS", None, &mut m);
    assert_eq!(clients(&m), vec![4, 7]);
    t.matches("/", None, &mut m);
    assert_eq!(clients(&m), vec![4, 7]);
}

#[test]
fn overlapping_aggregate_to_one_delivery() {
    let mut t = SubscriptionTrie::new();
    t.insert("a/+", 1, opts(1, Some(10))).unwrap();
    t.insert("a/#", 1, opts(2, Some(11))).unwrap();
    t.insert("a/b", 1, opts(0, None)).unwrap();
    t.insert("+/b", 1, opts(0, Some(10))).unwrap();
    let mut m = Matches::new();
    t.matches("a/b", None, &mut m);
    assert_eq!(m.deliveries().len(), 1);
    let d = &m.deliveries()[0];
    assert_eq!(d.qos, 2);
    let mut ids: Vec<u32> = m.identifiers(d).iter().map(|i| i.get()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![10, 11]);
}

#[test]
fn one_filter_many_subscribers_each_get_their_own_options() {
    // Every hit comes from one node (the single-node path of the aggregation).
    let mut t = SubscriptionTrie::new();
    for c in 0..40u64 {
        let id = (c % 3 == 0).then_some(c as u32 + 100);
        let mut o = opts((c % 3) as u8, id);
        o.retain_as_published = c % 2 == 0;
        t.insert("a/b", c, o).unwrap();
    }
    let mut m = Matches::new();
    t.matches("a/b", None, &mut m);
    assert_eq!(clients(&m), (0..40).collect::<Vec<_>>());
    for (d, ids) in m.iter() {
        assert_eq!(d.qos, (d.client % 3) as u8);
        assert_eq!(d.retain_as_published, d.client % 2 == 0);
        let want: Vec<u32> = (d.client % 3 == 0)
            .then_some(d.client as u32 + 100)
            .into_iter()
            .collect();
        assert_eq!(ids.iter().map(|i| i.get()).collect::<Vec<_>>(), want);
    }
}

#[test]
fn drain_moves_out_what_iter_shows() {
    let mut t = SubscriptionTrie::new();
    t.insert("a/+", 1, opts(1, Some(10))).unwrap();
    t.insert("a/#", 1, opts(2, Some(11))).unwrap();
    t.insert("a/b", 2, opts(0, None)).unwrap();
    t.insert("$share/g/a/b", 3, opts(1, None)).unwrap();
    let mut m = Matches::new();
    t.matches("a/b", None, &mut m);
    let mut seen: Vec<(u64, u8, Vec<u32>)> = m
        .iter()
        .map(|(d, ids)| (d.client, d.qos, ids.iter().map(|i| i.get()).collect()))
        .collect();
    let mut drained: Vec<(u64, u8, Vec<u32>)> = m
        .drain()
        .map(|(d, ids)| (d.client, d.qos, ids.iter().map(|i| i.get()).collect()))
        .collect();
    for v in [&mut seen, &mut drained] {
        v.sort();
        for (_, _, ids) in v.iter_mut() {
            ids.sort_unstable();
        }
    }
    assert_eq!(drained, seen);
    assert_eq!(drained.len(), 2);
    let shared: Vec<u64> = m.drain_shared().map(|s| s.client).collect();
    assert_eq!(shared, vec![3]);
    assert!(m.is_empty());
}

#[test]
fn many_hits_aggregate_via_sort() {
    let mut t = SubscriptionTrie::new();
    let filters = [
        "a/b/c", "a/b/+", "a/+/c", "+/b/c", "a/#", "a/b/#", "#", "+/+/+",
    ];
    for c in 0..10u64 {
        for (i, f) in filters.iter().enumerate() {
            t.insert(f, c, opts((i % 3) as u8, Some(i as u32 + 1)))
                .unwrap();
        }
    }
    let mut m = Matches::new();
    t.matches("a/b/c", None, &mut m);
    assert_eq!(m.deliveries().len(), 10);
    for (d, ids) in m.iter() {
        assert_eq!(d.qos, 2);
        let mut ids: Vec<u32> = ids.iter().map(|i| i.get()).collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    }
}

#[test]
fn no_local_skips_own_publishes() {
    let mut t = SubscriptionTrie::new();
    let nl = SubscriptionOptions {
        no_local: true,
        ..opts(1, None)
    };
    t.insert("a", 1, nl).unwrap();
    t.insert("a", 2, nl).unwrap();
    t.insert("#", 1, opts(0, Some(5))).unwrap();
    let mut m = Matches::new();
    t.matches("a", Some(&1), &mut m);
    // Client 1 still gets it through "#", at that subscription's QoS and identifier only.
    assert_eq!(clients(&m), vec![1, 2]);
    let d1 = m.deliveries().iter().find(|d| d.client == 1).unwrap();
    assert_eq!(d1.qos, 0);
    assert_eq!(m.identifiers(d1), &[NonZeroU32::new(5).unwrap()]);
    t.matches("a", Some(&3), &mut m);
    assert_eq!(
        m.deliveries().iter().find(|d| d.client == 1).unwrap().qos,
        1
    );
}

#[test]
fn retain_as_published_is_or() {
    let mut t = SubscriptionTrie::new();
    let rap = SubscriptionOptions {
        retain_as_published: true,
        ..opts(0, None)
    };
    t.insert("a/+", 1, rap).unwrap();
    t.insert("a/b", 1, opts(0, None)).unwrap();
    t.insert("a/b", 2, opts(0, None)).unwrap();
    let mut m = Matches::new();
    t.matches("a/b", None, &mut m);
    for d in m.deliveries() {
        assert_eq!(d.retain_as_published, d.client == 1);
    }
}

#[test]
fn resubscribe_replaces_options() {
    let mut t = SubscriptionTrie::new();
    assert!(t.insert("a/b", 1, opts(0, None)).unwrap());
    assert!(!t.insert("a/b", 1, opts(2, Some(3))).unwrap());
    assert_eq!(t.len(), 1);
    assert_eq!(t.get("a/b", &1), Some(&opts(2, Some(3))));
    assert!(t.insert("$share/g/a/b", 1, opts(1, None)).unwrap());
    assert!(!t.insert("$share/g/a/b", 1, opts(2, None)).unwrap());
    assert!(t.insert("$share/h/a/b", 1, opts(2, None)).unwrap());
    assert_eq!(t.len(), 3);
    assert_eq!(t.get("$share/g/a/b", &1).map(|o| o.qos), Some(2));
}

#[test]
fn insert_rejects_invalid_filters() {
    let mut t = SubscriptionTrie::new();
    assert!(t.insert("a/#/b", 1u64, opts(0, None)).is_err());
    assert!(t.insert("$share/g", 1u64, opts(0, None)).is_err());
    assert!(t.insert("", 1u64, opts(0, None)).is_err());
    assert_eq!(t.len(), 0);
    assert_eq!(t.node_count(), 1);
    assert_eq!(t.remove("a/#/b", &1), None);
}

#[test]
fn remove_prunes_to_root() {
    let mut t = SubscriptionTrie::new();
    let fs = [
        "a/b/c",
        "a/b",
        "a/+/c",
        "a/#",
        "#",
        "+",
        "/",
        "//",
        "$share/g/a/b",
        "a//#",
    ];
    for f in fs {
        t.insert(f, 1u64, opts(0, None)).unwrap();
        t.insert(f, 2u64, opts(0, None)).unwrap();
    }
    assert_eq!(t.len(), 2 * fs.len());
    assert!(t.node_count() > 1);
    for f in fs {
        assert!(t.remove(f, &1).is_some());
    }
    assert_eq!(t.remove("a/b", &1), None);
    assert_eq!(t.remove("a/b/c/d", &2), None);
    assert_eq!(t.remove_client(&2, fs), fs.len());
    assert_eq!(t.len(), 0);
    assert_eq!(t.node_count(), 1);
    assert_eq!(t.tree_arena_len(), 1);
}

#[test]
fn partial_removal_keeps_siblings() {
    let mut t = SubscriptionTrie::new();
    t.insert("a/b/c", 1u64, opts(0, None)).unwrap();
    t.insert("a/b/d", 1u64, opts(0, None)).unwrap();
    t.insert("a/b", 2u64, opts(0, None)).unwrap();
    let n = t.node_count();
    t.remove("a/b/c", &1).unwrap();
    assert_eq!(t.node_count(), n - 1);
    let mut m = Matches::new();
    t.matches("a/b/d", None, &mut m);
    assert_eq!(clients(&m), vec![1]);
    t.matches("a/b", None, &mut m);
    assert_eq!(clients(&m), vec![2]);
    t.matches("a/b/c", None, &mut m);
    assert!(m.is_empty());
    // Level strings are reused after pruning.
    t.insert("a/b/c", 3u64, opts(0, None)).unwrap();
    t.matches("a/b/c", None, &mut m);
    assert_eq!(clients(&m), vec![3]);
}

#[test]
fn big_fanout_node_uses_index() {
    let mut t = SubscriptionTrie::new();
    for c in 0..1000u64 {
        assert!(t.insert("hot", c, opts((c % 3) as u8, None)).unwrap());
    }
    for c in 0..1000u64 {
        assert!(!t.insert("hot", c, opts(0, None)).unwrap());
    }
    for c in (0..1000u64).step_by(2) {
        assert!(t.remove("hot", &c).is_some());
    }
    let mut m = Matches::new();
    t.matches("hot", None, &mut m);
    let got = clients(&m);
    assert_eq!(got, (0..1000).filter(|c| c % 2 == 1).collect::<Vec<_>>());
    for c in (1..1000u64).step_by(2) {
        assert!(t.remove("hot", &c).is_some(), "{c}");
    }
    assert_eq!(t.node_count(), 1);
}

#[test]
fn shared_round_robin_is_fair() {
    let mut t = SubscriptionTrie::new();
    for c in 0..4u64 {
        t.insert("$share/g/s/+", c, opts(1, None)).unwrap();
    }
    let mut m = Matches::new();
    let mut count = [0; 4];
    for _ in 0..400 {
        t.matches("s/x", None, &mut m);
        assert_eq!(m.shared().len(), 1);
        assert!(m.deliveries().is_empty());
        count[m.shared()[0].client as usize] += 1;
    }
    assert_eq!(count, [100; 4]);
}

#[test]
fn shared_and_plain_both_delivered() {
    let mut t = SubscriptionTrie::new();
    t.insert("$share/g/a", 1u64, opts(1, Some(9))).unwrap();
    t.insert("$share/h/a", 1u64, opts(0, None)).unwrap();
    t.insert("$share/g/+", 2u64, opts(0, None)).unwrap();
    t.insert("a", 1u64, opts(2, None)).unwrap();
    let mut m = Matches::new();
    t.matches("a", None, &mut m);
    assert_eq!(clients(&m), vec![1]);
    // Groups g on "a", h on "a", g on "+": three shared deliveries.
    assert_eq!(m.shared().len(), 3);
    let from_g_a = m
        .shared()
        .iter()
        .find(|s| s.options.identifier.is_some())
        .unwrap();
    assert_eq!(from_g_a.client, 1);
    assert_eq!(from_g_a.options.qos, 1);
}

#[test]
fn shared_members_join_and_leave_while_flowing() {
    for strategy in [
        ShareStrategy::RoundRobin,
        ShareStrategy::Random,
        ShareStrategy::StickyByPublisher,
    ] {
        let mut t = SubscriptionTrie::with_strategy(strategy);
        let mut members: Vec<u64> = vec![];
        let mut m = Matches::new();
        let mut got = std::collections::HashMap::<u64, usize>::new();
        for step in 0..2000u64 {
            // A join every 7 messages, a leave every 11, never fewer than zero members.
            if step % 7 == 0 {
                let c = step;
                t.insert("$share/g/t/#", c, opts(0, None)).unwrap();
                members.push(c);
            }
            if step % 11 == 0 && members.len() > 1 {
                let c = members.remove((step as usize / 11) % members.len());
                assert!(t.remove("$share/g/t/#", &c).is_some());
            }
            assert_eq!(t.share_group_len("$share/g/t/#"), members.len());
            let publisher = step % 5;
            t.matches("t/x", Some(&publisher), &mut m);
            assert_eq!(m.shared().len(), 1, "{strategy:?}");
            let who = m.shared()[0].client;
            assert!(members.contains(&who), "{strategy:?} picked a leaver");
            *got.entry(who).or_default() += 1;
        }
        for c in members.clone() {
            t.remove("$share/g/t/#", &c).unwrap();
        }
        t.matches("t/x", None, &mut m);
        assert!(m.is_empty());
        assert_eq!(t.node_count(), 1);
        if strategy != ShareStrategy::StickyByPublisher {
            // Spread: many distinct members were picked.
            assert!(got.len() > 50, "{strategy:?}: {}", got.len());
        }
    }
}

#[test]
fn sticky_keeps_publisher_on_one_member() {
    let mut t = SubscriptionTrie::with_strategy(ShareStrategy::StickyByPublisher);
    for c in 0..8u64 {
        t.insert("$share/g/x", c, opts(0, None)).unwrap();
    }
    let mut m = Matches::new();
    let mut seen = std::collections::HashSet::new();
    for p in 100..200u64 {
        t.matches("x", Some(&p), &mut m);
        let first = m.shared()[0].client;
        for _ in 0..5 {
            t.matches("x", Some(&p), &mut m);
            assert_eq!(m.shared()[0].client, first);
        }
        seen.insert(first);
    }
    assert!(seen.len() > 4, "publishers spread over members");
}

#[test]
fn random_strategy_spreads() {
    let mut t = SubscriptionTrie::with_strategy(ShareStrategy::Random);
    for c in 0..4u64 {
        t.insert("$share/g/x", c, opts(0, None)).unwrap();
    }
    let mut m = Matches::new();
    let mut count = [0; 4];
    for _ in 0..4000 {
        t.matches("x", None, &mut m);
        count[m.shared()[0].client as usize] += 1;
    }
    assert!(count.iter().all(|&c| c > 800), "{count:?}");
}

#[test]
fn retained_basics_and_dollar() {
    let mut r = RetainedIndex::new();
    for t in ["a", "a/b", "a/b/c", "a//c", "$SYS/x", "$SYS", "b/$x", "/"] {
        assert!(r.set(t, t.to_string()).is_none());
    }
    assert_eq!(r.set("a", "A".into()), Some("a".to_string()));
    assert_eq!(r.len(), 8);
    let find = |f: &str| {
        let mut v: Vec<String> = vec![];
        r.for_each_match(f, |s| v.push(s.clone()));
        v.sort();
        v
    };
    assert_eq!(find("a/#"), vec!["A", "a//c", "a/b", "a/b/c"]);
    assert_eq!(find("a/+"), vec!["a/b"]);
    assert_eq!(find("a/+/c"), vec!["a//c", "a/b/c"]);
    assert_eq!(find("#"), vec!["/", "A", "a//c", "a/b", "a/b/c", "b/$x"]);
    assert_eq!(find("+"), vec!["A"]);
    assert_eq!(find("+/+"), vec!["/", "a/b", "b/$x"]);
    assert_eq!(find("$SYS/#"), vec!["$SYS", "$SYS/x"]);
    assert_eq!(find("$SYS"), vec!["$SYS"]);
    assert_eq!(find("nope/#"), Vec::<String>::new());
    assert_eq!(r.get("a/b").map(String::as_str), Some("a/b"));
    assert_eq!(r.values().count(), 8);
    for t in ["a", "a/b", "a/b/c", "a//c", "$SYS/x", "$SYS", "b/$x", "/"] {
        assert!(r.remove(t).is_some());
        assert!(r.remove(t).is_none());
    }
    assert!(r.is_empty());
    assert_eq!(r.node_count(), 1);
}

#[test]
fn structures_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<SubscriptionTrie<u64>>();
    check::<SubscriptionTrie<std::sync::Arc<str>>>();
    check::<RetainedIndex<Vec<u8>>>();
    check::<Matches<u64>>();
}

#[test]
fn arc_str_client_keys() {
    use std::sync::Arc;
    let mut t: SubscriptionTrie<Arc<str>> = SubscriptionTrie::new();
    let a: Arc<str> = "client-a".into();
    t.insert("x/+", a.clone(), opts(1, None)).unwrap();
    t.insert("x/#", a.clone(), opts(0, None)).unwrap();
    let mut m = Matches::new();
    t.matches("x/y", Some(&"other".into()), &mut m);
    assert_eq!(m.deliveries().len(), 1);
    assert_eq!(&*m.deliveries()[0].client, "client-a");
}

#[test]
fn trie_nodes_fit_a_cache_line() {
    use crate::tree::{Align64, Node};
    use std::mem::{align_of, size_of};
    type N<C> = Node<crate::trie::SubNodeForTests<C>, Align64>;
    assert_eq!(size_of::<N<u64>>(), 64);
    assert_eq!(align_of::<N<u64>>(), 64);
    assert_eq!(size_of::<N<std::sync::Arc<str>>>(), 64);
}
