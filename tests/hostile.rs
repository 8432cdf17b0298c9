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
use daust::wire::peer::{Announcement, Hello, NodeId, NodeRecord, PeerMsg, Version};

/// A peer that speaks the protocol without a key: a Hello with whatever
/// record it likes, then a frame every half second to stay alive.
struct Hostile {
    stream: TcpStream,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    fn connect(to: &str, id: u128, name: &str) -> Hostile {
        let record = NodeRecord {
            name: name.into(),
            internal_ip: Some("10.66.66.66".into()),
            addrs: vec![],
            public_ip: None,
            port: 4040,
            kind: "host".into(),
            tags: [("role".to_string(), "db,admin=yes".to_string())].into(),
            version: daust::VERSION.into(),
            os: "linux".into(),
            started_ms: 1,
            deadend: false,
        };
        let na = Announcement {
            id: NodeId(id),
            version: Version { inc: 1, seq: 1 },
            record,
            neighbors: vec![],
            left: false,
        };
        let hello = PeerMsg::Hello(Box::new(Hello {
            proto: daust::wire::peer::PROTO_MAJOR,
            minor: 0,
            id: NodeId(id),
            hb_ms: 1000,
            na,
            seen_as: to.into(),
        }));
        let mut stream = TcpStream::connect((to, 4040)).expect("connect");
        stream
            .write_all(&daust::wire::encode(&hello).expect("encode"))
            .expect("hello");
        let stop = Arc::new(AtomicBool::new(false));
        // Read and drop whatever comes; say something twice a heartbeat.
        let mut r = stream.try_clone().expect("clone");
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
        });
        let mut w = stream.try_clone().expect("clone");
        let s = stop.clone();
        std::thread::spawn(move || {
            let ping = daust::wire::encode(&PeerMsg::Ping { s: 1, r: None }).expect("encode");
            while !s.load(Ordering::Relaxed) && w.write_all(&ping).is_ok() {
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Hostile { stream, stop }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

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
    let _h = Hostile::connect("127.0.30.1", 0xbad, name);
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
