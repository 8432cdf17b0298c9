//! `contrib/daustify`: a program runs with a daemon around it.

mod common;

use common::*;
use std::process::{Command, Stdio};

fn daustify(args: &[&str]) -> Command {
    let mut c = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/daustify"));
    c.args(args)
        .env("DAUST", bin())
        .env_remove("DAUST_STATE_DIR");
    c
}

fn status_of(d: &Daemon, name: &str) -> Option<String> {
    d.statuses().get(name).cloned()
}

#[test]
fn wraps_a_program_passes_its_status_and_leaves() {
    let _l = AddrLock::take(&["127.0.11.2", "127.0.11.3"]);
    let host = Daemon::start("wraphost", "127.0.11.2", &[]);
    // The program sees its own daemon (DAUST_STATE_DIR) joined to the host.
    let script = format!(
        "for i in $(seq 100); do {b} list | grep -q wraphost && break; sleep 0.1; done; {b} list; exit 3",
        b = bin()
    );
    let o = daustify(&[
        "-k",
        "127.0.11.2",
        "--bind",
        "127.0.11.3",
        "--name",
        "wrapped",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .output()
    .expect("daustify");
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("wrapped: internal ip 127.0.11.3"), "{out}");
    assert!(out.contains("wraphost: internal ip 127.0.11.2"), "{out}");
    // When the program ended, the daemon said goodbye.
    assert!(wait_for(DEADLINE, || status_of(&host, "wrapped")
        .as_deref()
        == Some("left")));
}

#[test]
fn passes_signals_on() {
    let _l = AddrLock::take(&["127.0.11.4", "127.0.11.5"]);
    let host = Daemon::start("sighost", "127.0.11.4", &[]);
    // Its own state dir, so the daemon it starts can be stopped by pid
    // whatever happens to the wrapper.
    let state = TempDir::new("sigwrap");
    let mut child = daustify(&[
        "-k",
        "127.0.11.4",
        "--bind",
        "127.0.11.5",
        "--name",
        "sleeper",
        "--",
        "sleep",
        "30",
    ])
    .env("DAUST_STATE_DIR", &state.0)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("daustify");
    struct Reap(u32, std::path::PathBuf);
    impl Drop for Reap {
        fn drop(&mut self) {
            let daemon = std::fs::read_to_string(self.1.join("daustd.pid")).unwrap_or_default();
            for pid in [self.0.to_string(), daemon.trim().to_string()] {
                if !pid.is_empty() {
                    let _ = Command::new("kill")
                        .args(["-9", &pid])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
    let _reap = Reap(child.id(), state.0.clone());
    assert!(wait_for(DEADLINE, || status_of(&host, "sleeper")
        .as_deref()
        == Some("alive")));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut code = None;
    assert!(wait_for(DEADLINE, || match child.try_wait() {
        Ok(Some(s)) => {
            code = s.code();
            true
        }
        _ => false,
    }));
    assert_eq!(
        code,
        Some(143),
        "the program's death by SIGTERM is passed on"
    );
    assert!(wait_for(DEADLINE, || status_of(&host, "sleeper")
        .as_deref()
        == Some("left")));
}

#[test]
fn usage_errors() {
    let o = daustify(&["-k", "x"]).output().expect("daustify");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage: daustify"));
}
