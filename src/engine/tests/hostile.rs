//! Hostile input to one engine: versions and forgets that cannot be
//! honest, and a peer asking for an endless heartbeat.

use std::sync::Arc;

use super::*;
use crate::wire::ctl::{Command, Run, Target};
use crate::wire::peer::{Dest, Hop, Routed};

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

/// A peer sending thousands of commands a second: past the burst they are
/// dropped, not run; and `list`s past the answer budget get an error.
#[test]
fn a_link_may_not_draw_endless_answers() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    e.take_actions();
    let mut answered = 0;
    for i in 0..6000u64 {
        e.frame(now(100), 1, routed_ping(i));
        answered += sent(&e.take_actions(), 1)
            .iter()
            .filter(|m| matches!(m, PeerMsg::Resp(_)))
            .count();
    }
    assert_eq!(answered as u64, limits::CMD_RATE.burst);
    // A second on, a thousand more.
    for i in 6000..7200u64 {
        e.frame(now(1100), 1, routed_ping(i));
    }
    let more = sent(&e.take_actions(), 1)
        .iter()
        .filter(|m| matches!(m, PeerMsg::Resp(_)))
        .count();
    assert_eq!(more as u64, limits::CMD_RATE.per_s);
}

/// 0.1 MB of `list` commands drew 220 MB of tables: past the link's answer
/// budget, a `list` gets a short error instead.
#[test]
fn a_link_may_not_draw_endless_tables() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    for id in 1000..4000u128 {
        e.frame(now(1), 1, PeerMsg::Na(Arc::new(na(id, 1, &[]))));
    }
    e.take_actions();
    let (mut tables, mut refused) = (0, 0);
    for i in 0..200u64 {
        let PeerMsg::Cmd(mut r) = routed_ping(i) else {
            unreachable!()
        };
        r.cmd = Command::List;
        e.frame(now(2), 1, PeerMsg::Cmd(r));
        for m in sent(&e.take_actions(), 1) {
            match m {
                PeerMsg::Resp(r) if r.part.is_some_and(|p| p.n == 0) => tables += 1,
                PeerMsg::Resp(r) => {
                    if let crate::wire::ctl::Body::Error { message } = &r.answer.body {
                        assert!(message.starts_with("busy"), "{message}");
                        refused += 1;
                    }
                }
                _ => {}
            }
        }
    }
    let each = limits::ANSWER_RATE.burst / tables;
    assert!(
        refused > 0 && tables > 10,
        "{tables} tables, {refused} refused"
    );
    assert!(
        each > 1_000_000,
        "a table of 3,000 nodes is over a MB: {each}"
    );
}

fn routed_ping(mid: u64) -> PeerMsg {
    PeerMsg::Cmd(Box::new(Routed {
        mid,
        origin: NodeId(9),
        dest: Dest::Node(NodeId(5)),
        ttl: 8,
        path: vec![Hop {
            id: NodeId(9),
            name: "n9".into(),
            rtt_us: None,
        }],
        cmd: Command::Ping,
    }))
}

/// 70,000 fake nodes from one link: the table stops at its limit, the
/// link is shed once past its burst of new nodes, and a node that then
/// links to this one directly is still taken in.
#[test]
fn a_link_flooding_nodes_is_shed_and_a_full_table_takes_a_neighbour() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    e.take_actions();
    let mut shed_after = None;
    for i in 0..200_000u128 {
        e.frame(now(10), 1, PeerMsg::Na(Arc::new(na(100_000 + i, 1, &[]))));
        if closed(&e.take_actions()).contains(&1) {
            shed_after = Some(i);
            break;
        }
    }
    assert!(e.table().len() <= limits::MAX_NODES);
    let burst = limits::NEW_NODE_RATE.burst as u128;
    assert!(
        shed_after.is_some_and(|n| n + 1 >= burst && n <= burst + 10),
        "shed after {shed_after:?}"
    );
    link(&mut e, 2, 8, false, 20);
    assert!(
        e.table().contains_key(&NodeId(8)),
        "a neighbour is taken in"
    );
    assert!(
        e.table().len() > limits::MAX_NODES,
        "over the limit, in the reserve"
    );
}

