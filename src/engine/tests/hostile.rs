//! Hostile input to one engine: versions and forgets that cannot be
//! honest, a peer asking for an endless heartbeat, answers from the wrong
//! direction, and a list in parts. What one link may bring by bytes and
//! by rate is in `bounds`.

use std::sync::Arc;

use super::*;
use crate::wire::ctl::{Command, Run, Target};
use crate::wire::peer::Hop;

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
/// for ever: silence is judged by this node's own clock (probed after 1.5
/// heartbeats, dead after 3), whatever the peer asks.
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
    assert_eq!(closed_at, Some(3), "3 heartbeats of silence");
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

/// 9 - 5 - 8 - 3: neighbour 9 answers `all ping` in the name of node 3,
/// which lies behind 8. Not heard; 3's own answer, back through 8, is.
#[test]
fn an_answer_from_the_wrong_direction_is_not_heard() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    link(&mut e, 2, 8, true, 0);
    e.frame(now(1), 1, PeerMsg::Na(Arc::new(na(9, 2, &[5]))));
    e.frame(now(1), 2, PeerMsg::Na(Arc::new(na(8, 2, &[3, 5]))));
    e.frame(now(1), 2, PeerMsg::Na(Arc::new(na(3, 2, &[8]))));
    e.tick(now(50));
    e.take_actions();
    let run = Run {
        target: Target::All,
        cmd: Command::Ping,
        timeout_ms: 5000,
    };
    e.request(now(100), 42, run);
    let a = e.take_actions();
    let cmd = |link| {
        sent(&a, link)
            .into_iter()
            .find_map(|m| match m {
                PeerMsg::Cmd(r) => Some((**r).clone()),
                _ => None,
            })
            .expect("flooded")
    };
    let (to_9, mut to_8) = (cmd(1), cmd(2));
    // 9 claims 3 is behind it, and that 3 is behind it through 8.
    e.frame(now(101), 1, pong(&to_9, 3));
    let mut via_8 = to_9.clone();
    via_8.path.push(Hop {
        id: NodeId(9),
        name: "n9".into(),
        rtt_us: None,
    });
    e.frame(now(101), 1, pong(&via_8, 8));
    e.frame(now(102), 1, pong(&to_9, 9));
    e.frame(now(102), 2, pong(&to_8, 8));
    assert!(done(e.take_actions()).is_none(), "still waiting for 3");
    to_8.path.push(Hop {
        id: NodeId(8),
        name: "n8".into(),
        rtt_us: None,
    });
    e.frame(now(103), 2, pong(&to_8, 3));
    let o = done(e.take_actions()).expect("all four answered");
    let from: Vec<(u128, usize)> = o
        .answers
        .iter()
        .map(|x| (x.answer.id.0, x.path.len()))
        .collect();
    assert_eq!(from, [(5, 1), (3, 3), (8, 2), (9, 2)]);
}

/// Node 9 holds 3,000 nodes: its `list` answer goes back in parts, each
/// far below the frame limit, and the origin joins them into one answer.
/// Parts that do not fit (a repeat, a wrong count) change nothing.
#[test]
fn a_long_list_travels_in_parts_and_is_joined() {
    let mut origin = engine(5, Config::default());
    link(&mut origin, 1, 9, true, 0);
    origin.tick(now(50));
    origin.take_actions();
    let mut far = engine(9, Config::default());
    link(&mut far, 1, 5, false, 0);
    for id in 1000..4000u128 {
        far.frame(now(1), 1, PeerMsg::Na(Arc::new(na(id, 1, &[]))));
    }
    far.tick(now(50));
    far.take_actions();
    let run = Run {
        target: Target::Remote("n9".into()),
        cmd: Command::List,
        timeout_ms: 5000,
    };
    origin.request(now(100), 42, run);
    let a = origin.take_actions();
    let cmd = sent(&a, 1)[0].clone();
    far.frame(now(101), 1, cmd);
    let parts: Vec<PeerMsg> = sent(&far.take_actions(), 1)
        .into_iter()
        .filter(|m| matches!(m, PeerMsg::Resp(_)))
        .cloned()
        .collect();
    assert!(parts.len() > 3, "{} parts", parts.len());
    for p in &parts {
        let bytes = crate::wire::encode(p)
            .expect("each part fits a frame")
            .len();
        assert!(
            bytes < crate::wire::MAX_FRAME / 2,
            "a part of {bytes} bytes"
        );
    }
    // Out of order, with a repeat and a part claiming another count.
    let mut odd = parts[1].clone();
    if let PeerMsg::Resp(r) = &mut odd {
        r.part = r
            .part
            .map(|p| crate::wire::peer::Part { n: 1, of: p.of + 1 });
    }
    let (last, rest) = parts.split_last().expect("parts");
    origin.frame(now(102), 1, last.clone());
    origin.frame(now(102), 1, odd);
    origin.frame(now(102), 1, last.clone());
    for p in rest {
        assert!(
            done(origin.take_actions()).is_none(),
            "done before every part"
        );
        origin.frame(now(103), 1, p.clone());
    }
    let o = done(origin.take_actions()).expect("joined");
    let [reached] = &o.answers[..] else {
        panic!("{} answers", o.answers.len());
    };
    let crate::wire::ctl::Body::List { nodes } = &reached.answer.body else {
        panic!("{:?}", reached.answer.body);
    };
    assert_eq!(nodes.len(), 3002);
    let mut ids: Vec<u128> = nodes.iter().map(|n| n.id.0).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3002, "each node once");
}

/// An honest peer with a heartbeat ten times ours, which pings us every
/// ten seconds: our probes keep the link, it is never closed.
#[test]
fn a_peer_with_a_longer_heartbeat_keeps_its_link() {
    let mut e = engine(5, Config::default());
    accept(&mut e, 1);
    let mut h = hello(9, &[]);
    if let PeerMsg::Hello(hello) = &mut h {
        hello.hb_ms = 10_000;
    }
    e.frame(now(0), 1, h);
    e.take_actions();
    for ms in (100..120_000u64).step_by(100) {
        e.tick(now(ms));
        let a = e.take_actions();
        assert!(!closed(&a).contains(&1), "closed at {ms} ms");
        for m in sent(&a, 1) {
            if let PeerMsg::Ping { s, .. } = m {
                e.frame(now(ms + 1), 1, PeerMsg::Pong { s: *s });
            }
        }
        if ms % 10_000 == 0 {
            e.frame(now(ms), 1, PeerMsg::Ping { s: 1, r: None });
        }
    }
}
