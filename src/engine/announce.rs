//! Announcements: this node's own (built from its record and live links,
//! debounced, versioned) and everyone else's (accepted if newer and
//! allowed, then flooded on every other link).

use std::sync::Arc;

use super::links::Link;
use super::{delta, limits, Action, Engine, LinkId};
use crate::wire::ctl::Status;
use crate::wire::peer::{Announcement, Delta, Neighbor, NodeId, PeerMsg, Version};

/// How many RTTs one announcement updates (see [`Engine::announced_rtts`]).
pub const RTT_UPDATES: usize = 8;

impl Engine {
    /// Our own announcement as it stands.
    pub(super) fn own_na(&self) -> Announcement {
        let mut neighbors: Vec<Neighbor> = self
            .links
            .values()
            .filter(|l| l.active)
            .filter_map(|l| {
                Some(Neighbor {
                    id: l.peer?,
                    rtt_us: l.announced_rtt,
                    seen_as: l.seen_as.clone(),
                })
            })
            .collect();
        neighbors.sort_by_key(|n| n.id);
        neighbors.dedup_by_key(|n| n.id);
        Announcement {
            id: self.me,
            version: self.version,
            record: self.record.clone(),
            neighbors: if self.left { Vec::new() } else { neighbors },
            left: self.left,
        }
    }

    /// Something in our announcement changed: re-announce after the debounce.
    /// Leading edge: a change after a quiet spell goes out at once; more
    /// changes within the debounce wait for its end and go out together.
    /// A new link goes out before its RTT is measured (waiting for it cost
    /// a join at 200 nodes 40 ms); its RTT rides along with the next change
    /// (announcing it on its own cost every link a flood from each end:
    /// +50 % frames as a network forms).
    pub(super) fn schedule_announce(&mut self) {
        if self.announce_at.is_none() {
            let at = self.announced_ms + self.cfg.announce_debounce_ms();
            self.announce_at = Some(at.max(self.now.ms()));
        }
    }

    /// Which RTTs the next announcement gives: of the links measured since
    /// their last announcement (first measurements first, then those whose
    /// RTT drifted by over a quarter), the [`RTT_UPDATES`] that moved most.
    /// RTTs wander, and under load by a thousandfold (115 ms on a loopback
    /// while 500 daemons start, 0.1 ms after); giving every drifted one
    /// would make the next change at a hub a change of all its links. They
    /// ride along with changes that go out anyway, a few at a time.
    fn announced_rtts(&mut self) {
        let mut drifted: Vec<(u64, LinkId)> = Vec::new();
        for (id, l) in self.links.iter().filter(|(_, l)| l.active) {
            if let Some(d) = l.rtt_drift() {
                drifted.push((d, *id));
            }
        }
        drifted.sort_unstable_by(|a, b| b.cmp(a));
        for (_, id) in drifted.into_iter().take(RTT_UPDATES) {
            if let Some(l) = self.links.get_mut(&id) {
                l.announced_rtt = l.rtt_us;
            }
        }
    }

    /// Originates a new version of our announcement and floods it.
    pub(super) fn announce(&mut self) {
        self.announce_at = None;
        self.announced_ms = self.now.ms();
        self.refresh_at = self.now.ms() + self.cfg.refresh_ms();
        self.version = limits::next(self.version);
        self.announced_rtts();
        let na = Arc::new(self.own_na());
        let before = self.table.get(&self.me).map(|e| Arc::clone(&e.na));
        self.table.offer(Arc::clone(&na), self.now.wall_ms);
        self.actions.push(Action::NodeChanged(self.me));
        self.dirty_routes();
        // As a change only from a version the others were sent: not from
        // the one a node starts with, which went only into handshakes.
        let change = before
            .filter(|b| self.flooded_own == Some(b.version))
            .and_then(|b| delta::diff(&b, &na))
            .map(Arc::new);
        self.flood_na(None, &na, change, true);
        self.flooded_own = Some(na.version);
        self.schedule_persist();
    }

    /// Floods an announcement: as the change `change` (from the version
    /// before it) to the links that take changes, whole to the others.
    pub(super) fn flood_na(
        &mut self,
        except: Option<LinkId>,
        na: &Arc<Announcement>,
        change: Option<Arc<Delta>>,
        own: bool,
    ) {
        self.flood_each(except, own, |l| match &change {
            Some(d) if l.deltas => PeerMsg::Change(Arc::clone(d)),
            _ => PeerMsg::Na(Arc::clone(na)),
        });
    }