/// One node re-announced a thousand times a second: taken in and passed
/// on at its pace, the newest held back until due, never lost; a link
/// bringing thousands past the pace is shed, the honest one is not.
#[test]
fn a_node_announcing_too_fast_is_paced_and_its_link_shed() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    link(&mut e, 2, 8, true, 0);
    e.take_actions();
    let passed = |a: &[Action]| {
        sent(a, 2)
            .iter()
            .filter_map(|m| match m {
                PeerMsg::Na(na) if na.id == NodeId(77) => Some(na.version.seq),
                _ => None,
            })
            .collect::<Vec<u64>>()
    };
    let mut on = Vec::new();
    for seq in 1..=1000 {
        e.frame(now(100), 1, PeerMsg::Na(Arc::new(na(77, seq, &[]))));
        on.extend(passed(&e.take_actions()));
    }
    let burst = limits::NODE_NA_RATE.burst;
    assert_eq!(on, (1..=burst).collect::<Vec<u64>>());
    assert_eq!(e.table().version(&NodeId(77)).map(|v| v.seq), Some(burst));
    e.tick(now(600));
    assert_eq!(passed(&e.take_actions()), [1000], "the newest, when due");
    assert_eq!(e.table().version(&NodeId(77)).map(|v| v.seq), Some(1000));
    let mut shed = false;
    for seq in 1001..=20_000 {
        e.frame(now(700), 1, PeerMsg::Na(Arc::new(na(77, seq, &[]))));
        let c = closed(&e.take_actions());
        assert!(!c.contains(&2), "the honest link was shed");
        shed |= c.contains(&1);
    }
    assert!(shed, "the flooder's link was not shed");
}

/// Records of a megabyte were taken; and a table may hold so many bytes.
#[test]
fn announcements_and_the_table_are_bounded_in_bytes() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    let mut fat = na(77, 1, &[]);
    fat.record.tags = (0..60)
        .map(|i| (format!("k{i:0>200}"), "v".repeat(200)))
        .collect();
    e.frame(now(10), 1, PeerMsg::Na(Arc::new(fat)));
    assert!(!e.table().contains_key(&NodeId(77)), "a 24 KB record");
    let big = |id: u128| {
        let mut x = na(id, 1, &[]);
        x.record.tags = (0..40)
            .map(|i| (format!("k{i:0>150}"), "v".repeat(200)))
            .collect();
        x
    };
    assert!(limits::check(&big(1)).is_ok());
    let each = limits::na_bytes(&big(1));
    let fits = limits::MAX_TABLE_BYTES / each;
    for id in 0..fits as u128 + 500 {
        e.frame(now(10), 1, PeerMsg::Na(Arc::new(big(1000 + id))));
    }
    assert!(e.table().bytes() <= limits::MAX_TABLE_BYTES);
    assert!(
        e.table().len() + 10 >= fits,
        "{} of {fits}",
        e.table().len()
    );
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

/// A forged announcement of a node past its pace was held back as the
/// newest, in place of the node's own: checked first, it is dropped, and
/// the node's own newest is taken in when due.
#[test]
fn a_forgery_cannot_wait_in_place_of_a_paced_announcement() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    e.take_actions();
    let burst = limits::NODE_NA_RATE.burst;
    for seq in 1..=burst {
        e.frame(now(100), 1, PeerMsg::Na(Arc::new(na(77, seq, &[]))));
    }
    let mut forged = na(77, u64::MAX, &[]);
    forged.version.inc = u64::MAX;
    e.frame(now(100), 1, PeerMsg::Na(Arc::new(forged)));
    e.frame(now(100), 1, PeerMsg::Na(Arc::new(na(77, burst + 7, &[]))));
    e.tick(now(1000));
    e.take_actions();
    assert_eq!(
        e.table().version(&NodeId(77)).map(|v| v.seq),
        Some(burst + 7)
    );
}
