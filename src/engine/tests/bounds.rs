//! What one link may bring, by bytes and by rate: commands and the answers
//! they draw, new nodes, a node's announcements past its pace, records and
//! the table's bytes; fed to one engine by hand.

use std::sync::Arc;

use super::*;
use crate::wire::ctl::Command;
use crate::wire::peer::{Dest, Hop, Routed};

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
