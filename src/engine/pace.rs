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
use super::limits;
use super::{Engine, LinkId};
use crate::wire::peer::{Announcement, NodeId};

/// One node's pace: a token bucket of [`limits::NODE_NA_RATE`], in 16
/// bytes (one per node that announced in the last second or so).
#[derive(Copy, Clone, Debug)]
struct Beat {
    /// When it was last filled, ms.
    at_ms: u64,
    /// Tokens, in thousandths.
    milli: u32,
}

impl Default for Beat {
    fn default() -> Beat {
        Beat {
            at_ms: 0,
            milli: CAP,
        }
    }
}

/// A full bucket, in thousandths.
const CAP: u32 = limits::NODE_NA_RATE.burst as u32 * 1000;

impl Beat {
    fn level(&self, ms: u64) -> u32 {
        let gained = ms
            .saturating_sub(self.at_ms)
            .saturating_mul(limits::NODE_NA_RATE.per_s);
        u64::from(self.milli)
            .saturating_add(gained)
            .min(u64::from(CAP)) as u32
    }

    /// Takes a token at `ms` if there is one.
    fn take(&mut self, ms: u64) -> bool {
        let level = self.level(ms);
        self.at_ms = self.at_ms.max(ms);
        if level >= 1000 {
            self.milli = level - 1000;
            true
        } else {
            self.milli = level;
            false
        }
    }

    /// When it next holds a token, ms.
    fn due(&self) -> u64 {
        let short = 1000u64.saturating_sub(u64::from(self.milli));
        self.at_ms + short.div_ceil(limits::NODE_NA_RATE.per_s.max(1))
    }
}

/// The pace of every node that announced lately, and what is held back.
pub struct Pace {
    /// Nodes that announced lately, with their buckets; a full bucket is
    /// dropped (see `pace_sweep`).
    buckets: IdMap<Beat>,
    /// The newest held-back announcement of each node past its pace, and
    /// the link it came on.
    held: IdMap<(Arc<Announcement>, LinkId)>,
    /// When full buckets were last dropped, ms.
    swept_ms: u64,
}

impl Pace {
    /// Nothing paced yet; ids hashed with `hash_key`.
    pub fn new(hash_key: u64) -> Pace {
        Pace {
            buckets: new_map(hash_key),
            held: new_map(hash_key),
            swept_ms: 0,
        }
    }

    /// The announcement of `id` held back, if any.
    pub fn held(&self, id: &NodeId) -> Option<&Arc<Announcement>> {
        self.held.get(id).map(|(na, _)| na)
    }

    /// When the next held announcement is due, ms.
    pub fn due(&self) -> Option<u64> {
        self.held
            .keys()
            .filter_map(|id| self.buckets.get(id))
            .map(Beat::due)
            .min()
    }
}

impl Engine {
    /// Whether `na`, valid and newer than what the table holds, may be
    /// taken in now.
    /// If not, it is held back (or replaces an older one held back) and
    /// counts against its link's excess; a link past that is shed.
    pub(super) fn paced(&mut self, link: LinkId, na: &Arc<Announcement>) -> bool {
        // A node's first announcement here is free: its link's budget of
        // new nodes ([`limits::NEW_NODE_RATE`]) bounds those. A bucket
        // from the first one on would be a beat for every node in every
        // table as a network forms (4 GiB of 10,000 simulated engines).
        if !self.table.contains_key(&na.id) && !self.pace.buckets.contains_key(&na.id) {
            return true;
        }
        let ms = self.now.ms();
        let bucket = self.pace.buckets.entry(na.id).or_insert(Beat {
            at_ms: ms,
            milli: CAP - 1000, // less the first, taken without a bucket
        });
        if bucket.take(ms) {
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
        if ms >= self.pace.swept_ms + 1000 {
            self.pace.swept_ms = ms;
            self.pace_sweep(ms);
        }
        if self.pace.held.is_empty() {
            return;
        }
        let due: Vec<_> = self
            .pace
            .held
            .keys()
            .filter(|id| self.pace.buckets.get(id).is_none_or(|b| b.due() <= ms))
            .copied()
            .collect();
        for id in due {
            let Some((na, link)) = self.pace.held.remove(&id) else {
                continue;
            };
            let bucket = self.pace.buckets.entry(id).or_default();
            if !bucket.take(ms) {
                self.pace.held.insert(id, (na, link));
                continue;
            }
            if self.accept_na(link, &na) {
                let from = self.links.contains_key(&link).then_some(link);
                self.flood_na(from, &na, None, false);
            }
        }
    }

    /// Forgets the pace of nodes quiet long enough to be at full burst
    /// (once a second: most nodes announce once in a while, and are back
    /// at full burst within a second, so the map holds only the busy).
    fn pace_sweep(&mut self, ms: u64) {
        let held = &self.pace.held;
        self.pace
            .buckets
            .retain(|id, b| held.contains_key(id) || b.level(ms) < CAP);
    }
}
