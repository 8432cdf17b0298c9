//! Unit tests of one engine, fed frames by hand: links (handshake,
//! duplicate links, digest sync, deadend, redial backoff, the lossy-path
//! rule) and commands (routing, flood dedup, returning when all answered).
//! Whole networks are tested in `tests/sim.rs`.

use std::sync::Arc;

use super::*;
use crate::engine::DialFailure;
use crate::wire::ctl::{Command, Run, Target};
use crate::wire::peer::{Announcement, Dest, Hello, Neighbor, Routed};

const HB: u64 = 1000;

pub(super) fn now(ms: u64) -> Now {
    Now {
        mono_us: ms * 1000,
        wall_ms: 1_700_000_000_000 + ms,
    }
}

fn record(name: &str) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        internal_ip: Some(format!("10.0.0.{}", name.len())),
        addrs: vec![],
        public_ip: None,
        port: 4040,
        kind: "host".into(),
        tags: Default::default(),
        version: crate::VERSION.into(),
        os: "test".into(),
        started_ms: 1,
        deadend: false,
    }
}

pub(super) fn engine(id: u128, cfg: Config) -> Engine {
    let mut e = Engine::new(cfg, NodeId(id), record(&format!("n{id}")), now(0), 7, None);
    e.take_actions();
    e
}

pub(super) fn na(id: u128, seq: u64, neighbors: &[u128]) -> Announcement {
    Announcement {
        id: NodeId(id),
        version: Version { inc: 1, seq },
        record: record(&format!("n{id}")),
        neighbors: neighbors
            .iter()
            .map(|n| Neighbor {
                id: NodeId(*n),
                rtt_us: Some(100),
                seen_as: None,
            })
            .collect(),
        left: false,
    }
}

pub(super) fn hello(id: u128, neighbors: &[u128]) -> PeerMsg {
    PeerMsg::Hello(Box::new(Hello {
        proto: crate::wire::peer::PROTO_MAJOR,
        minor: 0,
        id: NodeId(id),
        hb_ms: HB,
        na: na(id, 1, neighbors),
        seen_as: "10.0.0.9".into(),
    }))
}

/// Opens link `link` to peer `peer` (dialled by us when `dialled`) and
/// completes its handshake at `ms`.
pub(super) fn link(e: &mut Engine, link: LinkId, peer: u128, dialled: bool, ms: u64) {
    let info = LinkInfo {
        dialled: dialled.then(|| format!("10.0.1.{peer}:4040")),
        remote: format!("10.0.1.{peer}:4040"),
    };
    e.link_up(now(ms), link, info);
    e.frame(now(ms), link, hello(peer, &[]));
}

pub(super) fn sent(actions: &[Action], to: LinkId) -> Vec<&PeerMsg> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { link, msg } if *link == to => Some(msg),
            _ => None,
        })
        .collect()
}

pub(super) fn closed(actions: &[Action]) -> Vec<LinkId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { link, .. } => Some(*link),
            _ => None,
        })
        .collect()
}

/// A connection comes in on `link` (not dialled by us), at time 0.
pub(super) fn accept(e: &mut Engine, link: LinkId) {
    let info = LinkInfo {
        dialled: None,
        remote: "10.0.1.9:5555".into(),
    };
    e.link_up(now(0), link, info);
}

#[test]
fn a_handshake_sends_hello_then_the_digest() {
    let mut e = engine(5, Config::default());
    accept(&mut e, 1);
    let a = e.take_actions();
    assert!(matches!(sent(&a, 1)[..], [PeerMsg::Hello(_)]), "{a:?}");
    e.frame(now(1), 1, hello(9, &[]));
    let a = e.take_actions();
    assert!(
        sent(&a, 1)
            .iter()
            .any(|m| matches!(m, PeerMsg::Digest { done: true, .. })),
        "{a:?}"
    );
    assert!(
        e.table().get(&NodeId(9)).is_some(),
        "the Hello's announcement is stored"
    );
}

