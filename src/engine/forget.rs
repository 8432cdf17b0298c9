//! Forgetting: dropping nodes from every table for good (`forget NODE`,
//! and nodes unseen for `--forget-after`), with tombstones so that stale
//! copies of them stay out, and held ("contested") forgets for nodes that
//! look alive here.

use super::idmap::{new_map, IdMap};
use super::{limits, Action, Engine, LinkId};
use crate::wire::ctl::Status;
use crate::wire::peer::{NodeId, PeerMsg, Version};

impl Engine {
    /// Drops nodes unreachable or gone for longer than `forget_after`.
    pub(super) fn forget_old(&mut self) {
        if self.cfg.forget_after_ms() == 0 {
            return;
        }
        let now = self.now.wall_ms;
        let old: Vec<NodeId> = self
            .table
            .values()
            .filter(|e| {
                e.status != Status::Alive
                    && now.saturating_sub(e.last_seen_ms) > self.cfg.forget_after_ms()
            })
            .map(|e| e.na.id)
            .collect();
        for id in old {
            self.news_removed(id);
            if let Some(e) = self.table.remove(&id) {
                self.actions.push(Action::NodeRemoved(id));
                tracing::info!(node = %e.na.record.name, "forgotten after {} s unseen", (now - e.last_seen_ms) / 1000);
                self.forgotten.insert(id, e.na.version, now);
                self.schedule_persist();
            }
        }
    }

    /// Removes `id` from the table for good (versions up to `version`) and
    /// tells the neighbours. Returns false if the node is alive here.
    pub(super) fn forget(&mut self, id: NodeId, version: Version, from: Option<LinkId>) -> bool {
        if let Err(why) = limits::plausible(version, self.now.wall_ms) {
            let peer = from.map_or_else(|| "here".to_string(), |l| self.describe(l));
            tracing::warn!(%peer, node = %id.short(), "dropping a forget: {why}");
            return false;
        }
        if self.forgotten.get(&id).is_some_and(|v| *v >= version) {
            return true;
        }
        if self.forgotten.len() >= limits::MAX_NODES {
            // Tombstones only keep stale copies out; the oldest can go.
            self.forgotten.drop_oldest(limits::MAX_NODES / 16);
        }
        if id == self.me {
            if from.is_some() && version >= self.version {
                // Forgotten somewhere while alive (a partition, or a forged
                // forget): announce past the tombstone's version, which
                // every tombstone lets through.
                self.version = version;
                self.announce();
            }
            return false;
        }
        if let Some(e) = self.table.get(&id) {
            if e.na.version > version {
                return false;
            }
            if e.status == Status::Alive {
                // Alive as far as we know, which may be stale (a snapshot
                // just loaded): drop it if it turns out unreachable; pass
                // the word on, once, so that the node itself hears of it
                // and re-announces if it lives.
                if self.contested.get(&id).is_some_and(|c| *c >= version) {
                    return false;
                }
                self.contested.insert(id, version);
                self.flood(from, PeerMsg::Forget { id, version }, from.is_none());
                return false;
            }
            self.news_removed(id);
            self.table.remove(&id);
            self.actions.push(Action::NodeRemoved(id));
        }
        self.contested.remove(&id);
        self.forgotten.insert(id, version, self.now.wall_ms);
        self.dirty_routes();
        self.schedule_persist();
        self.flood(from, PeerMsg::Forget { id, version }, from.is_none());
        true
    }
}

/// Tombstones of forgotten nodes: versions up to which copies of them stay
/// out, each for [`limits::TOMBSTONE_MS`] after it was made.
#[derive(Debug)]
pub struct Tombstones {
    versions: IdMap<Version>,
    since_ms: IdMap<u64>,
}

impl Tombstones {
    /// None yet.
    pub fn new(hash_key: u64) -> Tombstones {
        Tombstones {
            versions: new_map(hash_key),
            since_ms: new_map(hash_key),
        }
    }

    /// The version up to which `id` is forgotten.
    pub fn get(&self, id: &NodeId) -> Option<&Version> {
        self.versions.get(id)
    }

    /// Forgets `id` up to `version`, from wall time `now_ms`.
    pub fn insert(&mut self, id: NodeId, version: Version, now_ms: u64) {
        self.versions.insert(id, version);
        self.since_ms.insert(id, now_ms);
    }

    /// `id` came back: no tombstone.
    pub fn remove(&mut self, id: &NodeId) {
        self.versions.remove(id);
        self.since_ms.remove(id);
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Every tombstone: id, version, when made.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, Version, u64)> + '_ {
        self.versions
            .iter()
            .map(|(id, v)| (*id, *v, self.since_ms.get(id).copied().unwrap_or(0)))
    }

    /// Drops the `n` oldest.
    fn drop_oldest(&mut self, n: usize) {
        let mut all: Vec<(u64, NodeId)> = self.since_ms.iter().map(|(id, t)| (*t, *id)).collect();
        all.sort();
        for (_, id) in all.into_iter().take(n) {
            self.remove(&id);
        }
    }

    /// Drops the tombstones older than [`limits::TOMBSTONE_MS`] at
    /// `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let old: Vec<NodeId> = self
            .since_ms
            .iter()
            .filter(|(_, t)| now_ms.saturating_sub(**t) > limits::TOMBSTONE_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in &old {
            self.remove(id);
        }
        old.len()
    }
}
