//! What survives a restart: the table (every node's newest announcement,
//! status, last seen and parent), the addresses to redial, and the
//! tombstones of forgotten nodes. The daemon writes it when the engine
//! asks ([`super::Action::Persist`]) and hands it back to [`Engine::new`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::wire::ctl::Status;
use crate::wire::peer::{Announcement, NodeId, Version};

/// What survives a restart: the table and the addresses to redial.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Wall clock ms when written.
    pub saved_ms: u64,
    /// The incarnation in use when written.
    pub incarnation: u64,
    /// Every node but this one.
    pub nodes: Vec<SnapNode>,
    /// Addresses to redial after a restart.
    pub peers: Vec<String>,
    /// Tombstones: nodes forgotten, up to which version.
    #[serde(default)]
    pub forgotten: Vec<(NodeId, Version)>,
    /// When each tombstone was made, wall ms (they expire a day later).
    #[serde(default)]
    pub forgotten_ms: Vec<(NodeId, u64)>,
}

/// One node in the [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapNode {
    /// Its newest announcement.
    pub na: Arc<Announcement>,
    /// Its status when written.
    pub status: Status,
    /// When it was last seen, wall ms.
    pub last_seen_ms: u64,
    /// Its last known parent.
    pub parent: Option<NodeId>,
}

impl Engine {
    /// What survives a restart, as it stands: written by the caller when
    /// the engine asks with [`Action::Persist`].
    pub fn snapshot(&self) -> Snapshot {
        let mut nodes: Vec<SnapNode> = self
            .table
            .values()
            .filter(|e| e.na.id != self.me)
            .map(|e| SnapNode {
                na: Arc::clone(&e.na),
                status: e.status,
                last_seen_ms: e.last_seen_ms,
                parent: self.table.parent(e),
            })
            .collect();
        nodes.sort_unstable_by_key(|n| n.na.id);
        let peers = self
            .dials
            .iter()
            .filter(|(_, d)| d.persistent)
            .map(|(a, _)| a.clone())
            .collect();
        let mut tombs: Vec<(NodeId, Version, u64)> = self.forgotten.iter().collect();
        tombs.sort();
        let forgotten = tombs.iter().map(|(id, v, _)| (*id, *v)).collect();
        let forgotten_ms = tombs.iter().map(|(id, _, t)| (*id, *t)).collect();
        Snapshot {
            saved_ms: self.now.wall_ms,
            incarnation: self.version.inc,
            nodes,
            peers,
            forgotten,
            forgotten_ms,
        }
    }
}
