//! What the table computes: the graph (an edge counts where both ends
//! list each other), the shortest-path tree from this node by breadth-first
//! search, next hops, statuses and last-seen times, and what changed.
//! Neighbours are looked up as slots once per announcement
//! ([`Table::refresh_adj`]), not once per recompute.

use super::*;

/// How the search reached a slot: hops, parent, first hop, RTT along the
/// tree ([`NONE`] where not).
#[derive(Clone, Copy)]
struct Found {
    hops: u32,
    parent: u32,
    first: u32,
    rtt: u32,
}

impl Found {
    const UNSEEN: Found = Found {
        hops: NONE,
        parent: NONE,
        first: NONE,
        rtt: NONE,
    };
}

/// A status change found by [`Table::recompute`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The node.
    pub id: NodeId,
    /// Status before.
    pub from: Status,
    /// Status now.
    pub to: Status,
    /// Its status was never known here before: a node just heard of, not
    /// one coming back.
    pub first: bool,
}

impl Table {
    /// Looks up the neighbours of the entries that changed, or of all.
    fn refresh_adj(&mut self) {
        let rebuild = self.all_stale || self.garbage > self.adj.len() / 2;
        let todo: Vec<u32> = if rebuild {
            self.adj.clear();
            self.garbage = 0;
            self.stale.clear();
            (0..self.entries.len() as u32).collect()
        } else {
            std::mem::take(&mut self.stale)
        };
        self.all_stale = false;
        for s in todo {
            let Some(e) = self.entries.get_mut(s as usize) else {
                continue;
            };
            e.adj_at = self.adj.len() as u32;
            e.adj_len = u16::try_from(e.na.neighbors.len()).unwrap_or(u16::MAX);
            e.flags = (e.flags & (KNOWN | TOLD_MASK))
                | match (e.na.left, e.na.record.deadend) {
                    (true, _) => LEAF | LEFT,
                    (false, true) => LEAF,
                    (false, false) => 0,
                };
            self.adj
                .extend(e.na.neighbors.iter().take(e.adj_len.into()).map(|n| {
                    let slot = self.slots.get(&n.id).copied().unwrap_or(NONE);
                    (slot, rtt_code(n.rtt_us))
                }));
        }
    }

    /// The neighbours of the entry in slot `s`, as (slot, RTT).
    fn adj_of(&self, s: u32) -> &[(u32, u32)] {
        let e = &self.entries[s as usize];
        let at = e.adj_at as usize;
        self.adj
            .get(at..at + usize::from(e.adj_len))
            .unwrap_or_default()
    }

    /// Whether the announcement in slot `n` lists the node in slot `x` as a
    /// neighbour: the other half of an edge. A short run is scanned; a long
    /// one (a hub, or a peer announcing thousands of one-sided links) is
    /// searched by id in the announcement, which `offer` keeps sorted, so
    /// one edge check never costs the degree.
    fn lists_slot(&self, n: u32, x: u32) -> bool {
        let run = self.adj_of(n);
        if run.len() <= 16 {
            return run.iter().any(|&(m, _)| m == x);
        }
        let (Some(en), Some(ex)) = (self.entries.get(n as usize), self.entries.get(x as usize))
        else {
            return false;
        };
        en.na
            .neighbors
            .binary_search_by_key(&ex.na.id, |nb| nb.id)
            .is_ok()
    }

    /// Whether `a` announces a link to `b`. Neighbours are kept sorted
    /// (see [`Table::offer`]), so it costs a search, not the degree.
    pub fn lists(&self, a: &NodeId, b: &NodeId) -> bool {
        self.get(a)
            .is_some_and(|e| e.na.neighbors.binary_search_by_key(b, |n| n.id).is_ok())
    }

