//! Membership events: what changed in the table, in words a script can act
//! on (`joined`, `unreachable`, ...), for `daust events` and `--on-event`
//! hooks. Pure: the driver feeds it the views that changed.

use std::collections::{HashMap, HashSet};

use crate::wire::ctl::{Event, EventKind, NodeView, Status};
use crate::wire::peer::NodeId;

/// Turns table changes into events by comparing each node with how it was
/// last told.
pub struct Tracker {
    me: NodeId,
    me_name: String,
    known: HashMap<NodeId, NodeView>,
    /// Right after a restart, a node missing since is not yet news: its
    /// link may simply not be up again. The caller ends it
    /// ([`Tracker::end_grace`]).
    grace: bool,
}

impl Tracker {
    /// Starts from the table as it was before a restart: `views` with the
    /// statuses `before` gives (the snapshot's), so a restart reports only
    /// what really changed meanwhile; with `grace`, nodes not back yet are
    /// told only at [`Tracker::end_grace`].
    pub fn new(
        me: NodeId,
        me_name: &str,
        views: Vec<NodeView>,
        before: &HashMap<NodeId, Status>,
        grace: bool,
    ) -> Tracker {
        let known = views
            .into_iter()
            .filter(|v| v.id != me)
            .map(|mut v| {
                if let Some(s) = before.get(&v.id) {
                    v.status = *s;
                }
                (v.id, v)
            })
            .collect();
        Tracker {
            me,
            me_name: me_name.to_string(),
            known,
            grace,
        }
    }

    /// Events for nodes whose views changed and nodes dropped from the
    /// table. During the grace a node that is not (yet) back is left as it
    /// was; [`Tracker::end_grace`] reports what is still missing.
    pub fn update(
        &mut self,
        views: impl IntoIterator<Item = NodeView>,
        removed: &[NodeId],
        now_ms: u64,
    ) -> Vec<Event> {
        let grace = self.grace;
        let views: Vec<NodeView> = views.into_iter().collect();
        let mut out = Vec::new();
        for v in views {
            if v.id == self.me {
                continue;
            }
            if grace && v.status == Status::Unreachable {
                continue;
            }
            if v.status != Status::Alive
                && self.known.get(&v.id).is_some_and(|k| k.status == v.status)
            {
                // News about a node that is down (its restart announced
                // before it is reached again): told with the `reachable`.
                continue;
            }
            if !self.known.contains_key(&v.id) && v.status != Status::Alive {
                // Heard of before it was ever reached (its announcement
                // comes before the routes; or it is news of a node already
                // down): nothing to tell until it is reached.
                continue;
            }
            if let Some((kind, changed)) = diff(self.known.get(&v.id), &v) {
                out.push(self.event(kind, v.clone(), changed, now_ms));
            }
            self.known.insert(v.id, v);
        }
        for id in removed {
            if let Some(v) = self.known.remove(id) {
                out.push(self.event(EventKind::Forgotten, v, Vec::new(), now_ms));
            }
        }
        out
    }

    /// The grace is over: every node still not as it was is news now.
    pub fn end_grace(&mut self, views: Vec<NodeView>, now_ms: u64) -> Vec<Event> {
        self.grace = false;
        self.update(views, &[], now_ms)
    }

    fn event(&self, kind: EventKind, node: NodeView, changed: Vec<String>, now_ms: u64) -> Event {
        // The path: parents from the node up to this one.
        let mut path = Vec::new();
        let mut at = node.parent;
        let mut seen = HashSet::new();
        while let Some(p) = at {
            if p == self.me || !seen.insert(p) {
                break;
            }
            let Some(v) = self.known.get(&p) else { break };
            path.push(v.name.clone());
            at = v.parent;
        }
        let via = match node.parent {
            Some(p) if p == self.me => Some(self.me_name.clone()),
            _ => path.first().cloned(),
        };
        path.reverse();
        path.insert(0, self.me_name.clone());
        path.push(node.name.clone());
        Event {
            time_ms: now_ms,
            event: kind,
            node,
            changed,
            via,
            path,
            reporter: self.me_name.clone(),
        }
    }
}

