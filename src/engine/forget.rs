//! Forgetting: dropping nodes from every table for good (`forget NODE`,
//! and nodes unseen for `--forget-after`), with tombstones so that stale
//! copies of them stay out, and held ("contested") forgets for nodes that
//! look alive here.

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
                self.forgotten.insert(id, e.na.version);
                self.schedule_persist();
            }
        }
    }

    /// Removes `id` from the table for good (versions up to `version`) and
    /// tells the neighbours. Returns false if the node is alive here.
    pub(super) fn forget(&mut self, id: NodeId, version: Version, from: Option<LinkId>) -> bool {
        if self.forgotten.get(&id).is_some_and(|v| *v >= version) {
            return true;
        }
        if self.forgotten.len() >= limits::MAX_NODES {
            // Tombstones only keep stale copies out; the oldest can go.
            let drop: Vec<NodeId> = self
                .forgotten
                .keys()
                .take(limits::MAX_NODES / 16)
                .copied()
                .collect();
            for k in drop {
                self.forgotten.remove(&k);
            }
        }
        if id == self.me {
            if from.is_some() && version >= self.version {
                // Forgotten somewhere while alive (a partition): announce a
                // newer version, which every tombstone lets through.
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
        self.forgotten.insert(id, version);
        self.dirty_routes();
        self.schedule_persist();
        self.flood(from, PeerMsg::Forget { id, version }, from.is_none());
        true
    }
}