    /// Recomputes reachability by breadth-first search from `me` over edges
    /// that both ends agree on. `my_links` are this node's live neighbours
    /// with their RTT, which count as edges on their own: a live link is
    /// proof enough. Deadend and departed nodes are leaves: nothing is
    /// routed through them. Returns the status changes, and the nodes whose
    /// place in the tree changed.
    pub fn recompute(
        &mut self,
        me: NodeId,
        my_links: &[(NodeId, Option<u32>)],
        now_ms: u64,
    ) -> (Vec<Change>, Vec<NodeId>) {
        let Some(&root) = self.slots.get(&me) else {
            return (Vec::new(), Vec::new());
        };
        self.refresh_adj();
        let found = self.search(root, my_links);
        self.apply(root, &found, now_ms)
    }

    /// The breadth-first search: how each slot is reached, if it is.
    fn search(&self, root: u32, my_links: &[(NodeId, Option<u32>)]) -> Vec<Found> {
        let sum = |a: u32, b: u32| {
            if a == NONE || b == NONE {
                NONE
            } else {
                a.saturating_add(b).min(NONE - 1)
            }
        };
        let mut found = vec![Found::UNSEEN; self.entries.len()];
        let mut queue = VecDeque::new();
        found[root as usize] = Found {
            hops: 0,
            parent: NONE,
            first: root,
            rtt: 0,
        };
        let mut first: Vec<(NodeId, Option<u32>)> = my_links.to_vec();
        first.sort();
        first.dedup_by_key(|(n, _)| *n);
        for (n, r) in first {
            let Some(&s) = self.slots.get(&n) else {
                continue;
            };
            if found[s as usize].hops == NONE {
                found[s as usize] = Found {
                    hops: 1,
                    parent: root,
                    first: s,
                    rtt: rtt_code(r),
                };
                queue.push_back(s);
            }
        }
        while let Some(x) = queue.pop_front() {
            if self.entries[x as usize].flags & LEAF != 0 {
                continue;
            }
            let fx = found[x as usize];
            // In id order (see `offer`).
            for &(n, rtt) in self.adj_of(x) {
                if n == NONE || found[n as usize].hops != NONE {
                    continue;
                }
                if self.lists_slot(n, x) {
                    found[n as usize] = Found {
                        hops: fx.hops + 1,
                        parent: x,
                        first: fx.first,
                        rtt: sum(fx.rtt, rtt),
                    };
                    queue.push_back(n);
                }
            }
        }
        found
    }

    /// Sets every entry's status and place from the search; returns the
    /// status changes and the nodes that moved in the tree.
    fn apply(&mut self, root: u32, found: &[Found], now_ms: u64) -> (Vec<Change>, Vec<NodeId>) {
        let mut changes = Vec::new();
        let mut moved = Vec::new();
        self.alive = 0;
        for (s, e) in self.entries.iter_mut().enumerate() {
            let left = e.flags & LEFT != 0;
            let before = e.status;
            let place = (e.parent, e.hops);
            let f = found[s];
            if f.hops != NONE {
                e.rtt_us = f.rtt;
                e.hops = f.hops;
                if f.parent != NONE || s as u32 == root {
                    e.parent = f.parent;
                }
                e.next_hop = if s as u32 == root { NONE } else { f.first };
                e.status = if left { Status::Left } else { Status::Alive };
                if e.status == Status::Alive || before == Status::Alive {
                    e.last_seen_ms = now_ms;
                }
            } else {
                e.rtt_us = NONE;
                e.hops = NONE;
                e.next_hop = NONE;
                e.status = if left {
                    Status::Left
                } else {
                    Status::Unreachable
                };
                if before == Status::Alive {
                    e.last_seen_ms = now_ms;
                }
            }
            self.alive += usize::from(e.status == Status::Alive);
            let known = e.flags & KNOWN != 0;
            if e.status != Status::Unreachable {
                e.flags |= KNOWN;
            }
            if e.status != before {
                changes.push(Change {
                    id: e.na.id,
                    from: before,
                    to: e.status,
                    first: !known,
                });
            } else if (e.parent, e.hops) != place {
                moved.push(e.na.id);
            }
        }
        changes.sort_by_key(|c| c.id);
        moved.sort();
        (changes, moved)
    }
}