    /// Sends `msg` on every established link but `except`.
    pub(super) fn flood(&mut self, except: Option<LinkId>, msg: PeerMsg, own: bool) {
        self.flood_each(except, own, |_| msg.clone());
    }

    /// Sends on every established link but `except` what `msg_for` makes
    /// for it. Forwarding for others (`own == false`) is what a deadend
    /// never does.
    fn flood_each(
        &mut self,
        except: Option<LinkId>,
        own: bool,
        msg_for: impl Fn(&Link) -> PeerMsg,
    ) {
        if !own && self.cfg.deadend {
            return;
        }
        self.floods += 1;
        for (&link, l) in &self.links {
            if l.active && Some(link) != except {
                self.actions.push(Action::Send {
                    link,
                    msg: msg_for(l),
                });
            }
        }
    }

    /// An announcement arrived on `link`: stored if newer, and passed on;
    /// held back if its node announces faster than [`limits::NODE_NA_RATE`].
    pub(super) fn on_na(&mut self, link: LinkId, na: Arc<Announcement>) {
        // Checked before it is paced: a forgery must not take a pace token
        // or wait in place of an honest announcement.
        if self.valid_na(link, &na) && self.paced(link, &na) && self.store_na(link, &na) {
            self.flood_na(Some(link), &na, None, false);
        }
    }

    /// Counts a new node (announced, or a change of one not known here)
    /// against what its link may bring (see [`limits::NEW_NODE_RATE`]); a
    /// link past it is shed.
    pub(super) fn within_link_budget(&mut self, link: LinkId, new: bool) -> bool {
        let ms = self.now.ms();
        let Some(l) = self.links.get_mut(&link) else {
            return true;
        };
        if !new || l.new_nodes.take(limits::NEW_NODE_RATE, ms, 1) {
            return true;
        }
        let why = format!(
            "it brought in over {} new nodes a second (after a burst of {})",
            limits::NEW_NODE_RATE.per_s,
            limits::NEW_NODE_RATE.burst
        );
        self.shed(link, &why);
        false
    }

    /// Closes a link that brings more than any honest one does.
    pub(super) fn shed(&mut self, link: LinkId, why: &str) {
        let reason = format!("shedding the link: {why}");
        tracing::warn!(peer = %self.describe(link), "{reason}");
        self.close(link, &reason);
    }

    /// Whether the table has room for `na`: within [`limits::MAX_NODES`]
    /// and [`limits::MAX_TABLE_BYTES`], with a reserve for this node's own
    /// neighbours, so a full table still takes a node the operator joins
    /// or that dials in. A full table makes room for others by dropping
    /// unreachable nodes (see [`Engine::make_room`]).
    fn room_for(&mut self, na: &Announcement, new: bool) -> bool {
        let bytes = limits::na_bytes(na);
        let held = self
            .table
            .get(&na.id)
            .map_or(0, |e| limits::na_bytes(&e.na));
        let short = |t: &super::table::Table| {
            let grows_past = t.bytes() + bytes > limits::MAX_TABLE_BYTES + held && bytes > held;
            grows_past || (new && t.len() >= limits::MAX_NODES)
        };
        if !short(&self.table) {
            return true;
        }
        if self.link_to(na.id).is_some() {
            return !(new && self.table.len() >= limits::MAX_NODES + limits::NEIGHBOR_RESERVE);
        }
        let mut tries = 4;
        while short(&self.table) {
            if tries == 0 || !self.make_room() {
                tracing::warn!(
                    node = %na.id.short(),
                    "not taking in a node: the table holds {} nodes in {} MiB (limits {} and {} MiB, but for this node's neighbours), none of them unreachable to make room",
                    self.table.len(),
                    self.table.bytes() >> 20,
                    limits::MAX_NODES,
                    limits::MAX_TABLE_BYTES >> 20
                );
                return false;
            }
            tries -= 1;
        }
        true
    }

