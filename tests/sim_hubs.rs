//! Simulations of hubs: a docker host or hypervisor with hundreds of
//! nodes phoning home to it. A change at a hub must cost what it costs
//! anywhere else, and announcements sent as changes must leave every table
//! as whole ones would, in networks of new nodes, old ones, and both.

use daust::engine::Config;
use daust::sim::{NetConfig, Sim};
use daust::wire::ctl::Status;

const SEC: u64 = 1_000_000;

/// A star: node 0 the hub, `leaves` deadend leaves phoning home to it,
/// each configured by `cfg(i)`; formed and at rest.
fn star(seed: u64, leaves: usize, cfg: impl Fn(usize) -> Config) -> Sim {
    let mut sim = Sim::new(
        seed,
        NetConfig {
            count_bytes: true,
            ..NetConfig::default()
        },
    );
    let hub = sim.add_node(cfg(0), &[]);
    for i in 1..=leaves {
        let c = Config {
            deadend: true,
            ..cfg(i)
        };
        sim.add_node(c, &[hub]);
    }
    for i in 0..=leaves {
        sim.start(i);
    }
    let t = sim.run_until_true(60 * SEC, Sim::converged);
    assert!(t.is_some(), "a star of {leaves} leaves converges");
    sim.run_for(2 * SEC);
    sim
}

/// One leaf joins a star at rest: the bytes the hub sends to the nodes
/// that were there (not to the newcomer, which needs the whole table), per
/// node.
fn join_cost(leaves: usize, minor: u16) -> u64 {
    let cfg = |_| Config {
        minor,
        ..Config::default()
    };
    let mut sim = star(7, leaves, cfg);
    let before = sim.counters.clone();
    let new = sim.add_node(
        Config {
            deadend: true,
            ..cfg(0)
        },
        &[0],
    );
    sim.start(new);
    assert!(sim.run_until_true(10 * SEC, Sim::converged).is_some());
    sim.run_for(SEC);
    let c = &sim.counters;
    let to_others = (c.sent_by(0) - before.sent_by(0)) - (c.sent_to(new) - before.sent_to(new));
    to_others / leaves as u64
}

#[test]
fn a_join_at_a_hub_costs_each_neighbour_the_same_at_any_degree() {
    let small = join_cost(40, Config::default().minor);
    let big = join_cost(400, Config::default().minor);
    // Sent whole, the hub's announcement grows with its degree: each
    // neighbour got eight times as much at 400 as at 40.
    let old_small = join_cost(40, 0);
    let old_big = join_cost(400, 0);
    eprintln!(
        "bytes per neighbour for one join: 40 leaves {small} (whole: {old_small}), 400 leaves {big} (whole: {old_big})"
    );
    assert!(old_big > 5 * old_small, "the measure shows the degree");
    assert!(
        big * 4 < small * 5,
        "a join costs each neighbour {big} bytes at 400 leaves, {small} at 40"
    );
}

/// RTTs measured while a docker host's containers all start are a
/// thousand times those at rest (115 ms on a loopback, then 0.1 ms). Every
/// one drifted, so the next change at the hub announced all of them: at
/// 500 real daemons one join moved 32 MB, the hub's whole announcement to
/// every neighbour twice. Drifted RTTs now ride along a few at a time.
#[test]
fn rtts_that_drifted_do_not_make_a_change_at_a_hub_whole() {
    let mut sim = Sim::new(
        5,
        NetConfig {
            count_bytes: true,
            delay_us: 50_000,
            ..NetConfig::default()
        },
    );
    let hub = sim.add_node(Config::default(), &[]);
    for _ in 0..300 {
        sim.add_node(Config::default(), &[hub]);
    }
    for i in 0..sim.len() {
        sim.start(i);
    }
    assert!(sim.run_until_true(60 * SEC, Sim::converged).is_some());
    sim.run_for(2 * SEC);
    sim.set_delay(100);
    sim.run_for(5 * SEC);
    let before = sim.counters.clone();
    let new = sim.add_node(Config::default(), &[hub]);
    sim.start(new);
    assert!(sim.run_until_true(10 * SEC, Sim::converged).is_some());
    sim.run_for(SEC);
    let c = &sim.counters;
    let to_others = (c.sent_by(hub) - before.sent_by(hub)) - (c.sent_to(new) - before.sent_to(new));
    let per = to_others / 300;
    // 22 KB each when every drifted RTT was given.
    assert!(per < 4000, "a join cost each neighbour {per} bytes");
    // The hub's announcement gives its links' RTTs as they are now, up to
    // eight more with each change.
    let at_hub = |s: &Sim| {
        let e = s.engine(1).expect("up");
        let x = e.table().get(&s.id(hub)).expect("hub known");
        x.na.neighbors
            .iter()
            .filter(|n| n.rtt_us.is_some_and(|r| r < 10_000))
            .count()
    };
    let fresh = at_hub(&sim);
    assert!(fresh <= 16, "{fresh}");
    for k in 0..3 {
        let i = sim.add_node(Config::default(), &[hub]);
        sim.start(i);
        sim.run_for(SEC);
        assert!(
            at_hub(&sim) > fresh + 4 * k,
            "{} after {k} more joins",
            at_hub(&sim)
        );
    }
}

