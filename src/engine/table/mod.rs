//! The node table (link-state database) and what is computed from it: the
//! graph, the shortest-path tree, next hops, statuses and last-seen times.
//!
//! Why this file is long: the dense table keeps several invariants at once
//! (slots and the id index, neighbour runs and their staleness, the
//! fingerprint, the alive count); every method that changes an entry must
//! keep all of them, so they stay side by side. What it shows (views,
//! resolving a word, counts) is in `view`; the graph and the tree computed
//! from it in `routes`; its tests in `tests`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::idmap::{fold, new_map, IdMap};
use super::limits;
use crate::wire::ctl::Status;
use crate::wire::peer::{Announcement, NodeId, Version};

/// No slot: the `u32` fields of [`Entry`] use it for "none".
const NONE: u32 = u32::MAX;

/// What the table holds for one node. Its place in the tree refers to
/// other entries by slot, so a table costs ~130 bytes a node with its
/// index and neighbour runs (every node holds every node: at 10,000 that
/// is what decides whether a simulation of the whole network fits in
/// memory; it was ~295).
#[derive(Clone, Debug)]
pub struct Entry {
    /// The newest announcement seen.
    pub na: Arc<Announcement>,
    /// Computed status.
    pub status: Status,
    /// Wall clock ms at which it was last seen alive (or said goodbye).
    /// While it is alive, the moment it was found alive: a recompute
    /// touches only what changed, so whoever shows it shows "now" then.
    pub last_seen_ms: u64,
    /// Slot of the parent in the shortest-path tree; kept when it becomes
    /// unreachable.
    parent: u32,
    /// Slot of the first hop towards it while reachable.
    next_hop: u32,
    /// Hops from this node while reachable.
    hops: u32,
    /// Where its neighbours start in [`Table::adj`] (as many as its
    /// announcement lists), unless `STALE`.
    adj_at: u32,
    /// How many (its announcement's neighbours, up to `u16::MAX`).
    adj_len: u16,
    /// `LEAF`: nothing is routed through it (deadend or departed);
    /// `LEFT`: departed; `STALE`: its announcement changed since its
    /// neighbours were looked up (and these flags set).
    flags: u8,
}

// Every engine holds every node: 10,000 simulated nodes are 10^8 entries.
const _: () = assert!(
    std::mem::size_of::<Entry>() <= 40,
    "keep table entries small"
);

const LEAF: u8 = 1;
const STALE: u8 = 2;
const LEFT: u8 = 4;
/// Its status has been known here (alive or left once, or from the
/// snapshot): unreachable then means lost, not not yet found.
const KNOWN: u8 = 8;
/// Its place before the recompute under way is recorded (see `repair`).
const DIRTY: u8 = 64;
/// Two bits: the status membership news last told of it (0 none, else
/// alive, unreachable, left); see `engine::news`. Kept in the entry, not
/// in a map beside the table: every engine holds every node.
const TOLD_SHIFT: u8 = 4;
const TOLD_MASK: u8 = 0b11 << TOLD_SHIFT;

impl Entry {
    /// The status membership news last told of this node, if any.
    pub fn told(&self) -> Option<Status> {
        match (self.flags & TOLD_MASK) >> TOLD_SHIFT {
            1 => Some(Status::Alive),
            2 => Some(Status::Unreachable),
            3 => Some(Status::Left),
            _ => None,
        }
    }

    /// Hops from this node while reachable.
    pub fn hops(&self) -> Option<u32> {
        some(self.hops)
    }
}

fn some(x: u32) -> Option<u32> {
    (x != NONE).then_some(x)
}

/// An RTT as the `u32` fields hold it (`NONE`: not measured).
fn rtt_code(r: Option<u32>) -> u32 {
    r.map_or(NONE, |r| r.min(NONE - 1))
}

