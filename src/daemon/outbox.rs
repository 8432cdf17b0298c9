//! What waits to go out on one peer link: frames in order, and
//! announcements kept newest-per-node.
//!
//! An announcement sent as a change joins the one of its node still
//! waiting: a change to a waiting whole announcement is applied to it, two
//! changes in a row become one. A change that does not follow what waits
//! replaces it, and the peer asks for what it lacks.
//!
//! Why: an announcement only matters in its newest version, so a link
//! behind a burst (a peer flooding thousands a second, a network forming)
//! holds one per node, never one per version: its backlog is bounded by
//! the table, not by how fast others talk. Everything else (handshake,
//! digests, heartbeats, commands, answers, forgets) goes first and in
//! order, so a heartbeat never waits behind a thousand announcements and an
//! honest link is not dropped for another peer's flood. Only when the
//! ordered frames overflow is the peer too slow.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::engine::delta;
use crate::wire::peer::{Announcement, Delta, NodeId, PeerMsg, Version};

/// Ordered frames queued for one link before the peer counts as stuck and
/// is dropped: a second or more of any burst a healthy peer would drain.
pub const LINK_QUEUE: usize = 4096;

/// The ordered frames overflowed: the peer is not reading.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// One link's queue, shared by the driver (which pushes) and the link's
/// writer (which takes).
#[derive(Default)]
pub struct Outbox {
    inner: Mutex<Inner>,
    ready: Notify,
}

/// One node's announcement waiting to go: whole, or as a change.
enum Waiting {
    Whole(Arc<Announcement>),
    Change(Arc<Delta>),
}

impl Waiting {
    fn version(&self) -> Version {
        match self {
            Waiting::Whole(na) => na.version,
            Waiting::Change(d) => d.version,
        }
    }

    /// Whether `next` says more: a newer version, or the same one whole
    /// where a change waits (the answer to a peer that asked for it
    /// whole: the change would not apply there).
    fn older_than(&self, next: &Waiting) -> bool {
        let whole = matches!(next, Waiting::Whole(_)) && matches!(self, Waiting::Change(_));
        next.version() > self.version() || (whole && next.version() == self.version())
    }

    /// What waits once `next` (newer) comes: `next`, or both as one.
    fn then(&self, next: Waiting) -> Waiting {
        match (self, next) {
            (Waiting::Whole(na), Waiting::Change(d)) => match delta::apply(na, &d) {
                Ok(na) => Waiting::Whole(Arc::new(na)),
                Err(_) => Waiting::Change(d),
            },
            (Waiting::Change(a), Waiting::Change(b)) => match delta::merge(a, &b) {
                Some(ab) => Waiting::Change(Arc::new(ab)),
                None => Waiting::Change(b),
            },
            (_, next) => next,
        }
    }

