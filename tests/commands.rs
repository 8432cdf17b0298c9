//! The seed's command language over real daemons, line by line.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn alive_count(d: &Daemon) -> usize {
    d.statuses().values().filter(|s| *s == "alive").count()
}

fn gone(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by the test) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.split_whitespace().nth(2) == Some("Z"),
        Err(_) => true,
    }
}

/// The seed's session: `daustd -d` on two machines, `remote ADDR ping` joins
/// them, then list, list remote, all list, trace all, all stop.
#[test]
fn the_seeds_session() {
    let _l = AddrLock::take(&["127.0.0.2", "127.0.0.3"]);
    let tmp = TempDir::new("seed");
    let (d1, d2) = (tmp.0.join("node1"), tmp.0.join("node2"));
    let mut pids = Vec::new();
    for (dir, ip, name) in [(&d1, "127.0.0.2", "node1"), (&d2, "127.0.0.3", "node2")] {
        let o = Command::new(bin())
            .args(["daemon", "-d", "--bind", ip, "--name", name, "--state-dir"])
            .arg(dir)
            .output()
            .expect("daustd -d");
        assert!(o.status.success(), "{}", err(&o));
        pids.push(
            std::fs::read_to_string(dir.join("daustd.pid"))
                .expect("pid")
                .trim()
                .parse::<u32>()
                .expect("pid"),
        );
    }
    struct Reap(Vec<u32>);
    impl Drop for Reap {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = Command::new("kill")
                    .args(["-9", &p.to_string()])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
    let _reap = Reap(pids.clone());

    let o = client(&d1, &["remote", "127.0.0.3", "ping"]);
    assert!(o.status.success(), "{}", err(&o));
    let pong = out(&o);
    assert!(
        pong.starts_with("pong from node2 (127.0.0.3) in ") && pong.trim_end().ends_with(" ms"),
        "{pong}"
    );

    // The link is up: both list both, self first, in the seed's format.
    let want1 = "node1: internal ip 127.0.0.2, public ip N/A, last seen 0 seconds ago\n\
                 node2: internal ip 127.0.0.3, public ip N/A, last seen 0 seconds ago\n";
    assert!(
        wait_for(DEADLINE, || out(&client(&d1, &["list"])) == want1),
        "{}",
        out(&client(&d1, &["list"]))
    );
    let want2 = "node2: internal ip 127.0.0.3, public ip N/A, last seen 0 seconds ago\n\
                 node1: internal ip 127.0.0.2, public ip N/A, last seen 0 seconds ago\n";
    assert!(wait_for(DEADLINE, || out(&client(
        &d1,
        &["list", "remote", "127.0.0.3"]
    )) == want2));
    assert_eq!(out(&client(&d1, &["remote", "127.0.0.3", "list"])), want2);
    assert_eq!(out(&client(&d1, &["remote", "node2", "list"])), want2);

    let all = format!("node1 responded:\n{want1}\nnode2 responded:\n{want2}\n");
    assert_eq!(out(&client(&d1, &["all", "list"])), all);
    assert_eq!(out(&client(&d1, &["list", "all"])), all);

    assert_eq!(
        out(&client(&d1, &["trace", "all"])),
        "|__ node1\n|__ node2\n"
    );

    let o = client(&d1, &["all", "stop"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        "node1 responded:\nstopping node1\n\nnode2 responded:\nstopping node2\n\n"
    );
    assert!(
        wait_for(DEADLINE, || pids.iter().all(|p| gone(*p))),
        "a daustd is still running"
    );
}

/// The seed's larger example: two hypervisors, each with three VMs.
#[test]
fn the_seeds_tree_of_hypervisors_and_vms() {
    let ips: Vec<String> = (2..10).map(|i| format!("127.0.6.{i}")).collect();
    let _l = AddrLock::take(&ips.iter().map(String::as_str).collect::<Vec<_>>());
    let hv1 = Daemon::start("hypervisor1", &ips[0], &[]);
    let _hv2 = Daemon::start("hypervisor2", &ips[1], &["-k", &ips[0]]);
    let mut vms = Vec::new();
    for (i, name) in ["vm1", "vm2", "vm3", "vm4", "vm5", "vm6"]
        .iter()
        .enumerate()
    {
        let parent = if i < 3 { &ips[0] } else { &ips[1] };
        vms.push(Daemon::start(name, &ips[2 + i], &["-k", parent]));
    }
    assert!(wait_for(DEADLINE, || alive_count(&hv1) == 8
        && alive_count(&vms[0]) == 8));
    let want = "|__ hypervisor1\n|__ hypervisor2\n|   |__ vm4\n|   |__ vm5\n|   |__ vm6\n|__ vm1\n|__ vm2\n|__ vm3\n";
    assert_eq!(hv1.ok(&["trace", "all"]), want);

    // vm1 reaches vm5 through both hypervisors.
    let o = vms[0].client(&["remote", "vm5", "ping"]);
    assert!(
        out(&o).starts_with(&format!("pong from vm5 ({}) in ", ips[6])),
        "{}{}",
        out(&o),
        err(&o)
    );
    let t = vms[0].ok(&["trace", "vm5"]);
    let hops: Vec<&str> = t
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        &hops[..4],
        ["vm1", "hypervisor1", "hypervisor2", "vm5"],
        "{t}"
    );
    assert!(
        t.lines().nth(1).is_some_and(|l| l.ends_with(" ms")),
        "per-hop RTT: {t}"
    );
    // From vm1's side: vm1 first, everyone else nested under hypervisor1.
    let t = vms[0].ok(&["trace", "all"]);
    assert!(
        t.starts_with("|__ vm1\n|__ hypervisor1\n|   |__ hypervisor2\n|   |   |__ vm4\n"),
        "{t}"
    );
}

/// `remote`, `all` and options before or after the command mean the same.
#[test]
fn words_in_any_order() {
    let _l = AddrLock::take(&["127.0.7.2", "127.0.7.3"]);
    let a = Daemon::start("w1", "127.0.7.2", &[]);
    let _b = Daemon::start("w2", "127.0.7.3", &["-k", "127.0.7.2"]);
    assert!(wait_for(DEADLINE, || alive_count(&a) == 2));
    let strip = |s: String| {
        s.lines()
            .filter(|l| !l.contains("_ms\"") && !l.contains("rtt_us"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        a.ok(&["remote", "w2", "list"]),
        a.ok(&["list", "remote", "w2"])
    );
    assert_eq!(a.ok(&["all", "list"]), a.ok(&["list", "all"]));
    assert_eq!(
        strip(a.ok(&["--json", "info", "remote", "w2"])),
        strip(a.ok(&["info", "remote", "w2", "--json"]))
    );
    assert_eq!(
        a.ok(&["ping", "all", "--timeout", "3s"])
            .matches("pong from")
            .count(),
        2
    );
    assert_eq!(
        a.ok(&["--timeout", "3s", "all", "ping"])
            .matches("pong from")
            .count(),
        2
    );
    // A prefix of the name, and a prefix of the id.
    let id = a.client(&["remote", "w2", "info", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&id.stdout).expect("json");
    let id = v["answers"][0]["answer"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(a
        .ok(&["remote", &id[..8], "ping"])
        .starts_with("pong from w2 "));
}

/// `all ping` over 20 daemons returns when everyone answered, not at the
/// deadline; with one frozen it returns at the deadline naming it.
#[test]
fn all_ping_over_twenty_returns_when_all_answered() {
    let ips: Vec<String> = (2..22).map(|i| format!("127.0.8.{i}")).collect();
    let _l = AddrLock::take(&ips.iter().map(String::as_str).collect::<Vec<_>>());
    let mut ds = vec![Daemon::start("p00", &ips[0], &[])];
    for i in 1..20 {
        let parent = ips[(i - 1) / 3].clone();
        ds.push(Daemon::start(
            &format!("p{i:02}"),
            &ips[i],
            &["-k", &parent],
        ));
    }
    assert!(wait_for(DEADLINE, || alive_count(&ds[0]) == 20
        && alive_count(&ds[19]) == 20));
    // A 60 s deadline: had it waited for the deadline, this test would fail
    // on its own 20 s limit below.
    let t = Instant::now();
    let o = ds[19].client(&["all", "ping", "--timeout", "60s"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).matches("pong from").count(), 20);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "all ping waited for the deadline"
    );

    ds[7].signal("STOP");
    let o = ds[19].client(&["all", "ping", "--timeout", "1s"]);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert_eq!(text.matches("pong from").count(), 19, "{text}");
    assert!(text.contains("no answer from p07"), "{text}");
    ds[7].signal("CONT");
}

/// Every error says what went wrong and exits with the documented status.
#[test]
fn errors_and_exit_codes() {
    let _l = AddrLock::take(&["127.0.9.2", "127.0.9.3", "127.0.9.4", "127.0.9.5"]);
    let tmp = TempDir::new("nodaemon");
    // No daemon.
    let o = client(&tmp.0, &["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o).trim_end(),
        format!("daust: can't reach the local daustd at {}/daustd.sock; is it running? start it with: daustd -d", tmp.0.display())
    );
    // Usage errors: one line naming the bad word, then where help is.
    for (args, word) in [
        (vec!["frobnicate"], "frobnicate"),
        (vec!["list", "--bogus"], "--bogus"),
        (vec!["list", "remote"], "remote"),
    ] {
        let o = client(&tmp.0, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = err(&o);
        assert!(
            e.lines()
                .next()
                .is_some_and(|l| l.starts_with("daust: ") && l.contains(word)),
            "{e}"
        );
        assert_eq!(e.lines().nth(1), Some("try 'daust --help'"), "{e}");
        assert_eq!(e.lines().count(), 2, "{e}");
    }
    let a = Daemon::start("alpha", "127.0.9.2", &[]);
    let _b1 = Daemon::start("beta1", "127.0.9.3", &["-k", "127.0.9.2"]);
    let mut b2 = Daemon::start("beta2", "127.0.9.4", &["-k", "127.0.9.2"]);
    assert!(wait_for(DEADLINE, || alive_count(&a) == 3));
    // Ambiguous.
    let o = a.client(&["remote", "beta", "ping"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("ambiguous") && err(&o).contains("beta1") && err(&o).contains("beta2"),
        "{}",
        err(&o)
    );
    // Unknown name.
    let o = a.client(&["remote", "gamma", "ping"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("gamma"));
    // Known but unreachable.
    b2.kill();
    assert!(wait_for(DEADLINE, || a
        .statuses()
        .get("beta2")
        .map(String::as_str)
        == Some("unreachable")));
    let o = a.client(&["remote", "beta2", "ping"]);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.starts_with("daust: can't reach beta2: unreachable, last seen ")
            && e.trim_end().ends_with(" seconds ago"),
        "{e}"
    );
    // An address nobody listens on.
    let o = a.client(&["remote", "127.0.9.5", "ping"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("can't connect to 127.0.9.5:4040"),
        "{}",
        err(&o)
    );
    // Forget refuses the living, takes the dead.
    let o = a.client(&["forget", "beta1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).starts_with("daust: alpha: beta1 is alive"),
        "{}",
        err(&o)
    );
    assert_eq!(out(&o), "");
    assert_eq!(a.ok(&["forget", "beta2"]), "alpha forgot beta2\n");
    assert!(!a.statuses().contains_key("beta2"));
    // Help and version.
    assert!(out(&client(&tmp.0, &["help"])).contains("usage: daust"));
    assert!(out(&client(&tmp.0, &["list", "--help"])).contains("usage: daust list"));
    assert!(out(&client(&tmp.0, &["--version"])).starts_with("daust "));
}
