//! The table against the plainest model of what it computes: maps of
//! ids, the breadth-first search written out, on random sequences of
//! announcements (new versions with any neighbours, deadend or left),
//! removals and recomputes. Slots, neighbour runs (stale, rebuilt,
//! compacted), fingerprints and alive counts must never make a
//! difference a user could see.

use super::*;
use crate::engine::table::tests::na;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
enum Op {
    Offer {
        id: u128,
        neighbors: Vec<(u128, Option<u32>)>,
        deadend: bool,
        left: bool,
    },
    Remove(u128),
    Recompute(Vec<(u128, Option<u32>)>),
    /// Both ends announce the edge between them (`on`) or drop it.
    Edge(u128, u128, bool, Option<u32>),
    /// A node announces the same links, deadend or left or neither.
    Flags(u128, bool, bool),
}

const ME: u128 = 1;

/// Random changes among nodes 1 to `ids - 1`; removals `removes`
/// times in 8.
fn op(ids: u128, removes: u32) -> impl Strategy<Value = Op> {
    let links = proptest::collection::vec((1u128..ids, proptest::option::of(1u32..100)), 0..5);
    prop_oneof![
        4 => (1u128..ids, links.clone(), proptest::bool::weighted(0.1), proptest::bool::weighted(0.1))
            .prop_map(|(id, neighbors, deadend, left)| Op::Offer { id, neighbors, deadend, left }),
        removes => (2u128..ids).prop_map(Op::Remove),
        3 => links.prop_map(Op::Recompute),
        6 => (1u128..ids, 1u128..ids, proptest::bool::weighted(0.7), proptest::option::of(1u32..100))
            .prop_map(|(a, b, on, rtt)| Op::Edge(a, b, on, rtt)),
        1 => (2u128..ids, proptest::bool::weighted(0.5), proptest::bool::weighted(0.3))
            .prop_map(|(id, deadend, left)| Op::Flags(id, deadend, left)),
    ]
}

/// What the model keeps per node.
#[derive(Clone, Debug, Default)]
struct M {
    neighbors: BTreeMap<u128, Option<u32>>,
    leaf: bool,
    left: bool,
    version: Version,
    status: Option<Status>,
    parent: Option<u128>,
    hops: Option<u32>,
    next_hop: Option<u128>,
    rtt: Option<u32>,
}

/// The tree written out plainly: hops by breadth-first search, then
/// each node's parent the smallest id one hop closer that reaches it.
/// Returns the status changes as (id, from, to).
fn recompute(
    m: &mut BTreeMap<u128, M>,
    links: &[(u128, Option<u32>)],
) -> Vec<(u128, Option<Status>, Option<Status>)> {
    let before: BTreeMap<u128, Option<Status>> = m.iter().map(|(id, e)| (*id, e.status)).collect();
    let passes = |x: &u128| !(m[x].leaf || m[x].left);
    let agreed = |x: &u128, n: &u128| {
        m[x].neighbors.contains_key(n) && m.get(n).is_some_and(|e| e.neighbors.contains_key(x))
    };
    let mut first = links.to_vec();
    first.sort();
    first.dedup_by_key(|(n, _)| *n);
    let mine: BTreeMap<u128, Option<u32>> = first
        .into_iter()
        .filter(|(n, _)| *n != ME && m.contains_key(n))
        .collect();
    let mut hops: BTreeMap<u128, u32> = BTreeMap::new();
    hops.insert(ME, 0);
    let mut queue: std::collections::VecDeque<u128> = mine.keys().copied().collect();
    for n in &queue {
        hops.insert(*n, 1);
    }
    while let Some(x) = queue.pop_front() {
        if !passes(&x) {
            continue;
        }
        for n in m[&x].neighbors.keys() {
            if !hops.contains_key(n) && agreed(&x, n) {
                hops.insert(*n, hops[&x] + 1);
                queue.push_back(*n);
            }
        }
    }
    // id -> (hops, parent, first hop, rtt), closest first.
    let mut by_hops: Vec<(u32, u128)> = hops.iter().map(|(id, h)| (*h, *id)).collect();
    by_hops.sort();
    let mut found: BTreeMap<u128, (u32, Option<u128>, u128, Option<u32>)> = BTreeMap::new();
    for (h, n) in by_hops {
        let place = match h {
            0 => (0, None, ME, Some(0)),
            1 => (1, Some(ME), n, mine[&n]),
            _ => {
                let p = *m
                    .keys()
                    .find(|u| hops.get(u) == Some(&(h - 1)) && passes(u) && agreed(u, &n))
                    .expect("a node one hop closer reaches it");
                let (_, _, first_hop, rtt) = found[&p];
                let sum = rtt.zip(m[&p].neighbors[&n]).map(|(a, b)| a + b);
                (h, Some(p), first_hop, sum)
            }
        };
        found.insert(n, place);
    }
    for (id, e) in m.iter_mut() {
        let gone = if e.left {
            Status::Left
        } else {
            Status::Unreachable
        };
        match found.get(id) {
            Some(&(hops, parent, first_hop, rtt)) => {
                e.hops = Some(hops);
                e.rtt = rtt;
                if parent.is_some() || *id == ME {
                    e.parent = parent;
                }
                e.next_hop = (*id != ME).then_some(first_hop);
                e.status = Some(if e.left { Status::Left } else { Status::Alive });
            }
            None => {
                e.hops = None;
                e.rtt = None;
                e.next_hop = None;
                e.status = Some(gone);
            }
        }
    }
    m.iter()
        .filter(|(id, e)| before[*id] != e.status)
        .map(|(id, e)| (*id, before[id], e.status))
        .collect()
}

