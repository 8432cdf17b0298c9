//! Announcements as changes: what a node's announcement gained and lost
//! from one version to the next ([`Delta`]), made by the node itself,
//! applied by every node that holds the version it was made from, and
//! passed on as it came.
//!
//! Why: a hub's announcement lists every link it has. Sent whole, one
//! container joining a docker host of a thousand moved the thousand links
//! to each of the thousand neighbours: a change at a hub cost the square
//! of its degree in bytes and parsing. As a change it costs one link's
//! worth per neighbour, like a change anywhere else. A node that does not
//! hold the base asks the link it came on for the whole announcement
//! ([`crate::wire::peer::PeerMsg::Want`]); link-up sync still sends whole
//! ones, so a node never needs a change it missed to catch up.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{limits, Action, Engine, LinkId};
use crate::wire::peer::{Announcement, Delta, Neighbor, NodeId, PeerMsg, Version};

/// How long a node waits for the whole announcement it asked a link for
/// before it asks again, ms.
const WANT_AGAIN_MS: u64 = 1000;
/// How many times it asks.
const WANT_TRIES: u8 = 3;

/// A whole announcement asked for.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    /// The link asked (the one the change came on).
    link: LinkId,
    /// The version the change made: what is needed.
    pub(super) version: Version,
    /// When it was last asked, ms.
    asked_ms: u64,
    /// How many times.
    tries: u8,
}

impl Engine {
    /// A change to a node's announcement arrived on `link`: applied to the
    /// version it was made from, then taken in and passed on as an
    /// announcement would be. A change to a version not held here is
    /// answered by asking the link for the whole announcement.
    pub(super) fn on_change(&mut self, link: LinkId, d: Arc<Delta>) {
        if let Err(why) = limits::plausible(d.version, self.now.wall_ms).and_then(|()| check(&d)) {
            tracing::warn!(peer = %self.describe(link), node = %d.id.short(), "dropping a change: {why}");
            return;
        }
        if d.id == self.me {
            self.own_copy(link, d.version);
            return;
        }
        let stored = self.table.get(&d.id).map(|e| Arc::clone(&e.na));
        let held = self.pace.held(&d.id).cloned();
        // A copy of what is held (a flood arriving on several links) stops
        // here, before anything is counted.
        let newest = [&stored, &held]
            .into_iter()
            .flatten()
            .map(|n| n.version)
            .max();
        if newest.is_some_and(|v| v >= d.version) {
            return;
        }
        // Passed on as a change only if made from what the others were
        // sent: not from one held back by the pacer.
        let (base, pass_on) = match (stored, held) {
            (Some(s), _) if s.version == d.base => (s, true),
            (_, Some(h)) if h.version == d.base => (h, false),
            (stored, _) => {
                self.want(link, d.id, d.version, stored.is_none());
                return;
            }
        };
        let na = match apply(&base, &d) {
            Ok(na) => Arc::new(na),
            Err(why) => {
                tracing::warn!(peer = %self.describe(link), node = %d.id.short(), "dropping a change: {why}");
                return;
            }
        };
        if self.valid_na(link, &na) && self.paced(link, &na) && self.store_na(link, &na) {
            self.flood_na(Some(link), &na, pass_on.then_some(d), false);
        }
    }

    /// Asks `link` for the whole announcement of `id` (at least `version`),
    /// unless asked lately; asked again while it has not come (see
    /// [`Engine::wanted_timers`]). A node not known here counts as a new
    /// node against what the link may bring: a peer making up changes of
    /// made-up nodes is shed as one announcing them would be.
    fn want(&mut self, link: LinkId, id: NodeId, version: Version, new: bool) {
        let ms = self.now.ms();
        if let Some(w) = self.wanted.get_mut(&id) {
            // Asked already: the answer, or the next try, brings it.
            w.version = w.version.max(version);
            return;
        }
        if !self.within_link_budget(link, new) {
            return;
        }
        self.wanted.insert(
            id,
            Wanted {
                link,
                version,
                asked_ms: ms,
                tries: 1,
            },
        );
        self.actions.push(Action::Send {
            link,
            msg: PeerMsg::Want { id },
        });
    }

    /// The peer on `link` asks for the whole announcement of `id`: sent if
    /// held (a deadend sends only its own, as in a digest sync), within
    /// what the link's requests may draw ([`limits::ANSWER_RATE`]).
    pub(super) fn on_want(&mut self, link: LinkId, id: NodeId) {
        if self.cfg.deadend && id != self.me {
            return;
        }
        let Some(na) = self.table.get(&id).map(|e| Arc::clone(&e.na)) else {
            return;
        };
        let ms = self.now.ms();
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !l
            .answers
            .take(limits::ANSWER_RATE, ms, limits::na_bytes(&na) as u64)
        {
            return;
        }
        self.actions.push(Action::Send {
            link,
            msg: PeerMsg::Na(na),
        });
    }

