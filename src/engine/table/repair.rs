//! Repairing the tree where the graph changed, instead of searching it
//! all: work in proportion to what changed, not to the table.
//!
//! Every node holds every node, and every announcement heard changes the
//! graph a little: a search of the whole table per change was most of the
//! time of a 10,000-node simulation. A repair starts from the edges that
//! changed (`edges`, noted by the neighbour lookups and this node's
//! links), the nodes whose leaf flag changed (`leafed`) and the nodes
//! whose announcements changed (`touched`):
//!
//! 1. *Cut*: a node whose edge to its parent is gone, or whose parent
//!    became a leaf, loses its place, with everything below it.
//! 2. *Seed*: every node without a place that was touched or cut takes
//!    the best of its neighbours that kept theirs; every changed edge is
//!    offered both ways; a node that stopped being a leaf offers all its.
//! 3. *Relax*: from every node whose place changed, in order of hops (a
//!    breadth-first search run from many places at once), a node offers
//!    each neighbour a place one hop further; it takes it if it is closer,
//!    or as close through a smaller id; a child whose parent's first hop
//!    or RTT changed follows it.
//!
//! A change at a hub (one leaf more) is one changed edge: the work does
//! not grow with the hub's degree.
//!
//! The result is the tree the whole search finds (debug builds check it
//! on every repair; `model.rs` tests it against a plain model).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::routes::Before;
use super::*;