#[test]
fn of_two_links_the_one_dialled_by_the_lower_id_stays() {
    // We are 5; peer 9. Our dial (dialler 5) beats theirs (dialler 9).
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, false, 0);
    e.take_actions();
    link(&mut e, 2, 9, true, 1);
    assert_eq!(closed(&e.take_actions()), [1]);
    // We are 5; peer 3 (lower): their dial stays, ours goes.
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 3, false, 0);
    e.take_actions();
    link(&mut e, 2, 3, true, 1);
    assert_eq!(closed(&e.take_actions()), [2]);
}

/// Peer 6's digest answered after `link 1`'s peer 9 announced `nine`
/// versions past its Hello: the ids sent to 6.
fn digest_answer(nine: u64) -> Vec<u128> {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, false, 0);
    e.frame(now(1), 1, PeerMsg::Na(Arc::new(na(7, 4, &[]))));
    e.frame(now(1), 1, PeerMsg::Na(Arc::new(na(8, 2, &[]))));
    for seq in 0..nine {
        e.frame(now(1), 1, PeerMsg::Na(Arc::new(na(9, 2 + seq, &[5]))));
    }
    e.take_actions();
    link(&mut e, 2, 6, false, 2);
    e.take_actions();
    // Peer 6 holds 7 at seq 4 (as new as ours) and 8 at seq 1 (older);
    // it lacks us and 9.
    let entries = vec![
        (NodeId(6), Version { inc: 1, seq: 1 }),
        (NodeId(7), Version { inc: 1, seq: 4 }),
        (NodeId(8), Version { inc: 1, seq: 1 }),
    ];
    e.frame(
        now(3),
        2,
        PeerMsg::Digest {
            entries,
            done: true,
        },
    );
    let a = e.take_actions();
    let mut ids: Vec<u128> = sent(&a, 2)
        .iter()
        .filter_map(|m| match m {
            PeerMsg::Na(na) => Some(na.id.0),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn the_digest_answer_is_what_the_peer_lacks_or_holds_older() {
    assert_eq!(digest_answer(1), [5, 8, 9]);
}

/// A neighbour's announcement as its Hello gave it is superseded as soon
/// as the neighbour announces the new link: a sync does not hand it on.
#[test]
fn a_sync_does_not_hand_on_a_hello_version() {
    assert_eq!(digest_answer(0), [5, 8]);
}

#[test]
fn a_deadend_passes_on_nothing_but_its_own() {
    let cfg = Config {
        deadend: true,
        ..Config::default()
    };
    let mut e = engine(5, cfg);
    link(&mut e, 1, 9, true, 0);
    link(&mut e, 2, 6, true, 0);
    e.take_actions();
    e.frame(now(5), 1, PeerMsg::Na(Arc::new(na(7, 1, &[9]))));
    let a = e.take_actions();
    assert!(sent(&a, 2).is_empty(), "relayed: {a:?}");
    // Its digest answer offers only itself.
    e.frame(
        now(6),
        2,
        PeerMsg::Digest {
            entries: vec![],
            done: true,
        },
    );
    let a = e.take_actions();
    let ids: Vec<u128> = sent(&a, 2)
        .iter()
        .filter_map(|m| match m {
            PeerMsg::Na(na) => Some(na.id.0),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [5]);
}

/// The gaps between redials of an address whose attempts keep failing
/// with `kind`, over 8 failures.
fn redial_gaps(kind: DialFailure) -> Vec<u64> {
    let mut e = engine(5, Config::default());
    e.keep_dialling(now(0), "10.0.1.9:4040");
    let dialled = |a: Vec<Action>| a.iter().any(|a| matches!(a, Action::Dial { .. }));
    assert!(dialled(e.take_actions()), "dialled at once");
    let mut t = 0;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        e.dial_failed(now(t), "10.0.1.9:4040", "failed", kind);
        e.take_actions();
        // Wake when asked until the redial comes.
        let failed = t;
        loop {
            t = e.next_wakeup() / 1000;
            e.tick(now(t));
            if dialled(e.take_actions()) {
                break;
            }
            assert!(t < failed + 60_000, "no redial within a minute");
        }
        gaps.push(t - failed);
    }
    gaps
}

#[test]
fn redials_back_off_doubling_with_jitter_up_to_the_max() {
    let gaps = redial_gaps(DialFailure::Other);
    let cfg = Config::default();
    for (k, g) in gaps.iter().enumerate() {
        let base = (cfg.redial_min_ms() << k).min(cfg.redial_max_ms());
        assert!(
            *g >= base * 3 / 4 && *g <= base * 5 / 4,
            "gap {k}: {g} ms, base {base}: {gaps:?}"
        );
    }
}

/// A machine that refuses the connection is up and its daemon away (a
/// restart, an upgrade): dialled again about every second, not backed off
/// to half a minute, so the link is back within a second of its return.
#[test]
fn a_refused_dial_is_retried_within_a_second_or_so() {
    let gaps = redial_gaps(DialFailure::Refused);
    let min = Config::default().redial_min_ms();
    assert!(
        gaps.iter().all(|g| *g >= min * 3 / 4 && *g <= min * 5 / 4),
        "{gaps:?}"
    );
}

/// A subtree cut off for 10 s by blackhole routes healed up to 8 s after
/// the cut ended: its dials had backed off. Without a route the failure is
/// local and costs nothing to retry: tried again about every second.
#[test]
fn a_dial_without_a_route_is_retried_within_a_second_or_so() {
    let gaps = redial_gaps(DialFailure::NoRoute);
    let min = Config::default().redial_min_ms();
    assert!(
        gaps.iter().all(|g| *g >= min * 3 / 4 && *g <= min * 5 / 4),
        "{gaps:?}"
    );
}

#[test]
fn a_silent_link_dies_after_three_heartbeats_a_lossy_one_after_ten() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, false, 0);
    link(&mut e, 2, 6, false, 0);
    e.take_actions();
    // Link 2's peer keeps sending packets that complete no frame.
    let mut closed_at = std::collections::BTreeMap::new();
    for ms in (100..=12 * HB).step_by(100) {
        e.packets_arrive(now(ms), 2);
        e.tick(now(ms));
        for l in closed(&e.take_actions()) {
            closed_at.entry(l).or_insert(ms);
        }
    }
    assert_eq!(closed_at.get(&1), Some(&(3 * HB)), "{closed_at:?}");
    assert_eq!(closed_at.get(&2), Some(&(10 * HB)), "{closed_at:?}");
}