/// The link-state database of one node: entries in a dense vector, found
/// by id through an index.
#[derive(Debug, Default)]
pub struct Table {
    /// Slot of every node known, this one included.
    slots: IdMap<u32>,
    entries: Vec<Entry>,
    /// Sum of [`mark`] over the entries: equal on two tables that hold the
    /// same versions of the same nodes (a 64-bit hash: collisions aside).
    sum: u64,
    /// How many are alive, as of the last recompute.
    alive: usize,
    /// Every entry's neighbours as (slot, RTT µs), looked up once per
    /// announcement rather than once per recompute: routes are recomputed
    /// on every change, and at thousands of nodes the id lookups were most
    /// of the cost. An entry whose announcement changes gets a new run at
    /// the end; the old run is garbage until the next rebuild.
    adj: Vec<(u32, u32)>,
    /// Entries to look up again before the next recompute (new ones
    /// included).
    stale: Vec<u32>,
    /// Look every entry up again and search the whole graph (a node was
    /// removed: slots moved).
    all_stale: bool,
    /// Runs in `adj` no entry uses any more.
    garbage: usize,
    /// Slots whose announcements changed since the last recompute (new
    /// ones included): where the next one starts (see `repair`).
    touched: Vec<u32>,
    /// Edges (either way round) that may have appeared, gone or changed
    /// their RTT since the last recompute.
    edges: Vec<(u32, u32)>,
    /// Slots whose leaf flag (deadend or departed) changed since the last
    /// recompute.
    leafed: Vec<u32>,
    /// This node's live links as of the last recompute, as (slot, RTT) in
    /// slot order: the root's edges.
    links: Vec<(u32, u32)>,
    /// This node's slot at the last recompute.
    root: u32,
    /// Whether the tree is computed (from the whole graph once; after
    /// that repaired where it changed).
    routed: bool,
    /// Room reused by every neighbour lookup (see `refresh_run`).
    scratch: (Run, Run),
    /// Bytes the announcements hold, about (see [`limits::na_bytes`]).
    bytes: usize,
    /// How many entries the last repair looked at again (tests).
    #[cfg(test)]
    repaired: usize,
}

/// Neighbours as (slot, RTT code), as the runs in [`Table::adj`] hold them.
type Run = Vec<(u32, u32)>;

/// One entry's share of [`Table::fingerprint`].
fn mark(id: NodeId, v: Version) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let h = fold(id.0 as u64 ^ K, (id.0 >> 64) as u64 | 1);
    fold(h ^ v.inc, fold(v.seq ^ K, K | 1))
}

impl Table {
    /// An empty table whose id index is hashed with `hash_key`
    /// ([`super::Config::hash_key`]).
    pub fn new(hash_key: u64) -> Table {
        Table {
            slots: new_map(hash_key),
            ..Table::default()
        }
    }

