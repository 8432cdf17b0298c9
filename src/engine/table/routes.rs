//! What the table computes: the graph (an edge counts where both ends
//! list each other), the shortest-path tree from this node, next hops,
//! statuses and last-seen times, and what changed.
//!
//! The tree: a node's hops are its breadth-first distance from this one;
//! its parent is, of its neighbours one hop closer that reach it, the one
//! with the smallest id (so every node breaks ties the same way, and a
//! repair can tell the answer without knowing the search's order). The
//! first recompute, and one after a node was removed, search the whole
//! graph; every other one repairs the tree where edges changed (`repair`).
//! Neighbours are looked up as slots once per announcement
//! ([`Table::refresh_adj`]), not once per recompute.

use super::*;

/// How the search reached a slot: hops, parent, first hop, RTT along the
/// tree ([`NONE`] where not).
#[derive(Clone, Copy)]
pub(super) struct Found {
    pub(super) hops: u32,
    pub(super) parent: u32,
    pub(super) first: u32,
    pub(super) rtt: u32,
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
    /// Brings the neighbour runs up to date. Returns whether the whole
    /// graph must be searched again (a node was removed: slots moved);
    /// otherwise what changed is in `touched`.
    fn refresh_adj(&mut self) -> bool {
        if self.all_stale {
            self.all_stale = false;
            self.stale.clear();
            self.touched.clear();
            self.edges.clear();
            self.leafed.clear();
            self.adj.clear();
            self.garbage = 0;
            for s in 0..self.entries.len() as u32 {
                self.refresh_run(s, false);
            }
            return true;
        }
        for s in std::mem::take(&mut self.stale) {
            self.refresh_run(s, true);
        }
        if self.garbage > self.adj.len() / 2 {
            self.compact_adj();
        }
        false
    }

    /// Looks up the neighbours of the entry in slot `s` into a new run.
    /// With `track`: touches `s` and every neighbour whose edge or RTT
    /// differs from the old run, and resolves `s` in the runs of the
    /// neighbours it lists (a node that listed `s` before `s` was known
    /// holds no slot for it), touching those too.
    fn refresh_run(&mut self, s: u32, track: bool) {
        let Some(e) = self.entries.get(s as usize) else {
            return;
        };
        let (mut old, mut new) = std::mem::take(&mut self.scratch);
        old.clear();
        new.clear();
        if track {
            old.extend(self.adj_of(s).iter().filter(|(n, _)| *n != NONE));
        }
        let at = self.adj.len() as u32;
        let len = u16::try_from(e.na.neighbors.len()).unwrap_or(u16::MAX);
        let flags = (e.flags & (KNOWN | TOLD_MASK))
            | match (e.na.left, e.na.record.deadend) {
                (true, _) => LEAF | LEFT,
                (false, true) => LEAF,
                (false, false) => 0,
            };
        self.adj
            .extend(e.na.neighbors.iter().take(len.into()).map(|n| {
                let slot = self.slots.get(&n.id).copied().unwrap_or(NONE);
                (slot, rtt_code(n.rtt_us))
            }));
        let e = &mut self.entries[s as usize];
        let leaf_changed = (e.flags ^ flags) & LEAF != 0;
        e.adj_at = at;
        e.adj_len = len;
        e.flags = flags;
        if !track {
            self.scratch = (old, new);
            return;
        }
        self.touched.push(s);
        if leaf_changed {
            self.leafed.push(s);
        }
        new.extend(self.adj_of(s).iter().filter(|(n, _)| *n != NONE));
        old.sort_unstable();
        new.sort_unstable();
        let e0 = self.edges.len();
        differing(&old, &new, |n| self.edges.push((s, n)));
        // Only neighbours that came or changed: those that stayed were
        // resolved when they came (a hub's change costs what changed).
        let id = self.entries[s as usize].na.id;
        old.clear();
        old.extend(self.edges[e0..].iter().map(|&(_, n)| (n, 0)));
        for &(n, _) in &old {
            let Some(en) = self.entries.get(n as usize) else {
                continue;
            };
            if en.flags & STALE != 0 {
                continue; // its own lookup, still to come, finds `s`
            }
            let Ok(pos) = en.na.neighbors.binary_search_by_key(&id, |nb| nb.id) else {
                continue;
            };
            if pos < usize::from(en.adj_len) {
                let k = en.adj_at as usize + pos;
                if self.adj[k].0 != s {
                    self.adj[k].0 = s;
                    self.edges.push((s, n));
                }
            }
        }
        if new.capacity() <= 4096 {
            self.scratch = (old, new);
        }
    }

    /// Copies the runs in use into a new vector, dropping the garbage.
    fn compact_adj(&mut self) {
        let mut adj = Vec::with_capacity(self.adj.len() - self.garbage);
        for s in 0..self.entries.len() as u32 {
            let run = self.adj_of(s);
            let at = adj.len() as u32;
            adj.extend_from_slice(run);
            self.entries[s as usize].adj_at = at;
        }
        self.adj = adj;
        self.garbage = 0;
    }