    /// Asks again for whole announcements that have not come (the answer
    /// was lost with its link, or the peer had none newer), on the link
    /// the change came on while it is up, a few times; a change seen later
    /// asks anew. Without this a node that missed a change at rest would
    /// hold the old version until the next one.
    pub(super) fn wanted_timers(&mut self, ms: u64) {
        if self.wanted.is_empty() {
            return;
        }
        let mut again = Vec::new();
        let table = &self.table;
        let links = &self.links;
        self.wanted.retain(|id, w| {
            if table.version(id).is_some_and(|v| v >= w.version) {
                return false;
            }
            if ms < w.asked_ms + WANT_AGAIN_MS {
                return true;
            }
            if w.tries >= WANT_TRIES || !links.get(&w.link).is_some_and(|l| l.active) {
                return false;
            }
            w.tries += 1;
            w.asked_ms = ms;
            again.push((w.link, *id));
            true
        });
        for (link, id) in again {
            self.actions.push(Action::Send {
                link,
                msg: PeerMsg::Want { id },
            });
        }
    }

    /// When a request for a whole announcement is to be made again, ms.
    pub(super) fn wanted_due(&self) -> Option<u64> {
        self.wanted
            .values()
            .map(|w| w.asked_ms + WANT_AGAIN_MS)
            .min()
    }
}

/// The change from `old` to `new` (two versions of one node's
/// announcement, neighbours in id order), if it is smaller than `new` whole.
pub fn diff(old: &Announcement, new: &Announcement) -> Option<Delta> {
    if old.id != new.id || old.version >= new.version {
        return None;
    }
    let (mut set, mut unset) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (
        old.neighbors.iter().peekable(),
        new.neighbors.iter().peekable(),
    );
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(x), Some(y)) if x.id == y.id => {
                if x != y {
                    set.push((*y).clone());
                }
                a.next();
                b.next();
            }
            (Some(x), y) if y.is_none_or(|y| x.id < y.id) => {
                unset.push(x.id);
                a.next();
            }
            (_, Some(y)) => {
                set.push((*y).clone());
                b.next();
            }
            (_, None) => break,
        }
    }
    let d = Delta {
        id: new.id,
        base: old.version,
        version: new.version,
        record: (old.record != new.record).then(|| new.record.clone()),
        set,
        unset,
        left: new.left,
    };
    (bytes(&d) < limits::na_bytes(new)).then_some(d)
}

/// Bytes a change takes, about, by the measure of [`limits::na_bytes`].
pub fn bytes(d: &Delta) -> usize {
    let record = d.record.as_ref().map_or(0, limits::record_len);
    let set: usize = d
        .set
        .iter()
        .map(|n| 48 + n.seen_as.as_ref().map_or(0, String::len))
        .sum();
    96 + record + set + 40 * d.unset.len()
}

/// `base` changed by `d`: the announcement of `d.version`. Fails on a
/// change that does not apply to `base`, or is not well formed (links out
/// of order or repeated: what a node makes never is).
pub fn apply(base: &Announcement, d: &Delta) -> Result<Announcement, String> {
    if base.id != d.id || base.version != d.base {
        return Err("a change to another version".into());
    }
    check(d)?;
    let mut neighbors = Vec::with_capacity(base.neighbors.len() + d.set.len());
    let (mut set, mut unset) = (d.set.iter().peekable(), d.unset.iter().peekable());
    for n in &base.neighbors {
        while let Some(s) = set.next_if(|s| s.id < n.id) {
            neighbors.push(s.clone());
        }
        while unset.next_if(|u| **u < n.id).is_some() {}
        if unset.next_if(|u| **u == n.id).is_some() {
            set.next_if(|s| s.id == n.id);
            continue;
        }
        match set.next_if(|s| s.id == n.id) {
            Some(s) => neighbors.push(s.clone()),
            None => neighbors.push(n.clone()),
        }
    }
    neighbors.extend(set.cloned());
    Ok(Announcement {
        id: d.id,
        version: d.version,
        record: d.record.clone().unwrap_or_else(|| base.record.clone()),
        neighbors,
        left: d.left,
    })
}

/// Whether a change is well formed: newer than its base, its links in id
/// order, none both set and unset, no more than an announcement may list.
pub fn check(d: &Delta) -> Result<(), String> {
    if d.version <= d.base {
        return Err("a change that is not newer than its base".into());
    }
    if d.set.len() > limits::MAX_NEIGHBORS || d.unset.len() > limits::MAX_NEIGHBORS {
        return Err(format!(
            "a change of {} links set and {} unset (limit {} each)",
            d.set.len(),
            d.unset.len(),
            limits::MAX_NEIGHBORS
        ));
    }
    let set_ascending = d.set.windows(2).all(|w| w[0].id < w[1].id);
    let unset_ascending = d.unset.windows(2).all(|w| w[0] < w[1]);
    if !set_ascending || !unset_ascending {
        return Err("a change whose links are out of order".into());
    }
    if d.unset
        .iter()
        .any(|u| d.set.binary_search_by_key(u, |n| n.id).is_ok())
    {
        return Err("a change that both sets and unsets a link".into());
    }
    Ok(())
}