    /// Makes room in a full table by dropping one unreachable (or
    /// departed) node: of a few sampled at random, the one seen longest
    /// ago, as an approximated LRU does. Dropped, not forgotten: it comes
    /// back if it is announced again. At most [`limits::EVICT_RATE`], so a
    /// flood of new nodes cannot churn the table. Returns whether it did.
    fn make_room(&mut self) -> bool {
        let n = self.table.len() as u64;
        if n == 0 || !self.evictions.take(limits::EVICT_RATE, self.now.ms(), 1) {
            return false;
        }
        let mut oldest: Option<(u64, NodeId)> = None;
        for _ in 0..32 {
            let slot = self.rng.below(n) as usize;
            let Some(e) = self.table.at(slot) else {
                continue;
            };
            if e.status == Status::Alive || e.na.id == self.me {
                continue;
            }
            if oldest.is_none_or(|(t, _)| e.last_seen_ms < t) {
                oldest = Some((e.last_seen_ms, e.na.id));
            }
        }
        let Some((_, id)) = oldest else {
            return false;
        };
        self.news_removed(id);
        if let Some(e) = self.table.remove(&id) {
            tracing::info!(node = %e.na.record.name, id = %id.short(), "dropped to make room in a full table: unreachable, the longest unseen of those sampled");
            self.actions.push(Action::NodeRemoved(id));
            self.dirty_routes();
            self.schedule_persist();
        }
        true
    }

    /// Stores an announcement that came on `link` if it is newer than the
    /// one held (and allowed); returns whether it was. The copy in a
    /// handshake goes only through here: the peer announces again as soon
    /// as the link is up, with the link in it, so passing that copy on
    /// would cost every node a frame saying nothing new a moment later.
    pub(super) fn accept_na(&mut self, link: LinkId, na: &Arc<Announcement>) -> bool {
        self.valid_na(link, na) && self.store_na(link, na)
    }

    /// Whether an announcement that came on `link` may be taken in: honest
    /// as far as can be told, allowed, and newer than the one held. One of
    /// this node itself is not, and makes it announce past it if newer.
    pub(super) fn valid_na(&mut self, link: LinkId, na: &Announcement) -> bool {
        if let Err(why) = limits::plausible(na.version, self.now.wall_ms) {
            tracing::warn!(peer = %self.describe(link), node = %na.id.short(), "dropping an announcement: {why}");
            return false;
        }
        if na.id == self.me {
            self.own_copy(link, na.version);
            return false;
        }
        // A copy of what is held (a flood arriving on several links: half
        // of all announcements as a network forms) stops here, before its
        // contents are checked or any bound is counted.
        if self.table.version(&na.id).is_some_and(|v| na.version <= v) {
            return false;
        }
        if self.forgotten.get(&na.id).is_some_and(|v| *v >= na.version) {
            return false;
        }
        if let Err(why) = limits::check(na) {
            tracing::warn!(peer = %self.describe(link), node = %na.id.short(), "dropping an announcement: {why}");
            return false;
        }
        true
    }

    /// An announcement of this node came in (whole or as a change): one we
    /// did not make if it is as new as ours (a previous life whose snapshot
    /// is lost, a clock set back, or a forgery). Move past it, so that our
    /// own record wins everywhere.
    pub(super) fn own_copy(&mut self, link: LinkId, version: Version) {
        if version >= self.version {
            tracing::info!(peer = %self.describe(link), "a newer announcement of this node is about: announcing past it");
            self.version = version;
            self.announce();
        }
    }

    /// Stores a valid announcement if its link and the table have room for
    /// it; returns whether it did.
    pub(super) fn store_na(&mut self, link: LinkId, na: &Arc<Announcement>) -> bool {
        let new = !self.table.contains_key(&na.id);
        if !self.within_link_budget(link, new) {
            return false;
        }
        if !self.room_for(na, new) {
            return false;
        }
        let old = self.table.get(&na.id).map(|e| Arc::clone(&e.na));
        if !self.table.offer(Arc::clone(na), self.now.wall_ms) {
            return false;
        }
        if let Some(old) = old {
            self.news_record(&old, na);
        }
        self.forgotten.remove(&na.id);
        if self
            .wanted
            .get(&na.id)
            .is_some_and(|w| na.version >= w.version)
        {
            self.wanted.remove(&na.id);
        }
        self.actions.push(Action::NodeChanged(na.id));
        self.dirty_routes();
        self.schedule_persist();
        true
    }
}
