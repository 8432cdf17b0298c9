//! The snapshot's journal: what changed since the snapshot file was
//! written, one JSON line a save.
//!
//! Why: the engine asks for a save 250 ms after any change, and the whole
//! table as JSON is ~500 bytes a node (5 MB at 10,000 nodes), written and
//! synced for one node's change. A save now appends what changed since the
//! last one (the nodes whose announcement, status, last seen or parent
//! moved, those gone, and the redial list and tombstones when they moved),
//! and the whole snapshot is written again only when the journal has grown
//! past it, or when a change is of most nodes (a network forming: the
//! change would cost what the whole does).
//!
//! A node already saved is written as a patch: its status, last seen and
//! parent, and its announcement as the change from the one saved (the
//! links set and unset, as it travels between nodes) or not at all when
//! it is the same. A hub's announcement lists every link: written whole,
//! one container joining a docker host of 500 made every other container
//! write the host's 500 links (40 KB) and, every few joins, its whole
//! table again (170 KB): each change cost every node in proportion to the
//! hub's degree.
//!
//! Loading reads the snapshot, then applies the journal's lines in order;
//! a line cut short by a crash, or one that does not follow what came
//! before, and any after it, are ignored (and the next save starts a fresh
//! snapshot).

use serde::{Deserialize, Serialize};

use crate::engine::{delta, SnapNode, Snapshot};
use crate::wire::ctl::Status;
use crate::wire::peer::{self, NodeId, Version};

/// What changed from one snapshot to the next.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The new snapshot's time.
    pub saved_ms: u64,
    /// The new snapshot's incarnation.
    pub incarnation: u64,
    /// Nodes new or changed, whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upsert: Vec<SnapNode>,
    /// Nodes saved before that changed, as patches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patch: Vec<Patch>,
    /// Nodes gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<NodeId>,
    /// The addresses to redial, when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    /// The tombstones and their times, when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten: Option<Tombs>,
}

/// A node saved before, as it is now: its entry's fields, and its
/// announcement as the change from the one saved, if it is another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    /// Which node.
    pub id: NodeId,
    /// Its announcement's change from the one saved; none: the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<peer::Delta>,
    /// Its status.
    pub status: Status,
    /// When it was last seen, wall ms.
    pub last_seen_ms: u64,
    /// Its last known parent.
    #[serde(default)]
    pub parent: Option<NodeId>,
}

/// Tombstones as the snapshot holds them: versions, and when each was made.
pub type Tombs = (Vec<(NodeId, Version)>, Vec<(NodeId, u64)>);

/// Whether two entries of a node differ in anything a snapshot keeps (a
/// version names one announcement: the table never holds two of one).
fn differs(a: &SnapNode, b: &SnapNode) -> bool {
    a.na.version != b.na.version
        || a.status != b.status
        || a.last_seen_ms != b.last_seen_ms
        || a.parent != b.parent
}