/// What one table holds of one node: id, status, version, links.
type Row = (String, Status, String, Vec<String>);

/// Every table as a comparable value: per node, what it holds of each node.
fn tables(sim: &Sim) -> Vec<Vec<Row>> {
    (0..sim.len())
        .map(|i| {
            let e = sim.engine(i).expect("running");
            let mut rows: Vec<_> = e
                .table()
                .values()
                .map(|x| {
                    let links = x.na.neighbors.iter().map(|n| n.id.to_string()).collect();
                    let v = format!("{}.{}", x.na.version.inc, x.na.version.seq);
                    (x.na.id.to_string(), x.status, v, links)
                })
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows
        })
        .collect()
}

/// A hierarchy with churn: a root, 4 hubs of 30 leaves, links between the
/// hubs, leaves crashing, restarting and joining; `minor(i)` per node.
fn churn(minor: impl Fn(usize) -> u16) -> Sim {
    let mut sim = Sim::new(11, NetConfig::default());
    let cfg = |i: usize, deadend: bool| Config {
        minor: minor(i),
        deadend,
        ..Config::default()
    };
    let root = sim.add_node(cfg(0, false), &[]);
    let mut hubs = Vec::new();
    for _ in 0..4 {
        let i = sim.len();
        hubs.push(sim.add_node(cfg(i, false), &[root]));
    }
    for (k, &h) in hubs.iter().enumerate() {
        let i = sim.len();
        sim.add_node(cfg(i, false), &[h, hubs[(k + 1) % hubs.len()]]);
        for _ in 0..30 {
            let i = sim.len();
            sim.add_node(cfg(i, true), &[h]);
        }
    }
    for i in 0..sim.len() {
        sim.start(i);
    }
    assert!(sim.run_until_true(60 * SEC, Sim::converged).is_some());
    for round in 0..6u64 {
        let victim = 10 + (round as usize * 17) % (sim.len() - 10);
        sim.crash(victim);
        sim.run_for(SEC / 2);
        let hub = hubs[round as usize % hubs.len()];
        let i = sim.len();
        let new = sim.add_node(cfg(i, true), &[hub]);
        sim.start(new);
        sim.run_for(SEC / 3);
        sim.start(victim);
        sim.run_for(SEC / 5);
    }
    let t = sim.run_until_true(60 * SEC, Sim::converged);
    assert!(t.is_some(), "converges after the churn");
    sim.run_for(5 * SEC);
    sim
}

#[test]
fn changes_leave_every_table_as_whole_announcements_do() {
    let whole = churn(|_| 0);
    let changes = churn(|_| Config::default().minor);
    let mixed = churn(|i| {
        if i % 3 == 0 {
            0
        } else {
            Config::default().minor
        }
    });
    assert!(changes.counters.by_type.get("change").copied().unwrap_or(0) > 100);
    assert_eq!(whole.counters.by_type.get("change"), None);
    let t = tables(&whole);
    assert_eq!(t.len(), changes.len());
    assert!(t[0].iter().all(|r| r.1 == Status::Alive), "all came back");
    assert_eq!(tables(&changes), t, "with changes");
    assert_eq!(tables(&mixed), t, "with old and new nodes mixed");
}

/// A network of 200 forming at once (a root, 10 hypervisors with cross
/// links, VMs under them): each node's announcement goes round once. The
/// versions Hellos carry are superseded at once by the node's own
/// announcement of its new link; when digest syncs handed them on, every
/// node's went round twice (8.2 M frames at 2,000 nodes, 4.1 M now).
/// The tree each node computes is repaired change by change; debug
/// builds check every repair against a search of the whole table.
#[test]
fn a_forming_network_floods_each_announcement_once() {
    let n = 200;
    let mut sim = Sim::new(3, NetConfig::default());
    sim.add_node(Config::default(), &[]);
    for i in 1..10 {
        let mut keys = vec![i / 2];
        if i > 4 && i % 3 == 0 {
            keys.push(i - 3);
        }
        sim.add_node(Config::default(), &keys);
    }
    for i in 10..n {
        sim.add_node(Config::default(), &[1 + i % 9]);
    }
    assert!(sim.run_until_true(60 * SEC, Sim::converged).is_some());
    let announcements = sim.counters.by_type.get("na").copied().unwrap_or(0)
        + sim.counters.by_type.get("change").copied().unwrap_or(0);
    // A flood crosses every link about once: ~n frames, n of them.
    let once = (n * n) as u64;
    assert!(
        announcements < once * 13 / 10,
        "{announcements} announcement frames for {n} nodes forming (once round: ~{once})"
    );
    assert!(announcements > once / 2);
}