    /// The neighbours of the entry in slot `s`, as (slot, RTT).
    pub(super) fn adj_of(&self, s: u32) -> &[(u32, u32)] {
        let Some(e) = self.entries.get(s as usize) else {
            return &[];
        };
        let at = e.adj_at as usize;
        self.adj
            .get(at..at + usize::from(e.adj_len))
            .unwrap_or_default()
    }

    /// The RTT the announcement in slot `n` gives the node in slot `x`
    /// (`NONE` when unmeasured), if it lists it: one half of an edge. A
    /// short run is scanned, without touching the announcement (at
    /// 10,000 nodes seldom in the cache); a long one (a hub, or a peer
    /// announcing thousands of one-sided links) is searched by id in the
    /// announcement, which `offer` keeps sorted, so one edge check never
    /// costs the degree.
    pub(super) fn announced(&self, n: u32, x: u32) -> Option<u32> {
        let run = self.adj_of(n);
        if run.len() <= 16 {
            return run.iter().find(|&&(m, _)| m == x).map(|&(_, rtt)| rtt);
        }
        let (en, ex) = (self.entries.get(n as usize)?, self.entries.get(x as usize)?);
        let pos = en
            .na
            .neighbors
            .binary_search_by_key(&ex.na.id, |nb| nb.id)
            .ok()?;
        run.get(pos).map(|&(_, rtt)| rtt)
    }

    /// The round trip along the tree to slot `s`, µs: the RTTs of the
    /// edges on its path (this node's links as measured, the others as
    /// their parents announce them), `NONE` while it is unreachable or an
    /// edge is unmeasured.
    ///
    /// Walked when asked, not kept: kept in every entry, each change of a
    /// link's RTT (every ping measures a new one) rewrote everything below
    /// that link at the next recompute: a container's every recompute
    /// touched all of a docker host's thousand containers.
    pub(super) fn rtt_along(&self, s: u32) -> u32 {
        let (mut at, mut sum) = (s, 0);
        // Each parent is one hop closer: at most `hops` steps.
        let steps = self.entries.get(s as usize).map_or(0, |e| e.hops);
        for _ in 0..=steps {
            let Some(e) = self.entries.get(at as usize).filter(|e| e.hops != NONE) else {
                return NONE;
            };
            if at == self.root {
                return sum;
            }
            let Some(rtt) = self.edge(e.parent, at) else {
                return NONE;
            };
            sum = rtt_sum(sum, rtt);
            at = e.parent;
        }
        NONE
    }

    /// Whether the announcement in slot `n` lists the node in slot `x`.
    pub(super) fn lists_slot(&self, n: u32, x: u32) -> bool {
        self.announced(n, x).is_some()
    }

    /// Whether `a` announces a link to `b`. Neighbours are kept sorted
    /// (see [`Table::offer`]), so it costs a search, not the degree.
    pub fn lists(&self, a: &NodeId, b: &NodeId) -> bool {
        self.get(a)
            .is_some_and(|e| e.na.neighbors.binary_search_by_key(b, |n| n.id).is_ok())
    }

    /// Recomputes reachability from `me` over edges that both ends agree
    /// on. `my_links` are this node's live neighbours with their RTT,
    /// which count as edges on their own: a live link is proof enough.
    /// Deadend and departed nodes are leaves: nothing is routed through
    /// them. Returns the status changes, and the nodes whose place in the
    /// tree changed.
    pub fn recompute(
        &mut self,
        me: NodeId,
        my_links: &[(NodeId, Option<u32>)],
        now_ms: u64,
    ) -> (Vec<Change>, Vec<NodeId>) {
        let Some(&root) = self.slots.get(&me) else {
            return (Vec::new(), Vec::new());
        };
        let whole = self.refresh_adj() || !self.routed || root != self.root;
        let links = self.link_slots(root, my_links);
        if whole {
            self.touched.clear();
            self.edges.clear();
            self.leafed.clear();
            self.links = links;
            self.root = root;
            self.routed = true;
            let found = self.search(root);
            return self.apply(root, &found, now_ms);
        }
        if links != self.links {
            // The root's edges changed: it and every neighbour whose link
            // came, went or changed its RTT.
            differing(&links, &self.links, |n| self.edges.push((root, n)));
            self.links = links;
        }
        self.repair(root, now_ms)
    }

    /// This node's links as (slot, RTT) in slot order: one per neighbour
    /// (unmeasured first, then the smallest RTT), known ones only.
    fn link_slots(&self, root: u32, my_links: &[(NodeId, Option<u32>)]) -> Vec<(u32, u32)> {
        let mut first: Vec<(NodeId, Option<u32>)> = my_links.to_vec();
        first.sort();
        first.dedup_by_key(|(n, _)| *n);
        let mut links: Vec<(u32, u32)> = first
            .iter()
            .filter_map(|(n, r)| Some((*self.slots.get(n)?, rtt_code(*r))))
            .filter(|(s, _)| *s != root)
            .collect();
        links.sort_unstable();
        links
    }

