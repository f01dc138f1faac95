//! The ledger's private filter matcher agrees with `moco_topic::filter_matches` on every pair
//! of a set of filters and topic names (placeholders and subscription coverage aside, which
//! only the ledger's matcher handles).

use moco_auth::AclFilter;

const FILTERS: &[&str] = &[
    "#", "+", "+/+", "+/#", "a", "a/b", "a/+", "a/#", "a/+/c", "a/b/#", "+/b", "/a", "/+", "/#",
    "a//b", "a/+/+", "$SYS/#", "$SYS/+", "$SYS", "a/$b", "+/$b",
];

const TOPICS: &[&str] = &[
    "a", "a/b", "a/b/c", "a/x/c", "a/b/c/d", "b", "/a", "/", "a//b", "a/", "$SYS", "$SYS/x",
    "$SYS/x/y", "a/$b", "x/$b", "$b", "A/b",
];

#[test]
fn agrees_with_the_topic_crate_on_plain_topic_names() {
    let mut checked = 0;
    for f in FILTERS {
        let ours = AclFilter::parse(f).unwrap();
        for t in TOPICS {
            assert_eq!(
                ours.covers(t, "client", Some("user")),
                moco_topic::filter_matches(f, t),
                "filter {f:?} topic {t:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, FILTERS.len() * TOPICS.len());
}
