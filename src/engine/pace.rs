//! Pacing: each node's announcements are taken in at most at
//! [`limits::NODE_NA_RATE`]. A newer announcement of a node past its pace
//! is held back, the newest one winning, and taken in (and passed on) when
//! it is due; nothing is lost, a fast-changing node is only smoothed.
//!
//! Why: one peer re-announcing made-up nodes as fast as it could (12,000 a
//! second) had every node in the network take in and pass on every one.
//! Paced per node, a relay passes on no more than it took in at the pace,
//! so an honest link brings next to nothing past it; a link that brings
//! thousands past it ([`limits::EXCESS_RATE`]) is the flooder, and is shed.

use std::sync::Arc;

use super::idmap::{new_map, IdMap};
use super::limits::{self, Bucket};
use super::{Engine, LinkId};
use crate::wire::peer::{Announcement, PeerMsg};

/// The pace of every node that announced lately, and what is held back.
pub struct Pace {
    /// Nodes that announced lately, with their buckets; a full bucket is
    /// dropped at housekeeping.
    buckets: IdMap<Bucket>,
    /// The newest held-back announcement of each node past its pace, and
    /// the link it came on.
    held: IdMap<(Arc<Announcement>, LinkId)>,
}

impl Pace {
    /// Nothing paced yet; ids hashed with `hash_key`.
    pub fn new(hash_key: u64) -> Pace {
        Pace {
            buckets: new_map(hash_key),
            held: new_map(hash_key),
        }
    }

    /// When the next held announcement is due, ms.
    pub fn due(&self) -> Option<u64> {
        self.held
            .keys()
            .filter_map(|id| self.buckets.get(id))
            .map(|b| b.due(limits::NODE_NA_RATE))
            .min()
    }
}

impl Engine {
    /// Whether `na`, newer than what the table holds, may be taken in now.
    /// If not, it is held back (or replaces an older one held back) and
    /// counts against its link's excess; a link past that is shed.
    pub(super) fn paced(&mut self, link: LinkId, na: &Arc<Announcement>) -> bool {
        let ms = self.now.ms();
        let bucket = self.pace.buckets.entry(na.id).or_default();
        if bucket.take(limits::NODE_NA_RATE, ms, 1) {
            return true;
        }
        let newest = self
            .pace
            .held
            .get(&na.id)
            .is_none_or(|(held, _)| na.version > held.version);
        if newest {
            self.pace.held.insert(na.id, (Arc::clone(na), link));
        }
        let Some(l) = self.links.get_mut(&link) else {
            return false;
        };
        if !l.excess.take(limits::EXCESS_RATE, ms, 1) {
            let why = format!(
                "it sent over {} announcements a second past their nodes' pace (after a burst of {})",
                limits::EXCESS_RATE.per_s,
                limits::EXCESS_RATE.burst
            );
            self.shed(link, &why);
        }
        false
    }

    /// Takes in the held-back announcements that are due, and passes them
    /// on (to every link but the one they came on, if it is still up).
    pub(super) fn pace_timers(&mut self, ms: u64) {
        if self.pace.held.is_empty() {
            return;
        }
        let due: Vec<_> = self
            .pace
            .held
            .keys()
            .filter(|id| {
                self.pace
                    .buckets
                    .get(id)
                    .is_none_or(|b| b.due(limits::NODE_NA_RATE) <= ms)
            })
            .copied()
            .collect();
        for id in due {
            let Some((na, link)) = self.pace.held.remove(&id) else {
                continue;
            };
            let bucket = self.pace.buckets.entry(id).or_default();
            if !bucket.take(limits::NODE_NA_RATE, ms, 1) {
                self.pace.held.insert(id, (na, link));
                continue;
            }
            if self.accept_na(link, &na) {
                let from = self.links.contains_key(&link).then_some(link);
                self.flood(from, PeerMsg::Na(na), false);
            }
        }
    }

    /// Forgets the pace of nodes quiet long enough to be at full burst.
    pub(super) fn pace_housekeeping(&mut self, ms: u64) {
        let held = &self.pace.held;
        self.pace
            .buckets
            .retain(|id, b| held.contains_key(id) || !b.is_full(limits::NODE_NA_RATE, ms));
    }
}
