//! Membership news from the engine, in the simulator: what `daust events`
//! and hooks are told, and when.

use daust::engine::Config;
use daust::sim::{NetConfig, Sim};
use daust::wire::ctl::{Command, Reply, Run, Target};

const SEC: u64 = 1_000_000;

fn net() -> NetConfig {
    NetConfig {
        keep_news: true,
        ..NetConfig::default()
    }
}

/// (event, node) of every piece of news node `i` told so far.
fn told(sim: &Sim, i: usize) -> Vec<(String, String)> {
    sim.news(i)
        .iter()
        .map(|e| (e.event.as_str().to_string(), e.node.name.clone()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn converge(sim: &mut Sim) {
    sim.run_until_true(10 * SEC, |s| s.converged())
        .expect("converged");
}

fn ask(sim: &mut Sim, i: usize, target: Target, cmd: Command) {
    let t = sim.request(
        i,
        Run {
            target,
            cmd,
            timeout_ms: 2000,
        },
    );
    sim.run_for(3 * SEC);
    assert!(
        matches!(sim.replies(i, t).last(), Some(Reply::Done(_))),
        "{:?}",
        sim.replies(i, t)
    );
}

#[test]
fn a_nodes_life_in_news() {
    let mut sim = Sim::new(51, net());
    let a = sim.add_node(Config::default(), &[]);
    let hv = sim.add_node(Config::default(), &[a]);
    let vm = sim.add_node(Config::default(), &[hv]);
    converge(&mut sim);
    let (n_hv, n_vm) = (format!("n{hv:05}"), format!("n{vm:05}"));
    assert_eq!(
        told(&sim, a),
        pairs(&[("joined", &n_hv), ("joined", &n_vm)])
    );
    let joined_vm = &sim.news(a)[1];
    assert_eq!(joined_vm.path, ["n00000", n_hv.as_str(), n_vm.as_str()]);
    assert_eq!(joined_vm.via.as_deref(), Some(n_hv.as_str()));
    assert_eq!(sim.news(a)[0].via.as_deref(), Some("n00000"));
    // Down, and back restarted: `unreachable`, then `reachable` (its old
    // record is reachable as soon as its neighbour announces the link),
    // then `updated` when its own new announcement says it restarted.
    sim.crash(vm);
    sim.run_until_true(5 * SEC, |s| s.news(a).len() == 3)
        .expect("told the crash");
    sim.run_for(SEC);
    sim.start(vm);
    converge(&mut sim);
    let news = told(&sim, a);
    assert_eq!(
        news[2..],
        pairs(&[
            ("unreachable", &n_vm),
            ("reachable", &n_vm),
            ("updated", &n_vm)
        ])
    );
    assert_eq!(
        sim.news(a)[2].via.as_deref(),
        Some(n_hv.as_str()),
        "the last path"
    );
    assert_eq!(sim.news(a)[4].changed, ["restarted"]);
    // A goodbye, then forgetting it.
    ask(&mut sim, vm, Target::Local, Command::Stop);
    assert_eq!(told(&sim, a)[5..], pairs(&[("left", &n_vm)]));
    ask(
        &mut sim,
        a,
        Target::Local,
        Command::Forget { node: n_vm.clone() },
    );
    assert_eq!(told(&sim, a)[6..], pairs(&[("forgotten", &n_vm)]));
    // The same story everywhere else: hv was told of vm too.
    assert!(told(&sim, hv).contains(&("left".into(), n_vm.clone())));
}

/// After a restart, nodes that come back within the grace as they were are
/// no news; one that does not come back is told once the grace is over.
#[test]
fn a_restart_tells_only_what_changed_meanwhile() {
    let mut sim = Sim::new(52, net());
    let a = sim.add_node(Config::default(), &[]);
    let b = sim.add_node(Config::default(), &[a]);
    let c = sim.add_node(Config::default(), &[a]);
    converge(&mut sim);
    let before = sim.news(a).len();
    sim.crash(a);
    sim.crash(c);
    sim.run_for(SEC / 2);
    sim.start(a);
    // b redials a (c is gone): back well within the grace (4 s).
    sim.run_for(3 * SEC);
    assert_eq!(sim.news(a).len(), before, "{:?}", &sim.news(a)[before..]);
    sim.run_for(2 * SEC);
    let n_c = format!("n{c:05}");
    assert_eq!(told(&sim, a)[before..], pairs(&[("unreachable", &n_c)]));
    let _ = b;
}

/// A node heard of but never reached is no news; once reached, it joined.
#[test]
fn a_node_is_news_once_reached() {
    let mut sim = Sim::new(53, net());
    let a = sim.add_node(Config::default(), &[]);
    let b = sim.add_node(Config::default(), &[a]);
    converge(&mut sim);
    sim.crash(b);
    sim.run_for(2 * SEC);
    // A newcomer that only ever meets the crashed b's old neighbour.
    let c = sim.add_node(Config::default(), &[a]);
    converge(&mut sim);
    let n_b = format!("n{b:05}");
    let n_c = format!("n{c:05}");
    assert_eq!(
        told(&sim, c),
        pairs(&[("joined", "n00000")]),
        "b was never reached from c"
    );
    assert!(told(&sim, a).contains(&("joined".into(), n_c)));
    assert!(told(&sim, a).contains(&("unreachable".into(), n_b)));
}