    /// Whether the node in slot `a` sorts before the one in slot `b` by
    /// id: how ties between parents are broken.
    pub(super) fn id_less(&self, a: u32, b: u32) -> bool {
        match (self.entries.get(a as usize), self.entries.get(b as usize)) {
            (Some(x), Some(y)) => x.na.id < y.na.id,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The breadth-first search of the whole graph: how each slot is
    /// reached, if it is.
    pub(super) fn search(&self, root: u32) -> Vec<Found> {
        let mut found = vec![Found::UNSEEN; self.entries.len()];
        let mut queue = VecDeque::new();
        found[root as usize] = Found {
            hops: 0,
            parent: NONE,
            first: root,
            rtt: 0,
        };
        for &(s, rtt) in &self.links {
            found[s as usize] = Found {
                hops: 1,
                parent: root,
                first: s,
                rtt,
            };
            queue.push_back(s);
        }
        while let Some(x) = queue.pop_front() {
            if self.entries[x as usize].flags & LEAF != 0 {
                continue;
            }
            let fx = found[x as usize];
            for &(n, rtt) in self.adj_of(x) {
                let Some(&f) = found.get(n as usize) else {
                    continue;
                };
                // Every node one hop further is dequeued after all of
                // this one's level: a better parent can still take it.
                let take = f.hops == NONE
                    || (f.hops == fx.hops + 1 && f.parent != x && self.id_less(x, f.parent));
                if take && self.lists_slot(n, x) {
                    found[n as usize] = Found {
                        hops: fx.hops + 1,
                        parent: x,
                        first: fx.first,
                        rtt: rtt_sum(fx.rtt, rtt),
                    };
                    if f.hops == NONE {
                        queue.push_back(n);
                    }
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
            let before = Before::of(e);
            let f = found[s];
            if f.hops != NONE {
                e.hops = f.hops;
                if f.parent != NONE || s as u32 == root {
                    e.parent = f.parent;
                }
                e.next_hop = if s as u32 == root { NONE } else { f.first };
            } else {
                e.hops = NONE;
                e.next_hop = NONE;
            }
            before.settle(e, now_ms, &mut changes, &mut moved);
            self.alive += usize::from(e.status == Status::Alive);
        }
        changes.sort_by_key(|c| c.id);
        moved.sort();
        (changes, moved)
    }
}

/// Calls `f` with the slot of every (slot, RTT) in one of two sorted runs
/// but not in the other: the edges that came, went or changed their RTT.
fn differing(a: &[(u32, u32)], b: &[(u32, u32)], mut f: impl FnMut(u32)) {
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => (i, j) = (i + 1, j + 1),
            (Some(x), Some(y)) if x > y => {
                f(y.0);
                j += 1;
            }
            (Some(x), _) => {
                f(x.0);
                i += 1;
            }
            (None, Some(y)) => {
                f(y.0);
                j += 1;
            }
            (None, None) => return,
        }
    }
}

/// An RTT along the tree: the parent's plus the link's, unknown if either
/// is.
pub(super) fn rtt_sum(a: u32, b: u32) -> u32 {
    if a == NONE || b == NONE {
        NONE
    } else {
        a.saturating_add(b).min(NONE - 1)
    }
}

/// An entry's status and place before a recompute.
#[derive(Clone, Copy)]
pub(super) struct Before {
    status: Status,
    parent: u32,
    hops: u32,
}

impl Before {
    pub(super) fn of(e: &Entry) -> Before {
        Before {
            status: e.status,
            parent: e.parent,
            hops: e.hops,
        }
    }

    /// Sets the entry's status from its place (reached or not) and notes
    /// what a user would see change: its status, or its place in the tree.
    pub(super) fn settle(
        self,
        e: &mut Entry,
        now_ms: u64,
        changes: &mut Vec<Change>,
        moved: &mut Vec<NodeId>,
    ) {
        let left = e.flags & LEFT != 0;
        e.status = match (e.hops != NONE, left) {
            (_, true) => Status::Left,
            (true, false) => Status::Alive,
            (false, false) => Status::Unreachable,
        };
        if e.status != self.status && (e.status == Status::Alive || self.status == Status::Alive) {
            e.last_seen_ms = now_ms;
        }
        let known = e.flags & KNOWN != 0;
        if e.status != Status::Unreachable {
            e.flags |= KNOWN;
        }
        if e.status != self.status {
            changes.push(Change {
                id: e.na.id,
                from: self.status,
                to: e.status,
                first: !known,
            });
        } else if (e.parent, e.hops) != (self.parent, self.hops) {
            moved.push(e.na.id);
        }
    }
}