fn announcement(
    id: u128,
    seq: u64,
    nb: &BTreeMap<u128, Option<u32>>,
    deadend: bool,
    left: bool,
) -> Announcement {
    let mut a = na(id, &[]);
    a.version = Version { inc: 1, seq };
    a.record.deadend = deadend;
    a.left = left;
    a.neighbors = nb
        .iter()
        .map(|(&n, &rtt_us)| crate::wire::peer::Neighbor {
            id: NodeId(n),
            rtt_us,
            seen_as: None,
        })
        .collect();
    a
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn table_matches_the_model(ops in proptest::collection::vec(op(9, 1), 1..60)) {
        check(ops)?;
    }

    /// Bigger graphs, long runs of changes between removals: the
    /// repaired tree (not searched whole since the last removal)
    /// stays the model's.
    #[test]
    fn repairs_match_the_model(ops in proptest::collection::vec(op(40, 0), 1..400)) {
        check(ops)?;
    }
}

fn check(ops: Vec<Op>) -> Result<(), TestCaseError> {
    {
        let mut t = Table::default();
        let mut m: BTreeMap<u128, M> = BTreeMap::new();
        let mut seq = 1;
        t.offer(
            Arc::new(announcement(ME, seq, &BTreeMap::new(), false, false)),
            0,
        );
        m.insert(
            ME,
            M {
                version: Version { inc: 1, seq },
                status: Some(Status::Unreachable),
                ..M::default()
            },
        );
        for op in ops {
            match op {
                Op::Offer {
                    id,
                    neighbors,
                    deadend,
                    left,
                } => {
                    seq += 1;
                    let nb: BTreeMap<u128, Option<u32>> =
                        neighbors.into_iter().filter(|(n, _)| *n != id).collect();
                    let (deadend, left) = if id == ME {
                        (false, false)
                    } else {
                        (deadend, left)
                    };
                    prop_assert!(t.offer(Arc::new(announcement(id, seq, &nb, deadend, left)), 0));
                    let e = m.entry(id).or_insert_with(|| M {
                        status: Some(if left {
                            Status::Left
                        } else {
                            Status::Unreachable
                        }),
                        ..M::default()
                    });
                    e.neighbors = nb;
                    e.leaf = deadend;
                    e.left = left;
                    e.version = Version { inc: 1, seq };
                }
                Op::Edge(a, b, on, rtt) => {
                    if a == b {
                        continue;
                    }
                    for (x, y) in [(a, b), (b, a)] {
                        seq += 1;
                        let e = m.entry(x).or_insert_with(|| M {
                            status: Some(Status::Unreachable),
                            ..M::default()
                        });
                        if on {
                            e.neighbors.insert(y, rtt);
                        } else {
                            e.neighbors.remove(&y);
                        }
                        e.version = Version { inc: 1, seq };
                        let x_me = x == ME;
                        let na =
                            announcement(x, seq, &e.neighbors, e.leaf && !x_me, e.left && !x_me);
                        prop_assert!(t.offer(Arc::new(na), 0));
                    }
                }
                Op::Flags(id, deadend, left) => {
                    let Some(e) = m.get_mut(&id) else {
                        continue;
                    };
                    seq += 1;
                    e.leaf = deadend;
                    e.left = left;
                    e.version = Version { inc: 1, seq };
                    let na = announcement(id, seq, &e.neighbors, deadend, left);
                    prop_assert!(t.offer(Arc::new(na), 0));
                }
                Op::Remove(id) => {
                    prop_assert_eq!(t.remove(&NodeId(id)).is_some(), m.remove(&id).is_some());
                    for e in m.values_mut() {
                        if e.parent == Some(id) {
                            e.parent = None;
                        }
                        if e.next_hop == Some(id) {
                            e.next_hop = None;
                        }
                    }
                }
                Op::Recompute(links) => compare(&mut t, &mut m, &links)?,
            }
            prop_assert_eq!(t.len(), m.len());
            let ids: BTreeSet<u128> = t.iter().map(|(id, _)| id.0).collect();
            prop_assert_eq!(ids, m.keys().copied().collect::<BTreeSet<u128>>());
            let mut fresh = Table::default();
            for e in t.values() {
                fresh.offer(Arc::clone(&e.na), 0);
            }
            prop_assert_eq!(fresh.fingerprint(), t.fingerprint());
        }
    }
    Ok(())
}
/// Recomputes the table and the model with this node's `links`; their
/// changes and every node's place must agree.
fn compare(
    t: &mut Table,
    m: &mut BTreeMap<u128, M>,
    links: &[(u128, Option<u32>)],
) -> Result<(), TestCaseError> {
    let mine: Vec<(NodeId, Option<u32>)> = links.iter().map(|&(n, r)| (NodeId(n), r)).collect();
    let (changes, _) = t.recompute(NodeId(ME), &mine, 0);
    let want = recompute(m, links);
    let got: Vec<(u128, Option<Status>, Option<Status>)> = changes
        .iter()
        .map(|c| (c.id.0, Some(c.from), Some(c.to)))
        .collect();
    prop_assert_eq!(got, want);
    for (id, e) in m.iter() {
        let got = t.get(&NodeId(*id)).expect("in the table");
        prop_assert_eq!(Some(got.status), e.status, "status of {}", id);
        prop_assert_eq!(got.hops(), e.hops, "hops of {}", id);
        prop_assert_eq!(t.rtt_us(got), e.rtt, "rtt of {}", id);
        prop_assert_eq!(t.parent(got).map(|p| p.0), e.parent, "parent of {}", id);
        prop_assert_eq!(
            t.next_hop(&NodeId(*id)).map(|p| p.0),
            e.next_hop,
            "next hop of {}",
            id
        );
    }
    let alive = m
        .values()
        .filter(|e| e.status == Some(Status::Alive))
        .count();
    prop_assert_eq!(t.alive_count(), alive);
    Ok(())
}