    /// The entry for `id`.
    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        let s = *self.slots.get(id)?;
        self.entries.get(s as usize)
    }

    fn get_mut(&mut self, id: &NodeId) -> Option<&mut Entry> {
        let s = *self.slots.get(id)?;
        self.entries.get_mut(s as usize)
    }

    /// Sets when `id` was last seen (from a snapshot). Nothing else of an
    /// entry changes from outside: the announcement only through
    /// [`Table::offer`] (its neighbour runs and the fingerprint follow it),
    /// the status only through [`Table::recompute`].
    pub fn set_last_seen(&mut self, id: &NodeId, ms: u64) {
        if let Some(e) = self.get_mut(id) {
            e.last_seen_ms = ms;
        }
    }

    /// Whether `id` is known.
    pub fn contains_key(&self, id: &NodeId) -> bool {
        self.slots.contains_key(id)
    }

    /// A summary of which versions of which nodes the table holds: two
    /// tables with the same fingerprint and length hold the same (but for
    /// a 64-bit hash collision). Kept as entries change; for simulations
    /// checking convergence over thousands of tables.
    pub fn fingerprint(&self) -> u64 {
        self.sum
    }

    /// How many nodes are alive, as of the last recompute.
    pub fn alive_count(&self) -> usize {
        self.alive
    }

    /// Bytes the announcements held take, about: what the table's size in
    /// memory follows (see [`limits::MAX_TABLE_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many nodes are known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no node is known (never, once an engine exists).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry in slot `slot` (slots run from 0 to [`Table::len`]), for
    /// sampling at random.
    pub fn at(&self, slot: usize) -> Option<&Entry> {
        self.entries.get(slot)
    }

    /// Every entry, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Every node with its entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Entry)> {
        self.entries.iter().map(|e| (&e.na.id, e))
    }

    fn id_at(&self, slot: u32) -> Option<NodeId> {
        self.entries.get(slot as usize).map(|e| e.na.id)
    }

    /// The parent of `e` in the tree (its last one while unreachable).
    pub fn parent(&self, e: &Entry) -> Option<NodeId> {
        self.id_at(e.parent)
    }

    /// The round trip along the tree to `e`, µs, while it is reachable and
    /// every edge on the way is measured (see [`Table::rtt_along`]).
    pub fn rtt_us(&self, e: &Entry) -> Option<u32> {
        some(self.rtt_along(*self.slots.get(&e.na.id)?))
    }

    /// The first hop towards `id`, while it is reachable.
    pub fn next_hop(&self, id: &NodeId) -> Option<NodeId> {
        self.id_at(self.get(id)?.next_hop)
    }

    /// Sets the parent of `id` (from a snapshot), if both are known.
    pub fn set_parent(&mut self, id: &NodeId, parent: Option<NodeId>) {
        let p = parent.and_then(|p| self.slots.get(&p).copied());
        if let Some(e) = self.get_mut(id) {
            e.parent = p.unwrap_or(NONE);
        }
    }

    /// Drops `id`. The last entry moves into its slot; what pointed at the
    /// dropped one points nowhere, what pointed at the moved one follows.
    pub fn remove(&mut self, id: &NodeId) -> Option<Entry> {
        let s = self.slots.remove(id)?;
        let last = (self.entries.len() - 1) as u32;
        let gone = self.entries.swap_remove(s as usize);
        self.sum = self.sum.wrapping_sub(mark(gone.na.id, gone.na.version));
        self.bytes = self.bytes.saturating_sub(limits::na_bytes(&gone.na));
        self.all_stale = true;
        self.alive -= usize::from(gone.status == Status::Alive);
        if s != last {
            let moved = self.entries[s as usize].na.id;
            self.slots.insert(moved, s);
        }
        let fix = |x: &mut u32| {
            if *x == s {
                *x = NONE;
            } else if *x == last {
                *x = s;
            }
        };
        for e in &mut self.entries {
            fix(&mut e.parent);
            fix(&mut e.next_hop);
        }
        Some(gone)
    }

    /// The version held for `id`, if any.
    pub fn version(&self, id: &NodeId) -> Option<Version> {
        self.get(id).map(|e| e.na.version)
    }

    /// Stores an announcement if it is newer than the one held. Returns
    /// whether it was stored.
    /// Neighbours are kept in id order (our own announcements are built
    /// so; a peer's that is not gets sorted here), so the recompute breaks
    /// ties between equally short paths the same way on every node.
    pub fn offer(&mut self, mut na: Arc<Announcement>, now_ms: u64) -> bool {
        if !na.neighbors.is_sorted_by_key(|n| n.id) {
            Arc::make_mut(&mut na).neighbors.sort_by_key(|n| n.id);
        }
        let slot = self.slots.get(&na.id).copied();
        match slot.and_then(|s| Some((s, self.entries.get_mut(s as usize)?))) {
            Some((_, e)) if e.na.version >= na.version => false,
            Some((s, e)) => {
                self.bytes =
                    (self.bytes + limits::na_bytes(&na)).saturating_sub(limits::na_bytes(&e.na));
                let old = mark(e.na.id, e.na.version);
                self.sum = self
                    .sum
                    .wrapping_sub(old)
                    .wrapping_add(mark(na.id, na.version));
                if e.flags & STALE == 0 {
                    self.garbage += usize::from(e.adj_len);
                    e.flags |= STALE;
                    self.stale.push(s);
                }
                e.na = na;
                true
            }
            None => {
                let status = if na.left {
                    Status::Left
                } else {
                    Status::Unreachable
                };
                self.sum = self.sum.wrapping_add(mark(na.id, na.version));
                self.bytes += limits::na_bytes(&na);
                self.slots.insert(na.id, self.entries.len() as u32);
                self.entries.push(Entry {
                    na,
                    status,
                    last_seen_ms: now_ms,
                    parent: NONE,
                    next_hop: NONE,
                    hops: NONE,
                    adj_at: 0,
                    adj_len: 0,
                    flags: STALE,
                });
                self.stale.push(self.entries.len() as u32 - 1);
                true
            }
        }
    }

    /// Records the status membership news last told of `id`.
    pub fn set_told(&mut self, id: &NodeId, told: Option<Status>) {
        let bits = match told {
            None => 0,
            Some(Status::Alive) => 1,
            Some(Status::Unreachable) => 2,
            Some(Status::Left) => 3,
        };
        if let Some(e) = self
            .slots
            .get(id)
            .and_then(|s| self.entries.get_mut(*s as usize))
        {
            e.flags = (e.flags & !TOLD_MASK) | (bits << TOLD_SHIFT);
        }
    }

    /// Marks `id`'s status as known (a node from the snapshot): when it
    /// turns alive, it is back, not new.
    pub fn mark_known(&mut self, id: &NodeId) {
        if let Some(e) = self
            .slots
            .get(id)
            .and_then(|s| self.entries.get_mut(*s as usize))
        {
            e.flags |= KNOWN;
        }
    }

    /// Ids of the nodes alive now, sorted.
    pub fn alive(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|e| e.status == Status::Alive)
            .map(|e| e.na.id)
            .collect();
        v.sort();
        v
    }
}

mod repair;
mod routes;
mod view;

pub use routes::Change;
pub use view::split_addr;

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
