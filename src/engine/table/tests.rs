//! Unit and property tests of the table.

use super::*;
use crate::wire::peer::{Neighbor, NodeRecord};

pub(super) fn na(id: u128, neighbors: &[u128]) -> Announcement {
    Announcement {
        id: NodeId(id),
        version: Version { inc: 1, seq: 1 },
        record: NodeRecord {
            name: "a".into(),
            internal_ip: None,
            addrs: vec![],
            public_ip: None,
            port: 4040,
            kind: "vm".into(),
            tags: Default::default(),
            version: String::new(),
            os: String::new(),
            started_ms: 0,
            deadend: false,
        },
        neighbors: neighbors
            .iter()
            .map(|&n| Neighbor {
                id: NodeId(n),
                rtt_us: Some(100),
                seen_as: None,
            })
            .collect(),
        left: false,
    }
}

#[test]
fn offer_keeps_neighbours_in_id_order() {
    let mut t = Table::default();
    assert!(t.offer(Arc::new(na(1, &[9, 3, 5])), 0));
    let ids: Vec<u128> = t
        .get(&NodeId(1))
        .expect("stored")
        .na
        .neighbors
        .iter()
        .map(|n| n.id.0)
        .collect();
    assert_eq!(ids, [3, 5, 9]);
}

/// A chain 1 - 2 - 3 - 4 seen from 1: hops, parents, first hops and
/// RTTs; then dropping 2 (an entry in the middle of the vector) must
/// leave every reference right: 3 loses its parent, 4 (moved into the
/// freed slot) is still found by id and still 3's child.
#[test]
fn tree_survives_removing_a_middle_entry() {
    let mut t = Table::default();
    for (id, nb) in [(1, &[2][..]), (2, &[1, 3]), (3, &[2, 4]), (4, &[3])] {
        t.offer(Arc::new(na(id, nb)), 0);
    }
    let (changes, _) = t.recompute(NodeId(1), &[(NodeId(2), Some(100))], 5);
    assert_eq!(changes.len(), 4, "all four become alive: {changes:?}");
    let e4 = t.get(&NodeId(4)).expect("4 known");
    assert_eq!(e4.hops(), Some(3));
    assert_eq!(t.rtt_us(e4), Some(300));
    assert_eq!(t.parent(e4), Some(NodeId(3)));
    assert_eq!(t.next_hop(&NodeId(4)), Some(NodeId(2)));
    assert_eq!(t.next_hop(&NodeId(1)), None);

    assert!(t.remove(&NodeId(2)).is_some());
    assert_eq!(t.len(), 3);
    assert!(t.get(&NodeId(2)).is_none());
    let e3 = t.get(&NodeId(3)).expect("3 known");
    assert_eq!(t.parent(e3), None, "its parent is gone");
    let e4 = t.get(&NodeId(4)).expect("4 still found by id");
    assert_eq!(e4.na.id, NodeId(4));
    assert_eq!(t.parent(e4), Some(NodeId(3)));
    assert_eq!(t.next_hop(&NodeId(4)), None, "the first hop is gone");

    // Without 2, 3 and 4 are cut off; they keep 4's parent.
    let (changes, _) = t.recompute(NodeId(1), &[], 6);
    let down: Vec<u128> = changes.iter().map(|c| c.id.0).collect();
    assert_eq!(down, [3, 4]);
    let e4 = t.get(&NodeId(4)).expect("4 known");
    assert_eq!((e4.status, e4.hops()), (Status::Unreachable, None));
    assert_eq!(t.parent(e4), Some(NodeId(3)));
    assert_eq!(t.remove(&NodeId(2)).map(|e| e.na.id), None);
}

/// Same versions of the same nodes, in any order: same fingerprint;
/// a newer version or a missing node changes it; alive counts follow
/// recomputes and removals.
#[test]
fn fingerprint_and_alive_count_follow_the_entries() {
    let (mut a, mut b) = (Table::default(), Table::default());
    for (id, nb) in [(1, &[2][..]), (2, &[1, 3]), (3, &[2])] {
        a.offer(Arc::new(na(id, nb)), 0);
    }
    for (id, nb) in [(3, &[2][..]), (1, &[2]), (2, &[1, 3])] {
        b.offer(Arc::new(na(id, nb)), 0);
    }
    assert_eq!(a.fingerprint(), b.fingerprint());
    let mut newer = na(3, &[2]);
    newer.version.seq += 1;
    assert!(b.offer(Arc::new(newer.clone()), 0));
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert!(a.offer(Arc::new(newer), 0));
    assert_eq!(a.fingerprint(), b.fingerprint());

    assert_eq!(a.alive_count(), 0);
    a.recompute(NodeId(1), &[(NodeId(2), None)], 1);
    assert_eq!(a.alive_count(), 3);
    let before = a.fingerprint();
    a.remove(&NodeId(3));
    assert_eq!(a.alive_count(), 2);
    assert_ne!(a.fingerprint(), before);
    b.remove(&NodeId(3));
    assert_eq!(a.fingerprint(), b.fingerprint());
}

