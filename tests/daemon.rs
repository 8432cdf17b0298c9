//! The daemon as a user runs it: real processes on loopback addresses.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn all_alive(d: &Daemon, names: &[&str]) -> bool {
    let s = d.statuses();
    s.len() == names.len()
        && names
            .iter()
            .all(|n| s.get(*n).map(String::as_str) == Some("alive"))
}

/// Waits until each daemon lists exactly `names`, all alive.
fn wait_all_alive(ds: &[&Daemon], names: &[&str]) {
    for d in ds {
        assert!(
            wait_for(DEADLINE, || all_alive(d, names)),
            "{} sees {:?}",
            d.name,
            d.statuses()
        );
    }
}

#[test]
fn chain_of_three_survives_a_crash_and_a_restart() {
    let _l = AddrLock::take(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let a = Daemon::start("n2", "127.0.0.2", &[]);
    let mut b = Daemon::start("n3", "127.0.0.3", &["-k", "127.0.0.2"]);
    let mut c = Daemon::start("n4", "127.0.0.4", &["-k", "127.0.0.3"]);
    let names = ["n2", "n3", "n4"];
    wait_all_alive(&[&a, &b, &c], &names);
    let ids = [a.id(), b.id(), c.id()];

    // SIGKILL the middle: both ends see it unreachable, and each other too
    // (there is no path left), within 5 s.
    let t0 = Instant::now();
    b.kill();
    let cut = |d: &Daemon, other: &str| {
        let s = d.statuses();
        s.get("n3").map(String::as_str) == Some("unreachable")
            && s.get(other).map(String::as_str) == Some("unreachable")
    };
    assert!(
        wait_for(Duration::from_secs(5), || cut(&a, "n4") && cut(&c, "n2")),
        "a: {:?} c: {:?}",
        a.statuses(),
        c.statuses()
    );
    eprintln!(
        "SIGKILL of the middle seen by both ends in {} ms",
        t0.elapsed().as_millis()
    );
    // The list says so in the seed's format.
    let list = a.ok(&["list"]);
    assert!(
        list.lines().any(
            |l| l.starts_with("n3: internal ip 127.0.0.3, public ip N/A, last seen ")
                && l.ends_with(" (unreachable)")
        ),
        "{list}"
    );

    // Restart it: all alive again with the same ids.
    b.spawn();
    wait_all_alive(&[&a, &b, &c], &names);
    assert_eq!([a.id(), b.id(), c.id()], ids);

    // An end restarted while its keynode is down lists all three from its
    // snapshot before any link is back.
    let snap = c.dir.join("snapshot.json");
    let saved = || {
        std::fs::read_to_string(&snap).is_ok_and(|s| s.contains("\"n2\"") && s.contains("\"n3\""))
    };
    assert!(wait_for(DEADLINE, saved), "no snapshot with both peers");
    c.kill();
    b.kill();
    c.spawn();
    let s = c.statuses();
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(s["n4"], "alive");
    assert_eq!(s["n3"], "unreachable");
    assert_eq!(s["n2"], "unreachable");
}

#[test]
fn detach_returns_once_the_socket_answers() {
    let _l = AddrLock::take(&["127.0.1.2"]);
    let tmp = TempDir::new("detach");
    let dir = tmp.0.join("s");
    let out = std::process::Command::new(bin())
        .args([
            "daemon",
            "-d",
            "--bind",
            "127.0.1.2",
            "--name",
            "det",
            "--state-dir",
        ])
        .arg(&dir)
        .output()
        .expect("run");
    let pid: Option<u32> = std::fs::read_to_string(dir.join("daustd.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let _kill = KillOnDrop(pid);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No waiting: the daemon answers the moment -d returned.
    let o = client(&dir, &["list"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout)
        .starts_with("det: internal ip 127.0.1.2, public ip N/A, last seen 0 seconds ago"));
    // Detached, it logs to the state dir.
    assert!(wait_for(DEADLINE, || std::fs::read_to_string(
        dir.join("daustd.log")
    )
    .is_ok_and(|l| l.contains("started"))));
    // The socket is for the owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("daustd.sock"))
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // A second daemon on the same state dir refuses, detached or not.
    for args in [vec!["-d"], vec![]] {
        let o = std::process::Command::new(bin())
            .args(["daemon", "--bind", "127.0.1.3", "--state-dir"])
            .arg(&dir)
            .args(&args)
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("daustd is already running"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // SIGTERM: it says goodbye and exits cleanly.
    let o = client(&dir, &["stop"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("stopping det"));
    assert!(wait_for(DEADLINE, || pid.is_some_and(|p| {
        !std::path::Path::new(&format!("/proc/{p}")).exists()
    })));
}

struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-9", &p.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

#[test]
fn sigterm_announces_left() {
    let _l = AddrLock::take(&["127.0.2.2", "127.0.2.3"]);
    let a = Daemon::start("t1", "127.0.2.2", &[]);
    let mut b = Daemon::start("t2", "127.0.2.3", &["-k", "127.0.2.2"]);
    assert!(wait_for(DEADLINE, || all_alive(&a, &["t1", "t2"])));
    b.signal("TERM");
    assert_eq!(b.wait_exit(DEADLINE), Some(0));
    assert!(wait_for(DEADLINE, || a
        .statuses()
        .get("t2")
        .map(String::as_str)
        == Some("left")));
    assert!(a
        .ok(&["list"])
        .contains("t2: internal ip 127.0.2.3, public ip N/A, last seen 0 seconds ago (left)"));
}

#[test]
fn the_binary_acts_by_the_name_it_is_called() {
    let tmp = TempDir::new("argv0");
    let link = tmp.0.join("daustd");
    std::os::unix::fs::symlink(bin(), &link).expect("symlink");
    let o = std::process::Command::new(&link)
        .arg("--help")
        .output()
        .expect("run");
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "-d",
        "-e",
        "-k",
        "-p",
        "-i",
        "-l",
        "-v",
        "--bind",
        "--state-dir",
        "--name",
        "--tag",
        "--heartbeat",
        "--forget-after",
    ] {
        assert!(help.contains(flag), "daustd --help lacks {flag}:\n{help}");
    }
    let o = std::process::Command::new(bin())
        .args(["daemon", "--help"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&o.stdout).contains("--forget-after"));
    let o = std::process::Command::new(bin())
        .arg("--help")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&o.stdout).contains("usage: daust"));
    let o = std::process::Command::new(&link)
        .arg("--bogus")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
}

/// Hostile bytes on the peer port: each closes that connection with a log
/// line naming the peer and the reason, and the daemon serves on.
#[test]
fn bad_input_closes_the_link_and_nothing_else() {
    let _l = AddrLock::take(&["127.0.3.2", "127.0.3.3"]);
    let a = Daemon::start("h1", "127.0.3.2", &[]);
    let b = Daemon::start("h2", "127.0.3.3", &["-k", "127.0.3.2"]);
    assert!(wait_for(DEADLINE, || all_alive(&a, &["h1", "h2"])));
    let hello = |proto: u32| {
        format!(
            r#"{{"t":"hello","proto":{proto},"minor":0,"id":"0123456789abcdef0123456789abcdef","hb_ms":1000,"seen_as":"127.0.3.2",
            "na":{{"id":"0123456789abcdef0123456789abcdef","version":{{"inc":1,"seq":1}},"record":{{"name":"evil","internal_ip":null,
            "public_ip":null,"port":4040,"kind":"host","version":"x","os":"x","started_ms":0,"deadend":false}},"neighbors":[]}}}}"#
        )
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "frame too large",
        ),
        (
            "oversized",
            (u32::MAX).to_be_bytes().to_vec(),
            "frame too large",
        ),
        (
            "invalid json",
            frame(b"{\"t\":\"ping\",\"s\":"),
            "invalid frame",
        ),
        (
            "unknown type",
            frame(br#"{"t":"launch","x":1}"#),
            "invalid frame",
        ),
        (
            "other version",
            frame(hello(9).as_bytes()),
            "protocol version mismatch",
        ),
        (
            "no hello",
            frame(br#"{"t":"ping","s":1}"#),
            "expected hello first",
        ),
    ];
    for (what, bytes, reason) in cases {
        let mut s = raw("127.0.3.2", &bytes);
        let local = s.local_addr().expect("addr").to_string();
        let got = read_until_closed(&mut s);
        assert!(got.is_some(), "{what}: the connection stayed open");
        if what == "other version" {
            let got = String::from_utf8_lossy(got.as_deref().unwrap_or_default()).into_owned();
            assert!(
                got.contains("\"refuse\"") && got.contains("version mismatch"),
                "{what}: no refusal: {got}"
            );
        }
        assert!(
            wait_for(DEADLINE, || a
                .log()
                .lines()
                .any(|l| l.contains(&local) && l.contains(reason))),
            "{what}: no log line naming {local} and {reason:?}:\n{}",
            a.log()
        );
        // Everyone else is still served.
        assert!(all_alive(&a, &["h1", "h2"]), "{what}: {:?}", a.statuses());
        assert!(a.ok(&["remote", "h2", "ping"]).starts_with("pong from h2"));
    }
    // A well-formed hello from a stranger is fine: it joins.
    let s = raw("127.0.3.2", &frame(hello(1).as_bytes()));
    s.set_read_timeout(Some(Duration::from_millis(100))).ok();
    assert!(wait_for(DEADLINE, || a.statuses().contains_key("evil")));
    drop(s);
    drop(b);
}

#[test]
fn bad_control_requests_get_an_error_not_a_crash() {
    use std::io::{Read, Write};
    let _l = AddrLock::take(&["127.0.4.2"]);
    let a = Daemon::start("c1", "127.0.4.2", &[]);
    let sock = a.dir.join("daustd.sock");
    for bytes in [
        b"hello there, daemon".to_vec(),
        frame(b"{\"target\":\"local\"}"),
        frame(b"[1,2,3]"),
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
        s.write_all(&bytes).expect("write");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.contains("\"error\"") && text.contains("bad request"),
            "{text}"
        );
    }
    assert!(a.ok(&["list"]).starts_with("c1: "));
}

/// A host daemon with deadend leaves killed and down for 20 s, then
/// restarted: the leaves, whose redials had backed off to 16 s, stayed
/// away for the rest of the backoff. A refused connection (the machine up,
/// its daemon away) is tried again every second: they are back at once.
#[test]
fn leaves_come_back_at_once_when_their_host_daemon_restarts() {
    let _l = AddrLock::take(&["127.0.37.1", "127.0.37.2", "127.0.37.3", "127.0.37.4"]);
    let mut host = Daemon::start("host", "127.0.37.1", &[]);
    let leaves: Vec<Daemon> = (2..=4)
        .map(|i| {
            Daemon::start(
                &format!("leaf{i}"),
                &format!("127.0.37.{i}"),
                &["-k", "127.0.37.1", "-e"],
            )
        })
        .collect();
    for l in &leaves {
        host.wait_sees(&l.name, "alive");
    }
    host.kill();
    // The downtime itself: long enough for the leaves' redials to back
    // off past ten seconds.
    std::thread::sleep(Duration::from_secs(20));
    host.spawn();
    let started = Instant::now();
    let back = wait_for(Duration::from_secs(6), || {
        let s = host.statuses();
        leaves
            .iter()
            .all(|l| s.get(&l.name).map(String::as_str) == Some("alive"))
    });
    assert!(
        back,
        "leaves not back 6 s after the restart: {:?}",
        host.statuses()
    );
    eprintln!(
        "leaves back {} ms after the host restarted",
        started.elapsed().as_millis()
    );
}