/// `a` then `b` as one change (`b` made from the version `a` makes), for a
/// link whose queue still holds `a` when `b` comes.
pub fn merge(a: &Delta, b: &Delta) -> Option<Delta> {
    if a.id != b.id || a.version != b.base {
        return None;
    }
    let mut links: BTreeMap<NodeId, Option<&Neighbor>> = BTreeMap::new();
    for d in [a, b] {
        links.extend(d.set.iter().map(|n| (n.id, Some(n))));
        links.extend(d.unset.iter().map(|id| (*id, None)));
    }
    let mut set = Vec::new();
    let mut unset = Vec::new();
    for (id, n) in links {
        match n {
            Some(n) => set.push(n.clone()),
            None => unset.push(id),
        }
    }
    Some(Delta {
        id: a.id,
        base: a.base,
        version: b.version,
        record: b.record.clone().or_else(|| a.record.clone()),
        set,
        unset,
        left: b.left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::peer::{NodeRecord, Version};

    fn nb(id: u128, rtt: u32) -> Neighbor {
        Neighbor {
            id: NodeId(id),
            rtt_us: Some(rtt),
            seen_as: Some("10.0.0.1".into()),
        }
    }

    fn na(seq: u64, links: &[(u128, u32)]) -> Announcement {
        Announcement {
            id: NodeId(7),
            version: Version { inc: 1, seq },
            record: NodeRecord {
                name: "hub".into(),
                internal_ip: None,
                addrs: Vec::new(),
                public_ip: None,
                port: 1,
                kind: "host".into(),
                tags: Default::default(),
                version: "0".into(),
                os: "linux".into(),
                started_ms: 1,
                deadend: false,
            },
            neighbors: links.iter().map(|&(id, r)| nb(id, r)).collect(),
            left: false,
        }
    }

    #[test]
    fn a_change_applied_to_its_base_makes_the_new_version() {
        let many: Vec<(u128, u32)> = (10..60).map(|i| (i, 100)).collect();
        let old = na(1, &many);
        let mut links = many.clone();
        links.retain(|(id, _)| *id != 20 && *id != 59);
        links[3].1 = 250;
        links.push((5, 1));
        links.push((70, 1));
        links.sort();
        let new = na(2, &links);
        let d = diff(&old, &new).expect("a small change");
        assert_eq!(d.unset, vec![NodeId(20), NodeId(59)]);
        assert_eq!(d.set.len(), 3);
        assert!(d.record.is_none());
        assert_eq!(apply(&old, &d), Ok(new));
    }

    #[test]
    fn a_change_to_another_version_or_out_of_order_is_refused() {
        let many: Vec<(u128, u32)> = (10..60).map(|i| (i, 100)).collect();
        let old = na(1, &many);
        let mut d = diff(&old, &na(2, &many[1..])).expect("a change");
        let other = na(3, &many);
        assert!(apply(&other, &d).is_err());
        d.set = vec![nb(90, 1), nb(80, 1)];
        assert!(apply(&old, &d).is_err());
        d.set = vec![nb(11, 1)];
        d.unset = vec![NodeId(11)];
        assert!(apply(&old, &d).is_err());
    }

    #[test]
    fn two_changes_merged_are_the_two_applied() {
        let many: Vec<(u128, u32)> = (10..60).map(|i| (i, 100)).collect();
        let v1 = na(1, &many);
        let v2 = na(2, &many[2..]);
        let mut l3 = many[..40].to_vec();
        l3.push((10, 5));
        l3.remove(0);
        l3.sort();
        let v3 = na(3, &l3);
        let (a, b) = (diff(&v1, &v2).unwrap(), diff(&v2, &v3).unwrap());
        let ab = merge(&a, &b).expect("consecutive");
        assert_eq!(apply(&v1, &ab), Ok(v3));
        assert!(merge(&b, &a).is_none());
    }

    #[test]
    fn a_change_bigger_than_the_whole_is_not_made() {
        let many: Vec<(u128, u32)> = (10..60).map(|i| (i, 100)).collect();
        assert!(diff(&na(1, &many), &na(2, &[])).is_none());
        let mut renamed = na(2, &many);
        renamed.record.name = "x".repeat(200);
        let d = diff(&na(1, &many), &renamed).expect("a change of record only");
        assert!(d.record.is_some() && d.set.is_empty() && d.unset.is_empty());
        assert_eq!(apply(&na(1, &many), &d), Ok(renamed));
    }
}
