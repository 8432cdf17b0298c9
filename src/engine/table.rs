//! The node table (link-state database) and what is computed from it: the
//! graph, the shortest-path tree, next hops, statuses and last-seen times.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::idmap::IdMap;
use crate::wire::ctl::{NodeView, Status};
use crate::wire::peer::{Announcement, NodeId, Version};

/// What the table holds for one node.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The newest announcement seen.
    pub na: Arc<Announcement>,
    /// Computed status.
    pub status: Status,
    /// Wall clock ms at which it was last seen alive (or said goodbye).
    pub last_seen_ms: u64,
    /// Parent in the shortest-path tree; kept when it becomes unreachable.
    pub parent: Option<NodeId>,
    /// Hops from this node while reachable.
    pub hops: Option<u32>,
    /// First hop towards it while reachable.
    pub next_hop: Option<NodeId>,
    /// Round trip along the tree, µs, while reachable and measured.
    pub rtt_us: Option<u32>,
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
}

/// The link-state database of one node.
#[derive(Debug, Default)]
pub struct Table {
    /// Every node known, this one included.
    pub entries: IdMap<Entry>,
}

impl Table {
    /// The version held for `id`, if any.
    pub fn version(&self, id: &NodeId) -> Option<Version> {
        self.entries.get(id).map(|e| e.na.version)
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
        match self.entries.get_mut(&na.id) {
            Some(e) if e.na.version >= na.version => false,
            Some(e) => {
                e.na = na;
                true
            }
            None => {
                let status = if na.left {
                    Status::Left
                } else {
                    Status::Unreachable
                };
                self.entries.insert(
                    na.id,
                    Entry {
                        na,
                        status,
                        last_seen_ms: now_ms,
                        parent: None,
                        hops: None,
                        next_hop: None,
                        rtt_us: None,
                    },
                );
                true
            }
        }
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
        // Per node reached: hops, parent, first hop, RTT along the tree.
        let mut found: IdMap<(u32, Option<NodeId>, NodeId, Option<u32>)> = IdMap::default();
        found.reserve(self.entries.len());
        let mut queue = VecDeque::new();
        found.insert(me, (0, None, me, Some(0)));
        let mut first: Vec<(NodeId, Option<u32>)> = my_links.to_vec();
        first.sort();
        first.dedup_by_key(|(n, _)| *n);
        for (n, r) in first {
            if n != me && self.entries.contains_key(&n) && !found.contains_key(&n) {
                found.insert(n, (1, Some(me), n, r));
                queue.push_back(n);
            }
        }
        while let Some(x) = queue.pop_front() {
            let Some(ex) = self.entries.get(&x) else {
                continue;
            };
            if ex.na.record.deadend || ex.na.left {
                continue;
            }
            let Some(&(hops, _, first_hop, rtt_x)) = found.get(&x) else {
                continue;
            };
            // In id order (see `offer`).
            for link in &ex.na.neighbors {
                let n = link.id;
                if found.contains_key(&n) {
                    continue;
                }
                let agrees = self
                    .entries
                    .get(&n)
                    .is_some_and(|e| e.na.neighbors.iter().any(|m| m.id == x));
                if agrees {
                    let sum = rtt_x.zip(link.rtt_us).map(|(a, b)| a.saturating_add(b));
                    found.insert(n, (hops + 1, Some(x), first_hop, sum));
                    queue.push_back(n);
                }
            }
        }
        let mut changes = Vec::new();
        let mut moved = Vec::new();
        for (id, e) in self.entries.iter_mut() {
            let before = e.status;
            let place = (e.parent, e.hops);
            match found.get(id) {
                Some(&(hops, parent, first_hop, rtt)) => {
                    e.rtt_us = rtt;
                    e.hops = Some(hops);
                    if parent.is_some() || *id == me {
                        e.parent = parent;
                    }
                    e.next_hop = (*id != me).then_some(first_hop);
                    e.status = if e.na.left {
                        Status::Left
                    } else {
                        Status::Alive
                    };
                    if e.status == Status::Alive || before == Status::Alive {
                        e.last_seen_ms = now_ms;
                    }
                }
                None => {
                    e.rtt_us = None;
                    e.hops = None;
                    e.next_hop = None;
                    e.status = if e.na.left {
                        Status::Left
                    } else {
                        Status::Unreachable
                    };
                    if before == Status::Alive {
                        e.last_seen_ms = now_ms;
                    }
                }
            }
            if e.status != before {
                changes.push(Change {
                    id: *id,
                    from: before,
                    to: e.status,
                });
            } else if (e.parent, e.hops) != place {
                moved.push(*id);
            }
        }
        changes.sort_by_key(|c| c.id);
        moved.sort();
        (changes, moved)
    }