/// Each tick looks at every link, and a hub woken at each link's own
/// moment ticked about twice a second per link (a hub of 1,000 leaves:
/// half a core at rest). Links' timers wake the engine on a grain: 100
/// links whose pings fall 1 ms apart are served by a few ticks a second,
/// and every link lives.
#[test]
fn a_hubs_link_timers_wake_it_on_a_grain() {
    // Ticks at `t` and answers the pings it sends.
    fn serve(e: &mut Engine, t: u64) {
        e.tick(now(t));
        let actions = e.take_actions();
        assert!(closed(&actions).is_empty(), "a link died at {t} ms");
        for a in actions {
            if let Action::Send {
                link,
                msg: PeerMsg::Ping { s, .. },
            } = a
            {
                e.frame(now(t), link, PeerMsg::Pong { s });
            }
        }
    }
    let mut e = engine(5, Config::default());
    for i in 0..100u64 {
        link(&mut e, i + 1, 1000 + u128::from(i), true, i);
        serve(&mut e, i);
    }
    let (mut t, mut ticks) = (100, 0);
    while t < 10_000 {
        t = (e.next_wakeup() / 1000).max(t + 1);
        serve(&mut e, t);
        ticks += u32::from(t >= 5_000);
    }
    assert!(ticks <= 100, "{ticks} ticks in 5 s (each link's own: ~500)");
}

fn routed(mid: u64, origin: u128, dest: Dest, cmd: Command) -> PeerMsg {
    PeerMsg::Cmd(Box::new(Routed {
        mid,
        origin: NodeId(origin),
        dest,
        ttl: 8,
        path: vec![],
        cmd,
    }))
}