impl Table {
    /// Repairs the tree from `touched`; returns what [`Table::recompute`]
    /// returns.
    pub(super) fn repair(&mut self, root: u32, now_ms: u64) -> (Vec<Change>, Vec<NodeId>) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        let mut edges = std::mem::take(&mut self.edges);
        edges.sort_unstable();
        edges.dedup();
        let leafed = std::mem::take(&mut self.leafed);
        let mut dirty: Vec<(u32, Before)> = Vec::new();
        for &t in &touched {
            self.note(t, &mut dirty);
        }
        // 1. Cut: a child over an edge that is gone, or below a node that
        // became a leaf.
        let mut cut = Vec::new();
        for &(a, b) in &edges {
            for (p, c) in [(a, b), (b, a)] {
                let Some(ec) = self.entries.get(c as usize) else {
                    continue;
                };
                if c != root && ec.hops != NONE && ec.parent == p && !self.edge_ok(p, c) {
                    cut.push(c);
                }
            }
        }
        for &t in &leafed {
            if self.reached(t) && t != root && self.entries[t as usize].flags & LEAF != 0 {
                cut.extend(self.children(t));
            }
        }
        let lost = self.cut(cut, &mut dirty);
        // 2. Seed: what has no place takes the best neighbour's; every
        // changed edge is offered both ways; a node that stopped being a
        // leaf offers all of its.
        let mut heap = BinaryHeap::new();
        for &v in touched.iter().chain(&lost) {
            if !self.reached(v) {
                if let Some(p) = self.best_parent(root, v) {
                    self.place(v, p, &mut dirty);
                    heap.push(Reverse((self.entries[v as usize].hops, v)));
                }
            }
        }
        for &(a, b) in &edges {
            for (x, n) in [(a, b), (b, a)] {
                if self.edge_ok(x, n) {
                    self.offer_place(x, n, &mut heap, &mut dirty);
                }
            }
        }
        for &t in &leafed {
            if t != root && self.reached(t) && self.entries[t as usize].flags & LEAF == 0 {
                heap.push(Reverse((self.entries[t as usize].hops, t)));
            }
        }
        // 3. Relax.
        while let Some(Reverse((h, x))) = heap.pop() {
            if self.entries[x as usize].hops != h {
                continue; // placed again since it was queued
            }
            if x != root && self.entries[x as usize].flags & LEAF != 0 {
                continue;
            }
            let (at, len) = if x == root {
                (0, self.links.len())
            } else {
                let e = &self.entries[x as usize];
                (e.adj_at as usize, usize::from(e.adj_len))
            };
            for k in at..at + len {
                let n = if x == root {
                    self.links[k].0
                } else {
                    self.adj[k].0
                };
                if n == NONE || n == root || (x != root && !self.lists_slot(n, x)) {
                    continue;
                }
                self.offer_place(x, n, &mut heap, &mut dirty);
            }
        }
        // Statuses of what was touched or moved.
        #[cfg(test)]
        {
            self.repaired = dirty.len();
        }
        let mut changes = Vec::new();
        let mut moved = Vec::new();
        for (s, before) in dirty {
            let e = &mut self.entries[s as usize];
            e.flags &= !DIRTY;
            let was = e.status == Status::Alive;
            before.settle(e, now_ms, &mut changes, &mut moved);
            let is = e.status == Status::Alive;
            self.alive = (self.alive + usize::from(is)).saturating_sub(usize::from(was));
        }
        changes.sort_by_key(|c| c.id);
        moved.sort();
        if touched.capacity() <= 1024 && edges.capacity() <= 1024 {
            touched.clear();
            edges.clear();
            self.touched = touched;
            self.edges = edges;
        }
        #[cfg(debug_assertions)]
        self.check_against_search(root);
        (changes, moved)
    }

    /// Records the status and place of slot `s` before this repair, once.
    fn note(&mut self, s: u32, dirty: &mut Vec<(u32, Before)>) {
        let e = &mut self.entries[s as usize];
        if e.flags & DIRTY == 0 {
            e.flags |= DIRTY;
            dirty.push((s, Before::of(e)));
        }
    }

    /// `x`, which has a place and passes routes on, offers `n` a place
    /// below it: taken if closer, or as close through a smaller id;
    /// followed if `x` is its parent already. What changed is queued to
    /// offer on.
    fn offer_place(
        &mut self,
        x: u32,
        n: u32,
        heap: &mut BinaryHeap<Reverse<(u32, u32)>>,
        dirty: &mut Vec<(u32, Before)>,
    ) {
        let h = self.entries[x as usize].hops;
        let Some(en) = self.entries.get(n as usize) else {
            return;
        };
        let (hops, parent) = (en.hops, en.parent);
        let closer = hops == NONE
            || h + 1 < hops
            || (h + 1 == hops && parent != x && self.id_less(x, parent));
        if closer {
            self.place(n, x, dirty);
            heap.push(Reverse((h + 1, n)));
        } else if parent == x && hops == h + 1 && self.follow(n, x, dirty) {
            heap.push(Reverse((h + 1, n)));
        }
    }

    /// Whether slot `s` has a place in the tree.
    fn reached(&self, s: u32) -> bool {
        self.entries.get(s as usize).is_some_and(|e| e.hops != NONE)
    }

    /// The announced RTT of the edge from `p` to `c`, if `p` has a place,
    /// passes routes on (the root always does) and the two agree on the
    /// edge: `p` can be `c`'s parent. `Some(NONE)` when unmeasured.
    pub(super) fn edge(&self, p: u32, c: u32) -> Option<u32> {
        if !self.reached(p) {
            return None;
        }
        if p == self.root {
            let i = self.links.binary_search_by_key(&c, |l| l.0).ok()?;
            return Some(self.links[i].1);
        }
        if self.entries.get(p as usize)?.flags & LEAF != 0 || !self.lists_slot(c, p) {
            return None;
        }
        self.announced(p, c)
    }

    fn edge_ok(&self, p: u32, c: u32) -> bool {
        self.edge(p, c).is_some()
    }

    /// The children of `p` in the tree as it stands: neighbours one hop
    /// further whose parent it is.
    fn children(&self, p: u32) -> Vec<u32> {
        let Some(ep) = self.entries.get(p as usize) else {
            return Vec::new();
        };
        let below = ep.hops.saturating_add(1);
        let run: &[(u32, u32)] = if p == self.root {
            &self.links
        } else {
            self.adj_of(p)
        };
        run.iter()
            .map(|&(c, _)| c)
            .filter(|&c| {
                self.entries
                    .get(c as usize)
                    .is_some_and(|e| e.parent == p && e.hops == below)
            })
            .collect()
    }

    /// Takes the place of every node in the subtrees below `tops`; returns
    /// them. They keep their last parent, as an unreachable node does.
    fn cut(&mut self, mut tops: Vec<u32>, dirty: &mut Vec<(u32, Before)>) -> Vec<u32> {
        let mut lost = Vec::new();
        while let Some(v) = tops.pop() {
            if !self.reached(v) {
                continue;
            }
            tops.extend(self.children(v));
            self.note(v, dirty);
            let e = &mut self.entries[v as usize];
            e.hops = NONE;
            e.next_hop = NONE;
            lost.push(v);
        }
        lost
    }

    /// The best parent for `v` among the neighbours with a place: fewest
    /// hops, then smallest id.
    fn best_parent(&self, root: u32, v: u32) -> Option<u32> {
        if self.edge_ok(root, v) {
            return Some(root);
        }
        let mut best: Option<u32> = None;
        for &(u, _) in self.adj_of(v) {
            if !self.edge_ok(u, v) {
                continue;
            }
            let better = best.is_none_or(|b| {
                let (hu, hb) = (self.entries[u as usize].hops, self.entries[b as usize].hops);
                hu < hb || (hu == hb && self.id_less(u, b))
            });
            if better {
                best = Some(u);
            }
        }
        best
    }

    /// What `n` holds below `p`: its hops and first hop.
    fn below(&self, p: u32, n: u32) -> (u32, u32) {
        let ep = &self.entries[p as usize];
        let first = if p == self.root { n } else { ep.next_hop };
        (ep.hops + 1, first)
    }

    /// Places `n` below `p`.
    fn place(&mut self, n: u32, p: u32, dirty: &mut Vec<(u32, Before)>) {
        self.note(n, dirty);
        let (hops, first) = self.below(p, n);
        let e = &mut self.entries[n as usize];
        (e.hops, e.parent, e.next_hop) = (hops, p, first);
    }

    /// Brings `n`'s first hop in line with its parent `p`'s; returns
    /// whether it changed. (RTTs along the tree are walked when asked,
    /// so an RTT that changed moves nothing here.)
    fn follow(&mut self, n: u32, p: u32, dirty: &mut Vec<(u32, Before)>) -> bool {
        let (_, first) = self.below(p, n);
        if self.entries[n as usize].next_hop == first {
            return false;
        }
        self.note(n, dirty);
        self.entries[n as usize].next_hop = first;
        true
    }

    /// Debug builds: the repaired tree is the one the whole search finds.
    #[cfg(debug_assertions)]
    fn check_against_search(&self, root: u32) {
        let found = self.search(root);
        for (s, (e, f)) in self.entries.iter().zip(&found).enumerate() {
            let want = if f.hops == NONE {
                (NONE, NONE, NONE)
            } else {
                let first = if s as u32 == root { NONE } else { f.first };
                (f.hops, first, f.rtt)
            };
            assert_eq!(
                (e.hops, e.next_hop, self.rtt_along(s as u32)),
                want,
                "repaired tree differs from the search at slot {s}"
            );
            if f.hops != NONE && s as u32 != root {
                assert_eq!(e.parent, f.parent, "parent of slot {s}");
            }
        }
    }
}
