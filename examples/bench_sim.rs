//! Benchmark: the deterministic simulation at scale. For each N: a network
//! of N engines (a root, N/20 hypervisors linked in a tree with cross
//! links, the rest VMs under them) over 1 ms links; then one join, one
//! crash and one partition heal, each with the frames it cost network-wide
//! and the simulated time it took; memory per engine; wall time.
//!
//!     cargo run --release --example bench_sim -- 1000 5000 10000
//!
//! A size whose tables would not fit in the memory available (judged from
//! the bytes per table entry the previous size took) is reported skipped.
//!
//! Prints JSON lines, then a table.

use std::time::Instant;

use daust::engine::Config;
use daust::sim::{NetConfig, Sim};
use daust::wire::ctl::Status;

const MS: u64 = 1000;

const GIB: f64 = (1u64 << 30) as f64;

/// The kB figure of line `key` in a /proc file (`VmRSS:`, `MemAvailable:`).
fn proc_kib(file: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn rss_kib() -> u64 {
    proc_kib("/proc/self/status", "VmRSS:").unwrap_or(0)
}

/// Memory the kernel says is available, bytes.
fn mem_available() -> f64 {
    proc_kib("/proc/meminfo", "MemAvailable:").map_or(f64::MAX, |kib| kib as f64 * 1024.0)
}

fn frames(sim: &Sim) -> u64 {
    sim.counters.frames
        - sim.counters.by_type.get("ping").copied().unwrap_or(0)
        - sim.counters.by_type.get("pong").copied().unwrap_or(0)
}

/// The simulated network: a root, N/20 hypervisors with cross links, VMs
/// under them; returns it and the number of hypervisors.
fn build(n: usize) -> (Sim, usize) {
    let mut sim = Sim::new(n as u64, NetConfig::default());
    let hv = (n / 20).max(2);
    let mut rng = 0x9e37u64;
    let mut next = |m: usize| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) as usize % m.max(1)
    };
    sim.add_node(Config::default(), &[]);
    for i in 1..hv {
        let mut keys = vec![next(i)];
        if i > 4 && i % 3 == 0 {
            keys.push(next(i));
        }
        keys.dedup();
        sim.add_node(Config::default(), &keys);
    }
    for _ in hv..n - 1 {
        let k = 1 + next(hv - 1);
        sim.add_node(Config::default(), &[k]);
    }
    (sim, hv)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 5000, 10000]
    } else {
        sizes
    };
    let mut rows = Vec::new();
    // Bytes per table entry (every engine holds every node), from the last
    // size run; 150 before any (measured: 141 at N = 2,000).
    let mut per_entry = 150.0_f64;
    for n in sizes {
        let need = per_entry * (n * n) as f64;
        let have = mem_available();
        if need > have * 0.9 {
            let row = serde_json::json!({
                "bench": "sim", "n": n, "skipped": format!(
                    "needs ~{:.1} GiB ({:.0} B per table entry x {n} engines x {n} nodes); {:.1} GiB available",
                    need / GIB, per_entry, have / GIB),
            });
            println!("{row}");
            rows.push(row);
            continue;
        }
        let wall = Instant::now();
        let rss0 = rss_kib();
        let (mut sim, hv) = build(n);
        // Progress on stderr: at 10,000 a run takes a while.
        let phase = |what: &str| eprintln!("N={n}: {what} ({:.0} s)", wall.elapsed().as_secs_f64());
        phase("network built, forming");
        let t = sim
            .run_until_true(600_000 * MS, |s| s.converged())
            .expect("formation converges");
        phase("formed; one join");
        let form_frames = frames(&sim);
        let rss1 = rss_kib();
        // One join.
        let f0 = frames(&sim);
        let newcomer = sim.add_node(Config::default(), &[1]);
        let join = sim
            .run_until_true(60_000 * MS, |s| s.converged())
            .expect("join converges");
        let join_frames = frames(&sim) - f0;
        phase("joined; one crash");
        // One crash (a VM).
        let victim = n / 2;
        let f0 = frames(&sim);
        sim.crash(victim);
        let crash = sim
            .run_until_true(60_000 * MS, |s| {
                (0..s.len())
                    .filter(|i| s.is_up(*i))
                    .all(|i| s.status(i, victim) == Some(Status::Unreachable))
            })
            .expect("crash seen");
        let crash_frames = frames(&sim) - f0;
        phase("crash seen; a partition");
        // A partition of hypervisor 1 from everything for 10 s, then heal.
        let side: Vec<usize> = vec![1];
        let rest: Vec<usize> = (0..sim.len()).filter(|i| *i != 1).collect();
        sim.partition(&side, &rest);
        sim.run_for(10_000 * MS);
        phase("partitioned 10 s; healing");
        let f0 = frames(&sim);
        sim.heal();
        sim.start(victim);
        let heal = sim
            .run_until_true(120_000 * MS, |s| s.converged())
            .expect("heal converges");
        let heal_frames = frames(&sim) - f0;
        let _ = newcomer;
        let per_engine = (rss1.saturating_sub(rss0)) as f64 / n as f64;
        per_entry = per_engine * 1024.0 / n as f64;
        let row = serde_json::json!({
            "bench": "sim", "n": n, "links": sim.len() - 1 + hv / 3,
            "formation_ms": t / MS, "formation_frames": form_frames,
            "join_ms": join / MS, "join_frames": join_frames,
            "crash_ms": crash / MS, "crash_frames": crash_frames,
            "heal_ms": heal / MS, "heal_frames": heal_frames,
            "kib_per_engine": per_engine.round(), "wall_s": wall.elapsed().as_secs_f64(),
        });
        println!("{row}");
        rows.push(row);
    }
    print_table(&rows);
}

/// The rows as a table, after their JSON lines.
fn print_table(rows: &[serde_json::Value]) {
    println!(
        "\n{:>6} {:>10} {:>12} {:>9} {:>11} {:>9} {:>11} {:>9} {:>11} {:>10} {:>7}",
        "N",
        "form ms",
        "form frames",
        "join ms",
        "join frames",
        "crash ms",
        "crash frms",
        "heal ms",
        "heal frames",
        "KiB/eng",
        "wall s"
    );
    for r in rows {
        if let Some(why) = r["skipped"].as_str() {
            println!("{:>6} skipped: {why}", r["n"]);
            continue;
        }
        println!(
            "{:>6} {:>10} {:>12} {:>9} {:>11} {:>9} {:>11} {:>9} {:>11} {:>10} {:>7.1}",
            r["n"],
            r["formation_ms"],
            r["formation_frames"],
            r["join_ms"],
            r["join_frames"],
            r["crash_ms"],
            r["crash_frames"],
            r["heal_ms"],
            r["heal_frames"],
            r["kib_per_engine"],
            r["wall_s"].as_f64().unwrap_or(0.0)
        );
    }
}
