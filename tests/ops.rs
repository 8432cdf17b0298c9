//! Operating daust: `daust events`, `--on-event` hooks, `/metrics`,
//! `trace all --dot`, and the install script, over real daemons on
//! 127.77.x.y (this file's own addresses).
//!
//! Why this file is long: each operator-facing feature has one scenario
//! over real daemons, and they share the event-stream and pipe helpers.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{bin, wait_for, AddrLock, Daemon, EventsClient, TempDir, DEADLINE};

/// `daust events --json` running against a daemon, its lines on a channel.
struct Events {
    on: String,
    child: Child,
    rx: mpsc::Receiver<serde_json::Value>,
}

impl Events {
    fn start(d: &Daemon) -> Events {
        let c = EventsClient::attach(&d.dir, true);
        let (tx, rx) = mpsc::channel();
        let lines = c.lines;
        std::thread::spawn(move || {
            for line in lines {
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Events {
            on: d.name.clone(),
            child: c.child,
            rx,
        }
    }

    /// The next event about `node` of kind `kind`, skipping others.
    fn expect(&mut self, kind: &str, node: &str) -> serde_json::Value {
        let end = Instant::now() + DEADLINE;
        let mut others = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if v["event"] == kind && v["node"]["name"] == node => return v,
                Ok(v) => others.push(format!("{} {}", v["event"], v["node"]["name"])),
                Err(_) => panic!(
                    "no {kind} event for {node} at {} within {DEADLINE:?}; others: {others:?}; client: {:?}",
                    self.on,
                    self.child.try_wait()
                ),
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_and_hooks_tell_join_unreachable_and_reachable_in_order() {
    let _l = AddrLock::take(&["127.77.0.1", "127.77.0.2"]);
    let tmp = TempDir::new("hook");
    let log = tmp.0.join("hook.log");
    // The hook writes its variables and stdin, one line per event.
    let hook = format!(
        "printf '%s|%s|%s|%s|%s|' \"$DAUST_EVENT\" \"$DAUST_NODE_NAME\" \"$DAUST_NODE_ID\" \
         \"$DAUST_NODE_ADDR\" \"$DAUST_VIA\" >> {0}; head -c 100000 | tr -d '\\n' >> {0}; echo >> {0}",
        log.display()
    );
    let a = Daemon::start("ev-a", "127.77.0.1", &["--on-event", &hook]);
    let mut ev = Events::start(&a);
    let mut b = Daemon::start("ev-b", "127.77.0.2", &["-k", "127.77.0.1"]);
    let b_id = b.id();
    let joined = ev.expect("joined", "ev-b");
    assert_eq!(joined["node"]["id"], b_id.as_str());
    assert_eq!(joined["via"], "ev-a");
    assert_eq!(joined["path"], serde_json::json!(["ev-a", "ev-b"]));
    b.kill();
    let lost = ev.expect("unreachable", "ev-b");
    assert!(lost["time_ms"].as_u64() > joined["time_ms"].as_u64());
    b.spawn();
    let back = ev.expect("reachable", "ev-b");
    assert!(back["time_ms"].as_u64() > lost["time_ms"].as_u64());

    // The hook saw the same three, in order, with the right variables.
    // Whole lines only: a run still writing has its fields but not yet
    // its JSON and newline.
    let lines = || {
        let mut s = std::fs::read_to_string(&log).unwrap_or_default();
        s.truncate(s.rfind('\n').map_or(0, |i| i + 1));
        s
    };
    assert!(
        wait_for(DEADLINE, || lines().lines().count() >= 3),
        "hook ran {} times:\n{}",
        lines().lines().count(),
        lines()
    );
    let runs: Vec<Vec<String>> = lines()
        .lines()
        .map(|l| l.splitn(6, '|').map(str::to_string).collect())
        .collect();
    let kinds: Vec<&str> = runs.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        &kinds[..3],
        ["joined", "unreachable", "reachable"],
        "{runs:?}"
    );
    for r in &runs[..3] {
        assert_eq!(r[1], "ev-b");
        assert_eq!(r[2], b_id);
        assert_eq!(r[3], "127.77.0.2");
        assert_eq!(r[4], "ev-a");
        let json: serde_json::Value = serde_json::from_str(&r[5]).expect("event JSON on stdin");
        assert_eq!(json["event"], r[0].as_str());
        assert_eq!(json["node"]["name"], "ev-b");
    }
}

#[test]
fn a_hook_that_never_ends_delays_nothing() {
    let _l = AddrLock::take(&["127.77.1.1", "127.77.1.2", "127.77.1.3"]);
    // The hub's hook sleeps on every event; its timeout is long.
    let a = Daemon::start(
        "hang-a",
        "127.77.1.1",
        &["--on-event", "sleep 600", "--hook-timeout", "10m"],
    );
    let b = Daemon::start("hang-b", "127.77.1.2", &["-k", "127.77.1.1"]);
    let mut c = Daemon::start("hang-c", "127.77.1.3", &["-k", "127.77.1.1"]);
    // The hook is now stuck in the joins of b and c.
    let mut at_a = Events::start(&a);
    let mut at_b = Events::start(&b);
    b.wait_sees("hang-c", "alive");
    let t0 = Instant::now();
    c.kill();
    at_a.expect("unreachable", "hang-c");
    at_b.expect("unreachable", "hang-c");
    let took = t0.elapsed();
    // A closed socket is news at once: the hub's stuck hook must not hold
    // up its own view, nor the flood to b.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // And the hub still answers.
    a.ok(&["all", "ping"]);
}

#[test]
fn bad_hook_specs_are_refused_at_start() {
    let tmp = TempDir::new("badhook");
    let o = Command::new(bin())
        .args(["daemon", "--bind", "127.77.9.1", "--state-dir"])
        .arg(tmp.0.join("s"))
        .args(["--on-event", "unreachabel=echo x"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown event"), "{err}");
}

/// Runs `cmd` with `input` on its stdin; its output. `what` names it if it
/// cannot start.
fn pipe(cmd: &mut Command, input: &str, what: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("wait")
}

/// GET http://ADDR/PATH, the whole response.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn metrics_parse_as_prometheus_text_and_match_list() {
    let _l = AddrLock::take(&["127.77.2.1", "127.77.2.2", "127.77.2.3"]);
    let a = Daemon::start(
        "met-a",
        "127.77.2.1",
        &["--metrics", "127.77.2.1:9464", "--on-event", "true"],
    );
    let _b = Daemon::start("met-b", "127.77.2.2", &["-k", "127.77.2.1"]);
    let mut c = Daemon::start("met-c", "127.77.2.3", &["-k", "127.77.2.1"]);
    assert!(wait_for(DEADLINE, || a.statuses().len() == 3
        && a.statuses().values().all(|s| s == "alive")));
    c.kill();
    a.wait_sees("met-c", "unreachable");
    // One connection that speaks nonsense: a bad frame to count.
    let mut bad = common::raw("127.77.2.1", &common::frame(b"hello"));
    assert!(common::read_until_closed(&mut bad).is_some());
    let resp = http_get("127.77.2.1:9464", "/metrics");
    let (head, body) = resp.split_once("\r\n\r\n").expect("http response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    // Parsed by the Prometheus project's own Python client.
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.setdefault(s.name, []).append([s.labels, s.value])
print(json.dumps(out))
"#;
    let o = pipe(
        Command::new("python3").args(["-c", script]),
        body,
        "python3 (with prometheus-client: pip install prometheus-client)",
    );
    assert!(
        o.status.success(),
        "the Prometheus parser rejected /metrics (or is missing: pip install prometheus-client):\n{}\n{body}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).expect("parser output");
    let nodes = |status: &str| {
        m["daust_nodes"]
            .as_array()
            .expect("daust_nodes")
            .iter()
            .find(|s| s[0]["status"] == status)
            .and_then(|s| s[1].as_f64())
    };
    // The counts are what `daust list` shows.
    let list = a.statuses();
    let count = |st: &str| list.values().filter(|s| *s == st).count() as f64;
    assert_eq!(nodes("alive"), Some(count("alive")));
    assert_eq!(nodes("unreachable"), Some(count("unreachable")));
    assert_eq!(nodes("alive"), Some(2.0));
    assert_eq!(m["daust_links"][0][1], 1.0);
    let rtt = &m["daust_link_rtt_seconds"][0];
    assert_eq!(rtt[0]["peer"], "met-b");
    assert!(m["daust_frames_received_total"][0][1].as_f64() > Some(0.0));
    assert!(m["daust_bytes_sent_total"][0][1].as_f64() > Some(0.0));
    assert!(m["daust_hook_runs_total"][0][1].as_f64() >= Some(2.0));
    assert_eq!(m["daust_bad_frames_total"][0][1], 1.0);
    assert!(m["daust_uptime_seconds"][0][1].as_f64().is_some());
    // Anything else: 404.
    assert!(http_get("127.77.2.1:9464", "/nope").starts_with("HTTP/1.1 404"));
}

#[test]
fn metrics_are_off_by_default_and_bound_to_the_address_given() {
    let _l = AddrLock::take(&["127.77.3.1"]);
    let a = Daemon::start("met-off", "127.77.3.1", &[]);
    assert!(std::net::TcpStream::connect("127.77.3.1:9464").is_err());
    drop(a);
    let _b = Daemon::start("met-on", "127.77.3.1", &["--metrics", "127.77.3.1:9465"]);
    assert!(std::net::TcpStream::connect("127.77.3.1:9465").is_ok());
    assert!(std::net::TcpStream::connect("127.0.0.1:9465").is_err());
}

#[test]
fn trace_all_dot_draws_a_three_level_network_graphviz_accepts() {
    let _l = AddrLock::take(&["127.77.4.1", "127.77.4.2", "127.77.4.3", "127.77.4.4"]);
    let host = Daemon::start("dot-host", "127.77.4.1", &[]);
    let _vm = Daemon::start("dot-vm", "127.77.4.2", &["-k", "127.77.4.1"]);
    let _ct = Daemon::start("dot-ct", "127.77.4.3", &["-k", "127.77.4.2", "-e"]);
    let mut gone = Daemon::start("dot-gone", "127.77.4.4", &["-k", "127.77.4.2", "-e"]);
    assert!(wait_for(DEADLINE, || host.statuses().len() == 4
        && host.statuses().values().all(|s| s == "alive")));
    gone.kill();
    host.wait_sees("dot-gone", "unreachable");
    let dot = host.ok(&["trace", "all", "--dot"]);
    assert!(dot.starts_with("digraph daust {"), "{dot}");
    for name in ["dot-host", "dot-vm", "dot-ct", "dot-gone"] {
        assert!(dot.contains(name), "{name} missing:\n{dot}");
    }
    assert!(
        dot.contains("style=dashed"),
        "the lost node hangs dashed:\n{dot}"
    );
    assert!(dot.contains(" ms\""), "edges carry RTTs:\n{dot}");
    // Graphviz parses it and lays it out.
    let o = pipe(
        Command::new("dot").arg("-Tsvg"),
        &dot,
        "dot (apt install graphviz)",
    );
    assert!(
        o.status.success(),
        "dot rejected it: {}\n{dot}",
        String::from_utf8_lossy(&o.stderr)
    );
    let svg = String::from_utf8_lossy(&o.stdout);
    // (Graphviz writes "-" as "&#45;" in SVG text.)
    assert!(svg.contains("<svg") && svg.replace("&#45;", "-").contains("dot-ct"));
    // --dot is for trace all only.
    let o = host.client(&["trace", "--dot"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn install_puts_three_faces_in_a_prefix_and_uninstall_removes_exactly_them() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tmp = TempDir::new("inst");
    let prefix = tmp.0.join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).expect("prefix");
    // Something of the user's already there stays.
    std::fs::write(prefix.join("bin/other"), "mine").expect("other");
    let o = Command::new(format!("{root}/contrib/install"))
        .arg(&prefix)
        .env("DAUST_BIN", bin())
        .output()
        .expect("contrib/install");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for face in ["daust", "daustd"] {
        let p = prefix.join("bin").join(face);
        assert!(p.exists(), "{face} missing");
    }
    let link = std::fs::read_link(prefix.join("bin/daustd")).expect("daustd is a symlink");
    assert_eq!(link.to_string_lossy(), "daust");
    // Each face dispatches by its name.
    let help = Command::new(prefix.join("bin/daustd"))
        .arg("--help")
        .output()
        .expect("daustd --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("the daust daemon"));
    let v = Command::new(prefix.join("bin/daust"))
        .arg("--version")
        .output()
        .expect("daust --version");
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("daust "));
    let o = Command::new(format!("{root}/contrib/uninstall"))
        .arg(&prefix)
        .output()
        .expect("contrib/uninstall");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut left: Vec<String> = walk(&prefix);
    left.sort();
    assert_eq!(
        left,
        ["bin", "bin/other"],
        "uninstall left or took too much"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(
                p.strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned(),
            );
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tmp = TempDir::new("unit");
    let prefix = tmp.0.join("prefix");
    let units = tmp.0.join("units");
    let o = Command::new(format!("{root}/contrib/install"))
        .args(["--systemd"])
        .arg(&prefix)
        .env("DAUST_BIN", bin())
        .env("DAUST_UNIT_DIR", &units)
        .output()
        .expect("contrib/install --systemd");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unit = std::fs::read_to_string(units.join("daustd.service")).expect("unit");
    assert!(unit.contains(&format!("ExecStart={}/bin/daustd", prefix.display())));
    for hardening in [
        "Type=notify",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(hardening), "{hardening} missing");
    }
    let v = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("daustd.service"))
        .output()
        .expect("systemd-analyze (apt install systemd)");
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(
        v.status.success() && !err.contains("daustd.service"),
        "{err}"
    );
    let o = Command::new(format!("{root}/contrib/uninstall"))
        .arg(&prefix)
        .output()
        .expect("uninstall");
    assert!(o.status.success());
    assert!(!units.exists(), "the unit dir install made is gone");
}

#[test]
fn daustd_tells_notify_socket_when_ready_and_when_stopping() {
    let _l = AddrLock::take(&["127.77.5.1"]);
    let tmp = TempDir::new("notify");
    let path = tmp.0.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("notify socket");
    sock.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let state = tmp.0.join("s");
    let mut d = Command::new(bin())
        .args([
            "daemon",
            "--bind",
            "127.77.5.1",
            "--name",
            "notified",
            "--state-dir",
        ])
        .arg(&state)
        .env("NOTIFY_SOCKET", &path)
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon");
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("READY within the deadline");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    assert!(msg.contains(&format!("MAINPID={}", d.id())), "{msg}");
    // Ready means it answers.
    let info = common::client(&state, &["info"]);
    assert!(info.status.success());
    let _ = Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status();
    let n = sock.recv(&mut buf).expect("STOPPING");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let st = d.wait().expect("exit");
    assert!(st.success());
}

#[test]
fn bash_completes_commands_targets_and_known_node_names() {
    let _l = AddrLock::take(&["127.77.6.1", "127.77.6.2"]);
    let a = Daemon::start("comp-alpha", "127.77.6.1", &[]);
    let _b = Daemon::start("comp-beta", "127.77.6.2", &["-k", "127.77.6.1"]);
    assert!(wait_for(DEADLINE, || a.statuses().len() == 2));
    let root = env!("CARGO_MANIFEST_DIR");
    // daust on PATH is the binary under test.
    let bindir = std::path::Path::new(bin()).parent().expect("bin dir");
    let complete = |line: &str| -> Vec<String> {
        let script = format!(
            "source {root}/contrib/daust-completion.bash; \
             COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _daust; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let o = Command::new("bash")
            .args(["-c", &script])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bindir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .expect("bash");
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(complete("daust pi"), ["ping"]);
    assert_eq!(complete("daust e"), ["events"]);
    assert_eq!(complete("daust ping a"), ["all"]);
    let dir = a.dir.display().to_string();
    assert_eq!(
        complete(&format!("daust --state-dir {dir} ping remote comp-")),
        ["comp-alpha", "comp-beta"]
    );
    assert_eq!(
        complete(&format!("daust --state-dir {dir} trace comp-b")),
        ["comp-beta"]
    );
    assert!(complete("daust trace --d").contains(&"--dot".to_string()));
}

#[test]
fn the_log_file_reopens_on_sighup_and_names_peers() {
    let _l = AddrLock::take(&["127.77.7.1", "127.77.7.2"]);
    let tmp = TempDir::new("logf");
    let log = tmp.0.join("d.log");
    let a = Daemon::start("log-a", "127.77.7.1", &["-l", &log.display().to_string()]);
    let mut b = Daemon::start("log-b", "127.77.7.2", &["-k", "127.77.7.1"]);
    assert!(wait_for(DEADLINE, || a.statuses().len() == 2));
    b.kill();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    // A line about a peer names it by name and address.
    assert!(
        wait_for(DEADLINE, || read(&log).lines().any(|l| l
            .contains("link down")
            && l.contains("log-b (127.77.7.2:"))),
        "{}",
        read(&log)
    );
    std::fs::rename(&log, tmp.0.join("d.log.old")).expect("mv");
    a.signal("HUP");
    assert!(
        wait_for(DEADLINE, || read(&log).contains("log file reopened")),
        "no new log after SIGHUP"
    );
    assert!(read(&tmp.0.join("d.log.old")).contains("daustd 0.1.0 started"));
}
