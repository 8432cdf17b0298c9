//! Hostile nodes in the simulator: a node that forges frames in its own
//! name or answers what it receives as the test says, inside a network of
//! honest ones. The findings that one frame could hijack a node, forget it
//! for good, or answer in its name, each checked across a whole network
//! and through restarts.

use std::sync::Arc;

use daust::engine::Config;
use daust::sim::{NetConfig, Sim};
use daust::wire::ctl::{Answer, Body, Command, Outcome, Reply, Run, Status, Target};
use daust::wire::peer::{Hop, PeerMsg, RoutedReply, Version};

const SEC: u64 = 1_000_000;

fn converge(sim: &mut Sim) {
    sim.run_until_true(30 * SEC, |s| s.converged())
        .expect("network did not converge in 30 s");
}

fn ask(sim: &mut Sim, i: usize, target: Target, cmd: Command, run_us: u64) -> Outcome {
    let t = sim.request(
        i,
        Run {
            target,
            cmd,
            timeout_ms: 2000,
        },
    );
    sim.run_for(run_us);
    match sim.replies(i, t).last() {
        Some(Reply::Done(o)) => o.clone(),
        other => panic!("node {i} did not answer: {other:?}"),
    }
}

/// The name node `of` has in node `at`'s table.
fn name(sim: &Sim, at: usize, of: usize) -> Option<String> {
    let e = sim.engine(at)?.table().get(&sim.id(of))?;
    Some(e.na.record.name.clone())
}

/// a - b - c - d, and h (hostile) linked to a.
fn line_with_hostile(seed: u64) -> (Sim, [usize; 5]) {
    let mut sim = Sim::new(seed, NetConfig::default());
    let a = sim.add_node(Config::default(), &[]);
    let b = sim.add_node(Config::default(), &[a]);
    let c = sim.add_node(Config::default(), &[b]);
    let d = sim.add_node(Config::default(), &[c]);
    let h = sim.add_node(Config::default(), &[a]);
    converge(&mut sim);
    (sim, [a, b, c, d, h])
}

/// h announces c at version u64::MAX with another name: nobody takes it
/// (an impossible version), and a plausible forgery a day ahead is
/// outrun by c at once, everywhere, and stays outrun through restarts.
#[test]
fn a_forged_announcement_cannot_hijack_a_node() {
    let (mut sim, [a, b, c, d, h]) = line_with_hostile(21);
    let mut forged = sim
        .engine(c)
        .expect("c")
        .table()
        .get(&sim.id(c))
        .expect("c")
        .na
        .as_ref()
        .clone();
    forged.record.name = "c-HIJACKED".into();
    forged.version = Version {
        inc: u64::MAX,
        seq: u64::MAX,
    };
    assert!(sim.inject(h, a, PeerMsg::Na(Arc::new(forged.clone()))));
    sim.run_for(2 * SEC);
    for i in [a, b, c, d] {
        assert_eq!(name(&sim, i, c).as_deref(), Some("n00002"), "at node {i}");
    }
    // A day ahead: plausible (a clock off by a day), and outrun.
    forged.version = Version {
        inc: sim.wall_ms(a) + 86_400_000,
        seq: 5,
    };
    assert!(sim.inject(h, a, PeerMsg::Na(Arc::new(forged))));
    sim.run_for(2 * SEC);
    for i in [a, b, c, d] {
        assert_eq!(name(&sim, i, c).as_deref(), Some("n00002"), "at node {i}");
        assert_eq!(sim.status(i, c), Some(Status::Alive), "at node {i}");
    }
    // Every daemon restarted: still c's own record.
    for i in [a, b, c, d] {
        sim.crash(i);
        sim.start(i);
    }
    sim.run_for(10 * SEC);
    for i in [a, b, d] {
        assert_eq!(name(&sim, i, c).as_deref(), Some("n00002"), "at node {i}");
        assert_eq!(sim.status(i, c), Some(Status::Alive), "at node {i}");
    }
}

/// h floods a forget of the live node c at the highest version: c refutes
/// it; the forget is gone once c restarts, and every table lists c.
#[test]
fn a_forged_forget_cannot_remove_a_live_node() {
    let (mut sim, [a, b, c, d, h]) = line_with_hostile(22);
    let soon = sim.wall_ms(a) + 3_600_000;
    for version in [
        Version {
            inc: u64::MAX,
            seq: u64::MAX,
        },
        Version { inc: soon, seq: 9 },
    ] {
        let id = sim.id(c);
        assert!(sim.inject(h, a, PeerMsg::Forget { id, version }));
        sim.run_for(3 * SEC);
        for i in [a, b, d] {
            assert_eq!(sim.status(i, c), Some(Status::Alive), "at node {i}");
        }
    }
    sim.crash(c);
    sim.run_for(5 * SEC);
    sim.start(c);
    sim.run_for(10 * SEC);
    for i in [a, b, d] {
        assert_eq!(sim.status(i, c), Some(Status::Alive), "at node {i}");
    }
}

/// With c frozen, h answers every flooded command first, in c's name and
/// in d's, and for a node nobody asked: `all ping` from a hears none of it
/// and names c and d as not answering.
#[test]
fn a_neighbour_cannot_answer_in_another_nodes_name() {
    let (mut sim, [a, _b, c, d, h]) = line_with_hostile(23);
    let (hid, cid, did) = (sim.id(h), sim.id(c), sim.id(d));
    sim.tap(
        h,
        Box::new(move |m| {
            let PeerMsg::Cmd(r) = m else {
                return Vec::new();
            };
            [cid, did, daust::wire::peer::NodeId(77)]
                .into_iter()
                .map(|who| {
                    let mut path = r.path.clone();
                    for id in [hid, who] {
                        path.push(Hop {
                            id,
                            name: "x".into(),
                            rtt_us: None,
                        });
                    }
                    PeerMsg::Resp(Box::new(RoutedReply {
                        mid: r.mid,
                        to: r.origin,
                        ttl: 8,
                        path,
                        answer: Answer {
                            id: who,
                            name: "forged".into(),
                            addr: Some("6.6.6.6".into()),
                            body: Body::Pong,
                        },
                        part: None,
                    }))
                })
                .collect()
        }),
    );
    sim.freeze(c);
    let o = ask(&mut sim, a, Target::All, Command::Ping, 3 * SEC);
    assert!(
        o.answers.iter().all(|x| x.answer.name != "forged"),
        "a forged answer was heard: {o:?}"
    );
    let missing: Vec<_> = o.missing.iter().map(|m| m.id).collect();
    assert!(missing.contains(&cid) && missing.contains(&did), "{o:?}");
}
