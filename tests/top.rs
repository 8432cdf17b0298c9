//! `daust top` in a real pseudo-terminal (tmux) against real daemons.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// A tmux server of our own (its own socket), killed when the test ends.
struct Tmux {
    sock: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        let have = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(have, "tmux is needed for this test (.ci/run installs it)");
        Tmux {
            sock: format!("daust-test-{}-{tag}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .arg("-L")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    fn row(&self, name: &str) -> Option<String> {
        self.screen()
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .map(String::from)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[test]
fn top_shows_the_tree_live_and_quits_cleanly() {
    let _l = AddrLock::take(&["127.0.10.2", "127.0.10.3", "127.0.10.4"]);
    let a = Daemon::start("topa", "127.0.10.2", &[]);
    let _b = Daemon::start("topb", "127.0.10.3", &["-k", "127.0.10.2"]);
    let mut c = Daemon::start("topc", "127.0.10.4", &["-k", "127.0.10.3"]);
    assert!(wait_for(DEADLINE, || a
        .statuses()
        .values()
        .filter(|s| *s == "alive")
        .count()
        == 3));

    let t = Tmux::new("top");
    let cmd = format!("{} --state-dir {} top", bin(), a.dir.display());
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "30",
        "sh",
        "-c",
        &format!("clear; echo before-top; {cmd}; echo exit=$?; sleep 30"),
    ]);
    // The tree shows every node, topc under topb.
    let all_shown = || {
        ["topa", "topb", "topc"]
            .iter()
            .all(|n| t.row(n).is_some_and(|r| r.contains("alive")))
    };
    assert!(wait_for(DEADLINE, all_shown), "screen:\n{}", t.screen());
    assert!(
        t.row("topc").is_some_and(|r| r.starts_with("  topc")),
        "topc is not nested:\n{}",
        t.screen()
    );
    assert!(t.screen().contains("3 alive"));

    // SIGKILL one daemon: its row turns unreachable within 5 s.
    c.kill();
    let gone = || t.row("topc").is_some_and(|r| r.contains("unreachable"));
    assert!(
        wait_for(Duration::from_secs(5), gone),
        "screen:\n{}",
        t.screen()
    );
    assert!(t.screen().contains("1 unreachable"));

    // Help opens and closes; q quits with status 0 and the terminal back.
    t.run(&["send-keys", "-t", "top", "?"]);
    assert!(wait_for(DEADLINE, || t
        .screen()
        .contains("forget a node that is not alive")));
    t.run(&["send-keys", "-t", "top", "Escape"]);
    t.run(&["send-keys", "-t", "top", "q"]);
    assert!(
        wait_for(DEADLINE, || t.screen().contains("exit=0")),
        "screen:\n{}",
        t.screen()
    );
    let s = t.screen();
    assert!(
        s.contains("before-top"),
        "the original screen is back:\n{s}"
    );
    assert!(!s.contains("q quit"), "the view is gone:\n{s}");
}

#[test]
fn top_without_a_daemon_says_so() {
    let tmp = TempDir::new("topnd");
    let o = client(&tmp.0, &["top"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("can't reach the local daustd at"));
}

#[test]
fn top_once_prints_one_frame() {
    let _l = AddrLock::take(&["127.0.10.5"]);
    let a = Daemon::start("oncea", "127.0.10.5", &[]);
    let o = a.client(&["top", "--once", "--width", "60"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.starts_with("daust top: oncea  1 alive"), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 60));
    assert!(s
        .lines()
        .any(|l| l.starts_with("oncea ") && l.contains("alive")));
}
