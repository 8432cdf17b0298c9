//! What the table shows and who a word names: views of entries for
//! `list`, `info`, `top` and events, the target a user's word resolves
//! to, and counts by status.

use std::collections::BTreeMap;

use super::{Entry, Table};
use crate::wire::ctl::{NodeView, Status};
use crate::wire::peer::NodeId;

impl Table {
    /// The table as `list` shows it: `me` first, then by name (then id).
    pub fn views(&self, me: NodeId, now_ms: u64) -> Vec<NodeView> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
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
            parent: self.parent(e),
            hops: e.hops(),
            rtt_us: self.rtt_us(e),
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
        let all = || self.entries.iter();
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
        for e in &self.entries {
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