/// Neighbours are looked up once per announcement: a newer version
/// that drops a link (no node added or removed) must still change the
/// tree, and one that restores it must bring it back.
#[test]
fn a_changed_announcement_changes_the_tree() {
    let mut t = Table::default();
    for (id, nb) in [(1, &[2][..]), (2, &[1, 3]), (3, &[2, 4]), (4, &[3])] {
        t.offer(Arc::new(na(id, nb)), 0);
    }
    let links = [(NodeId(2), Some(100))];
    t.recompute(NodeId(1), &links, 1);
    assert_eq!(t.alive_count(), 4);
    let mut v = 1;
    let mut set = |t: &mut Table, nb: &[u128]| {
        let mut a = na(3, nb);
        v += 1;
        a.version.seq = v;
        assert!(t.offer(Arc::new(a), 2));
        t.recompute(NodeId(1), &links, 2)
    };
    let (changes, _) = set(&mut t, &[2]);
    assert_eq!(changes.iter().map(|c| c.id.0).collect::<Vec<_>>(), [4]);
    assert_eq!(
        t.get(&NodeId(4)).map(|e| e.status),
        Some(Status::Unreachable)
    );
    let (changes, _) = set(&mut t, &[2, 4]);
    assert_eq!(
        changes.iter().map(|c| (c.id.0, c.to)).collect::<Vec<_>>(),
        [(4, Status::Alive)]
    );
    // Many versions later the lookups are compacted, not grown for ever.
    for _ in 0..100 {
        set(&mut t, &[2, 4]);
    }
    assert!(t.adj.len() <= 4 * 6, "adjacency grew to {}", t.adj.len());
    assert_eq!(t.get(&NodeId(4)).and_then(|e| e.hops()), Some(3));
}

/// A hub of degree 100, half of whose links are one-sided (the other end
/// does not list the hub), and a peer announcing 4,000 one-sided links:
/// only agreed edges count, through the searched path of `lists` as
/// through the scanned one.
#[test]
fn long_neighbour_lists_count_only_agreed_edges() {
    let mut t = Table::default();
    let hub_links: Vec<u128> = std::iter::once(1).chain(3..=102).collect();
    t.offer(Arc::new(na(1, &[2])), 0);
    t.offer(Arc::new(na(2, &hub_links)), 0);
    for n in 3..=102u128 {
        let back: &[u128] = if n <= 52 { &[2] } else { &[] };
        t.offer(Arc::new(na(n, back)), 0);
    }
    let liar: Vec<u128> = (1..=4000).collect();
    t.offer(Arc::new(na(5000, &liar)), 0);
    t.recompute(NodeId(1), &[(NodeId(2), Some(100))], 5);
    for n in 3..=102u128 {
        let want = if n <= 52 {
            Status::Alive
        } else {
            Status::Unreachable
        };
        assert_eq!(t.get(&NodeId(n)).map(|e| e.status), Some(want), "node {n}");
    }
    assert_eq!(
        t.get(&NodeId(5000)).map(|e| e.status),
        Some(Status::Unreachable),
        "nobody lists the liar back"
    );
}

/// A container seen from inside a docker host's star: each ping measures
/// its link to the host anew, and the next recompute (any node's change)
/// rewrote the RTT along the tree of every other container. The RTT is
/// walked when asked now: a new link RTT and one container more look at
/// a handful of entries, and the RTTs shown follow the new link at once.
#[test]
fn a_links_new_rtt_moves_nothing_below_it() {
    let (me, hub) = (1u128, 2u128);
    let leaves: Vec<u128> = (10..1_010).collect();
    let mut t = Table::default();
    let mut around: Vec<u128> = vec![me];
    around.extend(&leaves);
    t.offer(Arc::new(na(hub, &around)), 0);
    t.offer(Arc::new(na(me, &[hub])), 0);
    for &l in &leaves {
        t.offer(Arc::new(na(l, &[hub])), 0);
    }
    t.recompute(NodeId(me), &[(NodeId(hub), Some(100))], 5);
    let far = t.get(&NodeId(500)).expect("known");
    assert_eq!((t.rtt_us(far), far.hops()), (Some(200), Some(2)));
    // The link's RTT moved, and a container joined the host.
    around.push(2_000);
    let mut grown = na(hub, &around);
    grown.version.seq = 2;
    t.offer(Arc::new(grown), 0);
    t.offer(Arc::new(na(2_000, &[hub])), 0);
    t.recompute(NodeId(me), &[(NodeId(hub), Some(900))], 6);
    assert!(t.repaired < 10, "{} entries looked at again", t.repaired);
    let far = t.get(&NodeId(500)).expect("known");
    assert_eq!(t.rtt_us(far), Some(1_000));
    let new = t.get(&NodeId(2_000)).expect("known");
    assert_eq!((t.rtt_us(new), new.hops()), (Some(1_000), Some(2)));
}