    fn into_msg(self) -> PeerMsg {
        match self {
            Waiting::Whole(na) => PeerMsg::Na(na),
            Waiting::Change(d) => PeerMsg::Change(d),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Everything but announcements, in order.
    ordered: VecDeque<PeerMsg>,
    /// The newest announcement waiting per node.
    nas: HashMap<NodeId, Waiting>,
    /// Nodes with an announcement waiting, in the order they were queued.
    na_order: VecDeque<NodeId>,
    /// No more frames: the writer drains what is here, then ends.
    closed: bool,
}

impl Inner {
    /// The next frame: ordered ones first, then announcements.
    fn pop(&mut self) -> Option<PeerMsg> {
        if let Some(m) = self.ordered.pop_front() {
            return Some(m);
        }
        while let Some(id) = self.na_order.pop_front() {
            if let Some(w) = self.nas.remove(&id) {
                self.shrink();
                return Some(w.into_msg());
            }
        }
        self.shrink();
        None
    }

    /// Lets go of the room a burst left behind once it is drained: a hub
    /// has hundreds of links, each of which held a table's worth of
    /// announcements when it came up.
    fn shrink(&mut self) {
        if self.na_order.is_empty() && self.nas.capacity() > 64 {
            self.nas = HashMap::new();
            self.na_order = VecDeque::new();
        }
        if self.ordered.is_empty() && self.ordered.capacity() > 256 {
            self.ordered = VecDeque::new();
        }
    }
}

impl Outbox {
    /// A new, empty outbox.
    pub fn new() -> Arc<Outbox> {
        Arc::new(Outbox::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A writer that panicked holding the lock left nothing half-done
        // that matters here: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `msg`. An announcement replaces an older one of its node
    /// still waiting; other frames queue in order, and overflowing them
    /// is [`Full`].
    pub fn push(&self, msg: PeerMsg) -> Result<(), Full> {
        {
            let mut q = self.lock();
            if q.closed {
                return Ok(());
            }
            let waiting = match msg {
                PeerMsg::Na(na) => Some((na.id, Waiting::Whole(na))),
                PeerMsg::Change(d) => Some((d.id, Waiting::Change(d))),
                msg => {
                    if q.ordered.len() >= LINK_QUEUE {
                        return Err(Full);
                    }
                    q.ordered.push_back(msg);
                    None
                }
            };
            if let Some((id, next)) = waiting {
                match q.nas.get_mut(&id) {
                    Some(held) if !held.older_than(&next) => {}
                    Some(held) => *held = held.then(next),
                    None => {
                        q.nas.insert(id, next);
                        q.na_order.push_back(id);
                    }
                }
            }
        }
        self.ready.notify_one();
        Ok(())
    }

    /// No more frames: what is queued still leaves, then the writer ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Frames waiting (ordered ones and announcements).
    #[cfg(test)]
    fn len(&self) -> usize {
        let q = self.lock();
        q.ordered.len() + q.na_order.len()
    }

    /// The next frame to send, waiting for one; `None` once closed and
    /// drained.
    pub async fn next(&self) -> Option<PeerMsg> {
        loop {
            {
                let mut q = self.lock();
                if let Some(m) = q.pop() {
                    return Some(m);
                }
                if q.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }

    /// The next frame to send if one waits (the writer gathers what
    /// waits into one write).
    pub fn try_next(&self) -> Option<PeerMsg> {
        self.lock().pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::peer::{NodeRecord, Version};

    fn na(id: u128, seq: u64) -> PeerMsg {
        PeerMsg::Na(Arc::new(Announcement {
            id: NodeId(id),
            version: Version { inc: 1, seq },
            record: NodeRecord {
                name: format!("n{id}"),
                internal_ip: None,
                addrs: vec![],
                public_ip: None,
                port: 4040,
                kind: "host".into(),
                tags: Default::default(),
                version: "0".into(),
                os: "test".into(),
                started_ms: 0,
                deadend: false,
            },
            neighbors: vec![],
            left: false,
        }))
    }

    fn seq(m: &PeerMsg) -> (u128, u64) {
        match m {
            PeerMsg::Na(na) => (na.id.0, na.version.seq),
            _ => (0, 0),
        }
    }

    #[tokio::test]
    async fn a_burst_of_announcements_is_one_per_node_behind_the_heartbeats() {
        let q = Outbox::new();
        for s in 1..=100_000u64 {
            q.push(na(u128::from(s % 3) + 1, s)).unwrap();
        }
        q.push(PeerMsg::Ping { s: 1, r: None }).unwrap();
        q.push(na(1, 5)).unwrap(); // older than the one waiting
        assert_eq!(q.len(), 4);
        assert!(matches!(q.next().await, Some(PeerMsg::Ping { .. })));
        let mut got = Vec::new();
        q.close();
        while let Some(m) = q.next().await {
            got.push(seq(&m));
        }
        assert_eq!(got, [(2, 100_000), (3, 99_998), (1, 99_999)]);
    }

    fn change(seq: u64, set: &[u128], unset: &[u128]) -> PeerMsg {
        PeerMsg::Change(Arc::new(Delta {
            id: NodeId(1),
            base: Version {
                inc: 1,
                seq: seq - 1,
            },
            version: Version { inc: 1, seq },
            record: None,
            set: set
                .iter()
                .map(|&id| crate::wire::peer::Neighbor {
                    id: NodeId(id),
                    rtt_us: None,
                    seen_as: None,
                })
                .collect(),
            unset: unset.iter().map(|&id| NodeId(id)).collect(),
            left: false,
        }))
    }

    fn links(m: &PeerMsg) -> Vec<u128> {
        match m {
            PeerMsg::Na(na) => na.neighbors.iter().map(|n| n.id.0).collect(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn changes_join_what_waits_of_their_node() {
        let q = Outbox::new();
        q.push(change(2, &[10, 11], &[])).unwrap();
        q.push(change(3, &[12], &[10])).unwrap();
        q.push(change(3, &[99], &[])).unwrap(); // a copy: not newer
        assert_eq!(q.len(), 1);
        match q.next().await {
            Some(PeerMsg::Change(d)) => {
                assert_eq!((d.base.seq, d.version.seq), (1, 3));
                let set: Vec<u128> = d.set.iter().map(|n| n.id.0).collect();
                assert_eq!((set, d.unset.clone()), (vec![11, 12], vec![NodeId(10)]));
            }
            m => panic!("expected one change, got {m:?}"),
        }
        q.push(na(1, 4)).unwrap();
        q.push(change(5, &[20, 21], &[])).unwrap();
        q.push(change(6, &[22], &[21])).unwrap();
        let m = q.next().await.expect("one frame");
        assert_eq!((seq(&m), links(&m)), ((1, 6), vec![20, 22]));
        q.push(change(7, &[30], &[])).unwrap();
        q.push(na(1, 7)).unwrap(); // asked for whole: it wins
        assert!(matches!(q.next().await, Some(PeerMsg::Na(n)) if n.version.seq == 7));
        q.push(change(8, &[30], &[])).unwrap();
        q.push(change(10, &[31], &[])).unwrap(); // a gap: the newer one goes
        assert!(matches!(q.next().await, Some(PeerMsg::Change(d)) if d.version.seq == 10));
    }

    #[test]
    fn what_waits_is_taken_without_waiting_in_order() {
        let q = Outbox::new();
        assert!(q.try_next().is_none());
        q.push(na(2, 1)).unwrap();
        q.push(PeerMsg::Pong { s: 7 }).unwrap();
        assert!(matches!(q.try_next(), Some(PeerMsg::Pong { s: 7 })));
        assert!(matches!(q.try_next(), Some(PeerMsg::Na(n)) if n.id == NodeId(2)));
        assert!(q.try_next().is_none());
    }

    #[tokio::test]
    async fn ordered_frames_overflow_at_the_limit() {
        let q = Outbox::new();
        for s in 0..LINK_QUEUE as u32 {
            q.push(PeerMsg::Pong { s }).unwrap();
        }
        assert_eq!(q.push(PeerMsg::Pong { s: 0 }), Err(Full));
        assert_eq!(q.push(na(1, 1)), Ok(()), "announcements still coalesce");
        assert!(matches!(q.next().await, Some(PeerMsg::Pong { s: 0 })));
    }
}