/// 5 - 9 - 7: the engine of 5 sends a command for 7 to 9.
#[test]
fn a_command_goes_to_the_next_hop() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    e.frame(now(1), 1, PeerMsg::Na(Arc::new(na(9, 2, &[5, 7]))));
    e.frame(now(1), 1, PeerMsg::Na(Arc::new(na(7, 2, &[9]))));
    e.tick(now(50));
    e.take_actions();
    let run = Run {
        target: Target::Remote("n7".into()),
        cmd: Command::Ping,
        timeout_ms: 1000,
    };
    e.request(now(60), 42, run);
    let a = e.take_actions();
    assert!(
        sent(&a, 1)
            .iter()
            .any(|m| matches!(m, PeerMsg::Cmd(r) if r.dest == Dest::Node(NodeId(7)))),
        "{a:?}"
    );
}

/// A flooded command reached by two ways runs once.
#[test]
fn a_flooded_command_runs_once() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    link(&mut e, 2, 6, true, 0);
    e.take_actions();
    let count_answers = |a: &[Action]| {
        a.iter()
            .filter(|x| {
                matches!(
                    x,
                    Action::Send {
                        msg: PeerMsg::Resp(_),
                        ..
                    }
                )
            })
            .count()
    };
    e.frame(now(5), 1, routed(77, 9, Dest::All, Command::Ping));
    let first = e.take_actions();
    assert_eq!(count_answers(&first), 1);
    assert!(!sent(&first, 2).is_empty(), "passed on to the other link");
    e.frame(now(6), 2, routed(77, 9, Dest::All, Command::Ping));
    assert_eq!(count_answers(&e.take_actions()), 0, "ran twice");
    // Another id from the same origin is another command.
    e.frame(now(7), 2, routed(78, 9, Dest::All, Command::Ping));
    assert_eq!(count_answers(&e.take_actions()), 1);
}

/// Engine 5 linked to 9, asked `all ping` (token 42): the command it
/// flooded to 9.
pub(super) fn all_ping_to_9() -> (Engine, Routed) {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, true, 0);
    e.tick(now(50));
    e.take_actions();
    let run = Run {
        target: Target::All,
        cmd: Command::Ping,
        timeout_ms: 5000,
    };
    e.request(now(100), 42, run);
    let a = e.take_actions();
    let Some(PeerMsg::Cmd(r)) = sent(&a, 1).first().map(|m| (*m).clone()) else {
        panic!("not flooded: {a:?}");
    };
    (e, *r)
}

/// Node `id`'s pong to the command `r`, as it comes back on the link.
pub(super) fn pong(r: &Routed, id: u128) -> PeerMsg {
    let mut path = r.path.clone();
    path.push(crate::wire::peer::Hop {
        id: NodeId(id),
        name: format!("n{id}"),
        rtt_us: None,
    });
    PeerMsg::Resp(Box::new(crate::wire::peer::RoutedReply {
        mid: r.mid,
        to: r.origin,
        ttl: 8,
        path,
        answer: crate::wire::ctl::Answer {
            id: NodeId(id),
            name: format!("n{id}"),
            addr: Some("6.6.6.6".into()),
            body: crate::wire::ctl::Body::Pong,
        },
        part: None,
    }))
}

/// The outcome the engine answered token 42 with, if it did.
pub(super) fn done(a: Vec<Action>) -> Option<crate::wire::ctl::Outcome> {
    a.into_iter().find_map(|x| match x {
        Action::Reply {
            token: 42,
            reply: crate::wire::ctl::Reply::Done(o),
        } => Some(o),
        _ => None,
    })
}

/// `all` returns as soon as every alive node answered, not at the deadline.
#[test]
fn all_returns_when_every_alive_node_answered() {
    let (mut e, r) = all_ping_to_9();
    e.frame(now(101), 1, pong(&r, 9));
    let o = done(e.take_actions()).expect("answered at once, before the deadline");
    assert_eq!(o.answers.len(), 2);
    assert!(o.missing.is_empty());
}

mod bounds;
mod changes;
mod hostile;
mod persist;