/// What changed from `old` to `new`. Both hold their nodes in id order
/// (as [`crate::engine::Engine::snapshot`] makes them).
pub fn diff(old: &Snapshot, new: &Snapshot) -> Delta {
    let mut d = Delta {
        saved_ms: new.saved_ms,
        incarnation: new.incarnation,
        ..Delta::default()
    };
    let (mut i, mut j) = (0, 0);
    while i < old.nodes.len() || j < new.nodes.len() {
        match (old.nodes.get(i), new.nodes.get(j)) {
            (Some(a), Some(b)) if a.na.id == b.na.id => {
                if differs(a, b) {
                    match patch(a, b) {
                        Some(p) => d.patch.push(p),
                        None => d.upsert.push(b.clone()),
                    }
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.na.id < b.na.id => {
                d.remove.push(a.na.id);
                i += 1;
            }
            (Some(a), None) => {
                d.remove.push(a.na.id);
                i += 1;
            }
            (_, Some(b)) => {
                d.upsert.push(b.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    if old.peers != new.peers {
        d.peers = Some(new.peers.clone());
    }
    if old.forgotten != new.forgotten || old.forgotten_ms != new.forgotten_ms {
        d.forgotten = Some((new.forgotten.clone(), new.forgotten_ms.clone()));
    }
    d
}

/// `new` as a patch of `old` (the same node), unless its announcement is
/// told more briefly whole.
fn patch(old: &SnapNode, new: &SnapNode) -> Option<Patch> {
    let change = if old.na.version == new.na.version {
        None
    } else {
        Some(delta::diff(&old.na, &new.na)?)
    };
    Some(Patch {
        id: new.na.id,
        change,
        status: new.status,
        last_seen_ms: new.last_seen_ms,
        parent: new.parent,
    })
}

/// Applies `d` to `snap`, keeping its nodes in id order. Fails, leaving
/// `snap` as it was, on a patch of a node it does not hold or a change
/// that does not apply to the announcement it holds: a journal that does
/// not follow its snapshot.
pub fn apply(snap: &mut Snapshot, d: Delta) -> Result<(), String> {
    let mut patched = Vec::with_capacity(d.patch.len());
    for p in &d.patch {
        let k = snap
            .nodes
            .binary_search_by_key(&p.id, |x| x.na.id)
            .map_err(|_| format!("a patch of {}, which is not held", p.id))?;
        let na = match &p.change {
            Some(c) => std::sync::Arc::new(delta::apply(&snap.nodes[k].na, c)?),
            None => std::sync::Arc::clone(&snap.nodes[k].na),
        };
        patched.push((k, na));
    }
    for ((k, na), p) in patched.into_iter().zip(d.patch) {
        snap.nodes[k] = SnapNode {
            na,
            status: p.status,
            last_seen_ms: p.last_seen_ms,
            parent: p.parent,
        };
    }
    snap.saved_ms = d.saved_ms;
    snap.incarnation = d.incarnation;
    if !d.remove.is_empty() {
        let gone: std::collections::HashSet<NodeId> = d.remove.into_iter().collect();
        snap.nodes.retain(|n| !gone.contains(&n.na.id));
    }
    for n in d.upsert {
        match snap.nodes.binary_search_by_key(&n.na.id, |x| x.na.id) {
            Ok(k) => snap.nodes[k] = n,
            Err(k) => snap.nodes.insert(k, n),
        }
    }
    if let Some(p) = d.peers {
        snap.peers = p;
    }
    if let Some((f, t)) = d.forgotten {
        snap.forgotten = f;
        snap.forgotten_ms = t;
    }
    Ok(())
}

/// Applies the journal's lines (`bytes`) to `snap` in order; returns how
/// many were applied and whether a bad line (cut short by a crash, or not
/// following what came before) ended it early.
pub fn replay(snap: &mut Snapshot, bytes: &[u8]) -> (usize, bool) {
    let mut applied = 0;
    for line in bytes.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let Ok(d) = serde_json::from_slice::<Delta>(line) else {
            return (applied, true);
        };
        if apply(snap, d).is_err() {
            return (applied, true);
        }
        applied += 1;
    }
    (applied, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ctl::Status;
    use crate::wire::peer::{Announcement, NodeRecord};
    use std::sync::Arc;

    /// Node `id`'s entry at `seq`, with `status`.
    pub(super) fn node(id: u128, seq: u64, status: Status) -> SnapNode {
        SnapNode {
            na: Arc::new(Announcement {
                id: NodeId(id),
                version: Version { inc: 1, seq },
                record: NodeRecord {
                    name: format!("node-{id}"),
                    internal_ip: Some(format!("10.0.{}.{}", id / 250, id % 250)),
                    addrs: vec![],
                    public_ip: None,
                    port: 4040,
                    kind: "container".into(),
                    tags: Default::default(),
                    version: "0.1.0".into(),
                    os: "linux".into(),
                    started_ms: 1,
                    deadend: true,
                },
                neighbors: vec![],
                left: false,
            }),
            status,
            last_seen_ms: 5,
            parent: None,
        }
    }

    fn snap(nodes: Vec<SnapNode>) -> Snapshot {
        Snapshot {
            saved_ms: 1,
            incarnation: 7,
            nodes,
            ..Snapshot::default()
        }
    }

    #[test]
    fn replaying_the_deltas_gives_the_newest_snapshot() {
        let s0 = snap((0..50).map(|i| node(i, 1, Status::Alive)).collect());
        let mut s1 = s0.clone();
        s1.nodes.remove(10);
        s1.nodes[20] = node(21, 2, Status::Alive);
        s1.nodes.push(node(99, 1, Status::Unreachable));
        s1.peers = vec!["10.0.0.1:4040".into()];
        s1.saved_ms = 2;
        let mut s2 = s1.clone();
        s2.nodes[0].status = Status::Unreachable;
        s2.forgotten = vec![(NodeId(10), Version { inc: 1, seq: 1 })];
        s2.forgotten_ms = vec![(NodeId(10), 3)];
        s2.saved_ms = 3;
        let mut journal = Vec::new();
        for (a, b) in [(&s0, &s1), (&s1, &s2)] {
            serde_json::to_writer(&mut journal, &diff(a, b)).unwrap();
            journal.push(b'\n');
        }
        let mut back = s0.clone();
        assert_eq!(replay(&mut back, &journal), (2, false));
        assert_eq!(back, s2);
        // Cut short by a crash: the whole lines before the cut still count.
        let cut = journal.len() - 5;
        let mut back = s0.clone();
        assert_eq!(replay(&mut back, &journal[..cut]), (1, true));
        assert_eq!(back, s1);
    }

    /// A hub of `links` links, at `seq`.
    fn hub(links: u128, seq: u64) -> SnapNode {
        let mut n = node(1_000_000, seq, Status::Alive);
        Arc::make_mut(&mut n.na).neighbors = (0..links)
            .map(|i| crate::wire::peer::Neighbor {
                id: NodeId(i),
                rtt_us: Some(100),
                seen_as: Some("10.0.0.1".into()),
            })
            .collect();
        n
    }

    /// One container joining a docker host of 1,000: every other node's
    /// save wrote the host's whole announcement (each of its links) and
    /// soon its whole table again; now a line of the change.
    #[test]
    fn a_hubs_new_link_is_saved_as_the_link() {
        let mut nodes: Vec<SnapNode> = (0..1_000).map(|i| node(i, 1, Status::Alive)).collect();
        nodes.push(hub(1_000, 1));
        let old = snap(nodes);
        let mut new = old.clone();
        new.nodes.insert(1_000, node(1_000, 1, Status::Alive));
        new.nodes[1_001] = hub(1_001, 2);
        let line = serde_json::to_vec(&diff(&old, &new)).unwrap();
        assert!(line.len() < 1_000, "a line of {} bytes", line.len());
        let mut back = old.clone();
        assert_eq!(
            replay(&mut back, &[line.as_slice(), b"\n"].concat()),
            (1, false)
        );
        assert_eq!(back, new);
        // The hub gone unreachable: no announcement at all.
        let mut later = new.clone();
        later.nodes[1_001].status = Status::Unreachable;
        let d = diff(&new, &later);
        assert_eq!((d.patch.len(), d.patch[0].change.is_none()), (1, true));
        assert!(serde_json::to_vec(&d).unwrap().len() < 200);
    }

    /// A line that does not follow the snapshot (a patch of a node it
    /// does not hold, or of another version) ends the replay there, and
    /// changes nothing of its own.
    #[test]
    fn a_patch_that_does_not_follow_ends_the_replay() {
        let s0 = snap((0..5).map(|i| node(i, 1, Status::Alive)).collect());
        let mut s1 = s0.clone();
        s1.nodes[1] = node(1, 2, Status::Alive);
        s1.nodes[2].status = Status::Unreachable;
        s1.saved_ms = 2;
        let good = serde_json::to_vec(&diff(&s0, &s1)).unwrap();
        let mut elsewhere = s0.clone();
        elsewhere.nodes.remove(2);
        let mut at = s0.clone();
        at.nodes[1] = node(1, 5, Status::Alive);
        for base in [elsewhere, at] {
            let mut back = base.clone();
            let journal = [good.as_slice(), b"\n", good.as_slice(), b"\n"].concat();
            assert_eq!(replay(&mut back, &journal), (0, true));
            assert_eq!(back, base);
        }
        let mut back = s0.clone();
        let journal = [good.as_slice(), b"\n", good.as_slice(), b"\n"].concat();
        assert_eq!(
            replay(&mut back, &journal),
            (1, true),
            "the same change twice"
        );
        assert_eq!(back, s1);
    }

    /// One node's change in a table of 10,000 was a 5 MB save; now it is
    /// one line of about that node's size.
    #[test]
    fn one_change_in_ten_thousand_costs_one_node() {
        let old = snap((0..10_000).map(|i| node(i, 1, Status::Alive)).collect());
        let mut new = old.clone();
        new.nodes[4321].status = Status::Unreachable;
        new.nodes[4321].last_seen_ms = 9;
        let whole = serde_json::to_vec(&new).unwrap().len();
        let line = serde_json::to_vec(&diff(&old, &new)).unwrap().len();
        assert!(whole > 2_000_000, "{whole}");
        assert!(line < 1_000, "a line of {line} bytes");
    }
}

#[cfg(test)]
mod through_the_state_dir {
    use super::super::state::{append, StateDir, JOURNAL, MIN_JOURNAL, SNAPSHOT};
    use crate::engine::{SnapNode, Snapshot};
    use crate::wire::ctl::Status;
    use std::fs;
    use std::os::unix::fs::DirBuilderExt;
    use std::path::PathBuf;

    fn node(id: u128, seq: u64) -> SnapNode {
        super::tests::node(id, seq, Status::Alive)
    }

    /// Saves `snap` as the writer does, shared.
    fn save(dir: &mut StateDir, snap: &Snapshot) -> bool {
        dir.save_snapshot(&std::sync::Arc::new(snap.clone()))
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("daust-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .expect("temp dir");
        p
    }

    /// A save after the first appends what changed; a load replays it; a
    /// line cut short by a crash is ignored; once the journal outgrows the
    /// snapshot, or a change is most of it, the snapshot is written whole
    /// and the journal goes.
    #[test]
    fn saves_append_changes_and_loads_replay_them() {
        let path = temp_dir("journal");
        let mut snap = Snapshot {
            nodes: (0..100).map(|i| node(i, 1)).collect(),
            ..Snapshot::default()
        };
        {
            let mut dir = StateDir::open(&path).expect("open");
            assert!(save(&mut dir, &snap));
            let whole = fs::metadata(path.join(SNAPSHOT)).expect("snapshot").len();
            for k in 0..10u64 {
                snap.nodes[k as usize] = node(u128::from(k), 2 + k);
                snap.saved_ms = k;
                assert!(save(&mut dir, &snap));
            }
            assert_eq!(
                fs::metadata(path.join(SNAPSHOT)).map(|m| m.len()).ok(),
                Some(whole),
                "the snapshot was rewritten for one change"
            );
            let journal = fs::metadata(path.join(JOURNAL)).expect("journal").len();
            assert!(journal < whole / 2, "journal {journal} of {whole}");
            // A change of most nodes (a network forming) is written whole,
            // not serialised twice, as a change and then whole.
            for k in 0..60u64 {
                snap.nodes[k as usize] = node(u128::from(k), 50);
            }
            assert!(save(&mut dir, &snap));
            assert!(
                !path.join(JOURNAL).exists(),
                "most nodes' change journalled"
            );
        }
        // A crash cut the last line short.
        append(&path.join(JOURNAL), b"{\"saved_ms\":99,\"upsert\":[{\"na\"").expect("append");
        {
            let mut dir = StateDir::open(&path).expect("reopen");
            assert_eq!(dir.load_snapshot().as_ref(), Some(&snap));
            // The first save of a run writes it whole, and drops the journal.
            assert!(save(&mut dir, &snap));
            assert!(!path.join(JOURNAL).exists());
            // Enough changes and the journal outgrows the snapshot (and the
            // least it may grow to): the snapshot is written whole again.
            let first = fs::read(path.join(SNAPSHOT)).expect("snapshot");
            for k in 0..1200u64 {
                snap.nodes[(k % 100) as usize] = node(u128::from(k % 100), 100 + k);
                assert!(save(&mut dir, &snap));
            }
            assert_ne!(fs::read(path.join(SNAPSHOT)).ok(), Some(first));
            let journal = fs::metadata(path.join(JOURNAL)).map_or(0, |m| m.len());
            assert!(journal <= MIN_JOURNAL, "a journal of {journal} bytes");
        }
        let mut dir = StateDir::open(&path).expect("reopen");
        assert_eq!(dir.load_snapshot().as_ref(), Some(&snap));
        drop(dir);
        let _ = fs::remove_dir_all(&path);
    }
}