/// What happened between how a node was last told (`old`) and now.
pub fn diff(old: Option<&NodeView>, new: &NodeView) -> Option<(EventKind, Vec<String>)> {
    let Some(old) = old else {
        return Some(match new.status {
            Status::Left => (EventKind::Left, Vec::new()),
            Status::Unreachable => (EventKind::Unreachable, Vec::new()),
            Status::Alive => (EventKind::Joined, Vec::new()),
        });
    };
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
    if old.status != new.status {
        let kind = match new.status {
            Status::Alive => EventKind::Reachable,
            Status::Unreachable => EventKind::Unreachable,
            Status::Left => EventKind::Left,
        };
        return Some((kind, changed));
    }
    (!changed.is_empty()).then_some((EventKind::Updated, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: u128, name: &str, status: Status, parent: Option<u128>) -> NodeView {
        NodeView {
            id: NodeId(id),
            name: name.into(),
            internal_ip: Some("10.0.0.1".into()),
            public_ip: None,
            addrs: vec![],
            seen_as: vec![],
            kind: "vm".into(),
            status,
            last_seen_secs: 0,
            last_seen_ms: 0,
            parent: parent.map(NodeId),
            hops: None,
            rtt_us: None,
            started_ms: 1,
            os: String::new(),
            tags: Default::default(),
            version: "0.1.0".into(),
            deadend: false,
        }
    }

    fn kinds(ev: &[Event]) -> Vec<(&str, &str)> {
        ev.iter()
            .map(|e| (e.event.as_str(), e.node.name.as_str()))
            .collect()
    }

    #[test]
    fn a_nodes_life_in_events() {
        let me = view(1, "me", Status::Alive, None);
        let mut t = Tracker::new(NodeId(1), "me", vec![me], &HashMap::new(), false);
        let hv = view(2, "hv", Status::Alive, Some(1));
        let vm = view(3, "vm", Status::Alive, Some(2));
        let heard = view(3, "vm", Status::Unreachable, None);
        assert!(t.update([heard], &[], 9).is_empty(), "not reached yet");
        let ev = t.update([hv.clone(), vm.clone()], &[], 10);
        assert_eq!(kinds(&ev), [("joined", "hv"), ("joined", "vm")]);
        assert_eq!(ev[1].path, ["me", "hv", "vm"]);
        assert_eq!(ev[1].via.as_deref(), Some("hv"));
        assert_eq!(ev[0].via.as_deref(), Some("me"));
        // Nothing changed: nothing to tell.
        assert!(t.update([vm.clone()], &[], 11).is_empty());
        let mut moved = vm.clone();
        moved.tags.insert("role".into(), "db".into());
        moved.addrs = vec!["10.0.0.9".into()];
        let ev = t.update([moved.clone()], &[], 12);
        assert_eq!(kinds(&ev), [("updated", "vm")]);
        assert_eq!(ev[0].changed, ["addresses", "tags"]);
        let mut down = moved.clone();
        down.status = Status::Unreachable;
        let ev = t.update([down.clone()], &[], 13);
        assert_eq!(kinds(&ev), [("unreachable", "vm")]);
        assert_eq!(ev[0].via.as_deref(), Some("hv"), "the last path is told");
        let mut restarted = down.clone();
        restarted.started_ms = 99;
        assert!(
            t.update([restarted], &[], 14).is_empty(),
            "told when reached"
        );
        let mut moved = moved.clone();
        moved.started_ms = 99;
        let ev = t.update([moved.clone()], &[], 14);
        assert_eq!(kinds(&ev), [("reachable", "vm")]);
        assert_eq!(ev[0].changed, ["restarted"]);
        let mut left = moved;
        left.status = Status::Left;
        assert_eq!(kinds(&t.update([left], &[], 15)), [("left", "vm")]);
        let ev = t.update([], &[NodeId(3)], 16);
        assert_eq!(kinds(&ev), [("forgotten", "vm")]);
        assert_eq!(ev[0].time_ms, 16);
    }

    #[test]
    fn a_restart_tells_only_what_changed_meanwhile() {
        let me = view(1, "me", Status::Alive, None);
        // After a restart every node starts unreachable until links are up.
        let a = view(2, "a", Status::Unreachable, Some(1));
        let b = view(3, "b", Status::Unreachable, Some(1));
        let before: HashMap<NodeId, Status> =
            [(NodeId(2), Status::Alive), (NodeId(3), Status::Alive)].into();
        let mut t = Tracker::new(
            NodeId(1),
            "me",
            vec![me, a.clone(), b.clone()],
            &before,
            true,
        );
        assert!(t.update([a.clone(), b.clone()], &[], 10).is_empty());
        let a_back = view(2, "a", Status::Alive, Some(1));
        assert!(
            t.update([a_back.clone()], &[], 500).is_empty(),
            "a was alive before"
        );
        // b never came back: told once the grace is over.
        let ev = t.end_grace(vec![a_back, b], 3000);
        assert_eq!(kinds(&ev), [("unreachable", "b")]);
    }
}
