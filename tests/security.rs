//! A cluster key: who gets in, who does not, rotation, replay, and hostile
//! connections against a daemon that keeps serving its honest peers.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn keygen() -> String {
    let o = std::process::Command::new(bin())
        .arg("keygen")
        .output()
        .expect("keygen");
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn keyfile(tmp: &TempDir, name: &str, keys: &[&str]) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = tmp.0.join(name);
    std::fs::write(&p, keys.join("\n") + "\n").expect("key file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p.display().to_string()
}

fn alive(d: &Daemon) -> Vec<String> {
    d.statuses()
        .into_iter()
        .filter(|(_, s)| s == "alive")
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn only_holders_of_the_key_get_in() {
    let _l = AddrLock::take(&["127.0.13.2", "127.0.13.3", "127.0.13.4", "127.0.13.5"]);
    let tmp = TempDir::new("keys");
    let (k1, k2) = (keygen(), keygen());
    assert_ne!(k1, k2);
    let f1 = keyfile(&tmp, "k1", &[&k1]);
    let f2 = keyfile(&tmp, "k2", &[&k2]);
    let a = Daemon::start("ka", "127.0.13.2", &["--key-file", &f1]);
    let _b = Daemon::start("kb", "127.0.13.3", &["--key-file", &f1, "-k", "127.0.13.2"]);
    let c = Daemon::start("kc", "127.0.13.4", &["--key-file", &f2, "-k", "127.0.13.2"]);
    let d = Daemon::start("kd", "127.0.13.5", &["-k", "127.0.13.2"]);
    assert!(
        wait_for(DEADLINE, || alive(&a) == ["ka", "kb"]),
        "{:?}",
        a.statuses()
    );
    // Both sides of each refusal say so, naming the peer.
    let says = |d: &Daemon, peer: &str| {
        d.log()
            .lines()
            .any(|l| l.contains("cluster key mismatch") && l.contains(peer))
    };
    assert!(
        wait_for(DEADLINE, || says(&a, "127.0.13.4:")
            && says(&c, "127.0.13.2:4040")),
        "{}\n{}",
        a.log(),
        c.log()
    );
    assert!(
        wait_for(DEADLINE, || says(&a, "127.0.13.5:")
            && says(&d, "127.0.13.2:4040")),
        "{}\n{}",
        a.log(),
        d.log()
    );
    // Nothing of the table crossed.
    assert_eq!(alive(&c), ["kc"]);
    assert_eq!(alive(&d), ["kd"]);
    assert_eq!(c.statuses().len(), 1);
    assert_eq!(d.statuses().len(), 1);
    // Authenticated, and by which key.
    assert!(a.ok(&["info"]).contains("peer traffic: authenticated"));
    assert!(d.ok(&["info"]).contains("peer traffic: unauthenticated"));
    let keys = a.ok(&["all", "keys"]);
    assert_eq!(keys.matches("(initiates)").count(), 2, "{keys}");
    assert!(a.ok(&["remote", "kb", "ping"]).starts_with("pong from kb"));
}

#[test]
fn keys_rotate_without_a_restart() {
    let _l = AddrLock::take(&["127.0.13.6", "127.0.13.7", "127.0.13.8"]);
    let tmp = TempDir::new("rotate");
    let (old, new) = (keygen(), keygen());
    let fa = keyfile(&tmp, "a", &[&old]);
    let fb = keyfile(&tmp, "b", &[&old]);
    let a = Daemon::start("ra", "127.0.13.6", &["--key-file", &fa]);
    let b = Daemon::start("rb", "127.0.13.7", &["--key-file", &fb, "-k", "127.0.13.6"]);
    assert!(wait_for(DEADLINE, || alive(&a).len() == 2));
    // 1. Add the new key everywhere (second: still initiating with the old).
    keyfile(&tmp, "a", &[&old, &new]);
    keyfile(&tmp, "b", &[&old, &new]);
    a.signal("HUP");
    b.signal("HUP");
    assert!(wait_for(DEADLINE, || a.ok(&["keys"]).contains(", ")));
    // 2. Switch: the new key initiates. A node that knows only the new key
    //    gets in, and the old links stay up throughout.
    keyfile(&tmp, "a", &[&new, &old]);
    keyfile(&tmp, "b", &[&new, &old]);
    a.signal("HUP");
    b.signal("HUP");
    let fc = keyfile(&tmp, "c", &[&new]);
    let _c = Daemon::start("rc", "127.0.13.8", &["--key-file", &fc, "-k", "127.0.13.7"]);
    assert!(
        wait_for(DEADLINE, || alive(&a).len() == 3),
        "{:?}",
        a.statuses()
    );
    // 3. Remove the old key.
    keyfile(&tmp, "a", &[&new]);
    a.signal("HUP");
    assert!(wait_for(DEADLINE, || !a.ok(&["keys"]).contains(", ")));
    assert_eq!(alive(&b).len(), 3);
    assert!(a.ok(&["remote", "rc", "ping"]).starts_with("pong from rc"));
}

/// Records what a keyed daemon sends through a proxy, then replays it.
#[test]
fn a_replayed_session_gets_nothing() {
    let _l = AddrLock::take(&["127.0.13.9", "127.0.13.10", "127.0.13.11"]);
    let tmp = TempDir::new("replay");
    let k = keygen();
    let f = keyfile(&tmp, "k", &[&k]);
    let a = Daemon::start("va", "127.0.13.9", &["--key-file", &f]);
    // A proxy on .11 that forwards to a and records what the dialler sends.
    let proxy = TcpListener::bind("127.0.13.11:4040").expect("proxy");
    let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = recorded.clone();
    let t = std::thread::spawn(move || {
        let (mut client, _) = proxy.accept().expect("accept");
        let mut server = TcpStream::connect("127.0.13.9:4040").expect("connect");
        let mut s2 = server.try_clone().expect("clone");
        let mut c2 = client.try_clone().expect("clone");
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut s2, &mut c2);
        });
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .ok();
        let end = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 65536];
        while Instant::now() < end {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    rec.lock().expect("lock").extend_from_slice(&buf[..n]);
                    let _ = server.write_all(&buf[..n]);
                }
                Err(_) => {}
            }
        }
    });
    let mut b = Daemon::start(
        "vb",
        "127.0.13.10",
        &["--key-file", &f, "-k", "127.0.13.11"],
    );
    assert!(
        wait_for(DEADLINE, || alive(&a).len() == 2),
        "{:?}",
        a.statuses()
    );
    let _ = t.join();
    b.kill();
    assert!(wait_for(DEADLINE, || a
        .statuses()
        .get("vb")
        .map(String::as_str)
        == Some("unreachable")));
    let session = recorded.lock().expect("lock").clone();
    assert!(session.len() > 200, "captured {} bytes", session.len());
    // Replay it: the handshake's first message is accepted (it cannot tell),
    // but nothing after it decrypts under the new session's keys.
    let mut s = raw("127.0.13.9", &session);
    let local = s.local_addr().expect("addr").to_string();
    let got = read_until_closed(&mut s);
    assert!(got.is_some(), "the replay was not cut off");
    assert!(
        wait_for(DEADLINE, || a
            .log()
            .lines()
            .any(|l| l.contains(&local) && l.contains("did not decrypt"))),
        "{}",
        a.log()
    );
    // vb never came back to life.
    assert_eq!(
        a.statuses().get("vb").map(String::as_str),
        Some("unreachable")
    );
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A daemon serving two honest peers takes every kind of hostile input; the
/// peers keep working throughout, and its memory and files come back.
#[test]
fn hostile_input_changes_nothing() {
    let _l = AddrLock::take(&["127.0.14.2", "127.0.14.3", "127.0.14.4"]);
    let v = Daemon::start("victim", "127.0.14.2", &[]);
    let h1 = Daemon::start("honest1", "127.0.14.3", &["-k", "127.0.14.2"]);
    let h2 = Daemon::start("honest2", "127.0.14.4", &["-k", "127.0.14.2"]);
    assert!(wait_for(DEADLINE, || alive(&h1).len() == 3 && alive(&h2).len() == 3));
    let pid = v.pid().expect("pid");
    let (fd0, rss0) = (fds(pid), rss_kb(pid));
    let healthy = || {
        alive(&h1).len() == 3
            && alive(&h2).len() == 3
            && h1
                .ok(&["remote", "honest2", "ping"])
                .starts_with("pong from honest2")
    };

    // Random bytes, a 4 GiB length prefix, a truncated frame, JSON of the
    // wrong shape, an unknown type.
    let mut seed = 12345u64;
    let mut random = vec![0u8; 4096];
    for b in random.iter_mut() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        *b = (seed >> 33) as u8;
    }
    let cases: Vec<Vec<u8>> = vec![
        random,
        u32::MAX.to_be_bytes().to_vec(),
        frame(br#"{"t":"ping","s":1}"#)[..10].to_vec(),
        frame(br#"{"t":"hello","proto":"one"}"#),
        frame(br#"[1,2,3]"#),
        frame(br#"{"t":"teleport"}"#),
    ];
    for bytes in &cases {
        let mut s = raw("127.0.14.2", bytes);
        if bytes.len() < 20 && !bytes.starts_with(&[0xff]) {
            // A truncated frame waits for the rest until the handshake
            // timeout: do not wait for that here.
            drop(s);
        } else {
            assert!(read_until_closed(&mut s).is_some());
        }
        assert!(healthy());
    }

    // A thousand connections that never speak: refused at the handshake
    // timeout, and the honest peers never notice.
    let silent: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect("127.0.14.2:4040").ok())
        .collect();
    assert!(silent.len() >= 900, "only {} connected", silent.len());
    assert!(healthy());
    let rtt = Instant::now();
    assert!(h2
        .ok(&["remote", "honest1", "ping"])
        .starts_with("pong from honest1"));
    eprintln!(
        "ping through the victim during the silent flood: {} ms",
        rtt.elapsed().as_millis()
    );
    drop(silent);

    // A peer that handshakes, then stops reading: its queue fills and it is
    // dropped; nobody else is held up.
    let mut hello = String::new();
    hello.push_str(r#"{"t":"hello","proto":1,"minor":0,"id":"00000000000000000000000000000bad","hb_ms":100000,"seen_as":"x","#);
    hello.push_str(r#""na":{"id":"00000000000000000000000000000bad","version":{"inc":1,"seq":1},"record":{"name":"deaf","internal_ip":null,"#);
    hello.push_str(r#""public_ip":null,"port":4040,"kind":"host","version":"x","os":"x","started_ms":0,"deadend":false},"neighbors":[]}}"#);
    let deaf = raw("127.0.14.2", &frame(hello.as_bytes()));
    assert!(wait_for(DEADLINE, || v.statuses().contains_key("deaf")));
    // The victim keeps flooding commands to it (the deaf peer never
    // answers, so each waits for its deadline).
    for _ in 0..10 {
        let _ = v.client(&["all", "list", "--timeout", "300ms"]);
        assert!(healthy());
    }
    drop(deaf);

    // Memory and open files back near where they were.
    assert!(
        wait_for(Duration::from_secs(20), || fds(pid) <= fd0 + 4),
        "fds {} -> {}",
        fd0,
        fds(pid)
    );
    let rss1 = rss_kb(pid);
    eprintln!(
        "victim: fds {fd0} -> {}, rss {rss0} kB -> {rss1} kB",
        fds(pid)
    );
    assert!(
        rss1 < rss0 + 16 * 1024,
        "rss grew from {rss0} kB to {rss1} kB"
    );
    assert!(healthy());
}

/// The control socket is the owner's: another user is refused, clearly,
/// even where the file modes would let it connect.
#[test]
fn another_user_cannot_give_commands() {
    use std::os::unix::fs::PermissionsExt;
    let _l = AddrLock::take(&["127.0.14.9"]);
    let a = Daemon::start("owned", "127.0.14.9", &[]);
    let sock = a.dir.join("daustd.sock");
    assert_eq!(
        std::fs::metadata(&a.dir).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&sock).expect("sock").permissions().mode() & 0o777,
        0o600
    );
    // Open the modes up, as a careless admin might: the uid check still holds.
    for p in [a.dir.parent().expect("parent"), a.dir.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = client_as_nobody(&["--socket".as_ref(), sock.as_os_str(), "list".as_ref()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("permission denied: uid 65534 may not control this daustd"),
        "{e}"
    );
    assert!(a.ok(&["list"]).starts_with("owned: "));
}
