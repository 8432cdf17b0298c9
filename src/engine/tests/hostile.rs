//! Hostile input to one engine: versions and forgets that cannot be
//! honest, and a peer asking for an endless heartbeat.

use std::sync::Arc;

use super::*;

fn own_version(e: &Engine) -> Version {
    e.table().get(&NodeId(5)).expect("own entry").na.version
}

fn flooded_own(a: &[Action]) -> Option<Version> {
    a.iter().find_map(|x| match x {
        Action::Send {
            msg: PeerMsg::Na(na),
            ..
        } if na.id == NodeId(5) => Some(na.version),
        _ => None,
    })
}

/// An announcement of this node at u64::MAX made `inc + 1` wrap to 0, and
/// the node lost its own record for good.
#[test]
fn a_forged_version_of_this_node_cannot_take_its_record() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    e.tick(now(100));
    e.take_actions();
    let mine = own_version(&e);
    let mut forged = na(5, u64::MAX, &[]);
    forged.version.inc = u64::MAX;
    forged.record.name = "hijacked".into();
    e.frame(now(200), 1, PeerMsg::Na(Arc::new(forged)));
    assert!(flooded_own(&e.take_actions()).is_none());
    assert_eq!(
        own_version(&e),
        mine,
        "an impossible version changes nothing"
    );
    // A plausible one (a day ahead): outrun at once.
    let mut ahead = na(5, 1000, &[]);
    ahead.version.inc = now(0).wall_ms + 86_400_000;
    let forged_v = ahead.version;
    e.frame(now(300), 1, PeerMsg::Na(Arc::new(ahead)));
    let v = flooded_own(&e.take_actions()).expect("announced past it");
    assert!(v > forged_v, "{v:?} <= {forged_v:?}");
    assert_eq!(
        e.table().get(&NodeId(5)).map(|x| x.na.record.name.as_str()),
        Some("n5")
    );
}

/// A forged forget of a live node: dropped when impossible, refuted past
/// its version when plausible; tombstones expire after a day.
#[test]
fn forged_forgets_do_not_last() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    e.frame(now(10), 1, PeerMsg::Na(Arc::new(na(9, 2, &[5]))));
    e.tick(now(100));
    e.take_actions();
    let far = Version {
        inc: u64::MAX,
        seq: u64::MAX,
    };
    e.frame(
        now(200),
        1,
        PeerMsg::Forget {
            id: NodeId(9),
            version: far,
        },
    );
    e.tick(now(300));
    assert!(
        e.table().get(&NodeId(9)).is_some(),
        "forgotten by an impossible version"
    );
    let ahead = Version {
        inc: now(0).wall_ms + 86_400_000,
        seq: 5,
    };
    e.frame(
        now(400),
        1,
        PeerMsg::Forget {
            id: NodeId(5),
            version: ahead,
        },
    );
    let v = flooded_own(&e.take_actions()).expect("refuted");
    assert!(v > ahead);
    // A node that is really gone is forgotten; its tombstone lasts a day.
    e.frame(now(500), 1, PeerMsg::Na(Arc::new(na(7, 3, &[]))));
    e.tick(now(600));
    let forget = Run {
        target: Target::Local,
        cmd: Command::Forget { node: "n7".into() },
        timeout_ms: 1000,
    };
    e.request(now(700), 1, forget);
    assert!(e.table().get(&NodeId(7)).is_none());
    assert_eq!(e.snapshot().forgotten.len(), 1);
    let day = 24 * 3600 * 1000;
    e.tick(now(day / 2));
    assert_eq!(e.snapshot().forgotten.len(), 1, "gone before a day");
    e.tick(now(day + 20_000));
    assert!(e.snapshot().forgotten.is_empty(), "still there after a day");
}

/// 1,100 Hellos asking for a heartbeat of 10^12 ms held every peer slot
/// for ever: a peer may slow a link to a minute at most.
#[test]
fn a_peer_cannot_ask_for_an_endless_heartbeat() {
    let mut e = engine(5, Config::default());
    accept(&mut e, 1);
    let mut h = hello(9, &[]);
    if let PeerMsg::Hello(hello) = &mut h {
        hello.hb_ms = u64::MAX;
    }
    e.frame(now(0), 1, h);
    e.take_actions();
    let mut closed_at = None;
    for s in 1..=200u64 {
        e.tick(now(s * 1000));
        if closed(&e.take_actions()).contains(&1) {
            closed_at = Some(s);
            break;
        }
    }
    assert_eq!(closed_at, Some(180), "3 x 60 s of silence");
}

/// A neighbour answered every flooded command first, in the name of a
/// frozen node, twice, and for nodes nobody asked: only the nodes asked
/// are heard, once each.
#[test]
fn answers_come_only_from_the_nodes_asked_once_each() {
    let (mut e, r) = all_ping_to_9();
    // Node 77 was never asked (not in the table).
    e.frame(now(101), 1, pong(&r, 77));
    e.frame(now(102), 1, pong(&r, 9));
    let o = done(e.take_actions()).expect("done once 5 and 9 answered");
    let ids: Vec<u128> = o.answers.iter().map(|x| x.answer.id.0).collect();
    assert_eq!(ids, [5, 9]);
    // A second answer from 9 after the end changes nothing.
    e.frame(now(103), 1, pong(&r, 9));
    assert!(e
        .take_actions()
        .iter()
        .all(|x| !matches!(x, Action::Reply { .. })));
}
