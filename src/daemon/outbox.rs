//! What waits to go out on one peer link: frames in order, and
//! announcements kept newest-per-node.
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

use crate::wire::peer::{Announcement, NodeId, PeerMsg};

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

#[derive(Default)]
struct Inner {
    /// Everything but announcements, in order.
    ordered: VecDeque<PeerMsg>,
    /// The newest announcement waiting per node.
    nas: HashMap<NodeId, Arc<Announcement>>,
    /// Nodes with an announcement waiting, in the order they were queued.
    na_order: VecDeque<NodeId>,
    /// No more frames: the writer drains what is here, then ends.
    closed: bool,
}

impl Inner {
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
            match msg {
                PeerMsg::Na(na) => {
                    let id = na.id;
                    match q.nas.get_mut(&id) {
                        Some(held) if held.version >= na.version => {}
                        Some(held) => *held = na,
                        None => {
                            q.nas.insert(id, na);
                            q.na_order.push_back(id);
                        }
                    }
                }
                msg => {
                    if q.ordered.len() >= LINK_QUEUE {
                        return Err(Full);
                    }
                    q.ordered.push_back(msg);
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
                if let Some(m) = q.ordered.pop_front() {
                    return Some(m);
                }
                while let Some(id) = q.na_order.pop_front() {
                    if let Some(na) = q.nas.remove(&id) {
                        q.shrink();
                        return Some(PeerMsg::Na(na));
                    }
                }
                q.shrink();
                if q.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
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
