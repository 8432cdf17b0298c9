//! Scripted hostile peers against real daemons, one test per finding of
//! what a peer could do with the wire protocol; each asserts what an
//! operator would notice. Addresses 127.0.30.x.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A name with a newline forged a line of `daust list` and of the log; an
/// escape sequence retitled the terminal; a NUL made every hook for the
/// node fail; a comma in a tag value forged tags.
#[test]
fn control_characters_from_the_network_are_escaped_everywhere() {
    let tmp = TempDir::new("esc");
    let hooked = tmp.0.join("hook.out");
    let hook = format!(
        "printf '%s|%s\\n' \"$DAUST_NODE_NAME\" \"$DAUST_NODE_TAGS\" >> {}",
        hooked.display()
    );
    let v = Daemon::start(
        "victim",
        "127.0.30.1",
        &["--on-event", &format!("joined={hook}")],
    );
    let name = "evil\nfake: internal ip 6.6.6.6, public ip N/A, last seen 0 seconds ago\u{1b}]0;pwned\u{7}\0";
    let _h = peer::Peer::connect("127.0.30.1", 0xbad, name);
    assert!(
        wait_for(DEADLINE, || v.statuses().len() == 2),
        "{:?}",
        v.statuses()
    );
    let list = v.ok(&["list"]);
    assert_eq!(list.lines().count(), 2, "a forged line:\n{list}");
    assert!(!list.lines().any(|l| l.starts_with("fake:")), "{list}");
    assert!(
        !list.contains('\u{1b}') && !list.contains('\u{7}'),
        "{list:?}"
    );
    assert!(list.contains("evil\\nfake: internal ip"), "{list}");
    let o = v.client(&["all", "info", "--timeout", "1s"]);
    assert!(!out(&o).contains('\u{1b}'), "{:?}", out(&o));
    // The log: one line per event, nothing raw.
    assert!(
        wait_for(DEADLINE, || v.log().contains("evil\\nfake")),
        "{}",
        v.log()
    );
    let log = v.log();
    assert!(!log.lines().any(|l| l.starts_with("fake:")), "{log}");
    assert!(!log.contains('\u{1b}') && !log.contains('\0'), "{log:?}");
    // The hook ran, with the name escaped and the tag unambiguous.
    assert!(
        wait_for(DEADLINE, || std::fs::metadata(&hooked).is_ok()),
        "no hook ran: {log}"
    );
    let got = std::fs::read_to_string(&hooked).unwrap_or_default();
    assert!(got.starts_with("evil\\nfake: internal ip"), "{got:?}");
    assert!(
        got.trim_end().ends_with("|role=db%2Cadmin%3Dyes"),
        "{got:?}"
    );
}

/// A daemon started by hand, killed by its pid when the test ends.
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Spawned {
    Spawned(
        std::process::Command::new(bin())
            .arg("daemon")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn daustd"),
    )
}

/// Runs `daustd ARGS` that must refuse to start; a daemon that runs
/// anyway is killed after the deadline (its output then says so).
fn daemon_once(args: &[&str]) -> std::process::Output {
    let child = std::process::Command::new(bin())
        .arg("daemon")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run daustd");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        if !wait_for(Duration::from_secs(5), || d.load(Ordering::Relaxed)) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    });
    let o = child.wait_with_output().expect("wait");
    done.store(true, Ordering::Relaxed);
    o
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A root daemon given a state dir another user prepared followed its
/// symlinks: it overwrote a file with its pid and adopted the planted
/// identity.
#[test]
fn a_state_dir_others_could_plant_files_in_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("strict");
    let dir = tmp.0.join("state");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let victim = tmp.0.join("precious");
    std::fs::write(&victim, "keep me\n").expect("write");
    std::os::unix::fs::symlink(&victim, dir.join("daustd.pid")).expect("symlink");
    let d = dir.display().to_string();
    let o = daemon_once(&["--bind", "127.0.30.20", "--state-dir", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("is writable by others (mode 777)"),
        "{}",
        err(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap_or_default(),
        "keep me\n"
    );
    // Ours and private: it runs, and a planted symlink is replaced, not
    // followed.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let child = spawn(&[
        "--bind",
        "127.0.30.21",
        "--name",
        "strict2",
        "--state-dir",
        &d,
    ]);
    let pid_file = dir.join("daustd.pid");
    let ok = wait_for(DEADLINE, || {
        std::fs::symlink_metadata(&pid_file).is_ok_and(|m| m.file_type().is_file())
    });
    drop(child);
    assert!(ok, "the pid file never replaced the symlink");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap_or_default(),
        "keep me\n"
    );
}

/// A key file others can read is a leaked key: refused, as OpenSSH
/// refuses such a private key.
#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("keyperm");
    let key = tmp.0.join("key");
    let o = std::process::Command::new(bin())
        .arg("keygen")
        .output()
        .expect("keygen");
    std::fs::write(&key, &o.stdout).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let k = key.display().to_string();
    let s = tmp.0.join("s").display().to_string();
    let o = daemon_once(&["--bind", "127.0.30.30", "--state-dir", &s, "--key-file", &k]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("readable by others (mode 644)") && err(&o).contains("chmod 600"),
        "{}",
        err(&o)
    );
}

/// A second daemon given the same --socket removed the first one's live
/// socket.
#[test]
fn a_live_control_socket_is_not_taken_over() {
    let tmp = TempDir::new("sock");
    let sock = tmp.0.join("shared.sock").display().to_string();
    let s1 = tmp.0.join("s1").display().to_string();
    let _first = spawn(&[
        "--bind",
        "127.0.30.40",
        "--name",
        "sock1",
        "--state-dir",
        &s1,
        "--socket",
        &sock,
    ]);
    let info = || {
        std::process::Command::new(bin())
            .args(["--socket", &sock, "info"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    assert!(wait_for(DEADLINE, || info().contains("name:         sock1")));
    let s2 = tmp.0.join("s2").display().to_string();
    let o = daemon_once(&[
        "--bind",
        "127.0.30.41",
        "--state-dir",
        &s2,
        "--socket",
        &sock,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("another daustd answers"), "{}", err(&o));
    assert!(
        info().contains("name:         sock1"),
        "the first lost its socket"
    );
}

/// 200 connections that never send a request made every real scrape of
/// `/metrics` time out, and idle ones filled the backlog.
#[test]
fn slow_connections_do_not_starve_a_real_scrape() {
    let _d = Daemon::start("met", "127.0.30.50", &["--metrics", "127.0.30.50:9464"]);
    let mut idle = Vec::new();
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(("127.0.30.50", 9464)) {
            let _ = s.write_all(b"GET /met");
            idle.push(s);
        }
    }
    let scrape = || {
        let mut s = TcpStream::connect(("127.0.30.50", 9464)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        got.starts_with("HTTP/1.1 200").then_some(got)
    };
    assert!(
        wait_for(DEADLINE, || scrape().is_some()),
        "no scrape got through {} idle connections",
        idle.len()
    );
}