    /// Ids of the nodes alive now, sorted.
    pub fn alive(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.status == Status::Alive)
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    /// The table as `list` shows it: `me` first, then by name (then id).
    pub fn views(&self, me: NodeId, now_ms: u64) -> Vec<NodeView> {
        let mut v: Vec<&Entry> = self.entries.values().collect();
        v.sort_by(|a, b| {
            (a.na.id != me, &a.na.record.name, a.na.id).cmp(&(
                b.na.id != me,
                &b.na.record.name,
                b.na.id,
            ))
        });
        v.into_iter().map(|e| self.view(e, now_ms)).collect()
    }

    /// One entry as a [`NodeView`].
    pub fn view(&self, e: &Entry, now_ms: u64) -> NodeView {
        let r = &e.na.record;
        let mut seen_as: Vec<String> =
            e.na.neighbors
                .iter()
                .filter_map(|n| n.seen_as.clone())
                .collect();
        seen_as.sort();
        seen_as.dedup();
        let last_seen_secs = match e.status {
            Status::Alive => 0,
            _ => now_ms.saturating_sub(e.last_seen_ms) / 1000,
        };
        NodeView {
            id: e.na.id,
            name: r.name.clone(),
            internal_ip: r.internal_ip.clone(),
            public_ip: r.public_ip.clone(),
            addrs: r.addrs.clone(),
            seen_as,
            kind: r.kind.clone(),
            status: e.status,
            last_seen_secs,
            last_seen_ms: if e.status == Status::Alive {
                now_ms
            } else {
                e.last_seen_ms
            },
            parent: e.parent,
            hops: e.hops,
            rtt_us: e.rtt_us,
            started_ms: r.started_ms,
            os: r.os.clone(),
            tags: r.tags.clone(),
            version: r.version.clone(),
            deadend: r.deadend,
        }
    }

    /// Finds the nodes a user's word may mean: exact id or name, then any
    /// address the node is known by (its own, then as seen by neighbours,
    /// then any interface address), then a unique prefix of a name or id.
    /// The first kind of match that finds anything wins.
    pub fn resolve(&self, word: &str) -> Vec<NodeId> {
        let sorted = |mut v: Vec<NodeId>| {
            v.sort();
            v.dedup();
            v
        };
        let all = || self.entries.values();
        let exact: Vec<NodeId> = all()
            .filter(|e| e.na.id.to_string() == word || e.na.record.name == word)
            .map(|e| e.na.id)
            .collect();
        if !exact.is_empty() {
            return sorted(exact);
        }
        let (ip, port) = split_addr(word);
        let port_ok = |e: &Entry| port.is_none_or(|p| p == e.na.record.port);
        let tiers: [&AddrsOf; 3] = [
            &|e| {
                e.na.record
                    .internal_ip
                    .iter()
                    .chain(e.na.record.public_ip.iter())
                    .cloned()
                    .collect()
            },
            &|e| {
                e.na.neighbors
                    .iter()
                    .filter_map(|n| n.seen_as.clone())
                    .collect()
            },
            &|e| e.na.record.addrs.clone(),
        ];
        for tier in tiers {
            let hits: Vec<NodeId> = all()
                .filter(|e| port_ok(e) && tier(e).iter().any(|a| split_addr(a).0 == ip))
                .map(|e| e.na.id)
                .collect();
            if !hits.is_empty() {
                return sorted(hits);
            }
        }
        let lower = word.to_ascii_lowercase();
        let prefix: Vec<NodeId> = all()
            .filter(|e| {
                e.na.record.name.starts_with(word) || e.na.id.to_string().starts_with(&lower)
            })
            .map(|e| e.na.id)
            .collect();
        sorted(prefix)
    }

    /// Nodes by status, for `info`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in [Status::Alive, Status::Unreachable, Status::Left] {
            m.insert(s.as_str().to_string(), 0);
        }
        for e in self.entries.values() {
            *m.entry(e.status.as_str().to_string()).or_default() += 1;
        }
        m
    }
}

/// Which addresses of a node one tier of [`Table::resolve`] looks at.
type AddrsOf = dyn Fn(&Entry) -> Vec<String>;

/// Splits `ip:port`, `[v6]:port` or a bare address into address and port.
pub fn split_addr(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((ip, port)) = rest.split_once("]:") {
            return (ip, port.parse().ok());
        }
        return (rest.trim_end_matches(']'), None);
    }
    match s.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') => (ip, port.parse().ok()),
        _ => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::peer::{Neighbor, NodeRecord};

    #[test]
    fn offer_keeps_neighbours_in_id_order() {
        let n = |id: u128| Neighbor {
            id: NodeId(id),
            rtt_us: None,
            seen_as: None,
        };
        let na = Announcement {
            id: NodeId(1),
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
            neighbors: vec![n(9), n(3), n(5)],
            left: false,
        };
        let mut t = Table::default();
        assert!(t.offer(Arc::new(na), 0));
        let ids: Vec<u128> = t.entries[&NodeId(1)]
            .na
            .neighbors
            .iter()
            .map(|n| n.id.0)
            .collect();
        assert_eq!(ids, [3, 5, 9]);
    }
}
