//! Membership news: one [`Event`] per change a person or a script acts on
//! (`joined`, `updated`, `unreachable`, `reachable`, `left`, `forgotten`),
//! told at the moment the engine makes the change, as [`Action::News`].
//!
//! What was last told of each node is kept (`told`), so that only real
//! changes are news: a node seen go alive and down again within one batch
//! of the daemon is told twice, not missed; a node that comes back after a
//! restart of this daemon, as it was, is not news at all. Right after a
//! restart, nodes of the snapshot are given a grace (three heartbeats and a
//! second) to come back before their loss is told: their links may simply
//! not be up yet.

use super::idmap::{new_map, IdMap};
use super::{Action, Engine};
use crate::wire::ctl::{Event, EventKind, Status};
use crate::wire::peer::{Announcement, NodeId, NodeRecord};

/// What the engine remembers of what it told, beside the status last
/// told of each node, which its table entry keeps ([`super::table::Entry::told`],
/// from the snapshot at start).
#[derive(Debug)]
pub struct News {
    /// Changes of a node's record heard while it was not alive: told with
    /// its `reachable`.
    pending: IdMap<Vec<String>>,
    /// Losses are not news before this time, ms (after a restart).
    grace_until_ms: Option<u64>,
}

impl News {
    /// News with a grace until `grace_until_ms` if the snapshot held nodes
    /// (`after_restart`).
    pub fn new(hash_key: u64, after_restart: bool, grace_until_ms: u64) -> News {
        News {
            grace_until_ms: after_restart.then_some(grace_until_ms),
            pending: new_map(hash_key),
        }
    }

    /// When the grace ends, if one runs.
    pub fn grace_until(&self) -> Option<u64> {
        self.grace_until_ms
    }
}

/// What changed between two records of a node, in the words events use.
pub fn record_changes(old: &NodeRecord, new: &NodeRecord) -> Vec<String> {
    let mut changed = Vec::new();
    if (&old.internal_ip, &old.public_ip, &old.addrs)
        != (&new.internal_ip, &new.public_ip, &new.addrs)
    {
        changed.push("addresses".to_string());
    }
    if old.tags != new.tags {
        changed.push("tags".into());
    }
    if old.name != new.name {
        changed.push("name".into());
    }
    if old.version != new.version {
        changed.push("version".into());
    }
    if old.started_ms != new.started_ms {
        changed.push("restarted".into());
    }
    changed
}

impl Engine {
    /// A node's status changed (from a route recompute): news if it is not
    /// what was last told.
    pub(super) fn news_status(&mut self, id: NodeId, to: Status) {
        if id == self.me {
            return;
        }
        let told = self.table.get(&id).and_then(|e| e.told());
        let in_grace = self.news.grace_until_ms.is_some();
        let kind = match (told, to) {
            // Not back yet after our restart: maybe only its link is not.
            (_, Status::Unreachable) if in_grace => return,
            (None, Status::Alive) => EventKind::Joined,
            // Heard of before it was ever reached: nothing to tell yet.
            (None, _) => return,
            (Some(Status::Alive), Status::Alive) => {
                // Back within the grace, as it was; unless it changed.
                if self.news.pending.get(&id).is_some_and(|p| !p.is_empty()) {
                    EventKind::Updated
                } else {
                    return;
                }
            }
            (Some(t), to) if t == to => return,
            (Some(_), Status::Alive) => EventKind::Reachable,
            (Some(_), Status::Unreachable) => EventKind::Unreachable,
            (Some(_), Status::Left) => EventKind::Left,
        };
        let pending = self.news.pending.remove(&id).unwrap_or_default();
        let changed = match kind {
            EventKind::Reachable | EventKind::Updated => pending,
            _ => Vec::new(),
        };
        self.table.set_told(&id, Some(to));
        self.tell(kind, id, changed);
    }

    /// A node announced a new version: news if its record changed while it
    /// is alive; kept for its `reachable` while it is not.
    pub(super) fn news_record(&mut self, old: &Announcement, new: &Announcement) {
        let changed = record_changes(&old.record, &new.record);
        if changed.is_empty() || new.id == self.me {
            return;
        }
        let alive = self
            .table
            .get(&new.id)
            .is_some_and(|e| e.status == Status::Alive);
        let told = self.table.get(&new.id).and_then(|e| e.told());
        if alive && told == Some(Status::Alive) {
            self.tell(EventKind::Updated, new.id, changed);
        } else {
            let p = self.news.pending.entry(new.id).or_default();
            for c in changed {
                if !p.contains(&c) {
                    p.push(c);
                }
            }
        }
    }

    /// A node is about to be dropped from the table: `forgotten`, if it
    /// was ever told of.
    pub(super) fn news_removed(&mut self, id: NodeId) {
        self.news.pending.remove(&id);
        if self.table.get(&id).and_then(|e| e.told()).is_some() {
            self.tell(EventKind::Forgotten, id, Vec::new());
        }
    }

    /// The grace after a restart is over at `ms`: every node still not as
    /// it was is news now.
    pub(super) fn news_grace(&mut self, ms: u64) {
        if self.news.grace_until_ms.is_none_or(|t| ms < t) {
            return;
        }
        self.news.grace_until_ms = None;
        let mut late: Vec<(NodeId, Status)> = self
            .table
            .values()
            .filter_map(|e| {
                let told = e.told()?;
                (e.status != told).then_some((e.na.id, e.status))
            })
            .collect();
        late.sort_by_key(|(id, _)| *id);
        for (id, status) in late {
            self.news_status(id, status);
        }
    }

    /// Emits one event about `id` as the table shows it now.
    fn tell(&mut self, kind: EventKind, id: NodeId, changed: Vec<String>) {
        if !self.cfg.news {
            return;
        }
        let Some(node) = self.view(&id) else { return };
        // The path: parents from the node up to this one.
        let mut path = Vec::new();
        let mut at = node.parent;
        let mut hops = 0;
        while let Some(p) = at.filter(|p| *p != self.me) {
            let Some(e) = self.table.get(&p) else { break };
            path.push(e.na.record.name.clone());
            at = self.table.parent(e);
            hops += 1;
            if hops > self.table.len() {
                break; // a cycle of stale parents
            }
        }
        let via = match node.parent {
            Some(p) if p == self.me => Some(self.record.name.clone()),
            _ => path.first().cloned(),
        };
        path.reverse();
        path.insert(0, self.record.name.clone());
        path.push(node.name.clone());
        let ev = Event {
            time_ms: self.now.wall_ms,
            event: kind,
            node,
            changed,
            via,
            path,
            reporter: self.record.name.clone(),
        };
        self.actions.push(Action::News(Box::new(ev)));
    }
}
